//! Backfill planning: a date range becomes one partition per publication.
//!
//! Daily datasets have a partition per day. Weekly datasets publish on
//! Saturdays: every Saturday in `[from, to]` is a partition. Monthly datasets
//! publish one file per month, dated on the 1st: every month from `from`'s
//! month to `to`'s month is a partition. Ranges that
//! reach outside what the dataset has published are refused, never trimmed.

use chrono::{Datelike, Days, Months, NaiveDate, Weekday};

use crate::catalog::{Cadence, Dataset};

pub use crate::catalog::cadence::{next, round_down};

/// One planned partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    pub date: NaiveDate,
    /// Its first generation's object key ([`Dataset::object_key`]).
    pub object_key: String,
}

/// Why a range cannot be planned. Every variant is a user error (exit code 2).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    #[error("--from {from} is after --to {to}")]
    Reversed { from: NaiveDate, to: NaiveDate },
    #[error("{dataset}: {date} is before the first available partition {first}{note}")]
    BeforeFirst { dataset: String, date: NaiveDate, first: NaiveDate, note: String },
    #[error("{dataset}: {date} is after the last available partition {last}{note}")]
    AfterLast { dataset: String, date: NaiveDate, last: NaiveDate, note: String },
    #[error(
        "{dataset}: the range reaches {date}, past the latest published partition {latest} (today is {today}); a file that is not published yet is never requested"
    )]
    NotPublishedYet { dataset: String, date: NaiveDate, latest: NaiveDate, today: NaiveDate },
    #[error("{dataset}: no {cadence} publication between {from} and {to}")]
    Empty { dataset: String, cadence: String, from: NaiveDate, to: NaiveDate },
}

/// The latest partition that is published on `today`: a week is published on
/// its Saturday, a day or a month once it is over, each `publish_lag_days` later (the
/// TLC: about two months); capped by the dataset's `last`.
pub fn latest_published(ds: &Dataset, today: NaiveDate) -> NaiveDate {
    let seen = today - Days::new(ds.publish_lag_days as u64);
    let latest = match ds.cadence {
        Cadence::Daily => seen - Days::new(1),
        Cadence::Weekly => round_down(Cadence::Weekly, seen),
        Cadence::Monthly => round_down(Cadence::Monthly, seen) - Months::new(1),
    };
    match ds.last {
        Some(last) if last < latest => last,
        _ => latest,
    }
}

