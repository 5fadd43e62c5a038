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
use delta_kernel::table_features::TableFeature;
use delta_kernel::transaction::{CommitResult, UpdateTableOperation};
use delta_kernel::{Engine as _, EngineData, KernelError, SnapshotRef};

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

/// Writer features lakefleet honours. Any other feature a table requires of
/// its writers refuses the table before anything is written.
///
/// - `appendOnly`: backfills append; a refresh (which removes files) is refused.
/// - `invariants`, `checkConstraints`: allowed only while the table has no
///   invariant nor constraint (lakefleet does not evaluate them: a table
///   with one is refused).
/// - `changeDataFeed`: lakefleet adds and removes whole files, whose
///   changes readers derive from the Adds and Removes; no `cdc` file is due.
///   A refresh that would rewrite another tool's file (which would need
///   one) is refused while `delta.enableChangeDataFeed` is set.
/// - `deletionVectors`: a refresh removes a file with its deletion vector
///   (the kernel's Removes carry it); lakefleet writes none itself.
/// - `timestampNtz`, `domainMetadata`, `vacuumProtocolCheck`,
///   `columnMapping` (mode `none` only), `v2Checkpoint`: the kernel writes
///   the log these ask for.
/// - `variantType` (python deltalake turns it on with any property): the
///   table may hold variant columns; the catalog has none, and a table
///   column the catalog does not type alike is refused by the schema check.
pub const WRITER_FEATURES: [&str; 12] = [
    "appendOnly",
    "invariants",
    "checkConstraints",
    "changeDataFeed",
    "deletionVectors",
    "timestampNtz",
    "domainMetadata",
    "vacuumProtocolCheck",
    "v2Checkpoint",
    "columnMapping",
    "variantType",
    "variantType-preview",
];

