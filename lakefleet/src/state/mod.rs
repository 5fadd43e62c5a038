//! Redis: done markers, leases and backfill progress. Every key starts with
//! the fleet's prefix.
//!
//! | key | type | what |
//! | --- | --- | --- |
//! | `{p}:done:{dataset}:{partition}` | hash | written after the upload: key, size, rows, source sha256, time |
//! | `{p}:lease:{dataset}:{partition}` | string (PX) | the worker converting it now |
//! | `{p}:failed:{dataset}:{partition}` | string | last parked error, cleared when done |
//! | `{p}:backfills` | zset | backfill ids by creation time |
//! | `{p}:bf:{id}` | hash | dataset, from, to, planned, created, retried, mirror |
//! | `{p}:bf:{id}:done` / `:skipped` | set | partitions done / skipped as duplicates |
//! | `{p}:bf:{id}:dead` | hash | parked partition -> last error (the key keeps its first name: stores hold running backfills) |
//!
//! Redis keeps nothing on disk here: losing these keys makes work more
//! expensive (partitions are converted again) but never incorrect, because the
//! lake write is deterministic and conditional.

use std::sync::LazyLock;
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};

mod hosts;
pub use hosts::*;
mod backfills;
pub use backfills::*;

/// A done marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoneMarker {
    pub object_key: String,
    pub size: u64,
    pub rows: u64,
    pub sha256: String,
    /// What identified the source when it was ingested (empty when the
    /// server sent none): a refresh asks the source with them.
    pub source: crate::source::Validators,
}

#[derive(Clone)]
pub struct State {
    con: ConnectionManager,
    prefix: String,
}

/// When the backfill was cancelled, records the partition as cancelled and
/// returns 2; else, when the done marker exists (and ARGV[2] asks for the
/// check), records the partition as done and skipped in the backfill (and
/// no longer parked) and returns 1; 0 otherwise. One round trip for the
/// duplicate path. Scripts are built once: `Script::new` hashes its source.
static CHECK_TASK: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('HEXISTS', KEYS[5], 'cancelled_at') == 1 then
  redis.call('SADD', KEYS[6], ARGV[1])
  return 2
end
if ARGV[2] == '1' and redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('SADD', KEYS[2], ARGV[1]); redis.call('HDEL', KEYS[3], ARGV[1]); redis.call('SADD', KEYS[4], ARGV[1])
  return 1
end
return 0",
    )
});

/// What a task should do, as Redis knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TaskCheck {
    /// Convert it.
    Todo,
    /// The partition is done: counted as a skipped duplicate.
    Done,
    /// Its backfill was cancelled: counted as cancelled.
    Cancelled,
}
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(r"if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) else return 0 end")
});
static RENEW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) else return 0 end",
    )
});

