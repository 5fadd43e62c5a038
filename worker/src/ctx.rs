//! What every task of a worker shares ([`Ctx`]), how a shutdown stands
//! ([`Stop`]), and a task's share of `--concurrency` ([`PERMIT`]).

use std::path::PathBuf;
use std::time::Duration;

use lakefleet::catalog::Catalog;
use lakefleet::lake::Lake;
use lakefleet::metrics::Metrics;
use lakefleet::rabbitmq::topology::Topology;
use lakefleet::source::Fetcher;
use lakefleet::state::State;

tokio::task_local! {
    /// The task's share of `--concurrency`: given back when its object is
    /// written, before its table commit, so that the commit (object store
    /// round trips) overlaps the next task's conversion.
    pub static PERMIT: std::cell::RefCell<Option<tokio::sync::OwnedSemaphorePermit>>;
}

/// Everything a task needs, shared by all tasks of a worker.
pub struct Ctx {
    pub catalog: Catalog,
    pub state: State,
    pub lake: Lake,
    pub fetcher: Fetcher,
    pub metrics: Metrics,
    pub topo: Topology,
    pub worker_id: String,
    pub spool_dir: PathBuf,
    pub lease_ttl: Duration,
    /// A task still running after this is abandoned and retried, well inside
    /// RabbitMQ's consumer timeout (30 minutes by default).
    pub task_timeout: Duration,
    /// Deliveries without an ack before a task is parked as poison.
    pub poison_after: u32,
    /// Whether datasets (with `table = true`) are committed into their Delta tables.
    pub tables: bool,
    /// This worker's view of each dataset's table log, brought up to date
    /// before each commit (reads only the entries it has not seen).
    pub snapshots: tokio::sync::Mutex<std::collections::HashMap<String, lakefleet::table::Snapshot>>,
    /// Where a shutdown stands ([`Stop`]); tasks watch it.
    pub stop: tokio::sync::watch::Sender<Stop>,
}

/// A worker's shutdown, as its tasks see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    Running,
    /// SIGTERM: no new task or download starts; running work may finish.
    Draining,
    /// The grace is nearly over: unfinished tasks are handed back to the
    /// work queue (not counted as a failed delivery) now.
    HandBack,
}

impl Ctx {
    /// Waits, before a download starts, while the worker is shutting down:
    /// the task is then handed back at the end of the grace instead.
    pub async fn before_download(&self) {
        let mut stop = self.stop.subscribe();
        if *stop.borrow() != Stop::Running {
            let _ = stop.wait_for(|s| *s == Stop::HandBack).await;
            std::future::pending::<()>().await;
        }
    }
}
