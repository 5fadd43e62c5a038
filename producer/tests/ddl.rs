//! `producer table ddl` against golden files (`producer/tests/ddl/*.sql`):
//! BigQuery over a Delta table and over plain Parquet files, DuckDB views,
//! and the refusals. Set `LAKEFLEET_BLESS=1` to rewrite the golden files.

use lakefleet_testkit::*;

const PLAIN: &str = r#"[[dataset]]
name = "plain-weekly"
cadence = "weekly"
url_template = "http://127.0.0.1:9/{yymmdd}.csv"
first = "2020-01-04"
table = false
columns = [ { source = "a", type = "string" } ]

[[dataset]]
name = "wall-weekly"
cadence = "weekly"
url_template = "http://127.0.0.1:9/{yymmdd}.csv"
first = "2020-01-04"
timestamps = "wall_clock"
columns = [ { source = "at", type = "timestamp", format = "%Y-%m-%d %H:%M:%S" } ]
"#;

fn ddl(lake: &str, args: &[&str]) -> std::process::Output {
    let catalog = tmpdir("ddl").join("catalog.toml");
    std::fs::write(&catalog, PLAIN).unwrap();
    let mut cmd = std::process::Command::new(producer_bin());
    cmd.env("LAKE_URL", lake).env("LAKEFLEET_CATALOG", &catalog).args(["table", "ddl"]).args(args);
    cmd.output().unwrap()
}

fn golden(name: &str, got: &str) {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/ddl").join(name);
    if std::env::var("LAKEFLEET_BLESS").is_ok_and(|v| v == "1") {
        std::fs::write(&path, got).unwrap();
    }
    let want = std::fs::read_to_string(&path).unwrap_or_else(|_| panic!("{}: missing golden file", path.display()));
    assert_eq!(got, want, "{name} differs from its golden file");
}

#[test]
fn ddl_matches_the_golden_files() {
    let gs = "gs://acme-lake/prod";
    for (name, lake, args) in [
        (
            "bigquery_delta.sql",
            gs,
            &["--dataset", "mta-turnstile", "--bigquery", "acme.lake.mta_turnstile", "--connection", "acme.us.lake"][..],
        ),
        (
            "bigquery_delta_default_connection.sql",
            gs,
            &["--dataset", "nyc-tlc-yellow", "--bigquery", "acme.lake.yellow"],
        ),
        ("bigquery_parquet.sql", gs, &["--dataset", "plain-weekly", "--bigquery", "acme.lake.plain"]),
        ("duckdb_delta_s3.sql", "s3://acme-lake/prod", &["--dataset", "mta-turnstile", "--duckdb"]),
        ("duckdb_parquet_local.sql", "file:///data/lake", &["--dataset", "plain-weekly", "--duckdb"]),
    ] {
        let out = ddl(lake, args);
        assert_eq!(out.status.code(), Some(0), "{name}: {}", stderr(&out));
        golden(name, &stdout(&out));
    }
}

#[test]
fn ddl_refuses_what_a_warehouse_cannot_read() {
    let out = ddl("s3://acme-lake/prod", &["--dataset", "mta-turnstile", "--bigquery", "acme.lake.t"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("BigQuery reads tables on Cloud Storage: LAKE_URL is s3://acme-lake/prod"),
        "{}",
        stderr(&out)
    );
    let out = ddl("gs://b/p", &["--dataset", "mta-turnstile", "--bigquery", "just_a_table"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("PROJECT.DATASET.TABLE"), "{}", stderr(&out));
    let out = ddl("gs://b/p", &["--dataset", "mta-turnstile"]);
    assert_eq!(out.status.code(), Some(2), "an engine is required");
    // Wall-clock times (timestamp_ntz): BigLake cannot read them; the
    // setting is named. A built-in table (instants) gets its definition.
    let out = ddl("gs://b/p", &["--dataset", "wall-weekly", "--bigquery", "acme.lake.w"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("sets timestamps = \"wall_clock\": its columns at are Delta timestamp_ntz"),
        "{}",
        stderr(&out)
    );
    let out = ddl("gs://b/p", &["--dataset", "mta-turnstile", "--bigquery", "acme.lake.t"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
}
