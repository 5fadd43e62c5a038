//! The fleet under test: the real binaries with a prefix, a lake and
//! settings of their own, their processes, metrics and logs.

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use lakefleet::rabbitmq::topology::Topology;
use lakefleet::task::Task;
use lapin::options::{BasicAckOptions, BasicGetOptions, QueueDeleteOptions};

use crate::*;

mod worker;
pub use worker::*;
mod queues;

pub const AMQP: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
pub const REDIS: &str = "redis://127.0.0.1:6379";

pub(crate) static COUNTER: AtomicU32 = AtomicU32::new(0);

/// The path of workspace binary `name` of package `package`, built now
/// (once per test process) by the same cargo, profile and target folder as
/// the test itself, so that a stale binary left by an earlier build never
/// decides a result. A crate's own binary comes from `CARGO_BIN_EXE_*`
/// instead; this is for the other crate's.
pub fn workspace_bin(package: &str, name: &str) -> PathBuf {
    static BUILT: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    let exe = std::env::current_exe().expect("test executable");
    // target/{profile}/deps/{test}-{hash}
    let profile_dir = exe.parent().and_then(|d| d.parent()).expect("target/{profile}/deps").to_path_buf();
    let bin = profile_dir.join(name);
    // `cargo test` sets CARGO_BIN_EXE_* for the tested package's own binaries.
    if let Ok(own) = std::env::var(format!("CARGO_BIN_EXE_{name}")) {
        return PathBuf::from(own);
    }
    let mut built = BUILT.lock().unwrap();
    if !built.iter().any(|b| b == name) {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "--quiet", "-p", package, "--bin", name]);
        if profile_dir.file_name().is_some_and(|p| p == "release") {
            cmd.arg("--release");
        }
        let target_dir = profile_dir.parent().expect("target folder");
        let st = cmd.env("CARGO_TARGET_DIR", target_dir).status().expect("running cargo build");
        assert!(st.success(), "cargo build -p {package} --bin {name} failed");
        built.push(name.to_string());
    }
    bin
}

/// Runs `worker convert --dataset DATASET INPUT OUTPUT` with the built-in catalog.
pub fn worker_convert(dataset: &str, input: &std::path::Path, output: &std::path::Path) -> Output {
    let out = Command::new(worker_bin())
        .args(["convert", "--dataset", dataset, input.to_str().unwrap(), output.to_str().unwrap()])
        .env_remove("LAKEFLEET_CATALOG")
        .output()
        .unwrap();
    eprintln!("{}{}", stdout(&out), stderr(&out));
    out
}

pub fn worker_bin() -> PathBuf {
    workspace_bin("lakefleet-worker", "worker")
}

pub fn producer_bin() -> PathBuf {
    workspace_bin("lakefleet-producer", "producer")
}

/// The arguments of `producer backfill --dataset DATASET --from FROM --to TO EXTRA...`.
pub fn backfill_args<'a>(dataset: &'a str, from: &'a str, to: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec!["backfill", "--dataset", dataset, "--from", from, "--to", to];
    args.extend_from_slice(extra);
    args
}

/// The arguments of a backfill of mta-turnstile weeks `[from, to]` from `src`'s mirror, plus `extra`.
fn mta_backfill_args<'a>(src: &'a Source, from: &'a str, to: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    backfill_args("mta-turnstile", from, to, &[&["--mirror", src.base.as_str()], extra].concat())
}

/// The built-in mta-turnstile entry as a user catalog's entry `name`
/// (without its successor: add one in `options` if the test needs it), with
/// `options` (TOML lines, e.g. `max_downloads_per_host = 2`) added.
pub fn mta_catalog(name: &str, options: &str) -> String {
    let builtin = include_str!("../../../lakefleet/src/catalog/builtin.toml");
    let start = builtin.find("[[dataset]]\nname = \"mta-turnstile\"").expect("mta-turnstile is built in");
    let end = builtin[start..].find("# ----").map_or(builtin.len(), |e| start + e);
    let entry = builtin[start..end].lines().filter(|l| !l.starts_with("successor =")).collect::<Vec<_>>().join("\n");
    entry.replace("name = \"mta-turnstile\"", &format!("name = \"{name}\"\n{options}"))
}

