//! The TLC's official Parquet files, era by era: fixtures in each era's
//! physical schema (checked against the reference table), converted by
//! `worker convert` and backfilled by a fleet of two workers into one schema.

use std::collections::BTreeSet;
use std::time::Duration;

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_array::{Array, RecordBatch};
use arrow_schema::{DataType, TimeUnit};
use lakefleet_testkit::tlc::{Fixture, Layout, TlcFile, physical_types, yellow};
use lakefleet_testkit::*;

/// The reference table (`testdata/`, a copy of the shared reference): the
/// columns and physical types of one published yellow month.
fn reference(month: &str) -> BTreeSet<(String, String)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../testdata/tlc_parquet_schema_history.csv");
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split(',').collect();
            (f[0] == "yellow" && f[1] == month).then(|| (f[2].to_string(), f[3].to_string()))
        })
        .collect()
}

#[test]
fn fixtures_have_the_published_physical_schemas() {
    for (layout, month) in [
        (Layout::Y2009, "2009-01"),
        (Layout::Y2010, "2010-02"),
        (Layout::Y2011, "2011-02"),
        (Layout::Y2018, "2018-07"),
        (Layout::Y2023, "2023-02"),
    ] {
        let file = yellow(&Fixture::new(layout, month, 10, 1));
        let ours: BTreeSet<(String, String)> = physical_types(&file.bytes).into_iter().collect();
        assert_eq!(ours, reference(month), "{layout:?} vs the TLC's {month}");
    }
    // 2025: the 2024 layout plus cbd_congestion_fee.
    let mut want = reference("2024-08");
    want.insert(("cbd_congestion_fee".into(), "DOUBLE".into()));
    let ours: BTreeSet<_> =
        physical_types(&yellow(&Fixture::new(Layout::Y2025, "2025-01", 10, 1)).bytes).into_iter().collect();
    assert_eq!(ours, want);
}

fn f64_sum(batches: &[RecordBatch], col: &str) -> f64 {
    batches.iter().flat_map(|b| b.column_by_name(col).unwrap().as_primitive::<Float64Type>().iter().flatten()).sum()
}

fn i64_sum(batches: &[RecordBatch], col: &str) -> i64 {
    batches.iter().flat_map(|b| b.column_by_name(col).unwrap().as_primitive::<Int64Type>().iter().flatten()).sum()
}

/// The distinct values of a text column.
fn texts(batches: &[RecordBatch], col: &str) -> BTreeSet<String> {
    batches
        .iter()
        .flat_map(|b| {
            b.column_by_name(col).unwrap().as_string::<i32>().iter().flatten().map(String::from).collect::<Vec<_>>()
        })
        .collect()
}

fn non_null(batches: &[RecordBatch], col: &str) -> usize {
    batches.iter().map(|b| b.column_by_name(col).unwrap()).map(|a| a.len() - a.null_count()).sum()
}

/// Checks one converted month against its source file.
fn check_month(batches: &[RecordBatch], file: &TlcFile) {
    let what = &file.name;
    assert_eq!(rows(batches), file.rows, "{what}: rows");
    assert!((f64_sum(batches, "fare_amount") - file.fare_sum).abs() < 1e-6, "{what}: fares");
    assert_eq!(i64_sum(batches, "passenger_count"), file.passengers, "{what}: passengers");
    // Stored as instants (UTC microseconds) of the New York wall-clock times.
    let pickup: i64 = batches
        .iter()
        .flat_map(|b| {
            let c = b.column_by_name("pickup_datetime").unwrap();
            assert_eq!(c.data_type(), &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())));
            c.as_primitive::<arrow_array::types::TimestampMicrosecondType>().iter().flatten().collect::<Vec<_>>()
        })
        .map(|us| us / 1000)
        .sum();
    assert_eq!(pickup, file.pickup_utc_ms_sum, "{what}: pickup timestamps");
    // 2009/2010 keep their text codes and coordinates; later eras their zone ids and integer codes.
    let text = file.text_codes;
    let modern = file.rows - text;
    assert_eq!(non_null(batches, "vendor_name"), text, "{what}: vendor_name");
    assert_eq!(non_null(batches, "payment_type_name"), text, "{what}: payment_type_name");
    assert_eq!(non_null(batches, "pickup_longitude"), text, "{what}: pickup_longitude");
    assert_eq!(non_null(batches, "vendor_id"), modern, "{what}: vendor_id");
    assert_eq!(non_null(batches, "payment_type"), modern, "{what}: payment_type");
    assert_eq!(non_null(batches, "pu_location_id"), modern, "{what}: pu_location_id");
}

