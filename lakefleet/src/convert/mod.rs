//! A source -> Parquet in the catalog's explicit schema. One file per kind
//! of source, one for each shared stage:
//!
//! - [`input`]: raw bytes (hashed and counted) -> gzip (multi-member) when the
//!   bytes say so -> a guarded text (record and size limits); or the raw
//!   bytes spooled to a file (a Parquet source needs its footer, which comes
//!   last);
//! - [`split`]: text -> records, a buffer fill at a time (8 bytes at a
//!   time for lines without quotes);
//! - [`csv`]: the header check, then the row loop: records -> Arrow
//!   batches of at most [`BATCH_ROWS`] rows or [`BATCH_BYTES`] bytes,
//!   converted column by column;
//! - [`parquet`]: columns matched by name (aliases, eras), widened or
//!   converted with a check, batch by batch ([`PARQUET_BATCH_ROWS`]);
//! - [`columns`]: the Arrow builders and the fast number parsers;
//! - [`encoder`]: Parquet row groups (zstd) on their own thread.
//!
//! Memory is bounded by one batch plus one row group, whatever the file size,
//! the line length, the decompressed size or the number of columns. The
//! Parquet key-value metadata is written in one place, [`metadata`]. This is
//! synchronous, CPU-bound code: callers run it on a blocking thread.

mod columns;
mod csv;
pub(crate) mod encoder;
mod input;
pub mod instants;
mod parquet;
mod split;

use std::io::{Read, Write};
use std::path::Path;
use std::sync::Arc;

use ::parquet::file::metadata::KeyValue;
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono::NaiveDate;

use crate::catalog::{ColumnType, Dataset, SourceFormat};

pub use self::parquet::{MAGIC as PARQUET_MAGIC, MAX_FOOTER_BYTES};

/// Rows per Arrow batch of a CSV source. 16Ki rows instead of 64Ki: the
/// same CPU, 11-12 MiB less peak memory per conversion (MTA 10 weeks 44 ->
/// 33 MiB, TLC month 53 -> 41 MiB; bench/).
pub const BATCH_ROWS: usize = 16 * 1024;
/// Rows per Arrow batch read from a Parquet source: the Parquet reader's
/// work per batch made 16Ki-row batches cost 10% more CPU on a TLC month.
pub const PARQUET_BATCH_ROWS: usize = 64 * 1024;
/// Source bytes per Arrow batch at most (long rows make smaller batches).
pub const BATCH_BYTES: usize = 16 << 20;
/// Rows per Parquet row group (bounds the writer's memory).
pub const ROW_GROUP_ROWS: usize = 512 * 1024;
/// Encoded bytes of a row group at most, before it is flushed.
pub const ROW_GROUP_BYTES: usize = 64 << 20;
/// zstd level of Parquet pages: 1, pyarrow's default. Level 3 cost 7% more
/// time for files 0.1-0.2% smaller (MTA week, TLC month; bench/), and at 1
/// they are still 5-8% smaller than pyarrow's.
pub const ZSTD_LEVEL: i32 = 1;
/// Dictionary page limit per column chunk. Low-cardinality columns (codes,
/// station names, dates) stay dictionary-encoded; high-cardinality ones
/// (turnstile counters, trip timestamps) fall back to plain pages after 128 KiB
/// of dictionary, which zstd compresses better than a 1 MiB dictionary and
/// its indices (measured in bench/: 35% smaller MTA files, 6% smaller TLC).
pub const DICTIONARY_PAGE_LIMIT: usize = 128 * 1024;

/// Parquet key-value metadata keys.
pub mod meta {
    pub const SOURCE_URL: &str = "lakefleet.source_url";
    pub const SOURCE_SHA256: &str = "lakefleet.source_sha256";
    pub const ROWS: &str = "lakefleet.rows";
    pub const VERSION: &str = "lakefleet.version";
    pub const SCHEMA_VERSION: &str = "lakefleet.schema_version";
    pub const DATASET: &str = "lakefleet.dataset";
    pub const PARTITION: &str = "lakefleet.partition";
    pub const SOURCE_ETAG: &str = "lakefleet.source_etag";
    pub const SOURCE_LAST_MODIFIED: &str = "lakefleet.source_last_modified";
}