/// Plans `[from, to]` for `ds` as seen on `today`.
pub fn plan(ds: &Dataset, from: NaiveDate, to: NaiveDate, today: NaiveDate) -> Result<Vec<Partition>, PlanError> {
    if from > to {
        return Err(PlanError::Reversed { from, to });
    }
    let first_partition = match ds.cadence {
        Cadence::Weekly => {
            let r = round_down(Cadence::Weekly, from);
            if r == from { r } else { r + Days::new(7) }
        }
        Cadence::Daily | Cadence::Monthly => round_down(ds.cadence, from),
    };
    let last_partition = round_down(ds.cadence, to);
    if first_partition > last_partition {
        return Err(PlanError::Empty { dataset: ds.name.clone(), cadence: ds.cadence.to_string(), from, to });
    }
    if first_partition < ds.first {
        return Err(PlanError::BeforeFirst {
            dataset: ds.name.clone(),
            date: first_partition,
            first: ds.first,
            note: ds.before_first_note.as_ref().map(|n| format!(" ({n})")).unwrap_or_default(),
        });
    }
    if let Some(last) = ds.last
        && last_partition > last
    {
        return Err(PlanError::AfterLast {
            dataset: ds.name.clone(),
            date: last_partition,
            last,
            note: ds.ended().map(|e| format!(": {e}")).unwrap_or_default(),
        });
    }
    let latest = latest_published(ds, today);
    if to > today || last_partition > latest {
        return Err(PlanError::NotPublishedYet {
            dataset: ds.name.clone(),
            date: if to > today { to } else { last_partition },
            latest,
            today,
        });
    }
    let mut out = Vec::new();
    let mut d = first_partition;
    while d <= last_partition {
        out.push(Partition { date: d, object_key: ds.object_key(d) });
        d = next(ds.cadence, d);
    }
    debug_assert!(out.iter().all(|p| ds.cadence != Cadence::Weekly || p.date.weekday() == Weekday::Sat));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn dates(p: &[Partition]) -> Vec<String> {
        p.iter().map(|p| p.date.to_string()).collect()
    }

    const TODAY: &str = "2026-11-21"; // a Saturday

    #[test]
    fn saturdays_across_a_year_boundary() {
        let cat = Catalog::builtin();
        let mta = cat.get("mta-turnstile").unwrap();
        let p = plan(mta, d("2021-12-20"), d("2022-01-15"), d(TODAY)).unwrap();
        assert_eq!(dates(&p), ["2021-12-25", "2022-01-01", "2022-01-08", "2022-01-15"]);
        assert!(mta.source_url(p[1].date).ends_with("turnstile_220101.txt"));
        assert_eq!(p[0].object_key, "mta-turnstile/year=2021/mta-turnstile_2021-12-25.parquet");
    }

    #[test]
    fn saturdays_in_a_leap_february() {
        let cat = Catalog::builtin();
        let mta = cat.get("mta-turnstile").unwrap();
        let p = plan(mta, d("2020-02-01"), d("2020-03-07"), d(TODAY)).unwrap();
        assert_eq!(dates(&p), ["2020-02-01", "2020-02-08", "2020-02-15", "2020-02-22", "2020-02-29", "2020-03-07"]);
        let q1 = plan(mta, d("2022-01-01"), d("2022-03-31"), d(TODAY)).unwrap();
        assert_eq!(q1.len(), 13);
    }

    #[test]
    fn single_day_and_empty_ranges() {
        let cat = Catalog::builtin();
        let mta = cat.get("mta-turnstile").unwrap();
        assert_eq!(dates(&plan(mta, d("2022-01-08"), d("2022-01-08"), d(TODAY)).unwrap()), ["2022-01-08"]);
        let e = plan(mta, d("2022-01-09"), d("2022-01-14"), d(TODAY)).unwrap_err();
        assert!(matches!(e, PlanError::Empty { .. }), "{e}");
        assert!(e.to_string().contains("no weekly (Saturdays) publication"), "{e}");
        let y = cat.get("nyc-tlc-yellow").unwrap();
        assert_eq!(dates(&plan(y, d("2019-02-10"), d("2019-02-10"), d(TODAY)).unwrap()), ["2019-02-01"]);
    }

    #[test]
    fn months_across_years() {
        let cat = Catalog::builtin();
        let y = cat.get("nyc-tlc-green").unwrap();
        let p = plan(y, d("2019-11-15"), d("2020-02-03"), d(TODAY)).unwrap();
        assert_eq!(dates(&p), ["2019-11-01", "2019-12-01", "2020-01-01", "2020-02-01"]);
        assert_eq!(
            y.source_url(p[3].date),
            "https://d37ci6vzurychx.cloudfront.net/trip-data/green_tripdata_2020-02.parquet"
        );
    }

    #[test]
    fn refusals_name_the_reason() {
        let cat = Catalog::builtin();
        let mta = cat.get("mta-turnstile").unwrap();
        let e = plan(mta, d("2022-03-01"), d("2022-01-01"), d(TODAY)).unwrap_err();
        assert_eq!(e.to_string(), "--from 2022-03-01 is after --to 2022-01-01");
        let e = plan(mta, d("2014-10-01"), d("2014-11-01"), d(TODAY)).unwrap_err();
        assert!(e.to_string().contains("before the first available partition 2014-10-18"), "{e}");
        assert!(e.to_string().contains("older wide layout"), "{e}");
        // A feed with a confirmed last file (a user's entry): a range past
        // it names the dataset that continues it.
        let mut ended = mta.clone();
        ended.last = Some(d("2023-05-06"));
        let e = plan(&ended, d("2023-04-01"), d("2023-06-30"), d(TODAY)).unwrap_err();
        assert!(e.to_string().contains("the feed ended with its partition 2023-05-06"), "{e}");
        assert!(e.to_string().contains("dataset mta-subway-hourly-ridership continues its data"), "{e}");
        assert_eq!(dates(&plan(&ended, d("2023-04-30"), d("2023-05-06"), d(TODAY)).unwrap()), ["2023-05-06"]);
        // The built-in weekly feed has no end: weeks after May 2023 are
        // planned (turnstile_230603.txt exists), up to the latest due one:
        // today is Saturday 2026-11-21: it is published, next week is not.
        let after = plan(mta, d("2023-05-28"), d("2023-06-03"), d(TODAY)).unwrap();
        assert_eq!(dates(&after), ["2023-06-03"]);
        let ok = plan(mta, d("2026-11-15"), d("2026-11-21"), d(TODAY)).unwrap();
        assert_eq!(dates(&ok), ["2026-11-21"]);
        let e = plan(mta, d("2026-11-01"), d("2026-11-28"), d(TODAY)).unwrap_err();
        assert!(e.to_string().contains("latest published partition 2026-11-21"), "{e}");
        let y = cat.get("dtc-nyc-tlc-yellow").unwrap();
        let e = plan(y, d("2021-06-01"), d("2021-09-30"), d(TODAY)).unwrap_err();
        assert!(e.to_string().contains("after the last available partition 2021-07-01"), "{e}");
    }

    #[test]
    fn monthly_without_end_waits_for_the_month_to_be_over() {
        let mut ds = Catalog::builtin().get("dtc-nyc-tlc-yellow").unwrap().clone();
        ds.last = None;
        let e = plan(&ds, d("2026-10-01"), d("2026-11-20"), d(TODAY)).unwrap_err();
        assert!(e.to_string().contains("latest published partition 2026-10-01"), "{e}");
        assert_eq!(plan(&ds, d("2026-10-01"), d("2026-10-31"), d(TODAY)).unwrap().len(), 1);
    }

    #[test]
    fn the_tlc_publishes_about_two_months_after_a_month_ends() {
        let cat = Catalog::builtin();
        let y = cat.get("nyc-tlc-yellow").unwrap();
        // 2026-11-21: August (over on 2026-09-01, +60 days = 2026-10-31) is out, September is not.
        assert_eq!(latest_published(y, d(TODAY)), d("2026-08-01"));
        let all = plan(y, d("2009-01-01"), d("2025-06-30"), d(TODAY)).unwrap();
        assert_eq!(all.len(), 16 * 12 + 6);
        assert_eq!(
            y.source_url(all[0].date),
            "https://d37ci6vzurychx.cloudfront.net/trip-data/yellow_tripdata_2009-01.parquet"
        );
        assert_eq!(all.last().unwrap().object_key, "nyc-tlc-yellow/year=2025/nyc-tlc-yellow_2025-06.parquet");
        let e = plan(y, d("2026-08-01"), d("2026-09-30"), d(TODAY)).unwrap_err();
        assert!(e.to_string().contains("past the latest published partition 2026-08-01"), "{e}");
        let e = plan(y, d("2008-12-01"), d("2009-02-01"), d(TODAY)).unwrap_err();
        assert!(e.to_string().contains("start in January 2009"), "{e}");
    }
}
