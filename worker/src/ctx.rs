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
    /// This worker's view of each dataset's table log ([`Views`]).
    pub views: Views,
    /// Where a shutdown stands ([`Stop`]); tasks watch it.
    pub stop: tokio::sync::watch::Sender<Stop>,
}

/// This worker's view of each dataset's table log, brought up to date by
/// each commit (it reads only the entries it has not seen). A task's
/// generation lookup takes a copy (cheap: the kernel's snapshot is shared)
/// and never waits for another task's commit: a task gives its share of
/// `--concurrency` back before its commit so that the next task's download
/// and conversion overlap it, and on S3 a commit is a few round trips. The
/// worker's own commits and its full reads of a log (a first read, a
/// refresh task's) take turns: two commits would race each other for the
/// same version, and tasks started at once with no view would each read the
/// whole log.
#[derive(Default)]
pub struct Views {
    views: std::sync::Mutex<std::collections::HashMap<String, lakefleet::table::Snapshot>>,
    turn: tokio::sync::Mutex<()>,
}

impl Views {
    /// A copy of `dataset`'s view (empty: not read yet).
    pub fn get(&self, dataset: &str) -> lakefleet::table::Snapshot {
        self.views.lock().expect("views").get(dataset).cloned().unwrap_or_default()
    }

    /// Keeps `snap` as `dataset`'s view, unless the view holds a later version.
    pub fn put(&self, dataset: &str, snap: lakefleet::table::Snapshot) {
        let mut views = self.views.lock().expect("views");
        let view = views.entry(dataset.to_string()).or_default();
        if snap.version >= view.version {
            *view = snap;
        }
    }

    /// This worker's turn to commit or read a log, held while it does.
    pub async fn turn(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.turn.lock().await
    }
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
