//! What a catalog entry is: the dataset and its columns, sources and eras,
//! with the defaults of every option. A new dataset option is a field here
//! (with its default) and, when it has bounds, a check in `validate.rs`.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

/// How often a dataset publishes one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Cadence {
    /// One partition per day.
    Daily,
    /// One file per week, dated on its Saturday.
    Weekly,
    /// One file per calendar month, dated on the 1st.
    Monthly,
}

impl std::fmt::Display for Cadence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Cadence::Daily => "daily",
            Cadence::Weekly => "weekly (Saturdays)",
            Cadence::Monthly => "monthly",
        })
    }
}

/// The type of one output column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    /// UTF-8 text, kept as it is in the source.
    String,
    /// 64-bit signed integer; `1.0` style integral floats are accepted.
    Int64,
    /// 64-bit float; `.20` and `-5.5` parse.
    Float64,
    /// Calendar date (Parquet DATE), parsed with `format`.
    Date,
    /// Timestamp without time zone, milliseconds, parsed with `format`.
    Timestamp,
}

impl std::fmt::Display for ColumnType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ColumnType::String => "string",
            ColumnType::Int64 => "int64",
            ColumnType::Float64 => "float64",
            ColumnType::Date => "date",
            ColumnType::Timestamp => "timestamp",
        })
    }
}

/// One column of the source header and its output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Column {
    /// Name in the source (compared trimmed, case-insensitively). A CSV
    /// column needs one; a Parquet column may have none when only an era
    /// fills it.
    #[serde(default)]
    pub source: Option<String>,
    /// Other source names this column accepts (Parquet sources: any of them;
    /// CSV: at this column's position).
    #[serde(default)]
    pub aliases: Vec<String>,
    /// Output column name; defaults to the lower snake case of `source`.
    #[serde(default)]
    pub name: Option<String>,
    /// Output type.
    #[serde(rename = "type")]
    pub ty: ColumnType,
    /// Date or timestamp format (`%Y %m %d %H %M %S` and literal characters).
    #[serde(default)]
    pub format: Option<String>,
    /// Whether empty fields become nulls (true) or fail the row (false).
    #[serde(default = "default_true")]
    pub nullable: bool,
    /// Numbers written with a thousands separator (`","`: `"2,122"` is
    /// 2122), as portal exports and spreadsheets write them; int64 and
    /// float64 columns of CSV sources. A misplaced separator fails the row.
    #[serde(default)]
    pub thousands: Option<char>,
}

/// An output column computed from several source columns joined by a space,
/// e.g. MTA's `observed_at` from `DATE` and `TIME`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Derived {
    pub name: String,
    /// Always `timestamp` today.
    #[serde(rename = "type")]
    pub ty: ColumnType,
    /// Source header names whose values are joined with one space.
    pub from: Vec<String>,
    pub format: String,
}

fn default_true() -> bool {
    true
}

fn default_delimiter() -> char {
    ','
}

fn default_schema_version() -> u32 {
    1
}

fn default_max_record_bytes() -> u64 {
    DEFAULT_MAX_RECORD_BYTES
}

/// Default of `not_published_retry_seconds`: 6 hours.
pub const DEFAULT_NOT_PUBLISHED_RETRY_SECONDS: u64 = 6 * 3600;
/// Default of `not_published_patience_seconds`: 14 days.
pub const DEFAULT_NOT_PUBLISHED_PATIENCE_SECONDS: u64 = 14 * 86_400;

fn default_not_published_retry() -> u64 {
    DEFAULT_NOT_PUBLISHED_RETRY_SECONDS
}

fn default_not_published_patience() -> u64 {
    DEFAULT_NOT_PUBLISHED_PATIENCE_SECONDS
}

fn default_host_concurrency() -> u32 {
    4
}

fn default_host_rate() -> u32 {
    10
}

/// One hour: a source that asks for longer is capped (and logged).
pub const DEFAULT_MAX_RETRY_AFTER_SECONDS: u64 = 3600;

fn default_max_retry_after() -> u64 {
    DEFAULT_MAX_RETRY_AFTER_SECONDS
}

/// 500 million rows: the largest real slices (a month of the MTA's hourly
/// ridership) hold a few million.
pub const DEFAULT_MAX_SLICE_ROWS: u64 = 500_000_000;

fn default_max_slice_rows() -> u64 {
    DEFAULT_MAX_SLICE_ROWS
}

fn default_checkpoint_interval() -> u64 {
    100
}

fn default_max_source_bytes() -> u64 {
    DEFAULT_MAX_SOURCE_BYTES
}

