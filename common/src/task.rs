//! The task message: one per partition, MessagePack with named fields.
//!
//! Compatibility rules: fields may be added (old workers ignore them, new
//! workers default them); a change that old workers cannot honour bumps
//! [`MAJOR`], and a worker refuses a message whose major is newer than its own.

use serde::{Deserialize, Serialize};

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
    /// Where the worker downloads the file (the official URL or a mirror).
    pub source_url: String,
    /// Object key below the lake root.
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

    /// The message headers that name the task (so that `producer dlq` can
    /// show and filter even a message whose body it cannot read).
    pub fn header_pairs(&self) -> [(&'static str, String); 3] {
        [
            ("x-lakefleet-backfill", self.backfill_id.clone()),
            ("x-lakefleet-dataset", self.dataset.clone()),
            ("x-lakefleet-partition", self.partition.clone()),
        ]
    }

    /// `dataset/partition`, for logs and messages.
    pub fn label(&self) -> String {
        format!("{}/{}", self.dataset, self.partition)
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
        }
    }

    #[test]
    fn round_trip() {
        let t = sample();
        assert_eq!(Task::decode(&t.encode()).unwrap(), t);
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
