//! Hostile inputs (an attacker, a careless catalog author, a broken source):
//! the fleet stays up, parks what it cannot take with a short reason, keeps
//! memory bounded, and never writes what a message should not decide.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use lakefleet_testkit::*;

const MIB: u64 = 1 << 20;

/// One week whose ENTRIES field is `len` bytes of digits.
fn week_with_long_field(w: chrono::NaiveDate, len: usize) -> Vec<u8> {
    let (mut bytes, _) = mta_week(w, 50, 9);
    let row = format!("A002,R051,02-00-00,59 ST,NQR456W,BMT,{},03:00:00,REGULAR,", w.format("%m/%d/%Y"));
    bytes.extend_from_slice(row.as_bytes());
    bytes.extend(std::iter::repeat_n(b'9', len));
    bytes.extend_from_slice(b",8\n");
    bytes
}

#[tokio::test(flavor = "multi_thread")]
async fn a_20_mb_field_parks_one_partition_with_a_short_message_and_the_worker_carries_on() {
    let src = Source::start().await;
    let f = Fleet::local("longfield");
    let mut expect = serve_mta_weeks(&src, 6, 3000, 40, &[Fault::Slow(4, Duration::from_secs(1))]);
    let bad = week(2);
    src.put(&mta_name(bad), week_with_long_field(bad, 20 << 20));
    expect.retain(|(k, _, _)| !k.contains(&bad.to_string()));
    let mut w = f.worker(&["--concurrency", "4"]);
    w.ready().await;
    let out = f.backfill_mta(&src, week(0), week(5), &["--wait", "--wait-timeout", "120"]);
    assert_eq!(out.status.code(), Some(1), "a parked partition fails --wait");
    let st = f.producer(&["status", &backfill_id(&out)]);
    assert!(stdout(&st).contains("done 5") && stdout(&st).contains("parked 1"), "{}", stdout(&st));
    assert_eq!(w.get("/readyz").await.0, 200, "still connected: {}", w.log());
    let parked = f.parked().await;
    assert_eq!(parked.len(), 1, "{parked:?}");
    assert_eq!((parked[0].reason.as_str(), parked[0].partition.as_str()), ("bad_row", bad.to_string().as_str()));
    assert!(
        parked[0].error.contains("line 52") && parked[0].error.contains("longer than 1048576 bytes"),
        "{:?}",
        parked[0]
    );
    assert!(parked[0].error.len() < 400, "{}", parked[0].error.len());
    oracle(&f, &expect, &[]).await;
    let start = Instant::now();
    assert_eq!(w.terminate(Duration::from_secs(40)), Some(0), "stops on SIGTERM: {}", w.log());
    assert!(start.elapsed() < Duration::from_secs(35));
    f.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_huge_value_is_quoted_short_in_the_parking_headers_and_redis() {
    let src = Source::start().await;
    let f = Fleet::local("hugevalue");
    let w0 = week(0);
    // 600 KB: under the record limit, so it reaches the int64 parser.
    src.put(&mta_name(w0), week_with_long_field(w0, 600_000));
    let w = f.worker(&[]);
    w.ready().await;
    let out = f.backfill_mta(&src, w0, w0, &["--wait", "--wait-timeout", "60"]);
    assert_eq!(out.status.code(), Some(1));
    let st = f.state().await;
    let s = wait_finished(&f, &out, Duration::from_secs(5)).await;
    assert_eq!(s.parked.len(), 1);
    assert!(s.parked[0].1.contains("(600000 bytes) as int64") && s.parked[0].1.len() < 400, "{:?}", s.parked);
    assert!(st.failed("mta-turnstile", &w0.to_string()).await.unwrap().unwrap().len() < 400);
    let parked = f.parked().await;
    assert!(parked[0].error.contains("cannot parse \"9999") && parked[0].error.len() < 400, "{parked:?}");
    f.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_gzip_bomb_parks_with_bounded_memory() {
    let src = Source::start().await;
    let f = Fleet::local("bomb");
    let w0 = week(0);
    // A header, then 512 MiB of zeros on one line: about 0.5 MB compressed.
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    {
        use std::io::Write;
        enc.write_all(MTA_HEADER.as_bytes()).unwrap();
        enc.write_all(b"\n").unwrap();
        let zeros = vec![b'0'; 4 << 20];
        for _ in 0..128 {
            enc.write_all(&zeros).unwrap();
        }
    }
    let bomb = enc.finish().unwrap();
    assert!(bomb.len() < 2 << 20, "{}", bomb.len());
    src.put(&mta_name(w0), bomb);
    let w = f.worker(&["--concurrency", "1"]);
    w.ready().await;
    let out = f.backfill_mta(&src, w0, w0, &["--wait", "--wait-timeout", "60"]);
    assert_eq!(out.status.code(), Some(1));
    let rss = peak_rss(w.pid());
    eprintln!("worker peak RSS after the bomb: {} MiB", rss / MIB);
    assert!(rss > 0 && rss < 128 * MIB, "peak RSS {} MiB", rss / MIB);
    let parked = f.parked().await;
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].reason, "bad_row", "{parked:?}");
    assert!(parked[0].error.contains("line 2"), "{parked:?}");
    assert!(f.objects().await.is_empty(), "nothing in the lake");
    f.cleanup().await;
}

