//! `producer dlq list|replay|purge`: parked tasks, filtered by backfill,
//! dataset and reason.
//!
//! Parked messages are read with `basic.get` without acking; the ones that
//! match are acked (purge) or re-published then acked (replay); the others
//! are returned to the parking queue when the channel closes.

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::Context;
use lakefleet::state::State;
use lakefleet::task::Task;
use lakefleet::topology::{self, Topology, header_str, x_death};
use lapin::options::{BasicAckOptions, BasicGetOptions};

use crate::cli::{DlqCommand, DlqFilter};

/// One parked message as an operator sees it.
pub struct Parked {
    pub delivery: lapin::message::Delivery,
    pub task: Option<Task>,
    pub backfill: String,
    pub dataset: String,
    pub partition: String,
    pub reason: String,
    pub error: String,
    pub attempts: String,
    pub worker: String,
    pub at: String,
}

fn describe(d: lapin::message::Delivery) -> Parked {
    let h = d.properties.headers().as_ref();
    let task = Task::decode(&d.data).ok();
    let (deaths, death_reason) = x_death(h);
    let reason = header_str(h, "x-lakefleet-reason").unwrap_or_else(|| match death_reason.as_deref() {
        Some("delivery_limit") => "delivery_limit".into(),
        Some(other) => other.to_string(),
        None => "unknown".into(),
    });
    let pick = |key: &str, from_task: Option<String>| header_str(h, key).or(from_task).unwrap_or_default();
    Parked {
        backfill: pick("x-lakefleet-backfill", task.as_ref().map(|t| t.backfill_id.clone())),
        dataset: pick("x-lakefleet-dataset", task.as_ref().map(|t| t.dataset.clone())),
        partition: pick("x-lakefleet-partition", task.as_ref().map(|t| t.partition.clone())),
        error: header_str(h, "x-lakefleet-error").unwrap_or_else(|| {
            if reason == "delivery_limit" {
                format!("delivered {deaths}+ times without an ack (workers crashed on it?)")
            } else {
                String::new()
            }
        }),
        attempts: header_str(h, "x-lakefleet-attempts").unwrap_or_default(),
        worker: header_str(h, "x-lakefleet-worker").unwrap_or_default(),
        at: header_str(h, "x-lakefleet-failed-at").unwrap_or_default(),
        reason,
        task,
        delivery: d,
    }
}

impl DlqFilter {
    fn matches(&self, p: &Parked) -> bool {
        self.backfill.as_ref().is_none_or(|b| *b == p.backfill)
            && self.dataset.as_ref().is_none_or(|d| *d == p.dataset)
            && self.reason.as_ref().is_none_or(|r| *r == p.reason)
    }
}

/// Reads every parked message (unacked) and splits them by the filter.
async fn fetch(ch: &lapin::Channel, topo: &Topology, filter: &DlqFilter) -> anyhow::Result<(Vec<Parked>, usize)> {
    let mut matching = Vec::new();
    let mut others = 0;
    while let Some(m) = ch
        .basic_get(topo.parking.as_str().into(), BasicGetOptions { no_ack: false })
        .await
        .context("reading the parking queue")?
    {
        let p = describe(m.delivery);
        if filter.matches(&p) {
            matching.push(p);
        } else {
            others += 1;
        }
        if matching.len() + others >= 100_000 {
            break;
        }
    }
    Ok((matching, others))
}

fn print_table(items: &[Parked]) {
    println!(
        "{:<30} {:<16} {:<12} {:<18} {:>8}  {:<26} {:<20} error",
        "backfill", "dataset", "partition", "reason", "attempts", "parked at", "worker"
    );
    for p in items {
        println!(
            "{:<30} {:<16} {:<12} {:<18} {:>8}  {:<26} {:<20} {}",
            p.backfill, p.dataset, p.partition, p.reason, p.attempts, p.at, p.worker, p.error
        );
    }
}

pub async fn run(cli: &crate::cli::Cli, cmd: &DlqCommand) -> anyhow::Result<ExitCode> {
    if let DlqCommand::List(f) | DlqCommand::Replay(f) | DlqCommand::Purge { filter: f, .. } = cmd
        && let Some(r) = &f.reason
        && lakefleet::failure::Reason::from_code(r).is_none()
    {
        return Err(crate::Refused(format!(
            "unknown --reason {r:?}; reasons: {}",
            lakefleet::failure::Reason::ALL.map(|r| r.code()).join(", ")
        ))
        .into());
    }
    let conn = topology::connect(&cli.conn.amqp_url, "lakefleet-producer-dlq").await?;
    let topo = cli.conn.topology();
    let ch = topology::confirm_channel(&conn).await?;
    topo.declare(&ch).await.context("declaring the RabbitMQ topology")?;
    let code = match cmd {
        DlqCommand::List(f) => {
            let (items, others) = fetch(&ch, &topo, f).await?;
            print_table(&items);
            println!("{} parked task(s) match ({} others in {})", items.len(), others, topo.parking);
            ExitCode::SUCCESS
        }
        DlqCommand::Replay(f) => {
            let state = State::connect(&cli.conn.redis_url, &cli.conn.prefix).await?;
            let (items, _) = fetch(&ch, &topo, f).await?;
            let mut replayed = 0;
            let mut unreadable = 0;
            for p in &items {
                let Some(task) = &p.task else {
                    unreadable += 1;
                    continue; // a bad_message cannot be replayed; purge it
                };
                let mut t = task.clone();
                t.attempt = 1;
                topology::publish_confirmed(&ch, &topo.work, &t.encode(), topology::headers(&t.header_pairs()))
                    .await
                    .with_context(|| format!("re-publishing {}", t.label()))?;
                p.delivery.ack(BasicAckOptions::default()).await?;
                state.clear_dead(&t.backfill_id, &t.dataset, &t.partition).await?;
                replayed += 1;
            }
            println!("replayed {replayed} task(s) to {}", topo.work);
            if unreadable > 0 {
                println!(
                    "{unreadable} matching message(s) are not readable tasks (bad_message) and stay parked; remove them with `producer dlq purge --reason bad_message`"
                );
            }
            ExitCode::SUCCESS
        }
        DlqCommand::Purge { filter, yes } => {
            let (items, _) = fetch(&ch, &topo, filter).await?;
            if items.is_empty() {
                println!("nothing to purge");
                return Ok(ExitCode::SUCCESS);
            }
            println!("will remove {} parked task(s):", items.len());
            print_table(&items);
            if !yes {
                if !std::io::stdin().is_terminal() {
                    return Err(crate::Refused("refusing to purge without confirmation: pass --yes".into()).into());
                }
                print!("remove them? type yes: ");
                std::io::stdout().flush()?;
                let mut answer = String::new();
                std::io::stdin().lock().read_line(&mut answer)?;
                if answer.trim() != "yes" {
                    println!("nothing removed");
                    return Ok(ExitCode::SUCCESS);
                }
            }
            for p in &items {
                p.delivery.ack(BasicAckOptions::default()).await?;
            }
            println!("removed {} parked task(s)", items.len());
            ExitCode::SUCCESS
        }
    };
    let _ = ch.close(200, "done".into()).await;
    let _ = conn.close(200, "done".into()).await;
    Ok(code)
}
