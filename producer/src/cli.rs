//! Command-line flags of `producer` (raw flags only; commands resolve them).

use std::path::PathBuf;

use std::num::NonZeroUsize;

use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand};
use lakefleet::cli::ConnectionFlags;

/// Plan and enqueue lakefleet backfills, follow them, and manage dead letters.
///
/// A backfill turns a date range of a dataset into one RabbitMQ task per
/// source file; workers (`worker`) convert each file to Parquet in the lake.
/// Partitions already in the lake are skipped, so re-running a backfill is
/// safe and cheap.
///
/// Exit codes: 0 success, 1 failure (a service, a publish, a parked task),
/// 2 refused (bad flags, unknown dataset, a range outside what is published).
#[derive(Debug, Parser)]
#[command(name = "producer", version, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub conn: ConnectionFlags,
    /// Extra or overriding datasets (TOML, `[[dataset]]` entries; see the README).
    #[arg(long, env = "LAKEFLEET_CATALOG", global = true)]
    pub catalog: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the datasets: name, cadence, URL template, available range, schema.
    Datasets,
    /// Plan a date range and enqueue one task per partition.
    ///
    /// Example: producer backfill --dataset mta-turnstile --from 2022-01-01 --to 2022-03-31
    Backfill(BackfillArgs),
    /// Show the recent backfills, or one backfill's progress and failures.
    Status(StatusArgs),
    /// Inspect, replay or purge parked (dead-lettered) tasks.
    #[command(subcommand)]
    Dlq(DlqCommand),
    /// Keep datasets up to date: enqueue their newest publications as they appear.
    ///
    /// Every --every-hours (or once with --once), for each --dataset, plans the
    /// latest --lookback publications that are due (publish_lag_days) and
    /// enqueues those not yet in the lake, once each (remembered in Redis
    /// across restarts), leaving parked and in-progress partitions alone;
    /// with --refresh-last N, also asks the latest N done partitions' sources
    /// whether they changed.
    Schedule(ScheduleArgs),
    /// Cancel a backfill: its queued and retrying tasks are acked without
    /// work (counted as cancelled); tasks in flight finish.
    ///
    /// Example: producer cancel bf-20260101T120000-1a2b
    Cancel(CancelArgs),
    /// Source hosts as the whole fleet sees them (Redis): download slots in
    /// use and the workers that hold them, and pauses set by a 429/503 with
    /// Retry-After, until when. A slot whose worker died frees itself within
    /// 30 s (its heartbeat stops); a pause lasts at most the dataset's
    /// max_retry_after_seconds.
    ///
    /// Examples: producer hosts
    ///           producer hosts resume data.ny.gov:443
    Hosts(HostsArgs),
    /// Delete the objects of a dataset's Delta table that no version within
    /// the retention references: files a refresh replaced longer ago than
    /// `--older-than`, and files never committed (a worker died between its
    /// write and its commit) older than that. Live files and the log are never
    /// touched; time travel to a version older than the retention may then
    /// fail. Says what it deleted and how many bytes it freed.
    ///
    /// Examples: producer vacuum --dataset mta-turnstile
    ///           producer vacuum --dataset nyc-tlc-yellow --older-than 30d --dry-run
    Vacuum(VacuumArgs),
    /// A dataset's table, for the engines that query it.
    #[command(subcommand)]
    Table(TableCommand),
    /// Serve backfill progress and queue depths on /metrics for Prometheus.
    ///
    /// Gauges: lakefleet_backfill_partitions{backfill,dataset,state} (planned,
    /// done, skipped, parked, cancelled, pending) for the
    /// most recent backfills, lakefleet_queue_messages{queue} for the work,
    /// retry and parking queues. Runs until SIGTERM or Ctrl-C.
    Exporter(ExporterArgs),
}

