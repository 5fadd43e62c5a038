//! RabbitMQ topology, declared idempotently by both binaries, and confirmed
//! publishing.
//!
//! ```text
//! producer ──► {prefix}.work (quorum, delivery limit) ──► worker
//!                 ▲        │ delivery limit exceeded (poison)
//!                 │        └──────────────► {prefix}.parking
//!  TTL expiry     │
//! {prefix}.retry.{ttl}ms (quorum, one per backoff level) ◄── worker (transient failure)
//!                                  worker (permanent / exhausted) ──► {prefix}.parking
//! ```
//!
//! Two lanes: the normal lane is the above; the high lane has the same
//! queues under other names (`{prefix}.work.high`, `{prefix}.high.retry.*`,
//! `{prefix}.high.wait.*`), and a task's retries and calendar waits stay in
//! its lane ([`crate::task::Lane`]). Workers consume both, the high lane
//! first. Lanes are queues, not RabbitMQ priorities: quorum queues have
//! message priorities only from RabbitMQ 4.0, and a classic queue's
//! `x-max-priority` cannot be added to a declared queue.
//!
//! All queues are published to through the default exchange (routing key =
//! queue name), with the mandatory flag and publisher confirms. Queue
//! arguments never change for a given name: the retry TTL is part of the retry
//! queue's name, so a fleet that changes its base delay declares new queues
//! instead of failing with PRECONDITION_FAILED.

use std::time::Duration;

use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};

use crate::task::Lane;

/// How many times the broker may deliver one message before it parks it
/// (crashes and requeues included). Fixed: it is a queue argument.
pub const DELIVERY_LIMIT: i64 = 10;

/// Number of retry (backoff) levels; level `n` waits `base * 2^n`.
pub const RETRY_LEVELS: u32 = 6;

/// Names and tunables of one fleet's queues.
#[derive(Debug, Clone)]
pub struct Topology {
    pub prefix: String,
    /// The normal lane's work queue.
    pub work: String,
    /// The high lane's work queue.
    pub work_high: String,
    pub parking: String,
    pub retry_base_ms: u64,
    pub max_attempts: u32,
}

impl Topology {
    /// Takes validated settings ([`crate::config::Connections::validate`]:
    /// a base delay and an attempt count of at least 1).
    pub fn new(prefix: &str, retry_base_ms: u64, max_attempts: u32) -> Self {
        debug_assert!(retry_base_ms >= 1 && max_attempts >= 1, "validated settings");
        Topology {
            prefix: prefix.to_string(),
            work: format!("{prefix}.work"),
            work_high: format!("{prefix}.work.high"),
            parking: format!("{prefix}.parking"),
            retry_base_ms,
            max_attempts,
        }
    }

    /// TTL of retry level `level`.
    pub fn retry_delay(&self, level: u32) -> Duration {
        Duration::from_millis(self.retry_base_ms.saturating_mul(1 << level.min(RETRY_LEVELS - 1)))
    }

    /// The work queue of `lane`.
    pub fn work_queue(&self, lane: Lane) -> &str {
        match lane {
            Lane::Normal => &self.work,
            Lane::High => &self.work_high,
        }
    }

    /// The names of `lane`'s retry and wait queues start with this.
    fn lane_prefix(&self, lane: Lane) -> String {
        match lane {
            Lane::Normal => self.prefix.clone(),
            Lane::High => format!("{}.high", self.prefix),
        }
    }

    /// Name of the normal lane's retry queue of `level`.
    pub fn retry_queue(&self, level: u32) -> String {
        self.retry_queue_in(Lane::Normal, level)
    }

    /// Name of `lane`'s retry queue of `level`.
    pub fn retry_queue_in(&self, lane: Lane, level: u32) -> String {
        format!("{}.retry.{}ms", self.lane_prefix(lane), self.retry_delay(level).as_millis())
    }

    /// The retry level for the retry after failed attempt `attempt` (1-based),
    /// or the smallest level whose delay covers `at_least` (Retry-After).
    pub fn retry_level(&self, attempt: u32, at_least: Option<Duration>) -> u32 {
        let mut level = attempt.saturating_sub(1).min(RETRY_LEVELS - 1);
        if let Some(min) = at_least {
            while level < RETRY_LEVELS - 1 && self.retry_delay(level) < min {
                level += 1;
            }
        }
        level
    }

    /// Name of the normal lane's calendar queue that holds a task for `delay`.
    pub fn wait_queue(&self, delay: Duration) -> String {
        self.wait_queue_in(Lane::Normal, delay)
    }

