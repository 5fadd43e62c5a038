//! What a task holds and gives back however it ends: the partition's lease,
//! the download pump (spool files: [`lakefleet::util::spool`]).

use super::*;

/// A partition lease held by this worker: renewed in the background every
/// third of its TTL, released when dropped, so that a task that ends in any
/// way (done, failed, timed out, aborted at shutdown) frees its partition at
/// once instead of after the TTL.
pub(super) struct Lease {
    ctx: Arc<Ctx>,
    dataset: String,
    partition: String,
    token: String,
    _renewer: AbortOnDrop,
}

impl Lease {
    pub(super) fn hold(ctx: &Arc<Ctx>, dataset: &str, partition: &str, token: String) -> Lease {
        let (c, d, p, t) = (ctx.clone(), dataset.to_string(), partition.to_string(), token.clone());
        let renewer = tokio::spawn(async move {
            loop {
                tokio::time::sleep(c.lease_ttl / 3).await;
                if let Ok(false) = c.state.renew_lease(&d, &p, &t, c.lease_ttl).await {
                    warn!(partition = %p, "lease lost; the conditional upload still keeps the lake exactly-once");
                    break;
                }
            }
        });
        Lease {
            ctx: ctx.clone(),
            dataset: dataset.to_string(),
            partition: partition.to_string(),
            token,
            _renewer: AbortOnDrop(renewer),
        }
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // The renewer is aborted when `_renewer` drops, right after this.
        let (ctx, d, p, t) = (self.ctx.clone(), self.dataset.clone(), self.partition.clone(), self.token.clone());
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                soft("releasing the lease", ctx.state.release_lease(&d, &p, &t).await);
            });
        }
    }
}

/// Aborts a background task when dropped.
pub(super) struct AbortOnDrop(pub(super) tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
