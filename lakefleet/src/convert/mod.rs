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
                let day = |ms: i64| crate::util::timefmt::millis_to_string(ms).replace(" 00:00:00", "");
                outside = Some(ConvertError::OutsideSlice {
                    file: file.to_string(),
                    row: seen + row as u64 + 1,
                    message: format!(
                        "column {}: {} is outside the partition's slice [{}, {}): the portal (or a mirror that ignores $where) sent rows of another partition; nothing was landed",
                        Dataset::output_name(&ds.columns[col]),
                        crate::util::timefmt::millis_to_string(ms),
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
mod tests;
