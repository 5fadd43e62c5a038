//! The consume loop: connect, declare, consume with a prefetch equal to the
//! concurrency, run each delivery as its own task, reconnect when the broker
//! goes away, and stop cleanly on shutdown.

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use lakefleet::topology;
use lapin::options::{BasicCancelOptions, BasicConsumeOptions};
use lapin::types::FieldTable;
use lapin::{Channel, Connection};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tracing::{error, info, warn};

use crate::process::{Ctx, handle};

/// What the consume loop needs of the worker's settings.
pub struct Settings {
    pub amqp_url: String,
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
            o = open(&ctx, &settings.amqp_url, concurrency) => o,
        };
        let (conn, consume, publish, mut consumer) = match opened {
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
        info!(queue = %ctx.topo.work, concurrency, "consuming");

        let stop = loop {
            tokio::select! {
                _ = &mut shutdown => break true,
                Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
                next = consumer.next() => match next {
                    Some(Ok(delivery)) => {
                        // A shutdown while this delivery waits for a slot hands it back.
                        let permit = tokio::select! {
                            p = permits.clone().acquire_owned() => p.expect("semaphore open"),
                            _ = &mut shutdown => {
                                ctx.stop.send_replace(crate::process::Stop::Draining);
                                let none = std::cell::RefCell::new(None);
                                tasks.spawn(crate::process::PERMIT.scope(none, handle(ctx.clone(), publish.clone(), delivery)));
                                break true;
                            }
                        };
                        let (ctx, publish) = (ctx.clone(), publish.clone());
                        // The permit goes with the task, which gives it back
                        // once its object is written (its commit overlaps the
                        // next task's conversion), or when it ends.
                        let held = std::cell::RefCell::new(Some(permit));
                        tasks.spawn(crate::process::PERMIT.scope(held, handle(ctx, publish, delivery)));
                    }
                    Some(Err(e)) => {
                        warn!(error = %e, "consumer error; reconnecting");
                        break false;
                    }
                    None => {
                        warn!("the consumer stream ended (channel or connection closed); reconnecting");
                        break false;
                    }
                },
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
            ctx.stop.send_replace(crate::process::Stop::Draining);
            let grace = settings.shutdown_grace;
            let cancel = consume.basic_cancel(consumer.tag(), BasicCancelOptions::default());
            let _ = tokio::time::timeout(Duration::from_secs(5).min(grace / 2), cancel).await;
            // Deliveries the broker had already sent (the prefetch) are handed
            // back at once, not left to come back as failed deliveries.
            while let Ok(Some(Ok(delivery))) = tokio::time::timeout(Duration::from_millis(50), consumer.next()).await {
                let none = std::cell::RefCell::new(None);
                tasks.spawn(crate::process::PERMIT.scope(none, handle(ctx.clone(), publish.clone(), delivery)));
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
                ctx.stop.send_replace(crate::process::Stop::HandBack);
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

/// Connects, opens the consume channel (prefetch = concurrency) and the
/// confirm channel, declares the topology and starts consuming, within
/// [`SETUP_TIMEOUT`] after the connect.
async fn open(
    ctx: &Ctx,
    amqp_url: &str,
    concurrency: usize,
) -> anyhow::Result<(Connection, Channel, Channel, lapin::Consumer)> {
    let conn = topology::connect(amqp_url, &format!("lakefleet-worker {}", ctx.worker_id)).await?;
    let setup = async {
        let consume = conn.create_channel().await?;
        // One delivery more than conversions at once: while a task commits
        // into its dataset's table, the next one can convert.
        consume.basic_qos(concurrency.saturating_add(1).min(u16::MAX as usize) as u16, Default::default()).await?;
        let publish = topology::confirm_channel(&conn).await?;
        ctx.topo.declare(&publish).await?;
        let tag = format!("{}-{}", ctx.worker_id, uuid_suffix());
        let consumer = consume
            .basic_consume(
                ctx.topo.work.as_str().into(),
                tag.into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        Ok::<_, lapin::Error>((consume, publish, consumer))
    };
    match tokio::time::timeout(SETUP_TIMEOUT, setup).await {
        Ok(Ok((consume, publish, consumer))) => Ok((conn, consume, publish, consumer)),
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
