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
//! | `{p}:bf:{id}:dead` | hash | parked partition -> last error |
//!
//! Redis keeps nothing on disk here: losing these keys makes work more
//! expensive (partitions are converted again) but never incorrect, because the
//! lake write is deterministic and conditional.

use std::sync::LazyLock;
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Script};

/// A source host's limits, shared by the whole fleet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostLimits {
    /// Downloads from the host at once.
    pub concurrent: u32,
    /// Download starts per second.
    pub per_second: u32,
    /// A slot frees itself this long after its holder's last heartbeat (a
    /// worker that died, [`HOST_SLOT_TTL`]).
    pub slot_ttl: Duration,
}

/// A host slot is a lease: its holder renews it every [`HOST_SLOT_HEARTBEAT`];
/// a slot whose holder died frees itself this long after the last renewal.
pub const HOST_SLOT_TTL: Duration = Duration::from_secs(30);
/// How often a held host slot is renewed.
pub const HOST_SLOT_HEARTBEAT: Duration = Duration::from_secs(10);

/// A source host as Redis knows it: `producer hosts`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HostView {
    /// `host:port`.
    pub host: String,
    /// Slot holders (`{worker}:{pid}-{n}`) and when each slot expires
    /// without a heartbeat, in ms from now.
    pub slots: Vec<(String, i64)>,
    /// When the pause ends, in ms from now; none when not paused.
    pub paused_ms: Option<i64>,
}

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

/// A backfill's counts, as `producer status` shows them.
#[derive(Debug, Clone, Default)]
pub struct BackfillStatus {
    pub id: String,
    pub dataset: String,
    pub from: String,
    pub to: String,
    pub created: String,
    pub planned: u64,
    pub done: u64,
    pub skipped: u64,
    pub retried: u64,
    pub dead: Vec<(String, String)>,
    /// Partitions whose tasks were acked without work after `producer cancel`.
    pub cancelled: u64,
    /// When the backfill was cancelled (RFC 3339), if it was.
    pub cancelled_at: Option<String>,
}

impl BackfillStatus {
    /// Partitions neither done, parked nor cancelled.
    pub fn pending(&self) -> u64 {
        self.planned.saturating_sub(self.done + self.dead.len() as u64 + self.cancelled)
    }
    pub fn finished(&self) -> bool {
        self.planned > 0 && self.pending() == 0
    }
}

/// What `backfill` reads in one round trip: meta, done, skipped, dead, cancelled.
type BackfillRow = (std::collections::HashMap<String, String>, u64, u64, Vec<(String, String)>, u64);

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

/// One start at a source host, shared by the fleet: returns 0 when it may
/// start now, else the milliseconds to wait (the host is paused by a 429,
/// its requests of the last second reached the rate, or, for a download,
/// all its slots are taken). Redis's clock is the one clock of the fleet.
/// A download (ARGV[3] > 0) also takes a slot: a lease that expires after
/// ARGV[4] ms unless renewed; a further request under a held slot (a
/// Socrata page, ARGV[3] = 0) takes only the rate.
/// KEYS: pause (until ms), starts (zset of request starts), slots (zset
/// token -> expiry ms); ARGV: token, max per second, max concurrent (0: no
/// slot), slot TTL ms.
static HOST_START: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local pause = tonumber(redis.call('GET', KEYS[1]) or '0')
if pause > now then return pause - now end
local slot = tonumber(ARGV[3]) > 0
if slot then
  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)
  if redis.call('ZCARD', KEYS[3]) >= tonumber(ARGV[3]) then return 50 end
end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - 1000)
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[2]) then
  local oldest = tonumber(redis.call('ZRANGE', KEYS[2], 0, 0, 'WITHSCORES')[2])
  return math.max(1, oldest + 1000 - now)
end
if slot then
  redis.call('ZADD', KEYS[3], now + tonumber(ARGV[4]), ARGV[1])
  redis.call('PEXPIRE', KEYS[3], ARGV[4])
end
redis.call('ZADD', KEYS[2], now, ARGV[1] .. ':' .. now .. ':' .. redis.call('ZCARD', KEYS[2]))
redis.call('PEXPIRE', KEYS[2], 2000)
return 0",
    )
});

/// Pauses a host for ARGV[1] ms from now (never shortens a longer pause).
static HOST_PAUSE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local untl = now + tonumber(ARGV[1])
if untl > tonumber(redis.call('GET', KEYS[1]) or '0') then
  redis.call('SET', KEYS[1], untl, 'PX', ARGV[1])
