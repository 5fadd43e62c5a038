"""lakefleet benchmarks: conversion against pyarrow and DuckDB, end-to-end
fleet throughput, duplicate-skip overhead. Prints figures; asserts nothing.

Run through bench/run.sh, which builds the release binaries, creates the
virtual environment (pyarrow, duckdb) and starts the services.

Every figure of one table comes from the same run on the same machine: compare
ratios within a table, not absolute times across runs.
"""
import argparse
import gzip
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
TARGET = os.environ.get("CARGO_TARGET_DIR", os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "target"))
WORKER = os.path.join(TARGET, "release", "worker")
PRODUCER = os.path.join(TARGET, "release", "producer")
PY = sys.executable


def run_measured(cmd, env=None, cpus=None):
    """Runs cmd; returns (seconds, peak RSS in MiB) of the child."""
    if cpus is not None:
        cmd = ["taskset", "-c", cpus] + cmd
    start = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(p.pid, 0)
    secs = time.perf_counter() - start
    err = p.stderr.read().decode()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit("failed: %s\n%s" % (" ".join(cmd), err))
    return secs, usage.ru_maxrss / 1024.0


PYARROW = """
import sys, pyarrow as pa, pyarrow.csv as csv, pyarrow.parquet as pq
threads = sys.argv[3] == "1"
if threads:
    pa.set_cpu_count(1); pa.set_io_thread_count(1)
t = csv.read_csv(sys.argv[1], read_options=csv.ReadOptions(use_threads=not threads))
pq.write_table(t, sys.argv[2], compression="zstd")
"""

DUCKDB = """
import sys, duckdb
c = duckdb.connect()
if sys.argv[3] == "1":
    c.execute("SET threads=1")
c.execute("COPY (SELECT * FROM read_csv('%s')) TO '%s' (FORMAT parquet, COMPRESSION zstd)" % (sys.argv[1], sys.argv[2]))
"""


def best_of(n, fn):
    runs = [fn() for _ in range(n)]
    return min(runs, key=lambda r: r[0])


