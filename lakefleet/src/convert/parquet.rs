//! Parquet source -> the dataset's schema: columns matched by name (the
//! catalog's source names and aliases, case-insensitively, era by era), read
//! batch by batch (memory: one batch and the pages of one row group), each
//! column widened where that is safe and converted with a check where it is
//! not (a DOUBLE with a fraction never becomes an INT64 quietly).

use std::fs::File;
use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::{
    Date32Type, Date64Type, Float32Type, Float64Type, Int8Type, Int16Type, Int32Type, Int64Type,
    TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType, UInt8Type,
    UInt16Type, UInt32Type, UInt64Type,
};
use arrow_array::{
    Array, ArrayRef, Date32Array, Float64Array, Int64Array, LargeStringArray, PrimitiveArray, RecordBatch, StringArray,
    StringViewArray, TimestampMillisecondArray, new_null_array,
};
use arrow_buffer::{NullBuffer, ScalarBuffer};
use arrow_schema::{DataType, SchemaRef, TimeUnit};
use chrono::NaiveDate;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder};

use super::columns::{parse_f64, parse_i64};
use super::{ConvertError, PARQUET_BATCH_ROWS};
use crate::catalog::{ColumnType, Dataset, MissingColumns, UnknownColumns};
use crate::text::quote;
use crate::timefmt::DateTimeFormat;

const MS_PER_DAY: i64 = 86_400_000;

/// The four bytes a Parquet file starts (and ends) with.
pub const MAGIC: &[u8; 4] = b"PAR1";

/// What a source column is, for the conversions below.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// The `null` type: an all-empty column (pyarrow writes it for empty months).
    Null,
    Int,
    UInt64,
    Float,
    Str,
    Bool,
    Timestamp(TimeUnit),
    Date32,
    Date64,
}

fn kind(t: &DataType) -> Option<Kind> {
    Some(match t {
        DataType::Null => Kind::Null,
        DataType::Int8 | DataType::Int16 | DataType::Int32 | DataType::Int64 => Kind::Int,
        DataType::UInt8 | DataType::UInt16 | DataType::UInt32 => Kind::Int,
        DataType::UInt64 => Kind::UInt64,
        DataType::Float32 | DataType::Float64 => Kind::Float,
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Kind::Str,
        DataType::Dictionary(_, v) if kind(v) == Some(Kind::Str) => Kind::Str,
        DataType::Boolean => Kind::Bool,
        DataType::Timestamp(u, _) => Kind::Timestamp(*u),
        DataType::Date32 => Kind::Date32,
        DataType::Date64 => Kind::Date64,
        _ => return None,
    })
}

/// Whether a source kind can become an output type (safely or with a
/// per-value check).
fn converts(k: Kind, ty: ColumnType) -> bool {
    use ColumnType as T;
    use Kind as K;
    match ty {
        T::Int64 | T::Float64 => matches!(k, K::Null | K::Int | K::UInt64 | K::Float | K::Str),
        T::String => matches!(k, K::Null | K::Int | K::UInt64 | K::Float | K::Str | K::Bool),
        T::Timestamp | T::Date => matches!(k, K::Null | K::Str | K::Timestamp(_) | K::Date32 | K::Date64),
    }
}

/// One output column and where it comes from.
struct Target {
    name: String,
    ty: ColumnType,
    nullable: bool,
    format: Option<DateTimeFormat>,
    /// Position in the projected batch and the source column's name; none:
    /// the source lacks it (nulls).
    from: Option<(usize, String)>,
}

/// The source schema matched against the dataset: projection and targets.
struct Mapping {
    roots: Vec<usize>,
    targets: Vec<Target>,
}

fn header_err(ds: &Dataset, file: &str, message: String) -> ConvertError {
    ConvertError::Header { file: file.to_string(), dataset: ds.name.clone(), message }
}

