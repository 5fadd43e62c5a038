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

/// The Adds' statistics (each the JSON [`of_file`] makes) as
/// the arrow struct of the table's stats schema (`fields`, its arrow form),
/// built without a JSON decoder: the kernel's parser builds one for the
/// whole stats schema per call, a tenth to a sixth of a commit's CPU.
/// `None` when a value is not one this builds exactly as the parser would
/// (a type or a form it does not know): then the caller parses them.
pub(crate) fn to_arrow(stats: &[String], fields: &arrow_schema::Fields) -> Option<arrow_array::StructArray> {
    let parsed: Vec<Value> = stats.iter().map(|s| serde_json::from_str(s)).collect::<Result<_, _>>().ok()?;
    let rows: Vec<Option<&Map<String, Value>>> =
        parsed.iter().map(|v| v.as_object().map(Some)).collect::<Option<_>>()?;
    struct_of(fields, &rows)
}

/// The arrow fields of the kernel's stats schema `schema` (converting it
/// costs a commit more than building the statistics does: the last few are
/// kept, one per table a process commits to).
pub(crate) fn arrow_fields(
    schema: &delta_kernel::schema::SchemaRef,
) -> Result<arrow_schema::Fields, delta_kernel::KernelError> {
    use delta_kernel::engine::arrow_conversion::TryFromKernel;
    type Known = Vec<(delta_kernel::schema::SchemaRef, arrow_schema::Fields)>;
    static KNOWN: std::sync::Mutex<Known> = std::sync::Mutex::new(Vec::new());
    let mut known = KNOWN.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, fields)) = known.iter().find(|(k, _)| **k == **schema) {
        return Ok(fields.clone());
    }
    let fields = arrow_schema::Schema::try_from_kernel(schema.as_ref())?.fields().clone();
    if known.len() >= 16 {
        known.remove(0);
    }
    known.push((schema.clone(), fields.clone()));
    Ok(fields)
}

fn struct_of<'v>(
    fields: &arrow_schema::Fields,
    rows: &[Option<&'v Map<String, Value>>],
) -> Option<arrow_array::StructArray> {
    let mut columns = Vec::with_capacity(fields.len());
    for field in fields.iter() {
        let values: Vec<Option<&'v Value>> =
            rows.iter().map(|r| r.and_then(|m| m.get(field.name())).filter(|v| !v.is_null())).collect();
        if !field.is_nullable() && values.iter().any(Option::is_none) {
            return None;
        }
        columns.push(column_of(field.data_type(), &values)?);
    }
    let nulls = rows.iter().any(Option::is_none).then(|| rows.iter().map(Option::is_some).collect());
    arrow_array::StructArray::try_new(fields.clone(), columns, nulls).ok()
}

fn column_of<'v>(ty: &DataType, values: &[Option<&'v Value>]) -> Option<arrow_array::ArrayRef> {
    use arrow_array::*;
    use std::sync::Arc;
    // Each value converted, or `None` from the whole column when one does not convert.
    fn each<'v, T>(values: &[Option<&'v Value>], f: impl Fn(&'v Value) -> Option<T>) -> Option<Vec<Option<T>>> {
        values.iter().map(|v| v.map(&f).map_or(Some(None), |x| x.map(Some))).collect()
    }
    let utc = |tz: &Option<std::sync::Arc<str>>| tz.as_deref().is_none_or(|z| z == "UTC" || z == "+00:00");
    Some(match ty {
        DataType::Struct(fields) => {
            let rows: Vec<Option<&'v Map<String, Value>>> = each(values, Value::as_object)?;
            Arc::new(struct_of(fields, &rows)?)
        }
        DataType::Int64 => Arc::new(Int64Array::from(each(values, Value::as_i64)?)),
        DataType::Int32 => Arc::new(Int32Array::from(each(values, |v| v.as_i64()?.try_into().ok())?)),
        DataType::Int16 => Arc::new(Int16Array::from(each(values, |v| v.as_i64()?.try_into().ok())?)),
        DataType::Int8 => Arc::new(Int8Array::from(each(values, |v| v.as_i64()?.try_into().ok())?)),
        DataType::Float64 => Arc::new(Float64Array::from(each(values, Value::as_f64)?)),
        DataType::Boolean => Arc::new(BooleanArray::from(each(values, Value::as_bool)?)),
        DataType::Utf8 => Arc::new(StringArray::from(each(values, Value::as_str)?)),
        DataType::Date32 => Arc::new(Date32Array::from(each(values, |v| {
            let d = chrono::NaiveDate::parse_from_str(v.as_str()?, "%Y-%m-%d").ok()?;
            i32::try_from((d - chrono::NaiveDate::from_ymd_opt(1970, 1, 1)?).num_days()).ok()
        })?)),
        DataType::Timestamp(TimeUnit::Microsecond, tz) if utc(tz) => {
            // `2022-01-08T04:00:00.000Z` (an instant) or without the `Z` (a
            // wall-clock time, or an instant in UTC): microseconds since 1970
            // in UTC, as the parser's cast from text gives.
            let micros = each(values, |v| {
                let text = v.as_str()?;
                let naive = text.strip_suffix('Z').unwrap_or(text);
                let t = chrono::NaiveDateTime::parse_from_str(naive, "%Y-%m-%dT%H:%M:%S%.f").ok()?;
                Some(t.and_utc().timestamp_micros())
            })?;
            Arc::new(TimestampMicrosecondArray::from(micros).with_timezone_opt(tz.clone()))
        }
        _ => return None,
    })
}
