//! A small, fast date/time parser for the formats catalogs use
//! (`%Y-%m-%d %H:%M:%S`, `%m/%d/%Y`, Socrata's `%Y-%m-%dT%H:%M:%S%.f`,
//! spreadsheets' `%m/%d/%y %I:%M %p` and `%d-%b-%Y`, ...): compiled once per
//! dataset, then applied to raw bytes without allocating. Numbers may be
//! unpadded (`1/1/2019 0:46`), as chrono also accepts.

use crate::util::swar;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    Year,
    /// Two-digit year: 69-99 are 1969-1999, 00-68 are 2000-2068 (POSIX, chrono).
    Year2,
    Month,
    /// Month name, abbreviated (`Jan`) or full (`January`), any case.
    MonthName,
    Day,
    Hour,
    /// Hour on a 12-hour clock (1-12), with [`Tok::AmPm`].
    Hour12,
    AmPm,
    Minute,
    Second,
    /// `.` and 1-9 digits, or nothing; digits finer than a millisecond must be 0.
    Fraction,
    Lit(u8),
}

/// Directives a format may use, for messages.
pub const DIRECTIVES: &str = "%Y %y %m %b %B %d %H %I %p %M %S %.f %%";

const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

/// A compiled format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DateTimeFormat {
    toks: Vec<Tok>,
    text: String,
    /// For formats of zero-padded numbers and literals only (`%Y-%m-%d
    /// %H:%M:%S`, `%m/%d/%Y`): a value of the padded length is read at
    /// fixed positions; any other goes through the general parser.
    fixed: Option<Fixed>,
}

/// A padded layout, checked 8 bytes at a time: per word, which bytes must
/// be digits and which must be given literals; then each two-digit number
/// is read at its position.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Fixed {
    len: usize,
    /// (start, digit bytes, literal bytes, literal values); the words cover
    /// the value (the last one may overlap the one before).
    words: Vec<(usize, u64, u64, u64)>,
    /// (position, slot of `fields`' array, weight): a year is two pairs.
    pairs: Vec<(usize, usize, u32)>,
}

impl Fixed {
    /// `layout`: each token and its position; `len`: the padded length.
    fn new(len: usize, layout: &[(usize, Tok)]) -> Option<Fixed> {
        if len < 8 {
            return None;
        }
        let (mut digit, mut lit) = (vec![false; len], vec![None; len]);
        let mut pairs = Vec::new();
        for &(i, t) in layout {
            let (slot, width) = match t {
                Tok::Lit(c) => {
                    lit[i] = Some(c);
                    continue;
                }
                Tok::Year => (0, 4),
                Tok::Month => (1, 2),
                Tok::Day => (2, 2),
                Tok::Hour => (3, 2),
                Tok::Minute => (4, 2),
                Tok::Second => (5, 2),
                _ => return None,
            };
            digit[i..i + width].fill(true);
            match width {
                4 => pairs.extend([(i, slot, 100), (i + 2, slot, 1)]),
                _ => pairs.push((i, slot, 1)),
            }
        }
        let mut starts: Vec<usize> = (0..len / 8).map(|k| k * 8).collect();
        if !len.is_multiple_of(8) {
            starts.push(len - 8);
        }
        let words = starts
            .into_iter()
            .map(|at| {
                let (mut d, mut lm, mut lv) = (0u64, 0u64, 0u64);
                for k in 0..8 {
                    if digit[at + k] {
                        d |= 0xff << (8 * k);
                    }
                    if let Some(c) = lit[at + k] {
                        lm |= 0xff << (8 * k);
                        lv |= (c as u64) << (8 * k);
                    }
                }
                (at, d, lm, lv)
            })
            .collect();
        Some(Fixed { len, words, pairs })
    }

    /// The numbers of a padded value, or `None` (then the general parser decides).
    #[inline]
    fn fields(&self, s: &[u8]) -> Option<[u32; 7]> {
        if s.len() != self.len {
            return None;
        }
        for &(at, d, lm, lv) in &self.words {
            let w = swar::word_at(s, at)?;
            if w & lm != lv || !swar::digits(w, d) {
                return None;
            }
        }
        let mut v = [0u32; 7];
        for &(i, slot, weight) in &self.pairs {
            v[slot] += ((s[i] - b'0') as u32 * 10 + (s[i + 1] - b'0') as u32) * weight;
        }
        Some(v)
    }
}

/// The day of the last date or timestamp a column parsed.
#[derive(Debug)]
pub struct LastDay {
    /// Year, month, day; no value parses to `u32::MAX`, so a fresh one
    /// matches nothing (not even `0000-00-00`, which must be refused).
    ymd: [u32; 3],
    days: i64,
}

impl Default for LastDay {
    fn default() -> Self {
        LastDay { ymd: [u32::MAX; 3], days: 0 }
    }
}