/// Where a conversion's data comes from, for the Parquet metadata.
#[derive(Debug, Clone, Default)]
pub struct Provenance {
    pub source_url: String,
    /// `YYYY-MM-DD`; empty for a file converted outside a backfill.
    pub partition: String,
    /// The partition's date, which picks the catalog era (Parquet sources).
    pub date: Option<NaiveDate>,
    /// The source's ETag, Last-Modified and length, as its server sent them.
    pub validators: crate::source::Validators,
}

impl Provenance {
    /// A file converted outside a backfill (`worker convert`, tests): its
    /// date, for the era, is the first `YYYY-MM` or `YYYY-MM-DD` in its name.
    pub fn file(source: &str) -> Provenance {
        Provenance {
            source_url: source.to_string(),
            partition: String::new(),
            date: date_in_name(source),
            validators: Default::default(),
        }
    }
}

/// The first `YYYY-MM-DD` or `YYYY-MM` (the 1st) in the last segment of a path or URL.
pub fn date_in_name(source: &str) -> Option<NaiveDate> {
    let name = crate::catalog::file_name(source).as_bytes();
    let digits = |s: &[u8]| s.iter().all(u8::is_ascii_digit);
    (0..name.len().saturating_sub(6)).find_map(|i| {
        let w = &name[i..];
        if i > 0 && name[i - 1].is_ascii_digit() || !(digits(&w[..4]) && w[4] == b'-' && digits(&w[5..7])) {
            return None;
        }
        let (y, m) =
            (std::str::from_utf8(&w[..4]).ok()?.parse().ok()?, std::str::from_utf8(&w[5..7]).ok()?.parse().ok()?);
        let day = (w.len() >= 10 && w[7] == b'-' && digits(&w[8..10]))
            .then(|| std::str::from_utf8(&w[8..10]).ok()?.parse().ok())
            .flatten()
            .unwrap_or(1);
        NaiveDate::from_ymd_opt(y, m, day).or_else(|| NaiveDate::from_ymd_opt(y, m, 1))
    })
}

/// What a conversion produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConvertStats {
    pub rows: u64,
    pub source_bytes: u64,
    pub source_sha256: String,
}

/// Why a conversion failed. `Source` and `Output` errors (the bytes stopped
/// coming, the spool disk failed) may heal on a retry; the others will not.
#[derive(Debug, thiserror::Error)]
pub enum ConvertError {
    #[error("{file}: reading the source failed: {message}")]
    Source { file: String, message: String },
    #[error("{file}: header does not match dataset {dataset}: {message}")]
    Header { file: String, dataset: String, message: String },
    #[error("{file}: line {line}, column {column} ({name}): {message}")]
    Row { file: String, line: u64, column: usize, name: String, message: String },
    #[error("{file}: the source has no rows (set allow_empty = true in the catalog if that is expected)")]
    Empty { file: String },
    /// A body given to a Parquet dataset that is not Parquet (an HTML or
    /// JSON error page a mirror or proxy served with 200): never read as CSV.
    #[error("{file}: not a Parquet file, which dataset {dataset} reads: it starts with {start}")]
    NotParquet { file: String, dataset: String, start: String },
    /// A row of a Socrata slice whose time is outside the slice: the portal
    /// (or a mirror that ignores `$where`) sent another partition's rows.
    #[error("{file}: row {row}, {message}")]
    OutsideSlice { file: String, row: u64, message: String },
    /// One value of a Parquet source that cannot become its output value.
    #[error("{file}: row {row} (row group {row_group}), column {column} -> {output}: {message}")]
    Value { file: String, row_group: usize, row: u64, column: String, output: String, message: String },
    /// A Parquet source has a column the dataset does not know.
    #[error("{file}: schema drift in dataset {dataset}: {message}")]
    SchemaDrift { file: String, dataset: String, message: String },
    /// Not a readable Parquet file (no footer: truncated; or not Parquet).
    #[error("{file}: not a readable Parquet file (truncated, or not Parquet at all): {message}")]
    Corrupt { file: String, message: String },
    #[error("{file}: the source is too large: {message}")]
    TooLarge { file: String, message: String },
    #[error("{file}: writing Parquet failed: {message}")]
    Output { file: String, message: String },
}

