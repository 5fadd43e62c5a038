//! `producer status` and `backfill --wait`: progress from Redis counters, or,
//! when Redis has lost a backfill (it keeps nothing on disk), rebuilt from
//! the backfill's manifest and objects in the lake and the parking queue.

use std::collections::HashSet;
use std::num::NonZeroUsize;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use lakefleet::catalog::Catalog;
use lakefleet::config::Connections;
use lakefleet::lake::Lake;
use lakefleet::manifest::BackfillManifest;
use lakefleet::state::{BackfillStatus, State};
use lakefleet::util::text::redact;

use crate::progress::Progress;

/// How long `--wait` keeps waiting through a Redis outage.
const REDIS_OUTAGE_PATIENCE: Duration = Duration::from_secs(120);

fn summary(s: &BackfillStatus) -> String {
    let cancelled = match &s.cancelled_at {
        Some(at) => format!(", cancelled {} (at {at})", s.cancelled),
        None => String::new(),
    };
    format!(
        "{}: {} {}..{}: planned {}, done {} (skipped as duplicates {}), pending {}, parked {}, retries {}{cancelled}",
        s.id,
        s.dataset,
        s.from,
        s.to,
        s.planned,
        s.done,
        s.skipped,
        s.pending(),
        s.parked.len(),
        s.retried
    )
}

fn print_failures(s: &BackfillStatus, catalog: &Catalog) {
    if !s.parked.is_empty() {
        println!("parked partitions (see `producer dlq list --backfill {}`):", s.id);
        for (p, err) in &s.parked {
            println!("  {p}: {err}");
        }
    }
    if let Some(line) = catalog.get(&s.dataset).and_then(|ds| nothing_new(s, ds)) {
        println!("{line}");
    }
}

/// What the publication calendar's patience found: the partitions parked
/// as `not_published_yet` and the newest one before them that this backfill
/// did get. How a feed that stopped publishing shows itself.
fn nothing_new(s: &BackfillStatus, ds: &lakefleet::catalog::Dataset) -> Option<String> {
    let mut unpublished: Vec<&str> = s
        .parked
        .iter()
        .filter(|(_, e)| e.starts_with(lakefleet::failure::Reason::NotPublishedYet.code()))
        .map(|(p, _)| p.as_str())
        .collect();
    unpublished.sort_unstable();
    let first: chrono::NaiveDate = unpublished.first()?.parse().ok()?;
    let from: Option<chrono::NaiveDate> = s.from.parse().ok();
    let before = lakefleet::catalog::cadence::round_down(ds.cadence, first - chrono::Days::new(1));
    let got = from.is_some_and(|f| before >= f) && !s.parked.iter().any(|(p, _)| *p == before.to_string());
    let since = match got {
        true => format!("nothing new since {before}"),
        false => format!("nothing new from {first} on"),
    };
    let later = match unpublished.len() - 1 {
        0 => String::new(),
        n => format!(" and {n} later partition(s)"),
    };
    let patience = ds.not_published_patience_seconds;
    let patience = match patience % 86_400 {
        0 => format!("{} days", patience / 86_400),
        _ => format!("{patience}s"),
    };
    let current = match &ds.successor {
        Some(next) => format!(" (its publisher's current data: dataset {next})"),
        None => String::new(),
    };
    Some(format!(
        "{}: {since}: {first}{later} not published within the calendar's patience ({patience}, not_published_patience_seconds); a feed that stopped publishing looks like this{current}; replay them with `producer dlq replay --backfill {}` once they appear",
        ds.name, s.id
    ))
}

/// Rebuilds backfill `id` in Redis from its manifest in the lake: a partition
/// whose object is in the lake is done, one in the parking queue is parked,
/// the rest are pending. `None` when the lake has no manifest for `id`.
pub async fn rebuild(
    conn: &Connections,
    catalog: &Catalog,
    state: &State,
    id: &str,
) -> anyhow::Result<Option<BackfillStatus>> {
    let lake = Lake::open(&conn.lake_url)?;
    let Some(m) = BackfillManifest::read(&lake, id).await? else { return Ok(None) };
    let ds = catalog.require(&m.dataset).map_err(|e| anyhow::anyhow!("backfill {id}: {e}"))?;
    let in_lake: HashSet<String> = lake
        .list(&format!("{}/", ds.name))
        .await
        .with_context(|| format!("listing {}", lake.display(&ds.name)))?
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    let mut done = Vec::new();
    for p in &m.partitions {
        let date = p.parse().with_context(|| format!("{}: partition {p:?}", BackfillManifest::key(id)))?;
        if in_lake.contains(&ds.object_key(date)) {
            done.push(p.clone());
        }
    }
    let parked = crate::cmd::dlq::parked_of_backfill(conn, id).await?;
    let parked: Vec<(String, String)> = parked.into_iter().filter(|(p, _)| !done.contains(p)).collect();
    state.create_backfill(&m, &done, false, &parked).await.context("recording the rebuilt backfill in Redis")?;
    eprintln!(
        "note: Redis had no record of {id}; rebuilt it from the lake ({} done of {}) and the parking queue ({} parked)",
        done.len(),
        m.partitions.len(),
        parked.len()
    );
    Ok(state.backfill(id).await?)
}

