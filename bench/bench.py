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
    yellow = os.path.join(work, "yellow_tripdata_2019-01.csv")
    subprocess.check_call([PY, gen, "yellow", yellow, "1300000"])
    inputs.append(("nyc-tlc-yellow month (1.3M rows)", "nyc-tlc-yellow", yellow, os.path.getsize(yellow)))
    ygz = yellow + ".gz"
    with open(yellow, "rb") as src, gzip.open(ygz, "wb", compresslevel=6) as dst:
        shutil.copyfileobj(src, dst)
    inputs.append(("nyc-tlc-yellow month, gzip", "nyc-tlc-yellow", ygz, os.path.getsize(yellow)))

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
    for label, dataset, path in (("mta-turnstile week", "mta-turnstile", mta), ("nyc-tlc-yellow month", "nyc-tlc-yellow", yellow),
                                 ("nyc-tlc-yellow x8 (~1 GB)", "nyc-tlc-yellow", big)):
        size = os.path.getsize(path)
        secs, rss = run_measured([WORKER, "convert", "--dataset", dataset, path, out], cpus="0")
        print("| %s | %.0f | %.2f | %.0f | %.0f |" % (label, size / 1e6, secs, size / 1e6 / secs, rss))
    os.remove(big)
    return inputs


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

    def stop(self):
        for p, _ in self.workers:
            p.send_signal(signal.SIGTERM)
        for p, _ in self.workers:
            p.wait(timeout=60)
        self.workers = []


def end_to_end(work, s3_endpoint, repeat):
    gen = os.path.join(HERE, "gen.py")
    mirror = os.path.join(work, "mirror")
    os.makedirs(mirror, exist_ok=True)
    import datetime
    first = datetime.date(2022, 1, 1)
    total = 0
    for i in range(26):
        d = first + datetime.timedelta(days=7 * i)
        path = os.path.join(mirror, "turnstile_%s.txt" % d.strftime("%y%m%d"))
        subprocess.check_call([PY, gen, "mta", path, "210000"])
        total += os.path.getsize(path)
    last = first + datetime.timedelta(days=7 * 25)
    port = free_port()
    http = subprocess.Popen([PY, os.path.join(HERE, "serve.py"), str(port), mirror],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1)
    print("\n## End to end: 26 weekly files (%.0f MB) over HTTP on loopback; each worker --concurrency 1, pinned to its own"
          " core; best of %d" % (total / 1e6, repeat))
    print("| lake | workers | seconds | files/s | MB/s | peak RSS MiB per worker | speed-up vs 1 worker |")
    print("| --- | ---: | ---: | ---: | ---: | --- | ---: |")
    try:
        lakes = [("local folder", lambda tag: (os.path.join(work, "lake-" + tag), {}))]
        if s3_endpoint:
            lakes.append(("S3 (moto)", lambda tag: ("s3://bench/" + tag, {
                "AWS_ENDPOINT": s3_endpoint, "AWS_ALLOW_HTTP": "true", "AWS_ACCESS_KEY_ID": "bench",
                "AWS_SECRET_ACCESS_KEY": "bench", "AWS_REGION": "us-east-1"})))
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
                    f = Fleet("bench-e2e-%d" % os.getpid(), url, env)
                    for i in range(n):
                        f.worker("--concurrency", "1", cpu=i)
                    start = time.perf_counter()
                    r = f.producer("backfill", "--dataset", "mta-turnstile", "--from", str(first), "--to", str(last),
                                   "--mirror", "http://127.0.0.1:%d" % port, "--wait", "--wait-timeout", "900")
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
    port = free_port()
    http = subprocess.Popen([PY, os.path.join(HERE, "serve.py"), str(port), mirror],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1)
    try:
        forget_redis("bench-e2e-%d" % os.getpid())
        f = Fleet("bench-e2e-%d" % os.getpid(), os.path.join(work, "lake-month"))
        f.worker("--concurrency", "1")
        start = time.perf_counter()
        r = f.producer("backfill", "--dataset", "nyc-tlc-yellow", "--from", "2019-01-01", "--to", "2019-01-31",
                       "--mirror", "http://127.0.0.1:%d" % port, "--wait", "--wait-timeout", "900")
        secs = time.perf_counter() - start
        if r.returncode != 0:
            raise SystemExit(r.stdout + r.stderr)
        rss = f.peak_rss()[0]
        f.stop()
        print("\n## One worker, --concurrency 1, one nyc-tlc-yellow month (gzip, %.0f MB compressed, 1.3M rows)"
              % (os.path.getsize(yellow) / 1e6))
        print("| seconds | peak RSS MiB |\n| ---: | ---: |\n| %.1f | %.0f |" % (secs, rss))
    finally:
        http.terminate()


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


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--only", choices=["conversion", "e2e", "overhead"], help="run one section")
    ap.add_argument("--repeat", type=int, default=3, help="runs per conversion figure (best is kept)")
    ap.add_argument("--s3", help="endpoint of an S3-compatible server with a bucket named bench")
    args = ap.parse_args()
    print("# lakefleet benchmarks on %s (%d cores), %s" % (socket.gethostname(), os.cpu_count(), time.strftime("%Y-%m-%d %H:%M")))
    work = tempfile.mkdtemp(prefix="lakefleet-bench-")
    try:
        if args.only in (None, "conversion"):
            conversion(work, args.repeat)
        if args.only in (None, "e2e"):
            end_to_end(work, args.s3, args.repeat)
        if args.only in (None, "overhead"):
            overhead(5)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        delete_bench_queues()
        forget_redis("bench-*-%d" % os.getpid())


if __name__ == "__main__":
    main()
