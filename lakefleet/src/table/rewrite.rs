//! A refresh's part beside the kernel: the Removes of a refreshed
//! partition, and the rewrite of another tool's file that holds its rows
//! beside others.

use super::*;

impl CommitJob {
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
    pub(super) fn removes(
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
        // Spooled to a file and read a row group at a time: another tool's
        // compaction may be gigabytes.
        let spool = self.lake.spool_file("source");
        handle.block_on(self.lake.download_to(&key, &spool.0))?;
        let source = std::fs::File::open(&spool.0).map_err(|e| log(&spool.0.display().to_string(), &e))?;
        let mut deleted = dv.get_row_indexes(engine, &self.url).map_err(|e| self.err(e))?.unwrap_or_default();
        deleted.sort_unstable();
        let builder = ParquetRecordBatchReaderBuilder::try_new(source).map_err(|e| log("reading it", &e))?;
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
        let out = self.lake.spool_file("parquet");
        let tmp = &out.0;
        let file = std::fs::File::create(tmp).map_err(|e| log(&tmp.display().to_string(), &e))?;
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
            let size = std::fs::metadata(tmp).map_err(|e| log(&tmp.display().to_string(), &e))?.len();
            handle.block_on(self.lake.upload_file(&key, tmp, size, crate::lake::Existing::Overwrite))?;
            tracing::info!(table = %table, file = path, rows_out = dropped, rows_kept = kept, new = %key, "rewrote another tool's file without the refreshed partitions' rows");
            Rewrite::Replaced(PartitionCommit {
                partition: String::new(),
                key,
                size,
                rows: kept,
                generation: 0,
                stats: stats::of_file(tmp),
                year: year.parse().unwrap_or_default(),
            })
        };
        self.rewritten.insert(memo, done.clone());
        Ok(done)
    }
}

/// What a refresh does with another tool's file that may hold a refreshed
/// partition's rows beside others.
#[derive(Debug, Clone)]
pub(super) enum Rewrite {
    /// None of its live rows are the partitions': left alone.
    Untouched,
    /// Every live row was the partitions': removed.
    Removed,
    /// Removed, and its other live rows written anew to this object.
    Replaced(PartitionCommit),
}

/// Whether a file whose Add carries `stats` may hold rows of `partitions`
/// (dates, `2022-01-08`): its [`crate::convert::LINEAGE_COLUMN`] range
/// covers one, or its statistics do not say.
pub(super) fn may_hold(stats: Option<&str>, partitions: &[String]) -> bool {
    let Some(v) = stats.and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok()) else { return true };
    let name = crate::convert::LINEAGE_COLUMN;
    match (v["minValues"][name].as_str(), v["maxValues"][name].as_str()) {
        (Some(lo), Some(hi)) => partitions.iter().any(|p| lo <= p.as_str() && p.as_str() <= hi),
        // No range: every value null (rows no partition of lakefleet's
        // holds), or no statistics of the column.
        _ => !(v["nullCount"][name].is_u64() && v["nullCount"][name] == v["numRecords"]),
    }
}
