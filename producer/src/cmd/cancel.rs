//! `producer cancel ID`: pending tasks are acked without work as workers reach
//! them; a finished backfill cannot be cancelled.

use std::process::ExitCode;

use anyhow::Context;
use lakefleet::config::Connections;
use lakefleet::state::State;

use crate::refusal::Refused;

/// `producer cancel ID`.
pub async fn run(conn: &Connections, id: &str) -> anyhow::Result<ExitCode> {
    let state = State::connect(&conn.redis_url, &conn.prefix).await?;
    if let Some(s) = state.backfill(id).await?
        && s.finished()
        && s.cancelled_at.is_none()
    {
        return Err(Refused(format!(
            "backfill {id} has finished (done {}, parked {}): nothing is left to cancel",
            s.done,
            s.parked.len()
        ))
        .into());
    }
    let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    if !state.cancel_backfill(id, &at).await.context("cancelling in Redis")? {
        return Err(Refused(format!("no backfill {id:?} in Redis (ids are listed by `producer status`)")).into());
    }
    let s = state.backfill(id).await?.unwrap_or_default();
    println!(
        "backfill {id} cancelled: its {} pending task(s) are acked without work as workers reach them (tasks in flight finish); follow it with `producer status {id}`",
        s.pending()
    );
    Ok(ExitCode::SUCCESS)
}
