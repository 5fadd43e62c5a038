//! One task, from delivery to ack: check the message against the catalog,
//! dedupe, lease, download, convert, upload, done marker; then the one
//! [`Outcome`] is settled and recorded.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use lakefleet::catalog::{Cadence, Catalog, Dataset};
use lakefleet::convert::{self, Provenance};
use lakefleet::failure::{Failure, Reason};
use lakefleet::lake::{Lake, Uploaded};
use lakefleet::metrics::{Metrics, stage};
use lakefleet::source::Fetcher;
use lakefleet::source::{FetchError, Opened};
use lakefleet::state::{DoneMarker, HOST_SLOT_HEARTBEAT, HOST_SLOT_TTL, HostLimits, State, TaskCheck};
use lakefleet::task::Task;
use lakefleet::text;
use lakefleet::topology::{Topology, header_str};
use lapin::Channel;
use lapin::message::Delivery;
use tracing::{info, warn};

use crate::outcome::{Done, Outcome};

tokio::task_local! {
    /// The task's share of `--concurrency`: given back when its object is
    /// written, before its table commit, so that the commit (object store
    /// round trips) overlaps the next task's conversion.
    pub static PERMIT: std::cell::RefCell<Option<tokio::sync::OwnedSemaphorePermit>>;
}

/// Everything a task needs, shared by all tasks of a worker.
pub struct Ctx {
    pub catalog: Catalog,
    pub state: State,
    pub lake: Lake,
    pub fetcher: Fetcher,
    pub metrics: Metrics,
    pub topo: Topology,
    pub worker_id: String,
    pub spool_dir: PathBuf,
    pub lease_ttl: Duration,
    /// A task still running after this is abandoned and retried, well inside
    /// RabbitMQ's consumer timeout (30 minutes by default).
    pub task_timeout: Duration,
    /// Deliveries without an ack before a task is parked as poison.
    pub poison_after: u32,
    /// Whether datasets (with `table = true`) are committed into their Delta tables.
    pub tables: bool,
    /// This worker's view of each dataset's table log, brought up to date
    /// before each commit (reads only the entries it has not seen).
    pub snapshots: tokio::sync::Mutex<std::collections::HashMap<String, lakefleet::table::Snapshot>>,
    /// Where a shutdown stands ([`Stop`]); tasks watch it.
    pub stop: tokio::sync::watch::Sender<Stop>,
}

/// A worker's shutdown, as its tasks see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    Running,
    /// SIGTERM: no new task or download starts; running work may finish.
    Draining,
    /// The grace is nearly over: unfinished tasks are handed back to the
    /// work queue (not counted as a failed delivery) now.
    HandBack,
}

impl Ctx {
    /// Waits, before a download starts, while the worker is shutting down:
    /// the task is then handed back at the end of the grace instead.
    async fn before_download(&self) {
        let mut stop = self.stop.subscribe();
        if *stop.borrow() != Stop::Running {
            let _ = stop.wait_for(|s| *s == Stop::HandBack).await;
            std::future::pending::<()>().await;
        }
    }
}

/// A task checked against the catalog: where its data comes from and goes,
/// derived from dataset and partition (and the backfill's mirror), never
/// taken from the message.
struct Checked<'a> {
    ds: &'a Dataset,
    date: NaiveDate,
    url: String,
    key: String,
}

/// A partition lease held by this worker: renewed in the background every
/// third of its TTL, released when dropped, so that a task that ends in any
/// way (done, failed, timed out, aborted at shutdown) frees its partition at
/// once instead of after the TTL.
struct Lease {
    ctx: Arc<Ctx>,
    dataset: String,
    partition: String,
    token: String,
    _renewer: AbortOnDrop,
}

impl Lease {
    fn hold(ctx: &Arc<Ctx>, dataset: &str, partition: &str, token: String) -> Lease {
        let (c, d, p, t) = (ctx.clone(), dataset.to_string(), partition.to_string(), token.clone());
        let renewer = tokio::spawn(async move {
            loop {
                tokio::time::sleep(c.lease_ttl / 3).await;
                if let Ok(false) = c.state.renew_lease(&d, &p, &t, c.lease_ttl).await {
                    warn!(partition = %p, "lease lost; the conditional upload still keeps the lake exactly-once");
                    break;
                }
            }
        });
        Lease {
            ctx: ctx.clone(),
            dataset: dataset.to_string(),
            partition: partition.to_string(),
            token,
            _renewer: AbortOnDrop(renewer),
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // The renewer is aborted when `_renewer` drops, right after this.
        let (ctx, d, p, t) = (self.ctx.clone(), self.dataset.clone(), self.partition.clone(), self.token.clone());
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                soft("releasing the lease", ctx.state.release_lease(&d, &p, &t).await);
            });
        }
    }
}