#[derive(Debug, Subcommand)]
pub enum TableCommand {
    /// Print the DDL that puts a dataset's table into a warehouse: BigQuery
    /// (a BigLake table over the Delta table on gs://, or a Hive-partitioned
    /// Parquet external table for a dataset with `table = false`), or a DuckDB
    /// view (`delta_scan`). Prints only: run it in the warehouse.
    ///
    /// Examples: producer table ddl --dataset mta-turnstile --bigquery my-proj.lake.mta_turnstile --connection my-proj.us.lake
    ///           producer table ddl --dataset mta-turnstile --duckdb
    Ddl(DdlArgs),
    /// Make a folder of objects written before tables existed (or with
    /// `table = false`) the dataset's Delta table: every object named as one
    /// of the dataset's partitions is committed in one version, its row count
    /// read from its footer only. Idempotent: run it again and it adds only
    /// what the table does not hold.
    ///
    /// Example: producer table init --dataset mta-turnstile
    Init {
        #[arg(long)]
        dataset: String,
    },
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("engine").required(true).args(["bigquery", "duckdb"])))]
pub struct DdlArgs {
    #[arg(long)]
    pub dataset: String,
    /// BigQuery table to create: PROJECT.DATASET.TABLE (the lake must be on gs://).
    #[arg(long, value_name = "PROJECT.DATASET.TABLE")]
    pub bigquery: Option<String>,
    /// BigQuery connection (PROJECT.REGION.CONNECTION) whose service account
    /// reads the bucket; default: the project's default connection.
    #[arg(long, requires = "bigquery", value_name = "PROJECT.REGION.CONNECTION")]
    pub connection: Option<String>,
    /// A DuckDB view over the table.
    #[arg(long)]
    pub duckdb: bool,
}

