//! Checks of a catalog entry, each refusal naming the field: limits, the
//! columns and their mapping, the source (URL template, Socrata ids, eras).

use chrono::NaiveDate;

use super::*;
use crate::util::timefmt::DateTimeFormat;

impl Dataset {
    /// The zone of the sources' wall-clock times (`time_zone`): the zone
    /// they are read in when the table stores instants, and the zone whose
    /// clocks show a zone-aware source's instants when it keeps wall-clock
    /// times (`None`: none named).
    pub fn zone(&self) -> Option<chrono_tz::Tz> {
        self.time_zone.as_deref().and_then(|z| z.parse().ok())
    }

    /// The output columns that are timestamps.
    pub fn timestamp_columns(&self) -> Vec<String> {
        self.columns
            .iter()
            .filter(|c| c.ty == ColumnType::Timestamp)
            .map(Dataset::output_name)
            .chain(self.derived.iter().filter(|d| d.ty == ColumnType::Timestamp).map(|d| d.name.clone()))
            .collect()
    }

    fn validate_time_zone(&self) -> Result<(), String> {
        if let Some(z) = &self.time_zone
            && z.parse::<chrono_tz::Tz>().is_err()
        {
            return Err(format!(
                "field `time_zone`: {z:?} is not a time zone of the IANA database (e.g. \"America/New_York\", \"UTC\")"
            ));
        }
        let ts = self.timestamp_columns();
        if self.timestamps == Timestamps::Instant && self.time_zone.is_none() && !ts.is_empty() {
            return Err(format!(
                "field `time_zone`: the dataset has timestamp columns ({}) stored as instants: name the time zone its sources' wall-clock times are in (e.g. time_zone = \"America/New_York\", or \"UTC\"), or set timestamps = \"wall_clock\" to keep them as written (timestamp_ntz, which BigQuery cannot read)",
                ts.join(", ")
            ));
        }
        Ok(())
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
        self.validate_time_zone()?;
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
                crate::util::text::bounded(&s.portal, 200)
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
            return Err(format!(
                "{field}: {:?} must be an http:// or https:// URL",
                crate::util::text::bounded(t, 200)
            ));
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
        let mut d = super::cadence::round_down(self.cadence, self.first);
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
            d = super::cadence::next(self.cadence, d);
        }
        Ok(())
    }
}