/// Aborts a background task when dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A download slot of a source host, taken fleet-wide through Redis: a
/// lease renewed every [`HOST_SLOT_HEARTBEAT`] while held and given back when
/// dropped; a worker that dies frees it within [`HOST_SLOT_TTL`].
struct HostSlot {
    ctx: Arc<Ctx>,
    host: String,
    token: String,
    _heartbeat: AbortOnDrop,
}

impl HostSlot {
    fn hold(ctx: &Arc<Ctx>, host: &str, token: String) -> HostSlot {
        let (c, h, t) = (ctx.clone(), host.to_string(), token.clone());
        let heartbeat = tokio::spawn(async move {
            loop {
                tokio::time::sleep(HOST_SLOT_HEARTBEAT).await;
                if let Ok(false) = c.state.renew_host_slot(&h, &t, HOST_SLOT_TTL).await {
                    warn!(host = %h, "host slot expired before its heartbeat (Redis restarted, or this worker stalled)");
                    break;
                }
            }
        });
        HostSlot { ctx: ctx.clone(), host: host.to_string(), token, _heartbeat: AbortOnDrop(heartbeat) }
    }

    /// Waits for the host's request rate (and pause) before one more request
    /// under this slot: a Socrata slice's next page.
    fn pace(&self, per_second: u32) -> lakefleet::source::Pace {
        let (ctx, host, token) = (self.ctx.clone(), self.host.clone(), self.token.clone());
        Arc::new(move || {
            let (ctx, host, token) = (ctx.clone(), host.clone(), token.clone());
            Box::pin(async move {
                while let Some(Some(wait)) =
                    soft("pacing a request", ctx.state.try_host_request(&host, &token, per_second).await)
                {
                    tokio::time::sleep(wait.min(Duration::from_secs(1))).await;
                }
            })
        })
    }
}

impl Drop for HostSlot {
    fn drop(&mut self) {
        let (ctx, host, token) = (self.ctx.clone(), self.host.clone(), self.token.clone());
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                soft("giving a host slot back", ctx.state.release_host_slot(&host, &token).await);
            });
        }
    }
}

/// Counts a task in `lakefleet_host_waiting_tasks` while it waits, however
/// the wait ends (a slot, a delay, or the task abandoned at its timeout).
struct Waiting(Option<prometheus::IntGauge>);

impl Waiting {
    fn start(&mut self, g: &prometheus::IntGauge) {
        if self.0.is_none() {
            g.inc();
            self.0 = Some(g.clone());
        }
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if let Some(g) = self.0.take() {
            g.dec();
        }
    }
}

/// How long a task waits in place for a host slot before it is delayed
/// through a retry queue instead (a quarter of the task timeout at most):
/// waiting for a host never uses up a task's timeout or its attempts.
const HOST_WAIT_IN_PLACE: Duration = Duration::from_secs(30);

/// Waits for a download slot of `host` within the dataset's limits: `Ok(None)`
/// when Redis is unavailable (the download then goes ahead: politeness must
/// not stop the fleet); `Err` when the host is paused for longer than the
/// wait in place, or still full after it: the task is delayed (not an
/// attempt) and comes back when the host may have room.
async fn host_slot(ctx: &Arc<Ctx>, ds: &Dataset, host: &str) -> Result<Option<HostSlot>, Done> {
    let token = format!("{}:{}", ctx.worker_id, uuid_like());
    let limits = HostLimits {
        concurrent: ds.max_downloads_per_host,
        per_second: ds.max_requests_per_second_per_host,
        slot_ttl: HOST_SLOT_TTL,
    };
    let in_place = HOST_WAIT_IN_PLACE.min(ctx.task_timeout / 4);
    let started = Instant::now();
    let mut waiting = Waiting(None);
    loop {
        match soft("taking a host slot", ctx.state.try_host_slot(host, &token, limits).await) {
            Some(Some(wait)) => {
                waiting.start(&ctx.metrics.host_waiting.with_label_values(&[host]));
                let waited = started.elapsed();
                if waited + wait > in_place {
                    let why = match wait > Duration::from_secs(1) {
                        true => format!("source host {host} is paused for {}s more (Retry-After)", wait.as_secs()),
                        false => format!(
                            "source host {host} is busy: {} downloads at once, or {} starts per second, used by the fleet for {}s",
                            limits.concurrent,
                            limits.per_second,
                            waited.as_secs()
                        ),
                    };
                    return Err(Done::HostBusy { delay: wait, why });
                }
                tokio::time::sleep(wait.min(Duration::from_secs(1))).await;
            }
            Some(None) => return Ok(Some(HostSlot::hold(ctx, host, token))),
            None => return Ok(None),
        }
    }
}