/// The table as the log says at one version.
#[derive(Clone, Default)]
pub struct Snapshot {
    /// The latest version read; `None`: no table yet.
    pub version: Option<u64>,
    /// Live files by path (relative to the table root), filled by
    /// [`Table::snapshot`] (a commit needs only the transactions).
    pub files: BTreeMap<String, AddFile>,
    kernel: Option<SnapshotRef>,
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

/// Delta's type of an output column: timestamps are `timestamp` (instants)
/// unless the dataset keeps wall-clock times (`timestamp_ntz`).
fn delta_type(t: ColumnType, instants: bool) -> DataType {
    match t {
        ColumnType::String => DataType::STRING,
        ColumnType::Int64 => DataType::LONG,
        ColumnType::Float64 => DataType::DOUBLE,
        ColumnType::Date => DataType::DATE,
        ColumnType::Timestamp if instants => DataType::TIMESTAMP,
        ColumnType::Timestamp => DataType::TIMESTAMP_NTZ,
    }
}

/// The table's schema: the dataset's output columns, the lineage column
/// ([`crate::convert::LINEAGE_COLUMN`]), then `year`.
pub fn schema(ds: &Dataset) -> StructType {
    let instants = ds.timestamps == crate::catalog::Timestamps::Instant;
    let fields = ds
        .columns
        .iter()
        .map(|c| (Dataset::output_name(c), c.ty))
        .chain(ds.derived.iter().map(|d| (d.name.clone(), d.ty)))
        .map(|(name, ty)| StructField::nullable(name, delta_type(ty, instants)))
        .chain([
            StructField::nullable(crate::convert::LINEAGE_COLUMN, DataType::DATE),
            StructField::nullable(PARTITION_COLUMN, DataType::INTEGER),
        ]);
    StructType::new_unchecked(fields)
}

/// The table's schema as Delta's JSON schema string.
pub fn schema_string(ds: &Dataset) -> String {
    serde_json::to_string(&schema(ds)).unwrap_or_default()
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Whether lakefleet may write to the table `snap` is, and what it may do:
/// `removes` when the commit removes files (a refresh). Names the feature,
/// property or constraint it refuses.
pub fn check_writable(snap: &delta_kernel::Snapshot, removes: bool) -> Result<(), String> {
    let config = snap.table_configuration();
    let protocol = config.protocol();
    if protocol.min_writer_version() > 7 {
        return Err(format!(
            "requires writer version {}, newer than lakefleet writes (7)",
            protocol.min_writer_version()
        ));
    }
    for f in protocol.writer_features().unwrap_or_default() {
        let name = f.to_string();
        if !WRITER_FEATURES.contains(&name.as_str()) {
            return Err(format!("requires writer feature {name}, which lakefleet does not write"));
        }
    }
    let properties = config.metadata().configuration();
    if let Some(mode) = properties.get("delta.columnMapping.mode")
        && mode != "none"
    {
        return Err(format!("uses delta.columnMapping.mode = {mode}, which lakefleet does not write"));
    }
    if let Some(key) = properties.keys().find(|k| k.starts_with("delta.constraints.")) {
        let name = key.trim_start_matches("delta.constraints.");
        return Err(format!(
            "has the CHECK constraint {name} ({}), which lakefleet does not evaluate: drop it or write the dataset to another table",
            properties[key]
        ));
    }
    if let Some(field) = snap.schema().fields().find(|f| f.metadata().contains_key("delta.invariants")) {
        return Err(format!("column {} has an invariant, which lakefleet does not evaluate", field.name()));
    }
    if removes && snap.table_properties().append_only == Some(true) {
        return Err(
            "sets delta.appendOnly = true: a refresh removes the partition's old files, which an append-only table forbids (backfills still append; unset the property to refresh)"
                .to_string(),
        );
    }
    let _ = TableFeature::AppendOnly;
    Ok(())
}

/// What a commit of `all` would change in the table's schema: the columns
/// to add. A column the table has that the catalog lost, or whose type
/// changed, is refused naming it.
fn schema_changes(table: &StructType, ours: &StructType) -> Result<Vec<StructField>, String> {
    for theirs in table.fields() {
        match ours.field(theirs.name()) {
            None => {
                return Err(format!(
                    "the catalog no longer has column {}, which the table's files hold; keep the column (nullable), or write the dataset under a new name (or a new table) and backfill it",
                    theirs.name()
                ));
            }
            Some(f) if f.data_type() == &DataType::TIMESTAMP && theirs.data_type() == &DataType::TIMESTAMP_NTZ => {
                return Err(format!(
                    "column {} holds wall-clock times (timestamp_ntz: written before lakefleet stored instants) and the catalog now stores instants (timestamp, read in its time_zone); nothing is mixed: set timestamps = \"wall_clock\" for the dataset to keep appending to this table, or move the dataset to a new table (a new dataset name, or a new lake folder) and backfill it there as instants",
                    theirs.name()
                ));
            }
            Some(f) if f.data_type() != theirs.data_type() => {
                return Err(format!(
                    "column {} is {} in the catalog but {} in the table's files, which cannot be read as {}; keep its type, or write the dataset under a new name and backfill it",
                    theirs.name(),
                    f.data_type(),
                    theirs.data_type(),
                    f.data_type()
                ));
            }
            Some(_) => {}
        }
    }
    Ok(ours.fields().filter(|f| table.field(f.name()).is_none()).cloned().collect())
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
            exists: cache.kernel.is_some() || self.has_log().await?,
            rewritten: HashMap::new(),
        };
        let (committed, latest) = self.blocking(move |engine| job.run(engine)).await?;
        if let Some(latest) = latest {
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
    let mut fresh = prior.is_none();
    let built = match prior {
        // Only the versions after ours are listed (a new checkpoint is not
        // adopted: the in-memory checksum carries the state). Commits another
        // tool cleaned up since make that fail: then the table is read anew.
        Some(p) => match delta_kernel::Snapshot::builder_from(p)
            .skip_new_checkpoints()
            .with_incremental_crc_replay(IncrementalReplay::Unlimited)
            .build(engine)
        {
            Ok(s) => Ok(s),
            Err(e) => {
                tracing::info!(table, error = %e, "the log changed under this view of it; reading it anew");
                fresh = true;
                fresh_build()
            }
        },
        None => fresh_build(),
    };
    let snap = built.map_err(|e| kernel_err(table, e))?;
    if fresh {
        match snap.write_checksum(engine) {
            Ok((_, with_crc)) => return Ok(Some(with_crc)),
            Err(e) => tracing::debug!(table, error = %e, "no version checksum: transactions are read from the log"),
        }
    }
    Ok(Some(snap))
}

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

/// A commit, run on a blocking thread.
struct CommitJob {
    url: url::Url,
    lake: Lake,
    ds: Dataset,
    all: Vec<PartitionCommit>,
    operation: String,
    prior: Option<SnapshotRef>,
    exists: bool,
    /// Another tool's files rewritten without a refreshed partition's rows
    /// (by path and the partitions taken out), kept across attempts.
    rewritten: HashMap<String, Rewrite>,
}

/// What a refresh does with another tool's file that may hold a refreshed
/// partition's rows beside others.
#[derive(Debug, Clone)]
enum Rewrite {
    /// None of its live rows are the partitions': left alone.
    Untouched,
    /// Every live row was the partitions': removed.
    Removed,
    /// Removed, and its other live rows written anew to this object.
    Replaced(PartitionCommit),
}

impl CommitJob {
    fn err(&self, e: KernelError) -> TableError {
        kernel_err(&self.ds.name, e)
    }

    fn run(mut self, engine: &Engine) -> Result<(Committed, Option<SnapshotRef>), TableError> {
        let table = self.ds.name.clone();
        let mut read_anew = false;
        let mut attempt = 0;
        while attempt < MAX_COMMIT_ATTEMPTS {
            attempt += 1;
            match self.attempt(engine, attempt) {
                Ok(Some(done)) => return Ok(done),
                Ok(None) => {}
                // This process's view of the log names commits another tool
                // cleaned up since (behind a newer checkpoint): read the
                // table anew, once, without counting an attempt.
                Err(TableError::Log { message, .. })
                    if !read_anew && (message.contains("not found") || message.contains("NotFound")) =>
                {
                    tracing::info!(table = %table, error = %message, "the log changed under this view of it; reading it anew");
                    (read_anew, self.prior, self.exists) = (true, None, true);
                    attempt -= 1;
                    continue;
                }
                Err(e) => return Err(e),
            }
            // Another writer took this version: read it and try again at
            // once, then after a jittered pause that grows with the attempts.
            if attempt > 1 {
                let base = 10u64 << attempt.min(6);
                std::thread::sleep(Duration::from_millis(base + jitter(base)));
            }
        }
        Err(TableError::Contention { table, attempts: MAX_COMMIT_ATTEMPTS })
    }

    /// One commit attempt: `Some` when it ends the job, `None` when another
    /// writer took the version first.
    fn attempt(
        &mut self,
        engine: &Engine,
        attempt: u32,
    ) -> Result<Option<(Committed, Option<SnapshotRef>)>, TableError> {
        let table = self.ds.name.clone();
        if !self.exists && self.prior.is_none() {
            if self.all.is_empty() {
                return Ok(Some((Committed::AlreadyCommitted { attempts: attempt }, None)));
            }
            // No table yet: its first version holds these partitions.
            if let Some(done) = self.create(engine)? {
                return Ok(Some((Committed::Written { version: 0, attempts: attempt }, Some(done))));
            }
            // Another writer created it first: commit after its version.
            self.exists = true;
        }
        // The first attempt commits against this process's view of the
        // log as it is (one conditional PUT when the view is whole: the
        // version after it is free only if nothing came since); a lost
        // race reads the versions it missed.
        let snap = match (attempt, self.prior.take()) {
            (1, Some(cached)) => cached,
            (_, prior) => latest(engine, &self.url, &table, prior)?.expect("a table"),
        };

        self.prior = Some(snap.clone());
        let mut todo = Vec::new();
        for c in &self.all {
            let recorded = snap
                .get_app_id_version(&app_id(&table, &c.partition), engine)
                .map_err(|e| self.err(e))?
                .unwrap_or(0)
                .max(0) as u64;
            if recorded < c.generation {
                todo.push(c.clone());
            }
        }
        if todo.is_empty() {
            return Ok(Some((Committed::AlreadyCommitted { attempts: attempt }, Some(snap))));
        }
        check_writable(&snap, todo.iter().any(|c| c.generation > 1))
            .map_err(|m| TableError::Unsupported { table: table.clone(), message: m })?;
        let (removes, rewrites) = self.removes(engine, &snap, &todo)?;
        let added = schema_changes(&snap.schema(), &schema(&self.ds))
            .map_err(|m| TableError::Schema { table: table.clone(), message: m })?;
        let op = match self.operation.as_str() {
            "WRITE" => UpdateTableOperation::Write,
            other => UpdateTableOperation::Custom(other.to_string()),
        };
        let params: Vec<(String, Option<String>)> = match todo.as_slice() {
            [one] => vec![
                ("partition".into(), Some(one.partition.clone())),
                ("generation".into(), Some(one.generation.to_string())),
            ],
            many => vec![("partitions".into(), Some(many.len().to_string()))],
        };
        let mut params = params;
        if !rewrites.is_empty() {
            params.push(("rewrittenFiles".into(), Some(rewrites.len().to_string())));
        }
        let mut builder = snap.clone().update_table(op, ENGINE_INFO, true).with_operation_parameters(params);
        for f in added {
            builder = builder.add_column(f);
        }
        let mut txn = builder.build(engine, Box::new(FileSystemCommitter::new())).map_err(|e| self.err(e))?;
        for c in &todo {
            txn = txn.with_transaction_id(app_id(&table, &c.partition), c.generation as i64);
        }
        let stats_schema = txn.stats_schema().map_err(|e| self.err(e))?;
        let adds: Vec<PartitionCommit> = todo.iter().cloned().chain(rewrites).collect();
        txn.add_files(add_batch(engine, &self.ds.name, &adds, stats_schema).map_err(|e| self.err(e))?);
        for r in removes {
            txn.remove_files(r);
        }
        match txn.commit(engine).map_err(|e| self.err(e))? {
            CommitResult::Committed(done) => {
                let version = done.commit_version();
                let after = match done.post_commit_snapshot() {
                    Some(s) => s.clone(),
                    None => latest(engine, &self.url, &table, Some(snap))?.expect("a table"),
                };
                if version > 0
                    && version % self.ds.checkpoint_interval == 0
                    && let Err(e) = after.checkpoint(engine, None)
                {
                    tracing::warn!(table = %table, version, error = %e, "checkpoint not written");
                }
                return Ok(Some((Committed::Written { version, attempts: attempt }, Some(after))));
            }
            CommitResult::Conflicted(_) => {}
            CommitResult::Retryable(r) => {
                tracing::warn!(table = %table, error = %r.error, "commit failed; trying again");
            }
        }
        Ok(None)
    }

    /// Creates the table with every partition of the job as its version 0
    /// (protocol, metadata, Adds and txns); `None` when another writer
    /// created it first (nothing written).
    fn create(&self, engine: &Engine) -> Result<Option<SnapshotRef>, TableError> {
        if self.url.scheme() == "file"
            && let Ok(dir) = self.url.to_file_path()
        {
            // The kernel creates a table only in a folder that exists.
            std::fs::create_dir_all(&dir)
                .map_err(|e| self.err(KernelError::Generic(format!("{}: {e}", dir.display()))))?;
        }
        let built = delta_kernel::transaction::create_table::create_table(
            self.url.as_str(),
            Arc::new(schema(&self.ds)),
            ENGINE_INFO,
            true,
        )
        .with_data_layout(delta_kernel::transaction::data_layout::DataLayout::partitioned([PARTITION_COLUMN]))
        .build(engine, Box::new(FileSystemCommitter::new()));
        let mut txn = match built {
            Ok(txn) => txn,
            // Another writer created it between our listing and now.
            Err(e) if e.to_string().contains("already exists") => return Ok(None),
            Err(e) => return Err(self.err(e)),
        };
        for c in &self.all {
            txn = txn.with_transaction_id(app_id(&self.ds.name, &c.partition), c.generation as i64);
        }
        if !self.all.is_empty() {
            let stats_schema = txn.stats_schema().map_err(|e| self.err(e))?;
            txn.add_files(add_batch(engine, &self.ds.name, &self.all, stats_schema).map_err(|e| self.err(e))?);
        }
        match txn.commit(engine).map_err(|e| self.err(e))? {
            CommitResult::Committed(done) => match done.post_commit_snapshot() {
                Some(s) => Ok(Some(s.clone())),
                None => Ok(latest(engine, &self.url, &self.ds.name, None)?),
            },
            CommitResult::Conflicted(_) => Ok(None),
            CommitResult::Retryable(r) => Err(self.err(r.error)),
        }
    }

    /// The Removes of a refresh, as the kernel's scan rows (so that they
    /// carry deletion vectors), and the Adds of the files written in their
    /// place:
    ///
    /// - every live file lakefleet named for a refreshed partition (other
    ///   than the new generation's);
    /// - every file of another tool (a compaction, a delete that rewrote
    ///   files) in a refreshed partition's year whose statistics of
    ///   [`crate::convert::LINEAGE_COLUMN`] do not rule the partition out: it
    ///   is read, and when it holds the partition's rows it is removed and
    ///   its other live rows (its deletion vector applied) are written to a
    ///   new file, added in the same commit.
    fn removes(
        &mut self,
        engine: &Engine,
        snap: &SnapshotRef,
        todo: &[PartitionCommit],
    ) -> Result<(Vec<delta_kernel::engine_data::FilteredEngineData>, Vec<PartitionCommit>), TableError> {
        let refreshed: HashMap<&str, &str> = todo
            .iter()
            .filter(|c| c.generation > 1)
            .map(|c| (c.partition.as_str(), c.key.rsplit('/').next().unwrap_or(&c.key)))
            .collect();
        if refreshed.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let mut years: HashMap<String, Vec<String>> = HashMap::new();
        for c in todo.iter().filter(|c| c.generation > 1) {
            years.entry(c.year.to_string()).or_default().push(c.partition.clone());
        }
        let scan = snap.clone().scan_builder().build().map_err(|e| self.err(e))?;
        let (mut out, mut added) = (Vec::new(), Vec::new());
        for meta in scan.scan_metadata(engine).map_err(|e| self.err(e))? {
            let meta = meta.map_err(|e| self.err(e))?;
            // Another tool's files in a refreshed partition's year, with
            // their deletion vectors and years.
            struct Foreign<'d> {
                ds: &'d Dataset,
                years: &'d HashMap<String, Vec<String>>,
                found: HashMap<String, (delta_kernel::scan::state::DvInfo, String)>,
            }
            let ctx = Foreign { ds: &self.ds, years: &years, found: HashMap::new() };
            let foreign = meta
                .visit_scan_files(ctx, |ctx, f| {
                    let year = f.partition_values.get(PARTITION_COLUMN).cloned().unwrap_or_default();
                    if partition_of(ctx.ds, &f.path).is_none() && ctx.years.contains_key(&year) {
                        ctx.found.insert(f.path.clone(), (f.dv_info.clone(), year));
                    }
                })
                .map_err(|e| self.err(e))?
                .found;
            let (data, selected) = meta.scan_files.into_parts();
            let arrow = ArrowEngineData::try_from_engine_data(data).map_err(|e| self.err(e))?;
            let batch = arrow.record_batch();
            let column = |name: &str| {
                batch.column_by_name(name).and_then(|c| c.as_any().downcast_ref::<StringArray>()).cloned().ok_or_else(
                    || TableError::Log { table: self.ds.name.clone(), message: format!("scan rows without {name}") },
                )
            };
            let (paths, stats) = (column("path")?, column("stats")?);
            let mut any = false;
            let mut selection = Vec::with_capacity(batch.num_rows());
            for i in 0..batch.num_rows() {
                let live = selected.get(i).copied().unwrap_or(true);
                let path = paths.value(i);
                let hit = match (live, partition_of(&self.ds, path), foreign.get(path)) {
                    (false, _, _) => false,
                    (true, Some((p, _)), _) => {
                        refreshed.get(p.as_str()).is_some_and(|new| path.rsplit('/').next() != Some(new))
                    }
                    (true, None, Some((dv, year))) => {
                        let partitions = &years[year];
                        let stats = stats.is_valid(i).then(|| stats.value(i));
                        if !may_hold(stats, partitions) {
                            false
                        } else {
                            match self.rewrite(engine, snap, path, dv, year, partitions)? {
                                Rewrite::Untouched => false,
                                Rewrite::Removed => true,
                                Rewrite::Replaced(add) => {
                                    added.push(add);
                                    true
                                }
                            }
                        }
                    }
                    (true, None, None) => false,
                };
                any |= hit;
                selection.push(hit);
            }
            if any {
                let data: Box<dyn EngineData> = arrow;
                out.push(
                    delta_kernel::engine_data::FilteredEngineData::try_new(data, selection).map_err(|e| self.err(e))?,
                );
            }
        }
        Ok((out, added))
    }

    /// Reads another tool's file `path` and, when it holds rows of
    /// `partitions` (by [`crate::convert::LINEAGE_COLUMN`]), writes its other
    /// live rows to a new object of its folder (uploaded now, added by the
    /// commit). A file without the column (compacted from files written
    /// before lakefleet marked each row's partition) is refused, naming it.
    fn rewrite(
        &mut self,
        engine: &Engine,
        snap: &SnapshotRef,
        path: &str,
        dv: &delta_kernel::scan::state::DvInfo,
        year: &str,
        partitions: &[String],
    ) -> Result<Rewrite, TableError> {
        use arrow_array::cast::AsArray;
        use parquet::arrow::ArrowWriter;
        use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

        let memo = format!("{path}\n{}", partitions.join(","));
        if let Some(done) = self.rewritten.get(&memo) {
            return Ok(done.clone());
        }
        let table = self.ds.name.clone();
        let unsupported = |message: String| TableError::Unsupported { table: table.clone(), message };
        let log = |what: &str, e: &dyn std::fmt::Display| TableError::Log {
            table: table.clone(),
            message: format!("rewriting {path} without partitions {}: {what}: {e}", partitions.join(", ")),
        };
        if snap.table_properties().enable_change_data_feed == Some(true) {
            return Err(unsupported(format!(
                "{path} (written by another tool) holds rows of partition {} beside others' and delta.enableChangeDataFeed = true: rewriting it needs change data files, which lakefleet does not write; nothing was written. Replace the partition's rows with that tool, or unset the property",
                partitions.join(", ")
            )));
        }
        // The job runs on a blocking thread of the caller's runtime: the
        // lake's own (async) client reads and uploads from here.
        let handle = tokio::runtime::Handle::try_current().map_err(|e| log("no runtime", &e))?;
        let key = format!("{}/{}", self.ds.name, unescape(path));
        let bytes = handle.block_on(self.lake.get(&key))?;
        let mut deleted = dv.get_row_indexes(engine, &self.url).map_err(|e| self.err(e))?.unwrap_or_default();
        deleted.sort_unstable();
        let builder = ParquetRecordBatchReaderBuilder::try_new(bytes).map_err(|e| log("reading it", &e))?;
        let schema = builder.schema().clone();
        let lineage = crate::convert::LINEAGE_COLUMN;
        let Some(col) = schema.index_of(lineage).ok().filter(|i| schema.field(*i).data_type() == &ArrowType::Date32)
        else {
            return Err(unsupported(format!(
                "{path} was written by another tool (a compaction, or a delete that rewrote files) from files without the column {lineage} (written before lakefleet marked each row's partition), so its rows of partition {} cannot be told from the others: nothing was written. Replace the partition's rows with that tool (a DELETE of its rows, then an append), then refresh later partitions as usual",
                partitions.join(", ")
            )));
        };
        let days: Vec<i32> =
            partitions.iter().filter_map(|p| p.parse().ok()).map(crate::convert::lineage_value).collect();
        let reader = builder.build().map_err(|e| log("reading it", &e))?;
        let tmp = std::env::temp_dir().join(format!("lakefleet-rewrite-{}.parquet", uuid::Uuid::new_v4().simple()));
        let _cleanup = RemoveOnDrop(tmp.clone());
        let file = std::fs::File::create(&tmp).map_err(|e| log(&tmp.display().to_string(), &e))?;
        let props = crate::convert::encoder::properties(&schema);
        let mut writer = ArrowWriter::try_new(file, schema.clone(), Some(props)).map_err(|e| log("writing", &e))?;
        let (mut row, mut dropped, mut kept) = (0u64, 0u64, 0u64);
        for batch in reader {
            let batch = batch.map_err(|e| log("reading it", &e))?;
            let values = batch.column(col).as_primitive::<arrow_array::types::Date32Type>();
            let keep: arrow_array::BooleanArray = (0..batch.num_rows())
                .map(|i| {
                    let n = row + i as u64;
                    if deleted.binary_search(&n).is_ok() {
                        return Some(false);
                    }
                    let ours = values.is_valid(i) && days.contains(&values.value(i));
                    dropped += ours as u64;
                    Some(!ours)
                })
                .collect();
            row += batch.num_rows() as u64;
            let rest = arrow_select::filter::filter_record_batch(&batch, &keep).map_err(|e| log("filtering", &e))?;
            kept += rest.num_rows() as u64;
            if rest.num_rows() > 0 {
                writer.write(&rest).map_err(|e| log("writing", &e))?;
            }
        }
        writer.close().map_err(|e| log("writing", &e))?;
        let done = if dropped == 0 {
            Rewrite::Untouched
        } else if kept == 0 {
            Rewrite::Removed
        } else {
            let dir = path.rsplit_once('/').map(|(d, _)| format!("{}/", unescape(d))).unwrap_or_default();
            let key = format!("{}/{dir}part-{}-lakefleet-rewrite.parquet", self.ds.name, uuid::Uuid::new_v4().simple());
            let size = std::fs::metadata(&tmp).map_err(|e| log(&tmp.display().to_string(), &e))?.len();
            handle.block_on(self.lake.upload_file(&key, &tmp, size, crate::lake::Existing::Overwrite))?;
            tracing::info!(table = %table, file = path, rows_out = dropped, rows_kept = kept, new = %key, "rewrote another tool's file without the refreshed partitions' rows");
            Rewrite::Replaced(PartitionCommit {
                partition: String::new(),
                key,
                size,
                rows: kept,
                generation: 0,
                stats: stats::of_file(&tmp),
                year: year.parse().unwrap_or_default(),
            })
        };
        self.rewritten.insert(memo, done.clone());
        Ok(done)
    }
}

/// Removes a temporary file when dropped.
struct RemoveOnDrop(std::path::PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Whether a file whose Add carries `stats` may hold rows of `partitions`
/// (dates, `2022-01-08`): its [`crate::convert::LINEAGE_COLUMN`] range
/// covers one, or its statistics do not say.
fn may_hold(stats: Option<&str>, partitions: &[String]) -> bool {
    let Some(v) = stats.and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok()) else { return true };
    let name = crate::convert::LINEAGE_COLUMN;
    match (v["minValues"][name].as_str(), v["maxValues"][name].as_str()) {
        (Some(lo), Some(hi)) => partitions.iter().any(|p| lo <= p.as_str() && p.as_str() <= hi),
        // No range: every value null (rows no partition of lakefleet's
        // holds), or no statistics of the column.
        _ => !(v["nullCount"][name].is_u64() && v["nullCount"][name] == v["numRecords"]),
    }
}

/// The Adds of `todo` in the kernel's add-files form, their statistics
/// parsed into the table's stats schema.
fn add_batch(
    engine: &Engine,
    dataset: &str,
    todo: &[PartitionCommit],
    stats_schema: delta_kernel::schema::SchemaRef,
) -> Result<Box<dyn EngineData>, KernelError> {
    let root = format!("{dataset}/");
    let now = now_ms();
    let paths: Vec<String> = todo.iter().map(|c| c.key.strip_prefix(&root).unwrap_or(&c.key).to_string()).collect();
    let stats_json: Vec<String> = todo
        .iter()
        .map(|c| c.stats.clone().unwrap_or_else(|| serde_json::json!({"numRecords": c.rows}).to_string()))
        .collect();
    let strings = RecordBatch::try_new(
        Arc::new(Schema::new(vec![Field::new("stats", ArrowType::Utf8, true)])),
        vec![Arc::new(StringArray::from(stats_json)) as ArrayRef],
    )?;
    let parsed = engine.json_handler().parse_json(Box::new(ArrowEngineData::new(strings)), stats_schema)?;
    let parsed = ArrowEngineData::try_from_engine_data(parsed)?;
    let stats = StructArray::from(parsed.record_batch().clone());

    let keys = StringArray::from(vec![PARTITION_COLUMN; todo.len()]);
    let values = StringArray::from(todo.iter().map(|c| Some(c.year.to_string())).collect::<Vec<_>>());
    let entries_fields =
        Fields::from(vec![Field::new("key", ArrowType::Utf8, false), Field::new("value", ArrowType::Utf8, true)]);
    let entries = StructArray::try_new(
        entries_fields.clone(),
        vec![Arc::new(keys) as ArrayRef, Arc::new(values) as ArrayRef],
        None,
    )?;
    let offsets = arrow_buffer::OffsetBuffer::from_lengths(std::iter::repeat_n(1, todo.len()));
    let map = MapArray::try_new(
        Arc::new(Field::new("key_value", ArrowType::Struct(entries_fields), false)),
        offsets,
        entries,
        None,
        false,
    )?;
    let schema = Schema::new(vec![
        Field::new("path", ArrowType::Utf8, false),
        Field::new("partitionValues", map.data_type().clone(), false),
        Field::new("size", ArrowType::Int64, false),
        Field::new("modificationTime", ArrowType::Int64, false),
        Field::new("stats", stats.data_type().clone(), true),
    ]);
    let batch = RecordBatch::try_new(
        Arc::new(schema),
        vec![
            Arc::new(StringArray::from(paths)) as ArrayRef,
            Arc::new(map) as ArrayRef,
            Arc::new(Int64Array::from(todo.iter().map(|c| c.size as i64).collect::<Vec<_>>())) as ArrayRef,
            Arc::new(Int64Array::from(vec![now; todo.len()])) as ArrayRef,
            Arc::new(stats) as ArrayRef,
        ],
    )?;
    Ok(Box::new(ArrowEngineData::new(batch)))
}

/// What a vacuum deleted (or, dry, would delete): keys and sizes.
#[derive(Debug, Clone, Default)]
pub struct Vacuumed {
    pub deleted: Vec<(String, u64)>,
    /// Removed files kept: removed more recently than the retention.
    pub kept: usize,
}

impl Table<'_> {
    /// Deletes the objects of the dataset's folder that no version of the
    /// table within `retention` references: files removed longer ago than
    /// the retention, and files never committed (a worker died between its
    /// write and its commit) older than the retention. Live files (and
    /// their deletion vectors), the log and anything under a `_` folder are
    /// never touched. `None`: the folder is not a table (nothing is deleted).
    pub async fn vacuum(&self, retention: Duration, dry_run: bool) -> Result<Option<Vacuumed>, TableError> {
        let snap = self.snapshot().await?;
        if snap.version.is_none() {
            return Ok(None);
        }
        if retention < MIN_RETENTION {
            return Err(TableError::Unsupported {
                table: self.ds.name.clone(),
                message: format!(
                    "a retention of {} is shorter than the longest a worker may hold an uploaded object before its commit ({}: an upload adopted up to {} after it was written, then committed within --task-timeout, at most {}); nothing was deleted",
                    human(retention),
                    human(MIN_RETENTION),
                    human(crate::lake::ADOPT_MAX_AGE),
                    human(MAX_TASK_TIMEOUT)
                ),
            });
        }
        if let Some(kept) = snap.kernel.as_ref().and_then(|k| k.table_properties().deleted_file_retention_duration)
            && retention < kept
        {
            return Err(TableError::Unsupported {
                table: self.ds.name.clone(),
                message: format!(
                    "a retention of {} is shorter than the table's delta.deletedFileRetentionDuration ({}), which readers of earlier versions rely on; nothing was deleted",
                    human(retention),
                    human(kept)
                ),
            });
        }
        let referenced =
            self.referenced_since(&snap, now_ms() - retention.as_millis().min(i64::MAX as u128) as i64).await?;
        let cutoff = now_ms() - retention.as_millis().min(i64::MAX as u128) as i64;
        let root = format!("{}/", self.ds.name);
        let mut out = Vacuumed::default();
        for (key, size, modified) in self.lake.list_meta(&root).await? {
            let rel = key.strip_prefix(&root).unwrap_or(&key);
            if rel.starts_with('_') || rel.contains("/_") || snap.files.contains_key(rel) {
                continue;
            }
            if referenced.contains(rel) || modified >= cutoff {
                out.kept += 1;
                continue;
            }
            if !dry_run {
                // A worker may have written the object again since the
                // listing (an upload too old to adopt): look once more.
                if self.lake.head(&key).await?.is_some_and(|m| m.last_modified.timestamp_millis() >= cutoff) {
                    out.kept += 1;
                    continue;
                }
                self.lake.delete(&key).await?;
            }
            out.deleted.push((key, size));
        }
        Ok(Some(out))
    }

