//! Test support for the producer's and the worker's integration tests: a
//! fleet with its own queue prefix, Redis prefix and lake; the real
//! `producer` and `worker` binaries, always built fresh from this workspace;
//! an HTTP source served by the test (with injectable faults); seeded data
//! generators; Parquet readers; moto's S3 server; the lake oracle.
//!
//! Tests that stop, restart or reconfigure the machine's shared RabbitMQ or
//! Redis call [`disruptive`] first: they run only when
//! `LAKEFLEET_DISRUPTIVE_TESTS=1` (CI sets it), never on a developer's laptop
//! by default.

pub mod gcs;
pub mod soda;
pub mod tlc;

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use chrono::NaiveDate;
use lakefleet::task::Task;
use lakefleet::topology::Topology;
use lapin::options::{BasicAckOptions, BasicGetOptions, QueueDeleteOptions};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const AMQP: &str = "amqp://guest:guest@127.0.0.1:5672/%2f";
pub const REDIS: &str = "redis://127.0.0.1:6379";

static COUNTER: AtomicU32 = AtomicU32::new(0);

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

/// `mta-live`: the built-in mta-turnstile as a feed that still publishes
/// (without its last partition), for tests of the publication calendar and
/// the schedule, whose newest week must be due today.
pub fn mta_live_catalog() -> String {
    let builtin = include_str!("../../common/src/catalog/builtin.toml");
    let start = builtin.find("[[dataset]]\nname = \"mta-turnstile\"").expect("mta-turnstile is built in");
    let end = builtin[start..].find("# ----").map_or(builtin.len(), |e| start + e);
    builtin[start..end]
        .replace("name = \"mta-turnstile\"", "name = \"mta-live\"")
        .lines()
        .filter(|l| !l.starts_with("last =") && !l.starts_with("successor ="))
        .collect::<Vec<_>>()
        .join("\n")
}

