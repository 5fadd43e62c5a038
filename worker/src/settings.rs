//! The worker's flags (raw, as clap parses them) and the settings they
//! resolve to, once, at start: ripgrep's low/high arguments. Invalid values
//! are refused with the variable and the flag named, never clamped.

use std::num::NonZeroUsize;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use lakefleet::cli::{ConnectionFlags, seconds_at_least};
use lakefleet::config::Connections;

#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub conn: ConnectionFlags,
    /// Tasks processed at once (and the RabbitMQ prefetch). Default: the number of cores.
    #[arg(long, env = "LAKEFLEET_CONCURRENCY")]
    pub concurrency: Option<usize>,
    /// Seconds in-flight tasks get to finish after SIGTERM before they go back to the queue.
    #[arg(long, env = "LAKEFLEET_SHUTDOWN_GRACE", default_value_t = 30)]
    pub shutdown_grace: u64,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "LAKEFLEET_METRICS_ADDR", default_value = "127.0.0.1:9464")]
    pub metrics_addr: String,
    /// Folder for Parquet files being built before upload (default: the system temp folder).
    #[arg(long, env = "LAKEFLEET_SPOOL_DIR")]
    pub spool_dir: Option<PathBuf>,
    /// Seconds a partition lease lasts without renewal (renewed every third of it; at least 3).
    #[arg(long, env = "LAKEFLEET_LEASE_TTL", default_value_t = 60)]
    pub lease_ttl: u64,
    /// Seconds a task may take before it is abandoned and retried; keep it well
    /// under RabbitMQ's consumer timeout (30 minutes by default).
    #[arg(long, env = "LAKEFLEET_TASK_TIMEOUT", default_value_t = 1200)]
    pub task_timeout: u64,
    /// Parquet files larger than this many bytes are uploaded as multipart
    /// uploads (atomic on completion) instead of one conditional PUT.
    #[arg(long, env = "LAKEFLEET_SINGLE_PUT_MAX", default_value_t = lakefleet::lake::SINGLE_PUT_MAX)]
    pub single_put_max: u64,
    /// Seconds to wait for a source server to accept the connection.
    #[arg(long, env = "LAKEFLEET_CONNECT_TIMEOUT", default_value_t = 10)]
    pub connect_timeout: u64,
    /// Seconds without a byte from the source before the download fails (and is retried).
    #[arg(long, env = "LAKEFLEET_READ_TIMEOUT", default_value_t = 60)]
    pub read_timeout: u64,
    /// Deliveries of one task that never got an ack (workers crashed or were
    /// killed on it) before it is parked as `poison`.
    #[arg(long, env = "LAKEFLEET_POISON_AFTER", default_value_t = 3)]
    pub poison_after: u32,
    /// Name of this worker in parked messages and logs (default: host-pid).
    #[arg(long, env = "LAKEFLEET_WORKER_ID")]
    pub worker_id: Option<String>,
    /// Write plain Parquet files only: no dataset's Delta table is committed
    /// (by default every dataset whose catalog entry keeps `table = true` is
    /// a Delta table, each partition committed exactly once).
    #[arg(long, env = "LAKEFLEET_NO_TABLES")]
    pub no_tables: bool,
}

/// What the service runs with.
#[derive(Debug, Clone)]
pub struct Settings {
    pub conn: Connections,
    pub concurrency: NonZeroUsize,
    pub shutdown_grace: Duration,
    pub metrics_addr: String,
    pub spool_dir: PathBuf,
    pub lease_ttl: Duration,
    pub task_timeout: Duration,
    pub single_put_max: u64,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub poison_after: u32,
    pub worker_id: String,
    pub tables: bool,
}