/// The column every file lakefleet writes ends with: the partition its row
/// came from (a date: `2022-01-08`, the 1st of a month for a monthly
/// partition; null in a file converted outside a backfill). It outlives the
/// file: when another tool compacts or rewrites a table's files, a refresh
/// still finds the partition's rows by it (and the Adds' statistics of its
/// min and max find the files to read).
pub const LINEAGE_COLUMN: &str = "_lakefleet_partition";

/// A partition's value in [`LINEAGE_COLUMN`]: days since 1970-01-01 (Arrow's Date32).
pub fn lineage_value(partition: NaiveDate) -> i32 {
    (partition - NaiveDate::from_ymd_opt(1970, 1, 1).expect("a date")).num_days() as i32
}

/// The Arrow schema of a dataset's Parquet files: timestamps in
/// microseconds, in UTC unless the dataset keeps wall-clock times; then
/// [`LINEAGE_COLUMN`].
pub fn arrow_schema(ds: &Dataset) -> SchemaRef {
    let instants = ds.timestamps == crate::catalog::Timestamps::Instant;
    let columns = schema_with(ds, |t| match t {
        ColumnType::Timestamp => instants::output_type(instants),
        other => data_type(other),
    });
    let mut fields: Vec<Field> = columns.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new(LINEAGE_COLUMN, DataType::Date32, true));
    Arc::new(Schema::new(fields))
}

/// The schema the converters build batches in: timestamps as wall-clock
/// milliseconds, as the sources write them ([`instants`] makes them the
/// output's).
fn working_schema(ds: &Dataset) -> SchemaRef {
    schema_with(ds, data_type)
}

fn schema_with(ds: &Dataset, ty: impl Fn(ColumnType) -> DataType) -> SchemaRef {
    let mut fields: Vec<Field> =
        ds.columns.iter().map(|c| Field::new(Dataset::output_name(c), ty(c.ty), c.nullable)).collect();
    fields.extend(ds.derived.iter().map(|d| Field::new(&d.name, ty(d.ty), true)));
    Arc::new(Schema::new(fields))
}

fn data_type(t: ColumnType) -> DataType {
    match t {
        ColumnType::String => DataType::Utf8,
        ColumnType::Int64 => DataType::Int64,
        ColumnType::Float64 => DataType::Float64,
        ColumnType::Date => DataType::Date32,
        ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Millisecond, None),
    }
}

/// What turns the converters' batches into the output schema (with the
/// partition of `prov` in [`LINEAGE_COLUMN`]).
fn output(ds: &Dataset, prov: &Provenance) -> instants::Instants {
    let partition = prov.date.filter(|_| !prov.partition.is_empty());
    instants::Instants::new(ds.zone(), arrow_schema(ds)).with_lineage(partition)
}

/// The key-value metadata of every Parquet file lakefleet writes.
pub fn metadata(ds: &Dataset, prov: &Provenance, stats: &ConvertStats) -> Vec<KeyValue> {
    [
        (meta::SOURCE_URL, prov.source_url.clone()),
        (meta::DATASET, ds.name.clone()),
        (meta::PARTITION, prov.partition.clone()),
        (meta::SOURCE_SHA256, stats.source_sha256.clone()),
        (meta::ROWS, stats.rows.to_string()),
        (meta::VERSION, crate::VERSION.to_string()),
        (meta::SCHEMA_VERSION, ds.schema_version.to_string()),
        (meta::SOURCE_ETAG, prov.validators.etag.clone().unwrap_or_default()),
        (meta::SOURCE_LAST_MODIFIED, prov.validators.last_modified.clone().unwrap_or_default()),
    ]
    .into_iter()
    .map(|(k, v)| KeyValue::new(k.to_string(), v))
    .collect()
}