/// [`mta_live_catalog`]'s dataset.
pub fn mta_live() -> lakefleet::catalog::Dataset {
    let path = tmpdir("mta-live").join("catalog.toml");
    std::fs::write(&path, mta_live_catalog()).unwrap();
    lakefleet::catalog::Catalog::with_file(&path).unwrap().get("mta-live").unwrap().clone()
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

    /// Messages in `queue` (0 if it does not exist).
    pub async fn queue_len(&self, queue: &str) -> u32 {
        let conn = lapin::Connection::connect(AMQP, Default::default()).await.unwrap();
        let ch = conn.create_channel().await.unwrap();
        let n = match ch
            .queue_declare(
                queue.into(),
                lapin::options::QueueDeclareOptions { passive: true, ..Default::default() },
                Default::default(),
            )
            .await
        {
            Ok(q) => q.message_count(),
            Err(_) => 0,
        };
        let _ = conn.close(200, "".into()).await;
        n
    }

    /// Takes (and acks) every message of `queue`.
    pub async fn drain(&self, queue: &str) -> Vec<lapin::message::Delivery> {
        let conn = lapin::Connection::connect(AMQP, Default::default()).await.unwrap();
        let ch = conn.create_channel().await.unwrap();
        let mut out = Vec::new();
        while let Ok(Some(m)) = ch.basic_get(queue.into(), BasicGetOptions::default()).await {
            m.delivery.ack(BasicAckOptions::default()).await.unwrap();
            out.push(m.delivery);
        }
        let _ = conn.close(200, "".into()).await;
        out
    }

    pub async fn drain_tasks(&self, queue: &str) -> Vec<Task> {
        self.drain(queue).await.iter().map(|d| Task::decode(&d.data).unwrap()).collect()
    }

    pub async fn state(&self) -> lakefleet::state::State {
        lakefleet::state::State::connect(REDIS, &self.prefix).await.unwrap()
    }

    pub fn lake(&self) -> lakefleet::lake::Lake {
        // Build the store from this fleet's variables, not the process environment.
        let get = |k: &str| self.env.iter().find(|(a, _)| a == k).map(|(_, v)| v.clone()).unwrap();
        if self.lake_dir.is_some() {
            lakefleet::lake::Lake::open(&self.lake_url).unwrap()
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

/// A running worker; killed (SIGKILL) when dropped.
pub struct WorkerProc {
    pub child: Option<Child>,
    pub addr: String,
    pub log: PathBuf,
}

impl WorkerProc {
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    pub fn signal(&self, sig: &str) {
        let st = Command::new("kill").args([sig, &self.pid().to_string()]).status().unwrap();
        assert!(st.success());
    }

    /// Sends SIGTERM and waits (bounded) for the exit code.
    pub fn terminate(&mut self, within: Duration) -> Option<i32> {
        self.signal("-TERM");
        self.wait(within)
    }

    pub fn wait(&mut self, within: Duration) -> Option<i32> {
        let start = Instant::now();
        let child = self.child.as_mut().unwrap();
        while start.elapsed() < within {
            if let Some(st) = child.try_wait().unwrap() {
                return st.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let url = format!("http://{}{path}", self.addr);
        for _ in 0..100 {
            if let Ok(r) = reqwest::get(&url).await {
                let code = r.status().as_u16();
                return (code, r.text().await.unwrap_or_default());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("worker at {} never answered; log:\n{}", self.addr, self.log());
    }

    pub async fn metrics(&self) -> String {
        self.get("/metrics").await.1
    }

    /// Waits (bounded) until /readyz says ready.
    pub async fn ready(&self) {
        for _ in 0..100 {
            if self.get("/readyz").await.0 == 200 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("worker never became ready; log:\n{}", self.log());
    }
}

impl Drop for WorkerProc {
    fn drop(&mut self) {
        self.kill9();
    }
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

// ---------------------------------------------------------------- sources

/// Reads an HTTP request's head (request line and headers) from `sock`.
pub async fn read_head(sock: &mut tokio::net::TcpStream) -> Option<String> {
    let mut buf = vec![0u8; 16384];
    let mut n = 0;
    while !buf[..n].windows(4).any(|w| w == b"\r\n\r\n") && n < buf.len() {
        match sock.read(&mut buf[n..]).await {
            Ok(0) | Err(_) => return None,
            Ok(k) => n += k,
        }
    }
    Some(String::from_utf8_lossy(&buf[..n]).to_string())
}

/// The value of header `name` (any case) in a request head.
pub fn header(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
    })
}

/// What the source does for one request of a file.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this status and no body.
    Status(u16),
    /// Announce the full length, send only this many bytes, close.
    Truncate(usize),
    /// Send the body slowly: this many chunks over this duration.
    Slow(usize, Duration),
    /// Answer 429 with `Retry-After: secs`.
    Throttle(u64),
}

#[derive(Default)]
struct SourceState {
    files: HashMap<String, Vec<u8>>,
    faults: HashMap<String, VecDeque<Fault>>,
    /// Faults for every request of every file, after the per-file ones.
    every: Vec<Fault>,
    hits: HashMap<String, Vec<Instant>>,
    in_flight: usize,
    max_in_flight: usize,
    /// Conditional requests: (file, status answered).
    conditional: Vec<(String, u16)>,
}

/// Accepts connections on 127.0.0.1 (a free port) and runs `handle` on
/// each in a task of its own; returns the server's base URL.
pub(crate) async fn serve<F, Fut>(handle: F) -> String
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            if let Ok((sock, _)) = listener.accept().await {
                tokio::spawn(handle(sock));
            }
        }
    });
    base
}

/// Answers with `status` (`"404 Not Found"`), no body, `headers` (each
/// ending in CRLF) and closes.
async fn reply_empty(sock: &mut tokio::net::TcpStream, status: &str, headers: &str) {
    let reply = format!("HTTP/1.1 {status}\r\n{headers}Content-Length: 0\r\nConnection: close\r\n\r\n");
    let _ = sock.write_all(reply.as_bytes()).await;
}

/// An HTTP file server on 127.0.0.1 run by the test.
#[derive(Clone)]
pub struct Source {
    pub base: String,
    state: Arc<Mutex<SourceState>>,
}

impl Source {
    pub async fn start() -> Source {
        let state: Arc<Mutex<SourceState>> = Arc::default();
        let st = state.clone();
        let base = serve(move |mut sock| {
                let st = st.clone();
                async move {
                    let Some(head) = read_head(&mut sock).await else { return };
                    let path = head.split_whitespace().nth(1).unwrap_or("/").trim_start_matches('/').to_string();
                    let (body, fault) = {
                        let mut s = st.lock().unwrap();
                        s.hits.entry(path.clone()).or_default().push(Instant::now());
                        let fault =
                            s.faults.get_mut(&path).and_then(|q| q.pop_front()).or_else(|| s.every.first().cloned());
                        s.in_flight += 1;
                        s.max_in_flight = s.max_in_flight.max(s.in_flight);
                        (s.files.get(&path).cloned(), fault)
                    };
                    // Counts this request as in flight until the function returns.
                    struct Leave(Arc<Mutex<SourceState>>);
                    impl Drop for Leave {
                        fn drop(&mut self) {
                            self.0.lock().unwrap().in_flight -= 1;
                        }
                    }
                    let _leave = Leave(st.clone());
                    // Files carry an ETag (from their bytes) and answer If-None-Match.
                    let etag = body.as_ref().map(|b| format!("\"{}\"", &sha256_hex(b)[..16]));
                    let asked = header(&head, "if-none-match");
                    if let Some(asked) = asked {
                        let same = etag.as_deref() == Some(asked.as_str());
                        st.lock().unwrap().conditional.push((path.clone(), if same { 304 } else { 200 }));
                        if same {
                            reply_empty(&mut sock, "304 Not Modified", "").await;
                            return;
                        }
                    }
                    let Some(body) = body else {
                        reply_empty(&mut sock, "404 Not Found", "").await;
                        return;
                    };
                    let etag = etag.unwrap_or_default();
                    let head = |len: usize| {
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nETag: {etag}\r\nLast-Modified: Sat, 21 Nov 2026 09:00:00 GMT\r\nConnection: close\r\n\r\n"
                        )
                    };
                    match fault {
                        Some(Fault::Status(code)) => reply_empty(&mut sock, &format!("{code} Fault"), "").await,
                        Some(Fault::Throttle(secs)) => {
                            reply_empty(&mut sock, "429 Too Many Requests", &format!("Retry-After: {secs}\r\n")).await
                        }
                        Some(Fault::Truncate(k)) => {
                            let _ = sock.write_all(head(body.len()).as_bytes()).await;
                            let _ = sock.write_all(&body[..k.min(body.len())]).await;
                        }
                        Some(Fault::Slow(chunks, over)) => {
                            let _ = sock.write_all(head(body.len()).as_bytes()).await;
                            let size = body.len().div_ceil(chunks.max(1));
                            for (k, c) in body.chunks(size.max(1)).enumerate() {
                                if k > 0 {
                                    tokio::time::sleep(over / chunks as u32).await;
                                }
                                if sock.write_all(c).await.is_err() {
                                    return;
                                }
                            }
                        }
                        None => {
                            let _ = sock.write_all(head(body.len()).as_bytes()).await;
                            let _ = sock.write_all(&body).await;
                        }
                    }
                    drop(_leave); // the whole answer is written
                    let _ = sock.shutdown().await;
                }
            })
            .await;
        Source { base, state }
    }

    pub fn put(&self, name: &str, body: Vec<u8>) {
        self.state.lock().unwrap().files.insert(name.to_string(), body);
    }

    pub fn fault(&self, name: &str, faults: &[Fault]) {
        self.state.lock().unwrap().faults.entry(name.to_string()).or_default().extend(faults.iter().cloned());
    }

    /// Applies `fault` to every request (after any per-file faults).
    pub fn fault_every(&self, fault: Fault) {
        self.state.lock().unwrap().every = vec![fault];
    }

    /// Conditional requests so far: (file, status answered: 304 or 200).
    pub fn conditional(&self) -> Vec<(String, u16)> {
        self.state.lock().unwrap().conditional.clone()
    }

    /// The most requests served at once so far.
    pub fn max_in_flight(&self) -> usize {
        self.state.lock().unwrap().max_in_flight
    }

    /// Every request so far, in order of arrival.
    pub fn all_hits(&self) -> Vec<Instant> {
        let mut all: Vec<Instant> = self.state.lock().unwrap().hits.values().flatten().copied().collect();
        all.sort();
        all
    }

    /// Stops serving `name` (requests get 404).
    pub fn state_remove(&self, name: &str) {
        self.state.lock().unwrap().files.remove(name);
    }

    pub fn hits(&self, name: &str) -> Vec<Instant> {
        self.state.lock().unwrap().hits.get(name).cloned().unwrap_or_default()
    }
}

// ---------------------------------------------------------------- data

/// A small seeded PRNG (splitmix64).
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
}