/// A 429 (or 503) with Retry-After pauses its host for the whole fleet, for
/// at most the dataset's `max_retry_after_seconds` (the cap is logged with
/// the value asked for); the task's own retry waits no longer either.
async fn throttled<T>(ctx: &Ctx, ds: &Dataset, host: &str, mut r: Result<T, FetchError>) -> Result<T, FetchError> {
    if let Err(FetchError::Status { status: 429 | 503, retry_after: Some(d), .. }) = &mut r {
        let cap = Duration::from_secs(ds.max_retry_after_seconds);
        if *d > cap {
            warn!(
                host,
                asked_s = d.as_secs(),
                cap_s = cap.as_secs(),
                "Retry-After longer than the dataset's max_retry_after_seconds: capped"
            );
            *d = cap;
        }
        ctx.metrics.host_throttled.with_label_values(&[host]).inc();
        warn!(host, pause_s = d.as_secs_f64(), "source host throttled: paused for the whole fleet");
        soft("pausing the host", ctx.state.pause_host(host, *d).await);
    }
    r
}

/// Removes the spool file however the task ends.
struct Spool(PathBuf);

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Whether `date` is the newest partition the source should have (a 404 then
/// likely means "not published yet").
fn is_recent(ds: &Dataset, date: NaiveDate) -> bool {
    let latest = lakefleet::plan::latest_published(ds, chrono::Local::now().date_naive());
    let window = match ds.cadence {
        Cadence::Daily => chrono::Days::new(1),
        Cadence::Weekly => chrono::Days::new(7),
        Cadence::Monthly => chrono::Days::new(31),
    };
    date + window > latest
}

/// How many times this delivery was made without an ack: the quorum queue's
/// `x-delivery-count`, or 1 for a redelivery of a queue that does not count.
fn unacked_deliveries(d: &Delivery) -> u32 {
    let counted = header_str(d.properties.headers().as_ref(), "x-delivery-count").and_then(|c| c.parse().ok());
    counted.unwrap_or(0).max(d.redelivered as u32)
}

/// Handles one delivery to its end: decide, settle, record.
pub async fn handle(ctx: Arc<Ctx>, publish: Channel, delivery: Delivery) {
    let start = Instant::now();
    ctx.metrics.in_flight.inc();
    let (task, outcome, redeliveries) = match Task::decode(&delivery.data) {
        Err(e) => (None, Outcome::parked(Reason::BadMessage, e.to_string()), 0),
        Ok(task) => {
            let redeliveries = task.redeliveries.saturating_add(unacked_deliveries(&delivery));
            let mut stop = ctx.stop.subscribe();
            let outcome = if redeliveries >= ctx.poison_after {
                poison(&ctx, &task, redeliveries).await
            } else if *stop.borrow() != Stop::Running {
                // Delivered (prefetched) after the shutdown began: not started.
                Outcome::HandedBack
            } else {
                let run = tokio::time::timeout(ctx.task_timeout, run_task(&ctx, &task));
                tokio::select! {
                    r = run => {
                        let result = match r {
                            Ok(r) => r,
                            Err(_) => Err(Failure::transient(format!(
                                "{}: gave up after --task-timeout {}s (slow source?)",
                                task.label(),
                                ctx.task_timeout.as_secs()
                            ))),
                        };
                        Outcome::decide(result, &task, &ctx)
                    }
                    // The grace is nearly over: the task's future is dropped
                    // (its download stops, its lease and host slot go back).
                    _ = stop.wait_for(|s| *s == Stop::HandBack) => Outcome::HandedBack,
                }
            };
            (Some(task), outcome, redeliveries)
        }
    };
    let dataset = match &task {
        Some(t) if ctx.catalog.get(&t.dataset).is_some() => t.dataset.as_str(),
        _ => "unknown",
    };
    let settled = outcome.settle(&ctx, &publish, &delivery, task.as_ref(), redeliveries).await;
    outcome.record(&ctx, task.as_ref(), dataset, &settled, start.elapsed()).await;
    ctx.metrics.in_flight.dec();
}

/// The outcome of a task that workers keep dying on: parked, with the last
/// thing known about it (the worker that held its lease).
async fn poison(ctx: &Ctx, task: &Task, redeliveries: u32) -> Outcome {
    let holder = soft("reading the lease", ctx.state.lease_holder(&task.dataset, &task.partition).await).flatten();
    let last = match holder {
        Some(h) => format!("; its lease is still held by {} (that worker died on it?)", text::bounded(&h, 200)),
        None => String::new(),
    };
    Outcome::parked(
        Reason::Poison,
        format!(
            "{} was delivered {redeliveries} times without an ack: workers crashed or were killed while working on it{last}; look at the source before replaying it",
            task.label()
        ),
    )
}

/// Redis is an optimisation: when it fails, log and carry on (the lake write
/// is what keeps the result exactly-once).
fn soft<T>(what: &str, r: redis::RedisResult<T>) -> Option<T> {
    match r {
        Ok(v) => Some(v),
        Err(e) => {
            warn!(error = %e, "Redis unavailable while {what}; continuing without it");
            None
        }
    }
}

/// The message against the catalog: a known dataset, a real partition of
/// it, an http(s) mirror, and the URL and key the catalog derives.
fn check<'a>(ctx: &'a Ctx, task: &Task) -> Result<Checked<'a>, Failure> {
    let bad = |m: String| Failure::permanent(Reason::BadMessage, m);
    let ds = ctx.catalog.get(&task.dataset).ok_or_else(|| {
        bad(format!("unknown dataset {} (not in this worker's catalog)", text::quote(task.dataset.as_bytes())))
    })?;
    let date: NaiveDate = task
        .partition
        .parse()
        .map_err(|_| bad(format!("partition {} is not a date", text::quote(task.partition.as_bytes()))))?;
    ds.check_partition(date).map_err(bad)?;
    if let Some(m) = &task.mirror
        && !lakefleet::source::is_http(m)
    {
        return Err(bad(format!("mirror {} is not an http(s) URL", text::quote(m.as_bytes()))));
    }
    let url = ds.fetch_url(date, task.mirror.as_deref());
    let key = ds.object_key(date);
    for (what, sent, derived) in [("source_url", &task.source_url, &url), ("object_key", &task.object_key, &key)] {
        if sent != derived {
            return Err(bad(format!(
                "the message's {what} {} disagrees with the catalog's {derived:?} for {}",
                text::quote(sent.as_bytes()),
                task.label()
            )));
        }
    }
    Ok(Checked { ds, date, url, key })
}