/// Short type names for messages: `int32`, `double`, `string`, `timestamp[us]`, `null`.
fn type_name(t: &DataType) -> String {
    match t {
        DataType::Null => "null".into(),
        DataType::Float64 => "double".into(),
        DataType::Float32 => "float".into(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "string".into(),
        DataType::Timestamp(u, _) => {
            format!(
                "timestamp[{}]",
                match u {
                    TimeUnit::Second => "s",
                    TimeUnit::Millisecond => "ms",
                    TimeUnit::Microsecond => "us",
                    TimeUnit::Nanosecond => "ns",
                }
            )
        }
        other => other.to_string().to_ascii_lowercase(),
    }
}

fn map_schema(ds: &Dataset, file: &str, schema: &SchemaRef, date: Option<NaiveDate>) -> Result<Mapping, ConvertError> {
    let era = ds.era(date);
    let accepted: Vec<Vec<&str>> = (0..ds.columns.len()).map(|i| ds.accepted_names(i, era)).collect();
    let mut source_of: Vec<Option<usize>> = vec![None; ds.columns.len()];
    let mut unknown = Vec::new();
    for (s, field) in schema.fields().iter().enumerate() {
        let name = field.name().trim();
        if ds.ignore_columns.iter().any(|g| g.eq_ignore_ascii_case(name)) {
            continue;
        }
        let Some(i) = accepted.iter().position(|names| names.iter().any(|n| n.eq_ignore_ascii_case(name))) else {
            unknown.push(format!("{} ({})", crate::text::bounded(name, 100), type_name(field.data_type())));
            continue;
        };
        if let Some(prev) = source_of[i] {
            return Err(header_err(
                ds,
                file,
                format!(
                    "source columns {} and {name} both map to output column {}",
                    schema.field(prev).name(),
                    Dataset::output_name(&ds.columns[i])
                ),
            ));
        }
        let col = &ds.columns[i];
        if let DataType::Timestamp(_, Some(tz)) = field.data_type() {
            return Err(header_err(
                ds,
                file,
                format!(
                    "source column {name} is a timestamp in time zone {}: the lake holds wall-clock times without a zone, and storing this column's UTC instants would shift every value by the zone's offset; convert it to local time without a zone upstream, or leave the column out of the catalog",
                    crate::text::bounded(tz, 60)
                ),
            ));
        }
        match kind(field.data_type()) {
            Some(k) if converts(k, col.ty) => source_of[i] = Some(s),
            _ => {
                return Err(header_err(
                    ds,
                    file,
                    format!(
                        "source column {name} is {}, which cannot become {} column {}",
                        type_name(field.data_type()),
                        col.ty,
                        Dataset::output_name(col)
                    ),
                ));
            }
        }
    }
    if !unknown.is_empty() && ds.unknown_columns == UnknownColumns::Fail {
        let shown = unknown.len().min(20);
        return Err(ConvertError::SchemaDrift {
            file: file.to_string(),
            dataset: ds.name.clone(),
            message: format!(
                "unknown column(s) {}{}: not in the dataset's schema{}; add them to the catalog (a column, or an alias of one) or set unknown_columns = \"ignore\", then replay",
                unknown[..shown].join(", "),
                if unknown.len() > shown { format!(" and {} more", unknown.len() - shown) } else { String::new() },
                era.map(|e| format!(" (era from {})", e.first)).unwrap_or_default(),
            ),
        });
    }
    let missing: Vec<String> =
        ds.columns.iter().zip(&source_of).filter(|(_, s)| s.is_none()).map(|(c, _)| Dataset::output_name(c)).collect();
    if !missing.is_empty() && ds.missing_columns == MissingColumns::Fail {
        let found: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        return Err(header_err(
            ds,
            file,
            format!(
                "missing column(s) {}; found [{}]",
                missing.join(", "),
                crate::text::bounded(&found.join(","), 600)
            ),
        ));
    }
    let mut roots: Vec<usize> = source_of.iter().flatten().copied().collect();
    roots.sort_unstable();
    let targets = ds
        .columns
        .iter()
        .zip(&source_of)
        .map(|(c, s)| Target {
            name: Dataset::output_name(c),
            ty: c.ty,
            nullable: c.nullable,
            format: c.format.as_deref().map(|f| DateTimeFormat::compile(f).expect("validated catalog")),
            from: s.map(|s| (roots.binary_search(&s).expect("projected"), schema.field(s).name().clone())),
        })
        .collect();
    Ok(Mapping { roots, targets })
}

/// A cell that cannot become its output value: the row in the batch and why.
type Bad = (usize, String);

/// The largest Parquet footer read (thrift metadata, from the file's last 8
/// bytes): real files' footers are kilobytes; a footer of 100,000 row groups
/// is tens of megabytes, and several times that once parsed.
pub const MAX_FOOTER_BYTES: u64 = 8 << 20;
/// The most row groups a Parquet source may have (real files: 1 to a few
/// hundred).
pub const MAX_ROW_GROUPS: usize = 10_000;
/// Decoded text per converted batch at most: a batch whose text columns
/// decode to more is converted a slice of rows at a time (a dictionary of
/// one 100 KB value under 200,000 rows is 20 GB decoded).
pub const DECODED_BATCH_BYTES: u64 = 32 << 20;
/// Decoded text may reach the dataset's `max_source_bytes`, but never more
/// than this many times the file's size (at least [`DECODED_FLOOR`]): real
/// files decode to a few times their size; a 2 KB file that decodes to 20 GB
/// is a dictionary bomb, refused before its first batch is copied out.
pub const DECODED_RATIO: u64 = 1000;
/// The decoded text every file may have, whatever its size.
pub const DECODED_FLOOR: u64 = 1 << 30;

/// The file's first and last bytes: Parquet's magic at both ends, a footer
/// length within [`MAX_FOOTER_BYTES`]. Nothing else is read before they pass.
fn check_frame(ds: &Dataset, file_name: &str, source: &File, size: u64) -> Result<(), ConvertError> {
    use std::os::unix::fs::FileExt;
    let corrupt = |message: String| ConvertError::Corrupt { file: file_name.to_string(), message };
    let mut head = [0u8; 64];
    let n = source.read_at(&mut head, 0).unwrap_or(0);
    if n < 4 || &head[..4] != MAGIC {
        let start = head[..n].iter().position(|b| !b.is_ascii_whitespace()).map_or(&head[..0], |i| &head[i..n]);
        return Err(ConvertError::NotParquet {
            file: file_name.to_string(),
            dataset: ds.name.clone(),
            start: quote(&start[..start.len().min(40)]),
        });
    }
    let mut tail = [0u8; 8];
    if size < 12 || source.read_at(&mut tail, size - 8).ok() != Some(8) || &tail[4..] != MAGIC {
        return Err(corrupt(format!("{size} bytes and no footer at the end: the file is truncated")));
    }
    let footer = u32::from_le_bytes(tail[..4].try_into().expect("4 bytes")) as u64;
    if footer > MAX_FOOTER_BYTES {
        return Err(ConvertError::TooLarge {
            file: file_name.to_string(),
            message: format!(
                "its Parquet footer (metadata) is {footer} bytes, more than {MAX_FOOTER_BYTES}: too many row groups or columns to read in bounded memory; rewrite it with larger row groups"
            ),
        });
    }
    Ok(())
}

/// The file's schema with every projected text column read as a dictionary
/// (its decoded size is then known before any value is copied out).
fn dictionary_hint(schema: &SchemaRef, roots: &[usize]) -> Option<SchemaRef> {
    let mut changed = false;
    let fields: Vec<arrow_schema::FieldRef> = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| match f.data_type() {
            DataType::Utf8 | DataType::LargeUtf8 if roots.contains(&i) => {
                changed = true;
                let dict = DataType::Dictionary(Box::new(DataType::Int32), Box::new(f.data_type().clone()));
                Arc::new(f.as_ref().clone().with_data_type(dict))
            }
            _ => f.clone(),
        })
        .collect();
    changed.then(|| Arc::new(arrow_schema::Schema::new_with_metadata(fields, schema.metadata().clone())))
}

