//! `producer backfill`: plan, (dry-run | publish with confirms), optionally wait.

use std::time::Duration;

use anyhow::Context;
use lakefleet::catalog::{Catalog, file_name};
use lakefleet::lake::Lake;
use lakefleet::plan::{Partition, plan};
use lakefleet::state::State;
use lakefleet::task::{MAJOR, Task};
use lakefleet::topology;

use crate::cli::BackfillArgs;
use crate::progress::Progress;
use crate::{Refused, status};

/// Whether the partition is done: its done marker exists AND its object is in
/// the lake with the marker's size. A marker whose object is gone (the lake was
/// cleaned, or the object deleted) is removed, so that the partition is
/// converted again instead of being skipped by workers.
async fn is_done(state: &State, lake: &Lake, dataset: &str, p: &Partition) -> anyhow::Result<bool> {
    let key = p.date.to_string();
    let Some(marker) = state.done_marker(dataset, &key).await? else { return Ok(false) };
    let found = lake.head(&p.object_key).await.with_context(|| format!("checking {}", lake.display(&p.object_key)))?;
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

/// The URL a worker fetches: the official one, or the mirror joined with its file name.
pub fn fetch_url(p: &Partition, mirror: Option<&str>) -> String {
    match mirror {
        Some(m) => format!("{}/{}", m.trim_end_matches('/'), file_name(&p.source_url)),
        None => p.source_url.clone(),
    }
}

pub fn new_backfill_id() -> String {
    let now = chrono::Utc::now().format("%Y%m%dT%H%M%SZ");
    let rand = uuid::Uuid::new_v4().simple().to_string();
    format!("bf-{now}-{}", &rand[..6])
}

pub async fn run(
    cli: &crate::cli::Cli,
    catalog: &Catalog,
    args: &BackfillArgs,
) -> anyhow::Result<std::process::ExitCode> {
    let ds = catalog.require(&args.dataset).map_err(Refused)?;
    let today = chrono::Local::now().date_naive();
    let parts = plan(ds, args.from, args.to, today).map_err(|e| Refused(e.to_string()))?;
    if let Some(m) = &args.mirror
        && !(m.starts_with("http://") || m.starts_with("https://"))
    {
        return Err(Refused(format!("--mirror {m:?} must be an http:// or https:// URL")).into());
    }
    let force = args.force || args.overwrite;
    let state = State::connect(&cli.conn.redis_url, &cli.conn.prefix).await?;
    let lake = Lake::open(&cli.conn.lake_url)?;

    if args.dry_run {
        println!(
            "dry run: {} partition(s) of {} from {} to {}; nothing is published",
            parts.len(),
            ds.name,
            args.from,
            args.to
        );
        println!("{:<12} {:<12} {:<60} object key", "partition", "state", "source URL");
        for p in &parts {
            let st = partition_state(&state, &lake, &ds.name, p).await?;
            let action = if st == "done" && !force { " (skipped: already done)" } else { "" };
            println!("{:<12} {:<12} {:<60} {}{action}", p.date, st, fetch_url(p, args.mirror.as_deref()), p.object_key);
        }
        return Ok(std::process::ExitCode::SUCCESS);
    }

    // The schedule leaves alone what is parked (an operator's call) or being
    // converted now.
    let mut parts = parts;
    if args.scheduled {
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
        if !force && is_done(&state, &lake, &ds.name, p).await? {
            already.push(p.date.to_string());
        } else {
            to_publish.push(p.clone());
        }
    }
    if args.scheduled && to_publish.is_empty() {
        println!("{}: nothing new to enqueue ({} .. {})", ds.name, args.from, args.to);
        return Ok(std::process::ExitCode::SUCCESS);
    }

    let conn = topology::connect(&cli.conn.amqp_url, "lakefleet-producer").await?;
    let topo = cli.conn.topology();
    let ch = topology::confirm_channel(&conn).await.context("opening a RabbitMQ channel")?;
    topo.declare(&ch).await.context("declaring the RabbitMQ topology")?;
    let id = new_backfill_id();
    state
        .create_backfill(&id, &ds.name, &args.from.to_string(), &args.to.to_string(), parts.len(), &already)
        .await
        .context("recording the backfill in Redis")?;
    println!(
        "backfill {id}: {} partition(s) of {} planned, {} already done, {} to publish",
        parts.len(),
        ds.name,
        already.len(),
        to_publish.len()
    );

    let progress = Progress::new(to_publish.len() as u64, "publishing");
    let enqueued_at = chrono::Utc::now().to_rfc3339();
    // Partitions not confirmed; each one's error is shown as it happens.
    let mut failed: Vec<String> = Vec::new();
    for (i, p) in to_publish.iter().enumerate() {
        let task = Task {
            v: MAJOR,
            backfill_id: id.clone(),
            dataset: ds.name.clone(),
            partition: p.date.to_string(),
            source_url: fetch_url(p, args.mirror.as_deref()),
            object_key: p.object_key.clone(),
            attempt: 1,
            enqueued_at: enqueued_at.clone(),
            overwrite: args.overwrite,
        };
        match topology::publish_confirmed(&ch, &topo.work, &task.encode(), topology::headers(&task.header_pairs()))
            .await
        {
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
    let _ = conn.close(200, "done".into()).await;
    if !failed.is_empty() {
        eprintln!(
            "error: {} of {} task(s) were not confirmed by RabbitMQ: {}; re-run the same command (done partitions are skipped)",
            failed.len(),
            to_publish.len(),
            failed.join(", ")
        );
        return Ok(std::process::ExitCode::FAILURE);
    }
    println!(
        "backfill {id}: published {} task(s) to {}; follow it with: producer status {id}",
        to_publish.len(),
        topo.work
    );
    if args.wait {
        return status::wait(&state, &id, Duration::from_secs(args.wait_timeout)).await;
    }
    Ok(std::process::ExitCode::SUCCESS)
}
