//! An Add's statistics, from the object's own Parquet footer: the row count,
//! every column's null count, and min/max of numbers, dates and timestamps
//! (text columns carry none: the encoder does not compute them). Readers use
//! them to skip files (`WHERE observed_at >= ...`), so a value is given only
//! when every row group has it.

use std::path::Path;

use arrow_schema::{DataType, TimeUnit};
use parquet::file::reader::{FileReader, SerializedFileReader};
use parquet::file::statistics::Statistics;
use serde_json::{Map, Value, json};

/// The statistics of the Parquet file at `path` (ours or another tool's:
/// columns are matched by name), as the JSON string an Add carries; `None`
/// when the footer cannot be read.
pub fn of_file(path: &Path) -> Option<String> {
    let reader = SerializedFileReader::new(std::fs::File::open(path).ok()?).ok()?;
    let meta = reader.metadata();
    let descr = meta.file_metadata().schema_descr();
    let schema = parquet::arrow::parquet_to_arrow_schema(descr, meta.file_metadata().key_value_metadata()).ok()?;
    let rows: i64 = meta.row_groups().iter().map(|rg| rg.num_rows()).sum();
    let (mut mins, mut maxs, mut nulls) = (Map::new(), Map::new(), Map::new());
    // Top-level columns, matched with the leaf column of the same name (the
    // order of another tool's file may differ from ours).
    for field in schema.fields() {
        let Some(i) = descr.columns().iter().position(|c| c.path().parts() == [field.name().clone()]) else {
            continue;
        };
        let stats: Option<Vec<(&Statistics, i64)>> =
            meta.row_groups().iter().map(|rg| rg.column(i).statistics().map(|s| (s, rg.num_rows()))).collect();
        let Some(stats) = stats else { continue };
        let Some(n) = stats.iter().map(|(s, _)| s.null_count_opt()).sum::<Option<u64>>() else { continue };
        nulls.insert(field.name().clone(), json!(n));
        // Row groups whose values are all null have no min/max: leave them out.
        let valued: Vec<&Statistics> =
            stats.iter().filter(|(s, rows)| s.null_count_opt() != Some(*rows as u64)).map(|(s, _)| *s).collect();
        if let Some((lo, hi)) = range(&valued, field.data_type()) {
            mins.insert(field.name().clone(), lo);
            maxs.insert(field.name().clone(), hi);
        }
    }
    Some(json!({"numRecords": rows, "minValues": mins, "maxValues": maxs, "nullCount": nulls}).to_string())
}

/// Min and max over the row groups, in Delta's JSON form for the column's
/// type (numbers; `2022-01-08` for dates; `2022-01-08T04:00:00.000` for
/// timestamps without a zone). `None` when a row group with values lacks one.
fn range(stats: &[&Statistics], ty: &DataType) -> Option<(Value, Value)> {
    if stats.is_empty() {
        return None;
    }
    match ty {
        DataType::Int64 | DataType::Timestamp(TimeUnit::Microsecond, _) => {
            let (mut lo, mut hi) = (i64::MAX, i64::MIN);
            for s in stats {
                let Statistics::Int64(v) = s else { return None };
                lo = lo.min(*v.min_opt()?);
                hi = hi.max(*v.max_opt()?);
            }
            Some(match ty {
                DataType::Int64 => (json!(lo), json!(hi)),
                DataType::Timestamp(_, tz) => {
                    (json!(timestamp(lo, tz.is_some())?), json!(timestamp(hi, tz.is_some())?))
                }
                _ => return None,
            })
        }
        DataType::Float64 => {
            let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
            for s in stats {
                let Statistics::Double(v) = s else { return None };
                lo = lo.min(*v.min_opt()?);
                hi = hi.max(*v.max_opt()?);
            }
            (lo.is_finite() && hi.is_finite()).then(|| (json!(lo), json!(hi)))
        }
        DataType::Date32 => {
            let (mut lo, mut hi) = (i32::MAX, i32::MIN);
            for s in stats {
                let Statistics::Int32(v) = s else { return None };
                lo = lo.min(*v.min_opt()?);
                hi = hi.max(*v.max_opt()?);
            }
            let day = |d: i32| {
                chrono::NaiveDate::from_ymd_opt(1970, 1, 1)?.checked_add_signed(chrono::Duration::days(d as i64))
            };
            Some((json!(day(lo)?.to_string()), json!(day(hi)?.to_string())))
        }
        _ => None,
    }
}

/// Microseconds since 1970-01-01 as Delta writes a timestamp statistic:
/// truncated to milliseconds, three fractional digits, `Z` for an instant
/// (`timestamp`), none for a wall-clock time (`timestamp_ntz`). Readers
/// widen a maximum by up to a millisecond for the truncation.
fn timestamp(micros: i64, utc: bool) -> Option<String> {
    let t = chrono::DateTime::from_timestamp_millis(micros.div_euclid(1000))?.naive_utc();
    let text = t.format("%Y-%m-%dT%H:%M:%S%.3f").to_string();
    Some(if utc { text + "Z" } else { text })
}