    /// Name of `lane`'s calendar queue that holds a task for `delay`.
    pub fn wait_queue_in(&self, lane: Lane, delay: Duration) -> String {
        format!("{}.wait.{}ms", self.lane_prefix(lane), delay.as_millis())
    }

    /// Declares `lane`'s calendar queue of `delay` (declared when first
    /// needed: the delays come from the catalog): its messages go back to
    /// the lane's work queue after `delay`.
    pub async fn declare_wait(&self, ch: &Channel, lane: Lane, delay: Duration) -> lapin::Result<String> {
        let name = self.wait_queue_in(lane, delay);
        let mut args = FieldTable::default();
        args.insert("x-queue-type".into(), lstr("quorum"));
        args.insert("x-message-ttl".into(), AMQPValue::LongLongInt(delay.as_millis() as i64));
        dead_letter_to(&mut args, self.work_queue(lane));
        let durable = QueueDeclareOptions { durable: true, ..Default::default() };
        ch.queue_declare(name.as_str().into(), durable, args).await?;
        Ok(name)
    }

    /// Every queue [`Topology::declare`] declares (the calendar's are
    /// declared when needed and are not listed).
    pub fn all_queues(&self) -> Vec<String> {
        let mut v = vec![self.parking.clone()];
        for lane in Lane::ALL {
            v.push(self.work_queue(lane).to_string());
            v.extend((0..RETRY_LEVELS).map(|l| self.retry_queue_in(lane, l)));
        }
        v
    }

    /// Declares every queue; safe to call any number of times.
    pub async fn declare(&self, ch: &Channel) -> lapin::Result<()> {
        let durable = QueueDeclareOptions { durable: true, ..Default::default() };
        let mut parking = FieldTable::default();
        parking.insert("x-queue-type".into(), lstr("quorum"));
        ch.queue_declare(self.parking.as_str().into(), durable, parking).await?;

        for lane in Lane::ALL {
            let work_queue = self.work_queue(lane);
            let mut work = FieldTable::default();
            work.insert("x-queue-type".into(), lstr("quorum"));
            work.insert("x-delivery-limit".into(), AMQPValue::LongLongInt(DELIVERY_LIMIT));
            dead_letter_to(&mut work, &self.parking);
            ch.queue_declare(work_queue.into(), durable, work).await?;

            for level in 0..RETRY_LEVELS {
                let mut retry = FieldTable::default();
                retry.insert("x-queue-type".into(), lstr("quorum"));
                retry
                    .insert("x-message-ttl".into(), AMQPValue::LongLongInt(self.retry_delay(level).as_millis() as i64));
                dead_letter_to(&mut retry, work_queue);
                ch.queue_declare(self.retry_queue_in(lane, level).as_str().into(), durable, retry).await?;
            }
        }
        Ok(())
    }
}

fn lstr(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s))
}

/// At-least-once dead-lettering to `target` through the default exchange.
fn dead_letter_to(args: &mut FieldTable, target: &str) {
    args.insert("x-dead-letter-exchange".into(), lstr(""));
    args.insert("x-dead-letter-routing-key".into(), lstr(target));
    args.insert("x-dead-letter-strategy".into(), lstr("at-least-once"));
    args.insert("x-overflow".into(), lstr("reject-publish"));
}

/// Connects to the first node of `amqp` that answers, starting after the
/// node this process used last (a node that was lost is tried last); the
/// error names every (redacted) address and why each failed.
pub async fn connect(amqp: &super::AmqpNodes, name: &str) -> anyhow::Result<Connection> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let nodes = amqp.nodes();
    let first = NEXT.load(Ordering::Relaxed) % nodes.len();
    let mut failed = Vec::new();
    for i in 0..nodes.len() {
        let k = (first + i) % nodes.len();
        let url = nodes[k].as_str();
        let props = ConnectionProperties::default().with_connection_name(LongString::from(name));
        // A node that does not answer must leave time for the others.
        let wait = Duration::from_secs(if nodes.len() > 1 { 5 } else { 10 });
        match tokio::time::timeout(wait, Connection::connect(url, props)).await {
            Ok(Ok(c)) => {
                // Next time (a reconnect after this node is lost), start with the next node.
                NEXT.store(k + 1, Ordering::Relaxed);
                if i > 0 {
                    tracing::info!(node = %crate::util::text::redact(url), "connected to another RabbitMQ node");
                }
                return Ok(c);
            }
            Ok(Err(e)) => failed.push(format!("{}: {e}", crate::util::text::redact(url))),
            Err(_) => failed.push(format!("{}: no answer within {}s", crate::util::text::redact(url), wait.as_secs())),
        }
    }
    match failed.as_slice() {
        [one] => anyhow::bail!("cannot connect to RabbitMQ at {one}"),
        all => anyhow::bail!("cannot connect to any RabbitMQ node of AMQP_URL: {}", all.join("; ")),
    }
}

