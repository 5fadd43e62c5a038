//! What happened to a task, decided once, settled once, recorded once.
//!
//! - [`Outcome::decide`] turns the task's result into one of its outcomes
//!   (the retry-or-park decision lives in `lakefleet::failure`; here it meets
//!   the attempt count);
//! - [`Outcome::settle`] does the one thing the broker must hear: an ack, a
//!   confirmed re-publish then an ack, or a nack back to the queue;
//! - [`Outcome::record`] logs, counts and writes Redis together, the way
//!   vector's `internal_events` do.

use std::time::Duration;

use lakefleet::catalog::{DEFAULT_NOT_PUBLISHED_PATIENCE_SECONDS, DEFAULT_NOT_PUBLISHED_RETRY_SECONDS};
use lakefleet::failure::{Failure, Reason};
use lakefleet::lake::Uploaded;
use lakefleet::metrics::outcome as label;
use lakefleet::rabbitmq::parking::{ParkHeaders, key, task_headers};
use lakefleet::rabbitmq::topology;
use lakefleet::task::Task;
use lakefleet::util::text;
use lapin::Channel;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicNackOptions};
use tracing::{info, warn};

use crate::ctx::Ctx;

/// How a task that did its work ended.
pub enum Done {
    Converted {
        uploaded: Uploaded,
    },
    Skipped,
    /// Another worker holds the partition's lease.
    LeaseHeld,
    /// Its backfill was cancelled.
    Cancelled,
    /// Its source host is paused (Retry-After) or full for longer than a
    /// task waits in place: delayed for about `delay`, not an attempt.
    HostBusy {
        delay: Duration,
        why: String,
    },
}

/// What happened to a task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Succeeded {
        uploaded: Uploaded,
    },
    /// The partition was done already.
    Skipped,
    /// Its backfill was cancelled: acked without work.
    Cancelled,
    /// Another worker converts it now: delayed through the first retry
    /// queue, not counted as an attempt.
    LeaseHeld,
    /// Its source host is paused or full: delayed through the retry queue
    /// of `level` (the shortest that covers the pause), not an attempt.
    HostBusy {
        level: u32,
        why: String,
    },
    /// A transient failure: retried through retry queue `level`.
    Retry {
        level: u32,
        message: String,
    },
    /// Not published yet: asked again after `delay` (the publication
    /// calendar), not counted as an attempt.
    Wait {
        delay: Duration,
        since: chrono::DateTime<chrono::Utc>,
        message: String,
    },
    /// The worker is shutting down: the task goes back to the work queue
    /// as it came (a hand-back is not a failed delivery: not counted toward
    /// `poison`).
    HandedBack,
    Parked {
        reason: Reason,
        message: String,
    },
}

/// How the broker took the outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    Acked,
    /// The ack could not reach the broker (its channel died): the delivery
    /// comes again, and is deduped.
    AckLost,
    /// The re-publish failed: the delivery went back to the queue.
    Nacked(String),
}

impl Outcome {
    pub fn decide(result: Result<Done, Failure>, task: &Task, ctx: &Ctx) -> Outcome {
        let attempt = task.attempt;
        match result {
            Ok(Done::Converted { uploaded }) => Outcome::Succeeded { uploaded },
            Ok(Done::Skipped) => Outcome::Skipped,
            Ok(Done::LeaseHeld) => Outcome::LeaseHeld,
            Ok(Done::Cancelled) => Outcome::Cancelled,
            Ok(Done::HostBusy { delay, why }) => Outcome::HostBusy { level: ctx.topo.retry_level(1, Some(delay)), why },
            Err(Failure::Transient { message, retry_after }) if attempt < ctx.topo.max_attempts => {
                Outcome::Retry { level: ctx.topo.retry_level(attempt, retry_after), message }
            }
            Err(Failure::Transient { message, .. }) => {
                Outcome::parked(Reason::AttemptsExhausted, format!("gave up after {attempt} attempts: {message}"))
            }
            Err(Failure::Permanent { reason, message }) => Outcome::Parked { reason, message },
            Err(Failure::NotYet { message }) => Self::calendar(task, ctx, message),
        }
    }

