//! Backfills' progress: the plan's counts, done / skipped / parked
//! partitions, cancels, and the schedule's claims (`{p}:bf:*`, `{p}:backfills`).

use super::*;

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
    pub parked: Vec<(String, String)>,
    /// Partitions whose tasks were acked without work after `producer cancel`.
    pub cancelled: u64,
    /// When the backfill was cancelled (RFC 3339), if it was.
    pub cancelled_at: Option<String>,
}

impl BackfillStatus {
    /// Partitions neither done, parked nor cancelled.
    pub fn pending(&self) -> u64 {
        self.planned.saturating_sub(self.done + self.parked.len() as u64 + self.cancelled)
    }
    pub fn finished(&self) -> bool {
        self.planned > 0 && self.pending() == 0
    }
}

/// What `backfill` reads in one round trip: meta, done, skipped, dead, cancelled.
pub(super) type BackfillRow = (std::collections::HashMap<String, String>, u64, u64, Vec<(String, String)>, u64);

impl State {
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
            p.hset(
                self.k(&["bf", id, "dead"]),
                part,
                crate::util::text::bounded(error, crate::util::text::MAX_MESSAGE),
            )
            .ignore();
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
    pub(super) fn done_pipe(&self, id: &str, partition: &str) -> redis::Pipeline {
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
    pub async fn record_parked(&self, id: &str, dataset: &str, partition: &str, error: &str) -> redis::RedisResult<()> {
        let mut c = self.con.clone();
        let error = crate::util::text::bounded(error, crate::util::text::MAX_MESSAGE);
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
    pub async fn clear_parked(&self, id: &str, dataset: &str, partition: &str) -> redis::RedisResult<()> {
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
        let (meta, done, skipped, parked, cancelled): BackfillRow = redis::pipe()
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
        let mut parked = parked;
        parked.sort();
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
            parked,
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

    /// The `n` (at least 1) most recent backfill ids, newest first.
    pub async fn recent_backfills(&self, n: std::num::NonZeroUsize) -> redis::RedisResult<Vec<String>> {
        let mut c = self.con.clone();
        c.zrevrange(self.k(&["backfills"]), 0, n.get() as isize - 1).await
    }
}