#[test]
fn worker_convert_reads_a_parquet_month_and_picks_its_era_from_the_name() {
    let dir = tmpdir("tlc-convert");
    for fx in [Fixture::new(Layout::Y2009, "2009-03", 2000, 7).gzip(), Fixture::new(Layout::Y2023, "2023-05", 2000, 8)]
    {
        let file = yellow(&fx);
        let input = dir.join(&file.name);
        std::fs::write(&input, &file.bytes).unwrap();
        let output = dir.join("out.parquet");
        let out = worker_convert("nyc-tlc-yellow", &input, &output);
        assert_eq!(out.status.code(), Some(0));
        let (batches, kv) = read_parquet(std::fs::read(&output).unwrap().into());
        check_month(&batches, &file);
        assert_eq!(kv["lakefleet.source_sha256"], sha256_hex(&file.bytes));
    }
    // Without a date in its name, a 2009 file is read with the current names:
    // its text payment codes do not parse as integers, and the error says where.
    let file = yellow(&Fixture::new(Layout::Y2009, "2009-03", 50, 7));
    let input = dir.join("yellow.parquet");
    std::fs::write(&input, &file.bytes).unwrap();
    let out = worker_convert("nyc-tlc-yellow", &input, &dir.join("out2.parquet"));
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("yellow.parquet: row 1 (row group 1), column Payment_Type -> payment_type: cannot parse"),
        "{err}"
    );
}

