//! A small, fast date/time parser for the formats catalogs use
//! (`%Y-%m-%d %H:%M:%S`, `%m/%d/%Y`, ...): compiled once per dataset, then
//! applied to raw CSV bytes without allocating.

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
        days_from_civil(v[0] as i64, v[1], v[2]).map(|d| d as i32)
    }

    /// Milliseconds since 1970-01-01T00:00:00 (no time zone): Parquet
    /// TIMESTAMP(MILLIS), read by Spark, DuckDB and BigQuery alike.
    pub fn parse_millis(&self, s: &[u8]) -> Option<i64> {
        let v = self.fields(s)?;
        if v[3] > 23 || v[4] > 59 || v[5] > 60 {
            return None;
        }
        let days = days_from_civil(v[0] as i64, v[1], v[2])?;
        Some((days * 86_400 + v[3] as i64 * 3600 + v[4] as i64 * 60 + v[5] as i64) * 1_000)
    }
}

/// Formats milliseconds since the epoch, for messages and tests.
pub fn millis_to_string(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map(|d| d.naive_utc().to_string()).unwrap_or_else(|| ms.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_match_chrono_for_every_day_of_four_centuries() {
        let epoch = chrono::NaiveDate::from_ymd_opt(1970, 1, 1).unwrap();
        let mut d = chrono::NaiveDate::from_ymd_opt(1800, 1, 1).unwrap();
        while d < chrono::NaiveDate::from_ymd_opt(2200, 1, 1).unwrap() {
            use chrono::Datelike;
            assert_eq!(days_from_civil(d.year() as i64, d.month(), d.day()), Some((d - epoch).num_days()), "{d}");
            d = d.succ_opt().unwrap();
        }
        assert_eq!(days_from_civil(2021, 2, 29), None);
        assert_eq!(days_from_civil(2000, 2, 29), Some(11016));
        assert_eq!(days_from_civil(1900, 2, 29), None);
        assert_eq!(days_from_civil(2022, 13, 1), None);
        assert_eq!(days_from_civil(2022, 4, 31), None);
    }

    #[test]
    fn parses_the_catalog_formats() {
        let f = DateTimeFormat::compile("%m/%d/%Y %H:%M:%S").unwrap();
        let us = f.parse_millis(b"01/08/2022 03:00:00").unwrap();
        assert_eq!(millis_to_string(us), "2022-01-08 03:00:00");
        assert_eq!(f.parse_millis(b"13/08/2022 03:00:00"), None);
        assert_eq!(f.parse_millis(b"01/08/2022 03:00"), None);
        let d = DateTimeFormat::compile("%m/%d/%Y").unwrap();
        assert_eq!(d.parse_days(b"01/01/1970"), Some(0));
        assert_eq!(d.parse_days(b"02/29/2020"), Some(18321));
        assert_eq!(d.parse_days(b"02/29/2021"), None);
        let t = DateTimeFormat::compile("%Y-%m-%d %H:%M:%S").unwrap();
        assert_eq!(t.parse_millis(b"2019-01-01 00:46:40"), Some(1_546_303_600_000));
        assert!(DateTimeFormat::compile("%Y-%b").is_err());
        assert!(DateTimeFormat::compile("%H:%M").is_err());
    }
}
