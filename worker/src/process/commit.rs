//! The partition's commit into its dataset's Delta table, and the generation
//! the table records.

use super::*;

/// The generation of `partition` that `ds`'s table records (0: none), as
/// this worker's view of the log says; read up to date first when the view
/// is empty or `exact` (a refresh picks the next generation from it). A
/// stale view only costs a conversion the commit then finds done.
pub(super) async fn table_generation(ctx: &Ctx, ds: &Dataset, partition: &str, exact: bool) -> Result<u64, Failure> {
    let table = lakefleet::table::Table::new(&ctx.lake, ds);
    let mut snap = ctx.views.get(&ds.name);
    if exact || snap.version.is_none() {
        // Reads of the log take the worker's turn: tasks that start at once
        // with no view read the table once, not once each.
        let _turn = ctx.views.turn().await;
        snap = ctx.views.get(&ds.name);
        if exact || snap.version.is_none() {
            table.refresh(&mut snap).await?;
            ctx.views.put(&ds.name, snap.clone());
        }
    }
    Ok(table.generation(&snap, partition).await?)
}

/// Commits the partition's object into its dataset's table, exactly once.
pub(super) async fn commit(
    ctx: &Ctx,
    c: &Checked<'_>,
    task: &Task,
    generation: u64,
    (size, rows): (u64, u64),
    stats: Option<String>,
) -> Result<(), Failure> {
    use lakefleet::metrics::table_outcome as outcome;
    use lakefleet::table::{Committed, PartitionCommit, Table, TableError};
    let (m, ds) = (&ctx.metrics, c.ds.name.as_str());
    let pc = PartitionCommit {
        partition: task.partition.clone(),
        key: c.key.clone(),
        size,
        rows,
        generation,
        year: chrono::Datelike::year(&c.date),
        stats,
    };
    // A test hook: a pause between the object's upload and its commit, so
    // that a test can kill the worker there (`LAKEFLEET_TEST_PAUSE_BEFORE_COMMIT_MS`).
    if let Some(ms) = std::env::var("LAKEFLEET_TEST_PAUSE_BEFORE_COMMIT_MS").ok().and_then(|v| v.parse().ok()) {
        info!(task = %task.label(), pause_ms = ms, "uploaded; pausing before the commit (test hook)");
        tokio::time::sleep(Duration::from_millis(ms)).await;
    }
    let start = Instant::now();
    let turn = ctx.views.turn().await;
    let mut snap = ctx.views.get(&c.ds.name);
    let result = Table::new(&ctx.lake, c.ds).commit(&mut snap, &pc).await;
    ctx.views.put(&c.ds.name, snap);
    drop(turn);
    match result {
        Ok(Committed::Written { version, attempts }) => {
            m.table_commits.with_label_values(&[ds, outcome::COMMITTED]).inc();
            m.table_commit_attempts.with_label_values(&[ds]).observe(attempts as f64);
            m.table_commit_seconds.with_label_values(&[ds]).observe(start.elapsed().as_secs_f64());
            info!(task = %task.label(), version, attempts, generation, "committed into the dataset's table");
            Ok(())
        }
        Ok(Committed::AlreadyCommitted { attempts }) => {
            m.table_commits.with_label_values(&[ds, outcome::ALREADY_COMMITTED]).inc();
            m.table_commit_attempts.with_label_values(&[ds]).observe(attempts as f64);
            info!(task = %task.label(), generation, "the table already records this generation of the partition");
            Ok(())
        }
        Err(e) => {
            let o = if matches!(e, TableError::Contention { .. }) { outcome::CONTENTION } else { outcome::FAILED };
            m.table_commits.with_label_values(&[ds, o]).inc();
            Err(Failure::from(e))
        }
    }
}
