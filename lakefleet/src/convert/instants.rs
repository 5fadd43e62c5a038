//! Timestamps as the table stores them: microseconds, and (by default)
//! instants. The converters read every timestamp as a wall-clock time in
//! milliseconds (what the sources write); the encoder thread turns each batch
//! into the output schema here, just before it is written.
//!
//! Wall-clock times are read in the dataset's `time_zone` with the zone
//! database. Daylight-saving changes follow one rule, and never fail a row:
//!
//! - a time that occurs twice (the hour repeated when clocks go back,
//!   01:30 on the first Sunday of November in New York) is the first of
//!   the two (daylight time: 01:30 EDT = 05:30 UTC);
//! - a time that never occurs (the hour skipped when clocks go forward,
//!   02:30 on the second Sunday of March) is read with the offset in force
//!   before the change (02:30 EST = 07:30 UTC, which clocks showed as 03:30 EDT).

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::TimestampMillisecondType;
use arrow_array::{Array, ArrayRef, Date32Array, RecordBatch, TimestampMicrosecondArray};
use arrow_schema::{ArrowError, DataType, SchemaRef, TimeUnit};
use chrono::{LocalResult, NaiveDateTime, Offset, TimeZone};
use chrono_tz::Tz;

/// The Arrow type of a timestamp column in the output: microseconds, in UTC
/// when `instants`.
pub fn output_type(instants: bool) -> DataType {
    DataType::Timestamp(TimeUnit::Microsecond, instants.then(|| Arc::from("UTC")))
}

/// Milliseconds of a wall-clock time in `zone` as milliseconds since the
/// epoch (UTC), by the rule above.
pub fn wall_to_utc_millis(zone: Tz, wall_ms: i64) -> i64 {
    let Some(wall) = chrono::DateTime::from_timestamp_millis(wall_ms).map(|d| d.naive_utc()) else { return wall_ms };
    wall_ms - offset_ms(zone, wall)
}

/// Milliseconds since the epoch (UTC) as the wall-clock time `zone`'s
/// clocks showed then (one answer: every instant has one).
pub fn utc_to_wall_millis(zone: Tz, utc_ms: i64) -> i64 {
    let Some(at) = chrono::DateTime::from_timestamp_millis(utc_ms) else { return utc_ms };
    utc_ms + zone.offset_from_utc_datetime(&at.naive_utc()).fix().local_minus_utc() as i64 * 1000
}

/// The offset (ms east of UTC) that applies to the wall-clock time `wall`.
fn offset_ms(zone: Tz, wall: NaiveDateTime) -> i64 {
    let secs = match zone.offset_from_local_datetime(&wall) {
        LocalResult::Single(o) => o.fix().local_minus_utc(),
        // Twice: the first occurrence, whose offset is the larger (daylight time).
        LocalResult::Ambiguous(a, b) => a.fix().local_minus_utc().max(b.fix().local_minus_utc()),
        // Never: the offset before the change (read a day earlier).
        LocalResult::None => {
            let before = wall - chrono::Duration::hours(24);
            match zone.offset_from_local_datetime(&before) {
                LocalResult::Single(o) => o.fix().local_minus_utc(),
                LocalResult::Ambiguous(a, _) => a.fix().local_minus_utc(),
                LocalResult::None => 0,
            }
        }
    };
    secs as i64 * 1000
}

/// The zone of the instants a converter marks as such
/// (`Timestamp(ms, "UTC")`: a zone-aware source's values).
pub const UTC: &str = "UTC";

/// Turns the converters' batches into the output schema `out`: every
/// wall-clock millisecond timestamp column becomes microseconds, read in
/// `zone` (the dataset's `time_zone`) when the output stores instants; a
/// column of instants (a zone-aware source) is stored as it is, or, when the
/// output keeps wall-clock times, as `zone`'s clocks showed it.
pub struct Instants {
    zone: Option<Tz>,
    out: SchemaRef,
    /// Days since 1970-01-01 of the partition: the value of the output's
    /// last column (the lineage column) when the batches come without it.
    lineage: Option<i32>,
}

impl Instants {
    pub fn new(zone: Option<Tz>, out: SchemaRef) -> Instants {
        Instants { zone, out, lineage: None }
    }

    /// Fills the output's lineage column (its last, which the converters'
    /// batches do not have) with `partition` (null: `None`).
    pub fn with_lineage(mut self, partition: Option<chrono::NaiveDate>) -> Instants {
        self.lineage = partition.map(super::lineage_value);
        self
    }

    /// The output schema.
    pub fn schema(&self) -> SchemaRef {
        self.out.clone()
    }

