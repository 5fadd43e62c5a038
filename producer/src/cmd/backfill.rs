//! `producer backfill`: plan, (dry-run | publish with confirms), optionally wait.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use chrono::NaiveDate;
use lakefleet::catalog::Catalog;
use lakefleet::config::Connections;
use lakefleet::lake::Lake;
use lakefleet::manifest::BackfillManifest;
use lakefleet::plan::{Partition, plan};
use lakefleet::rabbitmq::parking::task_headers;
use lakefleet::rabbitmq::topology;
use lakefleet::state::State;
use lakefleet::task::{Lane, Task};

use crate::cli::BackfillArgs;
use crate::cmd::status;
use crate::progress::Progress;
use crate::refusal::Refused;

/// A plan larger than this is published only with `--yes` or a confirmation.
pub const CONFIRM_ABOVE: usize = 1_000;

/// A backfill that publishes at most this many tasks goes to the high lane
/// unless `--priority` says otherwise.
pub const SMALL_BACKFILL: usize = 12;

/// The lane of a backfill that publishes `tasks` tasks.
pub fn lane_for(priority: Option<Lane>, tasks: usize) -> Lane {
    priority.unwrap_or(if tasks <= SMALL_BACKFILL { Lane::High } else { Lane::Normal })
}

/// A backfill to run: from `producer backfill`'s flags or from the schedule.
#[derive(Debug, Clone)]
pub struct Request {
    pub dataset: String,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub mirror: Option<String>,
    pub dry_run: bool,
    /// Follow the backfill until it ends, at most this long.
    pub wait: Option<Duration>,
    pub force: bool,
    pub overwrite: bool,
    pub refresh: bool,
    /// Publish a large plan without asking.
    pub yes: bool,
    /// The tasks' lane; `None`: by size ([`SMALL_BACKFILL`]).
    pub priority: Option<Lane>,
    /// From the schedule: leave parked and in-progress partitions alone, and
    /// create no backfill when there is nothing new.
    pub scheduled: bool,
}

impl Request {
    pub fn new(dataset: &str, from: NaiveDate, to: NaiveDate) -> Request {
        Request {
            dataset: dataset.to_string(),
            from,
            to,
            mirror: None,
            dry_run: false,
            wait: None,
            force: false,
            overwrite: false,
            refresh: false,
            yes: false,
            priority: None,
            scheduled: false,
        }
    }
}

impl From<&BackfillArgs> for Request {
    fn from(a: &BackfillArgs) -> Request {
        Request {
            mirror: a.mirror.clone(),
            dry_run: a.dry_run,
            wait: a.wait.then(|| Duration::from_secs(a.wait_timeout)),
            force: a.force || a.overwrite || a.refresh,
            overwrite: a.overwrite,
            refresh: a.refresh,
            yes: a.yes,
            priority: a.priority,
            ..Request::new(&a.dataset, a.from, a.to)
        }
    }
}

/// Whether the partition is done: its done marker exists AND its object is in
/// the lake with the marker's size. A marker whose object is gone (the lake was
/// cleaned, or the object deleted) is removed, so that the partition is
/// converted again instead of being skipped by workers.
async fn is_done(state: &State, lake: &Lake, dataset: &str, p: &Partition) -> anyhow::Result<bool> {
    let key = p.date.to_string();
    let Some(marker) = state.done_marker(dataset, &key).await? else { return Ok(false) };
    // The marker names the object of the partition's current generation (a
    // refresh writes `.2.parquet`, ...): that is the one to check.
    let object = match marker.object_key.starts_with(&format!("{dataset}/")) {
        true => marker.object_key.as_str(),
        false => p.object_key.as_str(),
    };
    let found = lake.head(object).await.with_context(|| format!("checking {}", lake.display(object)))?;
    if found.is_some_and(|m| m.size == marker.size) {
        return Ok(true);
    }
    state.clear_done(dataset, &key).await?;
    Ok(false)
}