/// Whether the lake's manifest of backfill `id` names `mirror` (an
/// unreadable manifest says no).
async fn manifest_mirror_is(ctx: &Ctx, id: &str, mirror: &str) -> bool {
    match lakefleet::manifest::BackfillManifest::read(&ctx.lake, id).await {
        Ok(Some(m)) => m.mirror.as_deref() == Some(mirror),
        Ok(None) => false,
        Err(e) => {
            tracing::warn!(backfill = %id, error = %e, "reading the backfill's manifest");
            false
        }
    }
}

async fn run_task(ctx: &Arc<Ctx>, task: &Task) -> Result<Done, Failure> {
    let checked = check(ctx, task)?;
    let (dsn, part) = (task.dataset.as_str(), task.partition.as_str());
    let dedupe = !task.overwrite && !task.refresh;
    match soft("checking the done marker", ctx.state.check_task(dsn, part, &task.backfill_id, dedupe).await) {
        Some(TaskCheck::Cancelled) => return Ok(Done::Cancelled),
        Some(TaskCheck::Done) => return Ok(Done::Skipped),
        _ => {}
    }
    // The producer validated the mirror and recorded it with the backfill.
    // Redis may have forgotten the backfill (or kept only a counter a retry
    // wrote): the lake's manifest of the backfill is what lasts.
    if let Some(mirror) = &task.mirror
        && let Some(Some(recorded)) = soft("reading the backfill", ctx.state.backfill_mirror(&task.backfill_id).await)
        && recorded.as_deref() != Some(mirror.as_str())
        && !manifest_mirror_is(ctx, &task.backfill_id, mirror).await
    {
        return Err(Failure::permanent(
            Reason::BadMessage,
            format!(
                "the message's mirror {} is not backfill {}'s ({})",
                text::quote(mirror.as_bytes()),
                text::bounded(&task.backfill_id, 100),
                recorded.as_deref().unwrap_or("none")
            ),
        ));
    }
    let token = format!("{}:{}", ctx.worker_id, uuid_like());
    let leased = soft("taking the lease", ctx.state.try_lease(dsn, part, &token, ctx.lease_ttl).await);
    if leased == Some(false) {
        return Ok(Done::LeaseHeld);
    }
    // Released when this future ends, however it ends (also on timeout or shutdown).
    let _lease = leased.map(|_| Lease::hold(ctx, dsn, part, token));
    // The table knows which generation of the partition it holds: a first
    // load it records already is done (Redis may have forgotten it); a
    // refresh writes the next generation under a new key.
    let mut checked = checked;
    let generation = match ctx.tables && checked.ds.table {
        // Plain files: never under a folder that is a table (a refresh
        // would replace an object the log references in place).
        false => {
            if lakefleet::table::Table::new(&ctx.lake, checked.ds).has_log().await? {
                return Err(Failure::permanent(
                    Reason::TableUnsupported,
                    format!(
                        "{}: the dataset's folder is a Delta table, and this worker writes plain files ({}); nothing was written: run workers with tables for this dataset, then replay the task (producer dlq replay)",
                        ctx.lake.display(&checked.ds.name),
                        if ctx.tables { "its catalog says table = false" } else { "it was started with --no-tables" }
                    ),
                ));
            }
            None
        }
        true => {
            let current = table_generation(ctx, checked.ds, part, task.refresh || task.overwrite).await?;
            if current >= 1 && !task.refresh && !task.overwrite {
                info!(task = %task.label(), generation = current, "already in the dataset's table: nothing to do");
                soft("recording the skip", ctx.state.record_unchanged(&task.backfill_id, part).await);
                return Ok(Done::Skipped);
            }
            let generation = if task.refresh || task.overwrite { current + 1 } else { 1 };
            checked.key = checked.ds.object_key_gen(checked.date, generation);
            Some(generation)
        }
    };
    // A refresh compares with what was ingested: with a table, what the
    // table's current generation was made from (its object's footer);
    // without one (or a footer without it), the done marker.
    let before = match (task.refresh, generation) {
        (false, _) => None,
        (true, Some(next)) if next > 1 => {
            let current = checked.ds.object_key_gen(checked.date, next - 1);
            match made_from(ctx, &current).await {
                Some(m) => Some(m),
                None => soft("reading the done marker", ctx.state.done_marker(dsn, part).await)
                    .flatten()
                    .filter(|m| m.object_key == current),
            }
        }
        (true, _) => soft("reading the done marker", ctx.state.done_marker(dsn, part).await).flatten(),
    };
    match convert_and_upload(ctx, &checked, task, before.as_ref(), generation).await? {
        Ingest::HostBusy(busy) => Ok(busy),
        Ingest::Unchanged(how) => {
            info!(task = %task.label(), how, "refresh: the source is unchanged; nothing downloaded or written");
            // The marker says what the current generation was made from
            // (again, if Redis had forgotten it).
            if let Some(b) = &before {
                soft("writing the done marker", ctx.state.mark_done(dsn, part, b).await);
            }
            soft("recording the skip", ctx.state.record_unchanged(&task.backfill_id, part).await);
            Ok(Done::Skipped)
        }
        Ingest::Uploaded(uploaded, marker) => {
            if let Some(b) = &before {
                ctx.metrics.sources_changed.with_label_values(&[dsn]).inc();
                warn!(
                    task = %task.label(),
                    old_sha256 = %b.sha256,
                    new_sha256 = %marker.sha256,
                    old_etag = b.source.etag.as_deref().unwrap_or(""),
                    new_etag = marker.source.etag.as_deref().unwrap_or(""),
                    "refresh: the source changed; its object was replaced"
                );
            }
            soft("writing the done marker", ctx.state.mark_done(dsn, part, &marker).await);
            Ok(Done::Converted { uploaded })
        }
    }
}

