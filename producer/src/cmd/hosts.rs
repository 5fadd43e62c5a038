//! `producer hosts`: source hosts' download slots and pauses; `--resume` lifts
//! a pause.

use std::process::ExitCode;

use anyhow::Context;
use lakefleet::config::Connections;
use lakefleet::state::State;

/// `producer hosts [resume HOST]`.
pub async fn run(conn: &Connections, args: &crate::cli::HostsArgs) -> anyhow::Result<ExitCode> {
    let state = State::connect(&conn.redis_url, &conn.prefix).await?;
    if let Some(crate::cli::HostsCommand::Resume { host }) = &args.command {
        match state.resume_host(host).await.context("resuming the host in Redis")? {
            Some(left) => println!("{host}: pause lifted ({}s were left); downloads go ahead now", left.as_secs()),
            None => println!("{host}: was not paused (hosts with slots or pauses are listed by `producer hosts`)"),
        }
        return Ok(ExitCode::SUCCESS);
    }
    let hosts = state.hosts().await.context("reading the hosts from Redis")?;
    if hosts.is_empty() {
        println!("no source host has a download in progress or a pause");
        return Ok(ExitCode::SUCCESS);
    }
    println!("{:<40} {:>5}  {:<28} HELD BY", "HOST", "SLOTS", "PAUSED");
    let now = chrono::Utc::now();
    for h in hosts {
        let paused = match h.paused_ms {
            Some(ms) => {
                let until = now + chrono::Duration::milliseconds(ms);
                format!("until {} ({}s)", until.format("%Y-%m-%dT%H:%M:%SZ"), (ms + 999) / 1000)
            }
            None => "no".into(),
        };
        // Tokens are `{worker}:{pid}-{n}`: count the slots per worker.
        let mut by: std::collections::BTreeMap<&str, usize> = Default::default();
        for (token, _) in &h.slots {
            *by.entry(token.rsplit_once(':').map_or(token.as_str(), |(w, _)| w)).or_default() += 1;
        }
        let held: Vec<String> = by.iter().map(|(w, n)| format!("{w} ({n})")).collect();
        println!("{:<40} {:>5}  {:<28} {}", h.host, h.slots.len(), paused, held.join(", "));
    }
    Ok(ExitCode::SUCCESS)
}