/// A partition's state as the dry run shows it.
async fn partition_state(state: &State, lake: &Lake, dataset: &str, p: &Partition) -> anyhow::Result<&'static str> {
    let key = p.date.to_string();
    if is_done(state, lake, dataset, p).await? {
        Ok("done")
    } else if state.lease_held(dataset, &key).await? {
        Ok("in progress")
    } else if state.failed(dataset, &key).await?.is_some() {
        Ok("failed")
    } else {
        Ok("new")
    }
}

pub fn new_backfill_id() -> String {
    let now = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    let rand = uuid::Uuid::new_v4().simple().to_string();
    format!("bf-{now}-{}", &rand[..6])
}

/// A plan over [`CONFIRM_ABOVE`] partitions goes ahead with `--yes`, or when
/// a person at a terminal types `yes`.
fn confirm_large(n: usize, what: &str, yes: bool) -> anyhow::Result<bool> {
    if n <= CONFIRM_ABOVE || yes {
        return Ok(true);
    }
    crate::refusal::confirm(
        &format!("{what} plans {n} partitions (more than {CONFIRM_ABOVE}). Publish them?"),
        format!(
            "{what} plans {n} partitions (more than {CONFIRM_ABOVE}): check the range, then pass --yes to publish them"
        ),
    )
}

