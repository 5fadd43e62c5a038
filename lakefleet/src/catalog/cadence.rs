//! A cadence's calendar: the partition a date falls in, and the next one.

use chrono::{Datelike, Days, Months, NaiveDate};

use super::Cadence;

/// The publication date of the partition that contains `date`, rounded down
/// (the Saturday on or before it; the 1st of its month).
pub fn round_down(cadence: Cadence, date: NaiveDate) -> NaiveDate {
    match cadence {
        Cadence::Daily => date,
        Cadence::Weekly => {
            let back = (date.weekday().num_days_from_sunday() + 1) % 7; // Sat -> 0, Sun -> 1, ...
            date - Days::new(back as u64)
        }
        Cadence::Monthly => date.with_day(1).expect("day 1 exists"),
    }
}

/// The partition after `date` (a week or a month later).
pub fn next(cadence: Cadence, date: NaiveDate) -> NaiveDate {
    match cadence {
        Cadence::Daily => date + Days::new(1),
        Cadence::Weekly => date + Days::new(7),
        Cadence::Monthly => date + Months::new(1),
    }
}