    /// Every path (data files and deletion vector files) the log names in
    /// an action of a commit at or after `since_ms`, or live at the newest
    /// version: what a reader of any version inside the retention may read.
    async fn referenced_since(&self, snap: &Snapshot, since_ms: i64) -> Result<BTreeSet<String>, TableError> {
        let mut out: BTreeSet<String> = BTreeSet::new();
        for f in snap.files.values() {
            out.insert(f.path.clone());
        }
        let log = format!("{}/_delta_log/", self.ds.name);
        for (key, _, modified) in self.lake.list_meta(&log).await? {
            if !key.ends_with(".json") || modified < since_ms {
                continue;
            }
            let Some(bytes) = self.lake.get_opt(&key).await? else { continue };
            for line in String::from_utf8_lossy(&bytes).lines() {
                let Ok(v) = serde_json::from_str::<serde_json::Value>(line) else { continue };
                for kind in ["add", "remove"] {
                    let Some(a) = v.get(kind) else { continue };
                    if let Some(p) = a.get("path").and_then(|p| p.as_str()) {
                        out.insert(unescape(p));
                    }
                    if let Some(dv) = a.get("deletionVector") {
                        out.extend(dv_file(dv));
                    }
                }
            }
        }
        // Live files' deletion vectors (those added before the retention).
        for line in self.live_deletion_vectors(snap).await? {
            out.insert(line);
        }
        Ok(out)
    }

