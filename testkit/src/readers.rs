//! A table read back the way users read it: python `deltalake` and DuckDB's
//! `delta_scan` (installed by `scripts/services.sh`), and the log's entries.

/// Runs a python script with `args`; its stdout, trimmed (the test fails
/// with the script's stderr when it fails).
pub fn python(script: &str, args: &[&str]) -> String {
    // Exit without the interpreter's teardown: deltalake's threads made it
    // abort there now and then ("terminate called without an active
    // exception"), after the answer was printed.
    let script = format!("{script}\nimport os, sys\nsys.stdout.flush()\nos._exit(0)\n");
    let out = std::process::Command::new("python3").arg("-c").arg(&script).args(args).output().expect("python3");
    assert!(out.status.success(), "python failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `rows sum(entries) files` of the table at `path` (and `version`), by python deltalake.
pub fn deltalake_read(path: &str, version: Option<u64>) -> String {
    let script = r#"
import sys
from deltalake import DeltaTable
v = None if sys.argv[2] == "latest" else int(sys.argv[2])
t = DeltaTable(sys.argv[1], version=v)
data = t.to_pyarrow_table()
import pyarrow.compute as pc
print(data.num_rows, pc.sum(data["entries"]).as_py(), len(t.file_uris()), t.version())
"#;
    let v = version.map(|v| v.to_string()).unwrap_or_else(|| "latest".into());
    python(script, &[path, &v])
}

/// `rows sum(entries) years` of the table at `path`, by DuckDB's delta extension.
pub fn duckdb_read(path: &str) -> String {
    let script = r#"
import sys, os, glob, duckdb, duckdb_extension_delta
ext = glob.glob(os.path.join(os.path.dirname(duckdb_extension_delta.__file__), "extensions", "*", "delta.duckdb_extension"))[0]
con = duckdb.connect(config={"allow_unsigned_extensions": "true"})
con.execute(f"INSTALL '{ext}'")
con.execute("LOAD delta")
r = con.execute(f"SELECT count(*), sum(entries), count(DISTINCT year) FROM delta_scan('{sys.argv[1]}')").fetchone()
print(*r)
"#;
    python(script, &[path])
}

/// The log's entries: (version, its actions) in order.
pub fn log_entries(dir: &std::path::Path, dataset: &str) -> Vec<(u64, Vec<serde_json::Value>)> {
    let log = dir.join(dataset).join("_delta_log");
    let mut out: Vec<(u64, Vec<serde_json::Value>)> = std::fs::read_dir(&log)
        .unwrap()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let v: u64 = name.strip_suffix(".json")?.parse().ok()?;
            let text = std::fs::read_to_string(e.path()).unwrap();
            Some((v, text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()))
        })
        .collect();
    out.sort_by_key(|(v, _)| *v);
    out
}

pub fn count(actions: &[serde_json::Value], kind: &str) -> usize {
    actions.iter().filter(|a| a.get(kind).is_some()).count()
}

/// The New York wall-clock times (ms since 1970-01-01, no zone) of a
/// timestamp column the fleet stored as instants: the test fails unless the
/// column is `Timestamp(Microsecond, "UTC")`. Sources write wall-clock times;
/// this reads them back as the source wrote them.
pub fn ny_wall_millis(col: &dyn arrow_array::Array) -> Vec<Option<i64>> {
    use arrow_array::cast::AsArray;
    assert_eq!(
        col.data_type(),
        &arrow_schema::DataType::Timestamp(arrow_schema::TimeUnit::Microsecond, Some("UTC".into())),
        "timestamps are stored as instants in microseconds"
    );
    let ny: chrono_tz::Tz = "America/New_York".parse().unwrap();
    col.as_primitive::<arrow_array::types::TimestampMicrosecondType>()
        .iter()
        .map(|v| {
            v.map(|us| {
                let utc = chrono::DateTime::from_timestamp_micros(us).unwrap();
                utc.with_timezone(&ny).naive_local().and_utc().timestamp_millis()
            })
        })
        .collect()
}