pub const MTA_HEADER: &str = "C/A,UNIT,SCP,STATION,LINENAME,DIVISION,DATE,TIME,DESC,ENTRIES,EXITS                                                               ";

/// A weekly MTA turnstile file in the real layout: returns the bytes and the sum of ENTRIES.
pub fn mta_week(week: NaiveDate, rows: usize, seed: u64) -> (Vec<u8>, i64) {
    let stations = [
        ("59 ST", "NQR456W", "BMT"),
        ("B'WAY-LAFAYETTE", "BDFQ6", "IND"),
        ("LEXINGTON AV/53", "EM6", "IND"),
        ("ST. GEORGE", "1", "SRT"),
        ("GRD CNTRL-42 ST", "4567S", "IRT"),
        ("125 ST", "456", "IRT"),
    ];
    let mut rng = Rng::new(seed);
    let mut out = String::with_capacity(rows * 100);
    out.push_str(MTA_HEADER);
    out.push('\n');
    let mut sum = 0i64;
    for i in 0..rows {
        let (st, lines, div) = stations[rng.below(stations.len() as u64) as usize];
        let day = week - chrono::Days::new(6 - (i as u64 % 7));
        let entries = rng.below(3_500_000_000) as i64; // beyond Int32
        let exits = rng.below(2_000_000) as i64;
        sum += entries;
        let desc = if rng.below(10) == 0 { "RECOVR AUD" } else { "REGULAR" };
        out.push_str(&format!(
            "A{:03},R{:03},02-00-{:02},{st},{lines},{div},{},{:02}:00:00,{desc},{entries},{exits}\n",
            rng.below(999),
            rng.below(999),
            rng.below(8),
            day.format("%m/%d/%Y"),
            (i % 6) * 4
        ));
    }
    (out.into_bytes(), sum)
}