def conversion(work, repeat):
    gen = os.path.join(HERE, "gen.py")
    inputs = []
    mta = os.path.join(work, "turnstile_220108.txt")
    subprocess.check_call([PY, gen, "mta", mta, "210000"])
    inputs.append(("mta-turnstile week (210k rows)", "mta-turnstile", mta, os.path.getsize(mta)))
    # Ten weeks in one file: pyarrow's import (about 0.3 s) weighs little here.
    mta10 = os.path.join(work, "turnstile_220312.txt")
    subprocess.check_call([PY, gen, "mta", mta10, "2100000"])
    inputs.append(("mta-turnstile, 10 weeks in one file (2.1M rows)", "mta-turnstile", mta10, os.path.getsize(mta10)))
    yellow = os.path.join(work, "yellow_tripdata_2019-01.csv")
    subprocess.check_call([PY, gen, "yellow", yellow, "1300000"])
    inputs.append(("dtc-nyc-tlc-yellow month (1.3M rows)", "dtc-nyc-tlc-yellow", yellow, os.path.getsize(yellow)))
    ygz = yellow + ".gz"
    with open(yellow, "rb") as src, gzip.open(ygz, "wb", compresslevel=6) as dst:
        shutil.copyfileobj(src, dst)
    inputs.append(("dtc-nyc-tlc-yellow month, gzip", "dtc-nyc-tlc-yellow", ygz, os.path.getsize(yellow)))

    print("\n## Conversion: CSV -> Parquet (zstd), best of %d; MB/s of CSV (uncompressed) input" % repeat)
    print("| input | tool | threads | seconds | MB/s | peak RSS MiB | Parquet MB | vs pyarrow (same threads) | vs DuckDB (same threads) |")
    print("| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    out = os.path.join(work, "out.parquet")
    results = {}
    for label, dataset, path, csv_bytes in inputs:
        for threads, cpus in (("1", "0"), ("default", None)):
            tools = {
                "lakefleet": lambda: [WORKER, "convert", "--dataset", dataset, path, out],
                "pyarrow": lambda: [os.path.join(HERE, ".venv/bin/python"), "-c", PYARROW, path, out, "1" if threads == "1" else "0"],
                "duckdb": lambda: [os.path.join(HERE, ".venv/bin/python"), "-c", DUCKDB, path, out, "1" if threads == "1" else "0"],
            }
            row = {}
            for tool, cmd in tools.items():
                secs, rss = best_of(repeat, lambda: run_measured(cmd(), cpus=cpus))
                row[tool] = (secs, rss, os.path.getsize(out))
            results[(label, threads)] = row
            for tool, (secs, rss, size) in row.items():
                vs = lambda other: "%.2fx" % (row[other][0] / secs) if tool == "lakefleet" else ""
                print("| %s | %s | %s | %.2f | %.0f | %.0f | %.1f | %s | %s |" % (
                    label, tool, threads, secs, csv_bytes / 1e6 / secs, rss, size / 1e6, vs("pyarrow"), vs("duckdb")))
    # Memory does not grow with the file: a ~1 GB source.
    big = os.path.join(work, "yellow_big.csv")
    # Built in chunks: a child's peak RSS counts the memory of its parent at
    # fork, so this process must stay small.
    with open(big, "wb") as dst:
        for k in range(8):
            with open(yellow, "rb") as src:
                if k > 0:
                    src.readline()
                shutil.copyfileobj(src, dst, 1 << 20)
    print("\n## Peak memory against source size (worker convert, 1 thread)")
    print("| source | MB | seconds | MB/s | peak RSS MiB |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for label, dataset, path in (("mta-turnstile week", "mta-turnstile", mta), ("dtc-nyc-tlc-yellow month", "dtc-nyc-tlc-yellow", yellow),
                                 ("dtc-nyc-tlc-yellow x8 (~1 GB)", "dtc-nyc-tlc-yellow", big)):
        size = os.path.getsize(path)
        secs, rss = run_measured([WORKER, "convert", "--dataset", dataset, path, out], cpus="0")
        print("| %s | %.0f | %.2f | %.0f | %.0f |" % (label, size / 1e6, secs, size / 1e6 / secs, rss))
    os.remove(big)
    return inputs


# A TLC yellow month as the TLC publishes it since 2023-02 (INT32 ids, INT64
# codes, TIMESTAMP(MICROS), Airport_fee), zstd, row groups of 1Mi rows.
GEN_PARQUET = """
import sys, numpy as np, pyarrow as pa, pyarrow.parquet as pq
out, rows, rg = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
r = np.random.default_rng(7)
start = np.datetime64("2023-02-01T00:00:00", "us").astype(np.int64)
pick = start + r.integers(0, 27 * 86400, rows) * 1_000_000
fare = r.integers(250, 7000, rows) / 100.0
tip = r.integers(0, 1500, rows) / 100.0
t = pa.table({
    "VendorID": pa.array(r.integers(1, 3, rows), pa.int32()),
    "tpep_pickup_datetime": pa.array(pick, pa.timestamp("us")),
    "tpep_dropoff_datetime": pa.array(pick + r.integers(60, 3600, rows) * 1_000_000, pa.timestamp("us")),
    "passenger_count": pa.array(r.integers(1, 5, rows), pa.int64()),
    "trip_distance": r.integers(0, 3000, rows) / 100.0,
    "RatecodeID": pa.array(r.choice([1, 1, 1, 2, 5], rows), pa.int64()),
    "store_and_fwd_flag": pa.array(np.where(r.random(rows) < 0.01, "Y", "N")),
    "PULocationID": pa.array(r.integers(1, 266, rows), pa.int32()),
    "DOLocationID": pa.array(r.integers(1, 266, rows), pa.int32()),
    "payment_type": pa.array(r.integers(1, 5, rows), pa.int64()),
    "fare_amount": fare, "extra": r.choice([0.0, 1.0, 2.5], rows), "mta_tax": np.full(rows, 0.5),
    "tip_amount": tip, "tolls_amount": np.where(r.random(rows) < 0.05, 6.55, 0.0),
    "improvement_surcharge": np.full(rows, 1.0), "total_amount": fare + tip + 4.0,
    "congestion_surcharge": r.choice([0.0, 2.5], rows), "Airport_fee": r.choice([0.0, 1.25], rows),
})
pq.write_table(t, out, compression="zstd", row_group_size=rg)
"""

# The lake's schema of nyc-tlc-yellow, for the peers: the same output.
LAKE_COLUMNS = [
    ("vendor_id", "VendorID", "int64"), ("vendor_name", None, "string"),
    ("pickup_datetime", "tpep_pickup_datetime", "timestamp[ms]"), ("dropoff_datetime", "tpep_dropoff_datetime", "timestamp[ms]"),
    ("passenger_count", "passenger_count", "int64"), ("trip_distance", "trip_distance", "float64"),
    ("pickup_longitude", None, "float64"), ("pickup_latitude", None, "float64"), ("ratecode_id", "RatecodeID", "int64"),
    ("store_and_fwd_flag", "store_and_fwd_flag", "string"), ("dropoff_longitude", None, "float64"),
    ("dropoff_latitude", None, "float64"), ("pu_location_id", "PULocationID", "int64"), ("do_location_id", "DOLocationID", "int64"),
    ("payment_type", "payment_type", "int64"), ("payment_type_name", None, "string"), ("fare_amount", "fare_amount", "float64"),
    ("extra", "extra", "float64"), ("mta_tax", "mta_tax", "float64"), ("tip_amount", "tip_amount", "float64"),
    ("tolls_amount", "tolls_amount", "float64"), ("improvement_surcharge", "improvement_surcharge", "float64"),
    ("total_amount", "total_amount", "float64"), ("congestion_surcharge", "congestion_surcharge", "float64"),
    ("airport_fee", "Airport_fee", "float64"), ("cbd_congestion_fee", None, "float64"),
]

PYARROW_PARQUET = """
import sys, json, pyarrow as pa, pyarrow.parquet as pq
if sys.argv[3] == "1":
    pa.set_cpu_count(1); pa.set_io_thread_count(1)
cols = json.loads(sys.argv[4])
t = pq.read_table(sys.argv[1], use_threads=sys.argv[3] != "1")
ty = {"int64": pa.int64(), "float64": pa.float64(), "string": pa.string(), "timestamp[ms]": pa.timestamp("ms")}
arrays = [t[src].cast(ty[typ]) if src else pa.nulls(t.num_rows, ty[typ]) for name, src, typ in cols]
out = pa.table(arrays, names=[c[0] for c in cols])
pq.write_table(out, sys.argv[2], compression="zstd")
"""

DUCKDB_PARQUET = """
import sys, json, duckdb
c = duckdb.connect()
if sys.argv[3] == "1":
    c.execute("SET threads=1")
ty = {"int64": "BIGINT", "float64": "DOUBLE", "string": "VARCHAR", "timestamp[ms]": "TIMESTAMP_MS"}
cols = ", ".join("CAST(%s AS %s) AS %s" % ('"%s"' % src if src else "NULL", ty[typ], name) for name, src, typ in json.loads(sys.argv[4]))
c.execute("COPY (SELECT %s FROM read_parquet('%s')) TO '%s' (FORMAT parquet, COMPRESSION zstd)" % (cols, sys.argv[1], sys.argv[2]))
"""


def parquet_conversion(work, repeat, rows=3_200_000):
    """TLC Parquet month -> lake Parquet (nyc-tlc-yellow's schema), one core."""
    venv = os.path.join(HERE, ".venv/bin/python")
    src = os.path.join(work, "yellow_tripdata_2023-02.parquet")
    subprocess.check_call([venv, "-c", GEN_PARQUET, src, str(rows), str(1 << 20)])
    many = os.path.join(work, "many", "yellow_tripdata_2023-02.parquet")
    os.makedirs(os.path.dirname(many), exist_ok=True)
    subprocess.check_call([venv, "-c", GEN_PARQUET, many, str(rows), str(64 * 1024)])
    out = os.path.join(work, "out.parquet")
    cols = json.dumps(LAKE_COLUMNS)
    print("\n## Conversion: TLC Parquet month (%.1fM rows, %.0f MB, zstd, 1Mi-row groups) -> the lake's schema, 1 core, best of %d"
          % (rows / 1e6, os.path.getsize(src) / 1e6, repeat))
    print("| tool | seconds | Mrows/s | peak RSS MiB | Parquet MB | lakefleet vs tool |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    tools = {
        "lakefleet": [WORKER, "convert", "--dataset", "nyc-tlc-yellow", src, out],
        "pyarrow": [venv, "-c", PYARROW_PARQUET, src, out, "1", cols],
        "duckdb": [venv, "-c", DUCKDB_PARQUET, src, out, "1", cols],
    }
    row = {}
    for tool, cmd in tools.items():
        secs, rss = best_of(repeat, lambda: run_measured(cmd, cpus="0"))
        row[tool] = (secs, rss, os.path.getsize(out))
    for tool, (secs, rss, size) in row.items():
        vs = "" if tool == "lakefleet" else "%.2fx" % (secs / row["lakefleet"][0])
        print("| %s | %.2f | %.2f | %.0f | %.1f | %s |" % (tool, secs, rows / 1e6 / secs, rss, size / 1e6, vs))
    print("\n## Peak memory against row groups and file size (worker convert, 1 core)")
    print("| source | row groups | MB | seconds | peak RSS MiB | pyarrow peak RSS MiB |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    big = os.path.join(work, "big", "yellow_tripdata_2023-02.parquet")
    os.makedirs(os.path.dirname(big), exist_ok=True)
    subprocess.check_call([venv, "-c", GEN_PARQUET, big, str(rows * 3), str(1 << 20)])
    for label, path, groups in (("month, 1Mi-row groups", src, -(-rows // (1 << 20))),
                                ("month, 64Ki-row groups", many, -(-rows // (64 * 1024))),
                                ("3 months in one file", big, -(-rows * 3 // (1 << 20)))):
        secs, rss = run_measured([WORKER, "convert", "--dataset", "nyc-tlc-yellow", path, out], cpus="0")
        _, py_rss = run_measured([venv, "-c", PYARROW_PARQUET, path, out, "1", cols], cpus="0")
        print("| %s | %d | %.0f | %.2f | %.0f | %.0f |" % (label, groups, os.path.getsize(path) / 1e6, secs, rss, py_rss))


def forget_redis(prefix):
    subprocess.run(["sh", "-c", "redis-cli --scan --pattern '%s:*' | xargs -r redis-cli del >/dev/null" % prefix], check=True)


def delete_bench_queues():
    """Deletes the queues this run declared."""
    names = subprocess.run(["rabbitmqctl", "-q", "list_queues", "name"], capture_output=True, text=True).stdout.split()
    for q in names:
        if q.startswith("bench-") and ("-%d." % os.getpid()) in q:
            subprocess.run(["rabbitmqctl", "-q", "delete_queue", q], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def http_get(url, timeout=2):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return r.status, r.read().decode()


def metric_sum(text, name, must=()):
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(name):
            continue
        series, value = line.rsplit(" ", 1)
        if series.split("{")[0] == name and all(m in series for m in must):
            total += float(value)
    return total


class Fleet:
    def __init__(self, prefix, lake_url, extra_env=None):
        self.env = dict(os.environ, LAKEFLEET_PREFIX=prefix, LAKE_URL=lake_url, RUST_LOG="warn", **(extra_env or {}))
        self.workers = []

    def worker(self, *args, cpu=None):
        port = free_port()
        pin = ["taskset", "-c", str(cpu)] if cpu is not None else []
        p = subprocess.Popen(pin + [WORKER, "--metrics-addr", "127.0.0.1:%d" % port, *args], env=self.env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.workers.append((p, port))
        for _ in range(200):
            try:
                if http_get("http://127.0.0.1:%d/readyz" % port)[0] == 200:
                    return p, port
            except Exception:
                pass
            time.sleep(0.05)
        raise SystemExit("worker did not become ready")

    def producer(self, *args):
        return subprocess.run([PRODUCER, *args], env=self.env, capture_output=True, text=True)

    def peak_rss(self):
        out = []
        for p, _ in self.workers:
            with open("/proc/%d/status" % p.pid) as f:
                out.append(next(int(l.split()[1]) for l in f if l.startswith("VmHWM")) / 1024.0)
        return out

    def metrics(self, name, *must):
        return sum(metric_sum(http_get("http://127.0.0.1:%d/metrics" % port)[1], name, must) for _, port in self.workers)

    def cpu_seconds(self):
        """CPU time (user + system) the running workers have used so far."""
        return sum(process_cpu_seconds(p.pid) for p, _ in self.workers)

    def stop(self):
        for p, _ in self.workers:
            p.send_signal(signal.SIGTERM)
        for p, _ in self.workers:
            p.wait(timeout=60)
        self.workers = []


def process_cpu_seconds(pid):
    """CPU time (user + system) of process `pid` so far, from /proc/PID/stat (0 when unknown)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return 0.0


def serve_folder(folder):
    """bench/serve.py serving `folder` on loopback (sendfile): (its process, its base URL)."""
    port = free_port()
    http = subprocess.Popen([PY, os.path.join(HERE, "serve.py"), str(port), folder],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1)
    return http, "http://127.0.0.1:%d" % port


def bench_lakes(work, s3_endpoint, s3_slow_log=None):
    """The lakes a fleet benchmark writes to: (name, tag -> (LAKE_URL, extra env))."""
    def s3(endpoint):
        return lambda tag: ("s3://bench/" + tag, {
            "AWS_ENDPOINT": endpoint, "AWS_ALLOW_HTTP": "true", "AWS_ACCESS_KEY_ID": "bench",
            "AWS_SECRET_ACCESS_KEY": "bench", "AWS_REGION": "us-east-1"})
    lakes = [("local folder", lambda tag: (os.path.join(work, "lake-" + tag), {}))]
    if s3_endpoint:
        lakes.append(("S3 (moto)", s3(s3_endpoint)))
    if s3_slow_log:
        lakes.append(("S3 (moto, log +50 ms)", s3(s3_slow_log)))
    return lakes


def end_to_end(work, s3_endpoint, repeat):
    gen = os.path.join(HERE, "gen.py")
    mirror, first, last, total, _ = mta_weeks(work)
    # A mirror's politeness limits: the built-in mta-turnstile's (10 download
    # starts per second per host) would make 26 files take 2.6 s whatever the fleet.
    catalog = mirror_catalog(work)
    http, base_url = serve_folder(mirror)
    print("\n## End to end: 26 weekly files (%.0f MB) over HTTP on loopback (mta-turnstile-mirror); each worker"
          " --concurrency 1, pinned to its own core; best of %d" % (total / 1e6, repeat))
    print("| lake | workers | seconds | files/s | MB/s | peak RSS MiB per worker | speed-up vs 1 worker |")
    print("| --- | ---: | ---: | ---: | ---: | --- | ---: |")
    try:
        lakes = bench_lakes(work, s3_endpoint)
        for lake_name, lake in lakes:
            base = None
            for n in (1, 2):
                runs = []
                for rep in range(repeat):
                    tag = "e2e-%s-%d-%d-%d" % (lake_name.split()[0].lower(), n, rep, os.getpid())
                    url, env = lake(tag)
                    # One queue prefix for every run (quorum queues are costly to
                    # declare); a fresh lake and fresh Redis keys for each.
                    forget_redis("bench-e2e-%d" % os.getpid())
                    f = Fleet("bench-e2e-%d" % os.getpid(), url, dict(env, LAKEFLEET_CATALOG=catalog))
                    for i in range(n):
                        f.worker("--concurrency", "1", cpu=i)
                    start = time.perf_counter()
                    r = f.producer("backfill", "--dataset", "mta-turnstile-mirror", "--from", str(first), "--to", str(last),
                                   "--mirror", base_url, "--wait", "--wait-timeout", "900")
                    secs = time.perf_counter() - start
                    if r.returncode != 0:
                        raise SystemExit(r.stdout + r.stderr)
                    runs.append((secs, f.peak_rss()))
                    f.stop()
                secs, rss = min(runs)
                base = base or secs
                print("| %s | %d | %.1f | %.2f | %.0f | %s | %.2fx |" % (
                    lake_name, n, secs, 26 / secs, total / 1e6 / secs, ", ".join("%.0f" % x for x in rss), base / secs))
    finally:
        http.terminate()

    # One worker, concurrency 1, converting a whole TLC month (gzip) through the queue.
    yellow = os.path.join(mirror, "yellow_tripdata_2019-01.csv.gz")
    subprocess.check_call([PY, gen, "yellow", yellow, "1300000", "--gzip"])
    http, base_url = serve_folder(mirror)
    try:
        forget_redis("bench-e2e-%d" % os.getpid())
        f = Fleet("bench-e2e-%d" % os.getpid(), os.path.join(work, "lake-month"))
        f.worker("--concurrency", "1")
        start = time.perf_counter()
        r = f.producer("backfill", "--dataset", "dtc-nyc-tlc-yellow", "--from", "2019-01-01", "--to", "2019-01-31",
                       "--mirror", base_url, "--wait", "--wait-timeout", "900")
        secs = time.perf_counter() - start
        if r.returncode != 0:
            raise SystemExit(r.stdout + r.stderr)
        rss = f.peak_rss()[0]
        f.stop()
        print("\n## One worker, --concurrency 1, one dtc-nyc-tlc-yellow month (gzip, %.0f MB compressed, 1.3M rows)"
              % (os.path.getsize(yellow) / 1e6))
        print("| seconds | peak RSS MiB |\n| ---: | ---: |\n| %.1f | %.0f |" % (secs, rss))
    finally:
        http.terminate()


def tables(work, s3_endpoint, repeat, s3_slow_log=None):
    """End to end with every partition committed into the dataset's Delta
    table (the default) against plain files (--no-tables), side by side:
    the same 26 weeks, 2 workers pinned to cores 0 and 1, runs alternating.
    Beside the wall time, the CPU the workers used and, on S3, the CPU the
    S3 server used (its pid in BENCH_S3_PID; moto runs on the same two
    cores, so its requests slow the pinned workers). With --s3-slow-log,
    also the same server behind bench/latency.py: 50 ms more on each table
    log request, a real S3's round trip."""
    mirror, first, last, total, _ = mta_weeks(work)
    catalog = mirror_catalog(work)
    http, base_url = serve_folder(mirror)
    s3_pid = int(os.environ.get("BENCH_S3_PID") or 0)
    print("\n## Tables on vs off: 26 weekly files (%.0f MB), 2 workers (--concurrency 1, one core each); best of %d,"
          " runs alternating; CPU seconds of that run" % (total / 1e6, repeat))
    print("| lake | tables | seconds | files/s | time vs tables off | workers' CPU s | S3 server's CPU s |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    try:
        lakes = bench_lakes(work, s3_endpoint, s3_slow_log)
        for n, (lake_name, lake) in enumerate(lakes):
            runs = {"off": [], "on": []}
            for rep in range(repeat):
                for mode in ("off", "on"):
                    # Two lakes may be one bucket: the lake's number keeps their keys apart.
                    tag = "tables-%d-%s-%d-%d" % (n, mode, rep, os.getpid())
                    url, env = lake(tag)
                    forget_redis("bench-tables-%d" % os.getpid())
                    f = Fleet("bench-tables-%d" % os.getpid(), url, dict(env, LAKEFLEET_CATALOG=catalog))
                    extra = ["--no-tables"] if mode == "off" else []
                    for i in range(2):
                        f.worker("--concurrency", "1", *extra, cpu=i)
                    cpu0 = f.cpu_seconds()
                    s3_cpu0 = process_cpu_seconds(s3_pid) if s3_pid and url.startswith("s3://") else None
                    start = time.perf_counter()
                    r = f.producer("backfill", "--dataset", "mta-turnstile-mirror", "--from", str(first), "--to",
                                   str(last), "--mirror", base_url, "--wait", "--wait-timeout", "900")
                    secs = time.perf_counter() - start
                    if r.returncode != 0:
                        f.stop()  # else the workers outlive the bench and keep declaring its queues
                        raise SystemExit(r.stdout + r.stderr)
                    cpu = f.cpu_seconds() - cpu0
                    s3_cpu = process_cpu_seconds(s3_pid) - s3_cpu0 if s3_cpu0 is not None else None
                    runs[mode].append((secs, cpu, s3_cpu))
                    f.stop()
            off = min(runs["off"])[0]
            for mode in ("off", "on"):
                secs, cpu, s3_cpu = min(runs[mode])
                print("| %s | %s | %.2f | %.2f | %.3f | %.2f | %s |" % (
                    lake_name, mode, secs, 26 / secs, secs / off, cpu, "-" if s3_cpu is None else "%.2f" % s3_cpu))
    finally:
        http.terminate()


def mta_weeks(work, n=26):
    """n generated MTA weeks (210k rows each) in work/mirror: (dir, first, last, bytes, urls-path names)."""
    import datetime
    gen = os.path.join(HERE, "gen.py")
    mirror = os.path.join(work, "mirror")
    os.makedirs(mirror, exist_ok=True)
    first = datetime.date(2022, 1, 1)
    names, total = [], 0
    for i in range(n):
        d = first + datetime.timedelta(days=7 * i)
        name = "turnstile_%s.txt" % d.strftime("%y%m%d")
        path = os.path.join(mirror, name)
        if not os.path.exists(path):
            subprocess.check_call([PY, gen, "mta", path, "210000"])
        total += os.path.getsize(path)
        names.append(name)
    return mirror, first, first + datetime.timedelta(days=7 * (n - 1)), total, names


def count_parquet(lake, s3_endpoint):
    """Parquet objects under a local folder or s3://bench/PREFIX (moto answers unsigned listings)."""
    if lake.startswith("s3://"):
        prefix = lake[len("s3://bench/"):]
        body = urllib.request.urlopen("%s/bench?list-type=2&prefix=%s" % (s3_endpoint, prefix)).read().decode()
        return sum(1 for k in body.split("<Key>")[1:] if k.split("</Key>")[0].endswith(".parquet"))
    n = 0
    for _, _, files in os.walk(lake):
        n += sum(1 for f in files if f.endswith(".parquet"))
    return n


def wait_for(n, lake, s3_endpoint, start, timeout=600):
    while count_parquet(lake, s3_endpoint) < n:
        if time.perf_counter() - start > timeout:
            raise SystemExit("timed out waiting for %d objects in %s" % (n, lake))
        time.sleep(0.02)
    return time.perf_counter() - start


def mirror_catalog(work):
    """A user catalog with mta-turnstile's schema as `mta-turnstile-mirror`,
    whose politeness limits suit a mirror the operator runs (the built-in
    dataset allows 10 download starts per second per host, fleet-wide, out
    of courtesy to web.mta.info; 26 files then take at least 2.6 s)."""
    src = open(os.path.join(ROOT, "lakefleet", "src", "catalog", "builtin.toml")).read()
    start = src.index('[[dataset]]\nname = "mta-turnstile"')
    block = src[start:src.index("# ----", start)].strip()
    block = block.replace('name = "mta-turnstile"', 'name = "mta-turnstile-mirror"\nmax_downloads_per_host = 64\n'
                          'max_requests_per_second_per_host = 1000', 1)
    path = os.path.join(work, "mirror-catalog.toml")
    with open(path, "w") as f:
        f.write(block + "\n")
    return path


def mirror_fleet_run(prefix, lake, env, first, last, n, base_url, s3_endpoint=None, on_start=None, on_done=None):
    """lakefleet's fleet as the peer section runs it: like the Celery fleet,
    2 processes on cores 0 and 1 (the scheduler places them), each at its
    default concurrency (2); a backfill of mta-turnstile-mirror weeks
    [first, last] from base_url. Returns the seconds from the publish to the
    n-th Parquet object in the lake; on_start and on_done run just before
    the publish and just after that object."""
    forget_redis(prefix)
    f = Fleet(prefix, lake, env)
    try:
        for _ in range(2):
            f.worker(cpu="0,1")
        if on_start:
            on_start()
        start = time.perf_counter()
        r = f.producer("backfill", "--dataset", "mta-turnstile-mirror", "--from", str(first), "--to", str(last),
                       "--mirror", base_url)
        if r.returncode != 0:
            raise SystemExit(r.stdout + r.stderr)
        secs = wait_for(n, lake, s3_endpoint, start)
        if on_done:
            on_done()
        return secs
    finally:
        f.stop()


def peer(work, s3_endpoint, repeat):
    """lakefleet's fleet against a Celery + pyarrow fleet: same files, same
    source server, the same 2 cores, alternating, timed from the first
    publish to the last Parquet file."""
    venv = os.path.join(HERE, ".venv/bin")
    mirror, first, last, total, names = mta_weeks(work)
    http, base_url = serve_folder(mirror)
    s3env = {"AWS_ENDPOINT": s3_endpoint or "", "AWS_ALLOW_HTTP": "true", "AWS_ACCESS_KEY_ID": "bench",
             "AWS_SECRET_ACCESS_KEY": "bench", "AWS_REGION": "us-east-1"}
    lakes = [("local folder", lambda tag: os.path.join(work, tag))]
    if s3_endpoint:
        lakes.append(("S3 (moto)", lambda tag: "s3://bench/" + tag))
    queue = "bench-peer-%d" % os.getpid()
    catalog = mirror_catalog(work)

    def lakefleet_run(lake):
        env = dict(s3env if lake.startswith("s3://") else {}, LAKEFLEET_CATALOG=catalog)
        return mirror_fleet_run("bench-peer-%d" % os.getpid(), lake, env, first, last, len(names), base_url,
                                s3_endpoint)

    def celery_run(lake):
        if not lake.startswith("s3://"):
            os.makedirs(lake, exist_ok=True)
        env = dict(os.environ, PEER_QUEUE=queue, PEER_S3_ENDPOINT=s3_endpoint or "")
        log = open(os.path.join(work, "celery.log"), "w+")
        w = subprocess.Popen(["taskset", "-c", "0,1", os.path.join(venv, "celery"), "-A", "celery_peer", "worker",
                              "--pool", "prefork", "--concurrency", "2", "-Q", queue, "-l", "INFO",
                              "--without-gossip", "--without-mingle", "--without-heartbeat"],
                             cwd=HERE, env=env, stdout=log, stderr=subprocess.STDOUT)
        for _ in range(300):
            log.seek(0)
            if " ready." in log.read():
                break
            time.sleep(0.1)
        start = time.perf_counter()
        subprocess.check_call([os.path.join(venv, "python"), os.path.join(HERE, "celery_peer.py"), "publish", lake]
                              + ["%s/%s" % (base_url, n) for n in names], cwd=HERE, env=env)
        secs = wait_for(len(names), lake, s3_endpoint, start)
        w.send_signal(signal.SIGTERM)
        w.wait(timeout=60)
        return secs

    print("\n## End to end against the peer: 26 weekly files (%.0f MB) over HTTP on loopback, on the same 2 cores: "
          "lakefleet (2 workers at their default --concurrency 2, mta-turnstile's schema with a mirror's politeness limits) vs Celery (prefork, 2 processes, pyarrow read_csv + "
          "write_table zstd, RabbitMQ broker), both fleets on cores 0-1; alternating, %d runs each, from the first "
          "publish to the last Parquet file"
          % (total / 1e6, repeat))
    print("| lake | system | best s | median s | MB/s (best) | lakefleet speed-up (best) | (median) |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: |")
    try:
        for lake_name, lake in lakes:
            times = {"lakefleet": [], "celery": []}
            for rep in range(repeat):
                order = ("lakefleet", "celery") if rep % 2 == 0 else ("celery", "lakefleet")
                for system in order:
                    tag = "peer-%s-%s-%d-%d" % (lake_name.split()[0].lower(), system, rep, os.getpid())
                    run = lakefleet_run if system == "lakefleet" else celery_run
                    times[system].append(run(lake(tag)))
            med = lambda v: sorted(v)[len(v) // 2]
            lf, ce = times["lakefleet"], times["celery"]
            for system, v in times.items():
                ratio = ("%.2fx" % (min(ce) / min(lf)), "%.2fx" % (med(ce) / med(lf))) if system == "lakefleet" else ("", "")
                print("| %s | %s | %.2f | %.2f | %.0f | %s | %s |" % (
                    lake_name, system, min(v), med(v), total / 1e6 / min(v), ratio[0], ratio[1]))
    finally:
        http.terminate()
        subprocess.run(["rabbitmqctl", "-q", "delete_queue", queue], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def overhead(rounds):
    prefix = "bench-dup-%d" % os.getpid()
    f = Fleet(prefix, os.path.join(tempfile.gettempdir(), prefix))
    # Every weekly partition since 2014-10-18 is done (markers written directly).
    import datetime
    d = datetime.date(2014, 10, 18)
    today = datetime.date.today()
    cmds = []
    while d <= today - datetime.timedelta(days=7):
        cmds.append("HSET %s:done:mta-turnstile:%s object_key k size 1 rows 1 sha256 x\n" % (prefix, d))
        d += datetime.timedelta(days=7)
    subprocess.run(["redis-cli"], input="".join(cmds), text=True, capture_output=True, check=True)
    to = str(d - datetime.timedelta(days=7))
    n = len(cmds) * rounds
    print("\n## Overhead: %d tasks whose partitions are all done (every task is a duplicate skip)" % n)
    print("| workers | concurrency each | seconds | tasks/s |")
    print("| ---: | ---: | ---: | ---: |")
    for workers, conc in ((1, 2), (2, 2), (1, 16), (2, 16)):
        # Publish with no worker running, then time the fleet alone.
        for _ in range(rounds):
            r = f.producer("backfill", "--dataset", "mta-turnstile", "--from", "2014-10-18", "--to", to, "--force")
            if r.returncode != 0:
                raise SystemExit(r.stdout + r.stderr)
        for _ in range(workers):
            f.worker("--concurrency", str(conc))
        # Timed from the moment every worker is ready (process start excluded).
        start = time.perf_counter()
        done0 = f.metrics("lakefleet_tasks_total", 'outcome="skipped_duplicate"')
        while f.metrics("lakefleet_tasks_total", 'outcome="skipped_duplicate"') < n:
            time.sleep(0.01)
        secs = time.perf_counter() - start
        f.stop()
        print("| %d | %d | %.2f | %.0f |" % (workers, conc, secs, (n - done0) / secs))
    forget_redis(prefix)


# Where a fleet's CPU goes: (category, test on (comm, dso, symbol)); the first that matches.
PROFILE_GROUPS = [
    ("idle", lambda c, d, f: c == "swapper"),
    ("source server (bench/serve.py)", lambda c, d, f: c.startswith("python")),
    ("RabbitMQ", lambda c, d, f: "sched" in c or c.startswith(("beam", "erl", "1_", "2_", "3_", "4_"))),
    ("Redis", lambda c, d, f: c.startswith("redis")),
    ("other processes", lambda c, d, f: d != "worker" and not c.startswith(("tokio", "worker", "lapin", "lakefleet"))),
    ("CSV splitting", lambda c, d, f: "convert::split" in f),
    ("Parquet dictionaries (parquet-rs interning, hashing)",
     lambda c, d, f: any(k in f for k in ("interner", "hash_one", "memcmp", "ByteArrayEncoder", "hashbrown"))),
    ("zstd", lambda c, d, f: f.startswith(("ZSTD_", "HUF_", "HIST_", "FSE_"))),
    ("SHA-256 of the source", lambda c, d, f: "sha2::" in f or "sha256" in f),
    ("values: numbers, dates, text", lambda c, d, f: any(k in f for k in ("convert::columns", "convert::csv", "timefmt"))),
    ("other Parquet/Arrow encoding", lambda c, d, f: f.startswith(("parquet::", "arrow", "<parquet", "<arrow"))),
    ("kernel (sockets, files, memory)", lambda c, d, f: f.startswith("[k]") or d.startswith("[kernel")),
    ("memory copies, malloc", lambda c, d, f: any(k in f for k in ("memmove", "memcpy", "malloc", "free", "realloc"))),
    ("other worker (HTTP, AMQP, Redis clients, runtime)", lambda c, d, f: True),
]


def fleet_profile(work):
    """One lakefleet run of the peer section (26 weeks, 2 workers on cores
    0-1) under `perf record -a`: where the whole machine's CPU went, grouped."""
    if shutil.which("perf") is None:
        print("\n## Fleet profile: skipped (no `perf`; Debian: apt-get install linux-perf)")
        return
    mirror, first, last, total, names = mta_weeks(work)
    http, base_url = serve_folder(mirror)
    data = os.path.join(work, "fleet.perf")
    recorder = []

    def start_perf():
        recorder.append(subprocess.Popen(["perf", "record", "-a", "-e", "cpu-clock", "-F", "999", "-o", data],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
        time.sleep(0.2)

    try:
        secs = mirror_fleet_run("bench-prof-%d" % os.getpid(), os.path.join(work, "lake-profile"),
                                {"LAKEFLEET_CATALOG": mirror_catalog(work)}, first, last, len(names), base_url,
                                on_start=start_perf, on_done=lambda: recorder[0].send_signal(signal.SIGINT))
    finally:
        http.terminate()
    perf = recorder[0]
    err = perf.communicate(timeout=60)[1].decode()
    if perf.returncode not in (0, -signal.SIGINT) or not os.path.exists(data):
        print("\n## Fleet profile: skipped (perf record failed: %s)" % err.strip()[-300:])
        return
    report = subprocess.run(["perf", "report", "-i", data, "--no-children", "--sort", "comm,dso,sym", "-g", "none",
                             "--stdio", "--field-separator", "\t"], capture_output=True, text=True).stdout
    shares = {}
    for line in report.splitlines():
        parts = line.split("\t")
        if line.startswith("#") or len(parts) < 4 or not parts[0].strip().endswith("%"):
            continue
        pct, comm, dso, sym = float(parts[0].strip().rstrip("%")), parts[1].strip(), parts[2].strip(), parts[3].strip()
        sym = sym.split("] ", 1)[1] if sym.startswith("[.] ") else sym
        name = next(n for n, test in PROFILE_GROUPS if test(comm, dso, sym))
        shares[name] = shares.get(name, 0.0) + pct
    print("\n## Fleet profile: the peer section's lakefleet run (26 weeks, 2 workers, cores 0-1) under `perf record -a`,"
          " %.2f s; share of all CPU samples of both cores" % secs)
    print("| where | share |\n| --- | ---: |")
    for name, _ in PROFILE_GROUPS:
        if name in shares:
            print("| %s | %.1f%% |" % (name, shares[name]))


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--only", choices=["conversion", "parquet", "e2e", "tables", "peer", "overhead", "profile"],
                    help="run one section (profile, which needs perf, runs only when asked)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per conversion figure (best is kept)")
    ap.add_argument("--s3", help="endpoint of an S3-compatible server with a bucket named bench")
    ap.add_argument("--s3-slow-log", help="the same server behind bench/latency.py (tables on vs off only)")
    args = ap.parse_args()
    print("# lakefleet benchmarks on %s (%d cores), %s" % (socket.gethostname(), os.cpu_count(), time.strftime("%Y-%m-%d %H:%M")))
    work = tempfile.mkdtemp(prefix="lakefleet-bench-")
    try:
        if args.only in (None, "conversion"):
            conversion(work, args.repeat)
        if args.only in (None, "parquet"):
            parquet_conversion(work, args.repeat)
        if args.only in (None, "e2e"):
            end_to_end(work, args.s3, args.repeat)
        if args.only in (None, "tables"):
            tables(work, args.s3, args.repeat, args.s3_slow_log)
        if args.only in (None, "peer"):
            peer(work, args.s3, args.repeat)
        if args.only in (None, "overhead"):
            overhead(5)
        if args.only == "profile":
            fleet_profile(work)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        delete_bench_queues()
        forget_redis("bench-*-%d" % os.getpid())


if __name__ == "__main__":
    main()
