use super::*;

/// An output that refuses every write, like a full disk.
struct FullDisk;

impl Write for FullDisk {
    fn write(&mut self, _: &[u8]) -> std::io::Result<usize> {
        Err(std::io::Error::other("no space left on the spool disk"))
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn mta() -> Dataset {
    crate::catalog::Catalog::builtin().get("mta-turnstile").unwrap().clone()
}

const HEADER: &str = "C/A,UNIT,SCP,STATION,LINENAME,DIVISION,DATE,TIME,DESC,ENTRIES,EXITS\n";
const ROW: &str = "A002,R051,02-00-00,59 ST,NQR456W,BMT,01/01/2022,03:00:00,REGULAR,7,8\n";

#[test]
fn an_output_that_fails_reports_its_error() {
    let csv = format!("{HEADER}{ROW}");
    let e = convert(&mta(), csv.as_bytes(), FullDisk, &Provenance::file("turnstile_220101.txt")).unwrap_err();
    assert!(matches!(e, ConvertError::Output { .. }), "{e}");
    assert!(
        e.to_string().contains("turnstile_220101.txt: writing Parquet failed")
            && e.to_string().contains("no space left"),
        "{e}"
    );
}

#[test]
fn a_header_only_source_is_refused_unless_allowed() {
    let e = convert(&mta(), HEADER.as_bytes(), Vec::new(), &Provenance::file("t.txt")).unwrap_err();
    assert!(matches!(e, ConvertError::Empty { .. }) && e.to_string().contains("allow_empty"), "{e}");
    let mut ds = mta();
    ds.allow_empty = true;
    let stats = convert(&ds, HEADER.as_bytes(), Vec::new(), &Provenance::file("t.txt")).unwrap();
    assert_eq!(stats.rows, 0);
}

#[test]
fn an_empty_header_name_is_shown() {
    let csv = format!(",{HEADER}{ROW}");
    let e = convert(&mta(), csv.as_bytes(), Vec::new(), &Provenance::file("t.txt")).unwrap_err();
    assert!(e.to_string().contains("\"\" (empty name, position 1)"), "{e}");
}

#[test]
fn a_bad_value_names_its_physical_line_in_crlf_files_too() {
    let bad = ROW.replace(",7,8", ",x,8");
    for eol in ["\n", "\r\n"] {
        // Physical lines: 1 header, 2-4 rows, 5 the bad row.
        let csv = format!("{HEADER}{ROW}{ROW}{ROW}{bad}").replace('\n', eol);
        let e = convert(&mta(), csv.as_bytes(), Vec::new(), &Provenance::file("t.txt")).unwrap_err();
        assert!(matches!(e, ConvertError::Row { line: 5, column: 10, .. }), "{eol:?}: {e}");
    }
}

#[test]
fn a_file_in_the_mta_pre_2014_wide_layout_gets_a_sentence() {
    let old = "A002,R051,02-00-00,03-21-10,00:00:00,REGULAR,002670738,000919627,03-21-10,04:00:00,REGULAR,002670738,000919629\n";
    let e = convert(&mta(), old.as_bytes(), Vec::new(), &Provenance::file("turnstile_100327.txt")).unwrap_err();
    let msg = e.to_string();
    assert!(
        msg.contains("the first line is not mta-turnstile's header: it has none of its 11 column names (13 fields"),
        "{msg}"
    );
    assert!(msg.contains("older wide layout (no header line"), "{msg}");
    assert!(msg.len() < 600, "{msg}");
}

#[test]
fn trip_times_outgrowing_their_dictionary_are_delta_encoded_and_read_back() {
    use ::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use ::parquet::basic::Encoding;
    use arrow_array::cast::AsArray;
    use arrow_array::types::TimestampMicrosecondType;
    let ds = crate::catalog::Catalog::builtin().get("dtc-nyc-tlc-yellow").unwrap().clone();
    let header = "VendorID,tpep_pickup_datetime,tpep_dropoff_datetime,passenger_count,trip_distance,RatecodeID,store_and_fwd_flag,PULocationID,DOLocationID,payment_type,fare_amount,extra,mta_tax,tip_amount,tolls_amount,improvement_surcharge,total_amount,congestion_surcharge\n";
    let start = NaiveDate::from_ymd_opt(2019, 1, 1).unwrap().and_hms_opt(0, 0, 0).unwrap();
    // 40,000 distinct pickup times, one a second: more than a 128 KiB dictionary holds.
    let mut csv = String::from(header);
    for i in 0..40_000 {
        let t = (start + chrono::Duration::seconds(i)).format("%Y-%m-%d %H:%M:%S");
        csv.push_str(&format!("1,{t},{t},1,1.50,1,N,151,239,1,7.0,0.5,0.5,1.65,0,0.3,9.95,\n"));
    }
    let mut out = Vec::new();
    convert(&ds, csv.as_bytes(), &mut out, &Provenance::file("yellow_tripdata_2019-01.csv")).unwrap();
    let out = bytes::Bytes::from(out);
    let builder = ParquetRecordBatchReaderBuilder::try_new(out).unwrap();
    let rg = builder.metadata().row_group(0);
    assert!(rg.column(1).encodings().any(|e| e == Encoding::DELTA_BINARY_PACKED), "{:?}", rg.column(1));
    assert!(!rg.column(0).encodings().any(|e| e == Encoding::DELTA_BINARY_PACKED), "{:?}", rg.column(0));
    let mut times = Vec::new();
    for batch in builder.build().unwrap() {
        times.extend(batch.unwrap().column(1).as_primitive::<TimestampMicrosecondType>().values().iter().copied());
    }
    // New York wall-clock times stored as instants: January is UTC-5.
    let epoch = start.and_utc().timestamp_millis() + 5 * 3_600_000;
    assert_eq!(times, (0..40_000).map(|i| (epoch + i * 1000) * 1000).collect::<Vec<_>>());
}

#[test]
fn numbers_with_a_declared_thousands_separator_read_as_numbers() {
    let ds: Dataset = toml::from_str(
        r#"name = "export"
cadence = "monthly"
url_template = "http://127.0.0.1:9/export_{yyyy}-{mm}.csv"
first = "2020-01-01"
columns = [
  { source = "station", type = "string" },
  { source = "ridership", type = "int64", thousands = "," },
  { source = "fare", type = "float64", thousands = "," },
  { source = "plain", type = "int64" },
]"#,
    )
    .unwrap();
    ds.validate().unwrap();
    let csv = "station,ridership,fare,plain\nA,\"2,122\",\"1,234,567.5\",7\nB,999,12.25,8\nC,\"-1,000\",\"0.5\",9\n";
    let mut out = Vec::new();
    convert(&ds, csv.as_bytes(), &mut out, &Provenance::file("export_2020-01.csv")).unwrap();
    let reader =
        ::parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(bytes::Bytes::from(out), 1024).unwrap();
    let b = reader.into_iter().next().unwrap().unwrap();
    use arrow_array::cast::AsArray;
    let ints: Vec<i64> = b.column(1).as_primitive::<arrow_array::types::Int64Type>().values().to_vec();
    assert_eq!(ints, [2122, 999, -1000]);
    let floats: Vec<f64> = b.column(2).as_primitive::<arrow_array::types::Float64Type>().values().to_vec();
    assert_eq!(floats, [1_234_567.5, 12.25, 0.5]);
    // A misplaced separator fails the row, naming it; an undeclared one too.
    let bad = "station,ridership,fare,plain\nA,\"21,22\",1,7\n";
    let e = convert(&ds, bad.as_bytes(), Vec::new(), &Provenance::file("export_2020-01.csv")).unwrap_err();
    assert!(
        e.to_string()
            .contains("line 2, column 2 (ridership): cannot parse \"21,22\" as int64 (thousands separator ',')"),
        "{e}"
    );
    let bad = "station,ridership,fare,plain\nA,1,1,\"2,122\"\n";
    let e = convert(&ds, bad.as_bytes(), Vec::new(), &Provenance::file("export_2020-01.csv")).unwrap_err();
    assert!(e.to_string().contains("cannot parse \"2,122\" as int64"), "{e}");
    let mut wrong = ds.clone();
    wrong.columns[0].thousands = Some(',');
    assert!(wrong.validate().unwrap_err().contains("columns[0].thousands"));
}

#[test]
fn a_too_long_record_names_its_line() {
    let long = "x".repeat(3 << 20);
    let csv = format!("{HEADER}{ROW}{ROW}A002,R051,02-00-00,{long},N,BMT,01/01/2022,03:00:00,REGULAR,7,8\n");
    let e = convert(&mta(), csv.as_bytes(), Vec::new(), &Provenance::file("t.txt")).unwrap_err();
    assert!(matches!(e, ConvertError::Row { line: 4, .. }), "{e}");
    assert!(e.to_string().contains("longer than 1048576 bytes"), "{e}");
}
