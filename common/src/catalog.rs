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

/// Bumped when the output schema of a built-in dataset changes; written into
/// every Parquet file as `lakefleet.schema_version`.
pub const BUILTIN_SCHEMA_VERSION: u32 = 1;

/// How often a dataset publishes one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Cadence {
    /// One file per week, dated on its Saturday.
    Weekly,
    /// One file per calendar month, dated on the 1st.
    Monthly,
}

impl std::fmt::Display for Cadence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
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
    /// Header name in the source file (compared trimmed, case-insensitively).
    pub source: String,
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

/// One catalog entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dataset {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub cadence: Cadence,
    /// Placeholders: `{yyyy}`, `{yy}`, `{mm}`, `{dd}`, `{yymmdd}`.
    pub url_template: String,
    /// First available partition.
    pub first: NaiveDate,
    /// Last available partition; none means "still publishing".
    #[serde(default)]
    pub last: Option<NaiveDate>,
    /// Why partitions before `first` are refused, shown to the user.
    #[serde(default)]
    pub before_first_note: Option<String>,
    #[serde(default = "default_delimiter")]
    pub delimiter: char,
    #[serde(default = "default_schema_version")]
    pub schema_version: u32,
    /// The longest CSV record (or header line) accepted, in bytes; a longer
    /// one fails the partition as `bad_row` instead of growing memory.
    #[serde(default = "default_max_record_bytes")]
    pub max_record_bytes: u64,
    /// The largest source accepted, decompressed, in bytes (a gzip bomb
    /// stops here and is parked as `too_large`).
    #[serde(default = "default_max_source_bytes")]
    pub max_source_bytes: u64,
    /// Whether a source with a header and no rows is a valid (empty)
    /// partition; otherwise it is parked as `empty_source`.
    #[serde(default)]
    pub allow_empty: bool,
    pub columns: Vec<Column>,
    #[serde(default)]
    pub derived: Vec<Derived>,
}

impl Dataset {
    /// Official source URL of the partition dated `date`.
    pub fn source_url(&self, date: NaiveDate) -> String {
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

    /// The URL a worker fetches: the official one, or `{mirror}/{official file name}`.
    pub fn fetch_url(&self, date: NaiveDate, mirror: Option<&str>) -> String {
        let official = self.source_url(date);
        match mirror {
            Some(m) => format!("{}/{}", m.trim_end_matches('/'), file_name(&official)),
            None => official,
        }
    }

    /// The partition's label: `2022-01-08` (weekly), `2019-03` (monthly).
    pub fn partition_label(&self, date: NaiveDate) -> String {
        match self.cadence {
            Cadence::Weekly => date.format("%Y-%m-%d").to_string(),
            Cadence::Monthly => date.format("%Y-%m").to_string(),
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
        col.name.clone().unwrap_or_else(|| snake_case(&col.source))
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
        self.validate_url_template()?;
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
        if self.max_source_bytes < 1024 {
            return Err(format!("field `max_source_bytes`: {} must be at least 1024", self.max_source_bytes));
        }
        let mut names = std::collections::HashSet::new();
        for (i, c) in self.columns.iter().enumerate() {
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
        }
        for (i, d) in self.derived.iter().enumerate() {
            if d.ty != ColumnType::Timestamp && d.ty != ColumnType::Date {
                return Err(format!("field `derived[{i}].type`: must be date or timestamp"));
            }
            if !names.insert(d.name.clone()) {
                return Err(format!("field `derived[{i}].name`: duplicate output column {:?}", d.name));
            }
            for f in &d.from {
                if !self.columns.iter().any(|c| c.source.eq_ignore_ascii_case(f)) {
                    return Err(format!("field `derived[{i}].from`: {f:?} is not a source column"));
                }
            }
            DateTimeFormat::compile(&d.format).map_err(|e| format!("field `derived[{i}].format`: {e}"))?;
        }
        Ok(())
    }
}

/// Most output columns of a dataset (every column holds a builder and a
/// Parquet column writer in memory).
pub const MAX_COLUMNS: usize = 10_000;

impl Dataset {
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
                        Cadence::Weekly => "{dd} or {yymmdd}",
                        Cadence::Monthly => "{mm}",
                    }
                ));
            }
            d = crate::plan::next(self.cadence, d);
        }
        Ok(())
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

impl Catalog {
    /// The built-in datasets.
    pub fn builtin() -> Self {
        let mut datasets = BTreeMap::new();
        for d in builtin_datasets() {
            datasets.insert(d.name.clone(), d);
        }
        Catalog { datasets }
    }