pub async fn run(conn: &Connections, catalog: &Catalog, req: &Request) -> anyhow::Result<ExitCode> {
    let ds = catalog.require(&req.dataset).map_err(Refused)?;
    let today = chrono::Local::now().date_naive();
    let parts = plan(ds, req.from, req.to, today).map_err(|e| Refused(e.to_string()))?;
    if let Some(m) = &req.mirror
        && !lakefleet::source::is_http(m)
    {
        return Err(Refused(format!("--mirror {m:?} must be an http:// or https:// URL")).into());
    }
    let state = State::connect(&conn.redis_url, &conn.prefix).await?;
    let lake = Lake::open(&conn.lake_url)?;
    let mirror = req.mirror.as_deref();

    if req.dry_run {
        println!(
            "dry run: {} partition(s) of {} from {} to {}; nothing is published",
            parts.len(),
            ds.name,
            req.from,
            req.to
        );
        println!("{:<12} {:<12} {:<60} object key", "partition", "state", "source URL");
        for p in &parts {
            let st = partition_state(&state, &lake, &ds.name, p).await?;
            let action = if st == "done" && !req.force { " (skipped: already done)" } else { "" };
            println!("{:<12} {:<12} {:<60} {}{action}", p.date, st, ds.fetch_url(p.date, mirror), p.object_key);
        }
        return Ok(ExitCode::SUCCESS);
    }
    let what = format!("{} {} .. {}", ds.name, req.from, req.to);
    if !confirm_large(parts.len(), &what, req.yes)? {
        println!("nothing published");
        return Ok(ExitCode::SUCCESS);
    }

    // The schedule leaves alone what is parked (an operator's call) or being
    // converted now.
    let mut parts = parts;
    if req.scheduled {
        let mut keep = Vec::new();
        for p in parts {
            let key = p.date.to_string();
            if state.failed(&ds.name, &key).await?.is_none() && !state.lease_held(&ds.name, &key).await? {
                keep.push(p);
            }
        }
        parts = keep;
    }
    // Skip what is done already (unless --force).
    let mut to_publish = Vec::new();
    let mut already = Vec::new();
    for p in &parts {
        if !req.force && is_done(&state, &lake, &ds.name, p).await? {
            already.push(p.date.to_string());
        } else {
            to_publish.push(p.clone());
        }
    }
    let id = new_backfill_id();
    // The schedule enqueues a partition once (a record in Redis, kept as long
    // as the partition may wait on its publication calendar), across its own
    // restarts; refreshes ask again on purpose.
    let mut claimed = Vec::new();
    if req.scheduled && !req.refresh {
        let names: Vec<String> = to_publish.iter().map(|p| p.date.to_string()).collect();
        let ttl = Duration::from_secs(ds.not_published_patience_seconds + ds.not_published_retry_seconds + 86_400);
        claimed =
            state.claim_for_schedule(&ds.name, &names, &id, ttl).await.context("recording the schedule's enqueues")?;
        let queued: Vec<&String> = names.iter().filter(|n| !claimed.contains(n)).collect();
        to_publish.retain(|p| claimed.contains(&p.date.to_string()));
        parts.retain(|p| !queued.contains(&&p.date.to_string()));
    }
    if req.scheduled && to_publish.is_empty() {
        println!("{}: nothing new to enqueue ({} .. {})", ds.name, req.from, req.to);
        return Ok(ExitCode::SUCCESS);
    }

    let amqp = topology::connect(&conn.amqp_url, "lakefleet-producer").await?;
    let topo = conn.topology();
    let ch = topology::confirm_channel(&amqp).await.context("opening a RabbitMQ channel")?;
    topo.declare(&ch).await.context("declaring the RabbitMQ topology")?;
    let manifest = BackfillManifest {
        id: id.clone(),
        dataset: ds.name.clone(),
        from: req.from.to_string(),
        to: req.to.to_string(),
        mirror: req.mirror.clone(),
        created: chrono::Utc::now().to_rfc3339(),
        partitions: parts.iter().map(|p| p.date.to_string()).collect(),
    };
    // The lake keeps the plan (Redis keeps nothing on disk): `producer status`
    // rebuilds the backfill's view from it if Redis loses it. Without it the
    // backfill still runs; only that rebuild is lost.
    if let Err(e) = manifest.write(&lake).await {
        eprintln!(
            "warning: writing the backfill's manifest to the lake failed ({e}); `producer status` cannot rebuild this backfill if Redis loses it"
        );
    }
    state.create_backfill(&manifest, &already, true, &[]).await.context("recording the backfill in Redis")?;
    println!(
        "backfill {id}: {} partition(s) of {} planned, {} already done, {} to publish",
        parts.len(),
        ds.name,
        already.len(),
        to_publish.len()
    );

    let lane = lane_for(req.priority, to_publish.len());
    let queue = topo.work_queue(lane).to_string();
    let progress = Progress::new(to_publish.len() as u64, "publishing");
    // Partitions not confirmed; each one's error is shown as it happens.
    let mut failed: Vec<String> = Vec::new();
    for (i, p) in to_publish.iter().enumerate() {
        let mut task = Task::plan(&id, ds, p.date, mirror, req.overwrite);
        task.refresh = req.refresh;
        task.lane = lane;
        let headers = topology::headers(&task_headers(&task));
        match topology::publish_confirmed(&ch, &queue, &task.encode(), headers).await {
            Ok(()) => progress.inc(&task.partition),
            Err(e) => {
                progress.note(&format!("{}: not confirmed: {e}", task.partition));
                failed.push(task.partition.clone());
                if !ch.status().connected() {
                    // The channel is gone: the rest cannot be published either.
                    failed.extend(to_publish[i + 1..].iter().map(|p| p.date.to_string()));
                    break;
                }
            }
        }
    }
    progress.finish();
    let _ = amqp.close(200, "done".into()).await;
    if !failed.is_empty() {
        let retry: Vec<String> = failed.iter().filter(|f| claimed.contains(f)).cloned().collect();
        if let Err(e) = state.unclaim_for_schedule(&ds.name, &retry).await {
            eprintln!("warning: Redis: {e}; the schedule will not enqueue {} again", retry.join(", "));
        }
        eprintln!(
            "error: {} of {} task(s) were not confirmed by RabbitMQ: {}; re-run the same command (done partitions are skipped)",
            failed.len(),
            to_publish.len(),
            failed.join(", ")
        );
        return Ok(ExitCode::FAILURE);
    }
    println!(
        "backfill {id}: published {} task(s) to {queue} ({} lane); follow it with: producer status {id}",
        to_publish.len(),
        lane.name()
    );
    if let Some(timeout) = req.wait {
        return status::wait(conn, catalog, &state, &id, timeout).await;
    }
    Ok(ExitCode::SUCCESS)
}
