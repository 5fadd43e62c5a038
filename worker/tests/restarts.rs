//! Real broker and Redis restarts in the middle of a backfill. These stop and
//! start the machine's RabbitMQ and Redis, so they live in their own test
//! binary (cargo runs test binaries one after another), run one at a time,
//! and only when `LAKEFLEET_DISRUPTIVE_TESTS=1` asks for them (CI sets it).

use std::process::Command;
use std::time::{Duration, Instant};

use lakefleet_testkit::*;

static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Test `name`'s turn at the machine's services: `None` (the test returns)
/// unless `LAKEFLEET_DISRUPTIVE_TESTS=1` asks for these tests; then one at a time.
async fn turn(name: &str) -> Option<tokio::sync::MutexGuard<'static, ()>> {
    if !disruptive(name) {
        return None;
    }
    Some(SERIAL.lock().await)
}

fn run(cmd: &str, args: &[&str]) {
    let st = Command::new(cmd).args(args).status().unwrap_or_else(|e| panic!("{cmd}: {e}"));
    assert!(st.success(), "{cmd} {args:?} failed");
}

/// Brings RabbitMQ back even when the test fails.
struct RabbitBack;
impl Drop for RabbitBack {
    fn drop(&mut self) {
        let _ = Command::new("rabbitmqctl").args(["-q", "start_app"]).status();
    }
}

