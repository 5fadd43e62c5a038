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
use crate::util::text::quote;
use crate::util::timefmt::DateTimeFormat;

mod mapping;
use mapping::*;
mod guards;
pub use guards::*;
mod column;
use column::*;

const MS_PER_DAY: i64 = 86_400_000;

/// `schema`, with the type of each array that differs from it: instants
/// from a zone-aware source are `Timestamp(ms, "UTC")` where the converters'
/// wall-clock times are `Timestamp(ms)`.
fn batch_schema(schema: &SchemaRef, arrays: &[ArrayRef]) -> SchemaRef {
    if schema.fields().iter().zip(arrays).all(|(f, a)| f.data_type() == a.data_type()) {
        return schema.clone();
    }
    let fields: Vec<arrow_schema::Field> = schema
        .fields()
        .iter()
        .zip(arrays)
        .map(|(f, a)| f.as_ref().clone().with_data_type(a.data_type().clone()))
        .collect();
    Arc::new(arrow_schema::Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// The four bytes a Parquet file starts (and ends) with.
pub const MAGIC: &[u8; 4] = b"PAR1";

/// A cell that cannot become its output value: the row in the batch and why.
type Bad = (usize, String);

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
        message: crate::util::text::bounded(&e.to_string(), 400),
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
                column: crate::util::text::bounded(&column, 100),
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
                            column: crate::util::text::bounded(source_name, 100),
                            output: t.name.clone(),
                            message,
                        }
                    })?,
                };
                arrays.push(array);
            }
            let out = RecordBatch::try_new(batch_schema(schema, &arrays), arrays)
                .map_err(|e| ConvertError::Output { file: file_name.to_string(), message: e.to_string() })?;
            rows += n as u64;
            if !emit(out) {
                return Ok(None);
            }
        }
    }
    Ok(Some((rows, size)))
}