/// Decoded bytes of each row's text (columns read as dictionaries); `Err`
/// names the first value longer than `max_value`: (row, column, length).
fn text_bytes(batch: &RecordBatch, max_value: u64) -> Result<Vec<u64>, (usize, usize, u64)> {
    let mut per_row = vec![0u64; batch.num_rows()];
    for (c, a) in batch.columns().iter().enumerate() {
        let DataType::Dictionary(..) = a.data_type() else { continue };
        let d = a.as_any_dictionary();
        let lens: Vec<u64> = match d.values().data_type() {
            DataType::Utf8 => {
                d.values().as_string::<i32>().offsets().windows(2).map(|w| (w[1] - w[0]) as u64).collect()
            }
            DataType::LargeUtf8 => {
                d.values().as_string::<i64>().offsets().windows(2).map(|w| (w[1] - w[0]) as u64).collect()
            }
            _ => continue,
        };
        let nulls = d.keys().logical_nulls();
        for (r, k) in d.normalized_keys().into_iter().enumerate() {
            if nulls.as_ref().is_some_and(|n| n.is_null(r)) {
                continue;
            }
            let len = lens.get(k).copied().unwrap_or(0);
            if len > max_value {
                return Err((r, c, len));
            }
            per_row[r] += len;
        }
    }
    Ok(per_row)
}

