//! `producer status` and `backfill --wait`: progress from Redis counters.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use lakefleet::state::{BackfillStatus, State};

use crate::progress::Progress;

fn summary(s: &BackfillStatus) -> String {
    format!(
        "{}: {} {}..{}: planned {}, done {} (skipped as duplicates {}), pending {}, parked {}, retries {}",
        s.id,
        s.dataset,
        s.from,
        s.to,
        s.planned,
        s.done,
        s.skipped,
        s.pending(),
        s.dead.len(),
        s.retried
    )
}

fn print_failures(s: &BackfillStatus) {
    if !s.dead.is_empty() {
        println!("parked partitions (see `producer dlq list --backfill {}`):", s.id);
        for (p, err) in &s.dead {
            println!("  {p}: {err}");
        }
    }
}

pub async fn run(state: &State, id: Option<&str>, limit: isize) -> anyhow::Result<ExitCode> {
    let Some(id) = id else {
        let ids = state.recent_backfills(limit).await?;
        if ids.is_empty() {
            println!("no backfills yet; start one with `producer backfill`");
        }
        for id in ids {
            if let Some(s) = state.backfill(&id).await? {
                let st = if s.finished() {
                    if s.dead.is_empty() { "done" } else { "done with parked tasks" }
                } else {
                    "running"
                };
                println!("{}  [{st}]  created {}", summary(&s), s.created);
            }
        }
        return Ok(ExitCode::SUCCESS);
    };
    let Some(s) = state.backfill(id).await? else {
        return Err(crate::Refused(format!("no backfill {id:?} in Redis (ids are listed by `producer status`)")).into());
    };
    let bar = Progress::new(s.planned, "done");
    bar.set(s.done + s.dead.len() as u64, "");
    bar.finish();
    println!("{}", summary(&s));
    print_failures(&s);
    Ok(ExitCode::SUCCESS)
}

/// Follows a backfill until every partition is done or parked.
pub async fn wait(state: &State, id: &str, timeout: Duration) -> anyhow::Result<ExitCode> {
    let start = Instant::now();
    let mut bar: Option<Progress> = None;
    loop {
        let s = state
            .backfill(id)
            .await?
            .ok_or_else(|| anyhow::anyhow!("backfill {id} vanished from Redis (was Redis restarted?)"))?;
        let b = bar.get_or_insert_with(|| Progress::new(s.planned, "done"));
        let finished = s.done + s.dead.len() as u64;
        b.set(finished, &format!("waiting: {}", summary(&s)));
        if s.finished() || s.planned == 0 {
            b.finish();
            println!("{}", summary(&s));
            print_failures(&s);
            return Ok(if s.dead.is_empty() { ExitCode::SUCCESS } else { ExitCode::FAILURE });
        }
        if start.elapsed() > timeout {
            b.finish();
            eprintln!("error: backfill {id} not finished after {}s: {}", timeout.as_secs(), summary(&s));
            return Ok(ExitCode::FAILURE);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}