/// What the object `key` was made from, as its footer says (the checksum
/// and validators of its source); `None` when it is not there or its footer
/// does not say (a warning: the refresh then asks without validators).
async fn made_from(ctx: &Ctx, key: &str) -> Option<DoneMarker> {
    use lakefleet::convert::meta;
    let found = async {
        let head = ctx.lake.head(key).await?.ok_or_else(|| anyhow::anyhow!("no such object"))?;
        let footer = ctx.lake.parquet_metadata(key, head.size).await?;
        let fm = footer.file_metadata();
        let kv: std::collections::HashMap<&str, &str> = fm
            .key_value_metadata()
            .into_iter()
            .flatten()
            .filter_map(|kv| Some((kv.key.as_str(), kv.value.as_deref()?)))
            .collect();
        let text = |k: &str| kv.get(k).filter(|v| !v.is_empty()).map(|v| v.to_string());
        let sha256 =
            text(meta::SOURCE_SHA256).ok_or_else(|| anyhow::anyhow!("its footer has no {}", meta::SOURCE_SHA256))?;
        Ok::<_, anyhow::Error>(DoneMarker {
            object_key: key.to_string(),
            size: head.size,
            rows: fm.num_rows().max(0) as u64,
            sha256,
            source: lakefleet::source::Validators {
                etag: text(meta::SOURCE_ETAG),
                last_modified: text(meta::SOURCE_LAST_MODIFIED),
                content_length: None,
            },
        })
    };
    match found.await {
        Ok(m) => Some(m),
        Err(e) => {
            warn!(object = %ctx.lake.display(key), error = %format!("{e:#}"), "refresh: what the table's current generation was made from is unknown; the done marker is used if it names that object");
            None
        }
    }
}

