//! The dataset catalog: what a dataset is (URL template, cadence, available
//! range, CSV dialect, explicit output schema) and where its files come from.
//!
//! Built-in entries live in [`Catalog::builtin`]; users add or override entries
//! with a TOML file (see `testdata/catalog.example.toml` and the README).

use std::collections::BTreeMap;
use std::path::Path;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::timefmt::DateTimeFormat;

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
const MAX_CHECKED_PARTITIONS: usize = 50_000;

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
    fn contains(&self, date: NaiveDate) -> bool {
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
    /// A feed that ended at `last`: the dataset that continues its data
    /// (named when a range past `last`, or a schedule, is refused).
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

impl Dataset {
    /// Official source URL of the partition dated `date` (Socrata: the
    /// slice's CSV query, without paging).
    pub fn source_url(&self, date: NaiveDate) -> String {
        if let Some(q) = self.socrata_query(date, None) {
            return q.url();
        }
        let s = date.format("%Y%m%d").to_string();
        let (yyyy, mm, dd) = (&s[0..4], &s[4..6], &s[6..8]);
        let yy = &s[2..4];
        self.url_template
            .replace("{yymmdd}", &format!("{yy}{mm}{dd}"))
            .replace("{yyyy}", yyyy)
            .replace("{yy}", yy)
            .replace("{mm}", mm)
            .replace("{dd}", dd)
    }

    /// The URL a worker fetches: the official one, or `{mirror}/{official
    /// file name}` (Socrata: the mirror replaces the portal).
    pub fn fetch_url(&self, date: NaiveDate, mirror: Option<&str>) -> String {
        if let Some(q) = self.socrata_query(date, mirror) {
            return q.url();
        }
        let official = self.source_url(date);
        match mirror {
            Some(m) => format!("{}/{}", m.trim_end_matches('/'), file_name(&official)),
            None => official,
        }
    }

    /// The slice `[start, end)` of the time column a Socrata partition is:
    /// its day, the seven days before its Saturday (as the MTA's weekly
    /// files hold), or its month.
    pub fn slice(&self, date: NaiveDate) -> (NaiveDate, NaiveDate) {
        match self.cadence {
            Cadence::Weekly => (date - chrono::Days::new(7), date),
            _ => (date, crate::plan::next(self.cadence, date)),
        }
    }

    /// A Socrata partition's slice as the output sees it: the time column's
    /// position and `[start, end)` in milliseconds since 1970-01-01 (wall
    /// clock). Every converted row must fall inside: a portal or mirror that
    /// ignores `$where` never lands another partition's rows.
    pub fn slice_millis(&self, date: NaiveDate) -> Option<(usize, i64, i64)> {
        let s = self.socrata.as_ref()?;
        let col = self.columns.iter().position(|c| {
            c.source.as_deref().is_some_and(|n| n.eq_ignore_ascii_case(&s.time_column))
                && matches!(c.ty, ColumnType::Timestamp | ColumnType::Date)
        })?;
        let (start, end) = self.slice(date);
        let ms = |d: NaiveDate| d.and_hms_opt(0, 0, 0).expect("midnight").and_utc().timestamp_millis();
        Some((col, ms(start), ms(end)))
    }

    /// The Socrata query of a partition (none for other formats, or a date
    /// before every id); `mirror` replaces the portal. An id holds the
    /// partitions from its `first` until the next id's.
    pub fn socrata_query(&self, date: NaiveDate, mirror: Option<&str>) -> Option<crate::source::socrata::Query> {
        let s = self.socrata.as_ref()?;
        let id = s.ids.iter().rev().find(|i| date >= i.first)?;
        let (start, end) = self.slice(date);
        Some(crate::source::socrata::Query {
            portal: mirror.unwrap_or(&s.portal).trim_end_matches('/').to_string(),
            id: id.id.clone(),
            select: self.columns.iter().filter_map(|c| c.source.clone()).collect(),
            aliases: id.aliases.clone(),
            time_column: s.time_column.clone(),
            start,
            end,
        })
    }

    /// The `host:port` a partition's source is fetched from (the politeness
    /// limits are per host), with the backfill's mirror if any.
    pub fn source_host(&self, date: NaiveDate, mirror: Option<&str>) -> String {
        host_of(&self.fetch_url(date, mirror))
    }

    /// The partition's label: `2022-01-08` (weekly), `2019-03` (monthly).
    pub fn partition_label(&self, date: NaiveDate) -> String {
        match self.cadence {
            Cadence::Daily | Cadence::Weekly => date.format("%Y-%m-%d").to_string(),
            Cadence::Monthly => date.format("%Y-%m").to_string(),
        }
    }

    /// For a feed that ended (`last` and `successor` set): the sentence that
    /// says so and names the dataset that continues it.
    pub fn ended(&self) -> Option<String> {
        let (last, next) = (self.last?, self.successor.as_ref()?);
        Some(format!(
            "the feed ended with its partition {last} and publishes no more; dataset {next} continues its data"
        ))
    }

    /// The object key of a partition's ingestion `generation`: the first (1)
    /// is [`object_key`](Self::object_key); a refresh writes generation 2 as
    /// `..._2022-01-08.2.parquet`, never over the object readers may be reading.
    pub fn object_key_gen(&self, date: NaiveDate, generation: u64) -> String {
        let key = self.object_key(date);
        match generation {
            0 | 1 => key,
            g => format!("{}.{g}.parquet", key.trim_end_matches(".parquet")),
        }
    }

    /// Deterministic object key below the lake root, derived from the dataset
    /// and the partition only (never from the source URL):
    /// `mta-turnstile/year=2022/mta-turnstile_2022-01-08.parquet`.
    pub fn object_key(&self, date: NaiveDate) -> String {
        format!("{}/year={}/{}_{}.parquet", self.name, date.format("%Y"), self.name, self.partition_label(date))
    }

    /// Whether `date` is a partition of this dataset: a Saturday (weekly) or
    /// the 1st of a month (monthly), within `first ..= last`.
    pub fn check_partition(&self, date: NaiveDate) -> Result<(), String> {
        if crate::plan::round_down(self.cadence, date) != date {
            return Err(format!("{date} is not a {} partition date of {}", self.cadence, self.name));
        }
        if date < self.first || self.last.is_some_and(|l| date > l) {
            let last = self.last.map(|l| l.to_string()).unwrap_or_else(|| "now".into());
            return Err(format!("{date} is outside {}'s range {} .. {last}", self.name, self.first));
        }
        Ok(())
    }

    /// Output name of a column.
    pub fn output_name(col: &Column) -> String {
        col.name.clone().unwrap_or_else(|| snake_case(col.source.as_deref().unwrap_or_default()))
    }

    /// The era a partition belongs to (none for a file converted without a
    /// partition, or a dataset without eras).
    pub fn era(&self, date: Option<NaiveDate>) -> Option<&Era> {
        let date = date?;
        self.eras.iter().find(|e| e.contains(date))
    }

    /// The source names column `i` accepts in `era`.
    pub fn accepted_names<'a>(&'a self, i: usize, era: Option<&'a Era>) -> Vec<&'a str> {
        let col = &self.columns[i];
        if let Some(names) = era.and_then(|e| e.sources.get(&Self::output_name(col))) {
            return names.iter().map(String::as_str).collect();
        }
        col.source.iter().chain(&col.aliases).map(String::as_str).collect()
    }

    /// The output schema, one `name: type` per column, for display.
    pub fn schema_summary(&self) -> Vec<String> {
        let mut out: Vec<String> = self.columns.iter().map(|c| format!("{}: {}", Self::output_name(c), c.ty)).collect();
        out.extend(self.derived.iter().map(|d| format!("{}: {}", d.name, d.ty)));
        out
    }

    /// Checks the entry; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        if self.name.is_empty() || !self.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
            return Err(format!("field `name`: {:?} must be non-empty ASCII letters, digits, '-' or '_'", self.name));
        }
        self.validate_source()?;
        if let Some(last) = self.last
            && last < self.first
        {
            return Err(format!("field `last`: {last} is before `first` {}", self.first));
        }
        if !self.delimiter.is_ascii() {
            return Err(format!("field `delimiter`: {:?} is not one ASCII character", self.delimiter));
        }
        if self.columns.is_empty() {
            return Err("field `columns`: at least one column is needed".into());
        }
        if self.columns.len() + self.derived.len() > MAX_COLUMNS {
            return Err(format!(
                "field `columns`: {} columns, at most {MAX_COLUMNS} are supported",
                self.columns.len()
            ));
        }
        if !(1024..=1 << 30).contains(&self.max_record_bytes) {
            return Err(format!(
                "field `max_record_bytes`: {} must be between 1024 and 1073741824",
                self.max_record_bytes
            ));
        }
        for (field, v) in [
            ("max_downloads_per_host", self.max_downloads_per_host),
            ("max_requests_per_second_per_host", self.max_requests_per_second_per_host),
        ] {
            if !(1..=1000).contains(&v) {
                return Err(format!("field `{field}`: {v} must be between 1 and 1000"));
            }
        }
        if !(1..=7 * 86_400).contains(&self.not_published_retry_seconds) {
            return Err(format!(
                "field `not_published_retry_seconds`: {} must be between 1 and 604800 (a week)",
                self.not_published_retry_seconds
            ));
        }
        if self.not_published_patience_seconds > 366 * 86_400 {
            return Err(format!(
                "field `not_published_patience_seconds`: {} is more than a year",
                self.not_published_patience_seconds
            ));
        }
        if !(1..=86_400).contains(&self.max_retry_after_seconds) {
            return Err(format!(
                "field `max_retry_after_seconds`: {} must be between 1 and 86400 (a day)",
                self.max_retry_after_seconds
            ));
        }
        if self.checkpoint_interval == 0 {
            return Err("field `checkpoint_interval`: must be at least 1 (a checkpoint every N table versions)".into());
        }
        if self.max_slice_rows == 0 {
            return Err("field `max_slice_rows`: must be at least 1".into());
        }
        if self.max_source_bytes < 1024 {
            return Err(format!("field `max_source_bytes`: {} must be at least 1024", self.max_source_bytes));
        }
        let mut names = std::collections::HashSet::new();
        for (i, c) in self.columns.iter().enumerate() {
            if let Some(sep) = c.thousands {
                if !matches!(c.ty, ColumnType::Int64 | ColumnType::Float64) || self.format == SourceFormat::Parquet {
                    return Err(format!(
                        "field `columns[{i}].thousands`: a thousands separator is for int64 and float64 columns of CSV and Socrata sources"
                    ));
                }
                if !",. '_".contains(sep) || (sep == '.' && c.ty == ColumnType::Float64) {
                    return Err(format!(
                        "field `columns[{i}].thousands`: {sep:?} is not a thousands separator (use ',', '.', ' ', an apostrophe or '_'; '.' for int64 columns only)"
                    ));
                }
            }
            if c.source.is_none() && (self.format != SourceFormat::Parquet || c.name.is_none()) {
                return Err(format!(
                    "field `columns[{i}].source`: {}",
                    if self.format != SourceFormat::Parquet {
                        "every column of a CSV or Socrata dataset needs its source name"
                    } else {
                        "a column without a source needs a `name`"
                    }
                ));
            }
            let out = Self::output_name(c);
            if out.is_empty() {
                return Err(format!("field `columns[{i}].name`: empty output name for {:?}", c.source));
            }
            if !names.insert(out.clone()) {
                return Err(format!("field `columns[{i}].name`: duplicate output column {out:?}"));
            }
            match (c.ty, &c.format) {
                (ColumnType::Date | ColumnType::Timestamp, None) => {
                    return Err(format!("field `columns[{i}].format`: a {} column needs a format", c.ty));
                }
                (ColumnType::Date | ColumnType::Timestamp, Some(f)) => {
                    DateTimeFormat::compile(f).map_err(|e| format!("field `columns[{i}].format`: {e}"))?;
                }
                (_, Some(_)) => {
                    return Err(format!("field `columns[{i}].format`: only date and timestamp columns take a format"));
                }
                _ => {}
            }
            if self.missing_columns == MissingColumns::Null && !c.nullable {
                return Err(format!(
                    "field `columns[{i}].nullable`: missing_columns = \"null\" needs every column nullable"
                ));
            }
        }
        for (i, d) in self.derived.iter().enumerate() {
            if self.format == SourceFormat::Parquet {
                return Err(format!("field `derived[{i}]`: derived columns are for CSV and Socrata sources only"));
            }
            if d.ty != ColumnType::Timestamp && d.ty != ColumnType::Date {
                return Err(format!("field `derived[{i}].type`: must be date or timestamp"));
            }
            if !names.insert(d.name.clone()) {
                return Err(format!("field `derived[{i}].name`: duplicate output column {:?}", d.name));
            }
            for f in &d.from {
                if !self.columns.iter().any(|c| c.source.as_deref().is_some_and(|s| s.eq_ignore_ascii_case(f))) {
                    return Err(format!("field `derived[{i}].from`: {f:?} is not a source column"));
                }
            }
            DateTimeFormat::compile(&d.format).map_err(|e| format!("field `derived[{i}].format`: {e}"))?;
        }
        self.validate_mapping(&names)
    }

    /// Eras, aliases and policies: Parquet only; every source name goes to
    /// one output column in every era.
    fn validate_mapping(&self, outputs: &std::collections::HashSet<String>) -> Result<(), String> {
        if self.format != SourceFormat::Parquet {
            let parquet_only = [
                ("eras", !self.eras.is_empty()),
                ("missing_columns", self.missing_columns != MissingColumns::Fail),
                ("unknown_columns", self.unknown_columns != UnknownColumns::Fail),
                ("ignore_columns", !self.ignore_columns.is_empty()),
            ];
            if let Some((field, _)) = parquet_only.iter().find(|(_, set)| *set) {
                return Err(format!(
                    "field `{field}`: only for format = \"parquet\" (CSV headers, Socrata's too, are checked by position)"
                ));
            }
        }
        for (j, era) in self.eras.iter().enumerate() {
            if era.last.is_some_and(|l| l < era.first) {
                return Err(format!("field `eras[{j}].last`: before its `first` {}", era.first));
            }
            if let Some(prev) = self.eras[..j].iter().position(|p| {
                era.first <= p.last.unwrap_or(NaiveDate::MAX) && p.first <= era.last.unwrap_or(NaiveDate::MAX)
            }) {
                return Err(format!("field `eras[{j}]`: overlaps eras[{prev}]"));
            }
            if let Some(unknown) = era.sources.keys().find(|k| !outputs.contains(*k)) {
                return Err(format!("field `eras[{j}].sources`: {unknown:?} is not an output column"));
            }
        }
        let eras = std::iter::once(None).chain(self.eras.iter().map(Some));
        for era in eras {
            let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
            for i in 0..self.columns.len() {
                for n in self.accepted_names(i, era) {
                    let key = n.trim().to_ascii_lowercase();
                    if self.ignore_columns.iter().any(|g| g.eq_ignore_ascii_case(n)) {
                        return Err(format!("field `ignore_columns`: {n:?} is also a source of columns[{i}]"));
                    }
                    if let Some(&other) = seen.get(&key)
                        && other != i
                    {
                        let where_ = era.map(|e| format!(" in the era from {}", e.first)).unwrap_or_default();
                        return Err(format!(
                            "field `columns[{i}].aliases`: source name {n:?} goes to both {} and {}{where_}",
                            Self::output_name(&self.columns[other]),
                            Self::output_name(&self.columns[i])
                        ));
                    }
                    seen.insert(key, i);
                }
            }
        }
        Ok(())
    }
}