/// A date literal.
pub fn d(s: &str) -> NaiveDate {
    s.parse().unwrap()
}

/// The `i`-th Saturday from 2022-01-01.
pub fn week(i: u64) -> NaiveDate {
    NaiveDate::from_ymd_opt(2022, 1, 1).unwrap() + chrono::Days::new(7 * i)
}

/// Serves weeks `0..n` of `rows` rows (seeds from `seed`), each answering
/// with `faults` first; returns what the oracle expects in the lake.
pub fn serve_mta_weeks(src: &Source, n: u64, rows: usize, seed: u64, faults: &[Fault]) -> Vec<(String, usize, String)> {
    (0..n)
        .map(|i| {
            let (bytes, _) = mta_week(week(i), rows, seed + i);
            src.put(&mta_name(week(i)), bytes.clone());
            src.fault(&mta_name(week(i)), faults);
            mta_expect(week(i), rows, &bytes)
        })
        .collect()
}

/// Waits (bounded) until the worker has at least `n` tasks in flight.
pub async fn wait_in_flight(w: &WorkerProc, n: f64) {
    eventually(Duration::from_secs(10), "tasks in flight", || async {
        metric(&w.metrics().await, "lakefleet_tasks_in_flight", &[]) >= n
    })
    .await;
}

pub fn mta_name(week: NaiveDate) -> String {
    format!("turnstile_{}.txt", week.format("%y%m%d"))
}

pub fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

