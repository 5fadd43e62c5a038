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
fn years_that_readers_cannot_represent_are_refused() {
    let f = DateTimeFormat::compile("%Y-%m-%d %H:%M:%S").unwrap();
    let d = DateTimeFormat::compile("%Y-%m-%d").unwrap();
    for v in ["9999-12-31 23:59:59", "0001-01-01 00:00:00", "2262-04-11 23:47:17", "1677-09-21 00:12:43"] {
        assert_eq!(f.parse_millis(v.as_bytes()), None, "{v}");
    }
    for v in ["2262-04-11 23:47:16", "1677-09-22 00:00:00", "1970-01-01 00:00:00"] {
        let ms = f.parse_millis(v.as_bytes()).unwrap_or_else(|| panic!("{v}"));
        assert_eq!(millis_to_string(ms), v);
    }
    assert_eq!(d.parse_days(b"9999-01-01"), None);
    assert_eq!(d.parse_days(b"0001-01-01"), None);
    assert_eq!(d.parse_days(b"2262-04-11"), Some(106_751));
    assert_eq!(d.parse_days(b"1677-09-22"), Some(-106_751));
}

#[test]
fn a_remembered_day_never_stands_for_an_impossible_date() {
    let f = DateTimeFormat::compile("%Y-%m-%d %H:%M:%S").unwrap();
    let mut last = LastDay::default();
    assert_eq!(f.parse_millis_with(b"0000-00-00 00:00:00", &mut last), None);
    let a = f.parse_millis_with(b"2019-01-31 23:59:59", &mut last).unwrap();
    assert_eq!(millis_to_string(a), "2019-01-31 23:59:59");
    // The same day again comes from the memo; another day is computed.
    assert_eq!(f.parse_millis_with(b"2019-01-31 00:00:01", &mut last), Some(a - 86_398_000));
    let b = f.parse_millis_with(b"2019-02-01 00:00:00", &mut last).unwrap();
    assert_eq!(millis_to_string(b), "2019-02-01 00:00:00");
    assert_eq!(f.parse_millis_with(b"2019-02-30 00:00:00", &mut last), None);
    // Dates share the memo.
    let d = DateTimeFormat::compile("%m/%d/%Y").unwrap();
    let mut last = LastDay::default();
    assert_eq!(d.parse_days_with(b"00/00/0000", &mut last), None);
    assert_eq!(d.parse_days_with(b"01/08/2022", &mut last), Some(19_000));
    assert_eq!(d.parse_days_with(b"01/08/2022", &mut last), Some(19_000));
    assert_eq!(d.parse_days_with(b"02/29/2022", &mut last), None);
    assert_eq!(d.parse_days_with(b"01/09/2022", &mut last), Some(19_001));
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
    assert!(DateTimeFormat::compile("%Y-%j").unwrap_err().contains("unsupported directive %j"));
    assert!(DateTimeFormat::compile("%H:%M").unwrap_err().contains("needs a year"));
    assert!(DateTimeFormat::compile("%m/%d/%Y %I:%M").unwrap_err().contains("%I (12-hour clock) and %p"));
}

/// Every instant of `(from, step, count)` formatted by chrono with
/// `chrono_fmt` and parsed by both: ours must give chrono's value.
fn against_chrono(ours: &str, chrono_fmt: &str, step_s: i64, count: i64) {
    let f = DateTimeFormat::compile(ours).unwrap();
    let base = chrono::NaiveDate::from_ymd_opt(1995, 1, 1).unwrap().and_hms_opt(0, 0, 0).unwrap();
    for k in 0..count {
        let t = base + chrono::Duration::seconds(k * step_s) + chrono::Duration::milliseconds((k * 7) % 1000);
        let text = t.format(chrono_fmt).to_string();
        let theirs = chrono::NaiveDateTime::parse_from_str(&text, chrono_fmt)
            .map(|c| c.and_utc().timestamp_millis())
            .or_else(|_| {
                chrono::NaiveDate::parse_from_str(&text, chrono_fmt)
                    .map(|d| d.and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp_millis())
            })
            .unwrap_or_else(|e| panic!("chrono cannot read back {text:?} ({chrono_fmt}): {e}"));
        assert_eq!(f.parse_millis(text.as_bytes()), Some(theirs), "{text:?} with {ours}");
    }
}