const TINY: &str = r#"
[[dataset]]
name = "tiny-turnstile"
cadence = "weekly"
url_template = "http://web.mta.info/developers/data/nyct/turnstile/turnstile_{yymmdd}.txt"
first = "2014-10-18"
max_source_bytes = 100000
columns = [
  { source = "C/A", name = "ca", type = "string" }, { source = "UNIT", type = "string" },
  { source = "SCP", type = "string" }, { source = "STATION", type = "string" },
  { source = "LINENAME", type = "string" }, { source = "DIVISION", type = "string" },
  { source = "DATE", type = "string" }, { source = "TIME", type = "string" },
  { source = "DESC", type = "string" }, { source = "ENTRIES", type = "int64" },
  { source = "EXITS", type = "int64" },
]
"#;

#[tokio::test(flavor = "multi_thread")]
async fn a_source_larger_than_its_limit_parks_as_too_large() {
    let src = Source::start().await;
    let f = Fleet::local("toolarge").with_catalog(TINY);
    let w0 = week(0);
    let (bytes, _) = mta_week(w0, 5000, 3); // ~400 KB > 100 KB
    src.put(&mta_name(w0), gzip(&bytes));
    let w = f.worker(&[]);
    w.ready().await;
    let out = f.backfill("tiny-turnstile", &w0.to_string(), &w0.to_string(), &["--mirror", &src.base, "--wait"]);
    assert_eq!(out.status.code(), Some(1));
    let parked = f.parked().await;
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].reason, "too_large");
    assert!(
        parked[0].error.contains("more than 100000 bytes (max_source_bytes; CSV: once decompressed)"),
        "{parked:?}"
    );
    let m = w.metrics().await;
    assert_eq!(metric(&m, "lakefleet_tasks_parked_total", &[("reason", "too_large")]), 1.0);
    f.cleanup().await;
}

