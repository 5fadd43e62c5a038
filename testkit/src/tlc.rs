//! Seeded TLC yellow-taxi Parquet files in each era's physical schema, as
//! `../shared/reference/tlc_parquet_schema_history.md` records them: the
//! 2009 names and text codes, the 2010 names with the leaked
//! `__index_level_0__`, the 2011 INT64 layout with `null`-type columns, the
//! 2018-07 DOUBLE codes, the 2023-02 INT32 ids and `Airport_fee`, and 2025's
//! `cbd_congestion_fee`; with any compression, timestamp unit and row-group
//! size. Each file comes with the figures a test checks in the lake.

use std::sync::Arc;

use arrow_array::{
    ArrayRef, Float64Array, Int32Array, Int64Array, NullArray, RecordBatch, StringArray, TimestampMicrosecondArray,
    TimestampMillisecondArray, TimestampNanosecondArray,
};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use chrono::NaiveDate;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, GzipLevel, ZstdLevel};
use parquet::file::properties::WriterProperties;

use crate::Rng;

/// A yellow-taxi file layout, by the month it first appeared.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// 2009: `vendor_name`, `Trip_Pickup_DateTime` text, `Payment_Type` text (CASH, Credit), coordinates.
    Y2009,
    /// 2010-02: lower snake case, text `vendor_id`/`payment_type`, INT64 `rate_code`, `__index_level_0__`.
    Y2010,
    /// 2010-01 and 2010-04..12: `rate_code` text (integer-like or empty),
    /// `store_and_fwd_flag` text `0`/`1`/`0.0` or empty (not Y/N),
    /// `payment_type` mixed-case abbreviations (`CAS`, `Cas`, `CRE`, `Cre`,
    /// `No Charge`, `Dispute`), no leaked index.
    Y2010Text,
    /// 2011-02: zone ids, INT64 codes and timestamps, `airport_fee` and
    /// `congestion_surcharge` as the `null` type (INT32 physical).
    Y2011,
    /// 2018-07: `RatecodeID` and `passenger_count` DOUBLE, the two fees still the `null` type.
    Y2018,
    /// 2023-02: INT32 ids, `Airport_fee`.
    Y2023,
    /// 2025-01: 2023's layout plus `cbd_congestion_fee`.
    Y2025,
    /// 2026-06: 2025's layout plus `request_source` (its type is not known
    /// here: written as text).
    Y2026,
}

/// How to write one file.
#[derive(Debug, Clone)]
pub struct Fixture {
    pub layout: Layout,
    pub month: NaiveDate,
    pub rows: usize,
    pub row_group_rows: usize,
    pub compression: Compression,
    /// Unit of the INT64 timestamps (2011 on).
    pub unit: TimeUnit,
    pub seed: u64,
    /// Row (0-based) whose `passenger_count` gets a fraction (2.5); needs a
    /// DOUBLE layout (Y2018).
    pub fraction_at: Option<usize>,
    /// An extra DOUBLE column the dataset does not know.
    pub extra_column: Option<&'static str>,
}

impl Fixture {
    pub fn new(layout: Layout, month: &str, rows: usize, seed: u64) -> Fixture {
        Fixture {
            layout,
            month: format!("{month}-01").parse().unwrap(),
            rows,
            row_group_rows: rows.div_ceil(3).max(1),
            compression: Compression::ZSTD(ZstdLevel::default()),
            unit: TimeUnit::Microsecond,
            seed,
            fraction_at: None,
            extra_column: None,
        }
    }

    pub fn gzip(mut self) -> Self {
        self.compression = Compression::GZIP(GzipLevel::default());
        self
    }

    pub fn snappy(mut self) -> Self {
        self.compression = Compression::SNAPPY;
        self
    }

    pub fn unit(mut self, unit: TimeUnit) -> Self {
        self.unit = unit;
        self
    }
}