    /// The deletion vector files of the live files (a scan of the newest version).
    async fn live_deletion_vectors(&self, snap: &Snapshot) -> Result<Vec<String>, TableError> {
        if !snap.files.values().any(|f| f.deletion_vector) {
            return Ok(Vec::new());
        }
        // The kernel does not expose a descriptor's file name; a live file
        // with a deletion vector keeps every `deletion_vector_*` file.
        let root = format!("{}/", self.ds.name);
        Ok(self
            .lake
            .list(&root)
            .await?
            .into_iter()
            .filter_map(|(k, _)| k.strip_prefix(&root).map(str::to_string))
            .filter(|k| k.rsplit('/').next().is_some_and(|n| n.starts_with("deletion_vector_")))
            .collect())
    }
}

/// The relative path of a deletion vector's file (`u` storage: a UUID
/// encoded in Z85 after an optional prefix), as Delta names it.
fn dv_file(dv: &serde_json::Value) -> Option<String> {
    let storage = dv.get("storageType")?.as_str()?;
    let path = dv.get("pathOrInlineDv")?.as_str()?;
    match storage {
        "u" if path.len() >= 20 => {
            let (prefix, encoded) = path.split_at(path.len() - 20);
            let uuid = z85_uuid(encoded)?;
            Some(if prefix.is_empty() {
                format!("deletion_vector_{uuid}.bin")
            } else {
                format!("{prefix}/deletion_vector_{uuid}.bin")
            })
        }
        "p" => Some(unescape(path.rsplit_once("/_delta_log").map_or(path, |(_, p)| p))),
        _ => None,
    }
}

