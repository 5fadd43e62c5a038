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

/// The key of version `v`'s commit in `dataset`'s log, below the lake root.
pub fn log_key(dataset: &str, v: u64) -> String {
    format!("{dataset}/_delta_log/{v:020}.json")
}

/// The key of version `v`'s checkpoint in `dataset`'s log, below the lake root.
pub fn checkpoint_key(dataset: &str, v: u64) -> String {
    format!("{dataset}/_delta_log/{v:020}.checkpoint.parquet")
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

/// Each partition's `partition=rows:sum(entries)` of the table at `path`
/// (by its `_lakefleet_partition` column, in order), as python deltalake
/// (its SQL engine, which applies deletion vectors), DuckDB's delta
/// extension and polars read it: one line per reader.
pub fn partitions_by_readers(path: &str) -> [String; 3] {
    let script = r#"
import sys, os, glob, duckdb, duckdb_extension_delta, polars as pl
from deltalake import DeltaTable
p = sys.argv[1]
def fmt(rows):
    return " ".join(f"{w}={n}:{s}" for w, n, s in sorted((str(w), n, s) for w, n, s in rows))
from deltalake import QueryBuilder
t = QueryBuilder().register("t", DeltaTable(p)).execute("SELECT _lakefleet_partition, count(*) AS n, sum(entries) AS s FROM t GROUP BY 1").read_all()
print(fmt(zip(t["_lakefleet_partition"].to_pylist(), t["n"].to_pylist(), t["s"].to_pylist())))
ext = glob.glob(os.path.join(os.path.dirname(duckdb_extension_delta.__file__), "extensions", "*", "delta.duckdb_extension"))[0]
con = duckdb.connect(config={"allow_unsigned_extensions": "true"})
con.execute(f"INSTALL '{ext}'")
con.execute("LOAD delta")
print(fmt(con.execute(f"SELECT _lakefleet_partition, count(*), sum(entries) FROM delta_scan('{p}') GROUP BY 1").fetchall()))
print(fmt(pl.read_delta(p).group_by("_lakefleet_partition").agg(pl.len(), pl.col("entries").sum()).rows()))
"#;
    let out = python(script, &[path]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "{out}");
    [lines[0].to_string(), lines[1].to_string(), lines[2].to_string()]
}

/// Asserts that deltalake, DuckDB and polars each read the table at `path`
/// as `want` ([`partitions_by_readers`]'s form).
pub fn assert_partitions(path: &str, want: &str) {
    for (reader, got) in ["deltalake", "DuckDB", "polars"].iter().zip(partitions_by_readers(path)) {
        assert_eq!(got, want, "{reader} reads {path}");
    }
}

/// `partition=rows:sum(entries)` of MTA weeks as their sources hold them
/// (`(week, rows, seed)`, as [`crate::mta_week`] makes them), in order.
pub fn mta_partitions(weeks: &[(chrono::NaiveDate, usize, u64)]) -> String {
    let mut parts: Vec<String> =
        weeks.iter().map(|&(w, rows, seed)| format!("{w}={rows}:{}", crate::mta_week(w, rows, seed).1)).collect();
    parts.sort();
    parts.join(" ")
}

/// Deletes rows `rows` (their indexes in the file) of the live file `rel`
/// of the table at `path` as Spark does: a deletion vector file
/// (`deletion_vector_{uuid}.bin`: a RoaringBitmapArray with its size and
/// CRC) and a commit that removes the file and adds it again with the
/// vector's descriptor. The table must have the `deletionVectors` feature.
/// Returns the vector's file name.
pub fn spark_deletion_vector(path: &str, rel: &str, rows: &[u64]) -> String {
    let script = r#"
import sys, os, json, uuid, struct, zlib, time
Z85 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#"
def z85(b):
    out = ""
    for i in range(0, len(b), 4):
        v = int.from_bytes(b[i:i+4], "big")
        out += "".join(Z85[(v // 85**k) % 85] for k in (4, 3, 2, 1, 0))
    return out
def bitmap(values):
    highs = sorted({v >> 32 for v in values})
    out = struct.pack("<i", 1681511377) + struct.pack("<q", len(highs))
    for h in highs:
        lows = sorted(v & 0xFFFFFFFF for v in values if v >> 32 == h)
        keys = sorted({l >> 16 for l in lows})
        conts = [[l & 0xFFFF for l in lows if l >> 16 == k] for k in keys]
        b = struct.pack("<II", 12346, len(keys))
        for k, c in zip(keys, conts):
            b += struct.pack("<HH", k, len(c) - 1)
        off = len(b) + 4 * len(keys)
        for c in conts:
            b += struct.pack("<I", off)
            off += 2 * len(c)
        for c in conts:
            b += b"".join(struct.pack("<H", x) for x in c)
        out += struct.pack("<I", h) + b
    return out
p, rel, rows = sys.argv[1], sys.argv[2], [int(x) for x in sys.argv[3].split(",")]
log = os.path.join(p, "_delta_log")
add, version = None, -1
for name in sorted(os.listdir(log)):
    if name.endswith(".json") and name[:20].isdigit():
        version = max(version, int(name[:20]))
        for line in open(os.path.join(log, name)):
            a = json.loads(line).get("add")
            if a and a["path"] == rel:
                add = a
u = uuid.uuid4()
data = bitmap(rows)
with open(os.path.join(p, f"deletion_vector_{u}.bin"), "wb") as f:
    f.write(b"\x01" + struct.pack(">i", len(data)) + data + struct.pack(">I", zlib.crc32(data) & 0xFFFFFFFF))
dv = {"storageType": "u", "pathOrInlineDv": z85(u.bytes), "offset": 1, "sizeInBytes": len(data), "cardinality": len(rows)}
now = int(time.time() * 1000)
remove = {"path": rel, "deletionTimestamp": now, "dataChange": True, "extendedFileMetadata": True,
          "partitionValues": add["partitionValues"], "size": add["size"]}
with open(os.path.join(log, "%020d.json" % (version + 1)), "x") as f:
    f.write(json.dumps({"commitInfo": {"timestamp": now, "operation": "DELETE", "engineInfo": "Apache-Spark/3.5.3 Delta-Lake/3.2.1"}}) + "\n")
    f.write(json.dumps({"remove": remove}) + "\n")
    f.write(json.dumps({"add": dict(add, deletionVector=dv, dataChange=True)}) + "\n")
print(f"deletion_vector_{u}.bin")
"#;
    let rows: Vec<String> = rows.iter().map(u64::to_string).collect();
    python(script, &[path, rel, &rows.join(",")])
}