/// Most output columns of a dataset (every column holds a builder and a
/// Parquet column writer in memory).
pub const MAX_COLUMNS: usize = 10_000;

impl Dataset {
    /// The source: a URL template (CSV, Parquet) or `[dataset.socrata]`.
    fn validate_source(&self) -> Result<(), String> {
        let Some(s) = &self.socrata else {
            if self.format == SourceFormat::Socrata {
                return Err(
                    "field `socrata`: a Socrata dataset needs [dataset.socrata] (portal, time_column, ids)".into()
                );
            }
            return self.validate_url_template();
        };
        if self.format != SourceFormat::Socrata {
            return Err("field `socrata`: only for format = \"socrata\"".into());
        }
        if !self.url_template.is_empty() {
            return Err("field `url_template`: a Socrata dataset has [dataset.socrata] instead".into());
        }
        if !crate::source::is_http(&s.portal) || s.portal.contains(['?', '#']) {
            return Err(format!(
                "field `socrata.portal`: {:?} must be an http:// or https:// URL",
                crate::text::bounded(&s.portal, 200)
            ));
        }
        let ident = |x: &str| !x.is_empty() && x.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !ident(&s.time_column) {
            return Err(format!("field `socrata.time_column`: {:?} is not a field name", s.time_column));
        }
        if let Some(c) = self.columns.iter().filter_map(|c| c.source.as_deref()).find(|c| !ident(c)) {
            return Err(format!("field `columns`: {c:?} is not a Socrata field name (letters, digits, _)"));
        }
        if s.ids.is_empty() {
            return Err("field `socrata.ids`: at least one dataset id is needed".into());
        }
        if !(100..=500_000).contains(&s.page_rows) {
            return Err(format!("field `socrata.page_rows`: {} must be between 100 and 500000", s.page_rows));
        }
        for (j, id) in s.ids.iter().enumerate() {
            let b = id.id.as_bytes();
            if !(b.len() == 9 && b[4] == b'-' && b.iter().enumerate().all(|(k, c)| k == 4 || c.is_ascii_alphanumeric()))
            {
                return Err(format!("field `socrata.ids[{j}].id`: {:?} is not a Socrata id like wujg-7c2s", id.id));
            }
            if let Some(prev) = s.ids[..j].last()
                && prev.last.is_none_or(|l| l >= id.first)
            {
                return Err(format!(
                    "field `socrata.ids[{j}]`: starts before ids[{}] ends; list ids in date order",
                    j - 1
                ));
            }
        }
        if s.ids[0].first > self.first {
            return Err(format!(
                "field `socrata.ids[0].first`: {} is after the dataset's first partition {}",
                s.ids[0].first, self.first
            ));
        }
        Ok(())
    }