pub fn sha256_hex(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

/// All batches of a Parquet file, and its key-value metadata.
pub fn read_parquet(data: bytes::Bytes) -> (Vec<RecordBatch>, HashMap<String, String>) {
    let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(data).unwrap();
    let kv = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .map(|kv| kv.iter().map(|k| (k.key.clone(), k.value.clone().unwrap_or_default())).collect())
        .unwrap_or_default();
    let batches = builder.build().unwrap().collect::<Result<Vec<_>, _>>().unwrap();
    (batches, kv)
}

pub fn rows(batches: &[RecordBatch]) -> usize {
    batches.iter().map(|b| b.num_rows()).sum()
}

pub fn sum_i64(batches: &[RecordBatch], col: &str) -> i64 {
    batches
        .iter()
        .map(|b| {
            let a = b.column_by_name(col).unwrap().as_any().downcast_ref::<arrow_array::Int64Array>().unwrap();
            a.iter().flatten().sum::<i64>()
        })
        .sum()
}

pub fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join("lakefleet-tests").join(format!(
        "{name}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    ));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

// ---------------------------------------------------------------- S3

/// moto's S3 server (`moto_server` from PyPI), on a free loopback port.
pub struct S3Server {
    child: Child,
    pub endpoint: String,
    pub bucket: String,
}

impl S3Server {
    pub async fn start() -> S3Server {
        let port = free_port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server not found: pip install 'moto[server]' (the CI script does)");
        let endpoint = format!("http://127.0.0.1:{port}");
        let bucket = format!("lake-{}", COUNTER.fetch_add(1, Ordering::SeqCst));
        let client = reqwest::Client::new();
        let start = Instant::now();
        loop {
            if let Ok(r) = client.put(format!("{endpoint}/{bucket}")).send().await
                && r.status().is_success()
            {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(30), "moto_server did not start on {endpoint}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        S3Server { child, endpoint, bucket }
    }

    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT", self.endpoint.as_str()),
            ("AWS_ALLOW_HTTP", "true"),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_REGION", "us-east-1"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------- oracle

/// The end state every fault scenario must reach: each planned partition is
/// either in the lake exactly once (with its rows and source checksum) or
/// parked with the expected reason; nothing else is in the lake; the work and
/// retry queues are empty. Drains the parking queue.
pub async fn oracle(f: &Fleet, in_lake: &[(String, usize, String)], parked: &[(&str, &str)]) {
    let topo = f.topology();
    let objects = f.objects().await;
    let keys: Vec<&str> = objects.iter().map(|(k, _)| k.as_str()).collect();
    let mut want: Vec<&str> = in_lake.iter().map(|(k, _, _)| k.as_str()).collect();
    want.sort();
    assert_eq!(keys, want, "the lake holds exactly the expected objects");
    for (key, n, sha) in in_lake {
        let (batches, kv) = read_parquet(f.read_object(key).await);
        assert_eq!(rows(&batches), *n, "{key}");
        assert_eq!(&kv["lakefleet.source_sha256"], sha, "{key}");
    }
    // Where the dataset is a table, it holds exactly these objects, each
    // partition once, at its first generation unless refreshed.
    let lake = f.lake();
    let cat = lakefleet::catalog::Catalog::builtin();
    let mut datasets: Vec<&str> = in_lake.iter().filter_map(|(k, _, _)| k.split('/').next()).collect();
    datasets.dedup();
    for name in datasets {
        let Some(ds) = cat.get(name) else { continue };
        let snap = lakefleet::table::Table::new(&lake, ds).snapshot().await.unwrap();
        if snap.version.is_none() {
            continue;
        }
        let mut live: Vec<String> = snap.files.keys().map(|p| format!("{name}/{p}")).collect();
        live.sort();
        let mut want: Vec<&str> =
            in_lake.iter().map(|(k, _, _)| k.as_str()).filter(|k| k.starts_with(&format!("{name}/"))).collect();
        want.sort();
        assert_eq!(live, want, "the table of {name} holds exactly the expected objects");
        let partitions: std::collections::BTreeSet<_> = snap.files.values().map(|f| f.partition.clone()).collect();
        assert_eq!(partitions.len(), snap.files.len(), "one live file per partition in {name}");
    }
    let msgs = f.drain(&topo.parking).await;
    let mut got: Vec<(String, String)> = msgs
        .iter()
        .map(|d| {
            let h = d.properties.headers().as_ref();
            (
                lakefleet::topology::header_str(h, "x-lakefleet-partition").unwrap_or_default(),
                lakefleet::topology::header_str(h, "x-lakefleet-reason").unwrap_or_default(),
            )
        })
        .collect();
    got.sort();
    let mut want: Vec<(String, String)> = parked.iter().map(|(p, r)| (p.to_string(), r.to_string())).collect();
    want.sort();
    assert_eq!(got, want, "the parking queue holds exactly the expected tasks");
    for q in
        std::iter::once(topo.work.clone()).chain((0..lakefleet::topology::RETRY_LEVELS).map(|l| topo.retry_queue(l)))
    {
        assert_eq!(f.queue_len(&q).await, 0, "{q} is empty");
    }
}

/// Waits until the backfill printed in `out` has every partition done or parked.
/// The backfill id that `producer backfill` printed (`backfill bf-...: ...`).
pub fn backfill_id(out: &Output) -> String {
    let text = stdout(out);
    let id = text.split_whitespace().nth(1).unwrap_or_else(|| panic!("no backfill id in: {text}"));
    id.trim_end_matches(':').to_string()
}

pub async fn wait_finished(f: &Fleet, out: &Output, within: Duration) -> lakefleet::state::BackfillStatus {
    let id = backfill_id(out);
    let st = f.state().await;
    let start = Instant::now();
    loop {
        let s = st.backfill(&id).await.unwrap().unwrap();
        if s.finished() {
            return s;
        }
        assert!(start.elapsed() < within, "backfill {id} not finished after {within:?}: {s:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `(key, rows, sha256)` of an MTA week as the oracle expects it.
pub fn mta_expect(week: NaiveDate, rows: usize, bytes: &[u8]) -> (String, usize, String) {
    (format!("mta-turnstile/year={}/mta-turnstile_{}.parquet", week.format("%Y"), week), rows, sha256_hex(bytes))
}

// ---------------------------------------------------------------- faulty object store

/// An HTTP proxy in front of the S3 server that answers 500 to the next
/// `fail_puts` PUT requests and forwards everything else (one request per
/// connection).
pub struct FaultyProxy {
    pub endpoint: String,
    pub failed: Arc<AtomicU32>,
}

impl FaultyProxy {
    pub async fn start(target: &str, fail_puts: u32) -> FaultyProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let target = target.trim_start_matches("http://").to_string();
        let budget = Arc::new(AtomicU32::new(fail_puts));
        let failed = Arc::new(AtomicU32::new(0));
        let (b, fl) = (budget.clone(), failed.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else { continue };
                let (target, b, fl) = (target.clone(), b.clone(), fl.clone());
                tokio::spawn(async move {
                    // Request head.
                    let mut buf = Vec::new();
                    let mut tmp = [0u8; 8192];
                    let head_end = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        match client.read(&mut tmp).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&tmp[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                    let len: usize = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    while buf.len() < head_end + len {
                        match client.read(&mut tmp).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&tmp[..n]),
                        }
                    }
                    if head.starts_with("PUT ")
                        && b.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1)).is_ok()
                    {
                        fl.fetch_add(1, Ordering::SeqCst);
                        let body = "<Error><Code>InternalError</Code><Message>injected</Message></Error>";
                        let _ = client
                            .write_all(format!("HTTP/1.1 500 Internal Server Error\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).as_bytes())
                            .await;
                        return;
                    }
                    // Forward with "Connection: close" and relay the answer to EOF.
                    let mut lines: Vec<&str> = head[..head_end - 4]
                        .split("\r\n")
                        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
                        .collect();
                    lines.push("Connection: close");
                    let mut req = lines.join("\r\n").into_bytes();
                    req.extend_from_slice(b"\r\n\r\n");
                    req.extend_from_slice(&buf[head_end..]);
                    let Ok(mut up) = tokio::net::TcpStream::connect(&target).await else { return };
                    if up.write_all(&req).await.is_err() {
                        return;
                    }
                    let _ = tokio::io::copy(&mut up, &mut client).await;
                    let _ = client.shutdown().await;
                });
            }
        });
        FaultyProxy { endpoint, failed }
    }
}

// ---------------------------------------------------------------- hostile inputs

impl Fleet {
    /// Publishes `task` to the work queue as a producer would (confirmed).
    pub async fn publish_task(&self, task: &Task) {
        let conn = lakefleet::topology::connect(AMQP, "test").await.unwrap();
        let ch = lakefleet::topology::confirm_channel(&conn).await.unwrap();
        let topo = self.topology();
        topo.declare(&ch).await.unwrap();
        let headers = lakefleet::topology::headers(&lakefleet::parking::task_headers(task));
        lakefleet::topology::publish_confirmed(&ch, &topo.work, &task.encode(), headers).await.unwrap();
        let _ = conn.close(200, "".into()).await;
    }

    /// The parked messages' headers (drains the parking queue).
    pub async fn parked(&self) -> Vec<lakefleet::parking::ParkHeaders> {
        let msgs = self.drain(&self.topology().parking).await;
        msgs.iter()
            .map(|d| lakefleet::parking::ParkHeaders::from_table(d.properties.headers().as_ref(), None))
            .collect()
    }

    /// Uses the TOML catalog `toml` (written to a file) for every binary.
    pub fn with_catalog(mut self, toml: &str) -> Fleet {
        let path = tmpdir("catalog").join("catalog.toml");
        std::fs::write(&path, toml).unwrap();
        self.env.push(("LAKEFLEET_CATALOG".into(), path.to_str().unwrap().to_string()));
        self
    }
}

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
