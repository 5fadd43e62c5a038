//! Issue 22's attacks, each reproduced against the real binaries, RabbitMQ
//! and Redis: a portal that lands wrong rows (columns swapped on a later
//! page, rows outside the slice, a `$where`-ignoring mirror, a lying count,
//! a page that does not end, an HTML page with 200), a dictionary bomb and a
//! footer of 100,000 row groups, a year-9999 timestamp (a zone-aware one is
//! converted), a
//! 31-year Retry-After, a dead worker's host slots, and an `AMQP_URL` whose
//! first node is down.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::cast::AsArray;
use arrow_array::{ArrayRef, DictionaryArray, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use lakefleet_testkit::soda::{PageFault, Soda, SodaData};
use lakefleet_testkit::*;

const MIB: u64 = 1 << 20;
const BOROUGHS: [&str; 4] = ["Manhattan", "Brooklyn", "Queens", "Bronx"];

/// A Socrata dataset of the test portal: `ts, station, borough, ridership`,
/// pages of 100 rows.
fn soda_entry(name: &str, id: &str) -> String {
    format!(
        "[[dataset]]\nname = \"{name}\"\ncadence = \"monthly\"\nformat = \"socrata\"\nfirst = \"2023-01-01\"\ncolumns = [ {{ source = \"ts\", type = \"timestamp\", format = \"%Y-%m-%dT%H:%M:%S%.f\" }}, {{ source = \"station\", type = \"string\" }}, {{ source = \"borough\", type = \"string\" }}, {{ source = \"ridership\", type = \"int64\" }} ]\ntime_zone = \"America/New_York\"\n[dataset.socrata]\nportal = \"https://data.example.org\"\ntime_column = \"ts\"\nids = [ {{ id = \"{id}\", first = \"2023-01-01\" }} ]\npage_rows = 100\n\n"
    )
}

/// `n` rows of January 2024, a minute apart; their ridership sum.
fn january(n: usize) -> (Vec<Vec<String>>, i64) {
    let start = d("2024-01-01").and_hms_opt(0, 0, 0).unwrap();
    let rows: Vec<Vec<String>> = (0..n)
        .map(|i| {
            vec![
                (start + chrono::Duration::minutes(i as i64)).format("%Y-%m-%dT%H:%M:%S%.3f").to_string(),
                format!("Station {}", i % 7),
                BOROUGHS[i % 4].to_string(),
                i.to_string(),
            ]
        })
        .collect();
    (rows, (0..n as i64).sum())
}

fn soda_data(rows: Vec<Vec<String>>) -> SodaData {
    SodaData {
        fields: ["ts", "station", "borough", "ridership"].map(String::from).to_vec(),
        time_field: "ts".into(),
        rows,
    }
}

fn key(ds: &str) -> String {
    format!("{ds}/year=2024/{ds}_2024-01.parquet")
}

#[tokio::test(flavor = "multi_thread")]
async fn a_portal_that_sends_wrong_pages_lands_nothing_wrong_and_good_slices_land_exactly() {
    let soda = Soda::start().await;
    let cases: [(&str, &str, Option<PageFault>); 8] = [
        ("soda-swap", "swap-0001", Some(PageFault::SwapColumnsAfterFirstPage)),
        ("soda-glued", "glue-0001", Some(PageFault::NoFinalNewline)),
        ("soda-html", "html-0001", Some(PageFault::HtmlAtOffset(100))),
        ("soda-endless", "long-0001", Some(PageFault::Overlong(1000))),
        ("soda-where", "wher-0001", Some(PageFault::IgnoreWhere)),
        ("soda-ceiling", "huge-0001", Some(PageFault::CountSays(1_000_000_000_000))),
        ("soda-lying", "lies-0001", Some(PageFault::CountSays(1_000_000))),
        ("soda-good", "good-0001", None),
    ];
    let (january_rows, sum) = january(250);
    let mut toml = String::new();
    for (name, id, fault) in &cases {
        toml.push_str(&soda_entry(name, id));
        let mut data = january_rows.clone();
        if *name == "soda-where" {
            // A static mirror's whole dataset: three November rows first.
            let mut nov = january(3).0;
            for r in &mut nov {
                r[0] = r[0].replace("2024-01-01", "2023-11-30");
            }
            data = [nov, data].concat();
        }
        if *name == "soda-lying" {
            data.clear();
        }
        soda.put(id, soda_data(data));
        if let Some(f) = fault {
            soda.page_fault(id, f.clone());
        }
    }
    let f = Fleet::local("soda-attacks").with_catalog(&toml);
    let w = f.worker(&[]);
    w.ready().await;
    let outs: Vec<_> = cases
        .iter()
        .map(|(name, ..)| (*name, f.backfill(name, "2024-01-01", "2024-01-31", &["--mirror", &soda.base])))
        .collect();
    let mut status = std::collections::HashMap::new();
    for (name, out) in &outs {
        assert_eq!(out.status.code(), Some(0), "{name}");
        status.insert(*name, wait_finished(&f, out, Duration::from_secs(90)).await);
    }
    // Four faults are transient (retried, then landed), one is harmless, two park.
    for name in ["soda-swap", "soda-glued", "soda-html", "soda-endless", "soda-good"] {
        let s = &status[name];
        assert_eq!((s.done, s.parked.len()), (1, 0), "{name}: {s:?}");
        let (batches, _) = read_parquet(f.read_object(&key(name)).await);
        assert_eq!(rows(&batches), 250, "{name}");
        assert_eq!(sum_i64(&batches, "ridership"), sum, "{name}");
        // Every row's station and borough under their own names.
        for b in &batches {
            let st = b.column_by_name("station").unwrap().as_string::<i32>();
            let bo = b.column_by_name("borough").unwrap().as_string::<i32>();
            for i in 0..b.num_rows() {
                assert!(st.value(i).starts_with("Station "), "{name}: station {:?}", st.value(i));
                assert!(BOROUGHS.contains(&bo.value(i)), "{name}: borough {:?}", bo.value(i));
            }
        }
    }
    for name in ["soda-swap", "soda-html", "soda-endless"] {
        assert!(status[name].retried >= 1, "{name}: {:?}", status[name]);
    }
    assert_eq!(status["soda-glued"].retried, 0, "a page without a final newline is fine");
    let log = w.log();
    assert!(log.contains("the portal changed the columns while the slice was read"), "{log}");
    assert!(log.contains("page 2 is not CSV: it starts with \"<html>"), "{log}");
    assert!(log.contains("the portal returned more rows than asked"), "{log}");

    let parked = f.parked().await;
    let of = |d: &str| parked.iter().find(|p| p.dataset == d).unwrap_or_else(|| panic!("{d}: {parked:?}")).clone();
    let outside = of("soda-where");
    assert_eq!(outside.reason, "bad_row", "{outside:?}");
    assert!(
        outside.error.contains(
            "row 1, column ts: 2023-11-30 00:00:00 is outside the partition's slice [2024-01-01, 2024-02-01)"
        ),
        "{outside:?}"
    );
    let ceiling = of("soda-ceiling");
    assert_eq!(ceiling.reason, "too_large", "{ceiling:?}");
    assert!(
        ceiling.error.contains("1000000000000 rows, more than the dataset's max_slice_rows 500000000"),
        "{ceiling:?}"
    );
    let lying = of("soda-lying");
    assert_eq!(lying.reason, "attempts_exhausted", "{lying:?}");
    assert!(lying.error.contains("the slice changed while it was read (or its count lies)"), "{lying:?}");
    // The ceiling asked the count and no page; the lying count, a count and one page per attempt.
    let reqs = soda.requests();
    let asked = |id: &str| reqs.iter().filter(|r| r.target.contains(&format!("/{id}."))).count();
    assert_eq!(asked("huge-0001"), 1);
    let attempts: usize = lying.attempts as usize;
    assert_eq!(asked("lies-0001"), 2 * attempts, "{attempts} attempts");
    assert!(f.objects().await.iter().all(|(k, _)| !k.contains("soda-where") && !k.contains("soda-lying")));
    // The endless page (100,000 rows, about 5 MB, asked with $limit=100) was
    // read to its limit and no further, then the good slice in full.
    let endless = metric(&w.metrics().await, "lakefleet_source_bytes_total", &[("dataset", "soda-endless")]);
    assert!(endless > 0.0 && endless < 1e6, "{endless} bytes read for soda-endless");
    f.cleanup().await;
}

/// A Parquet file of `VendorID` and `store_and_fwd_flag` (green's names):
/// the flag a dictionary of one `value_len`-byte value under every row.
fn dictionary_bomb(value_len: usize, rows: usize) -> Vec<u8> {
    let keys = arrow_array::Int32Array::from(vec![0; rows]);
    let values = StringArray::from(vec!["Y".repeat(value_len)]);
    let dict = DictionaryArray::<arrow_array::types::Int32Type>::try_new(keys, Arc::new(values)).unwrap();
    write_parquet(vec![
        ("VendorID", Arc::new(Int64Array::from(vec![2i64; rows])) as ArrayRef),
        ("store_and_fwd_flag", Arc::new(dict)),
    ])
}

fn write_parquet(cols: Vec<(&str, ArrayRef)>) -> Vec<u8> {
    let batch = RecordBatch::try_from_iter(cols).unwrap();
    let props = parquet::file::properties::WriterProperties::builder()
        .set_compression(parquet::basic::Compression::ZSTD(Default::default()))
        .set_statistics_enabled(parquet::file::properties::EnabledStatistics::None)
        .build();
    let mut out = Vec::new();
    let mut w = parquet::arrow::ArrowWriter::try_new(&mut out, batch.schema(), Some(props)).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dictionary_bomb_parks_at_its_first_delivery_in_bounded_memory() {
    let src = Source::start().await;
    let f = Fleet::local("dict-bomb");
    // 50 KB under 100,000 rows: 5 GB decoded from a file of a few kilobytes.
    let bomb = dictionary_bomb(50_000, 100_000);
    assert!(bomb.len() < 64 << 10, "{}", bomb.len());
    src.put("green_tripdata_2024-01.parquet", bomb);
    // A value longer than max_record_bytes (1 MiB), under 3 rows.
    src.put("green_tripdata_2024-02.parquet", dictionary_bomb(2 << 20, 3));
    // An error page a proxy served with 200 under the Parquet name.
    let page = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>";
    src.put("green_tripdata_2024-03.parquet", page.as_bytes().to_vec());
    let w = f.worker(&["--concurrency", "1"]);
    w.ready().await;
    let out = f.backfill("nyc-tlc-green", "2024-01-01", "2024-03-31", &["--mirror", &src.base]);
    assert_eq!(out.status.code(), Some(0));
    let s = wait_finished(&f, &out, Duration::from_secs(60)).await;
    assert_eq!((s.done, s.parked.len(), s.retried), (0, 3, 0), "{s:?}");
    let rss = peak_rss(w.pid());
    eprintln!("worker peak RSS after the dictionary bomb: {} MiB", rss / MIB);
    assert!(rss > 0 && rss < 128 * MIB, "peak RSS {} MiB", rss / MIB);
    let parked = f.parked().await;
    let of = |p: &str| parked.iter().find(|h| h.partition == p).unwrap_or_else(|| panic!("{p}: {parked:?}")).clone();
    let bomb = of("2024-01-01");
    assert_eq!((bomb.reason.as_str(), bomb.attempts), ("too_large", 1), "{bomb:?}");
    assert!(
        bomb.error.contains("its text decodes to") && bomb.error.contains("dictionary values repeated"),
        "{bomb:?}"
    );
    let long = of("2024-02-01");
    assert_eq!(long.reason, "bad_row", "{long:?}");
    assert!(
        long.error.contains("row 1 (row group 1), column store_and_fwd_flag -> store_and_fwd_flag: a value of 2097152 bytes, longer than max_record_bytes 1048576"),
        "{long:?}"
    );
    let html = of("2024-03-01");
    assert_eq!(html.reason, "corrupt_source", "{html:?}");
    assert!(
        html.error.contains("green_tripdata_2024-03.parquet: not a Parquet file, which dataset nyc-tlc-green reads: it starts with \"<?xml"),
        "{html:?}"
    );
    assert!(f.objects().await.is_empty(), "nothing in the lake");
    f.cleanup().await;
}

#[test]
fn footers_and_years_that_readers_cannot_take_are_refused_naming_them_and_zones_are_converted() {
    let dir = tmpdir("attacks-convert");
    let run = |name: &str, bytes: Vec<u8>, dataset: &str| {
        let input = dir.join(name);
        std::fs::write(&input, bytes).unwrap();
        let out = worker_convert(dataset, &input, &dir.join("out.parquet"));
        (out.status.code(), stderr(&out))
    };
    // 100,000 one-row row groups: the footer alone is tens of megabytes.
    let batch = RecordBatch::try_from_iter([("VendorID", Arc::new(Int64Array::from(vec![1i64])) as ArrayRef)]).unwrap();
    let mut many = Vec::new();
    let mut w = parquet::arrow::ArrowWriter::try_new(&mut many, batch.schema(), None).unwrap();
    for _ in 0..100_000 {
        w.write(&batch).unwrap();
        w.flush().unwrap();
    }
    w.close().unwrap();
    let (code, err) = run("green_tripdata_2024-01.parquet", many, "nyc-tlc-green");
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("its Parquet footer (metadata) is") && err.contains("more than 8388608"), "{err}");

    // Pickup times in America/New_York are instants: the table stores them
    // as they are (no shift by the zone's offset, in either direction).
    let t = 1_704_110_400_000_000i64; // 2024-01-01 12:00 UTC, 07:00 in New York
    let zoned = TimestampMicrosecondArray::from(vec![t]).with_timezone("America/New_York");
    let file = write_parquet(vec![("tpep_pickup_datetime", Arc::new(zoned) as ArrayRef)]);
    let (code, err) = run("yellow_tripdata_2024-01.parquet", file, "nyc-tlc-yellow");
    assert_eq!(code, Some(0), "{err}");
    let out = std::fs::read(dir.join("out.parquet")).unwrap();
    let batch = parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(bytes::Bytes::from(out), 16)
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let pickup = batch.column_by_name("pickup_datetime").unwrap();
    assert!(
        matches!(pickup.data_type(), arrow_schema::DataType::Timestamp(arrow_schema::TimeUnit::Microsecond, Some(z)) if z.as_ref() == "UTC"),
        "{}",
        pickup.data_type()
    );
    assert_eq!(pickup.as_primitive::<arrow_array::types::TimestampMicrosecondType>().value(0), t);
    // Year 9999: the row fails naming the value.
    let y9999 = 253_370_764_800_000_000i64; // 9999-01-01
    let file = write_parquet(vec![(
        "tpep_pickup_datetime",
        Arc::new(TimestampMicrosecondArray::from(vec![t, y9999])) as ArrayRef,
    )]);
    let (code, err) = run("yellow_tripdata_2024-01.parquet", file, "nyc-tlc-yellow");
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("row 2 (row group 1), column tpep_pickup_datetime -> pickup_datetime: 9999-01-01 00:00:00 is outside 1677-09-22 to 2262-04-11"),
        "{err}"
    );
    // An HTML page saved under a Parquet name: never read as CSV.
    let html = b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AccessDenied</Code></Error>".to_vec();
    let (code, err) = run("green_tripdata_2022-01.parquet", html, "nyc-tlc-green");
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("not a Parquet file, which dataset nyc-tlc-green reads: it starts with \"<?xml"), "{err}");
    assert!(!err.contains("header does not match"), "{err}");
}

