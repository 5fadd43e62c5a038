//! Every dataset is a Delta table: each partition committed exactly once by
//! the whole fleet, read back the way users read it (python `deltalake` and
//! DuckDB's `delta_scan`), refreshes as new versions with time travel, and
//! many committers racing on the same partitions.

use std::sync::Arc;
use std::time::Duration;

use lakefleet::table::{Committed, PartitionCommit, Snapshot, Table};
use lakefleet_testkit::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_backfill_commits_each_partition_once_and_deltalake_and_duckdb_read_the_table() {
    let src = Source::start().await;
    let f = Fleet::local("tables");
    // 12 weeks across a year boundary: two `year` partitions.
    let expect = serve_mta_weeks(&src, 12, 200, 120, &[]);
    let workers = [f.worker(&["--concurrency", "4"]), f.worker(&["--concurrency", "4"])];
    for w in &workers {
        w.ready().await;
    }
    let out = f.backfill_mta(&src, week(0), week(11), &[]);
    let s = wait_finished(&f, &out, Duration::from_secs(60)).await;
    assert_eq!((s.done, s.parked.len()), (12, 0), "{s:?}");
    // Redis forgets everything; the same backfill again: the table says it is done.
    f.forget_redis().await;
    let again = f.backfill_mta(&src, week(0), week(11), &["--force"]);
    let s = wait_finished(&f, &again, Duration::from_secs(60)).await;
    assert_eq!((s.done, s.parked.len()), (12, 0), "{s:?}");

    let dir = f.lake_dir.clone().unwrap();
    let entries = log_entries(&dir, "mta-turnstile");
    assert_eq!(entries.len(), 12, "one commit per partition: {:?}", entries.iter().map(|e| e.0).collect::<Vec<_>>());
    assert_eq!(entries.iter().map(|e| e.0).collect::<Vec<_>>(), (0..12).collect::<Vec<_>>());
    let mut apps = std::collections::BTreeSet::new();
    for (v, actions) in &entries {
        assert_eq!((count(actions, "add"), count(actions, "txn"), count(actions, "remove")), (1, 1, 0), "version {v}");
        let txn = actions.iter().find_map(|a| a.get("txn")).unwrap();
        assert_eq!(txn["version"], 1, "first load: generation 1");
        assert!(apps.insert(txn["appId"].as_str().unwrap().to_string()), "one commit per partition");
    }
    let total_rows: usize = expect.iter().map(|(_, n, _)| n).sum();
    let entries_sum: i64 = {
        let mut s = 0;
        for (key, _, _) in &expect {
            s += sum_i64(&read_parquet(f.read_object(key).await).0, "entries");
        }
        s
    };
    let path = dir.join("mta-turnstile");
    let path = path.to_str().unwrap();
    assert_eq!(deltalake_read(path, None), format!("{total_rows} {entries_sum} 12 11"));
    let years = expect.iter().map(|(k, _, _)| &k[19..23]).collect::<std::collections::BTreeSet<_>>().len();
    assert_eq!(duckdb_read(path), format!("{total_rows} {entries_sum} {years}"));
    // Every Add carries its object's statistics (from the object's footer).
    let add = entries[0].1.iter().find_map(|a| a.get("add")).unwrap();
    let stats: serde_json::Value = serde_json::from_str(add["stats"].as_str().unwrap()).unwrap();
    assert_eq!(stats["numRecords"], 200, "{stats}");
    let ts = |k: &str| stats[k]["observed_at"].as_str().unwrap_or_default().to_string();
    // Instants: three fractional digits and a Z (UTC); New York in January is UTC-5.
    assert!(ts("minValues") < ts("maxValues") && ts("minValues").len() == 24, "{stats}");
    assert!(ts("minValues").ends_with(":00:00.000Z") && ts("minValues").contains("T05:00"), "{stats}");
    assert!(stats["maxValues"]["date"].as_str().is_some_and(|t| t.starts_with("202")), "{stats}");
    assert!(stats["minValues"]["entries"].is_i64() && stats["maxValues"]["entries"].is_i64(), "{stats}");
    assert_eq!(stats["nullCount"]["entries"], 0, "{stats}");
    // Readers skip files by them: predicates through delta_scan count what a
    // scan of every file counts.
    let filtered = python(
        r#"
import sys, os, glob, duckdb, duckdb_extension_delta
ext = glob.glob(os.path.join(os.path.dirname(duckdb_extension_delta.__file__), "extensions", "*", "delta.duckdb_extension"))[0]
con = duckdb.connect(config={"allow_unsigned_extensions": "true"})
con.execute(f"INSTALL '{ext}'")
con.execute("LOAD delta")
p = sys.argv[1]
for where in ["observed_at >= TIMESTAMP '2022-02-05 00:00:00' AND observed_at < TIMESTAMP '2022-02-19 00:00:00'", "entries > 5000000", "date = DATE '2022-01-03'"]:
    a = con.execute(f"SELECT count(*) FROM delta_scan('{p}') WHERE {where}").fetchone()[0]
    b = con.execute(f"SELECT count(*) FROM read_parquet('{p}/*/*.parquet') WHERE {where}").fetchone()[0]
    print(a, b)
"#,
        &[dir.join("mta-turnstile").to_str().unwrap()],
    );
    for line in filtered.lines() {
        let (a, b) = line.split_once(' ').unwrap();
        assert_eq!(a, b, "delta_scan vs a scan of the files: {filtered}");
    }
    assert!(filtered.lines().any(|l| !l.starts_with("0 ")), "some predicate selects rows: {filtered}");
    let shown = format!("table mta-turnstile: version 11, 12 live files, {total_rows} rows");
    let status = f.producer(&["status", &backfill_id(&out)]);
    assert!(stdout(&status).contains(&shown), "{}", stdout(&status));
    let datasets = f.producer(&["datasets"]);
    assert!(stdout(&datasets).contains(&shown), "{}", stdout(&datasets));
    let m = workers[0].metrics().await;
    let n = metric(&m, "lakefleet_table_commits_total", &[("outcome", "committed")]);
    let m1 = workers[1].metrics().await;
    assert_eq!(n + metric(&m1, "lakefleet_table_commits_total", &[("outcome", "committed")]), 12.0);
    oracle(&f, &expect, &[]).await;
    f.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refresh_is_one_commit_and_the_previous_version_still_reads_the_old_rows() {
    let src = Source::start().await;
    let f = Fleet::local("tables-refresh");
    let first = serve_mta_weeks(&src, 2, 300, 130, &[]);
    let w = f.worker(&[]);
    w.ready().await;
    let out = f.backfill_mta(&src, week(0), week(1), &[]);
    assert_eq!(wait_finished(&f, &out, Duration::from_secs(30)).await.done, 2);
    let (changed, _) = mta_week(week(1), 450, 131);
    src.put(&mta_name(week(1)), changed);
    let out = f.backfill_mta(&src, week(0), week(1), &["--refresh"]);
    let s = wait_finished(&f, &out, Duration::from_secs(30)).await;
    assert_eq!((s.done, s.parked.len()), (2, 0), "{s:?}");

    let dir = f.lake_dir.clone().unwrap();
    let entries = log_entries(&dir, "mta-turnstile");
    assert_eq!(entries.len(), 3, "two loads and one refresh");
    let (_, refresh) = &entries[2];
    assert_eq!((count(refresh, "remove"), count(refresh, "add")), (1, 1));
    let removed = refresh.iter().find_map(|a| a.get("remove")).unwrap()["path"].as_str().unwrap().to_string();
    assert!(first[1].0.ends_with(&removed), "{removed}");
    assert_eq!(refresh.iter().find_map(|a| a.get("txn")).unwrap()["version"], 2);
    let path = dir.join("mta-turnstile");
    let path = path.to_str().unwrap();
    let latest = deltalake_read(path, None);
    assert!(latest.starts_with(&format!("{} ", first[0].1 + 450)) && latest.ends_with(" 2 2"), "{latest}");
    let before = deltalake_read(path, Some(1));
    assert!(before.starts_with(&format!("{} ", first[0].1 + first[1].1)) && before.ends_with(" 2 1"), "{before}");

    // Vacuum: within the default retention (7 days) nothing goes; past it,
    // only the replaced object (plus one never committed, as a worker that
    // died between its write and its commit leaves).
    let orphan = dir.join("mta-turnstile/year=2022/mta-turnstile_2099-01-01.parquet");
    std::fs::write(&orphan, b"never committed").unwrap();
    let out = f.producer(&["vacuum", "--dataset", "mta-turnstile"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("deleted 0 object(s)") && stdout(&out).contains("kept 2"), "{}", stdout(&out));
    // A retention shorter than a worker may hold an upload before its
    // commit is refused, naming that time.
    let out = f.producer(&["vacuum", "--dataset", "mta-turnstile", "--older-than", "0s"]);
    assert_eq!(out.status.code(), Some(2), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("shorter than the longest a worker may hold an uploaded object before its commit (2h"),
        "{}",
        stderr(&out)
    );
    // Three hours later (the objects and the refresh's commit aged by hand):
    let mut aged = vec![orphan.clone(), dir.join(&first[1].0)];
    aged.extend((0..3).map(|v| dir.join(log_key("mta-turnstile", v))));
    for p in &aged {
        let ok = std::process::Command::new("touch").args(["-d", "3 hours ago"]).arg(p).status().unwrap();
        assert!(ok.success());
    }
    let out = f.producer(&["vacuum", "--dataset", "mta-turnstile", "--older-than", "2h", "--dry-run"]);
    assert!(stdout(&out).contains("would delete 2 object(s)"), "{}", stdout(&out));
    assert_eq!(f.objects().await.len(), 4, "a dry run deletes nothing");
    let out = f.producer(&["vacuum", "--dataset", "mta-turnstile", "--older-than", "2h"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains(&format!("deleted {}", first[1].0)), "{}", stdout(&out));
    assert!(stdout(&out).contains("deleted 2 object(s)"), "{}", stdout(&out));
    let left: Vec<String> = f.objects().await.into_iter().map(|(k, _)| k).collect();
    assert_eq!(left, vec![first[0].0.clone(), first[1].0.replace(".parquet", ".2.parquet")]);
    assert_eq!(deltalake_read(path, None), latest, "the latest version reads as before");
    let bad = f.producer(&["vacuum", "--dataset", "mta-turnstile", "--older-than", "7 days"]);
    assert_eq!(bad.status.code(), Some(2));
    f.cleanup().await;
}

/// Many committers racing: 8 tasks at once, two for each of 4 partitions,
/// each with a snapshot of its own (as separate workers have).
async fn race(lake: lakefleet::lake::Lake) -> Vec<(u64, Vec<serde_json::Value>)> {
    let cat = lakefleet::catalog::Catalog::builtin();
    let ds = Arc::new(cat.get("mta-turnstile").unwrap().clone());
    let lake = Arc::new(lake);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..8u64 {
        let (ds, lake) = (ds.clone(), lake.clone());
        tasks.spawn(async move {
            let date = week(i % 4);
            let c = PartitionCommit {
                partition: date.to_string(),
                key: ds.object_key(date),
                size: 1000 + i % 4,
                rows: 10,
                generation: 1,
                year: chrono::Datelike::year(&date),
                stats: None,
            };
            let mut snap = Snapshot::default();
            Table::new(&lake, &ds).commit(&mut snap, &c).await.unwrap()
        });
    }
    let mut written = 0;
    while let Some(r) = tasks.join_next().await {
        if let Committed::Written { .. } = r.unwrap() {
            written += 1;
        }
    }
    assert_eq!(written, 4, "one commit per partition");
    let mut out = Vec::new();
    for v in 0.. {
        let Some(b) = lake.get_opt(&log_key("mta-turnstile", v)).await.unwrap() else { break };
        let text = String::from_utf8(b.to_vec()).unwrap();
        out.push((v, text.lines().map(|l| serde_json::from_str(l).unwrap()).collect()));
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn racing_committers_make_one_add_per_partition_on_a_local_folder_and_on_s3() {
    let dir = tmpdir("tables-race");
    let s3 = S3Server::start().await;
    let s3_lake =
        lakefleet::lake::Lake::open_s3_with(&format!("s3://{}/race", s3.bucket), &s3.endpoint, "testing", "testing")
            .unwrap();
    for (name, lake) in [
        (
            "local",
            lakefleet::lake::Lake::open(&lakefleet::lake::LakeUrl::parse(dir.to_str().unwrap()).unwrap()).unwrap(),
        ),
        ("s3", s3_lake),
    ] {
        let entries = race(lake).await;
        assert_eq!(entries.len(), 4, "{name}: four versions");
        let adds: usize = entries.iter().map(|(_, a)| count(a, "add")).sum();
        assert_eq!(adds, 4, "{name}");
        let mut parts: Vec<String> = entries
            .iter()
            .flat_map(|(_, a)| a.iter().filter_map(|x| x.get("txn")).map(|t| t["appId"].as_str().unwrap().to_string()))
            .collect();
        parts.sort();
        parts.dedup();
        assert_eq!(parts.len(), 4, "{name}: {parts:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn checkpoints_bound_the_log_and_every_reader_reads_through_them() {
    let src = Source::start().await;
    let f = Fleet::local("tables-ckpt").with_catalog(&mta_catalog("mta-ckpt", "checkpoint_interval = 5"));
    let expect = serve_mta_weeks(&src, 12, 100, 140, &[]);
    let w = f.worker(&["--concurrency", "4"]);
    w.ready().await;
    let out = f.backfill("mta-ckpt", &week(0).to_string(), &week(11).to_string(), &["--mirror", &src.base]);
    let s = wait_finished(&f, &out, Duration::from_secs(60)).await;
    assert_eq!((s.done, s.parked.len()), (12, 0), "{s:?}");
    let dir = f.lake_dir.clone().unwrap();
    let log = dir.join("mta-ckpt/_delta_log");
    let last: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(log.join("_last_checkpoint")).unwrap()).unwrap();
    assert_eq!(last["version"], 10, "{last}");
    assert!(dir.join(checkpoint_key("mta-ckpt", 5)).exists());
    assert!(dir.join(checkpoint_key("mta-ckpt", 10)).exists());
    // The commits the checkpoint covers go (as a log cleanup would): every
    // reader must find the table whole in the checkpoint and version 11.
    for v in 0..=10 {
        std::fs::remove_file(dir.join(log_key("mta-ckpt", v))).unwrap();
    }
    let total_rows: usize = expect.iter().map(|(_, n, _)| n).sum();
    let path = dir.join("mta-ckpt");
    let read = deltalake_read(path.to_str().unwrap(), None);
    assert!(read.starts_with(&format!("{total_rows} ")) && read.ends_with(" 12 11"), "{read}");
    assert!(duckdb_read(path.to_str().unwrap()).starts_with(&format!("{total_rows} ")));
    let cat = lakefleet::catalog::Catalog::with_file(std::path::Path::new(
        &f.env.iter().find(|(k, _)| k == "LAKEFLEET_CATALOG").unwrap().1,
    ))
    .unwrap();
    let lake = f.lake();
    let table = Table::new(&lake, cat.get("mta-ckpt").unwrap());
    let snap = table.snapshot().await.unwrap();
    assert_eq!((snap.version, snap.files.len(), snap.rows()), (Some(11), 12, total_rows as u64));
    for i in 0..12 {
        assert_eq!(table.generation(&snap, &week(i).to_string()).await.unwrap(), 1, "week {i} through the checkpoint");
    }
    // A new worker (no view of the log yet) skips what the table holds.
    f.forget_redis().await;
    let w2 = f.worker(&[]);
    w2.ready().await;
    let again =
        f.backfill("mta-ckpt", &week(0).to_string(), &week(11).to_string(), &["--mirror", &src.base, "--force"]);
    let s = wait_finished(&f, &again, Duration::from_secs(60)).await;
    assert_eq!((s.done, s.parked.len()), (12, 0), "{s:?}");
    assert_eq!(metric(&w2.metrics().await, "lakefleet_uploads_total", &[("result", "written")]), 0.0);
    f.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lake_written_without_tables_becomes_a_table_with_one_command() {
    let src = Source::start().await;
    let f = Fleet::local("tables-init");
    let expect = serve_mta_weeks(&src, 5, 150, 150, &[]);
    let plain = f.worker(&["--no-tables"]);
    plain.ready().await;
    let out = f.backfill_mta(&src, week(0), week(4), &[]);
    assert_eq!(wait_finished(&f, &out, Duration::from_secs(60)).await.done, 5);
    let dir = f.lake_dir.clone().unwrap();
    assert!(!dir.join("mta-turnstile/_delta_log").exists(), "--no-tables writes plain files");
    drop(plain);

    let out = f.producer(&["table", "init", "--dataset", "mta-turnstile"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let total: usize = expect.iter().map(|(_, n, _)| n).sum();
    assert!(
        stdout(&out)
            .contains(&format!("version 0 committed from the folder's objects (5 partition file(s), {total} rows")),
        "{}",
        stdout(&out)
    );
    let again = f.producer(&["table", "init", "--dataset", "mta-turnstile"]);
    assert_eq!(again.status.code(), Some(0));
    assert!(stdout(&again).contains("nothing to add"), "{}", stdout(&again));
    assert_eq!(log_entries(&dir, "mta-turnstile").len(), 1, "idempotent: one commit");
    let path = dir.join("mta-turnstile");
    let read = deltalake_read(path.to_str().unwrap(), None);
    assert!(read.starts_with(&format!("{total} ")) && read.ends_with(" 5 0"), "{read}");

    // Workers with tables now skip what the table holds, even when Redis forgot it.
    f.forget_redis().await;
    let w = f.worker(&[]);
    w.ready().await;
    let out = f.backfill_mta(&src, week(0), week(4), &["--force"]);
    assert_eq!(wait_finished(&f, &out, Duration::from_secs(60)).await.done, 5);
    assert_eq!(metric(&w.metrics().await, "lakefleet_uploads_total", &[("result", "written")]), 0.0);
    let empty = f.producer(&["table", "init", "--dataset", "nyc-tlc-fhv"]);
    assert_eq!(empty.status.code(), Some(2), "{}", stdout(&empty));
    oracle(&f, &expect, &[]).await;
    f.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lake_on_gcs_is_a_table_committed_once_through_the_xml_api() {
    let gcs = lakefleet_testkit::gcs::Gcs::start().await;
    let src = Source::start().await;
    let mut f = Fleet::local("gcs");
    if let Some(d) = f.lake_dir.take() {
        let _ = std::fs::remove_dir_all(d);
    }
    f.lake_url = format!("gs://{}/lake", gcs.bucket);
    f.env = gcs.env();
    let expect = serve_mta_weeks(&src, 4, 300, 160, &[]);
    // One worker's objects go up as multipart uploads, the other's as single PUTs.
    let workers = [f.worker(&[]), f.worker(&["--single-put-max", "1000"])];
    for w in &workers {
        w.ready().await;
    }
    let out = f.backfill_mta(&src, week(0), week(3), &[]);
    let s = wait_finished(&f, &out, Duration::from_secs(60)).await;
    assert_eq!((s.done, s.parked.len()), (4, 0), "{s:?}");
    oracle(&f, &expect, &[]).await;
    let lake = f.lake();
    let cat = lakefleet::catalog::Catalog::builtin();
    let snap = Table::new(&lake, cat.get("mta-turnstile").unwrap()).snapshot().await.unwrap();
    let total: usize = expect.iter().map(|(_, n, _)| n).sum();
    assert_eq!((snap.version, snap.files.len(), snap.rows()), (Some(3), 4, total as u64));
    assert!(
        gcs.names("lake/mta-turnstile/_delta_log/").iter().filter(|n| n.ends_with(".json")).count() == 4,
        "{:?}",
        gcs.names("lake/")
    );

    // Racing committers on GCS: the create-if-absent (generation-match 0) decides.
    let refused = gcs.refused_creates();
    let entries = race(
        lakefleet::lake::Lake::open_gcs_with(&format!("gs://{}/race", gcs.bucket), &gcs.base, "test-token").unwrap(),
    )
    .await;
    assert_eq!(entries.len(), 4);
    assert_eq!(entries.iter().map(|(_, a)| count(a, "add")).sum::<usize>(), 4);
    eprintln!("conditional creates refused on the fake GCS: {}", gcs.refused_creates() - refused);
    f.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_killed_between_its_write_and_its_commit_leaves_each_partition_once() {
    let src = Source::start().await;
    let mut f = Fleet::local("tables-kill");
    let expect = serve_mta_weeks(&src, 2, 200, 170, &[]);
    // Worker A uploads, then pauses before committing: it is killed there.
    f.env.push(("LAKEFLEET_TEST_PAUSE_BEFORE_COMMIT_MS".into(), "60000".into()));
    let mut a = f.worker(&[]);
    f.env.pop();
    a.ready().await;
    let out = f.backfill_mta(&src, week(0), week(1), &[]);
    let dir = f.lake_dir.clone().unwrap();
    eventually(Duration::from_secs(30), "both objects written, nothing committed", || {
        let paused = a.log().matches("pausing before the commit").count();
        async move { paused == 2 }
    })
    .await;
    assert_eq!(f.objects().await.len(), 2);
    assert!(!dir.join("mta-turnstile/_delta_log").exists(), "nothing committed yet");
    a.kill9();
    // Worker B gets the deliveries again: the objects are there, the table
    // does not record them; it verifies them and commits each once.
    let b = f.worker(&[]);
    b.ready().await;
    let s = wait_finished(&f, &out, Duration::from_secs(60)).await;
    assert_eq!((s.done, s.parked.len()), (2, 0), "{s:?}");
    let entries = log_entries(&dir, "mta-turnstile");
    assert_eq!(entries.len(), 2);
    assert_eq!(entries.iter().map(|(_, a)| count(a, "add")).sum::<usize>(), 2);
    let m = b.metrics().await;
    assert_eq!(metric(&m, "lakefleet_uploads_total", &[("result", "already_present")]), 2.0);
    assert_eq!(metric(&m, "lakefleet_table_commits_total", &[("outcome", "committed")]), 2.0);
    oracle(&f, &expect, &[]).await;
    f.cleanup().await;
}

fn counts_catalog(columns: &str) -> String {
    format!(
        "[[dataset]]\nname = \"counts\"\ncadence = \"monthly\"\nurl_template = \"http://example.org/counts_{{yyyy}}-{{mm}}.csv\"\nfirst = \"2020-01-01\"\ncolumns = [ {columns} ]\n"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn an_added_column_is_a_metadata_commit_and_a_retyped_one_is_refused_naming_it() {
    let src = Source::start().await;
    let v1 = r#"{ source = "station", type = "string" }, { source = "entries", type = "int64" }"#;
    let v2 = format!(r#"{v1}, {{ source = "exits", type = "int64" }}"#);
    let v3 = r#"{ source = "station", type = "string" }, { source = "entries", type = "float64" }, { source = "exits", type = "int64" }"#;
    let f = Fleet::local("tables-schema").with_catalog(&counts_catalog(v1));
    let catalog = f.env.iter().find(|(k, _)| k == "LAKEFLEET_CATALOG").unwrap().1.clone();
    src.put("counts_2020-01.csv", b"station,entries\nA,1\nB,2\nC,3\n".to_vec());
    src.put("counts_2020-02.csv", b"station,entries,exits\nA,4,40\nB,5,50\n".to_vec());
    src.put("counts_2020-03.csv", b"station,entries,exits\nA,6,60\n".to_vec());
    let month = |m: &str, w: &WorkerProc| {
        let out = f.backfill("counts", &format!("2020-{m}-01"), &format!("2020-{m}-01"), &["--mirror", &src.base]);
        assert_eq!(out.status.code(), Some(0), "{}", w.log());
        out
    };
    let mut w = f.worker(&[]);
    w.ready().await;
    let out = month("01", &w);
    assert_eq!(wait_finished(&f, &out, Duration::from_secs(30)).await.done, 1);
    w.kill9();

    // The catalog gains a nullable column: the next commit carries the new schema.
    std::fs::write(&catalog, counts_catalog(&v2)).unwrap();
    let mut w = f.worker(&[]);
    w.ready().await;
    let out = month("02", &w);
    let s = wait_finished(&f, &out, Duration::from_secs(30)).await;
    assert_eq!((s.done, s.parked.len()), (1, 0), "{s:?}");
    let dir = f.lake_dir.clone().unwrap();
    let entries = log_entries(&dir, "counts");
    assert_eq!(entries.len(), 2);
    let meta = entries[1].1.iter().find_map(|a| a.get("metaData")).expect("a metadata commit");
    assert!(meta["schemaString"].as_str().unwrap().contains("\"exits\""), "{meta}");
    let path = dir.join("counts");
    let read = python(
        "import sys\nfrom deltalake import DeltaTable\nt = DeltaTable(sys.argv[1]).to_pyarrow_table()\nprint(t.num_rows, t['exits'].null_count, sorted(t.column_names))",
        &[path.to_str().unwrap()],
    );
    assert_eq!(read, "5 3 ['_lakefleet_partition', 'entries', 'exits', 'station', 'year']");
    w.kill9();

    // A column retyped in a way the old files cannot satisfy is refused.
    std::fs::write(&catalog, counts_catalog(v3)).unwrap();
    let w = f.worker(&[]);
    w.ready().await;
    let out = month("03", &w);
    let s = wait_finished(&f, &out, Duration::from_secs(30)).await;
    assert_eq!((s.done, s.parked.len()), (0, 1), "{s:?}");
    let parked = f.parked().await;
    assert_eq!(parked[0].reason, "schema_mismatch", "{parked:?}");
    assert!(
        parked[0].error.contains("column entries is double in the catalog but long in the table's files"),
        "{parked:?}"
    );
    assert_eq!(log_entries(&dir, "counts").len(), 2, "nothing committed");
    f.cleanup().await;
}