    /// `url_template`: an http(s) URL whose only `{...}` are known
    /// placeholders, and whose partitions all have their own URL over the
    /// whole available range (a template without the month would fetch one
    /// file for twelve monthly partitions).
    fn validate_url_template(&self) -> Result<(), String> {
        let t = &self.url_template;
        let field = "field `url_template`";
        if !crate::source::is_http(t) {
            return Err(format!("{field}: {:?} must be an http:// or https:// URL", crate::text::bounded(t, 200)));
        }
        let mut rest = t.as_str();
        while let Some(open) = rest.find('{') {
            let close =
                rest[open..].find('}').map(|c| open + c + 1).ok_or_else(|| format!("{field}: unclosed '{{'"))?;
            let ph = &rest[open..close];
            if !PLACEHOLDERS.contains(&ph) {
                return Err(format!("{field}: unknown placeholder {ph} (use {})", PLACEHOLDERS.join(" ")));
            }
            rest = &rest[close..];
        }
        if rest.contains('}') || !PLACEHOLDERS.iter().any(|p| t.contains(p)) {
            return Err(format!("{field}: has no date placeholder ({})", PLACEHOLDERS.join(" ")));
        }
        let end = self.last.unwrap_or_else(|| chrono::Local::now().date_naive());
        let mut seen: std::collections::HashMap<String, NaiveDate> = std::collections::HashMap::new();
        let mut d = crate::plan::round_down(self.cadence, self.first);
        for _ in 0..MAX_CHECKED_PARTITIONS {
            if d > end {
                break;
            }
            if let Some(prev) = seen.insert(self.source_url(d), d) {
                return Err(format!(
                    "{field}: partitions {prev} and {d} would both fetch {}; add the placeholder that tells them apart ({})",
                    self.source_url(d),
                    match self.cadence {
                        Cadence::Daily | Cadence::Weekly => "{dd} or {yymmdd}",
                        Cadence::Monthly => "{mm}",
                    }
                ));
            }
            d = crate::plan::next(self.cadence, d);
        }
        Ok(())
    }
}