/// Default limit of one CSV record (and of the header line).
pub const DEFAULT_MAX_RECORD_BYTES: u64 = 1 << 20;
/// Default limit of a source's decompressed size.
pub const DEFAULT_MAX_SOURCE_BYTES: u64 = 16 << 30;
/// The placeholders a `url_template` may use.
pub const PLACEHOLDERS: [&str; 5] = ["{yyyy}", "{yy}", "{mm}", "{dd}", "{yymmdd}"];
/// At most this many partitions are checked when a catalog entry is validated.
pub(super) const MAX_CHECKED_PARTITIONS: usize = 50_000;

/// What a dataset's source files are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceFormat {
    /// CSV (plain or gzip), streamed: header checked by position.
    #[default]
    Csv,
    /// Parquet, spooled (its footer comes last) then read batch by batch;
    /// columns matched by name.
    Parquet,
    /// A Socrata (SODA 2.1) portal: a partition is a time slice of a
    /// dataset, counted, then paged as CSV (columns selected by name).
    Socrata,
}

impl std::fmt::Display for SourceFormat {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SourceFormat::Csv => "csv",
            SourceFormat::Parquet => "parquet",
            SourceFormat::Socrata => "socrata",
        })
    }
}

/// How a dataset's table stores its timestamps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Timestamps {
    /// Instants: the sources' wall-clock times read in the dataset's
    /// `time_zone` and stored in UTC (Delta `timestamp`, Parquet
    /// `TIMESTAMP(MICROS, isAdjustedToUTC=true)`): every engine, BigQuery
    /// included, reads the same instant.
    #[default]
    Instant,
    /// Wall-clock times as the sources wrote them (Delta `timestamp_ntz`,
    /// Parquet `TIMESTAMP(MICROS, isAdjustedToUTC=false)`); BigQuery's
    /// BigLake cannot read them.
    WallClock,
}

/// What happens to an output column that a source does not have.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MissingColumns {
    /// The partition is refused (`schema_mismatch`).
    #[default]
    Fail,
    /// The column is written as nulls (it must be nullable).
    Null,
}

/// What happens to a source column that no output column accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UnknownColumns {
    /// The partition is parked as `schema_drift`, naming the column and its
    /// type, so that a new column is noticed rather than dropped.
    #[default]
    Fail,
    /// The column is not read.
    Ignore,
}

/// A range of partitions whose sources name some columns differently (the
/// TLC's 2009 and 2010 layouts): for each output column listed, the source
/// names it accepts in this era, replacing its own `source` and `aliases`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Era {
    pub first: NaiveDate,
    /// Last partition of the era; none means "until now".
    #[serde(default)]
    pub last: Option<NaiveDate>,
    /// What sets this era apart, shown by `producer datasets`.
    #[serde(default)]
    pub note: String,
    /// Output column name -> the source names it accepts in this era.
    #[serde(default)]
    pub sources: BTreeMap<String, Vec<String>>,
}

impl Era {
    pub(super) fn contains(&self, date: NaiveDate) -> bool {
        date >= self.first && self.last.is_none_or(|l| date <= l)
    }
}

fn default_page_rows() -> u32 {
    50_000
}

/// Where a Socrata dataset lives (`[dataset.socrata]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Socrata {
    /// The portal, `https://data.ny.gov`; a backfill's `--mirror` replaces it.
    pub portal: String,
    /// The (floating timestamp) column the slices are cut on.
    pub time_column: String,
    /// Dataset ids, each for a range of partitions (a dataset the portal
    /// splits across ids by date has several).
    pub ids: Vec<SocrataId>,
    /// Rows per page (`$limit`).
    #[serde(default = "default_page_rows")]
    pub page_rows: u32,
}

/// One Socrata dataset id and the partitions it holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SocrataId {
    pub id: String,
    /// First partition this id holds; it holds them until the next id's first.
    pub first: NaiveDate,
    /// For reading: where the portal's id ends (checked against the next id's first).
    #[serde(default)]
    pub last: Option<NaiveDate>,
    /// Older spellings this id may use for some fields (field -> old name):
    /// when the portal refuses the query (400, e.g. "No such column:
    /// line_name"), the slice is asked again selecting `old AS field`; when
    /// neither spelling exists, the partition parks with the portal's words.
    #[serde(default)]
    pub aliases: BTreeMap<String, String>,
}