/// Converts a Parquet file into the dataset's schema; `emit` takes each
/// batch (false: the encoder stopped). Returns the row count and the file's
/// size. Memory: the footer (bounded), one row group's pages, one batch of
/// dictionary-encoded text, and at most [`DECODED_BATCH_BYTES`] of it decoded.
pub(super) fn run(
    ds: &Dataset,
    file_name: &str,
    source: File,
    date: Option<NaiveDate>,
    schema: &SchemaRef,
    emit: &mut dyn FnMut(RecordBatch) -> bool,
) -> Result<Option<(u64, u64)>, ConvertError> {
    let corrupt = |e: &dyn std::fmt::Display| ConvertError::Corrupt {
        file: file_name.to_string(),
        message: crate::text::bounded(&e.to_string(), 400),
    };
    let too_large = |message: String| ConvertError::TooLarge { file: file_name.to_string(), message };
    let size = source.metadata().map(|m| m.len()).unwrap_or(0);
    check_frame(ds, file_name, &source, size)?;
    let meta = ArrowReaderMetadata::load(&source, Default::default()).map_err(|e| corrupt(&e))?;
    let groups = meta.metadata().row_groups();
    if groups.len() > MAX_ROW_GROUPS {
        return Err(too_large(format!(
            "it has {} row groups, more than {MAX_ROW_GROUPS}: rewrite it with larger row groups",
            groups.len()
        )));
    }
    let mapping = map_schema(ds, file_name, meta.schema(), date)?;
    let ends: Vec<u64> = groups
        .iter()
        .scan(0u64, |acc, rg| {
            *acc += rg.num_rows().max(0) as u64;
            Some(*acc)
        })
        .collect();
    // Pages as stored, decompressed: counted against max_source_bytes before
    // anything is read (a compression bomb in a page).
    let pages: u64 = groups.iter().map(|rg| rg.total_byte_size().max(0) as u64).sum();
    if pages > ds.max_source_bytes {
        return Err(too_large(format!(
            "its pages hold {pages} bytes uncompressed, more than the dataset's max_source_bytes {}",
            ds.max_source_bytes
        )));
    }
    let meta = match dictionary_hint(meta.schema(), &mapping.roots) {
        Some(hint) => {
            let options = ArrowReaderOptions::new().with_schema(hint);
            ArrowReaderMetadata::try_new(meta.metadata().clone(), options).map_err(|e| corrupt(&e))?
        }
        None => meta,
    };
    let builder = ParquetRecordBatchReaderBuilder::new_with_metadata(source, meta);
    let mask = ProjectionMask::roots(builder.parquet_schema(), mapping.roots.iter().copied());
    let reader = builder.with_projection(mask).with_batch_size(PARQUET_BATCH_ROWS).build().map_err(|e| corrupt(&e))?;
    let (mut rows, mut decoded) = (0u64, 0u64);
    let text_limit = ds.max_source_bytes.min(size.saturating_mul(DECODED_RATIO).max(DECODED_FLOOR));
    let row_group = |row: u64| ends.partition_point(|&end| end <= row) + 1;
    let source_name = |pos: usize| {
        mapping.targets.iter().find_map(|t| t.from.as_ref().filter(|(p, _)| *p == pos)).map(|(_, n)| n.clone())
    };
    for batch in reader {
        let batch = batch.map_err(|e| corrupt(&e))?;
        let text = text_bytes(&batch, ds.max_record_bytes).map_err(|(row, col, len)| {
            let row = rows + row as u64;
            let column = source_name(col).unwrap_or_default();
            let target = mapping.targets.iter().find(|t| t.from.as_ref().is_some_and(|(p, _)| *p == col));
            ConvertError::Value {
                file: file_name.to_string(),
                row_group: row_group(row),
                row: row + 1,
                column: crate::text::bounded(&column, 100),
                output: target.map(|t| t.name.clone()).unwrap_or_default(),
                message: format!("a value of {len} bytes, longer than max_record_bytes {}", ds.max_record_bytes),
            }
        })?;
        decoded += text.iter().sum::<u64>();
        if decoded > text_limit {
            let last = rows + batch.num_rows() as u64;
            return Err(too_large(format!(
                "its text decodes to {decoded} bytes by row {last} (row group {}), more than {text_limit} ({}): dictionary values repeated far beyond what the file's {size} bytes hold",
                row_group(last - 1),
                match text_limit == ds.max_source_bytes {
                    true => "the dataset's max_source_bytes".to_string(),
                    false => format!("{DECODED_RATIO} times the file's size, at least {DECODED_FLOOR}"),
                }
            )));
        }
        // Slices of rows whose decoded text fits the budget (one row at least).
        let mut start = 0;
        while start < batch.num_rows() {
            let (mut end, mut bytes) = (start, 0u64);
            while end < batch.num_rows() && (end == start || bytes + text[end] <= DECODED_BATCH_BYTES) {
                bytes += text[end];
                end += 1;
            }
            let part = batch.slice(start, end - start);
            start = end;
            let n = part.num_rows();
            let mut arrays = Vec::with_capacity(mapping.targets.len());
            for t in &mapping.targets {
                let array = match &t.from {
                    None => new_null_array(&super::data_type(t.ty), n),
                    Some((pos, source_name)) => convert_column(part.column(*pos), t).map_err(|(row, message)| {
                        let row = rows + row as u64;
                        ConvertError::Value {
                            file: file_name.to_string(),
                            row_group: row_group(row),
                            row: row + 1,
                            column: crate::text::bounded(source_name, 100),
                            output: t.name.clone(),
                            message,
                        }
                    })?,
                };
                arrays.push(array);
            }
            let out = RecordBatch::try_new(schema.clone(), arrays)
                .map_err(|e| ConvertError::Output { file: file_name.to_string(), message: e.to_string() })?;
            rows += n as u64;
            if !emit(out) {
                return Ok(None);
            }
        }
    }
    Ok(Some((rows, size)))
}