/// `host:port` of an http(s) URL (the default port when it has none).
pub fn host_of(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => format!("{}:{}", u.host_str().unwrap_or(""), u.port_or_known_default().unwrap_or(0)),
        Err(_) => String::new(),
    }
}

/// The last path segment of a URL (ignoring query and fragment).
pub fn file_name(url: &str) -> &str {
    let end = url.find(['?', '#']).unwrap_or(url.len());
    let path = &url[..end];
    path.rsplit('/').next().unwrap_or(path)
}

/// `VendorID` -> `vendor_id`, `C/A` -> `c_a`, `EXITS      ` -> `exits`.
pub fn snake_case(s: &str) -> String {
    let mut out = String::new();
    let chars: Vec<char> = s.trim().chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_alphanumeric() {
            let boundary = c.is_ascii_uppercase()
                && i > 0
                && (chars[i - 1].is_ascii_lowercase()
                    || (chars[i - 1].is_ascii_uppercase() && chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase())));
            if boundary && !out.ends_with('_') && !out.is_empty() {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('_') && !out.is_empty() {
            out.push('_');
        }
    }
    out.trim_end_matches('_').to_string()
}

/// Error loading a user catalog: names the file, the entry and the field.
#[derive(Debug, thiserror::Error)]
#[error("catalog {path}: {message}")]
pub struct CatalogError {
    pub path: String,
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    #[serde(default)]
    dataset: Vec<toml::Value>,
}