#[test]
fn new_directives_agree_with_chrono() {
    // Roughly 37 years in steps that visit every hour, minute and month.
    let (step, n) = (86_400 * 3 + 3_671, 4_000);
    against_chrono("%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.3f", step, n); // Socrata
    against_chrono("%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y %I:%M:%S %p", step, n); // 12-hour clock
    against_chrono("%d-%b-%Y %H:%M", "%d-%b-%Y %H:%M", step, n); // month names
    against_chrono("%B %d, %Y", "%B %d, %Y", step, n);
    against_chrono("%m/%d/%y %H:%M", "%m/%d/%y %H:%M", step, n); // two-digit years
    against_chrono("%m/%d/%Y %H:%M", "%-m/%-d/%Y %-H:%M", step, n); // unpadded, as spreadsheets write
    // Padded formats take the fixed-position path; the same instants unpadded take the general one.
    against_chrono("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M:%S", step, n);
    against_chrono("%m/%d/%Y %H:%M:%S", "%m/%d/%Y %H:%M:%S", step, n);
    against_chrono("%Y-%m-%d %H:%M:%S", "%Y-%-m-%-d %-H:%M:%S", step, n);
}

#[test]
fn the_fixed_position_path_refuses_what_the_general_one_refuses() {
    let f = DateTimeFormat::compile("%Y-%m-%d %H:%M:%S").unwrap();
    assert!(f.fixed.is_some());
    for bad in [
        "2019-13-01 00:00:00",
        "2019-02-30 00:00:00",
        "2019-01-01 24:00:00",
        "2019-01-01 00:60:00",
        "2019+01-01 00:00:00",
        "2019-01-0a 00:00:00",
        "2019-01-01T00:00:00",
    ] {
        assert_eq!(f.parse_millis(bad.as_bytes()), None, "{bad}");
    }
    assert!(DateTimeFormat::compile("%Y-%m-%dT%H:%M:%S%.f").unwrap().fixed.is_none());
}

#[test]
fn new_directives_refuse_what_they_cannot_read() {
    let iso = DateTimeFormat::compile("%Y-%m-%dT%H:%M:%S%.f").unwrap();
    assert_eq!(iso.parse_millis(b"2024-01-01T00:00:00"), Some(1_704_067_200_000), "the fraction is optional");
    assert_eq!(iso.parse_millis(b"2024-01-01T00:00:00.5"), Some(1_704_067_200_500));
    assert_eq!(iso.parse_millis(b"2024-01-01T00:00:00.000001"), None, "finer than a millisecond");
    assert_eq!(iso.parse_millis(b"2024-01-01T00:00:00."), None);
    let h12 = DateTimeFormat::compile("%m/%d/%Y %I:%M %p").unwrap();
    assert_eq!(h12.parse_millis(b"1/1/2019 12:46 AM").map(millis_to_string).as_deref(), Some("2019-01-01 00:46:00"));
    assert_eq!(h12.parse_millis(b"1/1/2019 12:46 pm").map(millis_to_string).as_deref(), Some("2019-01-01 12:46:00"));
    assert_eq!(h12.parse_millis(b"1/1/2019 13:46 PM"), None);
    assert_eq!(h12.parse_millis(b"1/1/2019 0:46 AM"), None);
    assert_eq!(h12.parse_millis(b"1/1/2019 1:46 XM"), None);
    let names = DateTimeFormat::compile("%d-%b-%y").unwrap();
    assert_eq!(names.parse_days(b"29-Feb-20"), Some(18321));
    assert_eq!(names.parse_days(b"29-feb-21"), None);
    assert_eq!(names.parse_days(b"01-Foo-20"), None);
    assert_eq!(names.parse_days(b"01-Jan-1970"), None, "%y takes two digits");
}
