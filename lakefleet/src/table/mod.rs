//! Each dataset's Delta Lake table, `{lake}/{dataset}/_delta_log/`: the log
//! that says which objects make the dataset at each version.
//!
//! The log is read and written by `delta_kernel` (with its default engine
//! over the lake's own object store): a snapshot is built from a listing of
//! `_delta_log` (any checkpoint kind: single, multi-part, v2, or none, and
//! early commits cleaned up by another tool), the table's protocol and
//! features are checked before a write, and a commit is a create-if-absent
//! write of the next log entry. What stays lakefleet's is small:
//!
//! - the commit loop: each partition's Add comes with an application
//!   transaction (`txn`) whose id names the partition and whose version is
//!   the partition's ingestion generation (1 for the first load, +1 per
//!   refresh); a worker that loses the race to a version reads the log again,
//!   skips the partitions the table now records, and tries again with
//!   jitter; two workers racing on one partition make one Add;
//! - what lakefleet refuses to write to ([`check_writable`]): features and
//!   properties it cannot honour are named, never ignored;
//! - the Adds' statistics, from the object's own footer ([`stats`]);
//! - a refresh's rewrite of another tool's files that hold the refreshed
//!   partition's rows beside others (found by the lineage column,
//!   [`crate::convert::LINEAGE_COLUMN`]);
//! - the vacuum policy ([`Table::vacuum`]).
//!
//! Readers: every engine that reads Delta (DuckDB's `delta_scan`, Spark,
//! python `deltalake`, polars, Trino, BigQuery through BigLake).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use arrow_array::{Array, ArrayRef, Int64Array, MapArray, RecordBatch, StringArray, StructArray};
use arrow_schema::{DataType as ArrowType, Field, Fields, Schema};
use delta_kernel::committer::FileSystemCommitter;
use delta_kernel::engine::arrow_data::ArrowEngineData;
use delta_kernel::schema::{DataType, StructField, StructType};
use delta_kernel::snapshot::ChecksumWriteResult;
use delta_kernel::table_features::TableFeature;
use delta_kernel::transaction::{CommitResult, UpdateTableOperation};
use delta_kernel::{Engine as _, EngineData, KernelError, SnapshotRef};

mod schema;
pub use schema::*;
mod commit;
use commit::*;
mod rewrite;
use rewrite::*;
mod vacuum;
pub use vacuum::*;

pub mod stats;

use crate::catalog::{ColumnType, Dataset};
use crate::lake::{Lake, LakeError};

/// The kernel's engine as lakefleet runs it: the default engine, its I/O on
/// a multi-threaded runtime of its own (the kernel's checkpoint writer needs
/// one), called from blocking threads of ours.
pub type Engine =
    delta_kernel_default_engine::DefaultEngine<delta_kernel_default_engine::executor::tokio::TokioMultiThreadExecutor>;

/// The partition column every table is partitioned by (`year=YYYY` folders).
pub const PARTITION_COLUMN: &str = "year";
/// Commit attempts under contention before the task goes back to the retry
/// queue (never parked for contention alone).
pub const MAX_COMMIT_ATTEMPTS: u32 = 25;
/// The longest pause between two commit attempts.
pub const MAX_COMMIT_PAUSE: Duration = Duration::from_secs(2);
/// The longest `--task-timeout` a worker takes: a task's upload and its
/// commit happen within it.
pub const MAX_TASK_TIMEOUT: Duration = Duration::from_secs(3600);
/// The shortest retention `producer vacuum` takes: the longest a worker may
/// hold an uploaded object before its commit (it adopts an earlier upload
/// only while younger than [`crate::lake::ADOPT_MAX_AGE`], then commits
/// within [`MAX_TASK_TIMEOUT`]).
pub const MIN_RETENTION: Duration =
    Duration::from_secs(crate::lake::ADOPT_MAX_AGE.as_secs() + MAX_TASK_TIMEOUT.as_secs());
/// `commitInfo.engineInfo` of every commit lakefleet writes.
pub const ENGINE_INFO: &str = concat!("lakefleet/", env!("CARGO_PKG_VERSION"));

