//! The commit loop: one partition's Add (and a refresh's Removes and rewrites)
//! per transaction, its `txn` the partition's generation, retried with
//! jitter against other writers.

use super::*;

/// A commit, run on a blocking thread.
pub(super) struct CommitJob {
    pub(super) url: url::Url,
    pub(super) lake: Lake,
    pub(super) ds: Dataset,
    pub(super) all: Vec<PartitionCommit>,
    pub(super) operation: String,
    pub(super) prior: Option<SnapshotRef>,
    /// Read the log before the first attempt (other writers committed
    /// before this process's last commit: its view is likely behind).
    pub(super) read_first: bool,
    pub(super) exists: bool,
    /// Another tool's files rewritten without a refreshed partition's rows
    /// (by path and the partitions taken out), kept across attempts.
    pub(super) rewritten: HashMap<String, Rewrite>,
}

impl CommitJob {
    pub(super) fn err(&self, e: KernelError) -> TableError {
        kernel_err(&self.ds.name, e)
    }

    pub(super) fn run(mut self, engine: &Engine) -> Result<(Committed, Option<SnapshotRef>), TableError> {
        let table = self.ds.name.clone();
        let mut read_anew = false;
        let mut attempt = 0;
        while attempt < MAX_COMMIT_ATTEMPTS {
            attempt += 1;
            let began = std::time::Instant::now();
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
            // once, then after a pause drawn at random below 2x, then 4x
            // what the lost attempt took (a commit to a folder takes a
            // millisecond, to S3 tens of them: a fixed pause would idle the
            // one and crowd the other).
            if attempt > 1 {
                let took = began.elapsed().as_micros().max(1_000) as u64;
                let bound = (took << (attempt - 1).min(2)).min(MAX_COMMIT_PAUSE.as_micros() as u64);
                std::thread::sleep(Duration::from_micros(jitter(bound)));
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
        // version after it is free only if nothing came since), unless
        // other writers were committing lately (then it reads the log
        // first: a PUT bound to fail costs a request, and S3 bills it); a
        // lost race reads the versions it missed.
        let snap = match (attempt, self.prior.take()) {
            (1, Some(cached)) if !self.read_first => cached,
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
                // The checkpoint's snapshot starts from it (its commits
                // since are few again) and keeps the checksum.
                let after = match version > 0 && version % self.ds.checkpoint_interval == 0 {
                    false => after,
                    true => match after.checkpoint(engine, None) {
                        Ok((_, from_checkpoint)) => from_checkpoint,
                        Err(e) => {
                            tracing::warn!(table = %table, version, error = %e, "checkpoint not written");
                            after
                        }
                    },
                };
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
}

/// The Adds of `todo` in the kernel's add-files form, their statistics
/// in the table's stats schema ([`stats::to_arrow`], or the kernel's JSON
/// parser for what that does not build).
pub(super) fn add_batch(
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
    let stats = match stats::to_arrow(&stats_json, &stats::arrow_fields(&stats_schema)?) {
        Some(stats) => stats,
        None => {
            let strings = RecordBatch::try_new(
                Arc::new(Schema::new(vec![Field::new("stats", ArrowType::Utf8, true)])),
                vec![Arc::new(StringArray::from(stats_json)) as ArrayRef],
            )?;
            let parsed = engine.json_handler().parse_json(Box::new(ArrowEngineData::new(strings)), stats_schema)?;
            StructArray::from(ArrowEngineData::try_from_engine_data(parsed)?.record_batch().clone())
        }
    };

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

/// A pseudo-random number below `n` (commit backoff jitter).
pub(super) fn jitter(n: u64) -> u64 {
    use std::hash::BuildHasher;
    // A fresh RandomState is randomly keyed: hashing anything gives a random number.
    std::collections::hash_map::RandomState::new().hash_one(0u8) % n.max(1)
}
