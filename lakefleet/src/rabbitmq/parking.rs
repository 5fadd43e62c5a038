//! The headers of a parked message: written by the worker when it parks a
//! task, read back by `producer dlq` (and anything else that reads the
//! parking queue). One type, so that the two sides cannot drift apart.
//!
//! Every value is bounded ([`text::MAX_MESSAGE`]): a header larger than
//! RabbitMQ's frame size closes the connection.

use lapin::types::FieldTable;

use crate::failure::Reason;
use crate::rabbitmq::topology::{header_str, headers, x_death};
use crate::task::Task;
use crate::util::text;

/// Header names (`x-lakefleet-*`).
pub mod key {
    pub const REASON: &str = "x-lakefleet-reason";
    pub const ERROR: &str = "x-lakefleet-error";
    pub const ATTEMPTS: &str = "x-lakefleet-attempts";
    pub const WORKER: &str = "x-lakefleet-worker";
    pub const FAILED_AT: &str = "x-lakefleet-failed-at";
    pub const BACKFILL: &str = "x-lakefleet-backfill";
    pub const DATASET: &str = "x-lakefleet-dataset";
    pub const PARTITION: &str = "x-lakefleet-partition";
    pub const LAST_ERROR: &str = "x-lakefleet-last-error";
}

/// What an operator needs to know about a parked task.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ParkHeaders {
    /// The reason code ([`Reason::code`]), or what RabbitMQ said (`delivery_limit`).
    pub reason: String,
    pub error: String,
    pub attempts: u32,
    pub worker: String,
    /// RFC 3339.
    pub failed_at: String,
    pub backfill: String,
    pub dataset: String,
    pub partition: String,
}

/// The three headers that name a task, on every message the fleet publishes
/// (so that a message whose body cannot be read can still be shown and filtered).
pub fn task_headers(t: &Task) -> [(&'static str, String); 3] {
    [
        (key::BACKFILL, text::bounded(&t.backfill_id, 200)),
        (key::DATASET, text::bounded(&t.dataset, 200)),
        (key::PARTITION, text::bounded(&t.partition, 200)),
    ]
}

impl ParkHeaders {
    /// The headers of a task parked now by `worker` for `reason`.
    pub fn new(reason: Reason, error: &str, attempts: u32, worker: &str, task: Option<&Task>) -> ParkHeaders {
        let [(_, backfill), (_, dataset), (_, partition)] = task.map(task_headers).unwrap_or_default();
        ParkHeaders {
            reason: reason.code().to_string(),
            error: text::bounded(error, text::MAX_MESSAGE),
            attempts,
            worker: text::bounded(worker, 200),
            failed_at: chrono::Utc::now().to_rfc3339(),
            backfill,
            dataset,
            partition,
        }
    }

    pub fn to_table(&self) -> FieldTable {
        headers(&[
            (key::REASON, self.reason.clone()),
            (key::ERROR, self.error.clone()),
            (key::ATTEMPTS, self.attempts.to_string()),
            (key::WORKER, self.worker.clone()),
            (key::FAILED_AT, self.failed_at.clone()),
            (key::BACKFILL, self.backfill.clone()),
            (key::DATASET, self.dataset.clone()),
            (key::PARTITION, self.partition.clone()),
        ])
    }

    /// Reads the headers of a parked message. A message parked by RabbitMQ
    /// itself (the work queue's delivery limit) has no `x-lakefleet-reason`:
    /// its reason comes from `x-death`. Names missing from the headers are
    /// taken from the task in the body, when it can be read.
    pub fn from_table(t: Option<&FieldTable>, task: Option<&Task>) -> ParkHeaders {
        let (deaths, death_reason) = x_death(t);
        let reason = header_str(t, key::REASON).or(death_reason).unwrap_or_else(|| "unknown".into());
        let error = header_str(t, key::ERROR).unwrap_or_else(|| {
            if reason == Reason::DeliveryLimit.code() {
                format!("delivered {deaths}+ times without an ack (workers crashed on it?)")
            } else {
                String::new()
            }
        });
        let named = task.map(task_headers);
        let pick =
            |k: &str, i: usize| header_str(t, k).or_else(|| named.as_ref().map(|n| n[i].1.clone())).unwrap_or_default();
        ParkHeaders {
            error,
            attempts: header_str(t, key::ATTEMPTS).and_then(|a| a.parse().ok()).unwrap_or(0),
            worker: header_str(t, key::WORKER).unwrap_or_default(),
            failed_at: header_str(t, key::FAILED_AT).unwrap_or_default(),
            backfill: pick(key::BACKFILL, 0),
            dataset: pick(key::DATASET, 1),
            partition: pick(key::PARTITION, 2),
            reason,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn task() -> Task {
        let cat = crate::catalog::Catalog::builtin();
        Task::plan("bf-1", cat.get("mta-turnstile").unwrap(), "2022-01-08".parse().unwrap(), None, false)
    }

    #[test]
    fn every_field_round_trips_through_the_amqp_headers() {
        let h = ParkHeaders {
            reason: "bad_row".into(),
            error: "turnstile_220108.txt: line 5, column 10 (entries): cannot parse \"x\" as int64".into(),
            attempts: 3,
            worker: "host-42".into(),
            failed_at: "2026-11-22T10:00:00+00:00".into(),
            backfill: "bf-1".into(),
            dataset: "mta-turnstile".into(),
            partition: "2022-01-08".into(),
        };
        assert_eq!(ParkHeaders::from_table(Some(&h.to_table()), None), h);
        for r in Reason::ALL {
            let p = ParkHeaders::new(r, "e", 1, "w", Some(&task()));
            let back = ParkHeaders::from_table(Some(&p.to_table()), None);
            assert_eq!(back, p);
            assert_eq!(Reason::from_code(&back.reason), Some(r));
        }
    }

    #[test]
    fn huge_values_are_bounded_and_names_fall_back_to_the_body() {
        let mut t = task();
        t.dataset = "d".repeat(300_000);
        let p = ParkHeaders::new(Reason::BadMessage, &"e".repeat(20 << 20), 1, "w", Some(&t));
        assert!(
            p.error.len() < 2 * text::MAX_MESSAGE && p.dataset.len() < 300,
            "{} {}",
            p.error.len(),
            p.dataset.len()
        );
        let read = ParkHeaders::from_table(None, Some(&task()));
        assert_eq!((read.reason.as_str(), read.partition.as_str()), ("unknown", "2022-01-08"));
    }
}
