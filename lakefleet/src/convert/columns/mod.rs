//! Arrow column builders fed with raw CSV fields, and the fast number parsers.

use std::sync::Arc;

use arrow_array::ArrowPrimitiveType;
use arrow_array::builder::{
    Date32Builder, Float64Builder, Int64Builder, PrimitiveBuilder, TimestampMillisecondBuilder,
};
use arrow_array::{ArrayRef, StringArray};
use arrow_buffer::{Buffer, NullBufferBuilder, OffsetBuffer, ScalarBuffer};

use super::split::Chunk;
use crate::catalog::ColumnType;
use crate::util::swar;
use crate::util::text::quote;
use crate::util::timefmt::{DateTimeFormat, LastDay};

mod numbers;
use numbers::*;
pub(super) use numbers::{parse_f64, parse_i64};

/// Bytes all builders of a batch reserve up front together; builders grow
/// with the rows actually read, so a 10,000-column schema reserves a few rows
/// per column, not a full batch.
const INITIAL_BYTES: usize = 256 * 1024;

/// Rows each of `ncols` builders reserves up front.
pub(super) fn initial_rows(ncols: usize) -> usize {
    (INITIAL_BYTES / 16 / ncols.max(1)).clamp(8, 1024)
}

/// A column being built. Text is collected as bytes and checked for UTF-8
/// a chunk at a time (all-ASCII chunks need no more); dates and timestamps
/// remember the last day they parsed (a file holds runs of the same day).
pub(super) enum Col {
    Str(Text),
    I64(Int64Builder),
    F64(Float64Builder),
    /// Numbers written with a thousands separator (`"2,122"`): the column's
    /// declared `thousands`.
    I64Grouped(Int64Builder, u8),
    F64Grouped(Float64Builder, u8),
    Date(Date32Builder, DateTimeFormat, LastDay),
    Ts(TimestampMillisecondBuilder, DateTimeFormat, LastDay),
}

/// A text column: the bytes of its values end to end, their offsets and
/// nulls (an Arrow `StringArray` once finished).
pub(super) struct Text {
    values: Vec<u8>,
    offsets: Vec<i32>,
    nulls: NullBufferBuilder,
}

impl Text {
    fn with_capacity(rows: usize, bytes: usize) -> Text {
        let mut offsets = Vec::with_capacity(rows + 1);
        offsets.push(0);
        Text { values: Vec::with_capacity(bytes), offsets, nulls: NullBufferBuilder::new(rows) }
    }

    #[inline]
    fn push(&mut self, v: &[u8]) {
        self.values.extend_from_slice(v);
        self.end_value();
    }

    /// Appends `text[s..e]`. A short value is copied as one 16-byte word when
    /// the text has 16 bytes from `s` (then cut back): no `memcpy` call.
    #[inline]
    fn push_range(&mut self, text: &[u8], s: usize, e: usize) {
        match text.get(s..s + 16) {
            Some(word) if e - s <= 16 => {
                let old = self.values.len();
                let word: &[u8; 16] = word.try_into().expect("16 bytes");
                self.values.extend_from_slice(word);
                self.values.truncate(old + (e - s));
            }
            _ => self.values.extend_from_slice(&text[s..e]),
        }
        self.end_value();
    }

    #[inline]
    fn end_value(&mut self) {
        self.offsets.push(self.values.len() as i32);
        self.nulls.append_non_null();
    }

    fn push_null(&mut self) {
        self.offsets.push(self.values.len() as i32);
        self.nulls.append_null();
    }

    /// Value `i` counted from the end (`0` is the last one).
    fn nth_last(&self, i: usize) -> &[u8] {
        let k = self.offsets.len() - 2 - i;
        &self.values[self.offsets[k] as usize..self.offsets[k + 1] as usize]
    }

    fn finish(&mut self) -> StringArray {
        let rows = self.offsets.len() - 1;
        let taken = std::mem::replace(self, Text::with_capacity(rows, self.values.len()));
        let Text { values, offsets, mut nulls } = taken;
        let offsets = OffsetBuffer::new(ScalarBuffer::from(offsets));
        // SAFETY: every value was checked for UTF-8 as it was appended (`push_chunk`
        // a chunk at a time, `Col::push` each value; a chunk with a bad value
        // ends the conversion before any `finish`), and the offsets only grow.
        // Checking again here cost 1.6% of an MTA conversion (`perf`).
        unsafe { StringArray::new_unchecked(offsets, Buffer::from_vec(values), nulls.finish()) }
    }
}