    pub fn apply(&self, batch: RecordBatch) -> Result<RecordBatch, ArrowError> {
        let mut columns: Vec<ArrayRef> = batch
            .columns()
            .iter()
            .zip(self.out.fields())
            .map(|(a, f)| match (a.data_type(), f.data_type()) {
                (DataType::Timestamp(TimeUnit::Millisecond, None), DataType::Timestamp(TimeUnit::Microsecond, tz)) => {
                    let ms = a.as_primitive::<TimestampMillisecondType>();
                    let micros: TimestampMicrosecondArray = match (self.zone, tz) {
                        (Some(zone), Some(_)) => {
                            let mut cache = HourCache::default();
                            let values: Vec<i64> =
                                ms.values().iter().map(|&v| cache.utc_of(zone, v).saturating_mul(1000)).collect();
                            TimestampMicrosecondArray::new(values.into(), ms.nulls().cloned())
                        }
                        _ => ms.unary(|v| v.saturating_mul(1000)),
                    };
                    Arc::new(micros.with_timezone_opt(tz.clone())) as ArrayRef
                }
                (
                    DataType::Timestamp(TimeUnit::Millisecond, Some(_)),
                    DataType::Timestamp(TimeUnit::Microsecond, tz),
                ) => {
                    let ms = a.as_primitive::<TimestampMillisecondType>();
                    let micros: TimestampMicrosecondArray = match (tz, self.zone) {
                        // A wall-clock output: the instant as the zone's clocks showed it.
                        (None, Some(zone)) => ms.unary(|v| utc_to_wall_millis(zone, v).saturating_mul(1000)),
                        _ => ms.unary(|v| v.saturating_mul(1000)),
                    };
                    Arc::new(micros.with_timezone_opt(tz.clone())) as ArrayRef
                }
                _ => a.clone(),
            })
            .collect();
        if columns.len() + 1 == self.out.fields().len() {
            let n = batch.num_rows();
            let lineage = match self.lineage {
                Some(day) => Date32Array::from_value(day, n),
                None => Date32Array::new_null(n),
            };
            columns.push(Arc::new(lineage));
        }
        RecordBatch::try_new(self.out.clone(), columns)
    }
}

/// The offset of the last wall-clock hour seen: rows come in time order, so
/// one zone lookup serves many rows. An hour that a change touches is never
/// cached (its rows are looked up one by one).
#[derive(Default)]
struct HourCache {
    hour: Option<i64>,
    offset: i64,
}

impl HourCache {
    fn utc_of(&mut self, zone: Tz, wall_ms: i64) -> i64 {
        const HOUR: i64 = 3_600_000;
        let hour = wall_ms.div_euclid(HOUR);
        if self.hour == Some(hour) {
            return wall_ms - self.offset;
        }
        let Some(start) = chrono::DateTime::from_timestamp_millis(hour * HOUR).map(|d| d.naive_utc()) else {
            return wall_ms;
        };
        let end = start + chrono::Duration::milliseconds(HOUR - 1);
        let single = |t: NaiveDateTime| match zone.offset_from_local_datetime(&t) {
            LocalResult::Single(o) => Some(o.fix().local_minus_utc() as i64 * 1000),
            _ => None,
        };
        match (single(start), single(end)) {
            (Some(a), Some(b)) if a == b => {
                (self.hour, self.offset) = (Some(hour), a);
                wall_ms - a
            }
            _ => wall_to_utc_millis(zone, wall_ms),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(zone: Tz, wall: &str) -> String {
        let ms = NaiveDateTime::parse_from_str(wall, "%Y-%m-%d %H:%M:%S").unwrap().and_utc().timestamp_millis();
        let a = wall_to_utc_millis(zone, ms);
        let b = HourCache::default().utc_of(zone, ms);
        assert_eq!(a, b, "the cache agrees at {wall}");
        chrono::DateTime::from_timestamp_millis(a).unwrap().format("%Y-%m-%d %H:%M:%S").to_string()
    }

    #[test]
    fn new_york_wall_clock_times_become_instants_in_winter_summer_and_at_both_changes() {
        let ny: Tz = "America/New_York".parse().unwrap();
        assert_eq!(utc(ny, "2022-01-08 12:00:00"), "2022-01-08 17:00:00", "winter: UTC-5");
        assert_eq!(utc(ny, "2022-07-08 12:00:00"), "2022-07-08 16:00:00", "summer: UTC-4");
        // 2022-11-06 01:30 happened twice: the first (EDT).
        assert_eq!(utc(ny, "2022-11-06 01:30:00"), "2022-11-06 05:30:00");
        assert_eq!(utc(ny, "2022-11-06 02:30:00"), "2022-11-06 07:30:00", "after the repeated hour: EST");
        // 2022-03-13 02:30 never happened: read with EST, the offset before.
        assert_eq!(utc(ny, "2022-03-13 02:30:00"), "2022-03-13 07:30:00");
        assert_eq!(utc(ny, "2022-03-13 03:30:00"), "2022-03-13 07:30:00", "after the skipped hour: EDT");
        assert_eq!(utc("UTC".parse().unwrap(), "2022-03-13 02:30:00"), "2022-03-13 02:30:00");
    }

    #[test]
    fn a_batch_becomes_microseconds_in_utc() {
        use arrow_array::TimestampMillisecondArray;
        use arrow_schema::{Field, Schema};
        let ny: Tz = "America/New_York".parse().unwrap();
        let wall = NaiveDateTime::parse_from_str("2022-01-08 12:00:00", "%Y-%m-%d %H:%M:%S").unwrap();
        let ms = wall.and_utc().timestamp_millis();
        let input = RecordBatch::try_new(
            Arc::new(Schema::new(vec![Field::new("t", DataType::Timestamp(TimeUnit::Millisecond, None), true)])),
            vec![Arc::new(TimestampMillisecondArray::from(vec![Some(ms), None]))],
        )
        .unwrap();
        let out = Arc::new(Schema::new(vec![Field::new("t", output_type(true), true)]));
        let b = Instants::new(Some(ny), out.clone()).apply(input.clone()).unwrap();
        assert_eq!(b.schema(), out);
        let v = b.column(0).as_primitive::<arrow_array::types::TimestampMicrosecondType>();
        assert_eq!((v.value(0), v.is_null(1)), ((ms + 5 * 3_600_000) * 1000, true));
        let ntz = Arc::new(Schema::new(vec![Field::new("t", output_type(false), true)]));
        let b = Instants::new(None, ntz).apply(input).unwrap();
        assert_eq!(b.column(0).as_primitive::<arrow_array::types::TimestampMicrosecondType>().value(0), ms * 1000);
    }
}