pub async fn run(
    conn: &Connections,
    catalog: &Catalog,
    id: Option<&str>,
    limit: NonZeroUsize,
) -> anyhow::Result<ExitCode> {
    let state = State::connect(&conn.redis_url, &conn.prefix).await?;
    let Some(id) = id else {
        let ids = state.recent_backfills(limit).await?;
        if ids.is_empty() {
            println!(
                "no backfills in Redis; start one with `producer backfill` (`producer status ID` rebuilds one Redis lost)"
            );
        }
        for id in ids {
            if let Some(s) = state.backfill(&id).await? {
                // Cancelled only when a partition was: a cancel that came
                // after the last task found nothing to cancel.
                let st = match (s.finished(), s.cancelled_at.is_some() && s.cancelled > 0, s.parked.is_empty()) {
                    (false, _, _) if s.cancelled_at.is_some() => "cancelling",
                    (true, true, _) => "cancelled",
                    (true, false, true) => "done",
                    (true, false, false) => "done with parked tasks",
                    (false, _, _) => "running",
                };
                println!("{}  [{st}]  created {}", summary(&s), s.created);
            }
        }
        return Ok(ExitCode::SUCCESS);
    };
    let found = match state.backfill(id).await? {
        // A record without its plan (Redis forgot the backfill and a retry
        // wrote only its counter) is rebuilt like a missing one.
        Some(s) if s.planned > 0 => Some(s),
        Some(partial) => rebuild(conn, catalog, &state, id).await?.or(Some(partial)),
        None => rebuild(conn, catalog, &state, id).await?,
    };
    let Some(s) = found else {
        return Err(crate::refusal::Refused(format!(
            "no backfill {id:?} in Redis nor in the lake (ids are listed by `producer status`)"
        ))
        .into());
    };
    let bar = Progress::new(s.planned, "done");
    bar.set(s.done + s.parked.len() as u64, "");
    bar.finish();
    println!("{}", summary(&s));
    print_failures(&s, catalog);
    if let Some(ds) = catalog.get(&s.dataset).filter(|d| d.table) {
        let lake = Lake::open(&conn.lake_url)?;
        println!("{}", table_line(&lake, ds).await);
    }
    Ok(ExitCode::SUCCESS)
}

/// `table mta-turnstile: version 11, 12 live files, 2400 rows`: what the
/// dataset's Delta table holds now.
pub async fn table_line(lake: &Lake, ds: &lakefleet::catalog::Dataset) -> String {
    match lakefleet::table::Table::new(lake, ds).snapshot().await {
        Ok(snap) => match snap.version {
            None => format!("table {}: none yet (no partition committed)", ds.name),
            Some(v) => format!("table {}: version {v}, {} live files, {} rows", ds.name, snap.files.len(), snap.rows()),
        },
        Err(e) => format!("table {}: unreadable: {e}", ds.name),
    }
}

