//! A Socrata (SODA 2.1) time slice as one CSV: first the slice's `count(*)`,
//! then pages of `$limit` rows in a stable order (`$order=:id`) through the
//! same bounded channel as a file download, each page's header line dropped
//! after the first. The caller compares the rows it converted with the count:
//! a slice that changed while it was read is retried, never landed short.

use chrono::NaiveDate;
use tokio::sync::mpsc;

use super::{CHANNEL_CHUNKS, ChannelReader, Download, FetchError, Fetcher, describe, retry_after, send_body};

/// The query of one partition: which rows, which columns, from where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// `https://data.ny.gov` (or a backfill's mirror).
    pub portal: String,
    pub id: String,
    /// The fields, in the dataset's column order (the CSV header).
    pub select: Vec<String>,
    pub time_column: String,
    /// The slice: `start <= time_column < end`.
    pub start: NaiveDate,
    pub end: NaiveDate,
}

impl Query {
    fn where_clause(&self) -> String {
        let (c, f) = (&self.time_column, "%Y-%m-%dT%H:%M:%S");
        let (s, e) = (self.start.and_hms_opt(0, 0, 0).unwrap(), self.end.and_hms_opt(0, 0, 0).unwrap());
        format!("{c} >= '{}' AND {c} < '{}'", s.format(f), e.format(f))
    }

    fn build(&self, ext: &str, params: &[(&str, String)]) -> String {
        let mut url =
            url::Url::parse(&format!("{}/resource/{}.{ext}", self.portal, self.id)).expect("validated portal");
        url.query_pairs_mut().extend_pairs(params.iter().map(|(k, v)| (*k, v.as_str())));
        url.to_string()
    }

    /// The slice's CSV query without paging: what a task and the metadata carry.
    pub fn url(&self) -> String {
        self.build(
            "csv",
            &[("$select", self.select.join(",")), ("$where", self.where_clause()), ("$order", ":id".into())],
        )
    }

    /// `count(*)` of the slice.
    pub fn count_url(&self) -> String {
        self.build("json", &[("$select", "count(*) AS n".into()), ("$where", self.where_clause())])
    }

    /// One page of the slice.
    pub fn page_url(&self, limit: u64, offset: u64) -> String {
        self.build(
            "csv",
            &[
                ("$select", self.select.join(",")),
                ("$where", self.where_clause()),
                ("$order", ":id".into()),
                ("$limit", limit.to_string()),
                ("$offset", offset.to_string()),
            ],
        )
    }
}

/// The portal's own words for a failed request: the JSON `message`, or the
/// start of the body.
async fn status_error(url: &str, resp: reqwest::Response) -> FetchError {
    let status = resp.status().as_u16();
    let retry_after = retry_after(resp.headers());
    let body = resp.text().await.unwrap_or_default();
    let message = serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_string))
        .unwrap_or(body);
    let detail = (!message.trim().is_empty()).then(|| crate::text::bounded(message.trim(), 300));
    FetchError::Status { url: url.to_string(), status, retry_after, detail }
}

impl Fetcher {
    /// The number of rows in the slice.
    pub async fn socrata_count(&self, q: &Query) -> Result<u64, FetchError> {
        let url = q.count_url();
        let net = |e: reqwest::Error| FetchError::Network { url: url.clone(), message: describe(&e) };
        let resp = self.get(&url, true).send().await.map_err(net)?;
        if !resp.status().is_success() {
            return Err(status_error(&url, resp).await);
        }
        let bytes = resp.bytes().await.map_err(net)?;
        let body: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        // `[{"n": "1234"}]`: SODA returns numbers as strings.
        let n = body.get(0).and_then(|r| r.get("n")).and_then(|n| match n {
            serde_json::Value::String(s) => s.parse::<u64>().ok(),
            other => other.as_u64(),
        });
        n.ok_or_else(|| FetchError::Network {
            url: url.clone(),
            message: format!("unexpected count(*) answer {}", crate::text::bounded(&body.to_string(), 200)),
        })
    }

    /// Pages of `page_rows` until the page that holds the count's end (a
    /// short page), as one CSV with one header. The first page's failure is
    /// returned here (a 404 or 400 with the portal's message parks the task);
    /// a later one reaches the reader as an I/O error (transient).
    pub async fn socrata_pages(
        &self,
        q: &Query,
        count: u64,
        page_rows: u64,
        on_chunk: impl Fn(usize) + Send + Sync + 'static,
    ) -> Result<Download, FetchError> {
        let first_url = q.page_url(page_rows, 0);
        let net = |e: reqwest::Error| FetchError::Network { url: first_url.clone(), message: describe(&e) };
        let mut first = self.get(&first_url, true).send().await.map_err(net)?;
        if !first.status().is_success() {
            return Err(status_error(&first_url, first).await);
        }
        let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
        let (me, q) = (self.clone(), q.clone());
        let pages = count / page_rows + 1;
        let pump = tokio::spawn(async move {
            if !send_body(&mut first, &tx, &first_url, &on_chunk, false).await {
                return;
            }
            for k in 1..pages {
                let url = q.page_url(page_rows, k * page_rows);
                let failed = match me.get(&url, true).send().await {
                    Ok(mut r) if r.status().is_success() => {
                        if !send_body(&mut r, &tx, &url, &on_chunk, true).await {
                            return;
                        }
                        continue;
                    }
                    Ok(r) => status_error(&url, r).await.to_string(),
                    Err(e) => format!("{url}: {}", describe(&e)),
                };
                let _ = tx.send(Err(std::io::Error::other(failed))).await;
                return;
            }
        });
        Ok(Download { reader: ChannelReader::new(rx), pump, content_length: None, validators: Default::default() })
    }
}
