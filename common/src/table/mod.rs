//! Each dataset's Delta Lake table, `{lake}/{dataset}/_delta_log/`: the log
//! that says which objects make the dataset at each version.
//!
//! The fleet commits into it with no lock service: a worker writes its
//! partition's object under a key that is never reused, then commits an Add
//! (with a Remove of the partition's previous object on a refresh) together
//! with an application transaction (`txn`) whose id names the partition and
//! whose version is the partition's ingestion generation (1 for the first
//! load, +1 per refresh), as a create-if-absent write of the next log entry
//! (`PutMode::Create`: `If-None-Match: *` on S3, generation-match 0 on GCS,
//! no-clobber locally). A worker that loses the race reads the entries it
//! missed and tries again; one that finds the table already records its
//! generation skips. Two workers racing on one partition make one Add.
//!
//! Readers: every engine that reads Delta (DuckDB's `delta_scan`, Spark,
//! python `deltalake`, polars, Trino, BigQuery through BigLake). The log is
//! plain JSON commits (protocol 1/2, or 3/7 with the `timestampNtz` feature
//! when the dataset has timestamps: the lake holds wall-clock times).

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use serde_json::{Value, json};

pub mod checkpoint;
pub mod stats;

use crate::catalog::{ColumnType, Dataset};
use crate::lake::{Lake, LakeError};

/// The partition column every table is partitioned by (`year=YYYY` folders).
pub const PARTITION_COLUMN: &str = "year";
/// Add tags that name the partition an object holds.
pub const PARTITION_TAG: &str = "lakefleet.partition";
/// Commit attempts under contention before the task goes back to the retry
/// queue (never parked for contention alone).
pub const MAX_COMMIT_ATTEMPTS: u32 = 25;

/// What the log says at its latest version.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The latest version; `None`: no table yet.
    pub version: Option<u64>,
    /// Live files by path (relative to the table root).
    pub files: BTreeMap<String, AddFile>,
    /// The actions a checkpoint repeats, as the log wrote them: protocol,
    /// metaData, each live add, and each remove (readers of earlier versions
    /// may still read a removed file until a vacuum past the retention).
    protocol: Option<Value>,
    metadata: Option<Value>,
    adds: BTreeMap<String, Value>,
    removes: BTreeMap<String, Value>,
    /// Application transactions: appId -> version.
    pub txns: HashMap<String, u64>,
    /// The table's schema (Delta's JSON schema string).
    pub schema_string: Option<String>,
    /// The table's id (metaData.id).
    pub table_id: Option<String>,
    /// When the latest version was committed (ms since the epoch).
    pub timestamp_ms: Option<i64>,
}

/// A live file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddFile {
    pub path: String,
    pub size: u64,
    pub modification_time: i64,
    pub partition_values: BTreeMap<String, Option<String>>,
    pub rows: Option<u64>,
    /// `lakefleet.partition`: the partition the file holds.
    pub partition: Option<String>,
}

impl Snapshot {
    /// When a file was removed from the table (ms since the epoch); `None`
    /// when no version removed it (live, or never committed).
    pub fn removed_at(&self, path: &str) -> Option<i64> {
        self.removes.get(path).map(|r| r.get("deletionTimestamp").and_then(Value::as_i64).unwrap_or(0))
    }

    /// The actions of a checkpoint of this snapshot: protocol, metaData,
    /// transactions, live files, and the removes a vacuum has not passed.
    pub fn checkpoint_actions(&self) -> Vec<Value> {
        let now = now_ms();
        let mut out: Vec<Value> = Vec::new();
        out.extend(self.protocol.iter().map(|p| json!({"protocol": p})));
        out.extend(self.metadata.iter().map(|m| json!({"metaData": m})));
        let mut txns: Vec<(&String, &u64)> = self.txns.iter().collect();
        txns.sort();
        out.extend(txns.into_iter().map(|(id, v)| json!({"txn": {"appId": id, "version": v, "lastUpdated": now}})));
        out.extend(self.adds.values().map(|a| json!({"add": a})));
        out.extend(self.removes.values().map(|r| json!({"remove": r})));
        out
    }