/// One catalog entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dataset {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub cadence: Cadence,
    /// What the source files are (`csv` by default).
    #[serde(default)]
    pub format: SourceFormat,
    /// Placeholders: `{yyyy}`, `{yy}`, `{mm}`, `{dd}`, `{yymmdd}` (CSV and
    /// Parquet sources; a Socrata source has `[dataset.socrata]` instead).
    #[serde(default)]
    pub url_template: String,
    /// Socrata sources: portal, dataset ids and time column.
    #[serde(default)]
    pub socrata: Option<Socrata>,
    /// First available partition.
    pub first: NaiveDate,
    /// Last available partition; none means "still publishing".
    #[serde(default)]
    pub last: Option<NaiveDate>,
    /// The dataset that continues (or carries on from) its data: shown by
    /// `producer datasets`; with `last`, named when a range past `last` or
    /// a schedule is refused; without it, named when the calendar's
    /// patience finds nothing new.
    #[serde(default)]
    pub successor: Option<String>,
    /// Why partitions before `first` are refused, shown to the user.
    #[serde(default)]
    pub before_first_note: Option<String>,
    /// Days after a partition's period ends before its file is published
    /// (the TLC: about two months after the month ends).
    #[serde(default)]
    pub publish_lag_days: u32,
    #[serde(default = "default_delimiter")]
    pub delimiter: char,
    #[serde(default = "default_schema_version")]
    pub schema_version: u32,
    /// The longest CSV record (or header line) accepted, in bytes; a longer
    /// one fails the partition as `bad_row` instead of growing memory.
    #[serde(default = "default_max_record_bytes")]
    pub max_record_bytes: u64,
    /// The largest source accepted (CSV: decompressed; Parquet: the file),
    /// in bytes (a gzip bomb stops here and is parked as `too_large`).
    #[serde(default = "default_max_source_bytes")]
    pub max_source_bytes: u64,
    /// A due partition whose source answers 404/403/410 (not published yet)
    /// is asked again this often...
    #[serde(default = "default_not_published_retry")]
    pub not_published_retry_seconds: u64,
    /// ...until this long after the first such answer; then it is parked as
    /// `not_published_yet`.
    #[serde(default = "default_not_published_patience")]
    pub not_published_patience_seconds: u64,
    /// Downloads from one source host at once, for the whole fleet (shared
    /// through Redis); a Socrata slice's pages are one download.
    #[serde(default = "default_host_concurrency")]
    pub max_downloads_per_host: u32,
    /// Download starts per second from one source host, for the whole fleet.
    #[serde(default = "default_host_rate")]
    pub max_requests_per_second_per_host: u32,
    /// The longest pause a source's `Retry-After` (on a 429 or 503) may put
    /// on its host; a longer one is capped, and the cap is logged with the
    /// value asked for (a `Retry-After: 1000000000` never pauses a host for
    /// 31 years).
    #[serde(default = "default_max_retry_after")]
    pub max_retry_after_seconds: u64,
    /// Socrata sources: a slice whose `count(*)` is larger is parked as
    /// `too_large` naming the count, before any page is asked for (a portal
    /// whose count lies is never paged through).
    #[serde(default = "default_max_slice_rows")]
    pub max_slice_rows: u64,
    /// Whether the dataset's folder is a Delta Lake table (its `_delta_log`
    /// says which objects make the dataset at each version); `false`: plain
    /// Parquet files, written in place.
    #[serde(default = "default_true")]
    pub table: bool,
    /// A Delta checkpoint every this many table versions (readers and new
    /// workers read it and the commits after it, not the whole log).
    #[serde(default = "default_checkpoint_interval")]
    pub checkpoint_interval: u64,
    /// The time zone the sources' wall-clock times are in (an IANA name:
    /// `America/New_York`); required when the dataset has timestamps stored
    /// as instants.
    #[serde(default)]
    pub time_zone: Option<String>,
    /// `instant` (default): timestamps stored in UTC, read from `time_zone`;
    /// `wall_clock`: kept as the sources wrote them (`timestamp_ntz`).
    #[serde(default)]
    pub timestamps: Timestamps,
    /// Whether a source with a header and no rows is a valid (empty)
    /// partition; otherwise it is parked as `empty_source`.
    #[serde(default)]
    pub allow_empty: bool,
    /// Parquet sources: an output column the source lacks.
    #[serde(default)]
    pub missing_columns: MissingColumns,
    /// Parquet sources: a source column no output column accepts.
    #[serde(default)]
    pub unknown_columns: UnknownColumns,
    /// Parquet sources: source columns never read (`__index_level_0__`).
    #[serde(default)]
    pub ignore_columns: Vec<String>,
    pub columns: Vec<Column>,
    #[serde(default)]
    pub derived: Vec<Derived>,
    /// Parquet sources: partitions whose sources name columns differently.
    #[serde(default)]
    pub eras: Vec<Era>,
}
