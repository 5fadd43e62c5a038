# Multi-stage build of both binaries; small runtime images.
#   docker build --target worker -t lakefleet-worker .
#   docker build --target producer -t lakefleet-producer .
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p lakefleet-worker -p lakefleet-producer \
 && mkdir -p /out && cp target/release/worker target/release/producer /out/

FROM debian:bookworm-slim AS runtime
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 lakefleet
USER lakefleet

FROM runtime AS worker
COPY --from=build /out/worker /usr/local/bin/worker
EXPOSE 9464
STOPSIGNAL SIGTERM
ENTRYPOINT ["worker"]

FROM runtime AS producer
COPY --from=build /out/producer /usr/local/bin/producer
EXPOSE 9465
ENTRYPOINT ["producer"]
