#!/usr/bin/env bash
# Benchmarks: builds the release binaries, creates bench/.venv with pyarrow and
# DuckDB, starts the services and moto's S3 server, then runs bench.py.
#   bash bench/run.sh                 # everything (about 10 minutes on 2 cores)
#   bash bench/run.sh --only conversion
set -euo pipefail
cd "$(dirname "$0")/.."
# CARGO_TARGET_DIR when set, else the workspace's target/ (bench.py reads the same).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$PWD/target}"
bash scripts/services.sh
cargo build --release -q -p lakefleet-worker -p lakefleet-producer
[ -x bench/.venv/bin/python ] || python3 -m venv bench/.venv
bench/.venv/bin/python -c 'import pyarrow, duckdb, numpy, celery, boto3' 2>/dev/null || bench/.venv/bin/pip install -q pyarrow duckdb numpy celery boto3
command -v taskset >/dev/null || { echo "taskset (util-linux) is needed" >&2; exit 1; }

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PORT=$(free_port)
moto_server -H 127.0.0.1 -p "$PORT" >/dev/null 2>&1 &
MOTO=$!
# The same server behind a proxy that adds 50 ms to each table log request
# (a real S3's round trip; moto on loopback answers in 1-2 ms).
SLOW=$(free_port)
python3 bench/latency.py "$SLOW" "$PORT" 0.05 >/dev/null 2>&1 &
PROXY=$!
trap 'kill $MOTO $PROXY 2>/dev/null' EXIT
for _ in $(seq 1 100); do curl -sf -X PUT "http://127.0.0.1:$PORT/bench" >/dev/null && break; sleep 0.2; done
BENCH_S3_PID=$MOTO python3 bench/bench.py --s3 "http://127.0.0.1:$PORT" --s3-slow-log "http://127.0.0.1:$SLOW" "$@"