/// All known datasets, by name.
#[derive(Debug, Clone)]
pub struct Catalog {
    datasets: BTreeMap<String, Dataset>,
}

/// The built-in datasets, in the user catalog format.
const BUILTIN: &str = include_str!("builtin.toml");

/// Parses and validates the entries of a catalog file's text.
fn parse_entries(text: &str, path: &str) -> Result<Vec<Dataset>, CatalogError> {
    let err = |message: String| CatalogError { path: path.to_string(), message };
    let file: CatalogFile = toml::from_str(text).map_err(|e| err(e.to_string().trim().to_string()))?;
    let mut out: Vec<Dataset> = Vec::new();
    for (i, value) in file.dataset.into_iter().enumerate() {
        let entry_name = value
            .get("name")
            .and_then(|v| v.as_str())
            .map(|s| format!("dataset {s:?}"))
            .unwrap_or_else(|| format!("[[dataset]] #{}", i + 1));
        let ds: Dataset =
            value.try_into().map_err(|e: toml::de::Error| err(format!("{entry_name}: {}", e.message().trim())))?;
        ds.validate().map_err(|m| err(format!("{entry_name}: {m}")))?;
        // One file, one entry per name: the last one silently winning would
        // hide an edit made to the other.
        if let Some(first) = out.iter().position(|d| d.name == ds.name) {
            return Err(err(format!(
                "{entry_name} is defined twice: [[dataset]] #{} and #{}; keep one entry per name",
                first + 1,
                i + 1
            )));
        }
        out.push(ds);
    }
    Ok(out)
}

impl Catalog {
    /// The built-in datasets (`builtin.toml`, compiled in).
    pub fn builtin() -> Self {
        let entries = parse_entries(BUILTIN, "(built-in)").expect("the built-in catalog is valid (unit-tested)");
        Catalog { datasets: entries.into_iter().map(|d| (d.name.clone(), d)).collect() }
    }

