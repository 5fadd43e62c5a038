//! The fleet under everyday races (issue 26): each case is a sequence an
//! operator met, on the real RabbitMQ and Redis with sources on loopback.

use std::time::Duration;

use lakefleet_testkit::*;

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_without_tables_refuses_a_dataset_whose_folder_is_a_table_and_writes_nothing() {
    let Landed { src, f, mut w, expect } = landed("races-no-tables", 2, 150, 400).await;
    w.kill9();
    let before = f.objects().await;

    // The only worker left was started without tables; a refresh lands on it.
    let plain = f.worker(&["--no-tables"]);
    plain.ready().await;
    let (changed, _) = mta_week(week(1), 170, 401);
    src.put(&mta_name(week(1)), changed);
    let out = f.backfill_mta(&src, week(0), week(1), &["--refresh"]);
    let s = wait_finished(&f, &out, Duration::from_secs(60)).await;
    assert_eq!(s.parked.len(), 2, "both weeks refused before anything is read: {s:?}");
    let parked = f.parked().await;
    assert!(parked.iter().all(|p| p.reason == "table_unsupported"), "{parked:?}");
    assert!(
        parked[0]
            .error
            .contains("is a Delta table, and this worker writes plain files (it was started with --no-tables)"),
        "{}",
        parked[0].error
    );
    assert_eq!(f.objects().await, before, "nothing was written over the table's files");
    let path = f.lake_dir.clone().unwrap().join("mta-turnstile");
    let rows: usize = expect.iter().map(|(_, n, _)| n).sum();
    let read = deltalake_read(path.to_str().unwrap(), None);
    assert!(read.starts_with(&format!("{rows} ")) && read.ends_with(" 2 1"), "{read}");
    assert!(duckdb_read(path.to_str().unwrap()).starts_with(&format!("{rows} ")));
    f.cleanup().await;
}

/// `bytes` with the last digit of the first row's `entries` changed; the
/// change to the week's entries sum.
fn one_digit_changed(bytes: &[u8]) -> (Vec<u8>, i64) {
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    let mut lines: Vec<String> = text.lines().map(str::to_string).collect();
    let mut fields: Vec<String> = lines[1].split(',').map(str::to_string).collect();
    let entries: i64 = fields[9].parse().unwrap();
    let last = entries % 10;
    let changed = entries - last + (last + 1) % 10;
    fields[9] = format!("{:0width$}", changed, width = fields[9].len());
    lines[1] = fields.join(",");
    (format!("{}\n", lines.join("\n")).into_bytes(), changed - entries)
}