/// The months of the backfill test: every era, every compression, three
/// timestamp units, several row groups each.
fn era_months() -> Vec<TlcFile> {
    [
        Fixture::new(Layout::Y2009, "2009-01", 3000, 1).gzip(),
        Fixture::new(Layout::Y2010, "2010-02", 3000, 2).snappy(),
        Fixture::new(Layout::Y2011, "2011-02", 3000, 3).unit(TimeUnit::Millisecond),
        Fixture::new(Layout::Y2018, "2018-07", 3000, 4).gzip().unit(TimeUnit::Nanosecond),
        Fixture::new(Layout::Y2023, "2023-02", 3000, 5),
        Fixture::new(Layout::Y2025, "2025-01", 3000, 6).snappy(),
    ]
    .iter()
    .map(yellow)
    .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_backfill_of_every_era_lands_every_month_in_one_schema() {
    let src = Source::start().await;
    let f = Fleet::local("tlc-eras");
    let files = era_months();
    for file in &files {
        assert!(file.row_groups >= 3, "{}", file.name);
        src.put(&file.name, file.bytes.clone());
    }
    let workers = [f.worker(&[]), f.worker(&[])];
    for w in &workers {
        w.ready().await;
    }
    let mut outs = Vec::new();
    for file in &files {
        let m = file.month.to_string();
        let out = f.backfill("nyc-tlc-yellow", &m, &m, &["--mirror", &src.base]);
        assert_eq!(out.status.code(), Some(0));
        outs.push(out);
    }
    for out in &outs {
        let s = wait_finished(&f, out, Duration::from_secs(60)).await;
        assert_eq!((s.done, s.parked.len()), (1, 0), "{s:?}");
    }
    let objects = f.objects().await;
    assert_eq!(objects.len(), files.len(), "{objects:?}");
    let mut schema = None;
    for file in &files {
        let key = format!(
            "nyc-tlc-yellow/year={}/nyc-tlc-yellow_{}.parquet",
            file.month.format("%Y"),
            file.month.format("%Y-%m")
        );
        let (batches, kv) = read_parquet(f.read_object(&key).await);
        check_month(&batches, file);
        assert_eq!(kv["lakefleet.source_sha256"], sha256_hex(&file.bytes), "{key}");
        let s = batches[0].schema();
        assert_eq!(
            s.field_with_name("pickup_datetime").unwrap().data_type(),
            &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()))
        );
        assert_eq!(s.field_with_name("vendor_id").unwrap().data_type(), &DataType::Int64);
        assert_eq!(s.field_with_name("airport_fee").unwrap().data_type(), &DataType::Float64);
        match &schema {
            None => schema = Some(s),
            Some(first) => assert_eq!(first, &s, "{key} has the dataset's one schema"),
        }
    }
    // Case drift (Airport_fee) and the null type: the values or nulls, never dropped.
    let key = "nyc-tlc-yellow/year=2023/nyc-tlc-yellow_2023-02.parquet";
    let (batches, _) = read_parquet(f.read_object(key).await);
    assert!((f64_sum(&batches, "airport_fee") - 1.25 * 3000.0).abs() < 1e-6);
    let (batches, _) = read_parquet(f.read_object("nyc-tlc-yellow/year=2025/nyc-tlc-yellow_2025-01.parquet").await);
    assert!((f64_sum(&batches, "cbd_congestion_fee") - 0.75 * 3000.0).abs() < 1e-6);

    // A re-run writes nothing: every month is already done.
    let before = f.objects().await;
    let hits: usize = files.iter().map(|file| src.hits(&file.name).len()).sum();
    let out = f.backfill("nyc-tlc-yellow", "2009-01-01", "2009-01-31", &["--mirror", &src.base]);
    assert!(stdout(&out).contains("1 already done, 0 to publish"), "{}", stdout(&out));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(f.objects().await, before);
    assert_eq!(files.iter().map(|file| src.hits(&file.name).len()).sum::<usize>(), hits, "no download");
    f.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn lossy_values_unknown_columns_and_truncated_files_park_with_reasons_that_name_them() {
    let src = Source::start().await;
    let f = Fleet::local("tlc-faults");
    // 2024-01: a passenger count of 2.5 in a DOUBLE column (row 1235, in the 2nd row group of 1,000 rows).
    let mut fx = Fixture::new(Layout::Y2018, "2024-01", 3000, 11);
    fx.fraction_at = Some(1234);
    fx.row_group_rows = 1000;
    let fraction = yellow(&fx);
    // 2024-02: a column the dataset does not know.
    let mut fx = Fixture::new(Layout::Y2025, "2024-02", 500, 12);
    fx.extra_column = Some("congestion_relief_fee");
    let drift = yellow(&fx);
    // 2024-03: the server's file lost its footer.
    let truncated = yellow(&Fixture::new(Layout::Y2023, "2024-03", 500, 13));
    // 2024-04: the first download is cut short (Content-Length announced, fewer bytes sent), then whole.
    let cut = yellow(&Fixture::new(Layout::Y2023, "2024-04", 500, 14));
    src.put(&fraction.name, fraction.bytes.clone());
    src.put(&drift.name, drift.bytes.clone());
    src.put(&truncated.name, truncated.bytes[..truncated.bytes.len() - 300].to_vec());
    src.put(&cut.name, cut.bytes.clone());
    src.fault(&cut.name, &[Fault::Truncate(cut.bytes.len() / 2)]);

    let w = f.worker(&[]);
    w.ready().await;
    let out = f.backfill("nyc-tlc-yellow", "2024-01-01", "2024-04-30", &["--mirror", &src.base]);
    assert_eq!(out.status.code(), Some(0));
    let s = wait_finished(&f, &out, Duration::from_secs(60)).await;
    assert_eq!((s.done, s.parked.len(), s.retried), (1, 3, 1), "{s:?}");

    let parked = f.parked().await;
    let reason = |p: &str| parked.iter().find(|h| h.partition == p).unwrap_or_else(|| panic!("{p}: {parked:?}"));
    let bad = reason("2024-01-01");
    assert_eq!(bad.reason, "bad_row");
    assert!(
        bad.error.contains("yellow_tripdata_2024-01.parquet: row 1235 (row group 2), column passenger_count -> passenger_count: 2.5 has a fraction"),
        "{bad:?}"
    );
    let drifted = reason("2024-02-01");
    assert_eq!(drifted.reason, "schema_drift");
    assert!(drifted.error.contains("unknown column(s) congestion_relief_fee (double)"), "{drifted:?}");
    let corrupt = reason("2024-03-01");
    assert_eq!(corrupt.reason, "corrupt_source");
    assert!(corrupt.error.contains("yellow_tripdata_2024-03.parquet: not a readable Parquet file"), "{corrupt:?}");
    let m = w.metrics().await;
    assert_eq!(metric(&m, "lakefleet_tasks_parked_total", &[("reason", "schema_drift")]), 1.0);

    let (batches, _) = read_parquet(f.read_object("nyc-tlc-yellow/year=2024/nyc-tlc-yellow_2024-04.parquet").await);
    check_month(&batches, &cut);
    assert_eq!(src.hits(&cut.name).len(), 2, "the cut download was retried once");
    // (`parked()` drained the parking queue.)
    let only = [("nyc-tlc-yellow/year=2024/nyc-tlc-yellow_2024-04.parquet".into(), cut.rows, sha256_hex(&cut.bytes))];
    oracle(&f, &only, &[]).await;
    f.cleanup().await;
}

