//! `worker convert`: the conversion rules of the built-in datasets.

use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, Int64Type};
use arrow_schema::DataType;

use lakefleet_testkit::*;

const GREEN_HEADER: &str = "VendorID,lpep_pickup_datetime,lpep_dropoff_datetime,store_and_fwd_flag,RatecodeID,PULocationID,DOLocationID,passenger_count,trip_distance,fare_amount,extra,mta_tax,tip_amount,tolls_amount,ehail_fee,improvement_surcharge,total_amount,payment_type,trip_type,congestion_surcharge";

fn green_row(i: usize) -> String {
    // ehail_fee (column 15) is always empty; amounts include ".20" and negatives.
    format!(
        "{},2019-01-{:02} 00:{:02}:10,2019-01-{:02} 01:{:02}:10,N,1,{},{},{},{}.5,{},.20,0.5,0,0,,0.3,{},1,1,",
        1 + i % 2,
        1 + i % 28,
        i % 60,
        1 + i % 28,
        i % 60,
        100 + i % 50,
        200 + i % 50,
        if i.is_multiple_of(3) { "1.0".to_string() } else { (i % 4).to_string() },
        i % 9,
        if i.is_multiple_of(10) { "-5.5".to_string() } else { format!("{}.25", 5 + i % 20) },
        if i.is_multiple_of(10) { "-6.8".to_string() } else { format!("{}.80", 6 + i % 20) },
    )
}

#[test]
fn tlc_multi_member_gzip_crlf_blank_lines_nulls_and_trailing_fields() {
    let dir = tmpdir("green");
    // Member 1: the header and 600 rows, CRLF endings. Member 2: 400 rows,
    // some with an extra trailing empty field, then a blank line at the end.
    let mut part1 = format!("{GREEN_HEADER}\r\n");
    for i in 0..600 {
        part1.push_str(&green_row(i));
        part1.push_str("\r\n");
    }
    let mut part2 = String::new();
    for i in 600..1000 {
        part2.push_str(&green_row(i));
        if i % 7 == 0 {
            part2.push_str(",,");
        }
        part2.push_str("\r\n");
        if i == 800 {
            part2.push_str("\r\n");
        }
    }
    part2.push_str("\r\n");
    let mut gz = gzip(part1.as_bytes());
    gz.extend(gzip(part2.as_bytes()));
    let input = dir.join("green_tripdata_2019-01.csv.gz");
    std::fs::write(&input, &gz).unwrap();
    let output = dir.join("out.parquet");
    let out = worker_convert("dtc-nyc-tlc-green", &input, &output);
    assert_eq!(out.status.code(), Some(0));
    let (batches, kv) = read_parquet(std::fs::read(&output).unwrap().into());
    assert_eq!(rows(&batches), 1000, "every member of the gzip is read");
    assert_eq!(kv["lakefleet.source_sha256"], sha256_hex(&gz));
    let schema = batches[0].schema();
    assert_eq!(schema.field_with_name("ehail_fee").unwrap().data_type(), &DataType::Float64);
    assert_eq!(schema.field_with_name("congestion_surcharge").unwrap().data_type(), &DataType::Float64);
    let mut extra_sum = 0.0;
    let mut fare_min = f64::MAX;
    let mut passengers = 0i64;
    for b in &batches {
        assert_eq!(b.column_by_name("ehail_fee").unwrap().null_count(), b.num_rows(), "empty column is all null");
        assert_eq!(b.column_by_name("congestion_surcharge").unwrap().null_count(), b.num_rows());
        extra_sum += b.column_by_name("extra").unwrap().as_primitive::<Float64Type>().iter().flatten().sum::<f64>();
        fare_min = fare_min.min(
            b.column_by_name("fare_amount")
                .unwrap()
                .as_primitive::<Float64Type>()
                .iter()
                .flatten()
                .fold(f64::MAX, f64::min),
        );
        passengers +=
            b.column_by_name("passenger_count").unwrap().as_primitive::<Int64Type>().iter().flatten().sum::<i64>();
    }
    assert!((extra_sum - 200.0).abs() < 1e-6, ".20 parses: {extra_sum}");
    assert_eq!(fare_min, -5.5);
    let expected_passengers: i64 = (0..1000).map(|i| if i % 3 == 0 { 1 } else { (i % 4) as i64 }).sum();
    assert_eq!(passengers, expected_passengers, "1.0 is an integer");
    let ts = ny_wall_millis(batches[0].column_by_name("pickup_datetime").unwrap())[1].unwrap();
    assert_eq!(lakefleet::util::timefmt::millis_to_string(ts), "2019-01-02 00:01:10");
}

#[test]
fn a_changed_header_is_refused_with_the_differing_columns_and_no_output() {
    let dir = tmpdir("drift");
    let input = dir.join("turnstile_220108.txt");
    let header = MTA_HEADER.replace("DESC,", "DESCRIPTION,");
    std::fs::write(&input, format!("{header}\nA,R,0,59 ST,N,BMT,01/01/2022,00:00:00,REGULAR,1,2\n")).unwrap();
    let output = dir.join("out.parquet");
    let out = worker_convert("mta-turnstile", &input, &output);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("turnstile_220108.txt: header does not match dataset mta-turnstile"), "{err}");
    assert!(err.contains("missing column(s) DESC") && err.contains("unexpected column(s) DESCRIPTION"), "{err}");
    assert!(!output.exists() && !dir.join("out.parquet.partial").exists(), "no output file");
}

#[test]
fn a_truncated_last_record_names_its_line() {
    let dir = tmpdir("trunc");
    let week = chrono::NaiveDate::from_ymd_opt(2022, 1, 8).unwrap();
    let (bytes, _) = mta_week(week, 50, 3);
    let cut = &bytes[..bytes.len() - 30]; // the last record loses its last fields
    let input = dir.join("turnstile_220108.txt");
    std::fs::write(&input, cut).unwrap();
    let out = worker_convert("mta-turnstile", &input, &dir.join("out.parquet"));
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("line 51") && err.contains("truncated record"), "{err}");
}

#[test]
fn mta_values_are_typed_and_kept() {
    let dir = tmpdir("mta");
    let week = chrono::NaiveDate::from_ymd_opt(2020, 2, 29).unwrap();
    let (bytes, sum) = mta_week(week, 5000, 11);
    let input = dir.join(mta_name(week));
    std::fs::write(&input, &bytes).unwrap();
    let output = dir.join("out.parquet");
    assert_eq!(worker_convert("mta-turnstile", &input, &output).status.code(), Some(0));
    let (batches, kv) = read_parquet(std::fs::read(&output).unwrap().into());
    assert_eq!(rows(&batches), 5000);
    assert_eq!(sum_i64(&batches, "entries"), sum);
    assert!(batches.iter().any(|b| {
        b.column_by_name("entries").unwrap().as_primitive::<Int64Type>().iter().flatten().any(|v| v > i32::MAX as i64)
    }));
    assert_eq!(kv["lakefleet.rows"], "5000");
    // 2020-02-29 is a leap day: the Saturday itself is row 6 (i % 7 == 6).
    let d = batches[0].column_by_name("date").unwrap().as_primitive::<arrow_array::types::Date32Type>().value(6);
    assert_eq!(d, 18321);
}