/// The table as the log says at one version.
#[derive(Clone, Default)]
pub struct Snapshot {
    /// The latest version read; `None`: no table yet.
    pub version: Option<u64>,
    /// Live files by path (relative to the table root), filled by
    /// [`Table::snapshot`] (a commit needs only the transactions).
    pub files: BTreeMap<String, AddFile>,
    kernel: Option<SnapshotRef>,
    /// Other writers committed between this view's last two commits: the
    /// next commit reads the log before its first attempt.
    contended: bool,
}

impl std::fmt::Debug for Snapshot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Snapshot").field("version", &self.version).field("files", &self.files.len()).finish()
    }
}

/// A live file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddFile {
    pub path: String,
    pub size: u64,
    pub modification_time: i64,
    pub partition_values: BTreeMap<String, Option<String>>,
    pub rows: Option<u64>,
    /// The partition the file holds, when its name is one lakefleet gives
    /// (`{dataset}_{label}[.{generation}].parquet`); `None`: another tool's
    /// file (a compaction, a rewrite).
    pub partition: Option<String>,
    /// Whether a deletion vector hides some of its rows.
    pub deletion_vector: bool,
}

impl Snapshot {
    /// Rows of the live files (from their stats).
    pub fn rows(&self) -> u64 {
        self.files.values().filter_map(|f| f.rows).sum()
    }

    /// The table's properties (`delta.appendOnly`, ...) as the log sets them.
    pub fn properties(&self) -> BTreeMap<String, String> {
        self.kernel
            .as_ref()
            .map(|k| k.table_configuration().metadata().configuration().clone().into_iter().collect())
            .unwrap_or_default()
    }
}

/// Why a commit did not happen.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("{0}")]
    Lake(#[from] LakeError),
    /// The log holds something we cannot read, or the kernel failed.
    #[error("table {table}: {message}")]
    Log { table: String, message: String },
    /// Other writers kept winning: the task goes back to the retry queue.
    #[error("table {table}: {attempts} commit attempts lost to other writers; the task is retried")]
    Contention { table: String, attempts: u32 },
    /// The dataset's schema changed in a way old files cannot satisfy.
    #[error("table {table}: {message}")]
    Schema { table: String, message: String },
    /// The table asks of its writers what lakefleet does not do (a feature,
    /// a property, a constraint): nothing was written.
    #[error("table {table}: {message}")]
    Unsupported { table: String, message: String },
    /// The lake answered 401 or 403: the fleet's credentials may not write there.
    #[error(
        "table {table}: the lake refused the fleet's credentials ({message}); check the lake's credentials and permissions"
    )]
    Refused { table: String, message: String },
}

impl TableError {
    /// Whether the error may heal on a retry.
    pub fn is_transient(&self) -> bool {
        match self {
            TableError::Lake(e) => e.is_transient(),
            TableError::Contention { .. } | TableError::Log { .. } => true,
            TableError::Schema { .. } | TableError::Unsupported { .. } | TableError::Refused { .. } => false,
        }
    }
}

/// One partition's object, to be committed.
#[derive(Debug, Clone)]
pub struct PartitionCommit {
    /// `2022-01-08` (the task's partition).
    pub partition: String,
    /// The object's key below the lake root (`{dataset}/year=2022/...`).
    pub key: String,
    pub size: u64,
    pub rows: u64,
    /// The partition's ingestion generation: 1, then +1 per refresh.
    pub generation: u64,
    /// The Add's statistics ([`stats::of_file`]); `None`: the row count only.
    pub stats: Option<String>,
    /// The partition column's value (`2022`).
    pub year: i32,
}

/// How a commit ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Committed {
    /// This worker's commit is version `version`, after `attempts` tries.
    Written { version: u64, attempts: u32 },
    /// The table already records this generation of the partition.
    AlreadyCommitted { attempts: u32 },
}

/// A dataset's table.
pub struct Table<'a> {
    lake: &'a Lake,
    ds: &'a Dataset,
}

