//! End to end: producer -> RabbitMQ -> workers -> lake, checked in the lake.

use std::time::Duration;

use arrow_array::cast::AsArray;
use arrow_schema::{DataType, TimeUnit};
use chrono::NaiveDate;

use lakefleet_testkit::*;

/// Serves `weeks` generated MTA files; returns (name, bytes, sum of entries) per week.
fn serve_weeks(src: &Source, first: NaiveDate, weeks: usize, rows: usize) -> Vec<(NaiveDate, Vec<u8>, i64)> {
    (0..weeks)
        .map(|i| {
            let week = first + chrono::Days::new(7 * i as u64);
            let (bytes, sum) = mta_week(week, rows, 1000 + i as u64);
            src.put(&mta_name(week), bytes.clone());
            (week, bytes, sum)
        })
        .collect()
}

/// Every planned week is in the lake exactly once, with the source's rows,
/// schema, values and metadata; nothing else is there.
async fn assert_lake_holds(f: &Fleet, src: &Source, weeks: &[(NaiveDate, Vec<u8>, i64)], want_rows: usize) {
    let objects = f.objects().await;
    let mut expected_keys: Vec<String> = weeks.iter().map(|(w, _, _)| mta_key(*w)).collect();
    expected_keys.sort();
    let keys: Vec<String> = objects.iter().map(|(k, _)| k.clone()).collect();
    assert_eq!(keys, expected_keys, "exactly one object per partition, nothing else");
    for (week, bytes, sum) in weeks {
        let key = mta_key(*week);
        let (batches, kv) = read_parquet(f.read_object(&key).await);
        assert_eq!(rows(&batches), want_rows, "{key}");
        assert_eq!(sum_i64(&batches, "entries"), *sum, "{key}");
        let schema = batches[0].schema();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        assert_eq!(
            names,
            [
                "ca",
                "unit",
                "scp",
                "station",
                "linename",
                "division",
                "date",
                "time",
                "desc",
                "entries",
                "exits",
                "observed_at",
                "_lakefleet_partition"
            ]
        );
        // Every row names its partition (the week), so a refresh finds them
        // in files another tool compacted.
        let lineage: Vec<Option<i32>> = batches
            .iter()
            .flat_map(|b| {
                let c = b.column_by_name("_lakefleet_partition").unwrap();
                c.as_any().downcast_ref::<arrow_array::Date32Array>().unwrap().iter().collect::<Vec<_>>()
            })
            .collect();
        let day = (*week - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()).num_days() as i32;
        assert!(lineage.len() == want_rows && lineage.iter().all(|d| *d == Some(day)), "{key}");
        assert_eq!(schema.field_with_name("entries").unwrap().data_type(), &DataType::Int64);
        assert_eq!(schema.field_with_name("date").unwrap().data_type(), &DataType::Date32);
        assert_eq!(schema.field_with_name("linename").unwrap().data_type(), &DataType::Utf8);
        assert_eq!(
            schema.field_with_name("observed_at").unwrap().data_type(),
            &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );
        assert_eq!(kv["lakefleet.source_url"], format!("{}/{}", src.base, mta_name(*week)));
        assert_eq!(kv["lakefleet.source_sha256"], sha256_hex(bytes));
        assert_eq!(kv["lakefleet.rows"], want_rows.to_string());
        assert_eq!(kv["lakefleet.schema_version"], "1");
        assert_eq!(kv["lakefleet.version"], lakefleet::VERSION);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn two_workers_backfill_into_a_local_lake_and_a_repeat_writes_nothing() {
    let src = Source::start().await;
    let f = Fleet::local("e2e-local");
    let first = NaiveDate::from_ymd_opt(2022, 1, 1).unwrap();
    let weeks = serve_weeks(&src, first, 6, 3000);
    let w1 = f.worker(&[]);
    let w2 = f.worker(&[]);
    w1.ready().await;
    w2.ready().await;
    let out = f.backfill_mta(&src, d("2022-01-01"), d("2022-02-06"), &["--wait", "--wait-timeout", "120"]);
    assert_eq!(out.status.code(), Some(0), "{}", w1.log());
    assert!(stdout(&out).contains("planned 6, done 6"), "{}", stdout(&out));
    assert_lake_holds(&f, &src, &weeks, 3000).await;

    // Values survive: a station with '/', '.' and quotes; digits-only line names stay text.
    let key = "mta-turnstile/year=2022/mta-turnstile_2022-01-01.parquet";
    let (batches, _) = read_parquet(f.read_object(key).await);
    let b = &batches[0];
    let stations: Vec<String> =
        b.column_by_name("station").unwrap().as_string::<i32>().iter().flatten().map(String::from).collect();
    assert!(
        stations.iter().any(|s| s == "B'WAY-LAFAYETTE")
            && stations.iter().any(|s| s == "ST. GEORGE")
            && stations.iter().any(|s| s == "LEXINGTON AV/53")
    );
    let lines: Vec<&str> = b.column_by_name("linename").unwrap().as_string::<i32>().iter().flatten().collect();
    assert!(lines.contains(&"456") && lines.contains(&"1"));
    let descs: Vec<&str> = b.column_by_name("desc").unwrap().as_string::<i32>().iter().flatten().collect();
    assert!(descs.contains(&"RECOVR AUD"));
    // Row 0 of the generator: 2021-12-26 (six days before the Saturday) at 00:00:00.
    let obs = ny_wall_millis(b.column_by_name("observed_at").unwrap())[0].unwrap();
    assert_eq!(lakefleet::util::timefmt::millis_to_string(obs), "2021-12-26 00:00:00");

    let before = f.objects().await;
    let mtimes: Vec<_> = before
        .iter()
        .map(|(k, _)| std::fs::metadata(f.lake_dir.as_ref().unwrap().join(k)).unwrap().modified().unwrap())
        .collect();
    let written = |m: &str| metric(m, "lakefleet_uploads_total", &[("result", "written")]);
    let written_before = written(&w1.metrics().await) + written(&w2.metrics().await);
    assert_eq!(written_before, 6.0);

    // The same backfill again, forced so that the tasks really are delivered twice.
    let out = f.backfill_mta(&src, d("2022-01-01"), d("2022-02-06"), &["--force", "--wait", "--wait-timeout", "60"]);
    assert_eq!(out.status.code(), Some(0));
    let (m1, m2) = (w1.metrics().await, w2.metrics().await);
    assert_eq!(written(&m1) + written(&m2), 6.0, "no second upload");
    let skipped = metric(&m1, "lakefleet_tasks_total", &[("outcome", "skipped_duplicate")])
        + metric(&m2, "lakefleet_tasks_total", &[("outcome", "skipped_duplicate")]);
    assert_eq!(skipped, 6.0);
    assert_eq!(f.objects().await, before, "the lake is unchanged");
    let mtimes_after: Vec<_> = before
        .iter()
        .map(|(k, _)| std::fs::metadata(f.lake_dir.as_ref().unwrap().join(k)).unwrap().modified().unwrap())
        .collect();
    assert_eq!(mtimes, mtimes_after);
    let succeeded = metric(&m1, "lakefleet_tasks_total", &[("outcome", "succeeded")])
        + metric(&m2, "lakefleet_tasks_total", &[("outcome", "succeeded")]);
    assert_eq!(succeeded, 6.0);
    assert!(
        metric(&m1, "lakefleet_rows_written_total", &[("dataset", "mta-turnstile")])
            + metric(&m2, "lakefleet_rows_written_total", &[("dataset", "mta-turnstile")])
            == 18000.0
    );
    f.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn large_objects_go_up_as_completed_multipart_uploads() {
    let s3 = S3Server::start().await;
    let src = Source::start().await;
    let f = Fleet::s3("e2e-multipart", &s3);
    let weeks = serve_weeks(&src, NaiveDate::from_ymd_opt(2022, 1, 1).unwrap(), 2, 3000);
    // Every object is above the threshold: multipart for all.
    let w = f.worker(&["--single-put-max", "1000"]);
    w.ready().await;
    let out = f.backfill_mta(&src, d("2022-01-01"), d("2022-01-08"), &["--wait", "--wait-timeout", "60"]);
    assert_eq!(out.status.code(), Some(0), "{}", w.log());
    assert_lake_holds(&f, &src, &weeks, 3000).await;
    for (key, _) in f.objects().await {
        // S3 gives multipart objects an ETag ending in "-<parts>".
        let etag = f.lake().head(&key).await.unwrap().unwrap().e_tag.unwrap_or_default();
        assert!(etag.trim_matches('"').ends_with("-1"), "{key} was not a multipart upload: ETag {etag}");
    }
    // Delivered again after Redis forgot it: the table records both weeks, nothing is rewritten.
    f.forget_redis().await;
    let out = f.backfill_mta(&src, d("2022-01-01"), d("2022-01-08"), &["--wait", "--wait-timeout", "60"]);
    assert_eq!(out.status.code(), Some(0));
    let m = w.metrics().await;
    assert_eq!(metric(&m, "lakefleet_uploads_total", &[("result", "written")]), 2.0);
    assert_eq!(metric(&m, "lakefleet_table_commits_total", &[("outcome", "committed")]), 2.0);
    assert_lake_holds(&f, &src, &weeks, 3000).await;
    f.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn backfill_into_an_s3_compatible_lake() {
    let s3 = S3Server::start().await;
    let src = Source::start().await;
    let f = Fleet::s3("e2e-s3", &s3);
    let weeks = serve_weeks(&src, NaiveDate::from_ymd_opt(2021, 12, 25).unwrap(), 3, 2000);
    let w = f.worker(&[]);
    w.ready().await;
    let out = f.backfill_mta(&src, d("2021-12-25"), d("2022-01-08"), &["--wait", "--wait-timeout", "120"]);
    assert_eq!(out.status.code(), Some(0), "{}", w.log());
    assert_lake_holds(&f, &src, &weeks, 2000).await;
    // The year partition follows the partition date across the year boundary.
    let keys: Vec<String> = f.objects().await.into_iter().map(|(k, _)| k).collect();
    assert!(keys.contains(&"mta-turnstile/year=2021/mta-turnstile_2021-12-25.parquet".to_string()), "{keys:?}");
    f.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_malformed_row_fails_the_task_with_its_line_and_leaves_no_object() {
    let src = Source::start().await;
    let f = Fleet::local("badrow");
    let week = NaiveDate::from_ymd_opt(2022, 1, 8).unwrap();
    let (bytes, _) = mta_week(week, 20, 7);
    let text = String::from_utf8(bytes).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    // Line 5 of the file (the header is line 1): ENTRIES becomes "12x34".
    let mut fields: Vec<&str> = lines[4].split(',').collect();
    fields[9] = "12x34";
    lines[4] = fields.join(",");
    let text = lines.join("\n") + "\n";
    src.put(&mta_name(week), text.into_bytes());
    let w = f.worker(&[]);
    w.ready().await;
    let out = f.backfill_mta(&src, d("2022-01-08"), d("2022-01-08"), &["--wait", "--wait-timeout", "60"]);
    assert_eq!(out.status.code(), Some(1), "a parked partition fails --wait");
    let text = stdout(&out);
    assert!(text.contains("bad_row") && text.contains("line 5") && text.contains("entries"), "{text}");
    assert!(f.objects().await.is_empty(), "no object in the lake");
    let parked = f.drain(&f.topology().parking).await;
    assert_eq!(parked.len(), 1);
    let h = parked[0].properties.headers().as_ref();
    assert_eq!(lakefleet::rabbitmq::topology::header_str(h, "x-lakefleet-reason").as_deref(), Some("bad_row"));
    let err = lakefleet::rabbitmq::topology::header_str(h, "x-lakefleet-error").unwrap();
    assert!(err.contains("turnstile_220108.txt: line 5, column 10 (entries)") && err.contains("12x34"), "{err}");
    f.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_mid_task_returns_it_and_another_worker_completes_the_backfill() {
    let src = Source::start().await;
    let f = Fleet::local("sigterm");
    let weeks = serve_weeks(&src, NaiveDate::from_ymd_opt(2022, 1, 1).unwrap(), 3, 2000);
    for (w, _, _) in &weeks {
        src.fault(&mta_name(*w), &[Fault::Slow(20, Duration::from_secs(4))]);
    }
    let mut a = f.worker(&["--shutdown-grace", "1", "--concurrency", "3"]);
    a.ready().await;
    let out = f.backfill_mta(&src, d("2022-01-01"), d("2022-01-15"), &[]);
    assert_eq!(out.status.code(), Some(0));
    wait_in_flight(&a, 3.0).await;
    assert_eq!(a.terminate(Duration::from_secs(15)), Some(0), "worker exits 0 after SIGTERM: {}", a.log());
    assert!(a.log().contains("handing the unfinished tasks back"), "{}", a.log());
    let b = f.worker(&[]);
    b.ready().await;
    let id = backfill_id(&out);
    let st = f.state().await;
    eventually(Duration::from_secs(60), "backfill complete", || {
        let (st, id) = (st.clone(), id.clone());
        async move { st.backfill(&id).await.unwrap().unwrap().finished() }
    })
    .await;
    assert_lake_holds(&f, &src, &weeks, 2000).await;
    assert_eq!(f.work_len().await, 0);
    f.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cancelled_backfill_stops_with_none_of_its_cancelled_partitions_in_the_lake() {
    let src = Source::start().await;
    let f = Fleet::local("cancel");
    // 50 weeks, each served slowly (about 150 ms), one task at a time.
    serve_mta_weeks(&src, 50, 200, 70, &[Fault::Slow(3, Duration::from_millis(150))]);
    let w = f.worker(&["--concurrency", "1"]);
    w.ready().await;
    let out = f.backfill_mta(&src, week(0), week(49), &[]);
    assert_eq!(out.status.code(), Some(0));
    let id = backfill_id(&out);
    eventually(Duration::from_secs(30), "three weeks in the lake", || async { f.objects().await.len() >= 3 }).await;
    let cancel = f.producer(&["cancel", &id]);
    assert_eq!(cancel.status.code(), Some(0));
    assert!(stdout(&cancel).contains(&format!("backfill {id} cancelled")), "{}", stdout(&cancel));
    let s = wait_finished(&f, &out, Duration::from_secs(30)).await;
    assert!(s.cancelled >= 40, "most of the 50 were still queued: {s:?}");
    assert_eq!((s.done + s.cancelled, s.parked.len()), (50, 0), "{s:?}");
    // The lake holds exactly the partitions done before the cancel (and the one in flight).
    assert_eq!(f.objects().await.len() as u64, s.done, "no cancelled partition is in the lake");
    let m = w.metrics().await;
    assert_eq!(metric(&m, "lakefleet_tasks_total", &[("outcome", "cancelled")]), s.cancelled as f64);
    let status = f.producer(&["status"]);
    assert!(stdout(&status).contains("[cancelled]"), "{}", stdout(&status));
    assert!(stdout(&status).contains(&format!("cancelled {}", s.cancelled)), "{}", stdout(&status));
    assert_eq!(f.work_len().await, 0);
    let unknown = f.producer(&["cancel", "bf-nope"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(stderr(&unknown).contains("no backfill \"bf-nope\""), "{}", stderr(&unknown));
    f.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn refresh_replaces_a_changed_source_and_does_not_download_unchanged_ones() {
    let Landed { src, f, w, expect: first } = landed("refresh", 3, 300, 90).await;
    let before = f.objects().await;
    let (_, kv) = read_parquet(f.read_object(&first[0].0).await);
    assert!(kv["lakefleet.source_etag"].starts_with('"'), "the ETag is recorded: {kv:?}");

    // The MTA republishes week 1 with more rows.
    let (changed, _) = mta_week(week(1), 450, 91);
    src.put(&mta_name(week(1)), changed.clone());
    let out = f.backfill_mta(&src, week(0), week(2), &["--refresh"]);
    assert_eq!(out.status.code(), Some(0));
    let s = wait_finished(&f, &out, Duration::from_secs(30)).await;
    assert_eq!((s.done, s.skipped, s.parked.len()), (3, 2, 0), "{s:?}");

    // Weeks 0 and 2 were asked with If-None-Match and answered 304; week 1 with 200.
    let mut cond = src.conditional();
    cond.sort();
    let names: Vec<String> = (0..3).map(|i| mta_name(week(i))).collect();
    assert_eq!(cond, vec![(names[0].clone(), 304), (names[1].clone(), 200), (names[2].clone(), 304)]);
    assert_eq!(src.hits(&names[0]).len(), 2, "asked twice, downloaded once");
    // Week 1's second generation is a new object with the new rows (the
    // table commits it in place of the first, which stays for readers of
    // earlier versions until a vacuum); the others are untouched.
    let second = first[1].0.replace(".parquet", ".2.parquet");
    let (batches, kv) = read_parquet(f.read_object(&second).await);
    assert_eq!(rows(&batches), 450);
    assert_eq!(kv["lakefleet.source_sha256"], sha256_hex(&changed));
    let after = f.objects().await;
    assert_eq!(after.len(), 4, "{after:?}");
    assert!(before.iter().all(|o| after.contains(o)), "the first generation is still there: {after:?}");
    assert!(after.iter().any(|(k, _)| *k == second), "{after:?}");
    let m = w.metrics().await;
    assert_eq!(metric(&m, "lakefleet_sources_changed_total", &[("dataset", "mta-turnstile")]), 1.0);
    let log = w.log();
    let line = log.lines().find(|l| l.contains("the source changed")).expect("the change is logged");
    assert!(line.contains(&first[1].2) && line.contains(&sha256_hex(&changed)), "old and new checksums: {line}");
    f.cleanup().await;
}