/// Runs `worker convert` and returns (exit code, stderr, peak RSS in bytes,
/// as the worker reports it: `wait4`'s figure would include the pages the
/// child shared with this test process before its exec).
fn convert_measured(f: &Fleet, dataset: &str, input: &std::path::Path, output: &std::path::Path) -> (i32, String, u64) {
    let mut cmd = Command::new(worker_bin());
    for (k, v) in &f.env {
        cmd.env(k, v);
    }
    let out = cmd
        .args(["convert", "--dataset", dataset, input.to_str().unwrap(), output.to_str().unwrap()])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let peak = err
        .lines()
        .find_map(|l| l.strip_prefix("peak RSS: "))
        .and_then(|v| v.trim_end_matches(" MiB").parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no peak RSS line in: {err}"));
    (out.status.code().unwrap_or(-1), err, peak * MIB)
}

#[test]
fn a_200_mb_line_is_refused_in_bounded_memory() {
    let f = Fleet::local("longline");
    let dir = tmpdir("longline");
    let input = dir.join("turnstile_220101.txt");
    {
        use std::io::Write;
        let mut w = std::io::BufWriter::new(std::fs::File::create(&input).unwrap());
        writeln!(w, "{MTA_HEADER}").unwrap();
        let chunk = vec![b'x'; 1 << 20];
        for _ in 0..200 {
            w.write_all(&chunk).unwrap();
        }
        w.write_all(b"\n").unwrap();
    }
    let (code, err, rss) = convert_measured(&f, "mta-turnstile", &input, &dir.join("out.parquet"));
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!("worker convert of a 200 MB line: peak RSS {} MiB", rss / MIB);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("line 2") && err.contains("longer than 1048576 bytes"), "{err}");
    assert!(err.len() < 1000, "{}", err.len());
    assert!(rss < 128 * MIB, "peak RSS {} MiB", rss / MIB);
}

