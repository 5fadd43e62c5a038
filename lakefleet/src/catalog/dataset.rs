//! What a dataset derives from a partition's date: its source URL (or
//! Socrata slice), object key, label and era, and the names its columns accept.

use chrono::NaiveDate;

use super::{Cadence, Column, ColumnType, Dataset, Era};

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
            _ => (date, super::cadence::next(self.cadence, date)),
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

    /// The partition's label: `2022-01-08` (daily, weekly), `2019-03` (monthly).
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

    /// Whether `date` is a partition of this dataset: any day (daily), a
    /// Saturday (weekly) or the 1st of a month (monthly), within `first ..= last`.
    pub fn check_partition(&self, date: NaiveDate) -> Result<(), String> {
        if super::cadence::round_down(self.cadence, date) != date {
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