impl State {
    /// Connects; the error names the (redacted) address. The connection
    /// manager reconnects by itself after Redis restarts.
    pub async fn connect(redis_url: &str, prefix: &str) -> anyhow::Result<State> {
        let shown = crate::util::text::redact(redis_url);
        let client = redis::Client::open(redis_url).map_err(|e| anyhow::anyhow!("invalid REDIS_URL {shown}: {e}"))?;
        let cfg = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(5)))
            .set_response_timeout(Some(Duration::from_secs(5)))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(2));
        let con = tokio::time::timeout(Duration::from_secs(10), client.get_connection_manager_with_config(cfg))
            .await
            .map_err(|_| anyhow::anyhow!("cannot connect to Redis at {shown}: no answer within 10s"))?
            .map_err(|e| anyhow::anyhow!("cannot connect to Redis at {shown}: {e}"))?;
        Ok(State { con, prefix: prefix.to_string() })
    }

    fn k(&self, parts: &[&str]) -> String {
        let mut s = self.prefix.clone();
        for p in parts {
            s.push(':');
            s.push_str(p);
        }
        s
    }

    pub async fn ping(&self) -> redis::RedisResult<()> {
        let mut c = self.con.clone();
        redis::cmd("PING").query_async::<String>(&mut c).await.map(|_| ())
    }

    pub async fn done_marker(&self, dataset: &str, partition: &str) -> redis::RedisResult<Option<DoneMarker>> {
        let mut c = self.con.clone();
        let v: std::collections::HashMap<String, String> = c.hgetall(self.k(&["done", dataset, partition])).await?;
        if v.is_empty() {
            return Ok(None);
        }
        let get = |f: &str| v.get(f).cloned().unwrap_or_default();
        Ok(Some(DoneMarker {
            object_key: get("object_key"),
            size: get("size").parse().unwrap_or(0),
            rows: get("rows").parse().unwrap_or(0),
            sha256: get("sha256"),
            source: crate::source::Validators {
                etag: Some(get("etag")).filter(|s| !s.is_empty()),
                last_modified: Some(get("last_modified")).filter(|s| !s.is_empty()),
                content_length: get("content_length").parse().ok(),
            },
        }))
    }

    /// Whether backfill `id` was cancelled (the task is counted as such) or,
    /// when `dedupe`, whether the partition is done (counted as a skipped
    /// duplicate), in one round trip.
    pub async fn check_task(
        &self,
        dataset: &str,
        partition: &str,
        id: &str,
        dedupe: bool,
    ) -> redis::RedisResult<TaskCheck> {
        let mut c = self.con.clone();
        let n: i64 = CHECK_TASK
            .key(self.k(&["done", dataset, partition]))
            .key(self.k(&["bf", id, "done"]))
            .key(self.k(&["bf", id, "dead"]))
            .key(self.k(&["bf", id, "skipped"]))
            .key(self.k(&["bf", id]))
            .key(self.k(&["bf", id, "cancelled"]))
            .arg(partition)
            .arg(if dedupe { "1" } else { "0" })
            .invoke_async(&mut c)
            .await?;
        Ok(match n {
            2 => TaskCheck::Cancelled,
            1 => TaskCheck::Done,
            _ => TaskCheck::Todo,
        })
    }

    pub async fn mark_done(&self, dataset: &str, partition: &str, m: &DoneMarker) -> redis::RedisResult<()> {
        let mut c = self.con.clone();
        let now = chrono::Utc::now().to_rfc3339();
        redis::pipe()
            .hset_multiple(
                self.k(&["done", dataset, partition]),
                &[
                    ("object_key", m.object_key.clone()),
                    ("size", m.size.to_string()),
                    ("rows", m.rows.to_string()),
                    ("sha256", m.sha256.clone()),
                    ("etag", m.source.etag.clone().unwrap_or_default()),
                    ("last_modified", m.source.last_modified.clone().unwrap_or_default()),
                    ("content_length", m.source.content_length.map(|n| n.to_string()).unwrap_or_default()),
                    ("at", now),
                ],
            )
            .ignore()
            .del(self.k(&["failed", dataset, partition]))
            .ignore()
            .exec_async(&mut c)
            .await
    }

    pub async fn clear_done(&self, dataset: &str, partition: &str) -> redis::RedisResult<()> {
        let mut c = self.con.clone();
        c.del(self.k(&["done", dataset, partition])).await
    }

    /// Takes the partition's lease for `ttl` if nobody holds it.
    pub async fn try_lease(
        &self,
        dataset: &str,
        partition: &str,
        token: &str,
        ttl: Duration,
    ) -> redis::RedisResult<bool> {
        let mut c = self.con.clone();
        let r: Option<String> = redis::cmd("SET")
            .arg(self.k(&["lease", dataset, partition]))
            .arg(token)
            .arg("NX")
            .arg("PX")
            .arg(ttl.as_millis() as u64)
            .query_async(&mut c)
            .await?;
        Ok(r.is_some())
    }

    /// Extends the lease if `token` still holds it.
    pub async fn renew_lease(
        &self,
        dataset: &str,
        partition: &str,
        token: &str,
        ttl: Duration,
    ) -> redis::RedisResult<bool> {
        let mut c = self.con.clone();
        let n: i64 = RENEW
            .key(self.k(&["lease", dataset, partition]))
            .arg(token)
            .arg(ttl.as_millis() as u64)
            .invoke_async(&mut c)
            .await?;
        Ok(n == 1)
    }

    pub async fn release_lease(&self, dataset: &str, partition: &str, token: &str) -> redis::RedisResult<()> {
        let mut c = self.con.clone();
        let _: i64 = RELEASE.key(self.k(&["lease", dataset, partition])).arg(token).invoke_async(&mut c).await?;
        Ok(())
    }

    pub async fn lease_held(&self, dataset: &str, partition: &str) -> redis::RedisResult<bool> {
        Ok(self.lease_holder(dataset, partition).await?.is_some())
    }

    /// The token of the worker holding the partition's lease (`worker-id:pid-n`).
    pub async fn lease_holder(&self, dataset: &str, partition: &str) -> redis::RedisResult<Option<String>> {
        let mut c = self.con.clone();
        c.get(self.k(&["lease", dataset, partition])).await
    }

    pub async fn failed(&self, dataset: &str, partition: &str) -> redis::RedisResult<Option<String>> {
        let mut c = self.con.clone();
        c.get(self.k(&["failed", dataset, partition])).await
    }
}
