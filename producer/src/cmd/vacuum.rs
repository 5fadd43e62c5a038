//! `producer vacuum`: delete what no table version within the retention needs.

use std::process::ExitCode;

use lakefleet::catalog::Catalog;
use lakefleet::config::Connections;
use lakefleet::lake::Lake;
use lakefleet::util::text::redact;

use crate::refusal::Refused;

/// `producer vacuum --dataset X [--older-than 7d] [--dry-run]`.
pub async fn run(conn: &Connections, catalog: &Catalog, args: &crate::cli::VacuumArgs) -> anyhow::Result<ExitCode> {
    let ds = catalog.require(&args.dataset).map_err(Refused)?;
    let lake = Lake::open(&conn.lake_url)?;
    let table = lakefleet::table::Table::new(&lake, ds);
    let vacuumed = match table.vacuum(args.older_than, args.dry_run).await {
        Err(e @ lakefleet::table::TableError::Unsupported { .. }) => return Err(Refused(e.to_string()).into()),
        other => other?,
    };
    let Some(v) = vacuumed else {
        return Err(Refused(format!(
            "{}/{}: not a Delta table (no _delta_log): nothing is deleted from a folder whose files no log lists",
            redact(conn.lake_url.as_str()),
            ds.name
        ))
        .into());
    };
    let verb = if args.dry_run { "would delete" } else { "deleted" };
    for (key, size) in &v.deleted {
        println!("{verb} {key} ({size} bytes)");
    }
    let freed: u64 = v.deleted.iter().map(|(_, s)| s).sum();
    println!(
        "vacuum {}: {verb} {} object(s), {freed} bytes ({:.1} MB) {}; kept {} removed file(s) younger than {}s (retention)",
        ds.name,
        v.deleted.len(),
        freed as f64 / 1e6,
        if args.dry_run { "would be freed" } else { "freed" },
        v.kept,
        args.older_than.as_secs()
    );
    Ok(ExitCode::SUCCESS)
}