#[test]
fn a_10000_column_schema_converts_in_bounded_memory() {
    let n = 10_000;
    let mut toml = String::from(
        "[[dataset]]\nname = \"wide\"\ncadence = \"monthly\"\nurl_template = \"http://h/wide_{yyyy}-{mm}.csv\"\nfirst = \"2020-01-01\"\ncolumns = [\n",
    );
    for i in 0..n {
        let ty = if i % 2 == 0 { "int64" } else { "string" };
        toml.push_str(&format!("  {{ source = \"c{i}\", type = \"{ty}\" }},\n"));
    }
    toml.push_str("]\n");
    let f = Fleet::local("wide").with_catalog(&toml);
    let dir = tmpdir("wide");
    let input = dir.join("wide.csv");
    let mut csv = (0..n).map(|i| format!("c{i}")).collect::<Vec<_>>().join(",");
    csv.push('\n');
    let mut rng = Rng::new(7);
    for _ in 0..200 {
        let row: Vec<String> = (0..n)
            .map(|i| if i % 2 == 0 { rng.below(1000).to_string() } else { format!("s{}", rng.below(50)) })
            .collect();
        csv.push_str(&row.join(","));
        csv.push('\n');
    }
    std::fs::write(&input, csv).unwrap();
    let output = dir.join("out.parquet");
    let (code, err, rss) = convert_measured(&f, "wide", &input, &output);
    eprintln!("worker convert of 10,000 columns x 200 rows: peak RSS {} MiB", rss / MIB);
    assert_eq!(code, 0, "{err}");
    let (batches, _) = read_parquet(std::fs::read(&output).unwrap().into());
    assert_eq!(rows(&batches), 200);
    assert_eq!(batches[0].num_columns(), n + 1, "the columns, then _lakefleet_partition");
    // About 100 MiB since wide schemas write LZ4 pages without dictionaries
    // (a zstd codec per column held ~13 KiB each: 230-280 MiB before).
    assert!(rss < 128 * MIB, "peak RSS {} MiB", rss / MIB);
    let meta = parquet::file::reader::FileReader::metadata(
        &parquet::file::serialized_reader::SerializedFileReader::new(std::fs::File::open(&output).unwrap()).unwrap(),
    )
    .clone();
    assert_eq!(meta.row_group(0).column(0).compression(), parquet::basic::Compression::LZ4_RAW);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread")]
async fn messages_that_disagree_with_the_catalog_park_as_bad_message_and_write_nothing() {
    let src = Source::start().await;
    let f = Fleet::local("distrust");
    serve_mta_weeks(&src, 3, 100, 60, &[]);
    let w = f.worker(&[]);
    w.ready().await;
    // Another partition's key: would overwrite week 1's object with week 0's data.
    let mut wrong_key = mta_task("bf-evil", week(0), &src);
    wrong_key.object_key = mta_task("bf-evil", week(1), &src).object_key;
    // A URL into another service.
    let mut wrong_url = mta_task("bf-evil", week(1), &src);
    wrong_url.source_url = "http://127.0.0.1:6379/".into();
    // A path outside the dataset.
    let mut escape = mta_task("bf-evil", week(2), &src);
    escape.object_key = "../../etc/cron.d/x".into();
    // A partition that is not a Saturday, and a 300 KB dataset name.
    let mut not_saturday = mta_task("bf-evil", week(0), &src);
    not_saturday.partition = "2022-01-03".into();
    let mut huge_name = mta_task("bf-evil", week(0), &src);
    huge_name.dataset = "x".repeat(300_000);
    // A mirror on the local file system.
    let mut file_mirror = mta_task("bf-evil", week(1), &src);
    file_mirror.mirror = Some("file:///etc".into());
    file_mirror.source_url = "file:///etc/turnstile_220108.txt".into();
    for t in [&wrong_key, &wrong_url, &escape, &not_saturday, &huge_name, &file_mirror] {
        f.publish_task(t).await;
    }
    eventually(Duration::from_secs(30), "six parked messages", || async {
        f.queue_len(&f.topology().parking).await == 6
    })
    .await;
    let parked = f.parked().await;
    assert!(parked.iter().all(|p| p.reason == "bad_message" && p.attempts == 1), "{parked:?}");
    assert!(parked.iter().all(|p| p.error.len() < 700 && p.dataset.len() < 300), "{parked:?}");
    let errors: Vec<&str> = parked.iter().map(|p| p.error.as_str()).collect();
    assert!(errors.iter().any(|e| e.contains("object_key") && e.contains("disagrees")), "{errors:?}");
    assert!(errors.iter().any(|e| e.contains("source_url") && e.contains("6379")), "{errors:?}");
    assert!(errors.iter().any(|e| e.contains("not a weekly (Saturdays) partition date")), "{errors:?}");
    assert!(errors.iter().any(|e| e.contains("unknown dataset") && e.contains("(300000 bytes)")), "{errors:?}");
    assert!(errors.iter().any(|e| e.contains("file:///etc") && e.contains("not an http(s) URL")), "{errors:?}");
    assert!(src.hits(&mta_name(week(0))).is_empty() && src.hits(&mta_name(week(1))).is_empty(), "nothing fetched");
    assert!(f.objects().await.is_empty(), "nothing written: {:?}", f.objects().await);
    assert_eq!(w.get("/readyz").await.0, 200);
    f.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_task_that_kills_workers_is_parked_as_poison() {
    let src = Source::start().await;
    let f = Fleet::local("poisoncrash");
    // A slow source keeps the task in flight long enough to kill its worker.
    serve_mta_weeks(&src, 1, 2000, 80, &vec![Fault::Slow(50, Duration::from_secs(60)); 4]);
    let out = f.backfill_mta(&src, week(0), week(0), &[]);
    assert_eq!(out.status.code(), Some(0));
    let args = ["--poison-after", "2", "--lease-ttl", "3", "--concurrency", "1"];
    for round in 0..2 {
        let mut w = f.worker(&args);
        w.ready().await;
        wait_in_flight(&w, 1.0).await;
        eventually(Duration::from_secs(20), "the download started", || async {
            src.hits(&mta_name(week(0))).len() > round
        })
        .await;
        w.kill9();
    }
    let w = f.worker(&args);
    w.ready().await;
    eventually(Duration::from_secs(40), "parked as poison", || async { f.queue_len(&f.topology().parking).await == 1 })
        .await;
    let parked = f.parked().await;
    assert_eq!(parked[0].reason, "poison", "{parked:?}");
    assert!(parked[0].error.contains("delivered 2 times without an ack"), "{parked:?}");
    assert_eq!(src.hits(&mta_name(week(0))).len(), 2, "not fetched a third time");
    let s = wait_finished(&f, &out, Duration::from_secs(10)).await;
    assert!(s.parked[0].1.starts_with("poison:"), "{:?}", s.parked);
    assert!(f.objects().await.is_empty());
    f.cleanup().await;
}