/// `lakefleet/{dataset}/{partition}`: the txn id of a partition.
pub fn app_id(dataset: &str, partition: &str) -> String {
    format!("lakefleet/{dataset}/{partition}")
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl<'a> Table<'a> {
    pub fn new(lake: &'a Lake, ds: &'a Dataset) -> Table<'a> {
        Table { lake, ds }
    }

    fn log_err(&self, message: impl std::fmt::Display) -> TableError {
        TableError::Log { table: self.ds.name.clone(), message: message.to_string() }
    }

    fn url(&self) -> url::Url {
        self.lake.kernel().url_of(&self.ds.name)
    }

    /// Runs `f` (the kernel's blocking calls) on a blocking thread.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Engine) -> Result<T, TableError> + Send + 'static,
    ) -> Result<T, TableError> {
        let engine = self.lake.kernel().engine();
        tokio::task::spawn_blocking(move || f(&engine))
            .await
            .map_err(|e| self.log_err(format!("the kernel's thread failed: {e}")))?
    }

    /// Whether the dataset's folder is a Delta table: it has a log (a
    /// listing of `_delta_log/`).
    pub async fn has_log(&self) -> Result<bool, TableError> {
        let listed = self.lake.list(&format!("{}/_delta_log/", self.ds.name)).await?;
        Ok(listed.iter().any(|(k, _)| k.ends_with(".json") || k.contains(".checkpoint")))
    }

    /// Brings `snap` up to the latest version (nothing when no table exists).
    pub async fn refresh(&self, snap: &mut Snapshot) -> Result<(), TableError> {
        let prior = snap.kernel.clone();
        if prior.is_none() && !self.has_log().await? {
            return Ok(());
        }
        let (url, name) = (self.url(), self.ds.name.clone());
        let latest = self.blocking(move |engine| latest(engine, &url, &name, prior)).await?;
        snap.version = latest.as_ref().map(|k| k.version());
        snap.kernel = latest;
        Ok(())
    }

    /// The generation of `partition` the table records (0: none), as `snap` says.
    pub async fn generation(&self, snap: &Snapshot, partition: &str) -> Result<u64, TableError> {
        let Some(k) = snap.kernel.clone() else { return Ok(0) };
        let (app, name) = (app_id(&self.ds.name, partition), self.ds.name.clone());
        self.blocking(move |engine| {
            k.get_app_id_version(&app, engine).map(|v| v.unwrap_or(0).max(0) as u64).map_err(|e| kernel_err(&name, e))
        })
        .await
    }

    /// The table as the log says now, with its live files.
    pub async fn snapshot(&self) -> Result<Snapshot, TableError> {
        let mut snap = Snapshot::default();
        self.refresh(&mut snap).await?;
        let Some(k) = snap.kernel.clone() else { return Ok(snap) };
        let (name, ds) = (self.ds.name.clone(), self.ds.clone());
        snap.files = self.blocking(move |engine| live_files(engine, &k, &ds).map_err(|e| kernel_err(&name, e))).await?;
        Ok(snap)
    }

    /// Writes a checkpoint of the table at `snap`'s version (the kernel
    /// writes it and `_last_checkpoint`).
    pub async fn write_checkpoint(&self, snap: &Snapshot) -> Result<(), TableError> {
        let Some(k) = snap.kernel.clone() else { return Ok(()) };
        let name = self.ds.name.clone();
        self.blocking(move |engine| k.checkpoint(engine, None).map(|_| ()).map_err(|e| kernel_err(&name, e))).await
    }

    /// Commits `c` exactly once: the table records generation
    /// `c.generation` of the partition after this returns `Ok`, by this
    /// commit or an earlier one. `cache` is this process's snapshot of the
    /// table (brought up to date here).
    pub async fn commit(&self, cache: &mut Snapshot, c: &PartitionCommit) -> Result<Committed, TableError> {
        self.commit_all(cache, std::slice::from_ref(c), if c.generation > 1 { "REFRESH" } else { "WRITE" }).await
    }

    /// Commits the partitions of `all` that the table does not record yet
    /// (at their generation) in one version; `AlreadyCommitted` when it
    /// records every one. `operation` names the commit in its history.
    pub async fn commit_all(
        &self,
        cache: &mut Snapshot,
        all: &[PartitionCommit],
        operation: &str,
    ) -> Result<Committed, TableError> {
        let job = CommitJob {
            url: self.url(),
            lake: self.lake.clone(),
            ds: self.ds.clone(),
            all: all.to_vec(),
            operation: operation.to_string(),
            prior: cache.kernel.clone(),
            read_first: cache.contended,
            exists: cache.kernel.is_some() || self.has_log().await?,
            rewritten: HashMap::new(),
        };
        let (committed, latest) = self.blocking(move |engine| job.run(engine)).await?;
        if let Some(latest) = latest {
            // Others committed since this view's last version (a lost first
            // attempt means that too: the commit landed past the next version).
            cache.contended = cache.version.is_some_and(|v| latest.version() > v + 1);
            cache.version = Some(latest.version());
            cache.kernel = Some(latest);
        }
        Ok(committed)
    }

    /// Makes a folder of objects written without a table (before tables
    /// existed, or with `table = false`) a table: every object whose name is
    /// one of the dataset's partitions (`{dataset}_{partition}[.{gen}].parquet`;
    /// the highest generation of a partition) is committed, its row count
    /// read from its footer only. Idempotent: partitions the table records
    /// are left alone. Returns the commit and what it added (files, rows).
    pub async fn init_from_folder(&self, cache: &mut Snapshot) -> Result<(Committed, usize, u64), TableError> {
        let root = format!("{}/", self.ds.name);
        let mut best: BTreeMap<String, (u64, String, u64)> = BTreeMap::new();
        for (key, size, _) in self.lake.list_meta(&root).await? {
            let rel = key.strip_prefix(&root).unwrap_or(&key);
            if rel.starts_with('_') || rel.contains("/_") {
                continue;
            }
            let Some((partition, generation)) = partition_of(self.ds, rel) else { continue };
            if best.get(&partition).is_none_or(|(g, _, _)| generation > *g) {
                best.insert(partition, (generation, key.clone(), size));
            }
        }
        let mut commits = Vec::new();
        let mut rows = 0;
        for (partition, (generation, key, size)) in best {
            let date: chrono::NaiveDate = partition.parse().map_err(|_| self.log_err(format!("{key}: no date")))?;
            let n = self.lake.parquet_rows(&key, size).await?;
            rows += n;
            commits.push(PartitionCommit {
                partition,
                key,
                size,
                rows: n,
                generation,
                year: chrono::Datelike::year(&date),
                stats: None,
            });
        }
        let added = commits.len();
        let committed = self.commit_all(cache, &commits, "CONVERT").await?;
        Ok((committed, added, rows))
    }
}