    /// The version the table records for application transaction `app_id` (0: none).
    pub fn txn(&self, app_id: &str) -> u64 {
        self.txns.get(app_id).copied().unwrap_or(0)
    }

    /// Rows of the live files (from their stats).
    pub fn rows(&self) -> u64 {
        self.files.values().filter_map(|f| f.rows).sum()
    }

    /// Applies one commit's actions (one JSON object a line).
    fn apply(&mut self, version: u64, text: &str) -> Result<(), String> {
        for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
            let v: Value = serde_json::from_str(line).map_err(|e| format!("version {version}, line {}: {e}", i + 1))?;
            if let Some(a) = v.get("add") {
                let f =
                    add_file(a).ok_or_else(|| format!("version {version}, line {}: an add without a path", i + 1))?;
                self.removes.remove(&f.path);
                self.adds.insert(f.path.clone(), a.clone());
                self.files.insert(f.path.clone(), f);
            } else if let Some(r) = v.get("remove") {
                if let Some(p) = r.get("path").and_then(Value::as_str) {
                    let p = unescape(p);
                    self.files.remove(&p);
                    self.adds.remove(&p);
                    self.removes.insert(p, r.clone());
                }
            } else if let Some(t) = v.get("txn") {
                if let (Some(id), Some(ver)) =
                    (t.get("appId").and_then(Value::as_str), t.get("version").and_then(Value::as_u64))
                {
                    self.txns.insert(id.to_string(), ver);
                }
            } else if let Some(p) = v.get("protocol") {
                self.protocol = Some(p.clone());
            } else if let Some(m) = v.get("metaData") {
                self.metadata = Some(m.clone());
                self.schema_string = m.get("schemaString").and_then(Value::as_str).map(str::to_string);
                self.table_id = m.get("id").and_then(Value::as_str).map(str::to_string);
            } else if let Some(c) = v.get("commitInfo") {
                self.timestamp_ms = c.get("timestamp").and_then(Value::as_i64).or(self.timestamp_ms);
            }
        }
        self.version = Some(version);
        Ok(())
    }
}

/// Paths in the log are URIs: a space is `%20`.
fn unescape(p: &str) -> String {
    url::form_urlencoded::parse(format!("p={}", p.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_else(|| p.to_string())
}

fn add_file(a: &Value) -> Option<AddFile> {
    let path = unescape(a.get("path")?.as_str()?);
    let partition_values = a
        .get("partitionValues")
        .and_then(Value::as_object)
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.as_str().map(str::to_string))).collect())
        .unwrap_or_default();
    let rows = a
        .get("stats")
        .and_then(Value::as_str)
        .and_then(|s| serde_json::from_str::<Value>(s).ok())
        .and_then(|s| s.get("numRecords").and_then(Value::as_u64));
    Some(AddFile {
        path,
        size: a.get("size").and_then(Value::as_u64).unwrap_or(0),
        modification_time: a.get("modificationTime").and_then(Value::as_i64).unwrap_or(0),
        partition_values,
        rows,
        partition: a.get("tags").and_then(|t| t.get(PARTITION_TAG)).and_then(Value::as_str).map(str::to_string),
    })
}