impl LastDay {
    /// Days since 1970-01-01 of the date in `v` (`fields`' numbers): the
    /// remembered one when it is the same day, else computed and remembered.
    fn days(&mut self, v: [u32; 7]) -> Option<i64> {
        let ymd = [v[0], v[1], v[2]];
        if ymd != self.ymd {
            let days = days_from_civil(v[0] as i64, v[1], v[2]).filter(|d| READABLE_DAYS.contains(d))?;
            *self = LastDay { ymd, days };
        }
        Some(self.days)
    }
}

/// The days (since 1970-01-01) that every common reader represents as a
/// timestamp: nanoseconds since the epoch in an i64 (pandas, pyarrow's
/// `to_pandas`, Spark's older paths) reach from 1677-09-21T00:12:43 to 2262-04-11T23:47:16. A
/// date or timestamp outside fails its row, naming the value: the lake never
/// holds a year 9999 that makes a reader raise.
pub const READABLE_DAYS: std::ops::RangeInclusive<i64> = -106_751..=106_751;
/// The first and last readable days, for messages.
pub const READABLE_RANGE: &str = "1677-09-22 to 2262-04-11";
/// [`READABLE_DAYS`] in milliseconds: the nanosecond i64's own limits.
pub const READABLE_MILLIS: std::ops::RangeInclusive<i64> = -9_223_372_036_854..=9_223_372_036_854;