impl RunArgs {
    pub fn resolve(&self) -> Result<Settings, String> {
        let concurrency = match self.concurrency {
            None => std::thread::available_parallelism().unwrap_or(NonZeroUsize::MIN),
            Some(n) => NonZeroUsize::new(n)
                .filter(|n| n.get() <= u16::MAX as usize)
                .ok_or_else(|| format!("LAKEFLEET_CONCURRENCY (--concurrency) {n}: must be between 1 and 65535"))?,
        };
        let task_timeout = seconds_at_least("LAKEFLEET_TASK_TIMEOUT (--task-timeout)", self.task_timeout, 1)?;
        if task_timeout > lakefleet::table::MAX_TASK_TIMEOUT {
            return Err(format!(
                "LAKEFLEET_TASK_TIMEOUT (--task-timeout) {}: at most {} seconds (a worker holds an uploaded object at most this long before its commit, and `producer vacuum` keeps uncommitted objects for {} seconds on that promise)",
                self.task_timeout,
                lakefleet::table::MAX_TASK_TIMEOUT.as_secs(),
                lakefleet::table::MIN_RETENTION.as_secs()
            ));
        }
        if self.single_put_max == 0 {
            return Err("LAKEFLEET_SINGLE_PUT_MAX (--single-put-max) 0: must be at least 1 byte".into());
        }
        if self.poison_after == 0 {
            return Err("LAKEFLEET_POISON_AFTER (--poison-after) 0: must be at least 1".into());
        }
        let worker_id = self.worker_id.clone().unwrap_or_else(|| {
            let host = std::fs::read_to_string("/etc/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_else(|_| "worker".into());
            format!("{host}-{}", std::process::id())
        });
        Ok(Settings {
            conn: self.conn.resolve()?,
            concurrency,
            shutdown_grace: Duration::from_secs(self.shutdown_grace),
            metrics_addr: self.metrics_addr.clone(),
            spool_dir: self.spool_dir.clone().unwrap_or_else(std::env::temp_dir),
            lease_ttl: seconds_at_least("LAKEFLEET_LEASE_TTL (--lease-ttl)", self.lease_ttl, 3)?,
            task_timeout,
            single_put_max: self.single_put_max,
            connect_timeout: seconds_at_least(
                "LAKEFLEET_CONNECT_TIMEOUT (--connect-timeout)",
                self.connect_timeout,
                1,
            )?,
            read_timeout: seconds_at_least("LAKEFLEET_READ_TIMEOUT (--read-timeout)", self.read_timeout, 1)?,
            poison_after: self.poison_after,
            worker_id,
            tables: !self.no_tables,
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        run: RunArgs,
    }

    fn resolve(args: &[&str]) -> Result<Settings, String> {
        let mut all = vec!["worker"];
        all.extend_from_slice(args);
        T::try_parse_from(all).unwrap().run.resolve()
    }

    #[test]
    fn zeros_are_refused_with_the_variable_and_the_flag() {
        assert!(resolve(&[]).is_ok());
        for (args, name) in [
            (&["--lease-ttl", "2"][..], "LAKEFLEET_LEASE_TTL (--lease-ttl) 2"),
            (&["--task-timeout", "0"], "LAKEFLEET_TASK_TIMEOUT (--task-timeout) 0"),
            (&["--concurrency", "0"], "LAKEFLEET_CONCURRENCY (--concurrency) 0"),
            (&["--single-put-max", "0"], "LAKEFLEET_SINGLE_PUT_MAX (--single-put-max) 0"),
            (&["--read-timeout", "0"], "LAKEFLEET_READ_TIMEOUT (--read-timeout) 0"),
            (&["--poison-after", "0"], "LAKEFLEET_POISON_AFTER (--poison-after) 0"),
            (&["--lake-url", "ftp://h/l"], "LAKE_URL (--lake-url)"),
            (&["--retry-base-ms", "0"], "LAKEFLEET_RETRY_BASE_MS (--retry-base-ms) 0"),
        ] {
            let e = resolve(args).unwrap_err();
            assert!(e.starts_with(name), "{args:?}: {e}");
        }
    }
}
