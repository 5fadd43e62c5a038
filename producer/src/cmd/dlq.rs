//! `producer dlq list|replay|purge`: parked tasks, filtered by backfill,
//! dataset and reason.
//!
//! Parked messages are read with `basic.get` without acking; the ones that
//! match are acked (purge) or re-published then acked (replay); the others
//! are returned to the parking queue when the channel closes.

use std::process::ExitCode;

use anyhow::Context;
use lakefleet::config::Connections;
use lakefleet::rabbitmq::parking::{ParkHeaders, task_headers};
use lakefleet::rabbitmq::topology::{self, Topology};
use lakefleet::state::State;
use lakefleet::task::Task;
use lapin::options::{BasicAckOptions, BasicGetOptions};

use crate::cli::{DlqCommand, DlqFilter};

/// One parked message as an operator sees it.
pub struct Parked {
    pub delivery: lapin::message::Delivery,
    pub task: Option<Task>,
    pub headers: ParkHeaders,
}

fn describe(d: lapin::message::Delivery) -> Parked {
    let task = Task::decode(&d.data).ok();
    let headers = ParkHeaders::from_table(d.properties.headers().as_ref(), task.as_ref());
    Parked { headers, task, delivery: d }
}

impl DlqFilter {
    fn matches(&self, p: &ParkHeaders) -> bool {
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
        if filter.matches(&p.headers) {
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

/// The parked partitions of backfill `id` with `reason: error`, read without
/// removing anything (for rebuilding a backfill's view).
pub async fn parked_of_backfill(conn: &Connections, id: &str) -> anyhow::Result<Vec<(String, String)>> {
    let amqp = topology::connect(&conn.amqp_url, "lakefleet-producer-status").await?;
    let topo = conn.topology();
    let ch = amqp.create_channel().await?;
    topo.declare(&ch).await.context("declaring the RabbitMQ topology")?;
    let filter = DlqFilter { backfill: Some(id.to_string()), ..Default::default() };
    let (items, _) = fetch(&ch, &topo, &filter).await?;
    let out = items.iter().map(|p| (p.headers.partition.clone(), format!("{}: {}", p.headers.reason, p.headers.error)));
    let out = out.collect();
    let _ = amqp.close(200, "done".into()).await;
    Ok(out)
}

fn print_table(items: &[Parked]) {
    println!(
        "{:<30} {:<16} {:<12} {:<18} {:>8}  {:<26} {:<20} error",
        "backfill", "dataset", "partition", "reason", "attempts", "parked at", "worker"
    );
    for Parked { headers: h, .. } in items {
        let attempts = if h.attempts == 0 { String::new() } else { h.attempts.to_string() };
        println!(
            "{:<30} {:<16} {:<12} {:<18} {:>8}  {:<26} {:<20} {}",
            h.backfill, h.dataset, h.partition, h.reason, attempts, h.failed_at, h.worker, h.error
        );
    }
}

pub async fn run(conn: &Connections, cmd: &DlqCommand) -> anyhow::Result<ExitCode> {
    let amqp = topology::connect(&conn.amqp_url, "lakefleet-producer-dlq").await?;
    let topo = conn.topology();
    let ch = topology::confirm_channel(&amqp).await?;
    topo.declare(&ch).await.context("declaring the RabbitMQ topology")?;
    let code = match cmd {
        DlqCommand::List(f) => {
            let (items, others) = fetch(&ch, &topo, f).await?;
            print_table(&items);
            println!("{} parked task(s) match ({} others in {})", items.len(), others, topo.parking);
            ExitCode::SUCCESS
        }
        DlqCommand::Replay(f) => {
            let state = State::connect(&conn.redis_url, &conn.prefix).await?;
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
                t.redeliveries = 0;
                let queue = topo.work_queue(t.lane);
                topology::publish_confirmed(&ch, queue, &t.encode(), topology::headers(&task_headers(&t)))
                    .await
                    .with_context(|| format!("re-publishing {}", t.label()))?;
                p.delivery.ack(BasicAckOptions::default()).await?;
                state.clear_parked(&t.backfill_id, &t.dataset, &t.partition).await?;
                replayed += 1;
            }
            println!("replayed {replayed} task(s) to {} (or {}: each task keeps its lane)", topo.work, topo.work_high);
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
            if !yes
                && !crate::refusal::confirm(
                    "remove them?",
                    "refusing to purge without confirmation: pass --yes".into(),
                )?
            {
                println!("nothing removed");
                return Ok(ExitCode::SUCCESS);
            }
            for p in &items {
                p.delivery.ack(BasicAckOptions::default()).await?;
            }
            println!("removed {} parked task(s)", items.len());
            ExitCode::SUCCESS
        }
    };
    let _ = ch.close(200, "done".into()).await;
    let _ = amqp.close(200, "done".into()).await;
    Ok(code)
}
