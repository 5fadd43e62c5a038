//! Source hosts, fleet-wide: download slots (how many at once), the request
//! rate, and the pause a 429 puts on a host (`{p}:host:*` keys).

use super::*;

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
pub(super) static HOST_START: LazyLock<Script> = LazyLock::new(|| {
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
pub(super) static HOST_PAUSE: LazyLock<Script> = LazyLock::new(|| {
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
pub(super) static HOST_RENEW: LazyLock<Script> = LazyLock::new(|| {
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

impl State {
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

    /// A task of the high lane is waiting for a slot of `host` (for the
    /// next `ttl`): tasks of the normal lane leave the next free slot to it.
    pub async fn mark_high_lane_waiting(&self, host: &str, ttl: Duration) -> redis::RedisResult<()> {
        let mut c = self.con.clone();
        let _: () = redis::cmd("SET")
            .arg(self.k(&["host", host, "high"]))
            .arg(1)
            .arg("PX")
            .arg(ttl.as_millis() as u64)
            .query_async(&mut c)
            .await?;
        Ok(())
    }

    /// Whether a task of the high lane is waiting for a slot of `host`.
    pub async fn high_lane_waiting(&self, host: &str) -> redis::RedisResult<bool> {
        let mut c = self.con.clone();
        c.exists(self.k(&["host", host, "high"])).await
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

    pub(super) async fn host_start(
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
}
