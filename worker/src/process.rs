//! One task, from delivery to ack: dedupe, lease, download, convert, upload,
//! done marker; or retry / park through the one failure decision.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use lakefleet::catalog::{Cadence, Catalog, Dataset};
use lakefleet::convert::{self, meta};
use lakefleet::failure::{Failure, Reason};
use lakefleet::lake::{Lake, Uploaded};
use lakefleet::metrics::{Metrics, outcome, stage};
use lakefleet::source::Fetcher;
use lakefleet::state::{DoneMarker, State};
use lakefleet::task::Task;
use lakefleet::topology::{self, Topology};
use lapin::Channel;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicNackOptions};
use tracing::{info, warn};

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
}

/// A successful end of a task.
enum Done {
    Converted { uploaded: Uploaded },
    Skipped,
    LeaseHeld,
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

/// Removes the spool file however the task ends.
struct Spool(PathBuf);

impl Drop for Spool {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Whether `partition` is the newest one the source should have (a 404 then
/// likely means "not published yet").
fn is_recent(ds: &Dataset, partition: &str) -> bool {
    let Ok(date) = partition.parse::<chrono::NaiveDate>() else {
        return false;
    };
    let latest = lakefleet::plan::latest_published(ds, chrono::Local::now().date_naive());
    let window = match ds.cadence {
        Cadence::Weekly => chrono::Days::new(7),
        Cadence::Monthly => chrono::Days::new(31),
    };
    date + window > latest
}

/// Handles one delivery to its end: ack, retry, park, or (when even that
/// fails) nack back to the queue.
pub async fn handle(ctx: Arc<Ctx>, publish: Channel, delivery: Delivery) {
    let start = Instant::now();
    ctx.metrics.in_flight.inc();
    let task = match Task::decode(&delivery.data) {
        Ok(t) => t,
        Err(e) => {
            warn!(error = %e, "parking an unreadable message");
            let failure = Failure::Permanent { reason: Reason::BadMessage, message: e.to_string() };
            let label = "unknown".to_string();
            settle_park(&ctx, &publish, &delivery, None, &label, &failure, 1).await;
            ctx.metrics.in_flight.dec();
            return;
        }
    };
    let ds_label = if ctx.catalog.get(&task.dataset).is_some() { task.dataset.clone() } else { "unknown".into() };
    let result = match tokio::time::timeout(ctx.task_timeout, run_task(&ctx, &task)).await {
        Ok(r) => r,
        Err(_) => Err(Failure::transient(format!(
            "{}: gave up after --task-timeout {}s (slow source?)",
            task.source_url,
            ctx.task_timeout.as_secs()
        ))),
    };
    match result {
        Ok(Done::Converted { uploaded }) => {
            if ack(&delivery).await {
                ctx.metrics.tasks.with_label_values(&[&ds_label, outcome::SUCCEEDED]).inc();
                info!(task = %task.label(), ?uploaded, secs = start.elapsed().as_secs_f64(), "done");
            }
        }
        Ok(Done::Skipped) => {
            if ack(&delivery).await {
                ctx.metrics.tasks.with_label_values(&[&ds_label, outcome::SKIPPED_DUPLICATE]).inc();
                info!(task = %task.label(), "skipped: already done");
            }
        }
        Ok(Done::LeaseHeld) => {
            // Another worker converts it now: delay, do not drop, do not count an attempt.
            ctx.metrics.lease_conflicts.with_label_values(&[&ds_label]).inc();
            let q = ctx.topo.retry_queue(0);
            match topology::publish_confirmed(&publish, &q, &task.encode(), task_headers(&task, &[])).await {
                Ok(()) => {
                    ack(&delivery).await;
                }
                Err(e) => nack(&ctx, &delivery, &ds_label, &format!("delaying {}: {e}", task.label())).await,
            }
        }
        Err(Failure::Transient { message, retry_after }) if task.attempt < ctx.topo.max_attempts => {
            let level = ctx.topo.retry_level(task.attempt, retry_after);
            let mut next = task.clone();
            next.attempt += 1;
            let q = ctx.topo.retry_queue(level);
            let hdr = task_headers(&next, &[("x-lakefleet-last-error", message.clone())]);
            match topology::publish_confirmed(&publish, &q, &next.encode(), hdr).await {
                Ok(()) => {
                    if ack(&delivery).await {
                        ctx.metrics.tasks.with_label_values(&[&ds_label, outcome::RETRIED]).inc();
                        if let Err(e) = ctx.state.record_retry(&task.backfill_id).await {
                            warn!(error = %e, "Redis: counting a retry");
                        }
                        warn!(task = %task.label(), attempt = task.attempt, delay_ms = ctx.topo.retry_delay(level).as_millis() as u64, error = %message, "retrying");
                    }
                }
                Err(e) => {
                    nack(&ctx, &delivery, &ds_label, &format!("scheduling a retry of {}: {e}", task.label())).await
                }
            }
        }
        Err(Failure::Transient { message, .. }) => {
            let f = Failure::Permanent {
                reason: Reason::AttemptsExhausted,
                message: format!("gave up after {} attempts: {message}", task.attempt),
            };
            settle_park(&ctx, &publish, &delivery, Some(&task), &ds_label, &f, task.attempt).await;
        }
        Err(f @ Failure::Permanent { .. }) => {
            settle_park(&ctx, &publish, &delivery, Some(&task), &ds_label, &f, task.attempt).await;
        }
    }
    ctx.metrics.task_duration.with_label_values(&[&ds_label]).observe(start.elapsed().as_secs_f64());
    ctx.metrics.in_flight.dec();
}

fn task_headers(t: &Task, extra: &[(&'static str, String)]) -> lapin::types::FieldTable {
    let mut pairs = t.header_pairs().to_vec();
    pairs.extend_from_slice(extra);
    topology::headers(&pairs)
}

/// `true` when the broker took the ack. `false` means the channel died: the
/// delivery will come again (and be deduped).
async fn ack(d: &Delivery) -> bool {
    match d.ack(BasicAckOptions::default()).await {
        Ok(true) => true,
        Ok(false) | Err(_) => {
            warn!("ack not delivered (channel closed); the task will be redelivered and deduped");
            false
        }
    }
}

async fn nack(ctx: &Ctx, d: &Delivery, ds: &str, why: &str) {
    warn!(error = why, "returning the delivery to the queue");
    ctx.metrics.tasks.with_label_values(&[ds, outcome::FAILED]).inc();
    let _ = d.nack(BasicNackOptions { requeue: true, ..Default::default() }).await;
}

/// Parks the delivery (original payload, reason headers), confirmed, then acks.
async fn settle_park(
    ctx: &Ctx,
    publish: &Channel,
    d: &Delivery,
    task: Option<&Task>,
    ds: &str,
    f: &Failure,
    attempts: u32,
) {
    let Failure::Permanent { reason, message } = f else { unreachable!("only permanent failures are parked") };
    let mut pairs = vec![
        ("x-lakefleet-reason", reason.code().to_string()),
        ("x-lakefleet-error", message.clone()),
        ("x-lakefleet-attempts", attempts.to_string()),
        ("x-lakefleet-worker", ctx.worker_id.clone()),
        ("x-lakefleet-failed-at", chrono::Utc::now().to_rfc3339()),
    ];
    if let Some(t) = task {
        pairs.extend(t.header_pairs());
    }
    match topology::publish_confirmed(publish, &ctx.topo.parking, &d.data, topology::headers(&pairs)).await {
        Ok(()) => {
            if ack(d).await {
                ctx.metrics.tasks.with_label_values(&[ds, outcome::PARKED]).inc();
                ctx.metrics.parked.with_label_values(&[ds, reason.code()]).inc();
                warn!(task = task.map(|t| t.label()).unwrap_or_default(), reason = reason.code(), error = %message, "parked");
                if let Some(t) = task
                    && let Err(e) = ctx
                        .state
                        .record_dead(&t.backfill_id, &t.dataset, &t.partition, &format!("{}: {message}", reason.code()))
                        .await
                {
                    warn!(error = %e, "Redis: recording a parked task");
                }
            }
        }
        Err(e) => nack(ctx, d, ds, &format!("parking: {e}")).await,
    }
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

async fn run_task(ctx: &Arc<Ctx>, task: &Task) -> Result<Done, Failure> {
    let ds = ctx.catalog.get(&task.dataset).ok_or_else(|| Failure::Permanent {
        reason: Reason::BadMessage,
        message: format!("unknown dataset {:?} (not in this worker's catalog)", task.dataset),
    })?;
    let (dsn, part) = (task.dataset.as_str(), task.partition.as_str());
    if !task.overwrite
        && soft("checking the done marker", ctx.state.skip_if_done(dsn, part, &task.backfill_id).await) == Some(true)
    {
        return Ok(Done::Skipped);
    }
    let token = format!("{}:{}", ctx.worker_id, uuid_like());
    let leased = soft("taking the lease", ctx.state.try_lease(dsn, part, &token, ctx.lease_ttl).await);
    if leased == Some(false) {
        return Ok(Done::LeaseHeld);
    }
    // Released when this future ends, however it ends (also on timeout or shutdown).
    let _lease = leased.map(|_| Lease::hold(ctx, dsn, part, token));
    let (uploaded, marker) = convert_and_upload(ctx, ds, task).await?;
    soft("writing the done marker", ctx.state.mark_done(dsn, part, &marker).await);
    soft("counting progress", ctx.state.record_done(&task.backfill_id, part).await);
    Ok(Done::Converted { uploaded })
}

/// `{pid}-{n}`: unique within this host's processes.
fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    format!("{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// Removes spool files left by workers of this host that died without
/// cleaning up (`kill -9`, OOM): `lakefleet-{pid}-{n}.parquet` whose process
/// is gone. Returns how many were removed.
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
        if name.ends_with(".parquet")
            && pid != std::process::id()
            && !std::path::Path::new(&format!("/proc/{pid}")).exists()
            && std::fs::remove_file(e.path()).is_ok()
        {
            removed += 1;
        }
    }
    removed
}

async fn convert_and_upload(ctx: &Arc<Ctx>, ds: &Dataset, task: &Task) -> Result<(Uploaded, DoneMarker), Failure> {
    let m = &ctx.metrics;
    let dl_start = Instant::now();
    let bytes_counter = m.source_bytes.with_label_values(&[&ds.name]);
    let (reader, pump) = ctx
        .fetcher
        .open(&task.source_url, move |n| bytes_counter.inc_by(n as u64))
        .await
        .map_err(|e| Failure::from_fetch(e, is_recent(ds, &task.partition)))?;

    let spool_path = ctx.spool_dir.join(format!("lakefleet-{}.parquet", uuid_like()));
    let spool = Spool(spool_path.clone());
    let file = std::fs::File::create(&spool_path)
        .map_err(|e| Failure::transient(format!("creating spool file {}: {e}", spool_path.display())))?;
    let (ds2, url, partition) = (ds.clone(), task.source_url.clone(), task.partition.clone());
    let convert_start = Instant::now();
    let conv = tokio::task::spawn_blocking(move || {
        let kv = [(meta::SOURCE_URL, url.clone()), (meta::DATASET, ds2.name.clone()), (meta::PARTITION, partition)];
        let out = std::io::BufWriter::with_capacity(1 << 20, file);
        convert::convert(&ds2, &url, reader, out, &kv)
    });
    // Stopped if this task is abandoned (timeout, shutdown): the conversion
    // thread then sees the end of its input and stops too.
    let mut pump = AbortOnDrop(pump);
    let _ = (&mut pump.0).await;
    m.stage_duration.with_label_values(&[&ds.name, stage::DOWNLOAD]).observe(dl_start.elapsed().as_secs_f64());
    let stats =
        conv.await.map_err(|e| Failure::transient(format!("conversion thread failed: {e}")))?.map_err(Failure::from)?;
    m.stage_duration.with_label_values(&[&ds.name, stage::CONVERT]).observe(convert_start.elapsed().as_secs_f64());

    let size = std::fs::metadata(&spool.0)
        .map_err(|e| Failure::transient(format!("reading spool file {}: {e}", spool.0.display())))?
        .len();
    let up_start = Instant::now();
    let uploaded = ctx.lake.upload_file(&task.object_key, &spool.0, size, task.overwrite).await?;
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
    drop(spool);
    Ok((
        uploaded,
        DoneMarker { object_key: task.object_key.clone(), size, rows: stats.rows, sha256: stats.source_sha256 },
    ))
}