    /// Built-ins plus the entries of `path` (which override by name).
    pub fn with_file(path: &Path) -> Result<Self, CatalogError> {
        let mut cat = Self::builtin();
        let label = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| CatalogError { path: label.clone(), message: format!("cannot read: {e}") })?;
        for ds in parse_entries(&text, &label)? {
            cat.datasets.insert(ds.name.clone(), ds);
        }
        for ds in cat.datasets.values() {
            if let Some(next) = &ds.successor
                && !cat.datasets.contains_key(next)
            {
                return Err(CatalogError {
                    path: label,
                    message: format!("dataset {:?}: field `successor`: no dataset {next:?} in the catalog", ds.name),
                });
            }
        }
        Ok(cat)
    }

    /// Loads from `path` when given, else the built-ins.
    pub fn load(path: Option<&Path>) -> Result<Self, CatalogError> {
        match path {
            Some(p) => Self::with_file(p),
            None => Ok(Self::builtin()),
        }
    }

    pub fn get(&self, name: &str) -> Option<&Dataset> {
        self.datasets.get(name)
    }

    /// Like [`get`](Self::get) with an error that lists the known names.
    pub fn require(&self, name: &str) -> Result<&Dataset, String> {
        self.get(name).ok_or_else(|| format!("unknown dataset {name:?}; known datasets: {}", self.names().join(", ")))
    }

    pub fn names(&self) -> Vec<String> {
        self.datasets.keys().cloned().collect()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Dataset> {
        self.datasets.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_validate_and_name_their_files() {
        let cat = Catalog::builtin();
        for d in cat.iter() {
            d.validate().unwrap_or_else(|e| panic!("{}: {e}", d.name));
        }
        let mta = cat.get("mta-turnstile").unwrap();
        let sat = NaiveDate::from_ymd_opt(2022, 1, 8).unwrap();
        assert_eq!(mta.source_url(sat), "http://web.mta.info/developers/data/nyct/turnstile/turnstile_220108.txt");
        assert_eq!(mta.object_key(sat), "mta-turnstile/year=2022/mta-turnstile_2022-01-08.parquet");
        assert_eq!(mta.fetch_url(sat, Some("http://127.0.0.1:9/m/")), "http://127.0.0.1:9/m/turnstile_220108.txt");
        assert!(mta.check_partition(sat).is_ok());
        assert!(mta.check_partition(sat.succ_opt().unwrap()).unwrap_err().contains("not a weekly"));
        assert!(mta.check_partition(NaiveDate::from_ymd_opt(2010, 1, 2).unwrap()).unwrap_err().contains("outside"));
        let y = cat.get("nyc-tlc-yellow").unwrap();
        let m = NaiveDate::from_ymd_opt(2019, 3, 1).unwrap();
        assert_eq!(y.format, SourceFormat::Parquet);
        assert_eq!(y.source_url(m), "https://d37ci6vzurychx.cloudfront.net/trip-data/yellow_tripdata_2019-03.parquet");
        assert_eq!(y.object_key(m), "nyc-tlc-yellow/year=2019/nyc-tlc-yellow_2019-03.parquet");
        let dtc = cat.get("dtc-nyc-tlc-yellow").unwrap();
        assert_eq!(dtc.format, SourceFormat::Csv);
        assert_eq!(
            dtc.source_url(m),
            "https://github.com/DataTalksClub/nyc-tlc-data/releases/download/yellow/yellow_tripdata_2019-03.csv.gz"
        );
        for (name, first) in [
            ("nyc-tlc-yellow", "2009-01-01"),
            ("nyc-tlc-green", "2013-08-01"),
            ("nyc-tlc-fhv", "2015-01-01"),
            ("nyc-tlc-fhvhv", "2019-02-01"),
        ] {
            assert_eq!(cat.get(name).unwrap().first.to_string(), first, "{name}");
        }
    }

    #[test]
    fn socrata_partitions_are_slices_of_the_id_that_holds_them() {
        let cat = Catalog::builtin();
        let r = cat.get("mta-subway-hourly-ridership").unwrap();
        let q = r.socrata_query("2024-12-01".parse().unwrap(), None).unwrap();
        assert_eq!(
            (q.id.as_str(), q.start.to_string(), q.end.to_string()),
            ("wujg-7c2s", "2024-12-01".into(), "2025-01-01".into())
        );
        assert_eq!(r.socrata_query("2025-01-01".parse().unwrap(), None).unwrap().id, "5wq4-mkjj");
        let url = r.source_url("2024-12-01".parse().unwrap());
        assert!(
            url.starts_with("https://data.ny.gov/resource/wujg-7c2s.csv?%24select=transit_timestamp%2Ctransit_mode"),
            "{url}"
        );
        assert!(url.contains("transit_timestamp+%3E%3D+%272024-12-01T00%3A00%3A00%27+AND+transit_timestamp+%3C+%272025-01-01T00%3A00%3A00%27"), "{url}");
        let m = r.fetch_url("2024-12-01".parse().unwrap(), Some("http://127.0.0.1:9/"));
        assert!(m.starts_with("http://127.0.0.1:9/resource/wujg-7c2s.csv?"), "{m}");
        assert!(q.page_url(50_000, 100_000).ends_with("&%24limit=50000&%24offset=100000"));
        assert!(q.count_url().starts_with("https://data.ny.gov/resource/wujg-7c2s.json?%24select=count%28*%29+AS+n&"));
        // Weekly slices are the seven days before the Saturday, as the MTA's weekly files.
        let mut w = r.clone();
        w.cadence = Cadence::Weekly;
        let q = w.socrata_query("2024-12-07".parse().unwrap(), None).unwrap();
        assert_eq!((q.start.to_string(), q.end.to_string()), ("2024-11-30".into(), "2024-12-07".into()));
    }

    #[test]
    fn socrata_entries_are_checked() {
        let base = "cadence = \"daily\"\nformat = \"socrata\"";
        let cols = r#"{ source = "t", type = "timestamp", format = "%Y-%m-%dT%H:%M:%S%.f" }"#;
        let soc = |ids: &str| {
            format!(
                "{base}\n[dataset.socrata]\nportal = \"https://data.example.org\"\ntime_column = \"t\"\nids = [ {ids} ]"
            )
        };
        let e = socrata_error(&soc(r#"{ id = "abcd-1234", first = "2020-01-01" }"#), cols);
        assert_eq!(e, "");
        let e = socrata_error(&soc(r#"{ id = "abcd1234", first = "2020-01-01" }"#), cols);
        assert!(e.contains("socrata.ids[0].id") && e.contains("not a Socrata id"), "{e}");
        let e = socrata_error(
            &soc(r#"{ id = "abcd-1234", first = "2020-01-01" }, { id = "efgh-5678", first = "2021-01-01" }"#),
            cols,
        );
        assert!(e.contains("socrata.ids[1]") && e.contains("starts before ids[0] ends"), "{e}");
        let e = socrata_error(base, cols);
        assert!(e.contains("needs [dataset.socrata]"), "{e}");
        let e = socrata_error(
            &soc(r#"{ id = "abcd-1234", first = "2020-01-01" }"#),
            r#"{ source = "a b", type = "string" }"#,
        );
        assert!(e.contains("\"a b\" is not a Socrata field name"), "{e}");
    }

    fn socrata_error(extra: &str, columns: &str) -> String {
        load_error(&format!("[[dataset]]\nname = \"s\"\nfirst = \"2020-01-01\"\ncolumns = [ {columns} ]\n{extra}\n"))
    }

    /// `toml` written as a user catalog file, under a name unique to the test process.
    fn catalog_file(name: &str, toml: &str) -> std::path::PathBuf {
        use std::sync::atomic::{AtomicU32, Ordering};
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "lakefleet-cat-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, toml).unwrap();
        path
    }

    /// The error of loading `toml` as a user catalog (empty when it loads).
    fn load_error(toml: &str) -> String {
        Catalog::with_file(&catalog_file("c.toml", toml)).err().map(|e| e.to_string()).unwrap_or_default()
    }

    #[test]
    fn a_feed_that_ended_names_the_dataset_that_continues_it() {
        let cat = Catalog::builtin();
        for ds in cat.iter() {
            if let Some(next) = &ds.successor {
                assert!(cat.get(next).is_some(), "{}: successor {next}", ds.name);
                assert!(ds.last.is_some(), "{}: a successor without a last partition", ds.name);
            }
        }
        let mta = cat.get("mta-turnstile").unwrap();
        assert_eq!(mta.last, Some("2023-05-06".parse().unwrap()));
        assert!(mta.ended().unwrap().contains("dataset mta-subway-hourly-ridership continues its data"));
    }

    #[test]
    fn a_name_defined_twice_is_refused_naming_both_entries() {
        let entry = |desc: &str| {
            format!(
                "[[dataset]]\nname = \"twice\"\ndescription = \"{desc}\"\ncadence = \"monthly\"\nurl_template = \"http://127.0.0.1:1/{{yyyy}}-{{mm}}.csv\"\nfirst = \"2020-01-01\"\ncolumns = [ {{ source = \"a\", type = \"string\" }} ]\n"
            )
        };
        let e = load_error(&format!("{}{}", entry("one"), entry("two")));
        assert!(e.contains("dataset \"twice\" is defined twice: [[dataset]] #1 and #2"), "{e}");
        assert_eq!(load_error(&entry("one")), "");
    }

    #[test]
    fn eras_override_the_names_a_column_accepts() {
        let cat = Catalog::builtin();
        let y = cat.get("nyc-tlc-yellow").unwrap();
        let idx = |n: &str| y.columns.iter().position(|c| Dataset::output_name(c) == n).unwrap();
        let at = |s: &str| y.era(Some(s.parse().unwrap()));
        assert_eq!(y.accepted_names(idx("payment_type"), at("2009-05-01")), Vec::<&str>::new());
        assert_eq!(y.accepted_names(idx("payment_type_name"), at("2009-05-01")), ["Payment_Type"]);
        assert_eq!(y.accepted_names(idx("vendor_name"), at("2010-02-01")), ["vendor_id"]);
        assert_eq!(y.accepted_names(idx("payment_type"), at("2023-02-01")), ["payment_type"]);
        assert_eq!(
            y.accepted_names(idx("pickup_datetime"), at("2023-02-01")),
            ["tpep_pickup_datetime", "Trip_Pickup_DateTime", "pickup_datetime"]
        );
        assert!(y.era(None).is_none());
    }

    fn entry_error(extra: &str, columns: &str) -> String {
        load_error(&format!(
            "[[dataset]]\nname = \"mine\"\ncadence = \"monthly\"\nurl_template = \"http://h/{{yyyy}}-{{mm}}.parquet\"\nfirst = \"2020-01-01\"\ncolumns = [ {columns} ]\n{extra}\n"
        ))
    }

    #[test]
    fn mappings_that_send_a_name_to_two_columns_are_refused() {
        let two = r#"{ name = "a", source = "A", type = "int64" }, { name = "b", source = "x", aliases = ["a"], type = "int64" }"#;
        let e = entry_error("format = \"parquet\"", two);
        assert!(e.contains("source name \"a\" goes to both a and b"), "{e}");
        let e = entry_error("", r#"{ name = "a", type = "int64" }"#);
        assert!(e.contains("columns[0].source") && e.contains("needs its source name"), "{e}");
        let e = entry_error("missing_columns = \"null\"", r#"{ source = "a", type = "int64" }"#);
        assert!(e.contains("only for format = \"parquet\""), "{e}");
        let era = "format = \"parquet\"\n[[dataset.eras]]\nfirst = \"2020-01-01\"\nsources = { nope = [\"x\"] }";
        let e = entry_error(era, r#"{ source = "a", type = "int64" }"#);
        assert!(e.contains("eras[0].sources") && e.contains("\"nope\" is not an output column"), "{e}");
        let ok = "format = \"parquet\"\nmissing_columns = \"null\"\nunknown_columns = \"ignore\"";
        assert_eq!(entry_error(ok, r#"{ name = "a", source = "A", aliases = ["alpha"], type = "int64" }"#), "");
    }

    fn template_error(cadence: &str, template: &str) -> String {
        load_error(&format!(
            "[[dataset]]\nname = \"mine\"\ncadence = \"{cadence}\"\nurl_template = \"{template}\"\nfirst = \"2020-01-04\"\nlast = \"2021-12-25\"\ncolumns = [ {{ source = \"a\", type = \"string\" }} ]\n"
        ))
    }

    #[test]
    fn templates_whose_partitions_share_a_url_are_refused() {
        let e = template_error("monthly", "http://h/{yyyy}/data.csv");
        assert!(e.contains("partitions 2020-01-01 and 2020-02-01 would both fetch http://h/2020/data.csv"), "{e}");
        let e = template_error("weekly", "http://h/{yyyy}/{mm}/data.csv");
        assert!(e.contains("would both fetch") && e.contains("{dd}"), "{e}");
        let e = template_error("monthly", "http://h/get.csv?month={yyyy}-{month}");
        assert!(e.contains("unknown placeholder {month}"), "{e}");
        let e = template_error("monthly", "ftp://h/{yyyy}-{mm}.csv");
        assert!(e.contains("must be an http:// or https:// URL"), "{e}");
        assert_eq!(template_error("monthly", "http://h/get.csv?month={yyyy}-{mm}"), "");
        assert_eq!(template_error("weekly", "http://h/{yyyy}/{mm}/{dd}.csv"), "");
    }

    #[test]
    fn snake_case_normalises_headers() {
        assert_eq!(snake_case("VendorID"), "vendor_id");
        assert_eq!(snake_case("PULocationID"), "pu_location_id");
        assert_eq!(snake_case("EXITS                                                               "), "exits");
        assert_eq!(snake_case("C/A"), "c_a");
        assert_eq!(snake_case("tpep_pickup_datetime"), "tpep_pickup_datetime");
    }

    #[test]
    fn invalid_user_catalog_names_file_entry_and_field() {
        let path = catalog_file(
            "bad.toml",
            r#"
[[dataset]]
name = "mine"
cadence = "monthly"
url_template = "http://127.0.0.1/{yyyy}-{mm}.csv"
first = "2020-01-01"
columns = [ { source = "a", type = "date" } ]
"#,
        );
        let err = Catalog::with_file(&path).unwrap_err().to_string();
        assert!(err.contains("bad.toml"), "{err}");
        assert!(err.contains("dataset \"mine\""), "{err}");
        assert!(err.contains("columns[0].format"), "{err}");

        let err = load_error(
            "[[dataset]]\nname = \"x\"\ncadence = \"hourly\"\nurl_template = \"{yyyy}\"\nfirst = \"2020-01-01\"\ncolumns = []\n",
        );
        assert!(err.contains("dataset \"x\"") && err.contains("hourly"), "{err}");
    }

    #[test]
    fn user_catalog_adds_and_overrides() {
        let path = catalog_file(
            "ok.toml",
            r#"
[[dataset]]
name = "mine"
cadence = "monthly"
url_template = "http://127.0.0.1/data_{yyyy}-{mm}.csv"
first = "2020-01-01"
last = "2020-12-01"
columns = [ { source = "Id", type = "int64" }, { source = "When", type = "timestamp", format = "%Y-%m-%d %H:%M:%S" } ]
"#,
        );
        let cat = Catalog::with_file(&path).unwrap();
        let d = cat.get("mine").unwrap();
        assert_eq!(d.schema_summary(), vec!["id: int64", "when: timestamp"]);
        assert!(cat.get("mta-turnstile").is_some());
        assert!(cat.require("nope").unwrap_err().contains("mta-turnstile"));
    }
}