/// The partition (`2022-01-08`) and generation of an object of `ds`'s
/// folder, from its name (`year=2022/{dataset}_2022-01-08[.2].parquet`).
pub fn partition_of(ds: &Dataset, rel: &str) -> Option<(String, u64)> {
    let name = rel.rsplit('/').next()?;
    let stem = name.strip_prefix(&format!("{}_", ds.name))?.strip_suffix(".parquet")?;
    let (label, generation) = match stem.split_once('.') {
        Some((l, g)) => (l, g.parse().ok()?),
        None => (stem, 1),
    };
    let date = match label.len() {
        7 => chrono::NaiveDate::parse_from_str(&format!("{label}-01"), "%Y-%m-%d").ok()?,
        _ => label.parse().ok()?,
    };
    (ds.object_key(date).ends_with(&format!("/{}_{label}.parquet", ds.name))).then(|| (date.to_string(), generation))
}

/// A kernel error as lakefleet says it: a store's 401/403 is the lake
/// refusing the fleet; an unsupported protocol or feature refuses the table.
fn kernel_err(table: &str, e: KernelError) -> TableError {
    let table = table.to_string();
    let message = e.to_string();
    match &e {
        KernelError::ObjectStore(
            object_store::Error::PermissionDenied { .. } | object_store::Error::Unauthenticated { .. },
        ) => TableError::Refused { table, message },
        KernelError::Unsupported(_) | KernelError::InvalidProtocol(_) => TableError::Unsupported { table, message },
        _ if message.contains("403 Forbidden") || message.contains("401 Unauthorized") => {
            TableError::Refused { table, message }
        }
        _ => TableError::Log { table, message },
    }
}

