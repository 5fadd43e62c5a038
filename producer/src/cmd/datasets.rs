//! `producer datasets`: the catalog, each dataset's columns and eras, and its
//! table's state in the lake.

use lakefleet::catalog::Catalog;

use crate::cmd::status;

pub async fn run(conn: &lakefleet::config::Connections, catalog: &Catalog) {
    // The tables' state, from the lake (a local lake that does not exist yet is not created).
    let lake = match conn.lake_url.local_dir().is_some_and(|dir| !std::path::Path::new(dir).exists()) {
        true => None,
        false => lakefleet::lake::Lake::open(&conn.lake_url).ok(),
    };
    for d in catalog.iter() {
        let last = d.last.map(|l| l.to_string()).unwrap_or_else(|| "still publishing".into());
        let lag = if d.publish_lag_days > 0 {
            format!(", published {} days after", d.publish_lag_days)
        } else {
            String::new()
        };
        println!("{}  ({}, {} .. {last}{lag}, {} source)", d.name, d.cadence, d.first, d.format);
        if !d.description.is_empty() {
            println!("  {}", d.description);
        }
        match (d.ended(), &d.successor) {
            (Some(ended), _) => println!("  ended: {ended}"),
            (None, Some(next)) => println!("  its publisher's current data: dataset {next}"),
            (None, None) => {}
        }
        match &d.socrata {
            Some(s) => {
                println!("  portal: {}  time column: {}  ({} rows per page)", s.portal, s.time_column, s.page_rows);
                for id in &s.ids {
                    let last = id.last.map(|l| l.to_string()).unwrap_or_else(|| "now".into());
                    println!("    {}/resource/{}  {} .. {last}", s.portal, id.id, id.first);
                }
            }
            None => println!("  url: {}", d.url_template),
        }
        match (&lake, d.table) {
            (_, false) => println!("  table: off (plain Parquet files)"),
            (Some(lake), true) => println!("  {}", status::table_line(lake, d).await),
            (None, true) => println!("  table {}: none yet (no lake at {})", d.name, conn.lake_url),
        }
        if d.format != lakefleet::catalog::SourceFormat::Parquet {
            println!("  schema (v{}): {}", d.schema_version, d.schema_summary().join(", "));
        } else {
            println!("  schema (v{}), each column with the source names it accepts:", d.schema_version);
            for (i, summary) in d.schema_summary().into_iter().enumerate() {
                let names = d.accepted_names(i, None);
                let from = if names.is_empty() { "(only in an era below)".to_string() } else { names.join(" | ") };
                println!("    {summary:<34} <- {from}");
            }
            println!(
                "  columns: missing ones become {}, unknown ones {}{}",
                match d.missing_columns {
                    lakefleet::catalog::MissingColumns::Null => "nulls",
                    lakefleet::catalog::MissingColumns::Fail => "a schema_mismatch",
                },
                match d.unknown_columns {
                    lakefleet::catalog::UnknownColumns::Fail => "park the partition as schema_drift",
                    lakefleet::catalog::UnknownColumns::Ignore => "are ignored",
                },
                if d.ignore_columns.is_empty() {
                    String::new()
                } else {
                    format!("; never read: {}", d.ignore_columns.join(", "))
                }
            );
        }
        for e in &d.eras {
            let last = e.last.map(|l| l.to_string()).unwrap_or_else(|| "now".into());
            println!("  era {} .. {last}: {}", e.first, e.note);
            for (out, names) in &e.sources {
                let from = if names.is_empty() { "(nothing)".to_string() } else { names.join(" | ") };
                println!("    {out} <- {from}");
            }
        }
    }
}