const EMPTY: &str = "empty value in a column that is not nullable";

/// `date (format "%m/%d/%Y")`, for messages.
fn typed(kind: &str, f: &DateTimeFormat) -> String {
    format!("{kind} (format {:?}, from {})", f.as_str(), crate::util::timefmt::READABLE_RANGE)
}

fn bad(v: &[u8], what: &str) -> String {
    format!("cannot parse {} as {what}", quote(v))
}

impl Col {
    pub(super) fn new(t: ColumnType, format: Option<&str>, rows: usize) -> Col {
        let f = || DateTimeFormat::compile(format.unwrap_or("%Y-%m-%d")).expect("validated catalog");
        match t {
            ColumnType::String => Col::Str(Text::with_capacity(rows, rows * 8)),
            ColumnType::Int64 => Col::I64(Int64Builder::with_capacity(rows)),
            ColumnType::Float64 => Col::F64(Float64Builder::with_capacity(rows)),
            ColumnType::Date => Col::Date(Date32Builder::with_capacity(rows), f(), LastDay::default()),
            ColumnType::Timestamp => Col::Ts(TimestampMillisecondBuilder::with_capacity(rows), f(), LastDay::default()),
        }
    }

    /// The same column reading numbers grouped by `sep` (a catalog column's
    /// `thousands`); other types are unchanged.
    pub(super) fn grouped(self, sep: Option<char>) -> Col {
        match (self, sep) {
            (Col::I64(b), Some(s)) => Col::I64Grouped(b, s as u8),
            (Col::F64(b), Some(s)) => Col::F64Grouped(b, s as u8),
            (c, _) => c,
        }
    }

    pub(super) fn type_name(&self) -> &'static str {
        match self {
            Col::Str(_) => "string",
            Col::I64(_) | Col::I64Grouped(..) => "int64",
            Col::F64(_) | Col::F64Grouped(..) => "float64",
            Col::Date(..) => "date",
            Col::Ts(..) => "timestamp",
        }
    }

    /// Appends field `col` of every row of `chunk`; `Err` carries the first
    /// bad row of the chunk and the reason (the value quoted, bounded).
    pub(super) fn push_chunk(
        &mut self,
        chunk: &Chunk,
        text: &[u8],
        col: usize,
        nullable: bool,
    ) -> Result<(), (usize, String)> {
        let n = chunk.rows();
        let field = |r: usize| chunk.field(text, r, col);
        let trimmed = |r: usize| field(r).trim_ascii();
        match self {
            Col::Str(b) => {
                let start = b.values.len();
                for r in 0..n {
                    match chunk.text_range(r, col) {
                        Some((s, e)) if s == e && nullable => b.push_null(),
                        Some((s, e)) => b.push_range(text, s, e),
                        None => match field(r) {
                            v if v.is_empty() && nullable => b.push_null(),
                            v => b.push(v),
                        },
                    }
                }
                if !b.values[start..].is_ascii() {
                    for r in 0..n {
                        let v = b.nth_last(n - 1 - r);
                        if std::str::from_utf8(v).is_err() {
                            return Err((r, format!("invalid UTF-8 in {}", quote(v))));
                        }
                    }
                }
            }
            // Short unquoted numbers are read as one word; the rest (and
            // anything the word readers refuse) by the byte parsers.
            Col::I64(b) => {
                let parse = |r| int_field(chunk, text, r, col).or_else(|| parse_i64(trimmed(r)));
                parsed(b, n, trimmed, nullable, parse, || "int64".into())?
            }
            Col::F64(b) => {
                let parse = |r| short(chunk, text, r, col).and_then(float_word).or_else(|| parse_f64(trimmed(r)));
                parsed(b, n, trimmed, nullable, parse, || "float64".into())?
            }
            Col::I64Grouped(b, sep) => {
                let sep = *sep;
                let parse = |r| ungroup(trimmed(r), sep).and_then(|d| parse_i64(&d));
                parsed(b, n, trimmed, nullable, parse, || grouped_name("int64", sep))?
            }
            Col::F64Grouped(b, sep) => {
                let sep = *sep;
                let parse = |r| ungroup(trimmed(r), sep).and_then(|d| parse_f64(&d));
                parsed(b, n, trimmed, nullable, parse, || grouped_name("float64", sep))?
            }
            Col::Date(b, f, last) => {
                let parse = |r| f.parse_days_with(trimmed(r), last);
                parsed(b, n, trimmed, nullable, parse, || typed("date", f))?
            }
            Col::Ts(b, f, last) => {
                let parse = |r| f.parse_millis_with(trimmed(r), last);
                parsed(b, n, trimmed, nullable, parse, || typed("timestamp", f))?
            }
        }
        Ok(())
    }

    /// Appends one field; `Err` carries the reason (the value quoted, bounded).
    pub(super) fn push(&mut self, raw: &[u8], nullable: bool) -> Result<(), String> {
        let v = raw.trim_ascii();
        let one = |_| v;
        match self {
            Col::Str(b) if raw.is_empty() && nullable => {
                b.push_null();
                Ok(())
            }
            Col::Str(b) => {
                std::str::from_utf8(raw).map_err(|_| format!("invalid UTF-8 in {}", quote(raw)))?;
                b.push(raw);
                Ok(())
            }
            Col::I64(b) => parsed(b, 1, one, nullable, |_| parse_i64(v), || "int64".into()).map_err(|(_, m)| m),
            Col::F64(b) => parsed(b, 1, one, nullable, |_| parse_f64(v), || "float64".into()).map_err(|(_, m)| m),
            Col::I64Grouped(b, sep) => {
                let (sep, parse) = (*sep, |_| ungroup(v, *sep).and_then(|d| parse_i64(&d)));
                parsed(b, 1, one, nullable, parse, || grouped_name("int64", sep)).map_err(|(_, m)| m)
            }
            Col::F64Grouped(b, sep) => {
                let (sep, parse) = (*sep, |_| ungroup(v, *sep).and_then(|d| parse_f64(&d)));
                parsed(b, 1, one, nullable, parse, || grouped_name("float64", sep)).map_err(|(_, m)| m)
            }
            Col::Date(b, f, last) => {
                let parse = |_| f.parse_days_with(v, last);
                parsed(b, 1, one, nullable, parse, || typed("date", f)).map_err(|(_, m)| m)
            }
            Col::Ts(b, f, last) => {
                let parse = |_| f.parse_millis_with(v, last);
                parsed(b, 1, one, nullable, parse, || typed("timestamp", f)).map_err(|(_, m)| m)
            }
        }
    }

    pub(super) fn finish(&mut self) -> ArrayRef {
        match self {
            Col::Str(b) => Arc::new(b.finish()),
            Col::I64(b) | Col::I64Grouped(b, _) => Arc::new(b.finish()),
            Col::F64(b) | Col::F64Grouped(b, _) => Arc::new(b.finish()),
            Col::Date(b, ..) => Arc::new(b.finish()),
            Col::Ts(b, ..) => Arc::new(b.finish()),
        }
    }
}

