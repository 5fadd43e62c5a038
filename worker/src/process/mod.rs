//! One task, from delivery to ack: check the message against the catalog,
//! dedupe, lease, download, convert, upload, done marker; then the one
//! [`Outcome`] is settled and recorded.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use lakefleet::catalog::{Cadence, Dataset};
use lakefleet::convert::{self, Provenance};
use lakefleet::failure::{Failure, Reason};
use lakefleet::lake::Uploaded;
use lakefleet::metrics::stage;
use lakefleet::rabbitmq::topology::header_str;
use lakefleet::source::{FetchError, Opened};
use lakefleet::state::{DoneMarker, HOST_SLOT_HEARTBEAT, HOST_SLOT_TTL, HostLimits, TaskCheck};
use lakefleet::task::Task;
use lakefleet::util::spool::SpoolFile;
use lakefleet::util::text;
use lapin::Channel;
use lapin::message::Delivery;
use tracing::{info, warn};

use crate::ctx::*;
use crate::outcome::{Done, Outcome};

mod politeness;
use politeness::*;
mod guards;
use guards::*;
mod ingest;
use ingest::*;
mod commit;
use commit::*;

/// A task checked against the catalog: where its data comes from and goes,
/// derived from dataset and partition (and the backfill's mirror), never
/// taken from the message.
struct Checked<'a> {
    ds: &'a Dataset,
    date: NaiveDate,
    url: String,
    key: String,
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
    let token = format!("{}:{}", ctx.worker_id, lakefleet::util::spool::unique());
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