/// The eras the facts file names beyond the first fixtures, each through a
/// real backfill into its dataset's one schema: yellow 2010-01 (text codes),
/// 2026-06 (`request_source`), FHV's casing and type switches, green
/// 2013-2016 with coordinates.
#[tokio::test(flavor = "multi_thread")]
async fn the_eras_the_facts_name_land_in_each_datasets_one_schema() {
    use lakefleet_testkit::tlc::{FHV_COLUMNS, FhvLayout, fhv, green_with_coordinates};
    // The fixtures follow the facts: 2010-01's published physical schema,
    // FHV's seven columns with their casing, in every era.
    let y2010 = yellow(&Fixture::new(Layout::Y2010Text, "2010-01", 600, 21));
    let ours: BTreeSet<(String, String)> = physical_types(&y2010.bytes).into_iter().collect();
    assert_eq!(ours, reference("2010-01"), "the 2010-01 fixture vs the TLC's");
    let y2026 = yellow(&Fixture::new(Layout::Y2026, "2026-06", 500, 22));
    let fhvs = [
        (FhvLayout::F2015, "2015-01"),
        (FhvLayout::F2017, "2017-05"),
        (FhvLayout::F2019, "2019-05"),
        (FhvLayout::F2023, "2023-02"),
    ]
    .map(|(l, m)| (m, fhv(l, m, 400, 23)));
    for (m, f) in &fhvs {
        let names: Vec<String> = physical_types(&f.bytes).into_iter().map(|(n, _)| n).collect();
        let mut want: Vec<String> = FHV_COLUMNS.map(String::from).to_vec();
        want.sort();
        let mut names = names;
        names.sort();
        assert_eq!(names, want, "fhv {m}");
    }
    let (green_name, green_bytes, lon_sum) = green_with_coordinates("2014-03", 300, 24);

    let src = Source::start().await;
    src.put(&y2010.name, y2010.bytes.clone());
    src.put(&y2026.name, y2026.bytes.clone());
    for (_, f) in &fhvs {
        src.put(&f.name, f.bytes.clone());
    }
    src.put(&green_name, green_bytes);
    let f = Fleet::local("tlc-facts");
    let workers = [f.worker(&[]), f.worker(&[])];
    for w in &workers {
        w.ready().await;
    }
    let months: Vec<(&str, String)> =
        [("nyc-tlc-yellow", "2010-01"), ("nyc-tlc-yellow", "2026-06"), ("nyc-tlc-green", "2014-03")]
            .into_iter()
            .map(|(d, m)| (d, m.to_string()))
            .chain(fhvs.iter().map(|(m, _)| ("nyc-tlc-fhv", m.to_string())))
            .collect();
    for (ds, m) in &months {
        let out = f.backfill(ds, &format!("{m}-01"), &format!("{m}-01"), &["--mirror", &src.base]);
        assert_eq!(out.status.code(), Some(0), "{ds} {m}");
        let s = wait_finished(&f, &out, Duration::from_secs(60)).await;
        assert_eq!((s.done, s.parked.len()), (1, 0), "{ds} {m} lands, not parks: {s:?}");
    }
    let cat = lakefleet::catalog::Catalog::builtin();
    let read = |ds: &str, m: &str| {
        let key = format!("{ds}/year={}/{ds}_{m}.parquet", &m[..4]);
        let f = &f;
        async move { read_parquet(f.read_object(&key).await).0 }
    };
    let same_schema = |ds: &str, b: &[RecordBatch]| {
        let want = lakefleet::convert::arrow_schema(cat.get(ds).unwrap());
        let got: Vec<(String, DataType)> =
            b[0].schema().fields().iter().map(|f| (f.name().clone(), f.data_type().clone())).collect();
        let want: Vec<(String, DataType)> =
            want.fields().iter().map(|f| (f.name().clone(), f.data_type().clone())).collect();
        assert_eq!(got, want, "{ds}");
    };
    // Yellow 2010-01: text codes as published, rate codes read from text (empty: null).
    let b = read("nyc-tlc-yellow", "2010-01").await;
    same_schema("nyc-tlc-yellow", &b);
    assert_eq!(rows(&b), 600);
    assert_eq!(non_null(&b, "ratecode_id"), 450, "every fourth rate_code is empty");
    assert_eq!(non_null(&b, "payment_type_name"), 600);
    let flags = texts(&b, "store_and_fwd_flag");
    assert_eq!(
        flags,
        ["", "0", "0.0", "1"].map(String::from).into_iter().collect(),
        "as published (empty text stays empty)"
    );
    let pay = texts(&b, "payment_type_name");
    assert!(pay.contains("Cas") && pay.contains("CAS") && pay.contains("No Charge"), "{pay:?}");
    // Yellow 2026-06: request_source lands.
    let b = read("nyc-tlc-yellow", "2026-06").await;
    assert_eq!((rows(&b), non_null(&b, "request_source")), (500, 500));
    // FHV: zones and SR_Flag across DOUBLE, INT64 and the null type.
    for (m, file) in &fhvs {
        let b = read("nyc-tlc-fhv", m).await;
        same_schema("nyc-tlc-fhv", &b);
        assert_eq!(rows(&b), file.rows, "fhv {m}");
        assert_eq!(i64_sum(&b, "pu_location_id"), file.zone_sum, "fhv {m}");
        assert_eq!(non_null(&b, "sr_flag"), file.sr_flags, "fhv {m}");
        assert_eq!(non_null(&b, "dropoff_datetime"), file.rows, "dropOff_datetime is read: fhv {m}");
    }
    // Green 2014: coordinates kept.
    let b = read("nyc-tlc-green", "2014-03").await;
    same_schema("nyc-tlc-green", &b);
    assert_eq!(rows(&b), 300);
    assert!((f64_sum(&b, "pickup_longitude") - lon_sum).abs() < 1e-6);
    f.cleanup().await;
}