/// The source's validity, checked against the column's nullability.
fn nulls_of(a: &dyn Array, t: &Target) -> Result<Option<NullBuffer>, Bad> {
    let nulls = a.logical_nulls();
    if !t.nullable
        && let Some(n) = &nulls
        && n.null_count() > 0
    {
        let row = (0..a.len()).find(|&i| n.is_null(i)).unwrap_or(0);
        return Err((row, "null in a column that is not nullable".into()));
    }
    Ok(nulls)
}

/// Integers of any width as i64 (widening); `None` for other types.
fn as_i64(a: &dyn Array) -> Option<Vec<i64>> {
    Some(match a.data_type() {
        DataType::Int8 => a.as_primitive::<Int8Type>().values().iter().map(|&v| v as i64).collect(),
        DataType::Int16 => a.as_primitive::<Int16Type>().values().iter().map(|&v| v as i64).collect(),
        DataType::Int32 => a.as_primitive::<Int32Type>().values().iter().map(|&v| v as i64).collect(),
        DataType::Int64 => a.as_primitive::<Int64Type>().values().to_vec(),
        DataType::UInt8 => a.as_primitive::<UInt8Type>().values().iter().map(|&v| v as i64).collect(),
        DataType::UInt16 => a.as_primitive::<UInt16Type>().values().iter().map(|&v| v as i64).collect(),
        DataType::UInt32 => a.as_primitive::<UInt32Type>().values().iter().map(|&v| v as i64).collect(),
        _ => return None,
    })
}

