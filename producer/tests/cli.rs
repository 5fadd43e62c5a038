//! `producer`: planning, publishing, refusals, dedupe of done partitions.

use chrono::NaiveDate;
use lakefleet::catalog::Catalog;
use lakefleet::task::MAJOR;

use lakefleet_testkit::*;

#[tokio::test(flavor = "multi_thread")]
async fn backfill_publishes_exactly_the_planned_tasks() {
    let f = Fleet::local("publish");
    let out = f.backfill("mta-turnstile", "2022-01-01", "2022-03-31", &["--mirror", "http://127.0.0.1:9/mirror/"]);
    assert_eq!(out.status.code(), Some(0));
    let id = backfill_id(&out);
    assert!(id.starts_with("bf-"), "{id}");
    let tasks = f.drain_work().await;
    let cat = Catalog::builtin();
    let ds = cat.get("mta-turnstile").unwrap();
    let expected = lakefleet::plan::plan(
        ds,
        "2022-01-01".parse().unwrap(),
        "2022-03-31".parse().unwrap(),
        chrono::Local::now().date_naive(),
    )
    .unwrap();
    assert_eq!(tasks.len(), 13);
    assert_eq!(tasks.len(), expected.len());
    for (t, p) in tasks.iter().zip(&expected) {
        assert_eq!(t.v, MAJOR);
        assert_eq!(t.backfill_id, id);
        assert_eq!(t.dataset, "mta-turnstile");
        assert_eq!(t.partition, p.date.to_string());
        assert_eq!(t.source_url, format!("http://127.0.0.1:9/mirror/turnstile_{}.txt", p.date.format("%y%m%d")));
        assert_eq!(t.object_key, p.object_key);
        assert_eq!(t.attempt, 1);
        assert!(!t.overwrite);
        assert!(chrono::DateTime::parse_from_rfc3339(&t.enqueued_at).is_ok(), "{}", t.enqueued_at);
    }
    // The plan is recorded for status.
    let st = f.state().await.backfill(&id).await.unwrap().unwrap();
    assert_eq!((st.planned, st.done, st.parked.len()), (13, 0, 0));
    let list = f.producer(&["status"]);
    let line = stdout(&list).lines().find(|l| l.starts_with(&id)).map(String::from);
    assert!(line.as_deref().is_some_and(|l| l.contains("planned 13") && l.contains("[running]")), "{}", stdout(&list));
    let out = f.producer(&["status", &id]);
    assert!(stdout(&out).contains("planned 13, done 0"), "{}", stdout(&out));
    f.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn monthly_backfill_publishes_one_task_per_month() {
    let f = Fleet::local("monthly");
    let out = f.backfill("nyc-tlc-yellow", "2019-11-15", "2020-02-03", &[]);
    assert_eq!(out.status.code(), Some(0));
    let tasks = f.drain_work().await;
    let months: Vec<&str> = tasks.iter().map(|t| t.partition.as_str()).collect();
    assert_eq!(months, ["2019-11-01", "2019-12-01", "2020-01-01", "2020-02-01"]);
    assert_eq!(tasks[0].source_url, "https://d37ci6vzurychx.cloudfront.net/trip-data/yellow_tripdata_2019-11.parquet");
    assert_eq!(tasks[3].object_key, "nyc-tlc-yellow/year=2020/nyc-tlc-yellow_2020-02.parquet");
    // The course's CSV mirror keeps its own name and URLs.
    let out = f.backfill("dtc-nyc-tlc-yellow", "2019-11-01", "2019-11-30", &[]);
    assert_eq!(out.status.code(), Some(0));
    let tasks = f.drain_work().await;
    assert_eq!(
        tasks[0].source_url,
        "https://github.com/DataTalksClub/nyc-tlc-data/releases/download/yellow/yellow_tripdata_2019-11.csv.gz"
    );
    assert_eq!(tasks[0].object_key, "dtc-nyc-tlc-yellow/year=2019/dtc-nyc-tlc-yellow_2019-11.parquet");
    f.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tlc_dry_run_plans_every_official_month_from_2009() {
    let f = Fleet::local("tlc-plan");
    let out = f.backfill("nyc-tlc-yellow", "2009-01-01", "2025-06-30", &["--dry-run"]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    let months: Vec<&str> = text.lines().filter(|l| l.starts_with("20") && l.contains("new")).collect();
    assert_eq!(months.len(), 16 * 12 + 6, "{text}");
    assert!(months[0].contains("https://d37ci6vzurychx.cloudfront.net/trip-data/yellow_tripdata_2009-01.parquet"));
    assert!(
        months[197].contains("yellow_tripdata_2025-06.parquet") && months[197].contains("nyc-tlc-yellow/year=2025/")
    );
    assert_eq!(f.work_len().await, 0, "a dry run publishes nothing");
    // A month the TLC has not published yet (about two months after it ends) is refused.
    let recent = chrono::Local::now().date_naive() - chrono::Days::new(20);
    let out = f.backfill("nyc-tlc-yellow", &recent.to_string(), &recent.to_string(), &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("past the latest published partition"), "{}", stderr(&out));
    f.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn dry_run_and_refusals_publish_nothing() {
    let f = Fleet::local("refuse");
    let out = f.backfill("mta-turnstile", "2022-01-01", "2022-01-31", &["--dry-run"]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    for d in ["2022-01-01", "2022-01-08", "2022-01-15", "2022-01-22", "2022-01-29"] {
        let line = text.lines().find(|l| l.starts_with(d)).unwrap_or_else(|| panic!("{d} missing:\n{text}"));
        assert!(line.contains("new"), "{line}");
        assert!(line.contains("turnstile_"), "{line}");
        assert!(line.contains("mta-turnstile/year=2022/"), "{line}");
    }
    let far = (chrono::Local::now().date_naive() + chrono::Days::new(30)).to_string();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["--dataset", "nope", "--from", "2022-01-01", "--to", "2022-01-31"],
            "known datasets: dtc-nyc-tlc-fhv, dtc-nyc-tlc-green, dtc-nyc-tlc-yellow, mta-subway-hourly-ridership, mta-turnstile",
        ),
        (vec!["--dataset", "mta-turnstile", "--from", "2022-03-01", "--to", "2022-01-31"], "is after --to"),
        (
            vec!["--dataset", "mta-turnstile", "--from", "2014-01-01", "--to", "2014-12-31"],
            "before the first available partition 2014-10-18",
        ),
        (
            vec!["--dataset", "nyc-tlc-yellow", "--from", "2022-01-01", "--to", &far],
            "past the latest published partition",
        ),
        (
            vec!["--dataset", "nyc-tlc-fhv", "--from", "2014-06-01", "--to", "2015-02-01"],
            "before the first available partition 2015-01-01",
        ),
        (
            vec!["--dataset", "dtc-nyc-tlc-green", "--from", "2021-01-01", "--to", "2021-12-31"],
            "after the last available partition 2021-07-01",
        ),
        (
            vec!["--dataset", "mta-turnstile", "--from", "2022-01-02", "--to", "2022-01-07"],
            "no weekly (Saturdays) publication",
        ),
    ];
    for (args, msg) in cases {
        let mut full = vec!["backfill"];
        full.extend(args);
        let out = f.producer(&full);
        assert_eq!(out.status.code(), Some(2), "{full:?}");
        let err = stderr(&out);
        assert!(err.contains(msg), "{full:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    }
    assert_eq!(f.work_len().await, 0);
    f.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn done_partitions_are_not_published_again_without_force() {
    let f = Fleet::local("again");
    let st = f.state().await;
    let cat = Catalog::builtin();
    let ds = cat.get("mta-turnstile").unwrap();
    let mut d = NaiveDate::from_ymd_opt(2022, 1, 1).unwrap();
    while d <= NaiveDate::from_ymd_opt(2022, 3, 31).unwrap() {
        f.fake_done(ds, d).await;
        d = d + chrono::Days::new(7);
    }
    let args = ["backfill", "--dataset", "mta-turnstile", "--from", "2022-01-01", "--to", "2022-03-31"];
    let out = f.producer(&args);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("13 already done, 0 to publish"), "{}", stdout(&out));
    assert_eq!(f.work_len().await, 0);
    // Its status is complete at once.
    let id = backfill_id(&out);
    let s = st.backfill(&id).await.unwrap().unwrap();
    assert_eq!((s.planned, s.done, s.skipped), (13, 13, 13));
    let dry = f.backfill("mta-turnstile", "2022-01-01", "2022-01-08", &["--dry-run"]);
    assert!(stdout(&dry).contains("skipped: already done"), "{}", stdout(&dry));

    // A done marker whose object has left the lake does not count as done.
    std::fs::remove_file(
        f.lake_dir.as_ref().unwrap().join(ds.object_key(NaiveDate::from_ymd_opt(2022, 1, 15).unwrap())),
    )
    .unwrap();
    let out = f.producer(&args);
    assert!(stdout(&out).contains("12 already done, 1 to publish"), "{}", stdout(&out));
    let tasks = f.drain_work().await;
    assert_eq!(tasks.iter().map(|t| t.partition.as_str()).collect::<Vec<_>>(), ["2022-01-15"]);
    assert!(st.done_marker("mta-turnstile", "2022-01-15").await.unwrap().is_none(), "the stale marker is gone");

    let mut forced = args.to_vec();
    forced.push("--force");
    let out = f.producer(&forced);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(f.drain_work().await.len(), 13);
    f.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn unreachable_services_give_one_clear_line() {
    let f = Fleet::local("down");
    let mut cmd = std::process::Command::new(producer_bin());
    cmd.args(["backfill", "--dataset", "mta-turnstile", "--from", "2022-01-01", "--to", "2022-01-08"])
        .env("LAKEFLEET_PREFIX", &f.prefix)
        .env("REDIS_URL", format!("redis://127.0.0.1:{}", free_port()));
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.starts_with("error: cannot connect to Redis at redis://127.0.0.1:"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    let mut cmd = std::process::Command::new(producer_bin());
    cmd.args(["backfill", "--dataset", "mta-turnstile", "--from", "2022-01-01", "--to", "2022-01-08"])
        .env("LAKEFLEET_PREFIX", &f.prefix)
        .env("AMQP_URL", format!("amqp://guest:secret@127.0.0.1:{}/%2f", free_port()));
    let out = cmd.output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("cannot connect to RabbitMQ at amqp://guest:***@127.0.0.1:"), "{err}");
    assert!(!err.contains("secret"), "password leaked: {err}");
    f.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unroutable_publish_is_an_error() {
    let conn = lakefleet::rabbitmq::topology::connect(&lakefleet::rabbitmq::AmqpNodes::parse(AMQP).unwrap(), "test")
        .await
        .unwrap();
    let ch = lakefleet::rabbitmq::topology::confirm_channel(&conn).await.unwrap();
    let e =
        lakefleet::rabbitmq::topology::publish_confirmed(&ch, "lakefleet-test-no-such-queue", b"x", Default::default())
            .await
            .unwrap_err();
    assert!(e.to_string().contains("unroutable"), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn datasets_lists_the_catalog_and_a_bad_catalog_is_refused() {
    let f = Fleet::local("catalog");
    let out = f.producer(&["datasets"]);
    let text = stdout(&out);
    for name in
        ["mta-turnstile", "nyc-tlc-yellow", "nyc-tlc-green", "nyc-tlc-fhv", "nyc-tlc-fhvhv", "dtc-nyc-tlc-yellow"]
    {
        assert!(text.contains(&format!("{name}  (")), "{name}: {text}");
    }
    assert!(text.contains("entries: int64") && text.contains("observed_at: timestamp"), "{text}");
    // The weekly feed has no invented end; the MTA's current counts are named; the archive's ids.
    assert!(text.contains("mta-turnstile  (weekly (Saturdays), 2014-10-18 .. still publishing"), "{text}");
    assert!(text.contains("its publisher's current data: dataset mta-subway-hourly-ridership"), "{text}");
    for id in ["i55r-43gk  2014-01-04 .. 2014-12-27", "k7j9-jnct  2022-01-01 .. 2022-12-31"] {
        assert!(text.contains(&format!("https://data.ny.gov/resource/{id}")), "{id}: {text}");
    }
    // Parquet datasets: each column with the source names it accepts, and the eras.
    assert!(
        text.contains(
            "nyc-tlc-yellow  (monthly, 2009-01-01 .. still publishing, published 60 days after, parquet source)"
        ),
        "{text}"
    );
    let yellow = text.split("nyc-tlc-yellow  (").nth(2).unwrap();
    let pickup = yellow.lines().find(|l| l.trim_start().starts_with("pickup_datetime: timestamp")).unwrap();
    assert!(pickup.contains("tpep_pickup_datetime | Trip_Pickup_DateTime | pickup_datetime"), "{pickup}");
    assert!(text.contains("era 2009-01-01 .. 2009-12-01: vendor_name and payment codes as text"), "{text}");
    assert!(text.contains("payment_type_name <- Payment_Type"), "{text}");
    assert!(text.contains("unknown ones park the partition as schema_drift; never read: __index_level_0__"), "{text}");
    let dir = tmpdir("catalog");
    let path = dir.join("bad.toml");
    std::fs::write(&path, "[[dataset]]\nname = \"mine\"\ncadence = \"monthly\"\nurl_template = \"http://x/{yyyy}{mm}.csv\"\nfirst = \"2020-01-01\"\ncolumns = [ { source = \"a\", type = \"int65\" } ]\n").unwrap();
    let out = f.producer(&["--catalog", path.to_str().unwrap(), "datasets"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("bad.toml") && err.contains("dataset \"mine\"") && err.contains("int65"), "{err}");
    f.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn schedule_enqueues_the_newest_weeks_missing_from_the_lake() {
    // A user's entry with a confirmed last file has ended.
    let ended_entry = mta_catalog("mta-ended", "last = \"2023-05-06\"\nsuccessor = \"mta-subway-hourly-ridership\"");
    let f = Fleet::local("schedule").with_catalog(&ended_entry);
    let st = f.state().await;
    let builtin = lakefleet::catalog::Catalog::builtin();
    let ds = builtin.get("mta-turnstile").unwrap();
    // A feed that ended is refused, naming the dataset that continues it.
    let ended = f.producer(&["schedule", "--dataset", "mta-ended", "--once"]);
    assert_eq!(ended.status.code(), Some(2));
    assert!(
        stderr(&ended).contains("mta-ended: not scheduled: the feed ended with its partition 2023-05-06 and publishes no more; dataset mta-subway-hourly-ridership continues its data"),
        "{}",
        stderr(&ended)
    );
    let latest = lakefleet::plan::latest_published(ds, chrono::Local::now().date_naive());
    let back = |w: u64| latest - chrono::Days::new(7 * w);
    // One week is in the lake, one is parked: the schedule leaves both alone.
    let done = back(1);
    f.fake_done(ds, done).await;
    st.record_parked("bf-old", "mta-turnstile", &back(2).to_string(), "not_found: gone").await.unwrap();

    let out = f.producer(&[
        "schedule",
        "--dataset",
        "mta-turnstile",
        "--once",
        "--lookback",
        "4",
        "--mirror",
        "http://127.0.0.1:9/m",
    ]);
    assert_eq!(out.status.code(), Some(0));
    let tasks = f.drain_work().await;
    let weeks: Vec<String> = tasks.iter().map(|t| t.partition.clone()).collect();
    assert_eq!(weeks, [back(3).to_string(), latest.to_string()]);
    assert!(tasks[1].source_url.starts_with("http://127.0.0.1:9/m/turnstile_"), "{}", tasks[1].source_url);

    // Never twice: a restarted schedule does not enqueue them again while
    // they are on their way (here: drained, as if waiting on the calendar).
    let again =
        ["schedule", "--dataset", "mta-turnstile", "--once", "--lookback", "4", "--mirror", "http://127.0.0.1:9/m"];
    let out = f.producer(&again);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("nothing new to enqueue"), "{}", stdout(&out));
    assert_eq!(f.work_len().await, 0);

    // Nothing new: no task, no backfill.
    for w in [back(3), latest] {
        f.fake_done(ds, w).await;
    }
    let before = st.recent_backfills(std::num::NonZeroUsize::new(100).unwrap()).await.unwrap().len();
    let out = f.producer(&["schedule", "--dataset", "mta-turnstile", "--once", "--lookback", "4"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("nothing new to enqueue"), "{}", stdout(&out));
    assert_eq!(f.work_len().await, 0);
    assert_eq!(st.recent_backfills(std::num::NonZeroUsize::new(100).unwrap()).await.unwrap().len(), before);
    // --refresh-last 2: the latest two done weeks are asked whether they changed.
    let out =
        f.producer(&["schedule", "--dataset", "mta-turnstile", "--once", "--lookback", "4", "--refresh-last", "2"]);
    assert_eq!(out.status.code(), Some(0));
    let tasks = f.drain_work().await;
    let refreshed: Vec<(String, bool)> = tasks.iter().map(|t| (t.partition.clone(), t.refresh)).collect();
    assert_eq!(refreshed, [(back(1).to_string(), true), (latest.to_string(), true)]);
    let out = f.producer(&["schedule", "--dataset", "nope", "--once"]);
    assert_eq!(out.status.code(), Some(2));
    f.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn progress_is_a_bar_on_a_terminal_and_plain_lines_otherwise() {
    let f = Fleet::local("progress");
    let plain = f.backfill("mta-turnstile", "2022-01-01", "2022-01-15", &[]);
    assert!(stderr(&plain).lines().any(|l| l == "publishing 3/3 2022-01-15"), "{}", stderr(&plain));
    assert!(!stderr(&plain).contains("[="), "no bar without a terminal");
    // `script` gives the producer a pseudo-terminal.
    let cmd = format!(
        "{} backfill --dataset mta-turnstile --from 2022-01-01 --to 2022-01-15 --force",
        producer_bin().display()
    );
    let out = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("LAKEFLEET_PREFIX", &f.prefix)
        .env("LAKE_URL", &f.lake_url)
        .env("LAKEFLEET_RETRY_BASE_MS", f.retry_base_ms.to_string())
        .output()
        .unwrap();
    let tty = stdout(&out);
    assert!(tty.contains("publishing   [") && tty.contains("] 3/3"), "{tty}");
    f.cleanup().await;
}

const OLD_WEEKLY: &str = r#"
[[dataset]]
name = "old-weekly"
cadence = "weekly"
url_template = "http://127.0.0.1:9/w/{yyyy}{mm}{dd}.csv"
first = "1980-01-05"
columns = [ { source = "a", type = "string" } ]
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_plan_of_more_than_1000_partitions_needs_yes() {
    let f = Fleet::local("bigplan").with_catalog(OLD_WEEKLY);
    let args = ["backfill", "--dataset", "old-weekly", "--from", "1980-01-01", "--to", "2000-12-31"];
    let out = f.producer(&args);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("plans 1096 partitions (more than 1000)") && stderr(&out).contains("--yes"),
        "{}",
        stderr(&out)
    );
    assert_eq!(f.work_len().await, 0, "nothing published");
    let mut yes = args.to_vec();
    yes.push("--yes");
    let out = f.producer(&yes);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(f.work_len().await, 1096);
    f.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn templates_whose_months_share_a_file_are_refused_before_planning() {
    for template in ["http://h/{yyyy}/{mm}/data.csv", "http://h/get.csv?month={yyyy}"] {
        let toml = format!(
            "[[dataset]]\nname = \"collapse\"\ncadence = \"{}\"\nurl_template = \"{template}\"\nfirst = \"2020-01-04\"\nlast = \"2020-12-26\"\ncolumns = [ {{ source = \"a\", type = \"string\" }} ]\n",
            if template.contains("{mm}") { "weekly" } else { "monthly" }
        );
        let f = Fleet::local("collapse").with_catalog(&toml);
        let out = f.backfill("collapse", "2020-01-01", "2020-12-31", &[]);
        assert_eq!(out.status.code(), Some(2), "{template}");
        assert!(stderr(&out).contains("would both fetch") && stderr(&out).contains("url_template"), "{}", stderr(&out));
        assert_eq!(f.work_len().await, 0);
        f.cleanup().await;
    }
    let f = Fleet::local("placeholder").with_catalog(&OLD_WEEKLY.replace("{dd}", "{day}"));
    let out = f.producer(&["datasets"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("unknown placeholder {day}"), "{}", stderr(&out));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lake_url_of_an_unknown_scheme_is_refused_with_exit_2() {
    let mut f = Fleet::local("ftp");
    f.lake_url = "ftp://h/lake".into();
    let out = f.backfill("mta-turnstile", "2022-01-01", "2022-01-08", &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("LAKE_URL (--lake-url)") && stderr(&out).contains("\"ftp\""), "{}", stderr(&out));
    f.lake_url = f.lake_dir.as_ref().unwrap().to_str().unwrap().to_string();
    let out = f.producer(&["status", "--limit", "0"]);
    assert_eq!(out.status.code(), Some(2), "--limit 0 is refused, not 'everything'");
    f.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn status_rebuilds_a_backfill_that_redis_lost_from_the_lake_and_the_parking_queue() {
    let f = Fleet::local("rebuild");
    let cat = Catalog::builtin();
    let ds = cat.get("mta-turnstile").unwrap();
    let out = f.backfill("mta-turnstile", "2022-01-01", "2022-01-22", &["--mirror", "http://127.0.0.1:9/m"]);
    assert_eq!(out.status.code(), Some(0));
    let id = backfill_id(&out);
    // As if workers had run: two weeks in the lake, one parked.
    let tasks = f.drain_work().await;
    assert_eq!(tasks.len(), 4);
    for t in &tasks[..2] {
        f.fake_done(ds, t.partition.parse().unwrap()).await;
    }
    let parked = lakefleet::rabbitmq::parking::ParkHeaders::new(
        lakefleet::failure::Reason::BadRow,
        "turnstile_220115.txt: line 7, column 10 (entries): cannot parse \"x\" as int64",
        1,
        "w1",
        Some(&tasks[2]),
    );
    let conn = lakefleet::rabbitmq::topology::connect(&lakefleet::rabbitmq::AmqpNodes::parse(AMQP).unwrap(), "test")
        .await
        .unwrap();
    let ch = lakefleet::rabbitmq::topology::confirm_channel(&conn).await.unwrap();
    lakefleet::rabbitmq::topology::publish_confirmed(&ch, &f.topology().parking, &tasks[2].encode(), parked.to_table())
        .await
        .unwrap();
    let _ = conn.close(200, "".into()).await;
    f.forget_redis().await;
    let out = f.producer(&["status", &id]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(stderr(&out).contains("rebuilt it from the lake"), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.contains("planned 4, done 2 (skipped as duplicates 0), pending 1, parked 1"), "{text}");
    assert!(text.contains("2022-01-15: bad_row: turnstile_220115.txt: line 7"), "{text}");
    assert_eq!(f.queue_len(&f.topology().parking).await, 1, "the parked task stays parked");
    // Redis has it again: a second status reads it from there.
    let again = f.producer(&["status", &id]);
    assert!(!stderr(&again).contains("rebuilt"), "{}", stderr(&again));
    assert!(stdout(&again).contains("planned 4, done 2"), "{}", stdout(&again));
    f.cleanup().await;
}