/// The built-in mta-turnstile dataset (a weekly feed whose newest week is
/// due today: the publication calendar's and the schedule's tests use it).
pub fn mta_turnstile() -> lakefleet::catalog::Dataset {
    lakefleet::catalog::Catalog::builtin().get("mta-turnstile").unwrap().clone()
}

/// Whether the disruptive tests (stopping, restarting or reconfiguring the
/// shared RabbitMQ and Redis) may run: `LAKEFLEET_DISRUPTIVE_TESTS=1`. When
/// not, the test says so on stderr and returns early.
pub fn disruptive(test: &str) -> bool {
    let on = std::env::var("LAKEFLEET_DISRUPTIVE_TESTS").is_ok_and(|v| v == "1");
    if !on {
        eprintln!(
            "{test}: skipped: it stops and restarts the machine's RabbitMQ and Redis; run it with LAKEFLEET_DISRUPTIVE_TESTS=1 (CI does)"
        );
    }
    on
}

/// One isolated fleet: prefix, Redis keys, lake.
pub struct Fleet {
    pub prefix: String,
    pub lake_url: String,
    pub lake_dir: Option<PathBuf>,
    pub env: Vec<(String, String)>,
    pub retry_base_ms: u64,
    cleaned: std::sync::atomic::AtomicBool,
}

/// A test that fails before its `cleanup()` still removes its queues, keys
/// and lake, so that failed runs do not pile up quorum queues on the broker.
impl Drop for Fleet {
    fn drop(&mut self) {
        if self.cleaned.load(Ordering::SeqCst) {
            return;
        }
        let (prefix, topo, dir) = (self.prefix.clone(), self.topology(), self.lake_dir.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(cleanup_fleet(&prefix, &topo, dir.as_deref()));
        })
        .join();
    }
}