/// Days since 1970-01-01 of a valid proleptic Gregorian date (H. Hinnant's
/// `days_from_civil`), or `None` for a day that does not exist.
fn days_from_civil(y: i64, m: u32, d: u32) -> Option<i64> {
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_len = match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if d == 0 || d > month_len {
        return None;
    }
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

impl DateTimeFormat {
    /// Accepts the [`DIRECTIVES`] and literal ASCII characters.
    pub fn compile(fmt: &str) -> Result<Self, String> {
        let mut toks = Vec::new();
        let mut it = fmt.bytes().peekable();
        while let Some(b) = it.next() {
            if b == b'%' {
                let t = match it.next() {
                    Some(b'Y') => Tok::Year,
                    Some(b'y') => Tok::Year2,
                    Some(b'm') => Tok::Month,
                    Some(b'b' | b'h' | b'B') => Tok::MonthName,
                    Some(b'd' | b'e') => Tok::Day,
                    Some(b'H') => Tok::Hour,
                    Some(b'I') => Tok::Hour12,
                    Some(b'p' | b'P') => Tok::AmPm,
                    Some(b'M') => Tok::Minute,
                    Some(b'S') => Tok::Second,
                    Some(b'.') if it.next_if_eq(&b'f').is_some() => Tok::Fraction,
                    Some(b'%') => Tok::Lit(b'%'),
                    other => {
                        return Err(format!(
                            "format {fmt:?}: unsupported directive %{} (use {DIRECTIVES})",
                            other.map(|c| c as char).unwrap_or(' ')
                        ));
                    }
                };
                toks.push(t);
            } else if b.is_ascii() {
                toks.push(Tok::Lit(b));
            } else {
                return Err(format!("format {fmt:?}: only ASCII literals are supported"));
            }
        }
        let has = |t: Tok| toks.contains(&t);
        if !(has(Tok::Year) || has(Tok::Year2)) || !(has(Tok::Month) || has(Tok::MonthName)) || !has(Tok::Day) {
            return Err(format!("format {fmt:?}: needs a year (%Y or %y), a month (%m or %b) and a day (%d)"));
        }
        if has(Tok::Hour12) != has(Tok::AmPm) {
            return Err(format!("format {fmt:?}: %I (12-hour clock) and %p (AM/PM) go together"));
        }
        if has(Tok::Hour) && has(Tok::Hour12) {
            return Err(format!("format {fmt:?}: use %H or %I, not both"));
        }
        let mut at = 0;
        let fixed = toks
            .iter()
            .map(|&t| {
                let width = match t {
                    Tok::Lit(_) => 1,
                    Tok::Year => 4,
                    Tok::Month | Tok::Day | Tok::Hour | Tok::Minute | Tok::Second => 2,
                    _ => return None,
                };
                at += width;
                Some((at - width, t))
            })
            .collect::<Option<Vec<_>>>()
            .and_then(|layout| Fixed::new(at, &layout));
        Ok(DateTimeFormat { toks, text: fmt.to_string(), fixed })
    }

    fn fields(&self, s: &[u8]) -> Option<[u32; 7]> {
        if let Some(v) = self.fixed.as_ref().and_then(|f| f.fields(s)) {
            return Some(v);
        }
        // year, month, day, hour, minute, second, millisecond
        let mut v = [0u32; 7];
        let mut pm: Option<bool> = None;
        let mut i = 0;
        for t in &self.toks {
            let (slot, max_digits) = match t {
                Tok::Lit(c) => {
                    if s.get(i) != Some(c) {
                        return None;
                    }
                    i += 1;
                    continue;
                }
                Tok::MonthName => {
                    let rest = &s[i..];
                    let (m, len) = MONTHS.iter().enumerate().find_map(|(k, name)| {
                        let name = name.as_bytes();
                        let full = rest.len() >= name.len() && rest[..name.len()].eq_ignore_ascii_case(name);
                        let abbr = rest.len() >= 3 && rest[..3].eq_ignore_ascii_case(&name[..3]);
                        if full {
                            Some((k, name.len()))
                        } else if abbr {
                            Some((k, 3))
                        } else {
                            None
                        }
                    })?;
                    v[1] = m as u32 + 1;
                    i += len;
                    continue;
                }
                Tok::AmPm => {
                    let rest = s.get(i..i + 2)?;
                    pm = Some(if rest.eq_ignore_ascii_case(b"PM") {
                        true
                    } else if rest.eq_ignore_ascii_case(b"AM") {
                        false
                    } else {
                        return None;
                    });
                    i += 2;
                    continue;
                }
                Tok::Fraction => {
                    if s.get(i) != Some(&b'.') {
                        continue; // no fraction: .000
                    }
                    i += 1;
                    let start = i;
                    let mut ms = 0u32;
                    while i < s.len() && s[i].is_ascii_digit() && i - start < 9 {
                        let d = (s[i] - b'0') as u32;
                        match i - start {
                            0..=2 => ms = ms * 10 + d,
                            _ if d != 0 => return None, // finer than a millisecond
                            _ => {}
                        }
                        i += 1;
                    }
                    if i == start {
                        return None;
                    }
                    for _ in (i - start)..3 {
                        ms *= 10;
                    }
                    v[6] = ms;
                    continue;
                }
                Tok::Year => (0, 4),
                Tok::Year2 => (0, 2),
                Tok::Month => (1, 2),
                Tok::Day => (2, 2),
                Tok::Hour | Tok::Hour12 => (3, 2),
                Tok::Minute => (4, 2),
                Tok::Second => (5, 2),
            };
            let start = i;
            let mut n = 0u32;
            while i < s.len() && i - start < max_digits && s[i].is_ascii_digit() {
                n = n * 10 + (s[i] - b'0') as u32;
                i += 1;
            }
            if i == start || (matches!(t, Tok::Year | Tok::Year2) && i - start != max_digits) {
                return None;
            }
            v[slot] = match t {
                Tok::Year2 if n >= 69 => 1900 + n,
                Tok::Year2 => 2000 + n,
                _ => n,
            };
            if *t == Tok::Hour12 && !(1..=12).contains(&n) {
                return None;
            }
        }
        if let Some(pm) = pm {
            v[3] = v[3] % 12 + if pm { 12 } else { 0 };
        }
        (i == s.len()).then_some(v)
    }

    /// The format as the catalog wrote it, for messages.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Days since 1970-01-01.
    pub fn parse_days(&self, s: &[u8]) -> Option<i32> {
        self.parse_days_with(s, &mut LastDay::default())
    }

    /// [`parse_days`](Self::parse_days) for a column: the last day is
    /// remembered (a file holds runs of the same day).
    pub fn parse_days_with(&self, s: &[u8], last: &mut LastDay) -> Option<i32> {
        let v = self.fields(s)?;
        last.days(v).map(|d| d as i32)
    }

    /// Milliseconds since 1970-01-01T00:00:00 (no time zone): Parquet
    /// TIMESTAMP(MILLIS), read by Spark, DuckDB and BigQuery alike.
    pub fn parse_millis(&self, s: &[u8]) -> Option<i64> {
        self.parse_millis_with(s, &mut LastDay::default())
    }

    /// [`parse_millis`](Self::parse_millis) for a column: the last day is
    /// remembered (a file holds runs of the same day).
    pub fn parse_millis_with(&self, s: &[u8], last: &mut LastDay) -> Option<i64> {
        let v = self.fields(s)?;
        if v[3] > 23 || v[4] > 59 || v[5] > 60 {
            return None;
        }
        let days = last.days(v)?;
        let ms = (days * 86_400 + v[3] as i64 * 3600 + v[4] as i64 * 60 + v[5] as i64) * 1_000 + v[6] as i64;
        READABLE_MILLIS.contains(&ms).then_some(ms)
    }
}

/// Formats milliseconds since the epoch, for messages and tests.
pub fn millis_to_string(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map(|d| d.naive_utc().to_string()).unwrap_or_else(|| ms.to_string())
}

#[cfg(test)]
mod tests;