fn start_redis() {
    run(
        "redis-server",
        &[
            "--daemonize",
            "yes",
            "--bind",
            "127.0.0.1",
            "-::1",
            "--port",
            "6379",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            "/tmp",
        ],
    );
    let start = Instant::now();
    while Command::new("redis-cli").arg("ping").output().map(|o| o.stdout != b"PONG\n").unwrap_or(true) {
        assert!(start.elapsed() < Duration::from_secs(20), "redis did not come back");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Redis stopped (without saving) for as long as this lives; dropping it
/// brings Redis back, even when the test fails.
struct RedisDown;
impl RedisDown {
    fn stop() -> RedisDown {
        let _ = Command::new("redis-cli").args(["shutdown", "nosave"]).status();
        RedisDown
    }
}
impl Drop for RedisDown {
    fn drop(&mut self) {
        if Command::new("redis-cli").arg("ping").output().map(|o| o.stdout != b"PONG\n").unwrap_or(true) {
            start_redis();
        }
    }
}

/// Waits until every expected object is in the lake and the queues are empty,
/// without Redis (whose state may be gone).
async fn settle(f: &Fleet, keys: usize, within: Duration) {
    let start = Instant::now();
    loop {
        let n = f.objects().await.len();
        let queued = f.work_len().await;
        if n >= keys && queued == 0 {
            // Let redeliveries of in-flight tasks come and go.
            tokio::time::sleep(Duration::from_secs(2)).await;
            if f.work_len().await == 0 {
                return;
            }
        }
        assert!(start.elapsed() < within, "not settled after {within:?}: {n}/{keys} objects, {queued} queued");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Six slow weeks (each download takes 2 s) served by a fresh source, and a ready worker.
async fn slow_weeks(name: &str, seed: u64) -> (Source, Fleet, Vec<(String, usize, String)>, WorkerProc) {
    let src = Source::start().await;
    let f = Fleet::local(name);
    let expect = serve_mta_weeks(&src, 6, 1000, seed, &[Fault::Slow(10, Duration::from_secs(2))]);
    let w = f.worker(&[]);
    w.ready().await;
    (src, f, expect, w)
}

/// Six slow weekly files being converted by one worker (two in flight).
async fn slow_backfill_in_flight(name: &str, seed: u64) -> (Source, Fleet, Vec<(String, usize, String)>, WorkerProc) {
    let (src, f, expect, w) = slow_weeks(name, seed).await;
    let out = f.backfill_mta(&src, week(0), week(5), &[]);
    assert_eq!(out.status.code(), Some(0));
    wait_in_flight(&w, 2.0).await;
    (src, f, expect, w)
}

#[tokio::test(flavor = "multi_thread")]
async fn rabbitmq_restarted_mid_backfill_every_partition_once() {
    let Some(_serial) = turn("rabbitmq_restarted_mid_backfill_every_partition_once").await else { return };
    let (_src, f, expect, w) = slow_backfill_in_flight("rmq-restart", 300).await;
    {
        let _back = RabbitBack;
        run("rabbitmqctl", &["-q", "stop_app"]);
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert_eq!(w.get("/readyz").await.0, 503, "not ready while the broker is down");
    }
    run("rabbitmqctl", &["-q", "await_startup"]);
    settle(&f, 6, Duration::from_secs(90)).await;
    assert!(w.log().contains("reconnecting"), "{}", w.log());
    assert_eq!(w.get("/readyz").await.0, 200);
    oracle(&f, &expect, &[]).await;
    f.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_restarted_mid_backfill_every_partition_once() {
    let Some(_serial) = turn("redis_restarted_mid_backfill_every_partition_once").await else { return };
    let (src, f, expect, w) = slow_backfill_in_flight("redis-restart", 400).await;
    {
        let _down = RedisDown::stop();
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(w.get("/readyz").await.0, 503, "not ready while Redis is down");
    }
    settle(&f, 6, Duration::from_secs(90)).await;
    // The same backfill again: Redis forgot the done markers, the lake did not.
    let again = f.backfill_mta(&src, d("2022-01-01"), week(5), &["--wait", "--wait-timeout", "60"]);
    assert_eq!(again.status.code(), Some(0));
    let m = w.metrics().await;
    assert_eq!(metric(&m, "lakefleet_uploads_total", &[("result", "written")]), 6.0, "each partition written once");
    oracle(&f, &expect, &[]).await;
    f.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn redis_restarted_during_backfill_wait_is_named_and_waited_out() {
    let Some(_serial) = turn("redis_restarted_during_backfill_wait_is_named_and_waited_out").await else { return };
    let (src, f, expect, w) = slow_weeks("redis-wait", 500).await;
    let wait = f.backfill_mta_spawn(&src, week(0), week(5), &["--wait", "--wait-timeout", "120"]);
    wait_in_flight(&w, 2.0).await;
    {
        let _down = RedisDown::stop();
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    let out = tokio::task::spawn_blocking(move || wait.wait_with_output().unwrap()).await.unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    eprintln!("--- stdout\n{stdout}--- stderr\n{stderr}");
    // The outage is named, waited out, and the lost backfill rebuilt from the lake.
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains("warning: Redis at redis://127.0.0.1:6379") && stderr.contains("is unavailable"),
        "{stderr}"
    );
    assert!(stderr.contains("still waiting for backfill"), "{stderr}");
    assert!(stderr.contains("rebuilt it from the lake"), "{stderr}");
    assert!(stdout.contains("6 done") || stdout.contains("done 6"), "{stdout}");
    oracle(&f, &expect, &[]).await;
    f.cleanup().await;
}

/// Lifts the memory alarm and brings RabbitMQ back even when the test fails.
struct Unblock;
impl Drop for Unblock {
    fn drop(&mut self) {
        let _ = Command::new("rabbitmqctl").args(["-q", "start_app"]).status();
        let _ = Command::new("rabbitmqctl").args(["-q", "set_vm_memory_high_watermark", "0.4"]).status();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn producer_reports_unconfirmed_publishes_when_the_broker_goes_away() {
    let Some(_serial) = turn("producer_reports_unconfirmed_publishes_when_the_broker_goes_away").await else { return };
    let f = Fleet::local("rmq-producer");
    let out = {
        let _unblock = Unblock;
        // A memory alarm makes the broker hold every publish unconfirmed:
        // the producer is then mid-publish, deterministically, when the broker stops.
        run("rabbitmqctl", &["-q", "set_vm_memory_high_watermark", "0"]);
        let child = f
            .producer_command(&backfill_args("mta-turnstile", "2022-01-01", "2022-03-31", &[]))
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        tokio::time::sleep(Duration::from_secs(2)).await;
        run("rabbitmqctl", &["-q", "stop_app"]);
        child.wait_with_output().unwrap()
    };
    run("rabbitmqctl", &["-q", "await_startup"]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("13 task(s) were not confirmed by RabbitMQ") && err.contains("re-run the same command"),
        "{err}"
    );
    assert!(err.contains("2022-01-01") && err.contains("2022-03-26"), "names the partitions: {err}");
    f.cleanup().await;
}

/// Issue 20's scenario: 4 workers at concurrency 4 backfill 24 partitions;
/// one worker is killed -9 between its object write and its commit, another
/// mid-download, and Redis restarts. The table holds each partition exactly
/// once at generation 1, and python deltalake and DuckDB read its rows.
#[tokio::test(flavor = "multi_thread")]
async fn four_workers_two_kills_and_a_redis_restart_commit_each_partition_once() {
    let Some(_serial) = turn("four_workers_two_kills_and_a_redis_restart_commit_each_partition_once").await else {
        return;
    };
    let src = Source::start().await;
    let mut f = Fleet::local("chaos-tables");
    let expect = serve_mta_weeks(&src, 24, 400, 700, &[Fault::Slow(3, Duration::from_millis(600))]);
    f.env.push(("LAKEFLEET_TEST_PAUSE_BEFORE_COMMIT_MS".into(), "60000".into()));
    let mut a = f.worker(&["--concurrency", "4"]);
    f.env.pop();
    let mut b = f.worker(&["--concurrency", "4"]);
    let others = [f.worker(&["--concurrency", "4"]), f.worker(&["--concurrency", "4"])];
    for w in [&a, &b].into_iter().chain(&others) {
        w.ready().await;
    }
    let out = f.backfill_mta(&src, week(0), week(23), &[]);
    assert_eq!(out.status.code(), Some(0));
    // A: killed with an object written and its commit not made.
    let start = Instant::now();
    while !a.log().contains("pausing before the commit") {
        assert!(start.elapsed() < Duration::from_secs(60), "worker A never reached a commit: {}", a.log());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    a.kill9();
    // B: killed mid-download.
    wait_in_flight(&b, 1.0).await;
    b.kill9();
    {
        let _down = RedisDown::stop();
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    settle(&f, 24, Duration::from_secs(180)).await;
    // The oracle checks the objects and that the table holds exactly them, one per partition.
    oracle(&f, &expect, &[]).await;
    let dir = f.lake_dir.clone().unwrap();
    let entries = log_entries(&dir, "mta-turnstile");
    let adds: usize = entries.iter().map(|(_, a)| count(a, "add")).sum();
    assert_eq!(adds, 24, "one Add per partition in the whole log");
    for (v, actions) in &entries {
        for t in actions.iter().filter_map(|a| a.get("txn")) {
            assert_eq!(t["version"], 1, "version {v}: generation 1");
        }
    }
    let total: usize = expect.iter().map(|(_, n, _)| n).sum();
    let path = dir.join("mta-turnstile");
    let read = deltalake_read(path.to_str().unwrap(), None);
    assert!(read.starts_with(&format!("{total} ")) && read.contains(" 24 "), "{read}");
    assert!(duckdb_read(path.to_str().unwrap()).starts_with(&format!("{total} ")));
    f.cleanup().await;
}
