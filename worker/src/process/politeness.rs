//! Politeness per source host, fleet-wide through Redis: a download slot
//! (downloads at once, requests per second) held while a download runs, and
//! the pause a 429 or 503 with Retry-After puts on the host.

use super::*;
use lakefleet::task::Lane;

/// A download slot of a source host, taken fleet-wide through Redis: a
/// lease renewed every [`HOST_SLOT_HEARTBEAT`] while held and given back when
/// dropped; a worker that dies frees it within [`HOST_SLOT_TTL`].
pub(super) struct HostSlot {
    ctx: Arc<Ctx>,
    host: String,
    token: String,
    _heartbeat: AbortOnDrop,
}

impl HostSlot {
    fn hold(ctx: &Arc<Ctx>, host: &str, token: String) -> HostSlot {
        let (c, h, t) = (ctx.clone(), host.to_string(), token.clone());
        let heartbeat = tokio::spawn(async move {
            loop {
                tokio::time::sleep(HOST_SLOT_HEARTBEAT).await;
                if let Ok(false) = c.state.renew_host_slot(&h, &t, HOST_SLOT_TTL).await {
                    warn!(host = %h, "host slot expired before its heartbeat (Redis restarted, or this worker stalled)");
                    break;
                }
            }
        });
        HostSlot { ctx: ctx.clone(), host: host.to_string(), token, _heartbeat: AbortOnDrop(heartbeat) }
    }

    /// Waits for the host's request rate (and pause) before one more request
    /// under this slot: a Socrata slice's next page.
    pub(super) fn pace(&self, per_second: u32) -> lakefleet::source::Pace {
        let (ctx, host, token) = (self.ctx.clone(), self.host.clone(), self.token.clone());
        Arc::new(move || {
            let (ctx, host, token) = (ctx.clone(), host.clone(), token.clone());
            Box::pin(async move {
                while let Some(Some(wait)) =
                    soft("pacing a request", ctx.state.try_host_request(&host, &token, per_second).await)
                {
                    tokio::time::sleep(wait.min(Duration::from_secs(1))).await;
                }
            })
        })
    }
}

impl Drop for HostSlot {
    fn drop(&mut self) {
        let (ctx, host, token) = (self.ctx.clone(), self.host.clone(), self.token.clone());
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                soft("giving a host slot back", ctx.state.release_host_slot(&host, &token).await);
            });
        }
    }
}

/// Counts a task in `lakefleet_host_waiting_tasks` while it waits, however
/// the wait ends (a slot, a delay, or the task abandoned at its timeout).
pub(super) struct Waiting(Option<prometheus::IntGauge>);

impl Waiting {
    fn start(&mut self, g: &prometheus::IntGauge) {
        if self.0.is_none() {
            g.inc();
            self.0 = Some(g.clone());
        }
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        if let Some(g) = self.0.take() {
            g.dec();
        }
    }
}

/// How long a task waits in place for a host slot before it is delayed
/// through a retry queue instead (a quarter of the task timeout at most):
/// waiting for a host never uses up a task's timeout or its attempts.
pub(super) const HOST_WAIT_IN_PLACE: Duration = Duration::from_secs(30);

/// Waits for a download slot of `host` within the dataset's limits: `Ok(None)`
/// when Redis is unavailable (the download then goes ahead: politeness must
/// not stop the fleet); `Err` when the host is paused for longer than the
/// wait in place, or still full after it: the task is delayed (not an
/// attempt) and comes back when the host may have room.
///
/// Lanes: a waiting task of the high lane marks the host (for 300 ms, renewed
/// every 100 ms while it waits), and
/// a waiting task of the normal lane leaves the next free slot to it, so a
/// small backfill does not lose the host's slots to a large one's waiters.
pub(super) async fn host_slot(ctx: &Arc<Ctx>, ds: &Dataset, host: &str, lane: Lane) -> Result<Option<HostSlot>, Done> {
    let token = format!("{}:{}", ctx.worker_id, lakefleet::util::spool::unique());
    let limits = HostLimits {
        concurrent: ds.max_downloads_per_host,
        per_second: ds.max_requests_per_second_per_host,
        slot_ttl: HOST_SLOT_TTL,
    };
    let in_place = HOST_WAIT_IN_PLACE.min(ctx.task_timeout / 4);
    let started = Instant::now();
    let mut waiting = Waiting(None);
    loop {
        let yield_to_high = match lane {
            Lane::High => {
                soft("marking the host", ctx.state.mark_high_lane_waiting(host, Duration::from_millis(300)).await);
                false
            }
            Lane::Normal => {
                soft("reading the host's waiters", ctx.state.high_lane_waiting(host).await).unwrap_or(false)
            }
        };
        let tried = match yield_to_high {
            true => Some(Some(Duration::from_millis(200))),
            false => soft("taking a host slot", ctx.state.try_host_slot(host, &token, limits).await),
        };
        match tried {
            Some(Some(wait)) => {
                waiting.start(&ctx.metrics.host_waiting.with_label_values(&[host]));
                let waited = started.elapsed();
                if waited + wait > in_place {
                    let why = match wait > Duration::from_secs(1) {
                        true => format!("source host {host} is paused for {}s more (Retry-After)", wait.as_secs()),
                        false => format!(
                            "source host {host} is busy: {} downloads at once, or {} starts per second, used by the fleet for {}s",
                            limits.concurrent,
                            limits.per_second,
                            waited.as_secs()
                        ),
                    };
                    return Err(Done::HostBusy { delay: wait, why });
                }
                // The high lane looks again sooner (and keeps its mark fresh).
                let most = match lane {
                    Lane::High => Duration::from_millis(100),
                    Lane::Normal => Duration::from_secs(1),
                };
                tokio::time::sleep(wait.min(most)).await;
            }
            Some(None) => return Ok(Some(HostSlot::hold(ctx, host, token))),
            None => return Ok(None),
        }
    }
}

/// A 429 (or 503) with Retry-After pauses its host for the whole fleet, for
/// at most the dataset's `max_retry_after_seconds` (the cap is logged with
/// the value asked for); the task's own retry waits no longer either.
pub(super) async fn throttled<T>(
    ctx: &Ctx,
    ds: &Dataset,
    host: &str,
    mut r: Result<T, FetchError>,
) -> Result<T, FetchError> {
    if let Err(FetchError::Status { status: 429 | 503, retry_after: Some(d), .. }) = &mut r {
        let cap = Duration::from_secs(ds.max_retry_after_seconds);
        if *d > cap {
            warn!(
                host,
                asked_s = d.as_secs(),
                cap_s = cap.as_secs(),
                "Retry-After longer than the dataset's max_retry_after_seconds: capped"
            );
            *d = cap;
        }
        ctx.metrics.host_throttled.with_label_values(&[host]).inc();
        warn!(host, pause_s = d.as_secs_f64(), "source host throttled: paused for the whole fleet");
        soft("pausing the host", ctx.state.pause_host(host, *d).await);
    }
    r
}