/// Why a commit did not happen.
#[derive(Debug, thiserror::Error)]
pub enum TableError {
    #[error("{0}")]
    Lake(#[from] LakeError),
    /// The log holds something we cannot read.
    #[error("table {table}: {message}")]
    Log { table: String, message: String },
    /// Other writers kept winning: the task goes back to the retry queue.
    #[error("table {table}: {attempts} commit attempts lost to other writers; the task is retried")]
    Contention { table: String, attempts: u32 },
    /// The dataset's schema changed in a way old files cannot satisfy.
    #[error("table {table}: {message}")]
    Schema { table: String, message: String },
}

impl TableError {
    /// Whether the error may heal on a retry.
    pub fn is_transient(&self) -> bool {
        match self {
            TableError::Lake(e) => e.is_transient(),
            TableError::Contention { .. } => true,
            TableError::Log { .. } | TableError::Schema { .. } => false,
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

/// Delta's type of an output column.
fn delta_type(t: ColumnType) -> &'static str {
    match t {
        ColumnType::String => "string",
        ColumnType::Int64 => "long",
        ColumnType::Float64 => "double",
        ColumnType::Date => "date",
        ColumnType::Timestamp => "timestamp_ntz",
    }
}

/// The table's schema: the dataset's output columns, then `year`.
pub fn schema_string(ds: &Dataset) -> String {
    let mut fields: Vec<Value> = ds
        .columns
        .iter()
        .map(|c| (Dataset::output_name(c), c.ty))
        .chain(ds.derived.iter().map(|d| (d.name.clone(), d.ty)))
        .map(|(name, ty)| json!({"name": name, "type": delta_type(ty), "nullable": true, "metadata": {}}))
        .collect();
    fields.push(json!({"name": PARTITION_COLUMN, "type": "integer", "nullable": true, "metadata": {}}));
    json!({"type": "struct", "fields": fields}).to_string()
}

fn has_timestamps(ds: &Dataset) -> bool {
    ds.columns.iter().map(|c| c.ty).chain(ds.derived.iter().map(|d| d.ty)).any(|t| t == ColumnType::Timestamp)
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The field names and types of a Delta schema string.
fn fields_of(schema: &str) -> Vec<(String, String)> {
    let v: Value = serde_json::from_str(schema).unwrap_or_default();
    v.get("fields")
        .and_then(Value::as_array)
        .map(|fs| {
            fs.iter()
                .filter_map(|f| {
                    Some((
                        f.get("name")?.as_str()?.to_string(),
                        f.get("type").map(|t| t.to_string()).unwrap_or_default(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default()
}

impl<'a> Table<'a> {
    pub fn new(lake: &'a Lake, ds: &'a Dataset) -> Table<'a> {
        Table { lake, ds }
    }

    fn log_key(&self, version: u64) -> String {
        format!("{}/_delta_log/{version:020}.json", self.ds.name)
    }

    fn log_err(&self, message: String) -> TableError {
        TableError::Log { table: self.ds.name.clone(), message }
    }

    /// Brings `snap` up to the latest version: reads the entries after its
    /// version, one GET each, until the next is not there (a fresh snapshot
    /// reads from version 0).
    pub async fn refresh(&self, snap: &mut Snapshot) -> Result<(), TableError> {
        if snap.version.is_none()
            && let Some(c) = self.read_checkpoint().await?
        {
            *snap = c;
        }
        loop {
            let next = snap.version.map_or(0, |v| v + 1);
            match self.lake.get_opt(&self.log_key(next)).await? {
                Some(bytes) => {
                    let text = std::str::from_utf8(&bytes)
                        .map_err(|_| self.log_err(format!("{} is not UTF-8", self.log_key(next))))?;
                    snap.apply(next, text).map_err(|m| self.log_err(m))?;
                }
                None => return Ok(()),
            }
        }
    }

    fn last_checkpoint_key(&self) -> String {
        format!("{}/_delta_log/_last_checkpoint", self.ds.name)
    }

    fn checkpoint_key(&self, version: u64) -> String {
        format!("{}/_delta_log/{version:020}.checkpoint.parquet", self.ds.name)
    }

    /// The table at its last checkpoint, if `_last_checkpoint` names one
    /// that can be read (else the log is read from version 0).
    async fn read_checkpoint(&self) -> Result<Option<Snapshot>, TableError> {
        let Some(last) = self.lake.get_opt(&self.last_checkpoint_key()).await? else { return Ok(None) };
        let Some(version) = serde_json::from_slice::<Value>(&last).ok().and_then(|v| v.get("version")?.as_u64()) else {
            tracing::warn!(table = %self.ds.name, "_last_checkpoint is not readable; reading the log from version 0");
            return Ok(None);
        };
        let Some(bytes) = self.lake.get_opt(&self.checkpoint_key(version)).await? else {
            tracing::warn!(table = %self.ds.name, version, "the checkpoint _last_checkpoint names is missing; reading the log from version 0");
            return Ok(None);
        };
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
            .and_then(|b| b.build())
            .map_err(|e| self.log_err(format!("{}: {e}", self.checkpoint_key(version))))?;
        let mut snap = Snapshot::default();
        let mut text = String::new();
        for batch in reader {
            let batch = batch.map_err(|e| self.log_err(format!("{}: {e}", self.checkpoint_key(version))))?;
            text.push_str(&checkpoint::lines(&batch));
        }
        snap.apply(version, &text).map_err(|m| self.log_err(m))?;
        Ok(Some(snap))
    }

    /// Writes the checkpoint of `snap` (at its version) and points
    /// `_last_checkpoint` at it.
    pub async fn write_checkpoint(&self, snap: &Snapshot) -> Result<(), TableError> {
        let Some(version) = snap.version else { return Ok(()) };
        let actions = snap.checkpoint_actions();
        let batch = checkpoint::batch(&actions);
        let mut out = Vec::new();
        let write = |out: &mut Vec<u8>| -> parquet::errors::Result<()> {
            let mut w = parquet::arrow::ArrowWriter::try_new(out, batch.schema(), None)?;
            w.write(&batch)?;
            w.close().map(|_| ())
        };
        write(&mut out).map_err(|e| self.log_err(format!("writing checkpoint {version}: {e}")))?;
        self.lake.put_small(&self.checkpoint_key(version), out).await?;
        let last = json!({"version": version, "size": actions.len()}).to_string();
        self.lake.put_small(&self.last_checkpoint_key(), last.into_bytes()).await?;
        Ok(())
    }

    /// The table as the log says now.
    pub async fn snapshot(&self) -> Result<Snapshot, TableError> {
        let mut snap = Snapshot::default();
        self.refresh(&mut snap).await?;
        Ok(snap)
    }

    /// The actions that create the table (version 0), or change its schema.
    fn metadata_actions(&self, snap: &Snapshot) -> Result<Vec<Value>, TableError> {
        let ours = schema_string(self.ds);
        let mut actions = Vec::new();
        match &snap.schema_string {
            Some(theirs) if *theirs == ours => return Ok(actions),
            Some(theirs) => {
                // Only added columns (nullable, as every column here is) are a
                // metadata commit; anything else is refused naming the column.
                let (old, new) = (fields_of(theirs), fields_of(&ours));
                for (name, ty) in &old {
                    match new.iter().find(|(n, _)| n == name) {
                        None => {
                            return Err(TableError::Schema {
                                table: self.ds.name.clone(),
                                message: format!(
                                    "the catalog no longer has column {name}, which the table's files hold; keep the column (nullable), or write the dataset under a new name (or a new table) and backfill it"
                                ),
                            });
                        }
                        Some((_, t)) if t != ty => {
                            return Err(TableError::Schema {
                                table: self.ds.name.clone(),
                                message: format!(
                                    "column {name} is {t} in the catalog but {ty} in the table's files, which cannot be read as {t}; keep its type, or write the dataset under a new name and backfill it"
                                ),
                            });
                        }
                        Some(_) => {}
                    }
                }
            }
            None => {
                let protocol = match has_timestamps(self.ds) {
                    true => json!({"protocol": {"minReaderVersion": 3, "minWriterVersion": 7,
                        "readerFeatures": ["timestampNtz"], "writerFeatures": ["timestampNtz"]}}),
                    false => json!({"protocol": {"minReaderVersion": 1, "minWriterVersion": 2}}),
                };
                actions.push(protocol);
            }
        }
        let id = snap.table_id.clone().unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        actions.push(json!({"metaData": {
            "id": id,
            "name": self.ds.name,
            "description": self.ds.description,
            "format": {"provider": "parquet", "options": {}},
            "schemaString": ours,
            "partitionColumns": [PARTITION_COLUMN],
            "configuration": {},
            "createdTime": now_ms(),
        }}));
        Ok(actions)
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
        let root = format!("{}/", self.ds.name);
        for attempt in 1..=MAX_COMMIT_ATTEMPTS {
            // The entries other writers committed since this process last
            // read the log (usually one GET that finds nothing new).
            self.refresh(cache).await?;
            let todo: Vec<&PartitionCommit> =
                all.iter().filter(|c| cache.txn(&app_id(&self.ds.name, &c.partition)) < c.generation).collect();
            if todo.is_empty() {
                return Ok(Committed::AlreadyCommitted { attempts: attempt });
            }
            let now = now_ms();
            let mut actions = self.metadata_actions(cache)?;
            for c in &todo {
                let path = c.key.strip_prefix(&root).unwrap_or(&c.key).to_string();
                for old in
                    cache.files.values().filter(|f| f.partition.as_deref() == Some(&c.partition) && f.path != path)
                {
                    actions.push(json!({"remove": {
                        "path": old.path, "deletionTimestamp": now, "dataChange": true,
                        "extendedFileMetadata": true, "partitionValues": old.partition_values, "size": old.size,
                    }}));
                }
                let stats = c.stats.clone().unwrap_or_else(|| json!({"numRecords": c.rows}).to_string());
                actions.push(json!({"add": {
                    "path": path,
                    "partitionValues": {PARTITION_COLUMN: c.year.to_string()},
                    "size": c.size,
                    "modificationTime": now,
                    "dataChange": true,
                    "stats": stats,
                    "tags": {PARTITION_TAG: c.partition},
                }}));
                let app = app_id(&self.ds.name, &c.partition);
                actions.push(json!({"txn": {"appId": app, "version": c.generation, "lastUpdated": now}}));
            }
            let params = match todo.as_slice() {
                [one] => json!({"partition": one.partition, "generation": one.generation}),
                many => json!({"partitions": many.len()}),
            };
            actions.push(json!({"commitInfo": {
                "timestamp": now,
                "operation": operation,
                "operationParameters": params,
                "engineInfo": concat!("lakefleet/", env!("CARGO_PKG_VERSION")),
            }}));
            let mut body = String::new();
            for a in &actions {
                body.push_str(&a.to_string());
                body.push('\n');
            }
            let version = cache.version.map_or(0, |v| v + 1);
            if self.lake.create_small(&self.log_key(version), body.clone().into_bytes()).await? {
                cache.apply(version, &body).map_err(|m| self.log_err(m))?;
                // Every `checkpoint_interval` versions, the writer of that
                // version checkpoints the table (a failure costs readers
                // time, never correctness: the commit stands).
                if version > 0
                    && version % self.ds.checkpoint_interval == 0
                    && let Err(e) = self.write_checkpoint(cache).await
                {
                    tracing::warn!(table = %self.ds.name, version, error = %e, "checkpoint not written");
                }
                return Ok(Committed::Written { version, attempts: attempt });
            }
            // Another writer took this version: read it and try again at
            // once, then after a jittered pause that grows with the attempts.
            if attempt > 1 {
                let base = 10u64 << attempt.min(6);
                tokio::time::sleep(Duration::from_millis(base + jitter(base))).await;
            }
        }
        Err(TableError::Contention { table: self.ds.name.clone(), attempts: MAX_COMMIT_ATTEMPTS })
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
            let Some((partition, generation)) = self.partition_of(rel) else { continue };
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

    /// The partition (`2022-01-08`) and generation of an object of the
    /// dataset's folder, from its name.
    fn partition_of(&self, rel: &str) -> Option<(String, u64)> {
        let name = rel.rsplit('/').next()?;
        let stem = name.strip_prefix(&format!("{}_", self.ds.name))?.strip_suffix(".parquet")?;
        let (label, generation) = match stem.split_once('.') {
            Some((l, g)) => (l, g.parse().ok()?),
            None => (stem, 1),
        };
        let date = match label.len() {
            7 => chrono::NaiveDate::parse_from_str(&format!("{label}-01"), "%Y-%m-%d").ok()?,
            _ => label.parse().ok()?,
        };
        (self.ds.object_key(date).ends_with(&format!("/{}_{label}.parquet", self.ds.name)))
            .then(|| (date.to_string(), generation))
    }
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
    /// table within `retention` references: files removed (by a refresh)
    /// longer ago than the retention, and files never committed (a worker
    /// died between its write and its commit) older than the retention.
    /// Live files, the log and anything under a `_` folder are never
    /// touched. `None`: the folder is not a table (nothing is deleted).
    pub async fn vacuum(&self, retention: Duration, dry_run: bool) -> Result<Option<Vacuumed>, TableError> {
        let snap = self.snapshot().await?;
        if snap.version.is_none() {
            return Ok(None);
        }
        let cutoff = now_ms() - retention.as_millis().min(i64::MAX as u128) as i64;
        let root = format!("{}/", self.ds.name);
        let mut out = Vacuumed::default();
        for (key, size, modified) in self.lake.list_meta(&root).await? {
            let rel = key.strip_prefix(&root).unwrap_or(&key);
            if rel.starts_with('_') || rel.contains("/_") || snap.files.contains_key(rel) {
                continue;
            }
            let unreferenced_since = snap.removed_at(rel).unwrap_or(modified);
            if unreferenced_since >= cutoff {
                out.kept += 1;
                continue;
            }
            if !dry_run {
                self.lake.delete(&key).await?;
            }
            out.deleted.push((key, size));
        }
        Ok(Some(out))
    }
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
    fn a_log_replays_into_live_files_and_transactions() {
        let mut s = Snapshot::default();
        let v0 = r#"{"protocol":{"minReaderVersion":1,"minWriterVersion":2}}
{"metaData":{"id":"x","schemaString":"{}","partitionColumns":["year"]}}
{"add":{"path":"year=2022/a%20b.parquet","partitionValues":{"year":"2022"},"size":10,"modificationTime":1,"dataChange":true,"stats":"{\"numRecords\":7}","tags":{"lakefleet.partition":"2022-01-08"}}}
{"txn":{"appId":"lakefleet/d/2022-01-08","version":1,"lastUpdated":1}}"#;
        s.apply(0, v0).unwrap();
        assert_eq!(s.files.len(), 1);
        assert_eq!(s.rows(), 7);
        assert_eq!(s.txn("lakefleet/d/2022-01-08"), 1);
        assert_eq!(s.files["year=2022/a b.parquet"].partition.as_deref(), Some("2022-01-08"));
        let v1 = r#"{"remove":{"path":"year=2022/a%20b.parquet","deletionTimestamp":2,"dataChange":true}}
{"add":{"path":"year=2022/c.parquet","partitionValues":{"year":"2022"},"size":11,"modificationTime":2,"dataChange":true}}
{"txn":{"appId":"lakefleet/d/2022-01-08","version":2,"lastUpdated":2}}"#;
        s.apply(1, v1).unwrap();
        assert_eq!(s.files.keys().collect::<Vec<_>>(), ["year=2022/c.parquet"]);
        assert_eq!((s.version, s.txn("lakefleet/d/2022-01-08"), s.txn("other")), (Some(1), 2, 0));
        assert!(s.apply(2, "{not json").unwrap_err().contains("version 2, line 1"));
    }

    #[test]
    fn the_schema_is_the_output_columns_then_the_year() {
        let cat = crate::catalog::Catalog::builtin();
        let ds = cat.get("mta-turnstile").unwrap();
        let f = fields_of(&schema_string(ds));
        assert_eq!(f.first().map(|(n, t)| (n.as_str(), t.as_str())), Some(("ca", "\"string\"")));
        assert_eq!(f.last().map(|(n, t)| (n.as_str(), t.as_str())), Some(("year", "\"integer\"")));
        assert!(f.iter().any(|(_, t)| t == "\"timestamp_ntz\""), "{f:?}");
    }
}
