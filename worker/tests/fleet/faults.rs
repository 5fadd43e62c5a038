//! Failures: each heals by itself or lands, explained, in the parking queue.
//! Every scenario ends with the oracle.

use std::time::Duration;

use lakefleet_testkit::*;

#[tokio::test(flavor = "multi_thread")]
async fn source_errors_retry_with_growing_delays_or_park_with_a_reason() {
    let src = Source::start().await;
    let f = Fleet::local("http-faults");
    let mut expect = Vec::new();
    let mut files = Vec::new();
    for i in 0..5 {
        let (bytes, _) = mta_week(week(i), 500, 50 + i);
        src.put(&mta_name(week(i)), bytes.clone());
        files.push(bytes);
    }
    // week 0: 500 twice, then 200. week 1: 404. week 2: truncated once.
    // week 3: a changed header. week 4: fine.
    src.fault(&mta_name(week(0)), &[Fault::Status(500), Fault::Status(500)]);
    src.state_remove(&mta_name(week(1)));
    src.fault(&mta_name(week(2)), &[Fault::Truncate(700)]);
    let drifted = String::from_utf8(files[3].clone()).unwrap().replacen("DESC,ENTRIES", "DESC,ENTRIES,EXTRA", 1);
    src.put(&mta_name(week(3)), drifted.into_bytes());
    expect.push(mta_expect(week(0), 500, &files[0]));
    expect.push(mta_expect(week(2), 500, &files[2]));
    expect.push(mta_expect(week(4), 500, &files[4]));

    let w = f.worker(&[]);
    w.ready().await;
    let out = f.backfill_mta(&src, week(0), week(4), &[]);
    assert_eq!(out.status.code(), Some(0));
    let s = wait_finished(&f, &out, Duration::from_secs(60)).await;
    assert_eq!((s.done, s.parked.len()), (3, 2), "{s:?}");
    assert_eq!(s.retried, 3, "two retries for the 500s, one for the truncated body");

    // Growing delays between the three requests of week 0 (base 200 ms).
    let hits = src.hits(&mta_name(week(0)));
    assert_eq!(hits.len(), 3);
    let (d1, d2) = (hits[1] - hits[0], hits[2] - hits[1]);
    assert!(d1 >= Duration::from_millis(200) && d2 >= Duration::from_millis(400) && d2 > d1, "{d1:?} then {d2:?}");

    let m = w.metrics().await;
    assert_eq!(metric(&m, "lakefleet_tasks_total", &[("outcome", "retried")]), 3.0);
    assert_eq!(metric(&m, "lakefleet_tasks_parked_total", &[("reason", "not_found")]), 1.0);
    assert_eq!(metric(&m, "lakefleet_tasks_parked_total", &[("reason", "schema_mismatch")]), 1.0);

    // What an operator sees.
    let list = f.producer(&["dlq", "list"]);
    let text = stdout(&list);
    assert!(text.contains("not_found") && text.contains("HTTP 404"), "{text}");
    let drift = text.lines().find(|l| l.contains("schema_mismatch")).unwrap();
    assert!(drift.contains("unexpected column(s) EXTRA"), "{drift}");
    let status = f.producer(&["status", &s.id]);
    assert!(stdout(&status).contains("parked 2"), "{}", stdout(&status));

    oracle(&f, &expect, &[("2022-01-08", "not_found"), ("2022-01-22", "schema_mismatch")]).await;
    f.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn exhausted_attempts_park_and_replay_completes_after_the_source_heals() {
    let src = Source::start().await;
    let mut f = Fleet::local("exhaust");
    f.env.push(("LAKEFLEET_MAX_ATTEMPTS".into(), "3".into()));
    let (bytes, _) = mta_week(week(0), 300, 9);
    src.put(&mta_name(week(0)), bytes.clone());
    src.fault(&mta_name(week(0)), &[Fault::Status(503), Fault::Status(503), Fault::Status(503)]);
    let w = f.worker(&[]);
    w.ready().await;
    let out = f.backfill_mta(&src, week(0), week(0), &[]);
    let s = wait_finished(&f, &out, Duration::from_secs(30)).await;
    assert_eq!(s.parked.len(), 1);
    assert!(s.parked[0].1.starts_with("attempts_exhausted: gave up after 3 attempts"), "{:?}", s.parked);

    let list = f.producer(&["dlq", "list", "--reason", "attempts_exhausted"]);
    assert!(stdout(&list).contains("1 parked task(s) match"), "{}", stdout(&list));
    let none = f.producer(&["dlq", "list", "--dataset", "nyc-tlc-green"]);
    assert!(stdout(&none).contains("0 parked task(s) match (1 others"), "{}", stdout(&none));
    let bad = f.producer(&["dlq", "list", "--reason", "oops"]);
    assert_eq!(bad.status.code(), Some(2));

    // The source healed: replay; the backfill completes.
    let replay = f.producer(&["dlq", "replay", "--backfill", &s.id]);
    assert!(stdout(&replay).contains("replayed 1 task(s)"), "{}", stdout(&replay));
    let s = wait_finished(&f, &out, Duration::from_secs(30)).await;
    assert_eq!((s.done, s.parked.len()), (1, 0));
    oracle(&f, &[mta_expect(week(0), 300, &bytes)], &[]).await;
    f.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_invalid_message_is_parked_and_the_worker_keeps_running_and_purge_removes_it() {
    let src = Source::start().await;
    let f = Fleet::local("badmsg");
    let w = f.worker(&[]);
    w.ready().await;
    let conn = lakefleet::rabbitmq::topology::connect(&lakefleet::rabbitmq::AmqpNodes::parse(AMQP).unwrap(), "test")
        .await
        .unwrap();
    let ch = lakefleet::rabbitmq::topology::confirm_channel(&conn).await.unwrap();
    lakefleet::rabbitmq::topology::publish_confirmed(
        &ch,
        &f.topology().work,
        b"{\"not\": \"msgpack\"}",
        Default::default(),
    )
    .await
    .unwrap();
    // A message of a newer major version (from a newer producer).
    let mut future = mta_task("x", week(0), &src);
    future.v = lakefleet::task::MAJOR + 1;
    lakefleet::rabbitmq::topology::publish_confirmed(&ch, &f.topology().work, &future.encode(), Default::default())
        .await
        .unwrap();
    eventually(Duration::from_secs(20), "two parked messages", || async {
        f.queue_len(&f.topology().parking).await == 2
    })
    .await;

    // Still working.
    let (bytes, _) = mta_week(week(0), 100, 1);
    src.put(&mta_name(week(0)), bytes.clone());
    let out = f.backfill_mta(&src, week(0), week(0), &[]);
    let s = wait_finished(&f, &out, Duration::from_secs(30)).await;
    assert_eq!(s.done, 1);
    let m = w.metrics().await;
    assert_eq!(metric(&m, "lakefleet_tasks_parked_total", &[("reason", "bad_message")]), 2.0);

    let list = f.producer(&["dlq", "list", "--reason", "bad_message"]);
    assert!(
        stdout(&list).contains("newer than this worker") && stdout(&list).contains("invalid MessagePack"),
        "{}",
        stdout(&list)
    );
    let refused = f.producer(&["dlq", "purge", "--reason", "bad_message"]);
    assert_eq!(refused.status.code(), Some(2), "no confirmation without a terminal or --yes");
    assert_eq!(f.queue_len(&f.topology().parking).await, 2);
    let purge = f.producer(&["dlq", "purge", "--reason", "bad_message", "--yes"]);
    assert!(stdout(&purge).contains("removed 2 parked task(s)"), "{}", stdout(&purge));
    oracle(&f, &[mta_expect(week(0), 100, &bytes)], &[]).await;
    f.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_task_delivered_twice_at_once_is_written_once() {
    let src = Source::start().await;
    let f = Fleet::local("twice");
    let (bytes, _) = mta_week(week(0), 2000, 4);
    src.put(&mta_name(week(0)), bytes.clone());
    src.fault(&mta_name(week(0)), &[Fault::Slow(10, Duration::from_secs(2)), Fault::Slow(10, Duration::from_secs(2))]);
    let w1 = f.worker(&[]);
    let w2 = f.worker(&[]);
    w1.ready().await;
    w2.ready().await;
    let out = f.backfill_mta(&src, week(0), week(0), &[]);
    let forced = f.backfill_mta(&src, d("2022-01-01"), d("2022-01-01"), &["--force"]);
    assert_eq!(forced.status.code(), Some(0));
    wait_finished(&f, &out, Duration::from_secs(30)).await;
    wait_finished(&f, &forced, Duration::from_secs(30)).await;
    let (m1, m2) = (w1.metrics().await, w2.metrics().await);
    let sum = |name: &str, l: &[(&str, &str)]| metric(&m1, name, l) + metric(&m2, name, l);
    assert_eq!(sum("lakefleet_uploads_total", &[("result", "written")]), 1.0, "one write");
    assert_eq!(sum("lakefleet_tasks_total", &[("outcome", "succeeded")]), 1.0);
    assert_eq!(sum("lakefleet_tasks_total", &[("outcome", "skipped_duplicate")]), 1.0);
    assert!(sum("lakefleet_lease_conflicts_total", &[]) >= 1.0, "the second delivery waited for the lease");
    oracle(&f, &[mta_expect(week(0), 2000, &bytes)], &[]).await;
    f.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_mid_download_leaves_every_partition_in_the_lake_once() {
    let src = Source::start().await;
    let f = Fleet::local("kill9");
    let expect = serve_mta_weeks(&src, 3, 1500, 70, &[Fault::Slow(20, Duration::from_secs(4))]);
    let spool = tmpdir("spool");
    let spool_arg = spool.to_str().unwrap().to_string();
    let mut a = f.worker(&["--concurrency", "3", "--spool-dir", &spool_arg]);
    a.ready().await;
    let out = f.backfill_mta(&src, week(0), week(2), &[]);
    wait_in_flight(&a, 3.0).await;
    let a_pid = a.pid();
    let a_files = |dir: &std::path::Path| {
        std::fs::read_dir(dir)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with(&format!("lakefleet-{a_pid}-")))
            .count()
    };
    a.kill9();
    assert_eq!(a_files(&spool), 3, "A died with three spool files");
    let b = f.worker(&["--spool-dir", &spool_arg]);
    b.ready().await;
    assert_eq!(a_files(&spool), 0, "B removed the dead worker's spool files");
    // B waits for A's leases to expire (6 s), then converts.
    let s = wait_finished(&f, &out, Duration::from_secs(60)).await;
    assert_eq!(s.done, 3);
    assert!(metric(&b.metrics().await, "lakefleet_lease_conflicts_total", &[]) >= 1.0);
    assert_eq!(std::fs::read_dir(&spool).unwrap().count(), 0, "no spool file left behind");
    oracle(&f, &expect, &[]).await;
    f.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn lost_redis_state_mid_backfill_still_gives_every_partition_once() {
    let src = Source::start().await;
    let f = Fleet::local("redisloss");
    let expect = serve_mta_weeks(&src, 6, 800, 90, &[]);
    let w = f.worker(&[]);
    w.ready().await;
    let out = f.backfill_mta(&src, week(0), week(5), &[]);
    wait_finished(&f, &out, Duration::from_secs(30)).await;
    // Redis forgets everything of this fleet (as a restart would), then the
    // same backfill is delivered again.
    f.forget_redis().await;
    let again = f.backfill_mta(&src, d("2022-01-01"), week(5), &[]);
    assert!(stdout(&again).contains("0 already done, 6 to publish"), "{}", stdout(&again));
    wait_finished(&f, &again, Duration::from_secs(30)).await;
    let m = w.metrics().await;
    assert_eq!(metric(&m, "lakefleet_uploads_total", &[("result", "written")]), 6.0);
    // The dataset's table records every partition: nothing downloaded or written again.
    assert_eq!(metric(&m, "lakefleet_uploads_total", &[("result", "already_present")]), 0.0);
    assert_eq!(w.log().matches("already in the dataset's table").count(), 6, "{}", w.log());
    oracle(&f, &expect, &[]).await;
    f.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_object_store_answering_500_for_a_while_is_retried_then_written_once() {
    let s3 = S3Server::start().await;
    // object_store retries 3 times inside one attempt: 6 failures fail the
    // first attempt (4 PUTs) and two PUTs of the second.
    let proxy = FaultyProxy::start(&s3.endpoint, 6).await;
    let src = Source::start().await;
    let mut f = Fleet::s3("s3-500", &s3);
    let (bytes, _) = mta_week(week(0), 1000, 21);
    src.put(&mta_name(week(0)), bytes.clone());
    // The producer (its manifest) talks to the store directly; the worker through the proxy.
    let out = f.backfill_mta(&src, week(0), week(0), &[]);
    for (k, v) in f.env.iter_mut() {
        if k == "AWS_ENDPOINT" {
            *v = proxy.endpoint.clone();
        }
    }
    let w = f.worker(&[]);
    w.ready().await;
    let s = wait_finished(&f, &out, Duration::from_secs(60)).await;
    assert_eq!((s.done, s.parked.len(), s.retried), (1, 0, 1), "{s:?}");
    assert_eq!(proxy.failed.load(std::sync::atomic::Ordering::SeqCst), 6);
    let m = w.metrics().await;
    assert_eq!(metric(&m, "lakefleet_tasks_total", &[("outcome", "retried")]), 1.0);
    assert_eq!(metric(&m, "lakefleet_uploads_total", &[("result", "written")]), 1.0);
    oracle(&f, &[mta_expect(week(0), 1000, &bytes)], &[]).await;
    f.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_poison_message_returned_again_and_again_ends_in_the_parking_queue() {
    use lapin::options::{BasicGetOptions, BasicNackOptions};
    let f = Fleet::local("poison");
    let conn = lakefleet::rabbitmq::topology::connect(&lakefleet::rabbitmq::AmqpNodes::parse(AMQP).unwrap(), "test")
        .await
        .unwrap();
    let ch = lakefleet::rabbitmq::topology::confirm_channel(&conn).await.unwrap();
    let topo = f.topology();
    topo.declare(&ch).await.unwrap();
    let mut task = lakefleet::task::Task::plan(
        "bf-poison",
        lakefleet::catalog::Catalog::builtin().get("mta-turnstile").unwrap(),
        week(0),
        None,
        false,
    );
    task.source_url = "http://127.0.0.1:9/x".into();
    lakefleet::rabbitmq::topology::publish_confirmed(&ch, &topo.work, &task.encode(), Default::default())
        .await
        .unwrap();
    // A worker that dies holding the delivery returns it to the queue; do that
    // more times than the delivery limit allows.
    let mut returns = 0;
    for _ in 0..=lakefleet::rabbitmq::topology::DELIVERY_LIMIT + 1 {
        match ch.basic_get(topo.work.as_str().into(), BasicGetOptions::default()).await.unwrap() {
            Some(m) => {
                m.delivery.nack(BasicNackOptions { requeue: true, ..Default::default() }).await.unwrap();
                returns += 1;
            }
            None => break,
        }
    }
    assert_eq!(returns, lakefleet::rabbitmq::topology::DELIVERY_LIMIT + 1);
    eventually(Duration::from_secs(10), "parked by the broker", || async { f.queue_len(&topo.parking).await == 1 })
        .await;
    let list = f.producer(&["dlq", "list", "--reason", "delivery_limit"]);
    let text = stdout(&list);
    assert!(text.contains("bf-poison") && text.contains("delivery_limit") && text.contains("without an ack"), "{text}");
    assert_eq!(f.queue_len(&topo.work).await, 0);
    f.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_404_for_the_newest_week_waits_on_the_calendar_instead_of_being_parked() {
    let src = Source::start().await;
    let f = Fleet::local("notyet");
    let latest = lakefleet::plan::latest_published(&mta_turnstile(), chrono::Local::now().date_naive());
    let w = f.worker(&[]);
    w.ready().await;
    let day = latest.to_string();
    let out = f.backfill("mta-turnstile", &day, &day, &["--mirror", &src.base]);
    assert_eq!(out.status.code(), Some(0));
    // The built-in asks again in 6 hours: the task waits in that calendar
    // queue of its lane (a 1-week backfill: the high lane).
    let wait = f.topology().wait_queue_in(lakefleet::task::Lane::High, Duration::from_secs(6 * 3600));
    eventually(Duration::from_secs(20), "the task in the calendar queue", || async { f.queue_len(&wait).await == 1 })
        .await;
    assert_eq!(src.hits(&mta_name(latest)).len(), 1);
    let s = f.state().await.backfill(&backfill_id(&out)).await.unwrap().unwrap();
    assert_eq!((s.pending(), s.parked.len()), (1, 0), "{s:?}");
    assert_eq!(f.queue_len(&f.topology().parking).await, 0);
    assert!(w.log().contains("not published yet: asking again later"), "{}", w.log());
    f.delete_wait_queues(Duration::from_secs(6 * 3600)).await;
    f.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_task_slower_than_the_task_timeout_is_abandoned_and_retried() {
    let src = Source::start().await;
    let f = Fleet::local("timeout");
    // The first download takes 4 s; the task timeout is 1 s.
    let expect = serve_mta_weeks(&src, 1, 500, 5, &[Fault::Slow(8, Duration::from_secs(4))]);
    let w = f.worker(&["--task-timeout", "1"]);
    w.ready().await;
    let out = f.backfill_mta(&src, week(0), week(0), &["--wait", "--wait-timeout", "30"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("retries 1"), "{}", stdout(&out));
    assert!(w.log().contains("gave up after --task-timeout 1s"), "{}", w.log());
    // The abandoned attempt's lease was released with it: the retry got it at once.
    assert_eq!(metric(&w.metrics().await, "lakefleet_lease_conflicts_total", &[]), 0.0);
    oracle(&f, &expect, &[]).await;
    f.cleanup().await;
}

/// mta-turnstile's schema under another name, with fleet-wide limits for its source host.
fn polite_catalog(concurrent: u32, per_second: u32) -> String {
    mta_catalog(
        "mta-polite",
        &format!("max_downloads_per_host = {concurrent}\nmax_requests_per_second_per_host = {per_second}"),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn four_workers_share_a_hosts_limits_and_a_429_pauses_the_host_for_all_of_them() {
    let src = Source::start().await;
    let f = Fleet::local("polite").with_catalog(&polite_catalog(2, 5));
    serve_mta_weeks(&src, 16, 300, 80, &[]);
    // Every download takes about 400 ms, so that they would overlap; week 5 is throttled once.
    src.fault_every(Fault::Slow(4, Duration::from_millis(400)));
    src.fault(&mta_name(week(5)), &[Fault::Throttle(3)]);
    let workers: Vec<_> = (0..4).map(|_| f.worker(&["--concurrency", "2"])).collect();
    for w in &workers {
        w.ready().await;
    }
    let out = f.backfill("mta-polite", &week(0).to_string(), &week(15).to_string(), &["--mirror", &src.base]);
    assert_eq!(out.status.code(), Some(0));
    let s = wait_finished(&f, &out, Duration::from_secs(90)).await;
    assert_eq!((s.done, s.parked.len()), (16, 0), "{s:?}");

    // Never more than 2 downloads at once from the host, though 8 task slots were free.
    assert_eq!(src.max_in_flight(), 2, "the limit is used and never passed");
    // Never more than 5 request starts in any second (900 ms windows: request
    // arrival trails the fleet's clock by a few milliseconds).
    let hits = src.all_hits();
    for (i, t) in hits.iter().enumerate() {
        let in_window = hits[i..].iter().take_while(|h| **h - *t < Duration::from_millis(900)).count();
        assert!(in_window <= 5, "{in_window} requests within 900 ms");
    }
    // The 429 (Retry-After: 3) stopped every request to the host for 3 s.
    let throttled_at = src.hits(&mta_name(week(5)))[0];
    let during: Vec<Duration> = hits
        .iter()
        .filter(|h| **h > throttled_at + Duration::from_millis(200))
        .map(|h| *h - throttled_at)
        .filter(|d| *d < Duration::from_millis(2900))
        .collect();
    assert!(during.is_empty(), "requests during the pause: {during:?}");
    let throttles: f64 = metric_over_workers(&workers, "lakefleet_host_throttled_total").await;
    assert_eq!(throttles, 1.0);
    f.cleanup().await;
}

/// The sum of a metric over the workers (every label).
async fn metric_over_workers(workers: &[WorkerProc], name: &str) -> f64 {
    let mut total = 0.0;
    for w in workers {
        let text = w.metrics().await;
        total += text
            .lines()
            .filter(|l| l.starts_with(name) && !l.starts_with('#'))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>();
    }
    total
}

#[tokio::test(flavor = "multi_thread")]
async fn a_due_week_is_asked_again_on_its_calendar_until_it_appears_or_the_patience_ends() {
    let src = Source::start().await;
    // Two copies of mta-turnstile: one asks every second for 30 s, the other gives up after 2 s.
    let patient = polite_catalog(4, 10).replace("mta-polite", "mta-patient").replace(
        "max_downloads_per_host",
        "not_published_retry_seconds = 1\nnot_published_patience_seconds = 30\nmax_downloads_per_host",
    );
    let hasty = polite_catalog(4, 10).replace("mta-polite", "mta-hasty").replace(
        "max_downloads_per_host",
        "not_published_retry_seconds = 1\nnot_published_patience_seconds = 2\nmax_downloads_per_host",
    );
    let f = Fleet::local("calendar").with_catalog(&format!("{patient}\n{hasty}"));
    // The newest week: due, and not on the source yet.
    let today = chrono::Local::now().date_naive();
    let newest = lakefleet::plan::latest_published(&mta_turnstile(), today);
    let name = mta_name(newest);
    let w = f.worker(&[]);
    w.ready().await;
    let day = newest.to_string();
    let patient_out = f.backfill("mta-patient", &day, &day, &["--mirror", &src.base]);
    assert_eq!(patient_out.status.code(), Some(0));
    // Not parked on the first 404: asked again every second.
    eventually(Duration::from_secs(10), "three 404s", || async { src.hits(&name).len() >= 3 }).await;
    let st = f.state().await;
    let s = st.backfill(&backfill_id(&patient_out)).await.unwrap().unwrap();
    assert_eq!((s.done, s.parked.len()), (0, 0), "still waiting: {s:?}");
    let hits = src.hits(&name);
    assert!(hits[1] - hits[0] >= Duration::from_millis(900), "{:?}", hits[1] - hits[0]);
    // The metric says since when nothing new came.
    let since =
        metric(&w.metrics().await, "lakefleet_nothing_new_since_timestamp_seconds", &[("dataset", "mta-patient")]);
    let now = chrono::Utc::now().timestamp() as f64;
    assert!(since > now - 30.0 && since <= now, "{since} vs {now}");
    // It appears: the week lands without an operator.
    let (bytes, _) = mta_week(newest, 100, 5);
    src.put(&name, bytes);
    let s = wait_finished(&f, &patient_out, Duration::from_secs(20)).await;
    assert_eq!((s.done, s.parked.len()), (1, 0), "{s:?}");
    let m = w.metrics().await;
    assert!(metric(&m, "lakefleet_tasks_total", &[("dataset", "mta-patient"), ("outcome", "waiting")]) >= 2.0);
    assert!(
        !m.contains("lakefleet_nothing_new_since_timestamp_seconds{dataset=\"mta-patient\"}"),
        "something new came"
    );

    // A week that never appears is parked once the patience is over.
    src.state_remove(&name);
    let hasty_out = f.backfill("mta-hasty", &day, &day, &["--mirror", &src.base]);
    let s = wait_finished(&f, &hasty_out, Duration::from_secs(20)).await;
    assert_eq!(s.parked.len(), 1, "{s:?}");
    let (_, error) = &s.parked[0];
    assert!(
        error.starts_with("not_published_yet: ") && error.contains("not_published_patience_seconds = 2"),
        "{error}"
    );
    // Status says it: nothing new, within the patience, and what to do.
    let status = f.producer(&["status", &backfill_id(&hasty_out)]);
    let text = stdout(&status);
    assert!(
        text.contains(&format!("mta-hasty: nothing new from {day} on: {day} not published within the calendar's patience (2s, not_published_patience_seconds)")),
        "{text}"
    );
    let m = w.metrics().await;
    assert!(metric(&m, "lakefleet_nothing_new_since_timestamp_seconds", &[("dataset", "mta-hasty")]) > 0.0, "{m}");
    // The calendar's queues are the fleet's too: remove them with the rest.
    f.delete_wait_queues(Duration::from_secs(1)).await;
    f.cleanup().await;
}
