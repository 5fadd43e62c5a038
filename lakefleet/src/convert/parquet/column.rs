//! One source column converted to its output type, value by value where
//! it must be (text parsed, fractions and ranges refused with the row named).

use super::*;

/// The source's validity, checked against the column's nullability.
pub(super) fn nulls_of(a: &dyn Array, t: &Target) -> Result<Option<NullBuffer>, Bad> {
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
pub(super) fn as_i64(a: &dyn Array) -> Option<Vec<i64>> {
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
pub(super) fn as_millis(a: &dyn Array) -> Option<(Vec<i64>, i64)> {
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
pub(super) enum Strs<'a> {
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
pub(super) fn each<T: arrow_array::ArrowPrimitiveType>(
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
pub(super) fn parse_text<T: arrow_array::ArrowPrimitiveType>(
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
pub(super) fn convert_column(a: &ArrayRef, t: &Target) -> Result<ArrayRef, Bad> {
    let k = kind(a.data_type()).expect("checked when mapping");
    if k == Kind::Null {
        if !t.nullable && !a.is_empty() {
            return Err((0, "null in a column that is not nullable".into()));
        }
        return Ok(new_null_array(&super::super::data_type(t.ty), a.len()));
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
            // Instants (a zone-aware source) stay marked as such: the encoder
            // stores them as they are, or reads them in the dataset's zone.
            let instants = matches!(a.data_type(), DataType::Timestamp(_, Some(_)));
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
            match instants {
                true => Arc::new(out.with_timezone(crate::convert::instants::UTC)),
                false => Arc::new(out),
            }
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
pub(super) fn readable_millis(ms: i64, date: bool) -> Result<i64, String> {
    if crate::util::timefmt::READABLE_MILLIS.contains(&ms) {
        return Ok(ms);
    }
    let shown = chrono::DateTime::from_timestamp_millis(ms)
        .map(|d| if date { d.date_naive().to_string() } else { d.naive_utc().to_string() })
        .unwrap_or_else(|| format!("{ms} ms from 1970-01-01"));
    Err(format!(
        "{shown} is outside {} (what readers represent as nanoseconds); a wrong value in the source?",
        crate::util::timefmt::READABLE_RANGE
    ))
}

/// Float32 or Float64 values as f64.
pub(super) fn floats(a: &dyn Array) -> Vec<f64> {
    match a.data_type() {
        DataType::Float32 => a.as_primitive::<Float32Type>().values().iter().map(|&v| v as f64).collect(),
        _ => a.as_primitive::<Float64Type>().values().to_vec(),
    }
}