/// Converts a source as a worker receives it, in the dataset's `format`:
/// CSV is streamed; Parquet is spooled to `spool` first (its footer comes
/// last). `expected_len` is the length the server announced: a body of
/// another length is a failed download (`Source`, transient).
pub fn convert_source<R: Read, W: Write + Send>(
    ds: &Dataset,
    input: R,
    expected_len: Option<u64>,
    spool: &Path,
    output: W,
    prov: &Provenance,
) -> Result<ConvertStats, ConvertError> {
    let file = prov.source_url.as_str();
    let short = |got: u64, want: u64| ConvertError::Source {
        file: file.to_string(),
        message: format!(
            "received {got} bytes, but the server announced {want} (Content-Length): the download was cut"
        ),
    };
    match ds.format {
        SourceFormat::Csv | SourceFormat::Socrata => {
            let stats = convert(ds, input, output, prov)?;
            match expected_len {
                Some(want) if want != stats.source_bytes => Err(short(stats.source_bytes, want)),
                _ => Ok(stats),
            }
        }
        SourceFormat::Parquet => {
            let src_err = |e: std::io::Error| match input::Limit::of(&e) {
                Some(limit) => ConvertError::TooLarge { file: file.to_string(), message: limit.to_string() },
                None => ConvertError::Source { file: file.to_string(), message: e.to_string() },
            };
            let (spooled, bytes, sha) = input::spool(input, spool, ds.max_source_bytes).map_err(src_err)?;
            if let Some(want) = expected_len
                && want != bytes
            {
                return Err(short(bytes, want));
            }
            convert_parquet(ds, spooled, sha, output, prov)
        }
    }
}

/// Converts a local file: Parquet when the dataset reads Parquet or the
/// file starts with Parquet's magic bytes, else CSV: `worker convert`.
pub fn convert_file<W: Write + Send>(
    ds: &Dataset,
    path: &Path,
    output: W,
    prov: &Provenance,
) -> Result<ConvertStats, ConvertError> {
    let src_err = |e: std::io::Error| ConvertError::Source { file: prov.source_url.clone(), message: e.to_string() };
    let mut f = std::fs::File::open(path).map_err(src_err)?;
    let mut magic = [0u8; 4];
    let is_parquet = f.read_exact(&mut magic).is_ok() && &magic == PARQUET_MAGIC;
    std::io::Seek::rewind(&mut f).map_err(src_err)?;
    // A Parquet dataset never reads its file as CSV: a body that is not
    // Parquet gets the sentence that says so, quoting how it starts.
    if is_parquet || ds.format == SourceFormat::Parquet {
        let mut hashing = input::Hashing::new(&f);
        let sha = hashing.finish().map_err(src_err)?;
        convert_parquet(ds, f, sha, output, prov)
    } else {
        convert(ds, f, output, prov)
    }
}

/// Converts a Parquet file (already on disk; `source_sha256` is its
/// checksum) into the dataset's schema.
pub fn convert_parquet<W: Write + Send>(
    ds: &Dataset,
    source: std::fs::File,
    source_sha256: String,
    output: W,
    prov: &Provenance,
) -> Result<ConvertStats, ConvertError> {
    let file = prov.source_url.as_str();
    std::thread::scope(|scope| {
        let schema = working_schema(ds);
        // One batch waiting: decoded Parquet batches are wide (a TLC month peaked
        // at 100-102 MiB with two waiting, 89 MiB with one; same CPU time).
        let encoder = encoder::Encoder::spawn(scope, self::output(ds, prov), output, file, 1);
        let Some((rows, source_bytes)) =
            parquet::run(ds, file, source, prov.date, &schema, &mut |batch| encoder.send(batch))?
        else {
            return Err(encoder.failed());
        };
        if rows == 0 && !ds.allow_empty {
            return Err(ConvertError::Empty { file: file.to_string() });
        }
        let stats = ConvertStats { rows, source_bytes, source_sha256 };
        encoder.finish(metadata(ds, prov, &stats))?;
        Ok(stats)
    })
}