/// Follows a backfill until every partition is done or parked. A Redis
/// outage is reported (naming Redis) and waited out for a while; a backfill
/// that Redis lost meanwhile is rebuilt from the lake.
pub async fn wait(
    conn: &Connections,
    catalog: &Catalog,
    state: &State,
    id: &str,
    timeout: Duration,
) -> anyhow::Result<ExitCode> {
    let start = Instant::now();
    let mut bar: Option<Progress> = None;
    let mut outage: Option<Instant> = None;
    loop {
        let s = match state.backfill(id).await {
            Ok(Some(s)) if s.planned > 0 => s,
            // Redis answers but lost the backfill (restarted), or kept only
            // a counter a retry wrote: rebuild it.
            Ok(Some(_)) => match rebuild(conn, catalog, state, id).await? {
                Some(s) => s,
                None => anyhow::bail!("backfill {id}: Redis holds no plan and the lake no manifest"),
            },
            Ok(None) => match rebuild(conn, catalog, state, id).await? {
                Some(s) => s,
                None => anyhow::bail!("backfill {id} is neither in Redis nor in the lake"),
            },
            Err(e) => {
                let since = *outage.get_or_insert_with(|| {
                    eprintln!(
                        "warning: Redis at {} is unavailable ({e:#}); still waiting for backfill {id}",
                        redact(&conn.redis_url)
                    );
                    Instant::now()
                });
                if since.elapsed() > REDIS_OUTAGE_PATIENCE {
                    anyhow::bail!(
                        "Redis at {} unavailable for {}s while waiting for backfill {id}: {e:#}; the workers go on: follow it later with `producer status {id}`",
                        redact(&conn.redis_url),
                        REDIS_OUTAGE_PATIENCE.as_secs()
                    );
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
                continue;
            }
        };
        if outage.take().is_some() {
            eprintln!("Redis is back");
        }
        let b = bar.get_or_insert_with(|| Progress::new(s.planned, "done"));
        let finished = s.done + s.parked.len() as u64;
        b.set(finished, &format!("waiting: {}", summary(&s)));
        if s.finished() || s.planned == 0 {
            b.finish();
            println!("{}", summary(&s));
            print_failures(&s, catalog);
            // Exit 0 only when every partition is done: parked or cancelled
            // partitions are not in the lake.
            if s.cancelled > 0 {
                eprintln!("backfill {id}: {} partition(s) cancelled before they were loaded", s.cancelled);
            }
            let all_done = s.parked.is_empty() && s.cancelled == 0 && s.done >= s.planned;
            return Ok(if all_done { ExitCode::SUCCESS } else { ExitCode::FAILURE });
        }
        if start.elapsed() > timeout {
            b.finish();
            eprintln!("error: backfill {id} not finished after {}s: {}", timeout.as_secs(), summary(&s));
            return Ok(ExitCode::FAILURE);
        }
        tokio::time::sleep(wait_poll(start.elapsed())).await;
    }
}

/// How long `--wait` sleeps between two reads of the backfill's state
/// after waiting `waited`: a fortieth of it, from 50 ms to 1 s. The exit
/// follows the last partition within 2.5% of the wait (at a fixed 250 ms a
/// 2 s backfill measured with `--wait` moved by a whole step), and an
/// hours-long wait reads Redis (parked messages included) once a second.
fn wait_poll(waited: Duration) -> Duration {
    (waited / 40).clamp(Duration::from_millis(50), Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wait_looks_often_at_first_and_once_a_second_in_long_waits() {
        assert_eq!(wait_poll(Duration::ZERO), Duration::from_millis(50));
        assert_eq!(wait_poll(Duration::from_secs(10)), Duration::from_millis(250));
        assert_eq!(wait_poll(Duration::from_secs(3600)), Duration::from_secs(1));
    }

    fn status(from: &str, dead: &[(&str, &str)]) -> BackfillStatus {
        BackfillStatus {
            id: "bf-1".into(),
            dataset: "mta-turnstile".into(),
            from: from.into(),
            to: "2026-11-28".into(),
            created: String::new(),
            planned: 4,
            done: 4 - dead.len() as u64,
            skipped: 0,
            retried: 0,
            parked: dead.iter().map(|(p, e)| (p.to_string(), e.to_string())).collect(),
            cancelled: 0,
            cancelled_at: None,
        }
    }

    #[test]
    fn a_feed_that_stopped_publishing_is_named_with_the_last_week_it_had() {
        let catalog = Catalog::builtin();
        let ds = catalog.get("mta-turnstile").unwrap();
        let s = status(
            "2026-11-07",
            &[
                ("2026-11-28", "not_published_yet: 404 Not Found: not published yet"),
                ("2026-11-21", "not_published_yet: 404 Not Found: not published yet"),
            ],
        );
        let line = nothing_new(&s, ds).unwrap();
        assert_eq!(
            line,
            "mta-turnstile: nothing new since 2026-11-14: 2026-11-21 and 1 later partition(s) not published within the calendar's patience (14 days, not_published_patience_seconds); a feed that stopped publishing looks like this (its publisher's current data: dataset mta-subway-hourly-ridership); replay them with `producer dlq replay --backfill bf-1` once they appear"
        );
        // The week before is not the backfill's: nothing is claimed about it.
        let s = status("2026-11-21", &[("2026-11-21", "not_published_yet: 404")]);
        assert!(nothing_new(&s, ds).unwrap().contains("nothing new from 2026-11-21 on: 2026-11-21 not published"));
        // Other parks say nothing of the calendar.
        assert_eq!(nothing_new(&status("2026-11-07", &[("2026-11-21", "not_found: 404")]), ds), None);
    }
}