/// What an ingest did.
enum Ingest {
    Uploaded(Uploaded, DoneMarker),
    /// A refresh found the source as it was: `304` (not downloaded) or the
    /// same checksum (downloaded, not written).
    Unchanged(&'static str),
    /// The source host is paused or full: delayed, not an attempt.
    HostBusy(Done),
}

/// `{pid}-{n}`: unique within this host's processes.
fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!("{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// Removes spool files left by workers of this host that died without
/// cleaning up (`kill -9`, OOM): `lakefleet-{pid}-{n}.parquet` (or
/// `.source`) whose process is gone. Returns how many were removed.
pub fn clean_spool(dir: &std::path::Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    let mut removed = 0;
    for e in entries.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) =
            name.strip_prefix("lakefleet-").and_then(|r| r.split('-').next()).and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if (name.ends_with(".parquet") || name.ends_with(".source"))
            && pid != std::process::id()
            && !std::path::Path::new(&format!("/proc/{pid}")).exists()
            && std::fs::remove_file(e.path()).is_ok()
        {
            removed += 1;
        }
    }
    removed
}

/// The generation of `partition` that `ds`'s table records (0: none), as
/// this worker's view of the log says; read up to date first when the view
/// is empty or `exact` (a refresh picks the next generation from it). A
/// stale view only costs a conversion the commit then finds done.
async fn table_generation(ctx: &Ctx, ds: &Dataset, partition: &str, exact: bool) -> Result<u64, Failure> {
    let mut snaps = ctx.snapshots.lock().await;
    let snap = snaps.entry(ds.name.clone()).or_default();
    let table = lakefleet::table::Table::new(&ctx.lake, ds);
    if exact || snap.version.is_none() {
        table.refresh(snap).await?;
    }
    let snap = snap.clone();
    drop(snaps);
    Ok(table.generation(&snap, partition).await?)
}

