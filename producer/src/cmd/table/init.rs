//! `producer table init`: a table over a folder of partition files written
//! without one.

use std::process::ExitCode;

use lakefleet::catalog::Catalog;
use lakefleet::config::Connections;
use lakefleet::lake::Lake;
use lakefleet::util::text::redact;

use crate::cmd::status::table_line;
use crate::refusal::Refused;

/// `producer table init --dataset X`.
pub async fn run(conn: &Connections, catalog: &Catalog, dataset: &str) -> anyhow::Result<ExitCode> {
    let ds = catalog.require(dataset).map_err(Refused)?;
    let lake = Lake::open(&conn.lake_url)?;
    let table = lakefleet::table::Table::new(&lake, ds);
    let mut snap = lakefleet::table::Snapshot::default();
    let (committed, found, rows) = table.init_from_folder(&mut snap).await?;
    match committed {
        lakefleet::table::Committed::Written { version, .. } => println!(
            "table {}: version {version} committed from the folder's objects ({found} partition file(s), {rows} rows read from their footers)",
            ds.name
        ),
        lakefleet::table::Committed::AlreadyCommitted { .. } if found == 0 => {
            return Err(Refused(format!(
                "{}/{}: no object named as one of {}'s partitions ({{dataset}}_{{partition}}.parquet); nothing to commit",
                redact(conn.lake_url.as_str()),
                ds.name,
                ds.name
            ))
            .into());
        }
        lakefleet::table::Committed::AlreadyCommitted { .. } => {
            println!("table {}: already holds every partition file of the folder ({found}); nothing to add", ds.name)
        }
    }
    println!("{}", table_line(&lake, ds).await);
    Ok(ExitCode::SUCCESS)
}
