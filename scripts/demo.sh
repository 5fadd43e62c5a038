#!/usr/bin/env bash
# The main job on one machine, no internet needed: start the services, serve
# eight generated weekly MTA turnstile files over HTTP on loopback (a
# "mirror"), run a worker, backfill January-February 2022 into ./lake, show
# the progress and the lake, stop the worker cleanly.
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/services.sh
cargo build --release -q -p lakefleet-producer -p lakefleet-worker
# CARGO_TARGET_DIR when set, else the workspace's target/.
BIN="${CARGO_TARGET_DIR:-$PWD/target}/release"

export LAKE_URL="${LAKE_URL:-$PWD/lake}"
export LAKEFLEET_PREFIX="${LAKEFLEET_PREFIX:-lakefleet-demo}"
MIRROR_DIR="$(mktemp -d)"
python3 scripts/sample_mta.py "$MIRROR_DIR" 2022-01-01 9 200000
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
python3 -m http.server "$PORT" --bind 127.0.0.1 --directory "$MIRROR_DIR" >/dev/null 2>&1 &
HTTP_PID=$!
for _ in $(seq 1 50); do (echo > "/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break; sleep 0.1; done
"$BIN/worker" --metrics-addr 127.0.0.1:0 2> "$MIRROR_DIR/worker.log" &
WORKER_PID=$!
cleanup() {
  kill -TERM "$WORKER_PID" 2>/dev/null; wait "$WORKER_PID" 2>/dev/null
  kill "$HTTP_PID" 2>/dev/null
  cp "$MIRROR_DIR/worker.log" ./demo-worker.log 2>/dev/null || true
  rm -rf "$MIRROR_DIR"
}
trap cleanup EXIT

"$BIN/producer" backfill --dataset mta-turnstile --from 2022-01-01 --to 2022-02-28 \
  --mirror "http://127.0.0.1:$PORT" --wait --wait-timeout 600
"$BIN/producer" status
echo "worker log: ./demo-worker.log"
echo "lake ($LAKE_URL):"
find "$LAKE_URL" -name '*.parquet' -printf '  %P  %s bytes\n' | sort
# The dataset is a Delta table: query it as users do (DuckDB's delta
# extension, installed from its PyPI wheel by scripts/services.sh).
echo "query (DuckDB, delta_scan):"
python3 - "$LAKE_URL/mta-turnstile" <<'PY'
import sys, os, glob, duckdb, duckdb_extension_delta
ext = glob.glob(os.path.join(os.path.dirname(duckdb_extension_delta.__file__), "extensions", "*", "delta.duckdb_extension"))[0]
con = duckdb.connect(config={"allow_unsigned_extensions": "true"})
con.execute(f"INSTALL '{ext}'")
con.execute("LOAD delta")
q = f"SELECT year, count(*) AS rows, count(DISTINCT station) AS stations, CAST(max(observed_at) AS VARCHAR) AS last_reading FROM delta_scan('{sys.argv[1]}') GROUP BY year ORDER BY year"
print("  " + q)
for row in con.execute(q).fetchall():
    print("  ", *row)
sys.stdout.flush()
os._exit(0)
PY