/// A UUID from its 20 Z85 characters.
fn z85_uuid(s: &str) -> Option<String> {
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";
    let mut bytes = Vec::with_capacity(16);
    for chunk in s.as_bytes().chunks(5) {
        let mut v: u64 = 0;
        for c in chunk {
            v = v * 85 + ALPHABET.iter().position(|a| a == c)? as u64;
        }
        bytes.extend_from_slice(&(v as u32).to_be_bytes());
    }
    let u = uuid::Uuid::from_slice(&bytes).ok()?;
    Some(u.hyphenated().to_string())
}

/// `2h`, `7d`, `90s`: a duration as `producer vacuum --older-than` takes it.
fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        _ if s >= 86400 && s.is_multiple_of(86400) => format!("{}d", s / 86400),
        _ if s >= 3600 && s.is_multiple_of(3600) => format!("{}h", s / 3600),
        _ if s >= 60 && s.is_multiple_of(60) => format!("{}m", s / 60),
        _ => format!("{s}s"),
    }
}

/// Paths in the log are URIs: a space is `%20`.
fn unescape(p: &str) -> String {
    url::form_urlencoded::parse(format!("p={}", p.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| p.to_string())
}

/// A pseudo-random number below `n` (commit backoff jitter).
fn jitter(n: u64) -> u64 {
    use std::hash::BuildHasher;
    // A fresh RandomState is randomly keyed: hashing anything gives a random number.
    std::collections::hash_map::RandomState::new().hash_one(0u8) % n.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_is_the_output_columns_then_the_year() {
        let cat = crate::catalog::Catalog::builtin();
        let ds = cat.get("mta-turnstile").unwrap();
        let s = schema(ds);
        let names: Vec<&String> = s.fields().map(|f| f.name()).collect();
        assert_eq!(names.first().map(|s| s.as_str()), Some("ca"));
        assert_eq!(names.last().map(|s| s.as_str()), Some("year"));
        assert!(s.fields().any(|f| f.data_type() == &DataType::TIMESTAMP), "instants by default: {s:?}");
        assert!(!s.fields().any(|f| f.data_type() == &DataType::TIMESTAMP_NTZ), "{s:?}");
    }

    #[test]
    fn an_added_column_is_a_change_and_a_retyped_one_is_refused() {
        let t = StructType::new_unchecked([
            StructField::nullable("a", DataType::STRING),
            StructField::nullable("year", DataType::INTEGER),
        ]);
        let ours = StructType::new_unchecked([
            StructField::nullable("a", DataType::STRING),
            StructField::nullable("b", DataType::LONG),
            StructField::nullable("year", DataType::INTEGER),
        ]);
        let added = schema_changes(&t, &ours).unwrap();
        assert_eq!(added.iter().map(|f| f.name().as_str()).collect::<Vec<_>>(), ["b"]);
        let retyped = StructType::new_unchecked([
            StructField::nullable("a", DataType::LONG),
            StructField::nullable("year", DataType::INTEGER),
        ]);
        assert!(schema_changes(&t, &retyped).unwrap_err().contains("column a is long"));
        assert!(schema_changes(&ours, &t).unwrap_err().contains("no longer has column b"));
    }

    #[test]
    fn a_table_of_wall_clock_times_gets_one_sentence_when_the_catalog_stores_instants() {
        let t = StructType::new_unchecked([StructField::nullable("at", DataType::TIMESTAMP_NTZ)]);
        let ours = StructType::new_unchecked([StructField::nullable("at", DataType::TIMESTAMP)]);
        let e = schema_changes(&t, &ours).unwrap_err();
        assert!(e.contains("column at holds wall-clock times") && e.contains("timestamps = \"wall_clock\""), "{e}");
        let cat = crate::catalog::Catalog::builtin();
        let mut ds = cat.get("mta-turnstile").unwrap().clone();
        ds.timestamps = crate::catalog::Timestamps::WallClock;
        assert!(schema(&ds).fields().any(|f| f.data_type() == &DataType::TIMESTAMP_NTZ));
    }

    #[test]
    fn a_deletion_vector_names_its_file() {
        // The example of Delta's PROTOCOL.md: ab^-aqEH.-t@S}K{vb[*k^ is
        // d2c639aa-8816-431a-aaf6-d3fe2512ff61, prefix "ab".
        let dv = serde_json::json!({"storageType": "u", "pathOrInlineDv": "ab^-aqEH.-t@S}K{vb[*k^", "offset": 4, "sizeInBytes": 40, "cardinality": 6});
        assert_eq!(dv_file(&dv).as_deref(), Some("ab/deletion_vector_d2c639aa-8816-431a-aaf6-d3fe2512ff61.bin"));
    }
}