/// A channel in publisher-confirm mode.
pub async fn confirm_channel(conn: &Connection) -> lapin::Result<Channel> {
    let ch = conn.create_channel().await?;
    ch.confirm_select(ConfirmSelectOptions::default()).await?;
    Ok(ch)
}

/// Why a publish did not make it.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("broker error: {0}")]
    Broker(#[from] lapin::Error),
    #[error("the broker refused the message (nack)")]
    Nacked,
    #[error("the message was returned as unroutable: no queue {0:?} (is the topology declared?)")]
    Unroutable(String),
}

/// Headers for a message: string values only.
pub fn headers(pairs: &[(&str, String)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in pairs {
        t.insert(ShortString::from(*k), lstr(v));
    }
    t
}

/// Publishes `payload` persistently to `queue`, mandatory, and waits for the
/// broker's confirm. `Ok` means the broker has taken responsibility for it.
pub async fn publish_confirmed(
    ch: &Channel,
    queue: &str,
    payload: &[u8],
    headers: FieldTable,
) -> Result<(), PublishError> {
    let props = BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("application/msgpack".into())
        .with_headers(headers);
    let confirm = ch
        .basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions { mandatory: true, ..Default::default() },
            payload,
            props,
        )
        .await?
        .await?;
    if confirm.is_nack() {
        return Err(PublishError::Nacked);
    }
    if confirm.take_message().is_some() {
        return Err(PublishError::Unroutable(queue.to_string()));
    }
    Ok(())
}

/// A header as text, whatever AMQP type it was sent with.
pub fn header_str(t: Option<&FieldTable>, key: &str) -> Option<String> {
    let v = t?.inner().get(key)?;
    Some(value_to_string(v))
}

pub fn value_to_string(v: &AMQPValue) -> String {
    match v {
        AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        AMQPValue::ShortString(s) => s.as_str().to_string(),
        AMQPValue::LongLongInt(n) => n.to_string(),
        AMQPValue::LongInt(n) => n.to_string(),
        AMQPValue::LongUInt(n) => n.to_string(),
        AMQPValue::ShortInt(n) => n.to_string(),
        AMQPValue::ShortUInt(n) => n.to_string(),
        AMQPValue::Timestamp(n) => n.to_string(),
        AMQPValue::Boolean(b) => b.to_string(),
        other => format!("{other:?}"),
    }
}

/// Sum of the `count` of `x-death` entries (an array of tables; counts are
/// read loosely typed), and the `reason` of the first entry.
pub fn x_death(t: Option<&FieldTable>) -> (u64, Option<String>) {
    let Some(AMQPValue::FieldArray(arr)) = t.and_then(|t| t.inner().get("x-death")) else {
        return (0, None);
    };
    let mut count = 0;
    let mut reason = None;
    for v in arr.as_slice() {
        if let AMQPValue::FieldTable(e) = v {
            if let Some(c) = e.inner().get("count") {
                count += value_to_string(c).parse::<u64>().unwrap_or(0);
            }
            if reason.is_none() {
                reason = e.inner().get("reason").map(value_to_string);
            }
        }
    }
    (count, reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_levels_grow_and_honour_retry_after() {
        let t = Topology::new("t", 1000, 5);
        assert_eq!(t.retry_queue(0), "t.retry.1000ms");
        assert_eq!(t.retry_queue(2), "t.retry.4000ms");
        assert_eq!(t.retry_level(1, None), 0);
        assert_eq!(t.retry_level(3, None), 2);
        assert_eq!(t.retry_level(99, None), RETRY_LEVELS - 1);
        assert_eq!(t.retry_level(1, Some(Duration::from_millis(3500))), 2);
        // Both lanes: the normal lane keeps the names of before.
        assert_eq!(t.all_queues().len(), 1 + 2 * (1 + RETRY_LEVELS as usize));
        assert_eq!(t.work_queue(Lane::High), "t.work.high");
        assert_eq!(t.retry_queue_in(Lane::High, 0), "t.high.retry.1000ms");
        assert_eq!(t.wait_queue_in(Lane::High, Duration::from_secs(6)), "t.high.wait.6000ms");
        assert_eq!(t.wait_queue(Duration::from_secs(6)), "t.wait.6000ms");
    }
}