/// Appends the `n` values `parse(r)`; a value that does not parse is looked
/// at (`value(r)`): empty, it is a null (or an error when not `nullable`);
/// otherwise `what` names the type for the message.
fn parsed<'t, T: ArrowPrimitiveType>(
    b: &mut PrimitiveBuilder<T>,
    n: usize,
    value: impl Fn(usize) -> &'t [u8],
    nullable: bool,
    mut parse: impl FnMut(usize) -> Option<T::Native>,
    what: impl Fn() -> String,
) -> Result<(), (usize, String)> {
    for r in 0..n {
        match parse(r) {
            Some(x) => b.append_value(x),
            None => match value(r) {
                v if v.is_empty() && nullable => b.append_null(),
                [] => return Err((r, EMPTY.into())),
                v => return Err((r, bad(v, &what()))),
            },
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-column CSV (header `n`) of `values`, one per line, split into
    /// chunks and read into a column of type `ty` until the first error:
    /// (rows the splitter kept, that error, the values as bits: f64 bits or i64 as u64).
    fn read_column(ty: ColumnType, values: &[&str]) -> (usize, Option<(usize, String)>, Vec<Option<u64>>) {
        use super::super::split::Splitter;
        let text = format!("n\n{}\n", values.join("\n"));
        let mut split = Splitter::new(Box::new(text.as_bytes()), b',', 1 << 20);
        split.header().unwrap();
        let (mut chunk, mut ragged, mut col) = (Chunk::default(), None, Col::new(ty, None, 8));
        let (mut read, mut err) = (0, None);
        while err.is_none() && split.chunk(&mut chunk, 1, 1 << 20, &mut ragged).unwrap() {
            read += chunk.rows();
            err = col.push_chunk(&chunk, split.text(), 0, true).err();
        }
        let got = col.finish();
        let bits = match ty {
            ColumnType::Float64 => got
                .as_any()
                .downcast_ref::<arrow_array::Float64Array>()
                .unwrap()
                .iter()
                .map(|x| x.map(f64::to_bits))
                .collect(),
            _ => got
                .as_any()
                .downcast_ref::<arrow_array::Int64Array>()
                .unwrap()
                .iter()
                .map(|x| x.map(|x| x as u64))
                .collect(),
        };
        (read, err, bits)
    }

    #[test]
    fn integers_read_from_a_chunk_match_the_byte_parser() {
        let mut values: Vec<String> =
            ["0", "-7", "+12", "2.0", " 42", "\"99\"", "0007654321", "9999999999999999"].map(String::from).to_vec();
        for len in 1..=20 {
            values.push("1234567890123456789012"[..len].to_string());
            values.push(format!("-{}", &"98765432109876543210"[..len.min(19)]));
        }
        let (read, err, got) = read_column(ColumnType::Int64, &values.iter().map(String::as_str).collect::<Vec<_>>());
        assert_eq!(read, values.len());
        // The 20-digit values overflow: the first bad row is the first of them.
        let first_bad = values.iter().position(|v| parse_i64(v.trim().trim_matches('"').as_bytes()).is_none());
        match err {
            None => assert_eq!(first_bad, None),
            Some((row, m)) => assert_eq!((Some(row), m.contains("int64")), (first_bad, true), "{m}"),
        }
        for (v, g) in values.iter().zip(&got) {
            assert_eq!(*g, parse_i64(v.trim().trim_matches('"').as_bytes()).map(|x| x as u64), "{v:?}");
        }
        assert!(got.len() > 30, "{}", got.len());
    }

    /// Random short fields from the bytes numbers are made of (seeded):
    /// through a real chunk, every column reads exactly what the byte
    /// parsers read, and refuses what they refuse.
    #[test]
    fn random_fields_read_through_a_chunk_agree_with_the_byte_parsers() {
        const ALPHABET: &[u8] = b"0123456789012345678900000.-+ e";
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let fields: Vec<String> = (0..20_000)
            .map(|_| {
                let len = (next() % 19) as usize;
                (0..len).map(|_| ALPHABET[(next() % ALPHABET.len() as u64) as usize] as char).collect()
            })
            .collect();
        for ty in [ColumnType::Float64, ColumnType::Int64] {
            let expect = |v: &str| match ty {
                ColumnType::Float64 => parse_f64(v.trim().as_bytes()).map(f64::to_bits),
                _ => parse_i64(v.trim().as_bytes()).map(|x| x as u64),
            };
            // What the byte parsers accept (or is empty: a null) goes in one chunk.
            let good: Vec<&str> =
                fields.iter().map(String::as_str).filter(|v| v.trim().is_empty() || expect(v).is_some()).collect();
            let bad: Vec<&str> =
                fields.iter().map(String::as_str).filter(|v| !v.trim().is_empty() && expect(v).is_none()).collect();
            assert!(good.len() > 2_000 && bad.len() > 2_000, "{ty:?}: {} good, {} bad", good.len(), bad.len());
            let (read, err, got) = read_column(ty, &good);
            assert_eq!(err, None, "{ty:?}");
            // A line of spaces is a blank line in a one-column file: skipped.
            let kept: Vec<&&str> = good.iter().filter(|v| !v.trim().is_empty()).collect();
            assert_eq!(read, kept.len(), "{ty:?}");
            for (v, g) in kept.iter().zip(&got) {
                assert_eq!(*g, expect(v), "{ty:?} {v:?}");
            }
            for v in bad.iter().take(3_000) {
                let (read, err, _) = read_column(ty, &[v]);
                assert_eq!(read, 1, "{v:?}");
                assert!(err.is_some(), "{ty:?} {v:?} was accepted");
            }
        }
    }

    #[test]
    fn integers_accept_integral_floats_only() {
        assert_eq!(parse_i64(b"42"), Some(42));
        assert_eq!(parse_i64(b"-7"), Some(-7));
        assert_eq!(parse_i64(b"2.0"), Some(2));
        assert_eq!(parse_i64(b"2.5"), None);
        assert_eq!(parse_i64(b"1e3"), None);
        assert_eq!(parse_i64(b"9999999999"), Some(9_999_999_999));
        assert_eq!(parse_i64(b"99999999999999999999"), None);
    }

    #[test]
    fn a_huge_bad_value_is_quoted_short() {
        let mut c = Col::new(ColumnType::Int64, None, 8);
        let e = c.push(&vec![b'9'; 20 << 20], true).unwrap_err();
        assert!(e.len() < 200 && e.contains("(20971520 bytes)"), "{e}");
    }
}
