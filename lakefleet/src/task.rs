//! The task message: one per partition, MessagePack with named fields.
//!
//! Compatibility rules: fields may be added (old workers ignore them, new
//! workers default them); a change that old workers cannot honour bumps
//! [`MAJOR`], and a worker refuses a message whose major is newer than its own.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::catalog::Dataset;

/// Major version of the message format this build writes and reads.
pub const MAJOR: u16 = 1;

/// One unit of work: convert one source file into one Parquet object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    /// Message format major version ([`MAJOR`]).
    pub v: u16,
    pub backfill_id: String,
    pub dataset: String,
    /// Partition date, `YYYY-MM-DD`.
    pub partition: String,
    /// Where the file comes from (the official URL or the mirror's), as the
    /// producer planned it. Informational: the worker derives the URL from its
    /// catalog and the mirror, and parks a message that disagrees.
    pub source_url: String,
    /// Object key below the lake root, as the producer planned it; checked
    /// against the worker's catalog like `source_url`.
    pub object_key: String,
    /// 1 for the first delivery, incremented by each retry.
    pub attempt: u32,
    /// RFC 3339 time the producer enqueued the task.
    pub enqueued_at: String,
    /// Convert and overwrite even when the partition is already done
    /// (`producer backfill --overwrite`). Plain `--force` only re-publishes:
    /// the worker still skips partitions whose done marker exists.
    #[serde(default)]
    pub overwrite: bool,
    /// The backfill's mirror (`producer backfill --mirror`, validated there):
    /// files are fetched from `{mirror}/{official file name}`.
    #[serde(default)]
    pub mirror: Option<String>,
    /// Ask the source whether it changed since the partition was ingested
    /// (conditional request) and replace the object only if it did.
    #[serde(default)]
    pub refresh: bool,
    /// When the source first answered "not published yet" (RFC 3339): the
    /// publication calendar asks again until the dataset's patience is over.
    #[serde(default)]
    pub waiting_since: Option<String>,
    /// Times this task was delivered and never acked (a worker crashed or
    /// was killed on it), carried across the re-publishes of a lease
    /// conflict or a retry, which start a fresh broker delivery count.
    #[serde(default)]
    pub redeliveries: u32,
    /// The lane its backfill publishes to: its queues (work, retries,
    /// calendar) are the lane's; a message without one is `normal`.
    #[serde(default)]
    pub lane: Lane,
}

/// A backfill's lane. Workers take from the high lane first (three
/// deliveries in four when both lanes hold tasks), so that a small backfill
/// does not wait behind a large one. Per-host politeness is fleet-wide
/// (Redis) and holds across lanes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "cli", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Lane {
    #[default]
    Normal,
    High,
}

impl Lane {
    pub const ALL: [Lane; 2] = [Lane::Normal, Lane::High];

    pub fn name(self) -> &'static str {
        match self {
            Lane::Normal => "normal",
            Lane::High => "high",
        }
    }
}

/// Why a message could not be decoded.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("not a lakefleet task (invalid MessagePack): {0}")]
    Invalid(String),
    #[error("task message version {found} is newer than this worker understands ({MAJOR}); upgrade the worker")]
    NewerMajor { found: u16 },
}

#[derive(Deserialize)]
struct VersionOnly {
    v: u16,
}

impl Task {
    /// The first attempt of partition `date` of `ds`, as the producer plans it.
    pub fn plan(backfill_id: &str, ds: &Dataset, date: NaiveDate, mirror: Option<&str>, overwrite: bool) -> Task {
        Task {
            v: MAJOR,
            backfill_id: backfill_id.to_string(),
            dataset: ds.name.clone(),
            partition: date.to_string(),
            source_url: ds.fetch_url(date, mirror),
            object_key: ds.object_key(date),
            attempt: 1,
            enqueued_at: chrono::Utc::now().to_rfc3339(),
            overwrite,
            mirror: mirror.map(str::to_string),
            refresh: false,
            waiting_since: None,
            redeliveries: 0,
            lane: Lane::Normal,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        rmp_serde::to_vec_named(self).expect("a task always serialises")
    }

    pub fn decode(bytes: &[u8]) -> Result<Task, DecodeError> {
        let head: VersionOnly = rmp_serde::from_slice(bytes).map_err(|e| DecodeError::Invalid(e.to_string()))?;
        if head.v > MAJOR {
            return Err(DecodeError::NewerMajor { found: head.v });
        }
        rmp_serde::from_slice(bytes).map_err(|e| DecodeError::Invalid(e.to_string()))
    }

    /// `dataset/partition`, for logs and messages (bounded: the fields come
    /// from the queue, which is not a trusted source).
    pub fn label(&self) -> String {
        crate::util::text::bounded(&format!("{}/{}", self.dataset, self.partition), 200)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Task {
        Task {
            v: MAJOR,
            backfill_id: "bf-1".into(),
            dataset: "mta-turnstile".into(),
            partition: "2022-01-08".into(),
            source_url: "http://127.0.0.1/turnstile_220108.txt".into(),
            object_key: "mta-turnstile/year=2022/turnstile_220108.parquet".into(),
            attempt: 1,
            enqueued_at: "2026-11-21T10:00:00Z".into(),
            overwrite: false,
            mirror: Some("http://127.0.0.1".into()),
            refresh: true,
            waiting_since: Some("2026-11-21T10:00:00Z".into()),
            redeliveries: 2,
            lane: Lane::High,
        }
    }

    #[test]
    fn round_trip() {
        let t = sample();
        assert_eq!(Task::decode(&t.encode()).unwrap(), t);
    }

    #[derive(Serialize)]
    struct V1Before {
        v: u16,
        backfill_id: String,
        dataset: String,
        partition: String,
        source_url: String,
        object_key: String,
        attempt: u32,
        enqueued_at: String,
    }

    #[test]
    fn decodes_a_message_of_an_older_producer() {
        let t = sample();
        let old = V1Before {
            v: 1,
            backfill_id: t.backfill_id.clone(),
            dataset: t.dataset.clone(),
            partition: t.partition.clone(),
            source_url: t.source_url.clone(),
            object_key: t.object_key.clone(),
            attempt: 1,
            enqueued_at: t.enqueued_at.clone(),
        };
        let got = Task::decode(&rmp_serde::to_vec_named(&old).unwrap()).unwrap();
        assert_eq!((got.mirror, got.redeliveries, got.overwrite, got.lane), (None, 0, false, Lane::Normal));
    }

    #[derive(Serialize)]
    struct Future {
        #[serde(flatten)]
        task: Task,
        priority: u8,
        tags: Vec<String>,
    }

    #[test]
    fn decodes_a_message_with_unknown_fields() {
        let t = sample();
        let bytes = rmp_serde::to_vec_named(&Future { task: t.clone(), priority: 3, tags: vec!["x".into()] }).unwrap();
        assert_eq!(Task::decode(&bytes).unwrap(), t);
    }

    #[test]
    fn refuses_a_newer_major_and_garbage() {
        let mut t = sample();
        t.v = MAJOR + 1;
        let e = Task::decode(&t.encode()).unwrap_err();
        assert!(e.to_string().contains("newer than this worker"), "{e}");
        let e = Task::decode(b"{\"json\": true}").unwrap_err();
        assert!(matches!(e, DecodeError::Invalid(_)), "{e}");
    }
}
