//! A table shared with other tools: python `deltalake` (and a log entry as
//! Spark writes one) touches the table first, then the fleet writes to it.
//! Each case reads the table back with deltalake and DuckDB.

use std::time::Duration;

use lakefleet_testkit::*;

/// A fleet with one worker that has loaded weeks `0..n` of mta-turnstile.
async fn loaded(name: &str, n: u64) -> (Source, Fleet, WorkerProc, Vec<(String, usize, String)>) {
    let src = Source::start().await;
    let f = Fleet::local(name);
    let expect = serve_mta_weeks(&src, 8, 120, 200, &[]);
    let w = f.worker(&["--concurrency", "2"]);
    w.ready().await;
    let out = f.backfill_mta(&src, week(0), week(n - 1), &[]);
    let s = wait_finished(&f, &out, Duration::from_secs(60)).await;
    assert_eq!((s.done, s.parked.len()), (n, 0), "{s:?}");
    (src, f, w, expect)
}

fn table_path(f: &Fleet) -> String {
    f.lake_dir.clone().unwrap().join("mta-turnstile").to_str().unwrap().to_string()
}

/// `rows files version` by deltalake.
fn rows_files_version(path: &str) -> String {
    let r = deltalake_read(path, None);
    let parts: Vec<&str> = r.split(' ').collect();
    format!("{} {} {}", parts[0], parts[2], parts[3])
}