#[derive(Debug, Args)]
pub struct VacuumArgs {
    /// The dataset whose table is vacuumed.
    #[arg(long)]
    pub dataset: String,
    /// Retention: `7d`, `12h`, `30m`, `0s` (delete everything unreferenced).
    #[arg(long, default_value = "7d", value_parser = parse_age)]
    pub older_than: std::time::Duration,
    /// Show what would be deleted; delete nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// `7d`, `12h`, `30m`, `45s`.
fn parse_age(s: &str) -> Result<std::time::Duration, String> {
    let (n, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = n.parse().map_err(|_| format!("{s:?}: a number and a unit: 7d, 12h, 30m, 0s"))?;
    let secs = match unit {
        "d" => 86_400,
        "h" => 3600,
        "m" => 60,
        "s" => 1,
        _ => return Err(format!("{s:?}: the unit is d, h, m or s (7d, 12h, 30m, 0s)")),
    };
    Ok(std::time::Duration::from_secs(n.saturating_mul(secs)))
}

#[derive(Debug, Args)]
pub struct HostsArgs {
    #[command(subcommand)]
    pub command: Option<HostsCommand>,
}

#[derive(Debug, Subcommand)]
pub enum HostsCommand {
    /// Lift a host's pause now, for every worker (tasks waiting for it go
    /// ahead at their next delivery).
    Resume {
        /// The host as `producer hosts` shows it: `host:port`.
        host: String,
    },
}

#[derive(Debug, Args)]
pub struct CancelArgs {
    /// The backfill id (`producer status` lists them).
    pub backfill_id: String,
}

#[derive(Debug, Args)]
pub struct ExporterArgs {
    /// Address to serve /metrics on.
    #[arg(long, env = "LAKEFLEET_EXPORTER_ADDR", default_value = "127.0.0.1:9465")]
    pub listen: String,
    /// How many recent backfills to export (at least 1).
    #[arg(long, default_value = "50")]
    pub backfills: NonZeroUsize,
}

#[derive(Debug, Args)]
pub struct BackfillArgs {
    /// Dataset name (see `producer datasets`).
    #[arg(long)]
    pub dataset: String,
    /// First day of the range (YYYY-MM-DD), inclusive.
    #[arg(long)]
    pub from: NaiveDate,
    /// Last day of the range (YYYY-MM-DD), inclusive.
    #[arg(long)]
    pub to: NaiveDate,
    /// Print every planned partition with its URL, object key and state; publish nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Fetch files from this base URL joined with each official file name.
    #[arg(long, value_name = "URL")]
    pub mirror: Option<String>,
    /// After publishing, follow the backfill until every partition is done or
    /// parked; exit 0 only if all are done.
    #[arg(long)]
    pub wait: bool,
    /// With --wait: give up after this many seconds (exit 1).
    #[arg(long, default_value_t = 3600, value_name = "SECONDS")]
    pub wait_timeout: u64,
    /// Publish partitions that are already done too (workers still skip
    /// partitions whose done marker exists; see --overwrite).
    #[arg(long)]
    pub force: bool,
    /// Convert again and replace the objects of done partitions (implies --force).
    #[arg(long)]
    pub overwrite: bool,
    /// Ask each source whether it changed since it was ingested (If-None-Match
    /// / If-Modified-Since with the recorded ETag and Last-Modified): unchanged
    /// partitions are skipped without a download, changed ones are converted
    /// again and their objects replaced (implies --force).
    #[arg(long, conflicts_with = "overwrite")]
    pub refresh: bool,
    /// Publish a plan of more than 1,000 partitions without asking (on a
    /// terminal the count is shown and confirmed; without one, --yes is needed).
    #[arg(long)]
    pub yes: bool,
    /// The lane of its tasks. Workers take the high lane's tasks first
    /// (three in four while both lanes hold some), so a small backfill does
    /// not wait behind a large one; per-host limits hold across lanes.
    /// Without this flag: high for a backfill publishing at most 12
    /// partitions, normal for a larger one.
    #[arg(long, value_enum, value_name = "LANE")]
    pub priority: Option<lakefleet::task::Lane>,
}

#[derive(Debug, Args)]
pub struct ScheduleArgs {
    /// Datasets to keep up to date (repeat the flag for several).
    #[arg(long = "dataset", required = true)]
    pub datasets: Vec<String>,
    /// How many of the latest publications to (re)check at each run (at least
    /// 1): partitions that are missing from the lake are enqueued, done ones skipped.
    #[arg(long, default_value = "4")]
    pub lookback: std::num::NonZeroU32,
    /// Time between runs, in hours (at least 1).
    #[arg(long, default_value = "24")]
    pub every_hours: std::num::NonZeroU64,
    /// Run once and exit (for cron or a Kubernetes CronJob).
    #[arg(long)]
    pub once: bool,
    /// Fetch files from this base URL joined with each official file name.
    #[arg(long, value_name = "URL")]
    pub mirror: Option<String>,
    /// Also ask the sources of the latest N done partitions whether they
    /// changed (as `backfill --refresh`), at each run; 0 never does.
    #[arg(long, default_value = "0", value_name = "N")]
    pub refresh_last: u32,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Backfill id (printed by `producer backfill`); none lists the recent ones.
    pub backfill_id: Option<String>,
    /// How many recent backfills to list (at least 1).
    #[arg(long, default_value = "20")]
    pub limit: NonZeroUsize,
}

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// List parked tasks with their reason and last error.
    List(DlqFilter),
    /// Re-enqueue parked tasks (attempt count reset), then remove them from the parking queue.
    Replay(DlqFilter),
    /// Remove parked tasks, after showing what will be removed.
    Purge {
        #[command(flatten)]
        filter: DlqFilter,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

#[derive(Debug, Clone, Args, Default)]
pub struct DlqFilter {
    /// Only tasks of this backfill.
    #[arg(long)]
    pub backfill: Option<String>,
    /// Only tasks of this dataset.
    #[arg(long)]
    pub dataset: Option<String>,
    /// Only tasks parked for this reason.
    #[arg(long, value_parser = reason_codes())]
    pub reason: Option<String>,
}

/// Every park reason code, for `--reason` (its help lists them).
fn reason_codes() -> clap::builder::PossibleValuesParser {
    clap::builder::PossibleValuesParser::new(lakefleet::failure::Reason::ALL.map(|r| r.code()))
}
