//! Bomb guards: a footer, row groups and decoded batches bounded before
//! anything is decoded.

use super::*;

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
pub(super) fn check_frame(ds: &Dataset, file_name: &str, source: &File, size: u64) -> Result<(), ConvertError> {
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
pub(super) fn dictionary_hint(schema: &SchemaRef, roots: &[usize]) -> Option<SchemaRef> {
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
pub(super) fn text_bytes(batch: &RecordBatch, max_value: u64) -> Result<Vec<u64>, (usize, usize, u64)> {
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