async fn cleanup_fleet(prefix: &str, topo: &Topology, lake_dir: Option<&std::path::Path>) {
    // Bounded: a broker or Redis that does not answer must not hang the test
    // run (seen once: a connect that never resolved after broker restarts).
    let amqp = async {
        if let Ok(conn) = lapin::Connection::connect(AMQP, Default::default()).await {
            for q in topo.all_queues() {
                // A channel per queue: a failed delete closes its channel.
                for _ in 0..3 {
                    let Ok(ch) = conn.create_channel().await else { break };
                    if ch.queue_delete(q.as_str().into(), QueueDeleteOptions::default()).await.is_ok() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
            let _ = conn.close(200, "".into()).await;
        }
    };
    if tokio::time::timeout(Duration::from_secs(20), amqp).await.is_err() {
        eprintln!("cleanup: RabbitMQ did not answer within 20 s; queues of {prefix} may be left");
    }
    let redis = async {
        let client = redis::Client::open(REDIS).unwrap();
        if let Ok(mut c) = client.get_multiplexed_async_connection().await {
            let keys: Vec<String> =
                redis::cmd("KEYS").arg(format!("{prefix}:*")).query_async(&mut c).await.unwrap_or_default();
            if !keys.is_empty() {
                let _: () = redis::cmd("DEL").arg(keys).query_async(&mut c).await.unwrap_or(());
            }
        }
    };
    if tokio::time::timeout(Duration::from_secs(20), redis).await.is_err() {
        eprintln!("cleanup: Redis did not answer within 20 s; keys of {prefix} may be left");
    }
    if let Some(d) = lake_dir {
        let _ = std::fs::remove_dir_all(d);
    }
}

impl Fleet {
    /// A fleet with a local-folder lake.
    pub fn local(name: &str) -> Fleet {
        let prefix = format!("t-{name}-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::SeqCst));
        let dir = std::env::temp_dir().join("lakefleet-tests").join(&prefix);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Fleet {
            lake_url: dir.to_str().unwrap().to_string(),
            lake_dir: Some(dir),
            prefix,
            env: vec![],
            retry_base_ms: 200,
            cleaned: false.into(),
        }
    }

    /// A fleet whose lake is a bucket of the S3-compatible server.
    pub fn s3(name: &str, s3: &S3Server) -> Fleet {
        let mut f = Fleet::local(name);
        if let Some(d) = f.lake_dir.take() {
            let _ = std::fs::remove_dir_all(d);
        }
        f.lake_url = format!("s3://{}/lake", s3.bucket);
        f.env = s3.env();
        f
    }

    fn apply(&self, cmd: &mut Command) {
        cmd.env("AMQP_URL", AMQP)
            .env("REDIS_URL", REDIS)
            .env("LAKE_URL", &self.lake_url)
            .env("LAKEFLEET_PREFIX", &self.prefix)
            .env("LAKEFLEET_RETRY_BASE_MS", self.retry_base_ms.to_string())
            .env_remove("LAKEFLEET_CATALOG")
            .env("RUST_LOG", "info");
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
    }

    pub fn topology(&self) -> Topology {
        Topology::new(&self.prefix, self.retry_base_ms, 5)
    }

    /// `producer ARGS` with this fleet's settings, stdin closed, not started.
    pub fn producer_command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(producer_bin());
        self.apply(&mut cmd);
        cmd.args(args).stdin(Stdio::null());
        cmd
    }

    /// Runs `producer ARGS` to completion.
    pub fn producer(&self, args: &[&str]) -> Output {
        let out = self.producer_command(args).output().expect("running producer");
        eprintln!(
            "producer {args:?} -> {:?}\n--- stdout\n{}--- stderr\n{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// `producer backfill` of mta-turnstile weeks `[from, to]` served by
    /// `src`, plus `extra` flags, started without waiting for it (stdout and
    /// stderr piped).
    pub fn backfill_mta_spawn(
        &self,
        src: &Source,
        from: NaiveDate,
        to: NaiveDate,
        extra: &[&str],
    ) -> std::process::Child {
        let (from, to) = (from.to_string(), to.to_string());
        let mut cmd = self.producer_command(&mta_backfill_args(src, &from, &to, extra));
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        cmd.spawn().expect("starting producer")
    }

    /// `producer backfill` of mta-turnstile weeks `[from, to]` served by `src`, plus `extra` flags.
    pub fn backfill_mta(&self, src: &Source, from: NaiveDate, to: NaiveDate, extra: &[&str]) -> Output {
        self.producer(&mta_backfill_args(src, &from.to_string(), &to.to_string(), extra))
    }

    /// `producer backfill --dataset DATASET --from FROM --to TO`, plus `extra` flags.
    pub fn backfill(&self, dataset: &str, from: &str, to: &str, extra: &[&str]) -> Output {
        self.producer(&backfill_args(dataset, from, to, extra))
    }

    /// Marks `date` of `ds` done in Redis and puts a 1-byte object under its
    /// key in the (local) lake, as if a worker had converted it.
    pub async fn fake_done(&self, ds: &lakefleet::catalog::Dataset, date: NaiveDate) {
        let m = lakefleet::state::DoneMarker {
            object_key: ds.object_key(date),
            size: 1,
            rows: 1,
            sha256: "x".into(),
            source: Default::default(),
        };
        self.state().await.mark_done(&ds.name, &date.to_string(), &m).await.unwrap();
        let path = self.lake_dir.as_ref().expect("a local lake").join(ds.object_key(date));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, b"x").unwrap();
    }

    /// Starts a worker process.
    pub fn worker(&self, extra: &[&str]) -> WorkerProc {
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let log = std::env::temp_dir().join("lakefleet-tests").join(format!("{}-worker-{port}.log", self.prefix));
        let mut cmd = Command::new(worker_bin());
        self.apply(&mut cmd);
        // Defaults through the environment, so that `extra` flags override them.
        cmd.env("LAKEFLEET_CONCURRENCY", "2")
            .env("LAKEFLEET_LEASE_TTL", "6")
            .args(["--metrics-addr", &addr])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        let child = cmd.spawn().expect("starting worker");
        WorkerProc { child: Some(child), addr, log }
    }

    pub async fn state(&self) -> lakefleet::state::State {
        lakefleet::state::State::connect(REDIS, &self.prefix).await.unwrap()
    }

    pub fn lake(&self) -> lakefleet::lake::Lake {
        // Build the store from this fleet's variables, not the process environment.
        let get = |k: &str| self.env.iter().find(|(a, _)| a == k).map(|(_, v)| v.clone()).unwrap();
        if self.lake_dir.is_some() {
            lakefleet::lake::Lake::open(&lakefleet::lake::LakeUrl::parse(&self.lake_url).unwrap()).unwrap()
        } else if self.lake_url.starts_with("gs://") {
            lakefleet::lake::Lake::open_gcs_with(&self.lake_url, &get("GOOGLE_BASE_URL"), &get("GOOGLE_BEARER_TOKEN"))
                .unwrap()
        } else {
            lakefleet::lake::Lake::open_s3_with(
                &self.lake_url,
                &get("AWS_ENDPOINT"),
                &get("AWS_ACCESS_KEY_ID"),
                &get("AWS_SECRET_ACCESS_KEY"),
            )
            .unwrap()
        }
    }

    /// Every data object in the lake, `(key, size)` (not the backfill
    /// manifests under `_lakefleet/`).
    pub async fn objects(&self) -> Vec<(String, u64)> {
        // The lake's data objects: not the backfill manifests, not the tables' logs.
        let data = |k: &str| !k.starts_with("_lakefleet/") && !k.contains("/_delta_log/");
        self.lake().list("").await.unwrap().into_iter().filter(|(k, _)| data(k)).collect()
    }

    pub async fn read_object(&self, key: &str) -> bytes::Bytes {
        self.lake().get(key).await.unwrap()
    }

    /// Deletes this fleet's Redis keys (what a Redis restart does to it).
    pub async fn forget_redis(&self) {
        let client = redis::Client::open(REDIS).unwrap();
        let mut c = client.get_multiplexed_async_connection().await.unwrap();
        let keys: Vec<String> = redis::cmd("KEYS").arg(format!("{}:*", self.prefix)).query_async(&mut c).await.unwrap();
        if !keys.is_empty() {
            let _: () = redis::cmd("DEL").arg(keys).query_async(&mut c).await.unwrap();
        }
    }

    /// Deletes this fleet's queues and Redis keys.
    pub async fn cleanup(&self) {
        cleanup_fleet(&self.prefix, &self.topology(), self.lake_dir.as_deref()).await;
        self.cleaned.store(true, Ordering::SeqCst);
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The value of a metric series whose labels include all of `labels`.
pub fn metric(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let mut total = None;
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (n, l) = series.split_once('{').unwrap_or((series, ""));
        if n != name {
            continue;
        }
        if labels.iter().all(|(k, v)| l.contains(&format!("{k}=\"{v}\""))) {
            *total.get_or_insert(0.0) += value.parse::<f64>().unwrap();
        }
    }
    total.unwrap_or_else(|| panic!("no series {name}{labels:?} in:\n{text}"))
}

/// Polls `f` until it returns true or `within` passes.
pub async fn eventually<F, Fut>(within: Duration, what: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    while start.elapsed() < within {
        if f().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("timed out after {within:?} waiting for: {what}");
}

// ---------------------------------------------------------------- hostile inputs

/// The peak resident set of a running process (`VmHWM`), in bytes.
pub fn peak_rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or(0)
}

/// The task of `week` of mta-turnstile that the producer would publish for
/// backfill `id` with mirror `src`.
pub fn mta_task(id: &str, week: NaiveDate, src: &Source) -> Task {
    let cat = lakefleet::catalog::Catalog::builtin();
    Task::plan(id, cat.get("mta-turnstile").unwrap(), week, Some(&src.base), false)
}