/// Commits the partition's object into its dataset's table, exactly once.
async fn commit(
    ctx: &Ctx,
    c: &Checked<'_>,
    task: &Task,
    generation: u64,
    (size, rows): (u64, u64),
    stats: Option<String>,
) -> Result<(), Failure> {
    use lakefleet::metrics::table_outcome as outcome;
    use lakefleet::table::{Committed, PartitionCommit, Table, TableError};
    let (m, ds) = (&ctx.metrics, c.ds.name.as_str());
    let pc = PartitionCommit {
        partition: task.partition.clone(),
        key: c.key.clone(),
        size,
        rows,
        generation,
        year: chrono::Datelike::year(&c.date),
        stats,
    };
    // A test hook: a pause between the object's upload and its commit, so
    // that a test can kill the worker there (`LAKEFLEET_TEST_PAUSE_BEFORE_COMMIT_MS`).
    if let Some(ms) = std::env::var("LAKEFLEET_TEST_PAUSE_BEFORE_COMMIT_MS").ok().and_then(|v| v.parse().ok()) {
        info!(task = %task.label(), pause_ms = ms, "uploaded; pausing before the commit (test hook)");
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let start = Instant::now();
    let mut snaps = ctx.snapshots.lock().await;
    let snap = snaps.entry(c.ds.name.clone()).or_default();
    let result = Table::new(&ctx.lake, c.ds).commit(snap, &pc).await;
    drop(snaps);
    match result {
        Ok(Committed::Written { version, attempts }) => {
            m.table_commits.with_label_values(&[ds, outcome::COMMITTED]).inc();
            m.table_commit_attempts.with_label_values(&[ds]).observe(attempts as f64);
            m.table_commit_seconds.with_label_values(&[ds]).observe(start.elapsed().as_secs_f64());
            info!(task = %task.label(), version, attempts, generation, "committed into the dataset's table");
            Ok(())
        }
        Ok(Committed::AlreadyCommitted { attempts }) => {
            m.table_commits.with_label_values(&[ds, outcome::ALREADY_COMMITTED]).inc();
            m.table_commit_attempts.with_label_values(&[ds]).observe(attempts as f64);
            info!(task = %task.label(), generation, "the table already records this generation of the partition");
            Ok(())
        }
        Err(e) => {
            let o = if matches!(e, TableError::Contention { .. }) { outcome::CONTENTION } else { outcome::FAILED };
            m.table_commits.with_label_values(&[ds, o]).inc();
            Err(Failure::from(e))
        }
    }
}

async fn convert_and_upload(
    ctx: &Arc<Ctx>,
    c: &Checked<'_>,
    task: &Task,
    before: Option<&DoneMarker>,
    generation: Option<u64>,
) -> Result<Ingest, Failure> {
    let (m, ds) = (&ctx.metrics, c.ds);
    let dl_start = Instant::now();
    let bytes_counter = m.source_bytes.with_label_values(&[&ds.name]);
    let on_chunk = move |n: usize| bytes_counter.inc_by(n as u64);
    // No download starts once the worker is shutting down.
    ctx.before_download().await;
    // Held until the download ends: the fleet's limits per source host.
    let host = ds.source_host(c.date, task.mirror.as_deref());
    let slot = match host_slot(ctx, ds, &host).await {
        Ok(slot) => slot,
        Err(busy) => return Ok(Ingest::HostBusy(busy)),
    };
    // A Socrata slice: its count first, then its pages (a 404 there is an
    // unknown dataset id, not a partition still to be published).
    let (download, counted) = match ds.socrata_query(c.date, task.mirror.as_deref()) {
        Some(q) => {
            let fetch = |e| Failure::from_fetch(e, false);
            let count = throttled(ctx, ds, &host, ctx.fetcher.socrata_count(&q).await).await.map_err(fetch)?;
            if count > ds.max_slice_rows {
                return Err(Failure::permanent(
                    Reason::TooLarge,
                    format!(
                        "{}: count(*) says the slice holds {count} rows, more than the dataset's max_slice_rows {}; no page was asked for (a portal whose count is wrong, or raise max_slice_rows)",
                        q.count_url(),
                        ds.max_slice_rows
                    ),
                ));
            }
            let page_rows = ds.socrata.as_ref().map_or(50_000, |s| s.page_rows) as u64;
            let pace = match &slot {
                Some(s) => s.pace(ds.max_requests_per_second_per_host),
                None => lakefleet::source::unpaced(),
            };
            let mut pages = ctx.fetcher.socrata_pages(&q, count, page_rows, pace.clone(), on_chunk.clone()).await;
            // The portal refused the query: the dataset id may spell some
            // fields the old way (data.ny.gov's 2014 turnstile set).
            if let (Err(FetchError::Status { status: 400, detail, .. }), Some(old)) = (&pages, q.aliased()) {
                info!(task = %task.label(), portal = detail.as_deref().unwrap_or(""), select = %old.select.join(","), "query refused: asking again with the id's older field names");
                pages = ctx.fetcher.socrata_pages(&old, count, page_rows, pace, on_chunk).await;
            }
            (throttled(ctx, ds, &host, pages).await.map_err(fetch)?, Some(count))
        }
        None => {
            let fetch = |e| Failure::from_fetch(e, is_recent(ds, c.date));
            let since = before.map(|b| &b.source).filter(|v| v.usable());
            match throttled(ctx, ds, &host, ctx.fetcher.open_if_changed(&c.url, since, on_chunk).await)
                .await
                .map_err(fetch)?
            {
                Opened::Body(d) => (d, None),
                Opened::NotModified => return Ok(Ingest::Unchanged("304 Not Modified")),
            }
        }
    };
    let validators = download.validators.clone();

    let name = format!("lakefleet-{}", uuid_like());
    let spool = Spool(ctx.spool_dir.join(format!("{name}.parquet")));
    // A Parquet source is spooled whole before it is read (its footer comes last).
    let source_spool = Spool(ctx.spool_dir.join(format!("{name}.source")));
    let file = std::fs::File::create(&spool.0)
        .map_err(|e| Failure::transient(format!("creating spool file {}: {e}", spool.0.display())))?;
    let ds2 = ds.clone();
    let prov = Provenance {
        source_url: c.url.clone(),
        partition: task.partition.clone(),
        date: Some(c.date),
        validators: validators.clone(),
    };
    let convert_start = Instant::now();
    let (reader, pump, expected) = (download.reader, download.pump, download.content_length);
    let source_path = source_spool.0.clone();
    let conv = tokio::task::spawn_blocking(move || {
        let out = std::io::BufWriter::with_capacity(1 << 20, file);
        convert::convert_source(&ds2, reader, expected, &source_path, out, &prov)
    });
    // Stopped if this task is abandoned (timeout, shutdown): the conversion
    // thread then sees the end of its input and stops too.
    let mut pump = AbortOnDrop(pump);
    let _ = (&mut pump.0).await;
    drop(slot);
    m.stage_duration.with_label_values(&[&ds.name, stage::DOWNLOAD]).observe(dl_start.elapsed().as_secs_f64());
    let stats =
        conv.await.map_err(|e| Failure::transient(format!("conversion thread failed: {e}")))?.map_err(Failure::from)?;
    m.stage_duration.with_label_values(&[&ds.name, stage::CONVERT]).observe(convert_start.elapsed().as_secs_f64());
    drop(source_spool);
    if let Some(count) = counted
        && stats.rows != count
    {
        return Err(Failure::transient(format!(
            "{}: the slice changed while it was read: count(*) said {count} rows, its pages held {}; it is read again",
            c.url, stats.rows
        )));
    }

    if before.is_some_and(|b| b.sha256 == stats.source_sha256) {
        return Ok(Ingest::Unchanged("same checksum"));
    }
    let size = std::fs::metadata(&spool.0)
        .map_err(|e| Failure::transient(format!("reading spool file {}: {e}", spool.0.display())))?
        .len();
    let up_start = Instant::now();
    // Without a table, a refresh replaces the object in one step (a single
    // PUT, or a completed multipart upload): readers see the old object or
    // the new one. With a table, every generation has its own key.
    let existing = match generation {
        Some(_) => lakefleet::lake::Existing::Replace,
        None if task.overwrite || task.refresh => lakefleet::lake::Existing::Overwrite,
        None => lakefleet::lake::Existing::Adopt,
    };
    let uploaded = ctx.lake.upload_file(&c.key, &spool.0, size, existing).await?;
    m.stage_duration.with_label_values(&[&ds.name, stage::UPLOAD]).observe(up_start.elapsed().as_secs_f64());
    let result = match uploaded {
        Uploaded::Written => "written",
        Uploaded::AlreadyPresent => "already_present",
    };
    m.uploads.with_label_values(&[&ds.name, result]).inc();
    if uploaded == Uploaded::Written {
        m.rows_written.with_label_values(&[&ds.name]).inc_by(stats.rows);
        m.parquet_bytes.with_label_values(&[&ds.name]).inc_by(size);
    }
    // The Add's statistics come from the object's own footer (still in the spool).
    let add_stats = generation.and_then(|_| lakefleet::table::stats::of_file(&spool.0));
    drop(spool);
    // The done marker comes after the commit.
    if let Some(g) = generation {
        let _ = PERMIT.try_with(|p| p.borrow_mut().take());
        commit(ctx, c, task, g, (size, stats.rows), add_stats).await?;
    }
    let marker = DoneMarker {
        object_key: c.key.clone(),
        size,
        rows: stats.rows,
        sha256: stats.source_sha256,
        source: validators,
    };
    Ok(Ingest::Uploaded(uploaded, marker))
}