    /// A partition that is due but not published: wait for the next look,
    /// or park it once the dataset's patience is over.
    fn calendar(task: &Task, ctx: &Ctx, message: String) -> Outcome {
        let now = chrono::Utc::now();
        let since = waiting_since(task).unwrap_or(now);
        // The dataset is known: the task passed the catalog check before any download.
        let (every, patience) = ctx
            .catalog
            .get(&task.dataset)
            .map(|d| (d.not_published_retry_seconds, d.not_published_patience_seconds))
            .unwrap_or((DEFAULT_NOT_PUBLISHED_RETRY_SECONDS, DEFAULT_NOT_PUBLISHED_PATIENCE_SECONDS));
        let waited = (now - since).to_std().unwrap_or_default();
        let patience = Duration::from_secs(patience);
        if waited >= patience {
            return Outcome::parked(
                Reason::NotPublishedYet,
                format!(
                    "{message}; still not published {}s after the first answer at {} (not_published_patience_seconds = {}); replay it when it appears",
                    waited.as_secs(),
                    since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    patience.as_secs()
                ),
            );
        }
        let delay = Duration::from_secs(every).min(patience - waited).max(Duration::from_secs(1));
        Outcome::Wait { delay, since, message }
    }

    pub fn parked(reason: Reason, message: impl AsRef<str>) -> Outcome {
        Outcome::Parked { reason, message: text::bounded(message.as_ref(), text::MAX_MESSAGE) }
    }