/// A written file and what the lake must hold for it.
#[derive(Debug, Clone)]
pub struct TlcFile {
    pub name: String,
    pub bytes: Vec<u8>,
    pub month: NaiveDate,
    pub rows: usize,
    pub row_groups: usize,
    pub fare_sum: f64,
    /// The pickups (New York wall-clock times) as instants, ms since the
    /// epoch, summed: a repeated time is its first occurrence (EDT), a
    /// skipped one is read with the offset before the change (EST).
    pub pickup_utc_ms_sum: i64,
    pub passengers: i64,
    /// Rows whose vendor and payment type are text codes (2009, 2010).
    pub text_codes: usize,
}

fn f64s(v: Vec<Option<f64>>) -> ArrayRef {
    Arc::new(Float64Array::from(v))
}

fn i64s(v: Vec<Option<i64>>) -> ArrayRef {
    Arc::new(Int64Array::from(v))
}

fn strs(v: Vec<Option<String>>) -> ArrayRef {
    Arc::new(StringArray::from(v))
}

/// Writes the file `yellow_tripdata_YYYY-MM.parquet` of `fx`.
pub fn yellow(fx: &Fixture) -> TlcFile {
    let mut rng = Rng::new(fx.seed);
    let n = fx.rows;
    let start_ms = fx.month.and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp_millis();
    let (mut pickup, mut dropoff, mut passengers, mut fare, mut tip, mut total) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    let (mut vendor, mut payment, mut pu, mut dist, mut lon, mut lat) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for _ in 0..n {
        let p = start_ms + (rng.below(27 * 86_400) as i64) * 1000;
        pickup.push(p);
        dropoff.push(p + (60 + rng.below(3600) as i64) * 1000);
        passengers.push(1 + rng.below(4) as i64);
        let f = (250 + rng.below(5000)) as f64 / 100.0;
        let t = rng.below(500) as f64 / 100.0;
        fare.push(f);
        tip.push(t);
        total.push(f + t + 0.5);
        vendor.push(1 + rng.below(2) as i64);
        payment.push(1 + rng.below(2) as i64);
        pu.push(1 + rng.below(265) as i64);
        dist.push(rng.below(2000) as f64 / 100.0);
        lon.push(-74.0 + rng.below(10_000) as f64 / 100_000.0);
        lat.push(40.6 + rng.below(10_000) as f64 / 100_000.0);
    }
    let text_ts = |v: &[i64]| -> ArrayRef {
        strs(
            v.iter()
                .map(|&ms| {
                    Some(chrono::DateTime::from_timestamp_millis(ms).unwrap().format("%Y-%m-%d %H:%M:%S").to_string())
                })
                .collect(),
        )
    };
    let int_ts = |v: &[i64]| -> ArrayRef {
        match fx.unit {
            TimeUnit::Millisecond => Arc::new(TimestampMillisecondArray::from(v.to_vec())),
            TimeUnit::Microsecond => {
                Arc::new(TimestampMicrosecondArray::from(v.iter().map(|x| x * 1000).collect::<Vec<_>>()))
            }
            TimeUnit::Nanosecond => {
                Arc::new(TimestampNanosecondArray::from(v.iter().map(|x| x * 1_000_000).collect::<Vec<_>>()))
            }
            TimeUnit::Second => panic!("seconds are not a TLC unit"),
        }
    };
    let some_f = |v: &[f64]| f64s(v.iter().map(|&x| Some(x)).collect());
    let some_i = |v: &[i64]| i64s(v.iter().map(|&x| Some(x)).collect());
    let i32s = |v: &[i64]| -> ArrayRef { Arc::new(Int32Array::from(v.iter().map(|&x| x as i32).collect::<Vec<_>>())) };
    let nulls = || -> ArrayRef { Arc::new(NullArray::new(n)) };
    let consts = |x: f64| f64s(vec![Some(x); n]);
    let code_text =
        |v: &[i64], names: [&str; 2]| strs(v.iter().map(|&c| Some(names[c as usize - 1].to_string())).collect());
    let mut cols: Vec<(&str, ArrayRef)> = match fx.layout {
        Layout::Y2009 => vec![
            ("vendor_name", code_text(&vendor, ["CMT", "VTS"])),
            ("Trip_Pickup_DateTime", text_ts(&pickup)),
            ("Trip_Dropoff_DateTime", text_ts(&dropoff)),
            ("Passenger_Count", some_i(&passengers)),
            ("Trip_Distance", some_f(&dist)),
            ("Start_Lon", some_f(&lon)),
            ("Start_Lat", some_f(&lat)),
            ("Rate_Code", f64s((0..n).map(|i| (i % 5 != 0).then_some(1.0)).collect())),
            ("store_and_forward", f64s(vec![None; n])),
            ("End_Lon", some_f(&lon)),
            ("End_Lat", some_f(&lat)),
            ("Payment_Type", code_text(&payment, ["CASH", "Credit"])),
            ("Fare_Amt", some_f(&fare)),
            ("surcharge", consts(0.0)),
            ("mta_tax", f64s(vec![None; n])),
            ("Tip_Amt", some_f(&tip)),
            ("Tolls_Amt", consts(0.0)),
            ("Total_Amt", some_f(&total)),
        ],
        Layout::Y2010 | Layout::Y2010Text => {
            // 2010-02/03: INT64 rate codes, codes as three-letter text, a leaked
            // index; the other 2010 months: everything coded is mixed text.
            let drift = fx.layout == Layout::Y2010;
            let (rate, flag, pay): (ArrayRef, ArrayRef, ArrayRef) = if drift {
                (some_i(&vec![1; n]), strs(vec![None; n]), code_text(&payment, ["CAS", "CRD"]))
            } else {
                let cycle = |vals: &[&str]| strs((0..n).map(|i| Some(vals[i % vals.len()].to_string())).collect());
                (
                    cycle(&["1", "", "2", "1"]),
                    cycle(&["0", "1", "", "0.0"]),
                    cycle(&["CAS", "Cas", "CRE", "Cre", "No Charge", "Dispute"]),
                )
            };
            let mut c: Vec<(&str, ArrayRef)> = vec![
                ("vendor_id", code_text(&vendor, ["CMT", "VTS"])),
                ("pickup_datetime", text_ts(&pickup)),
                ("dropoff_datetime", text_ts(&dropoff)),
                ("passenger_count", some_i(&passengers)),
                ("trip_distance", some_f(&dist)),
                ("pickup_longitude", some_f(&lon)),
                ("pickup_latitude", some_f(&lat)),
                ("rate_code", rate),
                ("store_and_fwd_flag", flag),
                ("dropoff_longitude", some_f(&lon)),
                ("dropoff_latitude", some_f(&lat)),
                ("payment_type", pay),
                ("fare_amount", some_f(&fare)),
                ("surcharge", consts(0.5)),
                ("mta_tax", consts(0.5)),
                ("tip_amount", some_f(&tip)),
                ("tolls_amount", consts(0.0)),
                ("total_amount", some_f(&total)),
            ];
            if drift {
                c.push(("__index_level_0__", i64s((0..n as i64).map(Some).collect())));
            }
            c
        }
        Layout::Y2011 | Layout::Y2018 | Layout::Y2023 | Layout::Y2025 | Layout::Y2026 => {
            let modern_ids = matches!(fx.layout, Layout::Y2023 | Layout::Y2025 | Layout::Y2026);
            let ids = |v: &[i64]| if modern_ids { i32s(v) } else { some_i(v) };
            let codes = |v: &[i64]| -> ArrayRef {
                if fx.layout == Layout::Y2018 {
                    let mut f: Vec<Option<f64>> = v.iter().map(|&x| Some(x as f64)).collect();
                    if let Some(i) = fx.fraction_at {
                        f[i] = Some(2.5);
                    }
                    f64s(f)
                } else {
                    some_i(v)
                }
            };
            let mut c: Vec<(&str, ArrayRef)> = vec![
                ("VendorID", ids(&vendor)),
                ("tpep_pickup_datetime", int_ts(&pickup)),
                ("tpep_dropoff_datetime", int_ts(&dropoff)),
                ("passenger_count", codes(&passengers)),
                ("trip_distance", some_f(&dist)),
                ("RatecodeID", codes(&vec![1; n])),
                (
                    "store_and_fwd_flag",
                    strs((0..n).map(|i| Some(if i % 50 == 0 { "Y" } else { "N" }.into())).collect()),
                ),
                ("PULocationID", ids(&pu)),
                ("DOLocationID", ids(&pu)),
                ("payment_type", some_i(&payment)),
                ("fare_amount", some_f(&fare)),
                ("extra", consts(0.5)),
                ("mta_tax", consts(0.5)),
                ("tip_amount", some_f(&tip)),
                ("tolls_amount", consts(0.0)),
                ("improvement_surcharge", consts(0.3)),
                ("total_amount", some_f(&total)),
                ("congestion_surcharge", if modern_ids { consts(2.5) } else { nulls() }),
            ];
            c.push(match fx.layout {
                Layout::Y2011 | Layout::Y2018 => ("airport_fee", nulls()),
                _ => ("Airport_fee", consts(1.25)),
            });
            if matches!(fx.layout, Layout::Y2025 | Layout::Y2026) {
                c.push(("cbd_congestion_fee", consts(0.75)));
            }
            if fx.layout == Layout::Y2026 {
                c.push(("request_source", strs((0..n).map(|i| Some(["app", "street"][i % 2].into())).collect())));
            }
            c
        }
    };
    if let Some(extra) = fx.extra_column {
        cols.push((extra, consts(9.99)));
    }
    let schema = Arc::new(Schema::new(
        cols.iter().map(|(name, a)| Field::new(*name, a.data_type().clone(), true)).collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(schema.clone(), cols.into_iter().map(|(_, a)| a).collect()).unwrap();
    let props = WriterProperties::builder()
        .set_compression(fx.compression)
        .set_max_row_group_row_count(Some(fx.row_group_rows))
        .build();
    let mut w = ArrowWriter::try_new(Vec::new(), schema, Some(props)).unwrap();
    w.write(&batch).unwrap();
    let bytes = w.into_inner().unwrap();
    let text = matches!(fx.layout, Layout::Y2009 | Layout::Y2010 | Layout::Y2010Text);
    TlcFile {
        name: format!("yellow_tripdata_{}.parquet", fx.month.format("%Y-%m")),
        bytes,
        month: fx.month,
        rows: n,
        row_groups: n.div_ceil(fx.row_group_rows),
        fare_sum: fare.iter().sum(),
        pickup_utc_ms_sum: pickup.iter().map(|&ms| new_york_instant(ms)).sum(),
        passengers: passengers.iter().sum(),
        text_codes: if text { n } else { 0 },
    }
}

/// The type of every column of a written file, as the reference table
/// names Parquet physical types (for checking the fixtures against it).
pub fn physical_types(bytes: &[u8]) -> Vec<(String, String)> {
    let reader =
        parquet::file::serialized_reader::SerializedFileReader::new(bytes::Bytes::copy_from_slice(bytes)).unwrap();
    let meta = parquet::file::reader::FileReader::metadata(&reader);
    meta.file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .map(|c| (c.name().to_string(), c.physical_type().to_string()))
        .collect()
}

/// The `DataType` of column `name` of the dataset schema that every month must have.
pub fn lake_type(schema: &Schema, name: &str) -> DataType {
    schema.field_with_name(name).unwrap().data_type().clone()
}

/// FHV months, by the type drift the facts name: `PUlocationID` and
/// `DOlocationID` DOUBLE or INT64, `SR_Flag` the `null` type, DOUBLE or INT64;
/// every era has the same 7 columns with their irregular casing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FhvLayout {
    /// 2015-01: zones DOUBLE (mostly empty), SR_Flag null-typed.
    F2015,
    /// 2017-05: zones DOUBLE, SR_Flag DOUBLE.
    F2017,
    /// 2019-05: zones INT64, SR_Flag null-typed.
    F2019,
    /// 2023-02: zones and SR_Flag INT64.
    F2023,
}

/// The FHV columns, as published (facts file).
pub const FHV_COLUMNS: [&str; 7] = [
    "dispatching_base_num",
    "pickup_datetime",
    "dropOff_datetime",
    "PUlocationID",
    "DOlocationID",
    "SR_Flag",
    "Affiliated_base_number",
];

/// A written FHV month: the file, its zone id sum and `SR_Flag` values.
pub struct FhvFile {
    pub name: String,
    pub bytes: Vec<u8>,
    pub rows: usize,
    pub zone_sum: i64,
    pub sr_flags: usize,
}

fn write(cols: Vec<(&str, ArrayRef)>, compression: Compression) -> Vec<u8> {
    let schema = Arc::new(Schema::new(
        cols.iter().map(|(name, a)| Field::new(*name, a.data_type().clone(), true)).collect::<Vec<_>>(),
    ));
    let batch = RecordBatch::try_new(schema.clone(), cols.into_iter().map(|(_, a)| a).collect()).unwrap();
    let props = WriterProperties::builder().set_compression(compression).build();
    let mut w = ArrowWriter::try_new(Vec::new(), schema, Some(props)).unwrap();
    w.write(&batch).unwrap();
    w.into_inner().unwrap()
}

/// Writes `fhv_tripdata_{month}.parquet` in `layout`.
pub fn fhv(layout: FhvLayout, month: &str, n: usize, seed: u64) -> FhvFile {
    let mut rng = Rng::new(seed);
    let start = format!("{month}-01").parse::<NaiveDate>().unwrap().and_hms_opt(0, 0, 0).unwrap();
    let start_us = start.and_utc().timestamp_micros();
    let pickup: Vec<i64> = (0..n).map(|_| start_us + rng.below(27 * 86_400) as i64 * 1_000_000).collect();
    let zones: Vec<i64> = (0..n).map(|_| 1 + rng.below(265) as i64).collect();
    let ts = |v: &[i64]| -> ArrayRef { Arc::new(TimestampMicrosecondArray::from(v.to_vec())) };
    let dropoff: Vec<i64> = pickup.iter().map(|p| p + 900_000_000).collect();
    let (zone_col, zone_sum): (ArrayRef, i64) = match layout {
        FhvLayout::F2015 => {
            // Mostly empty in 2015: every third row has a zone.
            let v: Vec<Option<f64>> =
                zones.iter().enumerate().map(|(i, &z)| (i % 3 == 0).then_some(z as f64)).collect();
            let sum = zones.iter().enumerate().filter(|(i, _)| i % 3 == 0).map(|(_, z)| z).sum();
            (f64s(v), sum)
        }
        FhvLayout::F2017 => (f64s(zones.iter().map(|&z| Some(z as f64)).collect()), zones.iter().sum()),
        FhvLayout::F2019 | FhvLayout::F2023 => (i64s(zones.iter().map(|&z| Some(z)).collect()), zones.iter().sum()),
    };
    let (sr, sr_flags): (ArrayRef, usize) = match layout {
        FhvLayout::F2015 | FhvLayout::F2019 => (Arc::new(NullArray::new(n)), 0),
        FhvLayout::F2017 => (f64s((0..n).map(|i| (i % 4 == 0).then_some(1.0)).collect()), n.div_ceil(4)),
        FhvLayout::F2023 => (i64s((0..n).map(|i| (i % 4 == 0).then_some(1)).collect()), n.div_ceil(4)),
    };
    let cols: Vec<(&str, ArrayRef)> = vec![
        ("dispatching_base_num", strs((0..n).map(|i| Some(format!("B0{:04}", i % 50))).collect())),
        ("pickup_datetime", ts(&pickup)),
        ("dropOff_datetime", ts(&dropoff)),
        ("PUlocationID", zone_col.clone()),
        ("DOlocationID", zone_col),
        ("SR_Flag", sr),
        ("Affiliated_base_number", strs((0..n).map(|i| Some(format!("B0{:04}", i % 50))).collect())),
    ];
    FhvFile {
        name: format!("fhv_tripdata_{month}.parquet"),
        bytes: write(cols, Compression::SNAPPY),
        rows: n,
        zone_sum,
        sr_flags,
    }
}

/// A green month of 2013-2016 as files converted from the old CSVs carry it:
/// the modern green columns with codes DOUBLE, `ehail_fee` the `null` type,
/// and pickup/dropoff coordinates (`Pickup_longitude`, ...).
pub fn green_with_coordinates(month: &str, n: usize, seed: u64) -> (String, Vec<u8>, f64) {
    let mut rng = Rng::new(seed);
    let start_us =
        format!("{month}-01").parse::<NaiveDate>().unwrap().and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp_micros();
    let pickup: Vec<i64> = (0..n).map(|_| start_us + rng.below(27 * 86_400) as i64 * 1_000_000).collect();
    let lon: Vec<f64> = (0..n).map(|_| -73.95 + rng.below(1000) as f64 / 10_000.0).collect();
    let lat: Vec<f64> = (0..n).map(|_| 40.70 + rng.below(1000) as f64 / 10_000.0).collect();
    let some_f = |v: &[f64]| f64s(v.iter().map(|&x| Some(x)).collect());
    let ts = |v: Vec<i64>| -> ArrayRef { Arc::new(TimestampMicrosecondArray::from(v)) };
    let dcode = |x: f64| f64s(vec![Some(x); n]);
    let cols: Vec<(&str, ArrayRef)> = vec![
        ("VendorID", i64s(vec![Some(2); n])),
        ("lpep_pickup_datetime", ts(pickup.clone())),
        ("lpep_dropoff_datetime", ts(pickup.iter().map(|p| p + 600_000_000).collect())),
        ("store_and_fwd_flag", strs(vec![Some("N".into()); n])),
        ("RatecodeID", dcode(1.0)),
        ("Pickup_longitude", some_f(&lon)),
        ("Pickup_latitude", some_f(&lat)),
        ("Dropoff_longitude", some_f(&lon)),
        ("Dropoff_latitude", some_f(&lat)),
        ("passenger_count", dcode(1.0)),
        ("trip_distance", dcode(2.5)),
        ("fare_amount", dcode(10.0)),
        ("extra", dcode(0.5)),
        ("mta_tax", dcode(0.5)),
        ("tip_amount", dcode(1.0)),
        ("tolls_amount", dcode(0.0)),
        ("ehail_fee", Arc::new(NullArray::new(n))),
        ("total_amount", dcode(12.0)),
        ("payment_type", dcode(1.0)),
        ("trip_type", dcode(1.0)),
    ];
    (format!("green_tripdata_{month}.parquet"), write(cols, Compression::GZIP(GzipLevel::default())), lon.iter().sum())
}

/// A New York wall-clock time (ms, no zone) as an instant (ms since the epoch).
pub fn new_york_instant(wall_ms: i64) -> i64 {
    use chrono::TimeZone;
    let ny = chrono_tz::America::New_York;
    let wall = chrono::DateTime::from_timestamp_millis(wall_ms).unwrap().naive_utc();
    match ny.from_local_datetime(&wall) {
        chrono::LocalResult::Single(t) => t.timestamp_millis(),
        chrono::LocalResult::Ambiguous(a, b) => a.timestamp_millis().min(b.timestamp_millis()),
        chrono::LocalResult::None => {
            let day_before = ny.from_local_datetime(&(wall - chrono::Duration::hours(24))).earliest().unwrap();
            let offset_ms = day_before.naive_local().and_utc().timestamp_millis() - day_before.timestamp_millis();
            wall_ms - offset_ms
        }
    }
}
