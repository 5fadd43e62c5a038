//! `producer table ddl`: the statements that put a dataset's table into a
//! warehouse. Golden-tested (`producer/tests/ddl/`).

use lakefleet::catalog::Dataset;
use lakefleet::lake::{LakeKind, LakeUrl};
use lakefleet::table::PARTITION_COLUMN;

use crate::cli::DdlArgs;

/// The dataset's folder as the engine names it: `gs://bucket/prefix/mta-turnstile`,
/// or an absolute local path.
fn location(lake_url: &LakeUrl, ds: &Dataset) -> String {
    let root = match lake_url.local_dir() {
        Some(dir) => {
            let dir = dir.trim_end_matches('/');
            std::path::absolute(dir).map(|p| p.to_string_lossy().into_owned()).unwrap_or_else(|_| dir.to_string())
        }
        None => lake_url.as_str().trim_end_matches('/').to_string(),
    };
    format!("{root}/{}", ds.name)
}

/// `mta-turnstile` -> `mta_turnstile` (an identifier without quotes).
fn ident(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }).collect()
}

fn sql_string(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The DDL, or why none can be given (exit 2).
pub fn ddl(ds: &Dataset, lake_url: &LakeUrl, args: &DdlArgs) -> Result<String, String> {
    let loc = location(lake_url, ds);
    if args.duckdb {
        let source = match ds.table {
            true => format!("delta_scan({})", sql_string(&loc)),
            false => format!("read_parquet({}, hive_partitioning = true)", sql_string(&format!("{loc}/*/*.parquet"))),
        };
        let load = if ds.table { "INSTALL delta;\nLOAD delta;\n" } else { "" };
        return Ok(format!(
            "-- {}: the dataset's {} in DuckDB\n{load}CREATE OR REPLACE VIEW {} AS SELECT * FROM {source};",
            ds.name,
            if ds.table { "Delta table" } else { "Hive-partitioned Parquet files" },
            ident(&ds.name)
        ));
    }
    let target = args.bigquery.as_deref().unwrap_or_default();
    let parts: Vec<&str> = target.split('.').collect();
    if parts.len() != 3 || parts.iter().any(|p| p.is_empty() || p.contains('`')) {
        return Err(format!("--bigquery {target:?}: give the table as PROJECT.DATASET.TABLE"));
    }
    if ds.timestamps == lakefleet::catalog::Timestamps::WallClock && !ds.timestamp_columns().is_empty() {
        return Err(format!(
            "dataset {} sets timestamps = \"wall_clock\": its columns {} are Delta timestamp_ntz, which BigQuery's BigLake cannot read; store instants (remove the setting, name the sources' time_zone) in a new table to query it from BigQuery",
            ds.name,
            ds.timestamp_columns().join(", ")
        ));
    }
    if lake_url.kind() != LakeKind::Gcs {
        return Err(format!(
            "BigQuery reads tables on Cloud Storage: LAKE_URL is {lake_url}, not gs://BUCKET/PREFIX (set LAKE_URL to the gs:// lake the fleet writes)"
        ));
    }
    let connection = match &args.connection {
        Some(c) => format!("`{c}`"),
        None => "DEFAULT".to_string(),
    };
    Ok(match ds.table {
        true => format!(
            "-- {}: a BigLake table over the dataset's Delta table (BigQuery reads its _delta_log)\nCREATE EXTERNAL TABLE `{target}`\nWITH CONNECTION {connection}\nOPTIONS (\n  format = 'DELTA_LAKE',\n  uris = [{}]\n);",
            ds.name,
            sql_string(&loc)
        ),
        false => format!(
            "-- {}: the dataset's Hive-partitioned Parquet files (table = false: no Delta log)\nCREATE EXTERNAL TABLE `{target}`\nWITH PARTITION COLUMNS ({PARTITION_COLUMN} INT64)\nWITH CONNECTION {connection}\nOPTIONS (\n  format = 'PARQUET',\n  uris = [{}],\n  hive_partition_uri_prefix = {}\n);",
            ds.name,
            sql_string(&format!("{loc}/*")),
            sql_string(&loc)
        ),
    })
}