/// Milliseconds of timestamps and dates, with the factor to divide by
/// (values finer than milliseconds must divide exactly).
fn as_millis(a: &dyn Array) -> Option<(Vec<i64>, i64)> {
    Some(match a.data_type() {
        DataType::Timestamp(TimeUnit::Second, _) => {
            (a.as_primitive::<TimestampSecondType>().values().iter().map(|&v| v.saturating_mul(1000)).collect(), 1)
        }
        DataType::Timestamp(TimeUnit::Millisecond, _) => {
            (a.as_primitive::<TimestampMillisecondType>().values().to_vec(), 1)
        }
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            (a.as_primitive::<TimestampMicrosecondType>().values().to_vec(), 1_000)
        }
        DataType::Timestamp(TimeUnit::Nanosecond, _) => {
            (a.as_primitive::<TimestampNanosecondType>().values().to_vec(), 1_000_000)
        }
        DataType::Date32 => {
            (a.as_primitive::<Date32Type>().values().iter().map(|&d| d as i64 * MS_PER_DAY).collect(), 1)
        }
        DataType::Date64 => (a.as_primitive::<Date64Type>().values().to_vec(), 1),
        _ => return None,
    })
}

/// Text of any string layout, dictionary-encoded or not.
enum Strs<'a> {
    Utf8(&'a StringArray),
    Large(&'a LargeStringArray),
    View(&'a StringViewArray),
    Dict(Vec<usize>, Box<Strs<'a>>),
}

impl<'a> Strs<'a> {
    fn of(a: &'a dyn Array) -> Option<Strs<'a>> {
        Some(match a.data_type() {
            DataType::Utf8 => Strs::Utf8(a.as_string::<i32>()),
            DataType::LargeUtf8 => Strs::Large(a.as_string::<i64>()),
            DataType::Utf8View => Strs::View(a.as_string_view()),
            DataType::Dictionary(..) => {
                let d = a.as_any_dictionary();
                Strs::Dict(d.normalized_keys(), Box::new(Strs::of(d.values().as_ref())?))
            }
            _ => return None,
        })
    }

    fn at(&self, i: usize) -> &str {
        match self {
            Strs::Utf8(s) => s.value(i),
            Strs::Large(s) => s.value(i),
            Strs::View(s) => s.value(i),
            Strs::Dict(keys, values) => values.at(keys[i]),
        }
    }
}

/// Builds a primitive output array value by value, keeping the source's nulls.
fn each<T: arrow_array::ArrowPrimitiveType>(
    len: usize,
    nulls: Option<NullBuffer>,
    mut f: impl FnMut(usize) -> Result<T::Native, String>,
) -> Result<PrimitiveArray<T>, Bad> {
    let mut out = Vec::with_capacity(len);
    for i in 0..len {
        if nulls.as_ref().is_some_and(|n| n.is_null(i)) {
            out.push(T::Native::default());
        } else {
            out.push(f(i).map_err(|m| (i, m))?);
        }
    }
    Ok(PrimitiveArray::<T>::new(ScalarBuffer::from(out), nulls))
}

/// Text values: empty (after trimming) becomes null, like an empty CSV field.
fn parse_text<T: arrow_array::ArrowPrimitiveType>(
    a: &dyn Array,
    t: &Target,
    parse: impl Fn(&[u8]) -> Option<T::Native>,
    what: &str,
) -> Result<PrimitiveArray<T>, Bad> {
    let strs = Strs::of(a).expect("a string kind");
    let src = a.logical_nulls();
    let mut nulls = Vec::with_capacity(a.len());
    let mut out = Vec::with_capacity(a.len());
    for i in 0..a.len() {
        let v = if src.as_ref().is_some_and(|n| n.is_null(i)) { "" } else { strs.at(i).trim() };
        if v.is_empty() {
            if !t.nullable {
                return Err((i, "empty value in a column that is not nullable".into()));
            }
            nulls.push(false);
            out.push(T::Native::default());
        } else {
            let x =
                parse(v.as_bytes()).ok_or_else(|| (i, format!("cannot parse {} as {what}", quote(v.as_bytes()))))?;
            nulls.push(true);
            out.push(x);
        }
    }
    Ok(PrimitiveArray::<T>::new(ScalarBuffer::from(out), Some(NullBuffer::from(nulls))))
}

/// One source column -> its output column.
fn convert_column(a: &ArrayRef, t: &Target) -> Result<ArrayRef, Bad> {
    let k = kind(a.data_type()).expect("checked when mapping");
    if k == Kind::Null {
        if !t.nullable && !a.is_empty() {
            return Err((0, "null in a column that is not nullable".into()));
        }
        return Ok(new_null_array(&super::data_type(t.ty), a.len()));
    }
    let len = a.len();
    Ok(match t.ty {
        ColumnType::Int64 => {
            if a.data_type() == &DataType::Int64 {
                nulls_of(a.as_ref(), t)?;
                return Ok(a.clone());
            }
            if k == Kind::Str {
                return Ok(Arc::new(parse_text::<Int64Type>(a.as_ref(), t, parse_i64, "int64")?));
            }
            let nulls = nulls_of(a.as_ref(), t)?;
            let out: Int64Array = if let Some(v) = as_i64(a.as_ref()) {
                PrimitiveArray::new(ScalarBuffer::from(v), nulls)
            } else if k == Kind::UInt64 {
                let v = a.as_primitive::<UInt64Type>().values();
                each::<Int64Type>(len, nulls, |i| {
                    i64::try_from(v[i]).map_err(|_| format!("{} is beyond the int64 range", v[i]))
                })?
            } else {
                let v = floats(a.as_ref());
                each::<Int64Type>(len, nulls, |i| {
                    let x = v[i];
                    if x.fract() != 0.0 || !x.is_finite() || x.abs() >= 9.2e18 {
                        Err(format!("{x} has a fraction or is out of range: an int64 column would lose it"))
                    } else {
                        Ok(x as i64)
                    }
                })?
            };
            Arc::new(out)
        }
        ColumnType::Float64 => {
            if a.data_type() == &DataType::Float64 {
                nulls_of(a.as_ref(), t)?;
                return Ok(a.clone());
            }
            if k == Kind::Str {
                return Ok(Arc::new(parse_text::<Float64Type>(a.as_ref(), t, parse_f64, "float64")?));
            }
            let nulls = nulls_of(a.as_ref(), t)?;
            let v: Vec<f64> = if let Some(ints) = as_i64(a.as_ref()) {
                ints.into_iter().map(|x| x as f64).collect()
            } else if k == Kind::UInt64 {
                a.as_primitive::<UInt64Type>().values().iter().map(|&x| x as f64).collect()
            } else {
                floats(a.as_ref())
            };
            Arc::new(Float64Array::new(ScalarBuffer::from(v), nulls))
        }
        ColumnType::String => {
            if a.data_type() == &DataType::Utf8 {
                nulls_of(a.as_ref(), t)?;
                return Ok(a.clone());
            }
            if let DataType::Dictionary(_, v) = a.data_type()
                && v.as_ref() == &DataType::Utf8
            {
                // Text read as a dictionary: copied out (a slice whose
                // decoded size was bounded by the caller).
                nulls_of(a.as_ref(), t)?;
                let d = a.as_any_dictionary();
                let out = arrow_select::take::take(d.values().as_ref(), d.keys(), None)
                    .map_err(|e| (0, format!("copying text out of its dictionary: {e}")))?;
                return Ok(out);
            }
            let nulls = nulls_of(a.as_ref(), t)?;
            let is_null = |i: usize| nulls.as_ref().is_some_and(|n| n.is_null(i));
            let text: Vec<Option<String>> = if let Some(s) = Strs::of(a.as_ref()) {
                (0..len).map(|i| (!is_null(i)).then(|| s.at(i).to_string())).collect()
            } else if let Some(v) = as_i64(a.as_ref()) {
                (0..len).map(|i| (!is_null(i)).then(|| v[i].to_string())).collect()
            } else if k == Kind::UInt64 {
                let v = a.as_primitive::<UInt64Type>().values();
                (0..len).map(|i| (!is_null(i)).then(|| v[i].to_string())).collect()
            } else if k == Kind::Bool {
                let b = a.as_boolean();
                (0..len).map(|i| (!is_null(i)).then(|| b.value(i).to_string())).collect()
            } else {
                let v = floats(a.as_ref());
                (0..len).map(|i| (!is_null(i)).then(|| v[i].to_string())).collect()
            };
            Arc::new(StringArray::from(text))
        }
        ColumnType::Timestamp => {
            if k == Kind::Str {
                let f = t.format.as_ref().expect("validated");
                let out = parse_text::<TimestampMillisecondType>(
                    a.as_ref(),
                    t,
                    |v| f.parse_millis(v),
                    &format!("timestamp (format {:?})", f.as_str()),
                )?;
                return Ok(Arc::new(out));
            }
            let nulls = nulls_of(a.as_ref(), t)?;
            let (v, div) = as_millis(a.as_ref()).expect("a time kind");
            let out: TimestampMillisecondArray = each::<TimestampMillisecondType>(len, nulls, |i| {
                if v[i] % div != 0 {
                    return Err(format!(
                        "{} ({}) is finer than milliseconds: the dataset's millisecond timestamps would lose it",
                        v[i],
                        type_name(a.data_type())
                    ));
                }
                readable_millis(v[i] / div, false)
            })?;
            Arc::new(out)
        }
        ColumnType::Date => {
            if a.data_type() == &DataType::Date32 {
                let nulls = nulls_of(a.as_ref(), t)?;
                let v = a.as_primitive::<Date32Type>().values();
                return Ok(Arc::new(each::<Date32Type>(len, nulls, |i| {
                    readable_millis(v[i] as i64 * MS_PER_DAY, true).map(|_| v[i])
                })?));
            }
            if k == Kind::Str {
                let f = t.format.as_ref().expect("validated");
                let what = format!("date (format {:?})", f.as_str());
                return Ok(Arc::new(parse_text::<Date32Type>(a.as_ref(), t, |v| f.parse_days(v), &what)?));
            }
            let nulls = nulls_of(a.as_ref(), t)?;
            let (v, div) = as_millis(a.as_ref()).expect("a time kind");
            let out: Date32Array = each::<Date32Type>(len, nulls, |i| {
                let per_day = MS_PER_DAY * div;
                if v[i] % per_day != 0 {
                    Err(format!("{} is not midnight: a date column would lose the time", v[i]))
                } else {
                    readable_millis(v[i] / div, true)?;
                    i32::try_from(v[i] / per_day).map_err(|_| "out of the date range".to_string())
                }
            })?;
            Arc::new(out)
        }
    })
}

/// A timestamp (or a date's midnight) in milliseconds, when common readers
/// represent it (`timefmt::READABLE_MILLIS`); otherwise the row fails naming
/// the value: year 9999 in the lake makes pandas and pyarrow raise.
fn readable_millis(ms: i64, date: bool) -> Result<i64, String> {
    if crate::timefmt::READABLE_MILLIS.contains(&ms) {
        return Ok(ms);
    }
    let shown = chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| if date { d.date_naive().to_string() } else { d.naive_utc().to_string() })
        .unwrap_or_else(|| format!("{ms} ms from 1970-01-01"));
    Err(format!(
        "{shown} is outside {} (what readers represent as nanoseconds); a wrong value in the source?",
        crate::timefmt::READABLE_RANGE
    ))
}

/// Float32 or Float64 values as f64.
fn floats(a: &dyn Array) -> Vec<f64> {
    match a.data_type() {
        DataType::Float32 => a.as_primitive::<Float32Type>().values().iter().map(|&v| v as f64).collect(),
        _ => a.as_primitive::<Float64Type>().values().to_vec(),
    }
}
