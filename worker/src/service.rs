//! The consume loop: connect, declare, consume both lanes with a prefetch of
//! the concurrency plus one, take a delivery whenever a slot is free (the
//! high lane's first), run each as its own task, reconnect when the broker
//! goes away, and stop cleanly on shutdown.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use lakefleet::rabbitmq::topology;
use lakefleet::task::Lane;
use lapin::options::{BasicCancelOptions, BasicConsumeOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::{error, info, warn};

use crate::ctx::Ctx;
use crate::process::handle;

/// What the consume loop needs of the worker's settings.
pub struct Settings {
    pub amqp: lakefleet::rabbitmq::AmqpNodes,
    pub concurrency: std::num::NonZeroUsize,
    pub shutdown_grace: Duration,
}

/// How long the tasks of a lost connection may take to end before they are
/// abandoned (their acks cannot reach the broker anyway: their deliveries
/// come again), so that a reconnect never waits on a stuck task.
const LOST_CONNECTION_DRAIN: Duration = Duration::from_secs(10);
/// Channel setup and topology declaration after a connect.
const SETUP_TIMEOUT: Duration = Duration::from_secs(30);

/// Runs until `shutdown` resolves; in-flight tasks get `shutdown_grace` to
/// finish, the rest go back to the queue unacked. While it consumes,
/// `lakefleet_connection_up{service="rabbitmq"}` is 1 (what `/readyz` reads).
pub async fn run(
    ctx: Arc<Ctx>,
    settings: Settings,
    shutdown: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    tokio::pin!(shutdown);
    let concurrency = settings.concurrency.get();
    let permits = Arc::new(Semaphore::new(concurrency));
    let mut tasks: JoinSet<()> = JoinSet::new();
    let mut backoff = Duration::from_millis(250);
    loop {
        // Connect (or reconnect), never past a shutdown.
        let opened = tokio::select! {
            _ = &mut shutdown => break,
            o = open(&ctx, &settings.amqp, concurrency) => o,
        };
        let (conn, consume, publish, mut lanes) = match opened {
            Ok(x) => x,
            Err(e) => {
                ctx.metrics.connection_up.with_label_values(&["rabbitmq"]).set(0);
                warn!(error = %format!("{e:#}"), retry_in_ms = backoff.as_millis() as u64, "RabbitMQ unavailable");
                tokio::select! { _ = &mut shutdown => break, _ = tokio::time::sleep(backoff) => {} }
                backoff = (backoff * 2).min(Duration::from_secs(10));
                continue;
            }
        };
        backoff = Duration::from_millis(250);
        ctx.metrics.connection_up.with_label_values(&["rabbitmq"]).set(1);
        info!(queue = %ctx.topo.work, high_lane = %ctx.topo.work_high, concurrency, "consuming");

        let stop = loop {
            // A free slot first, then the next delivery: a task of the high
            // lane that arrives while every slot is busy is the next to start.
            let permit = tokio::select! {
                _ = &mut shutdown => break true,
                Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
                p = permits.clone().acquire_owned() => p.expect("semaphore open"),
            };
            let (lane, next) = tokio::select! {
                _ = &mut shutdown => break true,
                n = lanes.next() => n,
            };
            match next {
                Some(Ok(delivery)) => {
                    let (ctx, publish) = (ctx.clone(), publish.clone());
                    tracing::debug!(lane = lane.name(), "delivery");
                    // The permit goes with the task, which gives it back
                    // once its object is written (its commit overlaps the
                    // next task's conversion), or when it ends.
                    let held = std::cell::RefCell::new(Some(permit));
                    tasks.spawn(crate::ctx::PERMIT.scope(held, handle(ctx, publish, delivery)));
                }
                Some(Err(e)) => {
                    warn!(error = %e, lane = lane.name(), "consumer error; reconnecting");
                    break false;
                }
                None => {
                    warn!(lane = lane.name(), "a consumer stream ended (channel or connection closed); reconnecting");
                    break false;
                }
            }
        };
        ctx.metrics.connection_up.with_label_values(&["rabbitmq"]).set(0);
        if stop {
            info!(
                in_flight = tasks.len(),
                grace_s = settings.shutdown_grace.as_secs(),
                "shutting down: no new deliveries"
            );
            // No new task or download starts from here.
            let deadline = tokio::time::Instant::now() + settings.shutdown_grace;
            ctx.stop.send_replace(crate::ctx::Stop::Draining);
            let grace = settings.shutdown_grace;
            let cancel = async {
                for c in [&lanes.high, &lanes.normal] {
                    let _ = consume.basic_cancel(c.tag(), BasicCancelOptions::default()).await;
                }
            };
            let _ = tokio::time::timeout(Duration::from_secs(5).min(grace / 2), cancel).await;
            // Deliveries the broker had already sent (the prefetch) are handed
            // back at once, not left to come back as failed deliveries.
            for c in [&mut lanes.high, &mut lanes.normal] {
                while let Ok(Some(Ok(delivery))) = tokio::time::timeout(Duration::from_millis(50), c.next()).await {
                    let none = std::cell::RefCell::new(None);
                    tasks.spawn(crate::ctx::PERMIT.scope(none, handle(ctx.clone(), publish.clone(), delivery)));
                }
            }
            // Running work may finish until shortly before the grace ends;
            // then what is left is handed back to the work queue (published
            // again and acked: not a failed delivery), and the worker exits
            // within the grace.
            // The hand-back (a publish and an ack a task) gets the last third
            // of the grace, at most 2 s of it.
            let until_hand_back = deadline - Duration::from_secs(2).min(grace / 3);
            if tokio::time::timeout_at(until_hand_back, async { while tasks.join_next().await.is_some() {} })
                .await
                .is_err()
            {
                warn!(unfinished = tasks.len(), "grace nearly over: handing the unfinished tasks back to the queue");
                ctx.stop.send_replace(crate::ctx::Stop::HandBack);
                if tokio::time::timeout_at(deadline, async { while tasks.join_next().await.is_some() {} })
                    .await
                    .is_err()
                {
                    warn!(unfinished = tasks.len(), "grace over: the deliveries left go back unacked");
                    tasks.abort_all();
                }
            }
            close(&conn, "worker shutting down").await;
            return Ok(());
        }
        // Connection lost: the in-flight tasks' acks cannot reach the broker;
        // their deliveries come back and are deduped. Let them end (within a
        // deadline, and never past a shutdown) before reconnecting.
        let drained = tokio::select! {
            _ = &mut shutdown => None,
            d = drain(&mut tasks, LOST_CONNECTION_DRAIN) => Some(d),
        };
        if drained != Some(true) {
            warn!(unfinished = tasks.len(), "abandoning the tasks of the lost connection; their deliveries come again");
            tasks.abort_all();
            while tasks.join_next().await.is_some() {}
        }
        close(&conn, "reconnecting").await;
        if drained.is_none() {
            info!("shutting down while reconnecting");
            return Ok(());
        }
        tokio::select! { _ = &mut shutdown => return Ok(()), _ = tokio::time::sleep(backoff) => {} }
    }
    // Shutdown while disconnected.
    if !tasks.is_empty() {
        error!(unfinished = tasks.len(), "shutting down while disconnected");
        tasks.abort_all();
    }
    Ok(())
}

/// The consumers of the two lanes.
struct Lanes {
    high: lapin::Consumer,
    normal: lapin::Consumer,
    /// High-lane deliveries taken since the last normal-lane one.
    high_in_a_row: u32,
}

/// When both lanes hold deliveries, the high lane gets this many in a row,
/// then the normal lane one: small backfills first, large ones never starved.
const HIGH_LANE_SHARE: u32 = 3;

impl Lanes {
    /// The next delivery (cancel-safe: a stream's `next` loses nothing when
    /// dropped), the high lane's first.
    async fn next(&mut self) -> (Lane, Option<Result<lapin::message::Delivery, lapin::Error>>) {
        let normal_turn = self.high_in_a_row >= HIGH_LANE_SHARE;
        let (lane, next) = if normal_turn {
            tokio::select! {
                biased;
                n = self.normal.next() => (Lane::Normal, n),
                n = self.high.next() => (Lane::High, n),
            }
        } else {
            tokio::select! {
                biased;
                n = self.high.next() => (Lane::High, n),
                n = self.normal.next() => (Lane::Normal, n),
            }
        };
        self.high_in_a_row = match lane {
            Lane::High => self.high_in_a_row + 1,
            Lane::Normal => 0,
        };
        (lane, next)
    }
}

/// Connects, opens the consume channel (prefetch = concurrency + 1 for
/// each lane) and the confirm channel, declares the topology and starts
/// consuming both lanes, within [`SETUP_TIMEOUT`] after the connect.
async fn open(
    ctx: &Ctx,
    amqp: &lakefleet::rabbitmq::AmqpNodes,
    concurrency: usize,
) -> anyhow::Result<(Connection, Channel, Channel, Lanes)> {
    let conn = topology::connect(amqp, &format!("lakefleet-worker {}", ctx.worker_id)).await?;
    let setup = async {
        let consume = conn.create_channel().await?;
        // One delivery more than conversions at once: while a task commits
        // into its dataset's table, the next one can convert.
        consume.basic_qos(concurrency.saturating_add(1).min(u16::MAX as usize) as u16, Default::default()).await?;
        let publish = topology::confirm_channel(&conn).await?;
        ctx.topo.declare(&publish).await?;
        let suffix = uuid_suffix();
        let mut consumers = Vec::new();
        for lane in [Lane::High, Lane::Normal] {
            let tag = format!("{}-{suffix}-{}", ctx.worker_id, lane.name());
            let queue = ctx.topo.work_queue(lane);
            consumers.push(
                consume
                    .basic_consume(queue.into(), tag.into(), BasicConsumeOptions::default(), FieldTable::default())
                    .await?,
            );
        }
        let (normal, high) = (consumers.pop().expect("two"), consumers.pop().expect("two"));
        Ok::<_, lapin::Error>((consume, publish, Lanes { high, normal, high_in_a_row: 0 }))
    };
    match tokio::time::timeout(SETUP_TIMEOUT, setup).await {
        Ok(Ok((consume, publish, lanes))) => Ok((conn, consume, publish, lanes)),
        Ok(Err(e)) => {
            close(&conn, "setup failed").await;
            Err(anyhow::anyhow!("setting up the RabbitMQ channels: {e}"))
        }
        Err(_) => {
            close(&conn, "setup timed out").await;
            Err(anyhow::anyhow!("setting up the RabbitMQ channels took more than {}s", SETUP_TIMEOUT.as_secs()))
        }
    }
}

/// Waits up to `within` for every task to end; `true` when they all did.
async fn drain(tasks: &mut JoinSet<()>, within: Duration) -> bool {
    tokio::time::timeout(within, async { while tasks.join_next().await.is_some() {} }).await.is_ok()
}

/// Closes the connection, without waiting on a broker that does not answer.
async fn close(conn: &Connection, why: &str) {
    let _ = tokio::time::timeout(Duration::from_secs(5), conn.close(200, why.into())).await;
}

fn uuid_suffix() -> String {
    format!(
        "{:x}",
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_nanos() & 0xffffff
    )
}