    /// The `outcome` label of `lakefleet_tasks_total`.
    fn label(&self) -> &'static str {
        match self {
            Outcome::Succeeded { .. } => label::SUCCEEDED,
            Outcome::Skipped => label::SKIPPED_DUPLICATE,
            Outcome::Cancelled => label::CANCELLED,
            Outcome::LeaseHeld | Outcome::HostBusy { .. } | Outcome::HandedBack => label::DELAYED,
            Outcome::Retry { .. } => label::RETRIED,
            Outcome::Wait { .. } => label::WAITING,
            Outcome::Parked { .. } => label::PARKED,
        }
    }

    /// Tells the broker. `task` is `None` for a message that is not a task;
    /// `redeliveries` is carried into a re-published copy.
    pub async fn settle(
        &self,
        ctx: &Ctx,
        publish: &Channel,
        d: &Delivery,
        task: Option<&Task>,
        redeliveries: u32,
    ) -> Settled {
        let (queue, (payload, headers)) = match (self, task) {
            (Outcome::Succeeded { .. } | Outcome::Skipped | Outcome::Cancelled, _) => return ack(d).await,
            // Every re-published copy stays in its task's lane.
            (Outcome::LeaseHeld, Some(t)) => {
                (ctx.topo.retry_queue_in(t.lane, 0), next_copy(t, t.attempt, redeliveries, None))
            }
            (Outcome::HandedBack, Some(t)) => {
                (ctx.topo.work_queue(t.lane).to_string(), next_copy(t, t.attempt, redeliveries, None))
            }
            (Outcome::HostBusy { level, .. }, Some(t)) => {
                (ctx.topo.retry_queue_in(t.lane, *level), next_copy(t, t.attempt, redeliveries, None))
            }
            (Outcome::Retry { level, message }, Some(t)) => {
                let last = Some((key::LAST_ERROR, message.clone()));
                (ctx.topo.retry_queue_in(t.lane, *level), next_copy(t, t.attempt + 1, redeliveries, last))
            }
            (Outcome::Wait { delay, since, .. }, Some(t)) => {
                let queue = match ctx.topo.declare_wait(publish, t.lane, *delay).await {
                    Ok(q) => q,
                    Err(e) => {
                        let _ = d.nack(BasicNackOptions { requeue: true, ..Default::default() }).await;
                        return Settled::Nacked(format!("declaring the calendar queue: {e}"));
                    }
                };
                let mut waiting = t.clone();
                waiting.waiting_since = Some(since.to_rfc3339());
                (queue, next_copy(&waiting, t.attempt, redeliveries, None))
            }
            (Outcome::Parked { reason, message }, _) => {
                let attempts = task.map(|t| t.attempt).unwrap_or(1);
                let h = ParkHeaders::new(*reason, message, attempts, &ctx.worker_id, task);
                (ctx.topo.parking.clone(), (d.data.clone(), h.to_table()))
            }
            (
                Outcome::LeaseHeld
                | Outcome::HostBusy { .. }
                | Outcome::Retry { .. }
                | Outcome::Wait { .. }
                | Outcome::HandedBack,
                None,
            ) => {
                unreachable!("only tasks are delayed, retried or waiting")
            }
        };
        match topology::publish_confirmed(publish, &queue, &payload, headers).await {
            Ok(()) => ack(d).await,
            Err(e) => {
                let why = format!("publishing to {queue}: {e}");
                let _ = d.nack(BasicNackOptions { requeue: true, ..Default::default() }).await;
                Settled::Nacked(why)
            }
        }
    }

    /// Logs, counts and writes Redis, once the broker has taken the outcome.
    pub async fn record(&self, ctx: &Ctx, task: Option<&Task>, dataset: &str, settled: &Settled, took: Duration) {
        let m = &ctx.metrics;
        let name = task.map(Task::label).unwrap_or_else(|| "(not a task)".into());
        match settled {
            Settled::Acked => {}
            Settled::AckLost => {
                warn!(task = %name, "ack not delivered (channel closed); the task will be redelivered and deduped");
                return;
            }
            Settled::Nacked(why) => {
                warn!(task = %name, error = %why, "returned the delivery to the queue");
                m.tasks.with_label_values(&[dataset, label::FAILED]).inc();
                return;
            }
        }
        m.tasks.with_label_values(&[dataset, self.label()]).inc();
        m.task_duration.with_label_values(&[dataset]).observe(took.as_secs_f64());
        let redis = match (self, task) {
            (Outcome::Succeeded { uploaded }, Some(t)) => {
                info!(task = %name, ?uploaded, secs = took.as_secs_f64(), "done");
                m.published(dataset, &t.partition);
                ctx.state.record_done(&t.backfill_id, &t.partition).await
            }
            (Outcome::Skipped, _) => {
                info!(task = %name, "skipped: already done");
                Ok(())
            }
            (Outcome::Cancelled, _) => {
                info!(task = %name, "cancelled: its backfill was cancelled; acked without work");
                Ok(())
            }
            (Outcome::HandedBack, _) => {
                info!(task = %name, "handed back to the work queue: the worker is shutting down (not an attempt)");
                Ok(())
            }
            (Outcome::LeaseHeld, _) => {
                m.lease_conflicts.with_label_values(&[dataset]).inc();
                info!(task = %name, "delayed: another worker holds the partition's lease");
                Ok(())
            }
            (Outcome::HostBusy { level, why }, _) => {
                let delay_ms = ctx.topo.retry_delay(*level).as_millis() as u64;
                info!(task = %name, delay_ms, why = %why, "delayed: waiting for the source host (not an attempt)");
                Ok(())
            }
            (Outcome::Retry { level, message }, Some(t)) => {
                let delay_ms = ctx.topo.retry_delay(*level).as_millis() as u64;
                warn!(task = %name, attempt = t.attempt, delay_ms, error = %message, "retrying");
                ctx.state.record_retry(&t.backfill_id).await
            }
            (Outcome::Wait { delay, since, message }, t) => {
                if let Some(t) = t {
                    m.not_published(dataset, &t.partition, since.timestamp());
                }
                info!(task = %name, next_look_s = delay.as_secs(), waiting_since = %since.to_rfc3339(), error = %message, "not published yet: asking again later");
                Ok(())
            }
            (Outcome::Parked { reason, message }, t) => {
                m.parked.with_label_values(&[dataset, reason.code()]).inc();
                if let (Reason::NotPublishedYet, Some(t)) = (reason, t) {
                    let since = waiting_since(t).unwrap_or_else(chrono::Utc::now);
                    m.not_published(dataset, &t.partition, since.timestamp());
                }
                warn!(task = %name, reason = reason.code(), error = %message, "parked");
                match t {
                    Some(t) => {
                        let error = format!("{}: {message}", reason.code());
                        ctx.state.record_parked(&t.backfill_id, &t.dataset, &t.partition, &error).await
                    }
                    None => Ok(()),
                }
            }
            _ => Ok(()),
        };
        if let Err(e) = redis {
            warn!(error = %e, task = %name, "Redis unavailable while recording the outcome; continuing without it");
        }
    }
}

/// When the source first answered "not published yet" for `t`, if it has.
fn waiting_since(t: &Task) -> Option<chrono::DateTime<chrono::Utc>> {
    let at = chrono::DateTime::parse_from_rfc3339(t.waiting_since.as_deref()?).ok()?;
    Some(at.with_timezone(&chrono::Utc))
}

/// The copy of `t` that goes to a retry queue: its attempt number, the
/// unacked deliveries so far, and the headers that name it.
fn next_copy(
    t: &Task,
    attempt: u32,
    redeliveries: u32,
    extra: Option<(&'static str, String)>,
) -> (Vec<u8>, lapin::types::FieldTable) {
    let mut next = t.clone();
    next.attempt = attempt;
    next.redeliveries = redeliveries;
    let mut pairs = task_headers(&next).to_vec();
    pairs.extend(extra);
    (next.encode(), topology::headers(&pairs))
}

/// Acks; `AckLost` when the channel died (the delivery will come again).
async fn ack(d: &Delivery) -> Settled {
    match d.ack(BasicAckOptions::default()).await {
        Ok(true) => Settled::Acked,
        Ok(false) | Err(_) => Settled::AckLost,
    }
}