end
return untl",
    )
});

/// Renews a host slot's lease: 1 when it was still held (0: it expired and
/// may be someone else's now). KEYS: slots; ARGV: token, TTL ms.
static HOST_RENEW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local exp = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not exp or tonumber(exp) <= now then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
if redis.call('PTTL', KEYS[1]) < tonumber(ARGV[2]) then redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 1",
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
        let shown = crate::config::redact(redis_url);
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

    /// Records backfill `m` (as planned, or as rebuilt from the lake), of
    /// which `already_done` count as done (and as skipped duplicates when
    /// `skipped`) and `parked` as parked with their error; one round trip.
    pub async fn create_backfill(
        &self,
        m: &crate::manifest::BackfillManifest,
        already_done: &[String],
        skipped: bool,
        parked: &[(String, String)],
    ) -> redis::RedisResult<()> {
        let mut c = self.con.clone();
        let created = chrono::DateTime::parse_from_rfc3339(&m.created).map(|t| t.timestamp_millis()).unwrap_or(0);
        let id = m.id.as_str();
        let mut p = redis::pipe();
        p.hset_multiple(
            self.k(&["bf", id]),
            &[
                ("dataset", m.dataset.clone()),
                ("from", m.from.clone()),
                ("to", m.to.clone()),
                ("planned", m.partitions.len().to_string()),
                ("created", m.created.clone()),
                ("retried", "0".to_string()),
                ("mirror", m.mirror.clone().unwrap_or_default()),
            ],
        )
        .ignore();
        if !already_done.is_empty() {
            p.sadd(self.k(&["bf", id, "done"]), already_done).ignore();
            if skipped {
                p.sadd(self.k(&["bf", id, "skipped"]), already_done).ignore();
            }
        }
        for (part, error) in parked {
            p.hset(self.k(&["bf", id, "dead"]), part, crate::text::bounded(error, crate::text::MAX_MESSAGE)).ignore();
        }
        p.zadd(self.k(&["backfills"]), id, created).ignore();
        p.exec_async(&mut c).await
    }

    /// The mirror recorded for backfill `id`: `None` when Redis does not know
    /// the backfill, `Some(None)` when it has no mirror.
    pub async fn backfill_mirror(&self, id: &str) -> redis::RedisResult<Option<Option<String>>> {
        let mut c = self.con.clone();
        let (exists, mirror): (bool, Option<String>) =
            redis::pipe().exists(self.k(&["bf", id])).hget(self.k(&["bf", id]), "mirror").query_async(&mut c).await?;
        Ok(exists.then(|| mirror.filter(|m| !m.is_empty())))
    }

    /// A partition of backfill `id` was converted into the lake (a duplicate
    /// is recorded by [`State::check_task`]).
    pub async fn record_done(&self, id: &str, partition: &str) -> redis::RedisResult<()> {
        let mut c = self.con.clone();
        self.done_pipe(id, partition).exec_async(&mut c).await
    }

    /// Counts `partition` as done for backfill `id` (and no longer parked).
    fn done_pipe(&self, id: &str, partition: &str) -> redis::Pipeline {
        let mut p = redis::pipe();
        p.sadd(self.k(&["bf", id, "done"]), partition).ignore().hdel(self.k(&["bf", id, "dead"]), partition).ignore();
        p
    }

    pub async fn record_retry(&self, id: &str) -> redis::RedisResult<()> {
        let mut c = self.con.clone();
        c.hincr(self.k(&["bf", id]), "retried", 1).await
    }

    /// A refresh found the partition's source unchanged, or the dataset's
    /// table already holds the partition: done, and skipped.
    pub async fn record_unchanged(&self, id: &str, partition: &str) -> redis::RedisResult<()> {
        let mut c = self.con.clone();
        self.done_pipe(id, partition).sadd(self.k(&["bf", id, "skipped"]), partition).ignore().exec_async(&mut c).await
    }

    /// A partition was parked with `error` (bounded here).
    pub async fn record_dead(&self, id: &str, dataset: &str, partition: &str, error: &str) -> redis::RedisResult<()> {
        let mut c = self.con.clone();
        let error = crate::text::bounded(error, crate::text::MAX_MESSAGE);
        let error = error.as_str();
        redis::pipe()
            .hset(self.k(&["bf", id, "dead"]), partition, error)
            .ignore()
            .set(self.k(&["failed", dataset, partition]), error)
            .ignore()
            .exec_async(&mut c)
            .await
    }

    /// A parked partition was replayed: it is pending again.
    pub async fn clear_dead(&self, id: &str, dataset: &str, partition: &str) -> redis::RedisResult<()> {
        let mut c = self.con.clone();
        redis::pipe()
            .hdel(self.k(&["bf", id, "dead"]), partition)
            .ignore()
            .del(self.k(&["failed", dataset, partition]))
            .ignore()
            .exec_async(&mut c)
            .await
    }

    pub async fn backfill(&self, id: &str) -> redis::RedisResult<Option<BackfillStatus>> {
        let mut c = self.con.clone();
        let (meta, done, skipped, dead, cancelled): BackfillRow = redis::pipe()
            .hgetall(self.k(&["bf", id]))
            .scard(self.k(&["bf", id, "done"]))
            .scard(self.k(&["bf", id, "skipped"]))
            .hgetall(self.k(&["bf", id, "dead"]))
            .scard(self.k(&["bf", id, "cancelled"]))
            .query_async(&mut c)
            .await?;
        if meta.is_empty() {
            return Ok(None);
        }
        let get = |f: &str| meta.get(f).cloned().unwrap_or_default();
        let mut dead = dead;
        dead.sort();
        Ok(Some(BackfillStatus {
            id: id.to_string(),
            dataset: get("dataset"),
            from: get("from"),
            to: get("to"),
            created: get("created"),
            planned: get("planned").parse().unwrap_or(0),
            done,
            skipped,
            retried: get("retried").parse().unwrap_or(0),
            dead,
            cancelled,
            cancelled_at: meta.get("cancelled_at").cloned(),
        }))
    }

    /// Of `partitions` of `dataset`, those the schedule has not enqueued yet
    /// (within `ttl`), now recorded as enqueued by backfill `id`: the schedule
    /// enqueues a partition once, across its own restarts, even while the
    /// partition waits on its publication calendar.
    pub async fn claim_for_schedule(
        &self,
        dataset: &str,
        partitions: &[String],
        id: &str,
        ttl: Duration,
    ) -> redis::RedisResult<Vec<String>> {
        if partitions.is_empty() {
            return Ok(Vec::new());
        }
        let mut c = self.con.clone();
        let mut p = redis::pipe();
        for part in partitions {
            p.cmd("SET")
                .arg(self.k(&["scheduled", dataset, part]))
                .arg(id)
                .arg("NX")
                .arg("PX")
                .arg(ttl.as_millis() as u64);
        }
        let set: Vec<Option<String>> = p.query_async(&mut c).await?;
        Ok(partitions.iter().zip(set).filter(|(_, ok)| ok.is_some()).map(|(p, _)| p.clone()).collect())
    }

    /// Forgets the schedule's record of partitions it enqueued (a publish
    /// that failed, so that the next run tries again).
    pub async fn unclaim_for_schedule(&self, dataset: &str, partitions: &[String]) -> redis::RedisResult<()> {
        if partitions.is_empty() {
            return Ok(());
        }
        let mut c = self.con.clone();
        let keys: Vec<String> = partitions.iter().map(|p| self.k(&["scheduled", dataset, p])).collect();
        c.del(keys).await
    }

    /// Marks backfill `id` cancelled; false when Redis does not know it.
    pub async fn cancel_backfill(&self, id: &str, at: &str) -> redis::RedisResult<bool> {
        let mut c = self.con.clone();
        let key = self.k(&["bf", id]);
        if !c.exists::<_, bool>(&key).await? {
            return Ok(false);
        }
        c.hset_nx::<_, _, _, ()>(&key, "cancelled_at", at).await?;
        Ok(true)
    }

    /// Tries to take a download slot of `host` (`host:port`) for `token`:
    /// `None` when taken, else how long to wait before trying again.
    pub async fn try_host_slot(
        &self,
        host: &str,
        token: &str,
        limits: HostLimits,
    ) -> redis::RedisResult<Option<Duration>> {
        self.host_start(host, token, limits.per_second, limits.concurrent.max(1), limits.slot_ttl).await
    }

    /// Asks to start one more request to `host` under a held slot (a
    /// Socrata page): `None` when it may, else how long to wait (the host's
    /// pause and request rate).
    pub async fn try_host_request(
        &self,
        host: &str,
        token: &str,
        per_second: u32,
    ) -> redis::RedisResult<Option<Duration>> {
        self.host_start(host, token, per_second, 0, Duration::ZERO).await
    }

    async fn host_start(
        &self,
        host: &str,
        token: &str,
        per_second: u32,
        concurrent: u32,
        slot_ttl: Duration,
    ) -> redis::RedisResult<Option<Duration>> {
        let mut c = self.con.clone();
        let wait: i64 = HOST_START
            .key(self.k(&["host", host, "pause"]))
            .key(self.k(&["host", host, "starts"]))
            .key(self.k(&["host", host, "slots"]))
            .arg(token)
            .arg(per_second)
            .arg(concurrent)
            .arg(slot_ttl.as_millis() as u64)
            .invoke_async(&mut c)
            .await?;
        Ok((wait > 0).then(|| Duration::from_millis(wait as u64)))
    }

    /// Gives a download slot back.
    pub async fn release_host_slot(&self, host: &str, token: &str) -> redis::RedisResult<()> {
        let mut c = self.con.clone();
        c.zrem(self.k(&["host", host, "slots"]), token).await
    }

    /// Renews a held slot (its heartbeat); false when it had expired.
    pub async fn renew_host_slot(&self, host: &str, token: &str, ttl: Duration) -> redis::RedisResult<bool> {
        let mut c = self.con.clone();
        let held: i64 = HOST_RENEW
            .key(self.k(&["host", host, "slots"]))
            .arg(token)
            .arg(ttl.as_millis() as u64)
            .invoke_async(&mut c)
            .await?;
        Ok(held == 1)
    }

    /// Every host with slots held or a pause, by name.
    pub async fn hosts(&self) -> redis::RedisResult<Vec<HostView>> {
        let mut c = self.con.clone();
        let head = self.k(&["host", ""]);
        let mut keys: Vec<String> = Vec::new();
        {
            let mut iter: redis::AsyncIter<String> = c.scan_match(format!("{head}*")).await?;
            while let Some(k) = iter.next_item().await {
                keys.push(k?);
            }
        }
        let (secs, micros): (i64, i64) = redis::cmd("TIME").query_async(&mut c).await?;
        let now = secs * 1000 + micros / 1000;
        let mut hosts: std::collections::BTreeMap<String, HostView> = Default::default();
        for key in keys {
            let Some(rest) = key.strip_prefix(&head) else { continue };
            if let Some(host) = rest.strip_suffix(":slots") {
                let held: Vec<(String, f64)> = c.zrangebyscore_withscores(&key, now as f64, "+inf").await?;
                if held.is_empty() {
                    continue;
                }
                let v = hosts.entry(host.to_string()).or_default();
                v.slots = held.into_iter().map(|(t, exp)| (t, exp as i64 - now)).collect();
            } else if let Some(host) = rest.strip_suffix(":pause") {
                let until: Option<i64> = c.get(&key).await?;
                if let Some(until) = until.filter(|u| *u > now) {
                    hosts.entry(host.to_string()).or_default().paused_ms = Some(until - now);
                }
            }
        }
        Ok(hosts.into_iter().map(|(host, v)| HostView { host, ..v }).collect())
    }

    /// Lifts a host's pause; how long it still had to run (none: it was not
    /// paused).
    pub async fn resume_host(&self, host: &str) -> redis::RedisResult<Option<Duration>> {
        let mut c = self.con.clone();
        let key = self.k(&["host", host, "pause"]);
        let left: i64 = c.pttl(&key).await?;
        let _: i64 = c.del(&key).await?;
        Ok((left > 0).then(|| Duration::from_millis(left as u64)))
    }

    /// Pauses every download from `host` for `d` (a 429 with Retry-After).
    pub async fn pause_host(&self, host: &str, d: Duration) -> redis::RedisResult<()> {
        let mut c = self.con.clone();
        let _: i64 = HOST_PAUSE
            .key(self.k(&["host", host, "pause"]))
            .arg(d.as_millis().max(1) as u64)
            .invoke_async(&mut c)
            .await?;
        Ok(())
    }

    /// The `n` (at least 1) most recent backfill ids, newest first.
    pub async fn recent_backfills(&self, n: std::num::NonZeroUsize) -> redis::RedisResult<Vec<String>> {
        let mut c = self.con.clone();
        c.zrevrange(self.k(&["backfills"]), 0, n.get() as isize - 1).await
    }
}
