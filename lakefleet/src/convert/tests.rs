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

/// A Parquet source whose column `t` holds `micros` as TIMESTAMP(us) in
/// `zone` (instants), converted by a one-column dataset (`extra` TOML).
fn convert_zoned(zone: &str, micros: &[i64], extra: &str) -> Result<Vec<Option<i64>>, ConvertError> {
    use arrow_array::Array;
    use arrow_array::cast::AsArray;
    let ds: Dataset = toml::from_str(&format!(
        "name = \"zoned\"\ncadence = \"monthly\"\nformat = \"parquet\"\nurl_template = \"http://127.0.0.1:9/zoned_{{yyyy}}-{{mm}}.parquet\"\nfirst = \"2024-01-01\"\n{extra}\ncolumns = [{{ source = \"t\", type = \"timestamp\", format = \"%Y-%m-%d %H:%M:%S\" }}]"
    ))
    .unwrap();
    ds.validate().unwrap();
    let zoned = arrow_array::TimestampMicrosecondArray::from(micros.to_vec()).with_timezone(zone);
    let batch = arrow_array::RecordBatch::try_from_iter([("t", Arc::new(zoned) as arrow_array::ArrayRef)]).unwrap();
    let path = std::env::temp_dir().join(format!(
        "lakefleet-zoned-{}-{zone_tag}.parquet",
        std::process::id(),
        zone_tag = zone.replace('/', "_")
    ));
    let mut w =
        ::parquet::arrow::ArrowWriter::try_new(std::fs::File::create(&path).unwrap(), batch.schema(), None).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
    let mut out = Vec::new();
    let done = convert_file(&ds, &path, &mut out, &Provenance::file("zoned_2024-01.parquet"));
    let _ = std::fs::remove_file(&path);
    done?;
    let reader =
        ::parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(bytes::Bytes::from(out), 1024).unwrap();
    let b = reader.into_iter().next().unwrap().unwrap();
    let t = b.column(0).as_primitive::<arrow_array::types::TimestampMicrosecondType>();
    let tz = match b.schema().field(0).data_type() {
        arrow_schema::DataType::Timestamp(_, tz) => tz.as_deref().map(str::to_string),
        other => panic!("{other}"),
    };
    assert_eq!(tz.as_deref(), if extra.contains("wall_clock") { None } else { Some("UTC") });
    Ok((0..t.len()).map(|i| t.is_valid(i).then(|| t.value(i))).collect())
}

#[test]
fn zone_aware_parquet_timestamps_keep_their_instants_or_show_the_datasets_wall_clock() {
    let us = |s: &str| chrono::DateTime::parse_from_rfc3339(s).unwrap().timestamp_micros();
    // Winter (UTC-5), summer (UTC-4), and both 01:30s of the repeated hour
    // on 2024-11-03 in New York (01:30 EDT = 05:30Z, 01:30 EST = 06:30Z).
    let instants = [
        us("2024-01-15T12:00:00Z"),
        us("2024-07-15T12:00:00Z"),
        us("2024-11-03T05:30:00Z"),
        us("2024-11-03T06:30:00Z"),
    ];
    for zone in ["America/New_York", "UTC", "+02:00"] {
        let stored = convert_zoned(zone, &instants, "time_zone = \"America/New_York\"").unwrap();
        assert_eq!(stored, instants.map(Some), "instants from a {zone} column are stored as they are");
    }
    // A dataset that keeps wall-clock times shows them on its zone's clocks:
    // both instants of the repeated hour read 01:30, as New York's clocks did.
    let wall =
        |s: &str| chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap().and_utc().timestamp_micros();
    let shown =
        convert_zoned("UTC", &instants, "time_zone = \"America/New_York\"\ntimestamps = \"wall_clock\"").unwrap();
    assert_eq!(
        shown,
        [wall("2024-01-15 07:00"), wall("2024-07-15 08:00"), wall("2024-11-03 01:30"), wall("2024-11-03 01:30")]
            .map(Some)
    );
    // Without a zone to show them in, the file is refused naming the setting.
    let e = convert_zoned("UTC", &instants, "timestamps = \"wall_clock\"").unwrap_err().to_string();
    assert!(
        e.contains(
            "source column t is a timestamp in time zone UTC: the dataset keeps wall-clock times and names no time zone"
        ) && e.contains("set time_zone"),
        "{e}"
    );
}