#[tokio::test(flavor = "multi_thread")]
async fn properties_and_a_description_another_tool_set_survive_the_fleet_s_commits() {
    let (src, f, _w, expect) = loaded("interop-props", 2).await;
    let path = table_path(&f);
    python(
        r#"
import sys
from deltalake import DeltaTable
t = DeltaTable(sys.argv[1])
t.alter.set_table_properties({"delta.logRetentionDuration": "interval 60 days", "delta.enableChangeDataFeed": "true", "team.owner": "data-eng"}, raise_if_not_exists=False)
t.alter.set_table_description("weekly turnstile counts")
"#,
        &[&path],
    );
    let out = f.backfill_mta(&src, week(2), week(3), &[]);
    let s = wait_finished(&f, &out, Duration::from_secs(60)).await;
    assert_eq!((s.done, s.parked.len()), (2, 0), "{s:?}");
    let meta = python(
        r#"
import sys
from deltalake import DeltaTable
t = DeltaTable(sys.argv[1])
m = t.metadata()
c = m.configuration
print(c.get("delta.logRetentionDuration"), c.get("delta.enableChangeDataFeed"), c.get("team.owner"), "|", m.description)
"#,
        &[&path],
    );
    assert_eq!(meta, "interval 60 days true data-eng | weekly turnstile counts");
    let rows: usize = expect[..4].iter().map(|(_, n, _)| n).sum();
    assert!(rows_files_version(&path).starts_with(&format!("{rows} 4 ")), "{}", rows_files_version(&path));
    assert!(duckdb_read(&path).starts_with(&format!("{rows} ")));
    // The fleet's commits wrote no metaData: only another tool's did.
    let dir = f.lake_dir.clone().unwrap();
    let entries = log_entries(&dir, "mta-turnstile");
    let with_meta: Vec<u64> = entries.iter().filter(|(_, a)| count(a, "metaData") > 0).map(|(v, _)| *v).collect();
    assert_eq!(with_meta.len(), 3, "creation and the two alterations: {with_meta:?}");
    f.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_append_only_table_takes_new_weeks_and_refuses_a_refresh_naming_the_property() {
    let (src, f, _w, expect) = loaded("interop-append", 2).await;
    let path = table_path(&f);
    python(
        r#"
import sys
from deltalake import DeltaTable
DeltaTable(sys.argv[1]).alter.set_table_properties({"delta.appendOnly": "true"})
"#,
        &[&path],
    );
    let out = f.backfill_mta(&src, week(2), week(2), &[]);
    let s = wait_finished(&f, &out, Duration::from_secs(60)).await;
    assert_eq!((s.done, s.parked.len()), (1, 0), "appends land: {s:?}");
    let (changed, _) = mta_week(week(1), 90, 201);
    src.put(&mta_name(week(1)), changed);
    let out = f.backfill_mta(&src, week(1), week(1), &["--refresh"]);
    let s = wait_finished(&f, &out, Duration::from_secs(60)).await;
    assert_eq!(s.parked.len(), 1, "{s:?}");
    let parked = f.parked().await;
    assert_eq!(parked.len(), 1, "{parked:?}");
    assert_eq!(parked[0].reason, "table_unsupported", "{parked:?}");
    assert!(parked[0].error.contains("delta.appendOnly"), "{}", parked[0].error);
    let rows: usize = expect[..3].iter().map(|(_, n, _)| n).sum();
    assert!(
        rows_files_version(&path).starts_with(&format!("{rows} 3 ")),
        "the old week stays: {}",
        rows_files_version(&path)
    );
    f.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_check_constraint_or_a_writer_feature_lakefleet_does_not_write_refuses_the_table() {
    let (src, f, _w, expect) = loaded("interop-features", 1).await;
    let path = table_path(&f);
    python(
        r#"
import sys
from deltalake import DeltaTable
DeltaTable(sys.argv[1]).alter.add_constraint({"entries_not_negative": "entries >= 0"})
"#,
        &[&path],
    );
    let out = f.backfill_mta(&src, week(1), week(1), &[]);
    let s = wait_finished(&f, &out, Duration::from_secs(60)).await;
    assert_eq!(s.parked.len(), 1, "{s:?}");
    let parked = f.parked().await;
    assert_eq!(parked[0].reason, "table_unsupported", "{parked:?}");
    assert!(parked[0].error.contains("entries_not_negative"), "{}", parked[0].error);

    // Spark upgrades the table to row tracking (a protocol action of its own).
    python(
        r#"
import sys
from deltalake import DeltaTable
DeltaTable(sys.argv[1]).alter.drop_constraint("entries_not_negative")
"#,
        &[&path],
    );
    let dir = f.lake_dir.clone().unwrap();
    let next = log_entries(&dir, "mta-turnstile").last().unwrap().0 + 1;
    let protocol = serde_json::json!({"protocol": {"minReaderVersion": 3, "minWriterVersion": 7,
        "readerFeatures": ["timestampNtz"],
        "writerFeatures": ["timestampNtz", "rowTracking", "domainMetadata"]}});
    let info = serde_json::json!({"commitInfo": {"timestamp": 1, "operation": "UPGRADE PROTOCOL"}});
    std::fs::write(dir.join(log_key("mta-turnstile", next)), format!("{protocol}\n{info}\n")).unwrap();
    let out = f.backfill_mta(&src, week(2), week(2), &[]);
    let s = wait_finished(&f, &out, Duration::from_secs(60)).await;
    assert_eq!(s.parked.len(), 1, "{s:?}");
    let parked = f.parked().await;
    let last = parked.iter().find(|p| p.partition == week(2).to_string()).unwrap();
    assert_eq!(last.reason, "table_unsupported", "{parked:?}");
    assert!(
        last.error.contains("requires writer feature rowTracking, which lakefleet does not write"),
        "{}",
        last.error
    );
    assert_eq!(log_entries(&dir, "mta-turnstile").last().unwrap().0, next, "nothing written after the upgrade");
    assert!(rows_files_version(&path).starts_with(&format!("{} 1 ", expect[0].1)));
    f.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn fresh_workers_continue_a_log_whose_early_commits_are_gone_behind_a_multi_part_checkpoint() {
    let (src, f, w, expect) = loaded("interop-ckpt", 4).await;
    drop(w);
    let path = table_path(&f);
    // deltalake checkpoints version 3; the checkpoint is split in two parts
    // (Spark's form for large tables), `_last_checkpoint` says so, and the
    // commits it covers are cleaned up.
    python(
        r#"
import sys, os, json
import pyarrow.parquet as pq
from deltalake import DeltaTable
p = sys.argv[1]
t = DeltaTable(p)
t.create_checkpoint()
log = os.path.join(p, "_delta_log")
single = os.path.join(log, "%020d.checkpoint.parquet" % 3)
data = pq.read_table(single)
half = data.num_rows // 2
for i, part in enumerate([data.slice(0, half), data.slice(half)]):
    pq.write_table(part, os.path.join(log, "%020d.checkpoint.%010d.%010d.parquet" % (3, i + 1, 2)))
os.remove(single)
with open(os.path.join(log, "_last_checkpoint"), "w") as f:
    json.dump({"version": 3, "size": data.num_rows, "parts": 2}, f)
for v in range(0, 4):
    os.remove(os.path.join(log, "%020d.json" % v))
"#,
        &[&path],
    );
    f.forget_redis().await;
    let w = f.worker(&[]);
    w.ready().await;
    let out = f.backfill_mta(&src, week(0), week(5), &["--force"]);
    let s = wait_finished(&f, &out, Duration::from_secs(60)).await;
    assert_eq!((s.done, s.parked.len()), (6, 0), "{s:?}");
    let dir = f.lake_dir.clone().unwrap();
    assert!(!dir.join(log_key("mta-turnstile", 0)).exists(), "no second version 0 (a fork)");
    let versions: Vec<u64> = log_entries(&dir, "mta-turnstile").iter().map(|e| e.0).collect();
    assert_eq!(versions, vec![4, 5], "the two new weeks after the checkpoint");
    assert_eq!(metric(&w.metrics().await, "lakefleet_uploads_total", &[("result", "written")]), 2.0);
    let rows: usize = expect[..6].iter().map(|(_, n, _)| n).sum();
    assert_eq!(rows_files_version(&path), format!("{rows} 6 5"));
    assert!(duckdb_read(&path).starts_with(&format!("{rows} ")));

    // And with no `_last_checkpoint` at all: the listing finds the checkpoint.
    drop(w);
    std::fs::remove_file(dir.join("mta-turnstile/_delta_log/_last_checkpoint")).unwrap();
    f.forget_redis().await;
    let w2 = f.worker(&[]);
    w2.ready().await;
    let out = f.backfill_mta(&src, week(0), week(6), &["--force"]);
    let s = wait_finished(&f, &out, Duration::from_secs(60)).await;
    assert_eq!((s.done, s.parked.len()), (7, 0), "{s:?}");
    assert_eq!(metric(&w2.metrics().await, "lakefleet_uploads_total", &[("result", "written")]), 1.0);
    let rows: usize = expect[..7].iter().map(|(_, n, _)| n).sum();
    assert_eq!(rows_files_version(&path), format!("{rows} 7 6"));
    f.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn refreshes_after_another_tool_compacted_the_year_and_deleted_rows_leave_each_week_once_in_every_reader() {
    let (src, f, _w, _) = loaded("interop-compact", 3).await;
    let path = table_path(&f);
    let compacted = python(
        r#"
import sys
from deltalake import DeltaTable
t = DeltaTable(sys.argv[1])
m = t.optimize.compact()
print(m["numFilesAdded"], m["numFilesRemoved"], t.version())
"#,
        &[&path],
    );
    assert_eq!(compacted, "1 3 3", "one file for the year");
    let before = deltalake_read(&path, Some(3));

    // A republished week 1: its rows leave the compacted file (rewritten
    // with weeks 0 and 2 only), its new rows come in, in one commit.
    let (changed, _) = mta_week(week(1), 90, 202);
    src.put(&mta_name(week(1)), changed);
    let out = f.backfill_mta(&src, week(1), week(1), &["--refresh"]);
    let s = wait_finished(&f, &out, Duration::from_secs(60)).await;
    assert_eq!((s.done, s.parked.len()), (1, 0), "{s:?}");
    let want = mta_partitions(&[(week(0), 120, 200), (week(1), 90, 202), (week(2), 120, 202)]);
    assert_partitions(&path, &want);
    let (_, last) = log_entries(f.lake_dir.as_ref().unwrap(), "mta-turnstile").pop().unwrap();
    let (adds, removes) = (
        last.iter().filter(|a| a.get("add").is_some()).count(),
        last.iter().filter(|a| a.get("remove").is_some()).count(),
    );
    assert_eq!((adds, removes), (2, 1), "the week's file and the compacted file rewritten: {last:?}");
    // Time travel still reads the compacted version as it was.
    assert_eq!(deltalake_read(&path, Some(3)), before);

    // Another tool deletes part of week 2 (rewriting its rows into a file of
    // its own), then week 2 is refreshed: no old row of it is left.
    python(
        r#"
import sys
from deltalake import DeltaTable
DeltaTable(sys.argv[1]).delete("_lakefleet_partition = '2022-01-15' AND entries < 1000000000")
"#,
        &[&path],
    );
    let (changed, _) = mta_week(week(2), 70, 203);
    src.put(&mta_name(week(2)), changed);
    let out = f.backfill_mta(&src, week(2), week(2), &["--refresh"]);
    let s = wait_finished(&f, &out, Duration::from_secs(60)).await;
    assert_eq!((s.done, s.parked.len()), (1, 0), "{s:?}");
    let want = mta_partitions(&[(week(0), 120, 200), (week(1), 90, 202), (week(2), 70, 203)]);
    assert_partitions(&path, &want);

    // Vacuum honours the table's delta.deletedFileRetentionDuration.
    python(
        r#"
import sys
from deltalake import DeltaTable
DeltaTable(sys.argv[1]).alter.set_table_properties({"delta.deletedFileRetentionDuration": "interval 30 days"})
"#,
        &[&path],
    );
    let out = f.producer(&["vacuum", "--dataset", "mta-turnstile", "--older-than", "7d"]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(stderr(&out).contains("delta.deletedFileRetentionDuration (30d)"), "{}", stderr(&out));
    let out = f.producer(&["vacuum", "--dataset", "mta-turnstile", "--older-than", "30d"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("deleted 0 object(s)"), "{}", stdout(&out));
    f.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_built_in_table_stores_instants_right_in_winter_and_summer_and_sub_millisecond_predicates_agree() {
    let src = Source::start().await;
    let f = Fleet::local("interop-instants");
    let (winter, summer) = (week(1), week(27));
    for (i, w) in [winter, summer].into_iter().enumerate() {
        let (bytes, _) = mta_week(w, 60, 300 + i as u64);
        src.put(&mta_name(w), bytes);
    }
    let w = f.worker(&[]);
    w.ready().await;
    for day in [winter, summer] {
        let out = f.backfill_mta(&src, day, day, &[]);
        let s = wait_finished(&f, &out, Duration::from_secs(60)).await;
        assert_eq!((s.done, s.parked.len()), (1, 0), "{s:?}");
    }
    let path = table_path(&f);
    // The log: `timestamp`, no timestampNtz feature anywhere.
    let dir = f.lake_dir.clone().unwrap();
    let log: String = log_entries(&dir, "mta-turnstile").iter().map(|(_, a)| format!("{a:?}")).collect();
    assert!(!log.contains("timestampNtz") && !log.contains("timestamp_ntz"), "{log}");
    // Each row's instant minus its New York wall-clock time (date + time):
    // 5 hours in January (EST), 4 in July (EDT).
    let offsets = python(
        r#"
import sys, datetime
from deltalake import DeltaTable
t = DeltaTable(sys.argv[1])
print(t.schema().fields[[f.name for f in t.schema().fields].index("observed_at")].type)
data = t.to_pyarrow_table()
print(data.schema.field("observed_at").type)
seen = set()
for d, tm, at in zip(data["date"].to_pylist(), data["time"].to_pylist(), data["observed_at"].to_pylist()):
    wall = datetime.datetime.combine(d, datetime.time.fromisoformat(tm))
    seen.add((d.month, (at.replace(tzinfo=None) - wall).total_seconds() / 3600))
print(sorted(seen))
"#,
        &[&path],
    );
    assert_eq!(
        offsets.lines().collect::<Vec<_>>(),
        ["PrimitiveType(\"timestamp\")", "timestamp[us, tz=UTC]", "[(1, 5.0), (7, 4.0)]"],
        "{offsets}"
    );
    // Sub-millisecond literals: deltalake's SQL, DuckDB over the table and a
    // plain read of the files count the same (a reader cutting the literal to
    // milliseconds would count the row at 05:00:00 too).
    let counts = python(
        r#"
import sys, os, glob, duckdb, duckdb_extension_delta
from deltalake import DeltaTable, QueryBuilder
p = sys.argv[1]
ext = glob.glob(os.path.join(os.path.dirname(duckdb_extension_delta.__file__), "extensions", "*", "delta.duckdb_extension"))[0]
con = duckdb.connect(config={"allow_unsigned_extensions": "true"})
con.execute(f"INSTALL '{ext}'")
con.execute("LOAD delta")
con.execute("SET TimeZone = 'UTC'")
qb = QueryBuilder().register("t", DeltaTable(p))
for lit in ["2022-01-03 05:00:00.000500", "2022-01-03 04:59:59.999500", "2022-07-04 04:00:00.000001", "2022-07-04 03:59:59.999999"]:
    where = f"observed_at >= TIMESTAMP '{lit}+00:00'"
    a = qb.execute(f"SELECT count(*) AS n FROM t WHERE observed_at >= TIMESTAMP '{lit.replace(' ', 'T')}Z'").read_all()["n"][0].as_py()
    b = con.execute(f"SELECT count(*) FROM delta_scan('{p}') WHERE {where}").fetchone()[0]
    c = con.execute(f"SELECT count(*) FROM read_parquet('{p}/*/*.parquet') WHERE {where}").fetchone()[0]
    print(a, b, c)
"#,
        &[&path],
    );
    let lines: Vec<&str> = counts.lines().collect();
    assert_eq!(lines.len(), 4, "{counts}");
    for l in &lines {
        let v: Vec<&str> = l.split(' ').collect();
        assert!(v[0] == v[1] && v[1] == v[2], "deltalake, delta_scan and the files disagree: {counts}");
    }
    assert_ne!(lines[0], lines[1], "05:00:00 itself is counted by one literal and not the other: {counts}");
    // And the BigQuery definition is generated for it.
    let out = std::process::Command::new(producer_bin())
        .env("LAKE_URL", "gs://acme-lake/prod")
        .args(["table", "ddl", "--dataset", "mta-turnstile", "--bigquery", "acme.lake.turnstile"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stdout(&out).contains("format = 'DELTA_LAKE'"), "{}", stdout(&out));
    f.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deletion_vector_spark_wrote_is_kept_by_the_fleet_s_checkpoint_and_removed_with_its_file_by_a_refresh() {
    let src = Source::start().await;
    let f = Fleet::local("interop-dv").with_catalog(&mta_catalog("mta-dv", "checkpoint_interval = 5"));
    serve_mta_weeks(&src, 10, 120, 400, &[]);
    let w = f.worker(&["--concurrency", "1"]);
    w.ready().await;
    let backfill = |from: u64, to: u64, extra: &[&str]| {
        let mut args = vec!["--mirror", src.base.as_str()];
        args.extend_from_slice(extra);
        f.backfill("mta-dv", &week(from).to_string(), &week(to).to_string(), &args)
    };
    let s = wait_finished(&f, &backfill(0, 2, &[]), Duration::from_secs(60)).await;
    assert_eq!((s.done, s.parked.len()), (3, 0), "{s:?}");
    let dir = f.lake_dir.clone().unwrap();
    let path = dir.join("mta-dv").to_str().unwrap().to_string();
    // Spark deletes week 1's first ten rows with a deletion vector.
    python(
        "import sys\nfrom deltalake import DeltaTable, TableFeatures\nDeltaTable(sys.argv[1]).alter.add_feature(TableFeatures.DeletionVectors, allow_protocol_versions_increase=True)",
        &[&path],
    );
    let rel = format!("year=2022/mta-dv_{}.parquet", week(1));
    let dv = spark_deletion_vector(&path, &rel, &(0..10).collect::<Vec<_>>());
    let dv_version = log_entries(&dir, "mta-dv").last().unwrap().0;
    let (source, sum) = mta_week(week(1), 120, 401);
    let text = String::from_utf8(source).unwrap();
    let deleted: i64 =
        text.lines().skip(1).take(10).map(|l| l.split(',').nth(9).unwrap().parse::<i64>().unwrap()).sum();
    let week1 = format!("{}=110:{}", week(1), sum - deleted);

    // The fleet commits more weeks, one version each, and checkpoints.
    let s = wait_finished(&f, &backfill(3, 8, &[]), Duration::from_secs(90)).await;
    assert_eq!((s.done, s.parked.len()), (6, 0), "{s:?}");
    let log = dir.join("mta-dv/_delta_log");
    let last: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(log.join("_last_checkpoint")).unwrap()).unwrap();
    let checkpoint = last["version"].as_u64().unwrap();
    assert!(checkpoint > dv_version, "a checkpoint after the deletion vector: {last}");
    let kept = python(
        r#"
import sys, pyarrow.parquet as pq
adds = [a for a in pq.read_table(sys.argv[1]).column("add").to_pylist() if a and a["path"] == sys.argv[2]]
print(len(adds), adds[0]["deletionVector"]["cardinality"] if adds[0]["deletionVector"] else None)
"#,
        &[dir.join(checkpoint_key("mta-dv", checkpoint)).to_str().unwrap(), &rel],
    );
    assert_eq!(kept, "1 10", "the checkpoint's Add keeps the deletion vector");
    // Commits the checkpoint covers are cleaned up: readers see the week
    // through the checkpoint, without its deleted rows.
    for v in 0..=checkpoint {
        let _ = std::fs::remove_file(dir.join(log_key("mta-dv", v)));
    }
    let mut weeks: Vec<(chrono::NaiveDate, usize, u64)> = (0..9).map(|i| (week(i), 120, 400 + i)).collect();
    weeks.remove(1);
    let others = mta_partitions(&weeks);
    let want = |w1: &str| {
        let mut all: Vec<&str> = others.split(' ').chain([w1]).collect();
        all.sort();
        all.join(" ")
    };
    assert_partitions(&path, &want(&week1));

    // A refresh removes the file with its deletion vector and adds the new rows.
    let (changed, _) = mta_week(week(1), 90, 499);
    src.put(&mta_name(week(1)), changed);
    let s = wait_finished(&f, &backfill(1, 1, &["--refresh"]), Duration::from_secs(60)).await;
    assert_eq!((s.done, s.parked.len()), (1, 0), "{s:?}");
    let (_, actions) = log_entries(&dir, "mta-dv").pop().unwrap();
    let removed = actions.iter().find_map(|a| a.get("remove")).expect("a Remove");
    assert_eq!(removed["path"], rel.as_str());
    assert_eq!(removed["deletionVector"]["cardinality"], 10, "{removed}");
    let new_week1 = mta_partitions(&[(week(1), 90, 499)]);
    assert_partitions(&path, &want(&new_week1));
    // The vector's file stays while readers of earlier versions may need it.
    let out = f.producer(&["vacuum", "--dataset", "mta-dv", "--older-than", "2h"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(dir.join("mta-dv").join(&dv).exists(), "{dv} kept");
    f.cleanup().await;
}