/// The latest snapshot: from `prior` when there is one (only the log after
/// it is read), else from a listing of `_delta_log`.
///
/// The snapshot carries the table's version checksum (CRC: its transactions,
/// protocol and metadata) in memory, advanced over the new commits, so that
/// a partition's `txn` is found without replaying the log. A fresh snapshot
/// gets it by writing the version's `.crc` file (from the newest checkpoint
/// and the commits after it), as Delta writers do; where the kernel cannot
/// make one, lookups replay the log.
fn latest(
    engine: &Engine,
    url: &url::Url,
    table: &str,
    prior: Option<SnapshotRef>,
) -> Result<Option<SnapshotRef>, TableError> {
    use delta_kernel::snapshot::IncrementalReplay;
    let fresh_build = || {
        delta_kernel::Snapshot::builder_for(url.as_str())
            .with_incremental_crc_replay(IncrementalReplay::Unlimited)
            .build(engine)
    };
    let (mut fresh, mut adopt) = (prior.is_none(), false);
    let built = match prior {
        // Only the versions after ours are listed, and a new checkpoint is
        // not adopted: the in-memory checksum carries the state (adopting
        // another writer's newer checkpoint drops it). A snapshot whose
        // commits since its checkpoint grew long adopts the newest one.
        // Commits another tool cleaned up since make that fail: then the
        // table is read anew.
        Some(p) => {
            // Adopting a checkpoint newer than `p` leaves no checksum (written below).
            adopt = long_tail(&p);
            let builder = match adopt {
                false => delta_kernel::Snapshot::builder_from(p).skip_new_checkpoints(),
                true => delta_kernel::Snapshot::builder_from(p),
            };
            match builder.with_incremental_crc_replay(IncrementalReplay::Unlimited).build(engine) {
                Ok(s) => Ok(s),
                Err(e) => {
                    tracing::info!(table, error = %e, "the log changed under this view of it; reading it anew");
                    fresh = true;
                    fresh_build()
                }
            }
        }
        None => fresh_build(),
    };
    let mut snap = built.map_err(|e| kernel_err(table, e))?;
    if fresh || (adopt && snap.crc_at_version().is_none()) {
        // Writers racing to the same version race to write its checksum
        // too: the loser reads the table again (it finds the winner's file)
        // rather than go on without one (every `txn` lookup would replay the
        // log, and every view built from it after).
        for _ in 0..3 {
            if snap.crc_at_version().is_some() {
                break;
            }
            match snap.write_checksum(engine) {
                Ok((ChecksumWriteResult::Written, with_crc)) => return Ok(Some(with_crc)),
                Ok((ChecksumWriteResult::AlreadyExists, _)) => {
                    snap = fresh_build().map_err(|e| kernel_err(table, e))?
                }
                Err(e) => {
                    tracing::debug!(table, error = %e, "no version checksum: transactions are read from the log");
                    break;
                }
            }
        }
    }
    Ok(Some(snap))
}

/// Whether `snap` carries more commits after its checkpoint than a table
/// with checkpoints needs: an incremental build keeps every commit since the
/// snapshot was first read (so that the in-memory checksum carries the state
/// across another writer's checkpoint), and each later build and commit
/// copies that list; past this many the snapshot adopts the newest
/// checkpoint (the one this writer or another wrote since).
fn long_tail(snap: &SnapshotRef) -> bool {
    let segment = snap.log_segment();
    segment.end_version.saturating_sub(segment.checkpoint_version.unwrap_or(0)) > LONGEST_LOG_TAIL
}

/// The most commits after a checkpoint that a snapshot carries before it
/// adopts a newer one ([`long_tail`]).
const LONGEST_LOG_TAIL: u64 = 150;

/// Every live file of `snap`.
fn live_files(engine: &Engine, snap: &SnapshotRef, ds: &Dataset) -> Result<BTreeMap<String, AddFile>, KernelError> {
    struct Ctx<'d> {
        ds: &'d Dataset,
        files: BTreeMap<String, AddFile>,
    }
    let scan = snap.clone().scan_builder().build()?;
    let mut ctx = Ctx { ds, files: BTreeMap::new() };
    for meta in scan.scan_metadata(engine)? {
        ctx = meta?.visit_scan_files(ctx, |ctx, f| {
            let path = f.path.clone();
            let partition = partition_of(ctx.ds, &path).map(|(p, _)| p);
            ctx.files.insert(
                path.clone(),
                AddFile {
                    path,
                    size: f.size.max(0) as u64,
                    modification_time: f.modification_time,
                    partition_values: f.partition_values.iter().map(|(k, v)| (k.clone(), Some(v.clone()))).collect(),
                    rows: f.stats.as_ref().map(|s| s.num_records),
                    partition,
                    deletion_vector: f.dv_info.has_vector(),
                },
            );
        })?;
    }
    Ok(ctx.files)
}

#[cfg(test)]
mod tests;