    /// Built-ins plus the entries of `path` (which override by name).
    pub fn with_file(path: &Path) -> Result<Self, CatalogError> {
        let mut cat = Self::builtin();
        let err = |message: String| CatalogError { path: path.display().to_string(), message };
        let text = std::fs::read_to_string(path).map_err(|e| err(format!("cannot read: {e}")))?;
        let file: CatalogFile = toml::from_str(&text).map_err(|e| err(e.to_string().trim().to_string()))?;
        for (i, value) in file.dataset.into_iter().enumerate() {
            let entry_name = value
                .get("name")
                .and_then(|v| v.as_str())
                .map(|s| format!("dataset {s:?}"))
                .unwrap_or_else(|| format!("[[dataset]] #{}", i + 1));
            let ds: Dataset =
                value.try_into().map_err(|e: toml::de::Error| err(format!("{entry_name}: {}", e.message().trim())))?;
            ds.validate().map_err(|m| err(format!("{entry_name}: {m}")))?;
            cat.datasets.insert(ds.name.clone(), ds);
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

fn col(source: &str, name: &str, ty: ColumnType, format: Option<&str>) -> Column {
    Column { source: source.into(), name: Some(name.into()), ty, format: format.map(Into::into), nullable: true }
}

const TLC_TS: &str = "%Y-%m-%d %H:%M:%S";

fn tlc(color: &str, description: &str, columns: Vec<Column>) -> Dataset {
    Dataset {
        name: format!("nyc-tlc-{color}"),
        description: description.into(),
        cadence: Cadence::Monthly,
        url_template: format!(
            "https://github.com/DataTalksClub/nyc-tlc-data/releases/download/{color}/{color}_tripdata_{{yyyy}}-{{mm}}.csv.gz"
        ),
        first: NaiveDate::from_ymd_opt(2019, 1, 1).unwrap(),
        last: Some(NaiveDate::from_ymd_opt(2021, 7, 1).unwrap()),
        before_first_note: Some("the DataTalksClub nyc-tlc-data mirror starts in January 2019".into()),
        delimiter: ',',
        schema_version: BUILTIN_SCHEMA_VERSION,
        max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
        max_source_bytes: DEFAULT_MAX_SOURCE_BYTES,
        allow_empty: false,
        columns,
        derived: vec![],
    }
}

fn builtin_datasets() -> Vec<Dataset> {
    use ColumnType::*;
    let mta = Dataset {
        name: "mta-turnstile".into(),
        description: "NYC MTA subway turnstile counts, one file per week".into(),
        cadence: Cadence::Weekly,
        url_template: "http://web.mta.info/developers/data/nyct/turnstile/turnstile_{yymmdd}.txt".into(),
        first: NaiveDate::from_ymd_opt(2014, 10, 18).unwrap(),
        last: None,
        before_first_note: Some(
            "weeks before 2014-10-18 use an older wide layout (several readings per row) that this dataset does not read".into(),
        ),
        delimiter: ',',
        schema_version: BUILTIN_SCHEMA_VERSION,
        max_record_bytes: DEFAULT_MAX_RECORD_BYTES,
        max_source_bytes: DEFAULT_MAX_SOURCE_BYTES,
        allow_empty: false,
        columns: vec![
            col("C/A", "ca", String, None),
            col("UNIT", "unit", String, None),
            col("SCP", "scp", String, None),
            col("STATION", "station", String, None),
            col("LINENAME", "linename", String, None),
            col("DIVISION", "division", String, None),
            col("DATE", "date", Date, Some("%m/%d/%Y")),
            col("TIME", "time", String, None),
            col("DESC", "desc", String, None),
            col("ENTRIES", "entries", Int64, None),
            col("EXITS", "exits", Int64, None),
        ],
        derived: vec![Derived {
            name: "observed_at".into(),
            ty: Timestamp,
            from: vec!["DATE".into(), "TIME".into()],
            format: "%m/%d/%Y %H:%M:%S".into(),
        }],
    };
    let common_tail = |v: &mut Vec<Column>| {
        v.extend([
            col("fare_amount", "fare_amount", Float64, None),
            col("extra", "extra", Float64, None),
            col("mta_tax", "mta_tax", Float64, None),
            col("tip_amount", "tip_amount", Float64, None),
            col("tolls_amount", "tolls_amount", Float64, None),
        ]);
    };
    let mut yellow = vec![
        col("VendorID", "vendor_id", Int64, None),
        col("tpep_pickup_datetime", "pickup_datetime", Timestamp, Some(TLC_TS)),
        col("tpep_dropoff_datetime", "dropoff_datetime", Timestamp, Some(TLC_TS)),
        col("passenger_count", "passenger_count", Int64, None),
        col("trip_distance", "trip_distance", Float64, None),
        col("RatecodeID", "ratecode_id", Int64, None),
        col("store_and_fwd_flag", "store_and_fwd_flag", String, None),
        col("PULocationID", "pu_location_id", Int64, None),
        col("DOLocationID", "do_location_id", Int64, None),
        col("payment_type", "payment_type", Int64, None),
    ];
    common_tail(&mut yellow);
    yellow.extend([
        col("improvement_surcharge", "improvement_surcharge", Float64, None),
        col("total_amount", "total_amount", Float64, None),
        col("congestion_surcharge", "congestion_surcharge", Float64, None),
    ]);
    let mut green = vec![
        col("VendorID", "vendor_id", Int64, None),
        col("lpep_pickup_datetime", "pickup_datetime", Timestamp, Some(TLC_TS)),
        col("lpep_dropoff_datetime", "dropoff_datetime", Timestamp, Some(TLC_TS)),
        col("store_and_fwd_flag", "store_and_fwd_flag", String, None),
        col("RatecodeID", "ratecode_id", Int64, None),
        col("PULocationID", "pu_location_id", Int64, None),
        col("DOLocationID", "do_location_id", Int64, None),
        col("passenger_count", "passenger_count", Int64, None),
        col("trip_distance", "trip_distance", Float64, None),
    ];
    common_tail(&mut green);
    green.extend([
        col("ehail_fee", "ehail_fee", Float64, None),
        col("improvement_surcharge", "improvement_surcharge", Float64, None),
        col("total_amount", "total_amount", Float64, None),
        col("payment_type", "payment_type", Int64, None),
        col("trip_type", "trip_type", Int64, None),
        col("congestion_surcharge", "congestion_surcharge", Float64, None),
    ]);
    let fhv = vec![
        col("dispatching_base_num", "dispatching_base_num", String, None),
        col("pickup_datetime", "pickup_datetime", Timestamp, Some(TLC_TS)),
        col("dropOff_datetime", "dropoff_datetime", Timestamp, Some(TLC_TS)),
        col("PUlocationID", "pu_location_id", Int64, None),
        col("DOlocationID", "do_location_id", Int64, None),
        col("SR_Flag", "sr_flag", Int64, None),
        col("Affiliated_base_number", "affiliated_base_number", String, None),
    ];
    vec![
        mta,
        tlc("yellow", "NYC TLC yellow taxi trips, one gzip CSV per month", yellow),
        tlc("green", "NYC TLC green taxi trips, one gzip CSV per month", green),
        tlc("fhv", "NYC TLC for-hire vehicle trips, one gzip CSV per month", fhv),
    ]
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
        assert_eq!(
            y.source_url(m),
            "https://github.com/DataTalksClub/nyc-tlc-data/releases/download/yellow/yellow_tripdata_2019-03.csv.gz"
        );
        assert_eq!(y.object_key(m), "nyc-tlc-yellow/year=2019/nyc-tlc-yellow_2019-03.parquet");
    }

    fn template_error(cadence: &str, template: &str) -> String {
        let dir = std::env::temp_dir().join(format!("lakefleet-cat3-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{}.toml", template.len()));
        std::fs::write(
            &path,
            format!(
                "[[dataset]]\nname = \"mine\"\ncadence = \"{cadence}\"\nurl_template = \"{template}\"\nfirst = \"2020-01-04\"\nlast = \"2021-12-25\"\ncolumns = [ {{ source = \"a\", type = \"string\" }} ]\n"
            ),
        )
        .unwrap();
        Catalog::with_file(&path).err().map(|e| e.to_string()).unwrap_or_default()
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
        let dir = std::env::temp_dir().join(format!("lakefleet-cat-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.toml");
        std::fs::write(
            &path,
            r#"
[[dataset]]
name = "mine"
cadence = "monthly"
url_template = "http://127.0.0.1/{yyyy}-{mm}.csv"
first = "2020-01-01"
columns = [ { source = "a", type = "date" } ]
"#,
        )
        .unwrap();
        let err = Catalog::with_file(&path).unwrap_err().to_string();
        assert!(err.contains("bad.toml"), "{err}");
        assert!(err.contains("dataset \"mine\""), "{err}");
        assert!(err.contains("columns[0].format"), "{err}");

        std::fs::write(
            &path,
            "[[dataset]]\nname = \"x\"\ncadence = \"hourly\"\nurl_template = \"{yyyy}\"\nfirst = \"2020-01-01\"\ncolumns = []\n",
        )
        .unwrap();
        let err = Catalog::with_file(&path).unwrap_err().to_string();
        assert!(err.contains("dataset \"x\"") && err.contains("hourly"), "{err}");
    }

    #[test]
    fn user_catalog_adds_and_overrides() {
        let dir = std::env::temp_dir().join(format!("lakefleet-cat2-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("ok.toml");
        std::fs::write(
            &path,
            r#"
[[dataset]]
name = "mine"
cadence = "monthly"
url_template = "http://127.0.0.1/data_{yyyy}-{mm}.csv"
first = "2020-01-01"
last = "2020-12-01"
columns = [ { source = "Id", type = "int64" }, { source = "When", type = "timestamp", format = "%Y-%m-%d %H:%M:%S" } ]
"#,
        )
        .unwrap();
        let cat = Catalog::with_file(&path).unwrap();
        let d = cat.get("mine").unwrap();
        assert_eq!(d.schema_summary(), vec!["id: int64", "when: timestamp"]);
        assert!(cat.get("mta-turnstile").is_some());
        assert!(cat.require("nope").unwrap_err().contains("mta-turnstile"));
    }
}