#[tokio::test(flavor = "multi_thread")]
async fn an_upload_left_uncommitted_is_adopted_only_when_it_holds_the_same_bytes() {
    let src = Source::start().await;
    let mut f = Fleet::local("races-adopt");
    let (first, sum) = mta_week(week(0), 200, 410);
    src.put(&mta_name(week(0)), first.clone());
    // Worker A uploads, then pauses before committing: it is killed there.
    f.env.push(("LAKEFLEET_TEST_PAUSE_BEFORE_COMMIT_MS".into(), "60000".into()));
    let mut a = f.worker(&[]);
    f.env.pop();
    a.ready().await;
    let out = f.backfill_mta(&src, week(0), week(0), &[]);
    eventually(Duration::from_secs(30), "the object written, nothing committed", || {
        let paused = a.log().contains("pausing before the commit");
        async move { paused }
    })
    .await;
    a.kill9();
    let old = f.objects().await;
    assert_eq!(old.len(), 1);
    // The week is republished with one digit changed before the redelivery.
    let (changed, delta) = one_digit_changed(&first);
    src.put(&mta_name(week(0)), changed);
    let b = f.worker(&[]);
    b.ready().await;
    let s = wait_finished(&f, &out, Duration::from_secs(60)).await;
    assert_eq!((s.done, s.parked.len()), (1, 0), "{s:?}");
    let m = b.metrics().await;
    assert_eq!(metric(&m, "lakefleet_uploads_total", &[("result", "written")]), 1.0, "replaced, not adopted");
    assert_eq!(metric(&m, "lakefleet_uploads_total", &[("result", "already_present")]), 0.0);
    let (batches, _) = read_parquet(f.read_object(&old[0].0).await);
    assert_eq!(sum_i64(&batches, "entries"), sum + delta, "the object holds the republished rows");
    let path = f.lake_dir.clone().unwrap().join("mta-turnstile");
    let read = deltalake_read(path.to_str().unwrap(), None);
    assert_eq!(read, format!("200 {} 1 0", sum + delta), "the table reads the republished rows");
    f.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn wait_exits_0_only_when_every_partition_is_done_and_a_finished_backfill_cannot_be_cancelled() {
    let src = Source::start().await;
    let f = Fleet::local("races-status");
    serve_mta_weeks(&src, 12, 100, 420, &[Fault::Slow(3, Duration::from_millis(150))]);
    let w = f.worker(&["--concurrency", "1"]);
    w.ready().await;
    // A backfill followed with --wait, cancelled while most weeks are queued.
    let waiting = f.backfill_mta_spawn(&src, week(0), week(11), &["--wait"]);
    eventually(Duration::from_secs(30), "a week in the lake", || async { !f.objects().await.is_empty() }).await;
    let id = {
        let st = f.state().await;
        st.recent_backfills(std::num::NonZeroUsize::new(1).unwrap()).await.unwrap().remove(0)
    };
    let cancel = f.producer(&["cancel", &id]);
    assert_eq!(cancel.status.code(), Some(0), "{}", stderr(&cancel));
    let out = waiting.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(1), "cancelled partitions are not done: {}", stdout(&out));
    assert!(stderr(&out).contains("partition(s) cancelled before they were loaded"), "{}", stderr(&out));

    // A backfill whose weeks all landed: cancel refuses and says so; it is listed done.
    let out = f.backfill_mta(&src, week(0), week(1), &["--refresh"]);
    let s = wait_finished(&f, &out, Duration::from_secs(60)).await;
    assert_eq!((s.done, s.parked.len()), (2, 0), "{s:?}");
    let id = backfill_id(&out);
    let late = f.producer(&["cancel", &id]);
    assert_eq!(late.status.code(), Some(2), "{}", stdout(&late));
    assert!(
        stderr(&late).contains(&format!("backfill {id} has finished (done 2, parked 0): nothing is left to cancel")),
        "{}",
        stderr(&late)
    );
    let status = f.producer(&["status"]);
    let line = stdout(&status).lines().find(|l| l.contains(&id)).unwrap().to_string();
    assert!(line.contains("[done]"), "{line}");
    f.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn nothing_strands_when_redis_forgets_a_backfill_and_a_retry_writes_its_counter_first() {
    let src = Source::start().await;
    let f = Fleet::local("races-redis");
    let expect = serve_mta_weeks(&src, 4, 100, 430, &[]);
    // The first week answers 429 once: its retry is the first thing Redis
    // hears of the backfill after forgetting it.
    src.fault(&mta_name(week(0)), &[Fault::Throttle(1)]);
    let out = f.backfill_mta(&src, week(0), week(3), &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let id = backfill_id(&out);
    f.forget_redis().await;
    let w = f.worker(&["--concurrency", "1"]);
    w.ready().await;
    eventually(Duration::from_secs(60), "every week in the lake", || async { f.objects().await.len() == 4 }).await;
    eventually(Duration::from_secs(30), "no task left in the queues", || async { f.work_len().await == 0 }).await;
    assert!(f.parked().await.is_empty(), "nothing parked for what Redis forgot: {:?}", f.parked().await);
    let status = f.producer(&["status", &id]);
    assert_eq!(status.status.code(), Some(0), "{}", stderr(&status));
    assert!(stdout(&status).contains("planned 4, done 4"), "status rebuilt from the lake: {}", stdout(&status));
    oracle(&f, &expect, &[]).await;
    f.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn rolling_restarts_hand_a_slow_task_back_within_the_grace_and_it_is_never_poison() {
    let src = Source::start().await;
    let f = Fleet::local("races-graceful");
    let expect = serve_mta_weeks(&src, 2, 100, 440, &[]);
    // Every download of the first week takes 8 s; the second is quick.
    let slow = Fault::Slow(16, Duration::from_secs(8));
    src.fault(&mta_name(week(0)), &[slow.clone(), slow.clone(), slow.clone(), slow]);
    let out = f.backfill_mta(&src, week(0), week(1), &[]);
    assert_eq!(out.status.code(), Some(0));
    // Three rolling restarts (SIGTERM) while the slow download runs, with
    // the default --poison-after 3.
    for restart in 0..3 {
        let mut w = f.worker(&["--shutdown-grace", "3", "--concurrency", "1"]);
        w.ready().await;
        wait_in_flight(&w, 1.0).await;
        let before = src.all_hits().len();
        let signalled = std::time::Instant::now();
        assert_eq!(w.terminate(Duration::from_secs(10)), Some(0), "restart {restart}: {}", w.log());
        let took = signalled.elapsed();
        assert!(took < Duration::from_millis(3500), "restart {restart}: exited {took:?} after SIGTERM (grace 3 s)");
        assert_eq!(src.all_hits().len(), before, "restart {restart}: no download started after the signal");
        assert!(w.log().contains("handed back to the work queue"), "restart {restart}: {}", w.log());
    }
    let w = f.worker(&[]);
    w.ready().await;
    let s = wait_finished(&f, &out, Duration::from_secs(60)).await;
    assert_eq!((s.done, s.parked.len()), (2, 0), "handed-back deliveries are not poison: {s:?}");
    assert!(f.parked().await.is_empty());
    oracle(&f, &expect, &[]).await;
    f.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refreshed_week_is_done_for_a_plain_backfill_and_is_not_published_again() {
    let Landed { src, f, w: _w, .. } = landed("races-after-refresh", 2, 100, 450).await;
    let (changed, _) = mta_week(week(1), 120, 451);
    src.put(&mta_name(week(1)), changed);
    let out = f.backfill_mta(&src, week(0), week(1), &["--refresh"]);
    assert_eq!(wait_finished(&f, &out, Duration::from_secs(60)).await.done, 2);
    let objects = f.objects().await;
    // A plain backfill: the refreshed week (its object is `.2.parquet`) is done.
    let dry = f.backfill_mta(&src, week(0), week(1), &["--dry-run"]);
    assert_eq!(stdout(&dry).matches("(skipped: already done)").count(), 2, "{}", stdout(&dry));
    let again = f.backfill_mta(&src, week(0), week(1), &[]);
    assert!(stdout(&again).contains("2 already done, 0 to publish"), "{}", stdout(&again));
    assert_eq!(f.objects().await, objects);
    f.cleanup().await;
}

/// A refresh asks the source with what the table's current generation was
/// made from (its object's footer), not with a done marker Redis may have
/// lost: after Redis forgot everything, an unchanged week is a 304 and the
/// table gets no new generation of the same bytes.
#[tokio::test(flavor = "multi_thread")]
async fn a_refresh_after_redis_forgot_asks_with_what_the_current_generation_was_made_from() {
    let Landed { src, f, w: _w, .. } = landed("races-refresh-validators", 2, 100, 470).await;
    let (changed, _) = mta_week(week(1), 130, 471);
    src.put(&mta_name(week(1)), changed);
    let out = f.backfill_mta(&src, week(0), week(1), &["--refresh"]);
    assert_eq!(wait_finished(&f, &out, Duration::from_secs(60)).await.done, 2);
    let objects = f.objects().await;
    let versions = log_entries(f.lake_dir.as_ref().unwrap(), "mta-turnstile").len();

    f.forget_redis().await;
    let out = f.backfill_mta(&src, week(0), week(1), &["--refresh"]);
    let s = wait_finished(&f, &out, Duration::from_secs(60)).await;
    assert_eq!((s.done, s.skipped, s.parked.len()), (2, 2, 0), "{s:?}");
    // Both asked with the ETag of the generation the table holds (week 1's
    // second), both unchanged: nothing downloaded, written or committed.
    let last_two: Vec<(String, u16)> = src.conditional().into_iter().rev().take(2).collect();
    assert!(last_two.iter().all(|(_, status)| *status == 304), "{last_two:?}");
    assert_eq!(f.objects().await, objects, "no third generation of the same bytes");
    assert_eq!(log_entries(f.lake_dir.as_ref().unwrap(), "mta-turnstile").len(), versions);
    // The done marker is back, naming the current generation.
    let marker = f.state().await.done_marker("mta-turnstile", &week(1).to_string()).await.unwrap().unwrap();
    assert!(marker.object_key.ends_with(".2.parquet"), "{marker:?}");
    f.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn vacuum_at_its_shortest_retention_racing_a_backfill_never_breaks_the_table() {
    let src = Source::start().await;
    let f = Fleet::local("races-vacuum");
    let expect = serve_mta_weeks(&src, 12, 150, 600, &[]);
    let w = f.worker(&["--concurrency", "2"]);
    w.ready().await;
    let first = f.backfill_mta(&src, week(0), week(0), &[]);
    assert_eq!(wait_finished(&f, &first, Duration::from_secs(60)).await.done, 1);
    // A retention shorter than a worker may hold an upload before its commit
    // is refused, naming that time; nothing is deleted.
    let out2 = f.producer(&["vacuum", "--dataset", "mta-turnstile", "--older-than", "1h"]);
    assert_eq!(out2.status.code(), Some(2), "{}", stdout(&out2));
    assert!(
        stderr(&out2).contains("shorter than the longest a worker may hold an uploaded object before its commit (2h"),
        "{}",
        stderr(&out2)
    );
    // The shortest allowed retention, again and again while 11 weeks land.
    let w2 = f.worker(&["--concurrency", "2"]);
    w2.ready().await;
    let rest = f.backfill_mta(&src, week(1), week(11), &[]);
    for _ in 0..8 {
        let v = f.producer(&["vacuum", "--dataset", "mta-turnstile", "--older-than", "2h"]);
        assert_eq!(v.status.code(), Some(0), "{}", stderr(&v));
        assert!(stdout(&v).contains("deleted 0 object(s)"), "{}", stdout(&v));
    }
    let s = wait_finished(&f, &rest, Duration::from_secs(90)).await;
    assert_eq!((s.done, s.parked.len()), (11, 0), "{s:?}");
    // Every file the log names is there; deltalake and DuckDB read every week.
    let dir = f.lake_dir.clone().unwrap();
    let path = dir.join("mta-turnstile");
    for (_, actions) in log_entries(&dir, "mta-turnstile") {
        for a in actions.iter().filter_map(|a| a.get("add")) {
            assert!(path.join(a["path"].as_str().unwrap()).exists(), "{a}");
        }
    }
    let rows: usize = expect.iter().map(|(_, n, _)| n).sum();
    let path = path.to_str().unwrap();
    assert!(deltalake_read(path, None).starts_with(&format!("{rows} ")), "{}", deltalake_read(path, None));
    assert!(duckdb_read(path).starts_with(&format!("{rows} ")), "{}", duckdb_read(path));
    f.cleanup().await;
}

/// Small backfills are not starved: a 1-week backfill published behind a
/// 30-week one finishes after a few of the large one's weeks (it goes to
/// the high lane by its size), where `--priority normal` (the one FIFO queue
/// of before) makes it wait for nearly all of them. Per-host limits hold
/// across the lanes. Prints both latencies.
#[tokio::test(flavor = "multi_thread")]
async fn a_small_backfill_is_not_stuck_behind_a_large_one() {
    let src = Source::start().await;
    let f = Fleet::local("races-lanes").with_catalog(&mta_catalog("mta-lanes", "max_downloads_per_host = 2"));
    serve_mta_weeks(&src, 62, 100, 700, &[]);
    // Every download takes about 600 ms.
    src.fault_every(Fault::Slow(3, Duration::from_millis(600)));
    let w = f.worker(&["--concurrency", "4"]);
    w.ready().await;
    let st = f.state().await;
    let day = |i: u64| week(i).to_string();
    let mut report = Vec::new();
    // (large weeks, small week, the small one's flags)
    for (big, small, flags) in [((0, 29), 60, vec![]), ((30, 59), 61, vec!["--priority", "normal"])] {
        let large = f.backfill("mta-lanes", &day(big.0), &day(big.1), &["--mirror", &src.base]);
        assert!(stdout(&large).contains("(normal lane)"), "{}", stdout(&large));
        let large_id = backfill_id(&large);
        let before = st.backfill(&large_id).await.unwrap().unwrap().done;
        let start = std::time::Instant::now();
        let mut args = vec!["--mirror", src.base.as_str()];
        args.extend(flags.iter().copied());
        let small_out = f.backfill("mta-lanes", &day(small), &day(small), &args);
        let lane = if flags.is_empty() { "(high lane)" } else { "(normal lane)" };
        assert!(stdout(&small_out).contains(lane), "{}", stdout(&small_out));
        let s = wait_finished(&f, &small_out, Duration::from_secs(60)).await;
        let latency = start.elapsed();
        assert_eq!((s.done, s.parked.len()), (1, 0), "{s:?}");
        let large_done = st.backfill(&large_id).await.unwrap().unwrap().done - before;
        report.push((flags.is_empty(), latency, large_done));
        assert_eq!(wait_finished(&f, &large, Duration::from_secs(90)).await.done, 30);
    }
    for (high, latency, large_done) in &report {
        eprintln!(
            "lanes: 1-week backfill behind a 30-week one, {}: done after {:.2}s, while {large_done} of the large one's 30 weeks were done",
            if *high { "high lane (by size)" } else { "--priority normal (one FIFO queue)" },
            latency.as_secs_f64()
        );
    }
    let (by_size, fifo) = (&report[0], &report[1]);
    // Under a loaded machine (the whole suite at once) the margins are wide:
    // less than half of the large one with lanes, more than 4/5 without.
    assert!(by_size.2 < 15, "the small backfill waited for {} of the large one's weeks", by_size.2);
    assert!(fifo.2 >= 24, "behind the large one in one queue it waits for most of it: {}", fifo.2);
    assert!(src.max_in_flight() <= 2, "per-host limit across lanes: {} at once", src.max_in_flight());
    f.cleanup().await;
}