/// Two datasets on one source host (the same files, two names), with `options`.
fn two_on_one_host(options: &str) -> String {
    format!("{}\n{}", mta_catalog("mta-first", options), mta_catalog("mta-second", options))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_31_year_retry_after_is_capped_shown_and_lifted_and_other_datasets_wait_without_parking() {
    let src = Source::start().await;
    let f = Fleet::local("retry-after").with_catalog(&two_on_one_host(""));
    serve_mta_weeks(&src, 2, 50, 7, &[]);
    src.fault(&mta_name(week(0)), &[Fault::Throttle(1_000_000_000)]);
    let w = f.worker(&["--concurrency", "2"]);
    w.ready().await;
    let (w0, w1) = (week(0).to_string(), week(1).to_string());
    let first = f.backfill("mta-first", &w0, &w0, &["--mirror", &src.base]);
    assert_eq!(first.status.code(), Some(0));
    let host = src.base.trim_start_matches("http://").trim_end_matches('/').to_string();
    // The pause is the cap (an hour), not 31 years.
    let mut shown = String::new();
    eventually(Duration::from_secs(20), "the host is paused", || {
        let out = f.producer(&["hosts"]);
        shown = stdout(&out);
        let paused = shown.contains(&host) && shown.contains("until ");
        async move { paused }
    })
    .await;
    let secs: u64 = shown
        .split("s)")
        .next()
        .and_then(|h| h.rsplit('(').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{shown}"));
    assert!((3500..=3600).contains(&secs), "paused for {secs}s: {shown}");
    assert!(w.log().contains("Retry-After longer than the dataset's max_retry_after_seconds: capped"), "{}", w.log());
    assert!(w.log().contains("asked_s=1000000000"), "{}", w.log());

    // Another dataset on the paused host is delayed, not parked.
    let second = f.backfill("mta-second", &w1, &w1, &["--mirror", &src.base]);
    assert_eq!(second.status.code(), Some(0));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let st = f.state().await;
    let before = st.backfill(&backfill_id(&second)).await.unwrap().unwrap();
    assert_eq!((before.done, before.parked.len(), before.retried), (0, 0, 0), "{before:?}");
    assert!(w.log().contains("delayed: waiting for the source host (not an attempt)"), "{}", w.log());

    // Lifted: both land.
    let out = f.producer(&["hosts", "resume", &host]);
    assert_eq!(out.status.code(), Some(0));
    assert!(stdout(&out).contains("pause lifted"), "{}", stdout(&out));
    let a = wait_finished(&f, &first, Duration::from_secs(60)).await;
    let b = wait_finished(&f, &second, Duration::from_secs(60)).await;
    assert_eq!((a.done, a.parked.len(), b.done, b.parked.len(), b.retried), (1, 0, 1, 0, 0), "{a:?} {b:?}");
    assert!(!stdout(&f.producer(&["hosts"])).contains("until "), "no pause is left");
    // No task is counted as waiting once none waits.
    let waiting = metric(&w.metrics().await, "lakefleet_host_waiting_tasks", &[("host", &host)]);
    assert_eq!(waiting, 0.0);
    f.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_workers_host_slots_free_within_a_minute() {
    let src = Source::start().await;
    let f = Fleet::local("dead-slots").with_catalog(&two_on_one_host("max_downloads_per_host = 4"));
    serve_mta_weeks(&src, 5, 50, 9, &[]);
    // The first download of weeks 0-3 trickles for two minutes: four slots held.
    for i in 0..4 {
        src.fault(&mta_name(week(i)), &[Fault::Slow(8, Duration::from_secs(120))]);
    }
    let mut a = f.worker(&["--concurrency", "4"]);
    a.ready().await;
    let out = f.backfill("mta-first", &week(0).to_string(), &week(3).to_string(), &["--mirror", &src.base]);
    assert_eq!(out.status.code(), Some(0));
    eventually(Duration::from_secs(20), "four downloads in flight", || {
        let n = src.max_in_flight();
        async move { n >= 4 }
    })
    .await;
    a.kill9();
    let killed = Instant::now();
    let b = f.worker(&["--concurrency", "4"]);
    b.ready().await;
    // Week 4 needs a slot of the same host.
    let more = f.backfill("mta-first", &week(4).to_string(), &week(4).to_string(), &["--mirror", &src.base]);
    assert_eq!(more.status.code(), Some(0));
    eventually(Duration::from_secs(60), "a download of week 4", || {
        let hit = !src.hits(&mta_name(week(4))).is_empty();
        async move { hit }
    })
    .await;
    let took = killed.elapsed();
    eprintln!("first download after kill -9 of the slot holder: {took:?}");
    assert!(took < Duration::from_secs(60), "{took:?}");
    let s = wait_finished(&f, &more, Duration::from_secs(60)).await;
    assert_eq!((s.done, s.parked.len()), (1, 0), "{s:?}");
    let s = wait_finished(&f, &out, Duration::from_secs(90)).await;
    assert_eq!((s.done, s.parked.len()), (4, 0), "{s:?}");
    f.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_amqp_url_whose_first_node_is_down_connects_to_the_next() {
    let src = Source::start().await;
    let mut f = Fleet::local("amqp-nodes");
    let down = format!("amqp://guest:guest@127.0.0.1:{}/%2f", free_port());
    f.env.push(("AMQP_URL".into(), format!("{down},{AMQP}")));
    let expect = serve_mta_weeks(&src, 3, 40, 3, &[]);
    let w = f.worker(&[]);
    w.ready().await;
    let out = f.backfill_mta(&src, week(0), week(2), &["--wait", "--wait-timeout", "60"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(w.log().contains("connected to another RabbitMQ node"), "{}", w.log());
    oracle(&f, &expect, &[]).await;
    f.cleanup().await;
}