/// Converts `input` (the raw source bytes of a CSV, plain or gzip) into
/// Parquet on `output`. Errors name the source by `prov.source_url`.
pub fn convert<R: Read, W: Write + Send>(
    ds: &Dataset,
    input: R,
    output: W,
    prov: &Provenance,
) -> Result<ConvertStats, ConvertError> {
    let file = prov.source_url.as_str();
    let src_err = |e: std::io::Error| ConvertError::Source { file: file.to_string(), message: e.to_string() };
    let mut hashing = input::Hashing::new(input);
    std::thread::scope(|scope| {
        let text = input::open(&mut hashing, ds.max_source_bytes).map_err(src_err)?;
        let mut rows = csv::CsvRows::open(ds, file, text)?;
        let schema = working_schema(ds);
        let encoder = encoder::Encoder::spawn(scope, self::output(ds, prov), output, file, 2);
        let slice = prov.date.filter(|_| ds.format == SourceFormat::Socrata).and_then(|d| ds.slice_millis(d));
        let (mut seen, mut outside) = (0u64, None);
        let mut emit = |batch: arrow_array::RecordBatch| {
            if let Some((col, start, end)) = slice
                && let Some((row, ms)) = first_outside(batch.column(col), start, end)
            {
                let day = |ms: i64| crate::timefmt::millis_to_string(ms).replace(" 00:00:00", "");
                outside = Some(ConvertError::OutsideSlice {
                    file: file.to_string(),
                    row: seen + row as u64 + 1,
                    message: format!(
                        "column {}: {} is outside the partition's slice [{}, {}): the portal (or a mirror that ignores $where) sent rows of another partition; nothing was landed",
                        Dataset::output_name(&ds.columns[col]),
                        crate::timefmt::millis_to_string(ms),
                        day(start),
                        day(end)
                    ),
                });
                return false;
            }
            seen += batch.num_rows() as u64;
            encoder.send(batch)
        };
        let n = match rows.run(ds, &schema, &mut emit) {
            Ok(n) => n,
            Err(csv::Stop::Convert(e)) => return Err(e),
            Err(csv::Stop::Encoder) => return Err(outside.unwrap_or_else(|| encoder.failed())),
        };
        if n == 0 && !ds.allow_empty {
            return Err(ConvertError::Empty { file: file.to_string() });
        }
        drop(rows);
        let source_sha256 = hashing.finish().map_err(src_err)?;
        let stats = ConvertStats { rows: n, source_bytes: hashing.bytes, source_sha256 };
        encoder.finish(metadata(ds, prov, &stats))?;
        Ok(stats)
    })
}

/// The first value of a timestamp (or date) column outside `[start, end)`
/// milliseconds, with its row.
fn first_outside(a: &arrow_array::ArrayRef, start: i64, end: i64) -> Option<(usize, i64)> {
    use arrow_array::Array;
    use arrow_array::cast::AsArray;
    use arrow_array::types::{Date32Type, TimestampMillisecondType};
    let outside = |ms: i64| ms < start || ms >= end;
    let valid = |i: usize| a.is_valid(i);
    match a.data_type() {
        DataType::Date32 => {
            let v = a.as_primitive::<Date32Type>().values();
            (0..v.len()).map(|i| (i, v[i] as i64 * 86_400_000)).find(|&(i, ms)| valid(i) && outside(ms))
        }
        _ => {
            let v = a.as_primitive::<TimestampMillisecondType>().values();
            (0..v.len()).map(|i| (i, v[i])).find(|&(i, ms)| valid(i) && outside(ms))
        }
    }
}

#[cfg(test)]
mod tests {
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
        let csv =
            "station,ridership,fare,plain\nA,\"2,122\",\"1,234,567.5\",7\nB,999,12.25,8\nC,\"-1,000\",\"0.5\",9\n";
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
}
