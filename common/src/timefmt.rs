//! A small, fast date/time parser for the formats catalogs use
//! (`%Y-%m-%d %H:%M:%S`, `%m/%d/%Y`, ...): compiled once per dataset, then
//! applied to raw CSV bytes without allocating.

use chrono::{NaiveDate, NaiveDateTime};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    Year,
    Month,
    Day,
    Hour,
    Minute,
    Second,
    Lit(u8),
}

/// A compiled format.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DateTimeFormat {
    toks: Vec<Tok>,
}

/// Days from 0001-01-01 (CE) to 1970-01-01.
const UNIX_EPOCH_DAYS_CE: i32 = 719_163;

impl DateTimeFormat {
    /// Accepts `%Y %m %d %H %M %S` and literal ASCII characters.
    pub fn compile(fmt: &str) -> Result<Self, String> {
        let mut toks = Vec::new();
        let mut it = fmt.bytes();
        while let Some(b) = it.next() {
            if b == b'%' {
                let t = match it.next() {
                    Some(b'Y') => Tok::Year,
                    Some(b'm') => Tok::Month,
                    Some(b'd') => Tok::Day,
                    Some(b'H') => Tok::Hour,
                    Some(b'M') => Tok::Minute,
                    Some(b'S') => Tok::Second,
                    Some(b'%') => Tok::Lit(b'%'),
                    other => {
                        return Err(format!(
                            "format {fmt:?}: unsupported directive %{} (use %Y %m %d %H %M %S)",
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
        if !toks.contains(&Tok::Year) || !toks.contains(&Tok::Month) || !toks.contains(&Tok::Day) {
            return Err(format!("format {fmt:?}: needs %Y, %m and %d"));
        }
        Ok(DateTimeFormat { toks })
    }

    fn fields(&self, s: &[u8]) -> Option<[u32; 6]> {
        // year, month, day, hour, minute, second
        let mut v = [0u32; 6];
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
                Tok::Year => (0, 4),
                Tok::Month => (1, 2),
                Tok::Day => (2, 2),
                Tok::Hour => (3, 2),
                Tok::Minute => (4, 2),
                Tok::Second => (5, 2),
            };
            let start = i;
            let mut n = 0u32;
            while i < s.len() && i - start < max_digits && s[i].is_ascii_digit() {
                n = n * 10 + (s[i] - b'0') as u32;
                i += 1;
            }
            if i == start || (*t == Tok::Year && i - start != 4) {
                return None;
            }
            v[slot] = n;
        }
        (i == s.len()).then_some(v)
    }

    /// Days since 1970-01-01.
    pub fn parse_days(&self, s: &[u8]) -> Option<i32> {
        let v = self.fields(s)?;
        let d = NaiveDate::from_ymd_opt(v[0] as i32, v[1], v[2])?;
        Some(chrono::Datelike::num_days_from_ce(&d) - UNIX_EPOCH_DAYS_CE)
    }

    /// Microseconds since 1970-01-01T00:00:00 (no time zone).
    pub fn parse_micros(&self, s: &[u8]) -> Option<i64> {
        let v = self.fields(s)?;
        if v[3] > 23 || v[4] > 59 || v[5] > 60 {
            return None;
        }
        let d = NaiveDate::from_ymd_opt(v[0] as i32, v[1], v[2])?;
        let days = (chrono::Datelike::num_days_from_ce(&d) - UNIX_EPOCH_DAYS_CE) as i64;
        Some((days * 86_400 + v[3] as i64 * 3600 + v[4] as i64 * 60 + v[5] as i64) * 1_000_000)
    }
}

/// Formats microseconds since the epoch, for messages and tests.
pub fn micros_to_string(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us).map(|d| d.naive_utc().to_string()).unwrap_or_else(|| us.to_string())
}

/// The naive datetime of microseconds since the epoch.
pub fn micros_to_naive(us: i64) -> Option<NaiveDateTime> {
    chrono::DateTime::from_timestamp_micros(us).map(|d| d.naive_utc())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_catalog_formats() {
        let f = DateTimeFormat::compile("%m/%d/%Y %H:%M:%S").unwrap();
        let us = f.parse_micros(b"01/08/2022 03:00:00").unwrap();
        assert_eq!(micros_to_string(us), "2022-01-08 03:00:00");
        assert_eq!(f.parse_micros(b"13/08/2022 03:00:00"), None);
        assert_eq!(f.parse_micros(b"01/08/2022 03:00"), None);
        let d = DateTimeFormat::compile("%m/%d/%Y").unwrap();
        assert_eq!(d.parse_days(b"01/01/1970"), Some(0));
        assert_eq!(d.parse_days(b"02/29/2020"), Some(18321));
        assert_eq!(d.parse_days(b"02/29/2021"), None);
        let t = DateTimeFormat::compile("%Y-%m-%d %H:%M:%S").unwrap();
        assert_eq!(t.parse_micros(b"2019-01-01 00:46:40"), Some(1_546_303_600_000_000));
        assert!(DateTimeFormat::compile("%Y-%b").is_err());
        assert!(DateTimeFormat::compile("%H:%M").is_err());
    }
}
