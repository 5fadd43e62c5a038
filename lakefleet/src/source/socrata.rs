//! A Socrata (SODA 2.1) time slice as one CSV: first the slice's `count(*)`,
//! then pages of `$limit` rows in a stable order (`$order=:id`) through the
//! same bounded channel as a file download, each page's header line dropped
//! after the first. The caller compares the rows it converted with the count:
//! a slice that changed while it was read is retried, never landed short.

use chrono::NaiveDate;
use tokio::sync::mpsc;

use super::{CHANNEL_CHUNKS, ChannelReader, Chunks, Download, FetchError, Fetcher, Pace, describe, retry_after};

/// The query of one partition: which rows, which columns, from where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Query {
    /// `https://data.ny.gov` (or a backfill's mirror).
    pub portal: String,
    pub id: String,
    /// The fields, in the dataset's column order (the CSV header).
    pub select: Vec<String>,
    /// Older spellings of some fields on this dataset id (field -> old
    /// name), used by [`aliased`](Self::aliased).
    pub aliases: std::collections::BTreeMap<String, String>,
    pub time_column: String,
    /// The slice: `start <= time_column < end`.
    pub start: NaiveDate,
    pub end: NaiveDate,
}

impl Query {
    /// The same slice selecting each field that has an older spelling as
    /// `old AS field` (the CSV header keeps the field's current name); `None`
    /// when no field has one.
    pub fn aliased(&self) -> Option<Query> {
        if !self.select.iter().any(|f| self.aliases.contains_key(f)) {
            return None;
        }
        let select = self
            .select
            .iter()
            .map(|f| match self.aliases.get(f) {
                Some(old) => format!("{old} AS {f}"),
                None => f.clone(),
            })
            .collect();
        Some(Query { select, aliases: Default::default(), ..self.clone() })
    }

    /// The names of the CSV header the query asks for (`old AS field` is `field`).
    pub fn header(&self) -> Vec<String> {
        self.select.iter().map(|f| f.rsplit(" AS ").next().unwrap_or(f).to_string()).collect()
    }

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
    let detail = (!message.trim().is_empty()).then(|| crate::util::text::bounded(message.trim(), 300));
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
            message: format!("unexpected count(*) answer {}", crate::util::text::bounded(&body.to_string(), 200)),
        })
    }

    /// Pages of `page_rows` until the count is reached, as one CSV with one
    /// header. The first page's HTTP failure is returned here (a 404 or 400
    /// with the portal's message parks the task); anything later reaches the
    /// reader as an I/O error (transient), and the pump stops at once:
    /// - a page that is not CSV (an HTML or JSON error page served with 200),
    ///   or whose header is not the first page's (the portal changed its
    ///   columns while it was read: rows would land under the wrong names);
    /// - a page with more rows than its `$limit` (a page that never ends);
    /// - an empty or short page before the count is reached (the slice
    ///   changed, or the count lies: never paged through to the timeout).
    ///
    /// Pages are joined by records: a page without a final newline is fine.
    /// `pace` is awaited before every page request: the host's rate limit.
    pub async fn socrata_pages(
        &self,
        q: &Query,
        count: u64,
        page_rows: u64,
        pace: Pace,
        on_chunk: impl Fn(usize) + Send + Sync + 'static,
    ) -> Result<Download, FetchError> {
        let first_url = q.page_url(page_rows, 0);
        let net = |e: reqwest::Error| FetchError::Network { url: first_url.clone(), message: describe(&e) };
        pace().await;
        let mut first = self.get(&first_url, true).send().await.map_err(net)?;
        if !first.status().is_success() {
            return Err(status_error(&first_url, first).await);
        }
        let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
        let (me, q) = (self.clone(), q.clone());
        let pump = tokio::spawn(async move {
            let header = q.header();
            let mut page = Page { tx: &tx, on_chunk: &on_chunk, select: &header, limit: page_rows };
            let Some(mut rows) = page.send(&mut first, &first_url, 0).await else { return };
            let mut k = 1;
            while rows < count {
                if rows < k * page_rows {
                    let _ = tx.send(Err(changed(&q.page_url(page_rows, (k - 1) * page_rows), k, rows, count))).await;
                    return;
                }
                let url = q.page_url(page_rows, k * page_rows);
                pace().await;
                let failed = match me.get(&url, true).send().await {
                    Ok(mut r) if r.status().is_success() => match page.send(&mut r, &url, k).await {
                        Some(n) => {
                            rows += n;
                            k += 1;
                            continue;
                        }
                        None => return,
                    },
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

/// The longest header line a page may have: a longer first line is not the
/// CSV asked for.
const MAX_HEADER_BYTES: usize = 64 << 10;

/// "The slice changed": page `k` (0-based `k - 1`) came back short or empty
/// before the count was reached.
fn changed(url: &str, pages: u64, rows: u64, count: u64) -> std::io::Error {
    std::io::Error::other(format!(
        "{url}: the slice changed while it was read (or its count lies): {pages} page(s) held {rows} rows, count(*) said {count}; stopped paging, it is read again"
    ))
}

/// One page's body into the channel: its header checked, its records
/// counted (a quote-aware newline count), its last record ended.
struct Page<'a, F> {
    tx: &'a Chunks,
    on_chunk: &'a F,
    select: &'a [String],
    limit: u64,
}

impl<F: Fn(usize) + Send + Sync> Page<'_, F> {
    /// Sends page `k` (0: its header goes through too); the number of rows
    /// it held, or `None` when the pump must stop (an error was sent, or the
    /// converter stopped reading).
    async fn send(&mut self, resp: &mut reqwest::Response, url: &str, k: u64) -> Option<u64> {
        let fail = |m: String| std::io::Error::other(format!("{url}: {m}"));
        let mut head: Vec<u8> = Vec::new();
        let (mut in_header, mut in_quotes, mut rows, mut last, mut total) = (true, false, 0u64, b'\n', 0u64);
        loop {
            let mut c = match resp.chunk().await {
                Ok(Some(c)) => c,
                Ok(None) => break,
                Err(e) => {
                    let m = format!("download interrupted after {total} bytes of page {}: {}", k + 1, describe(&e));
                    let _ = self.tx.send(Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, fail(m)))).await;
                    return None;
                }
            };
            total += c.len() as u64;
            (self.on_chunk)(c.len());
            if in_header {
                let Some(i) = memchr::memchr(b'\n', &c) else {
                    head.extend_from_slice(&c);
                    if head.len() > MAX_HEADER_BYTES {
                        let m = not_csv(&head, k).unwrap_or_else(|| {
                            format!(
                                "page {}'s first line is longer than {MAX_HEADER_BYTES} bytes: not the CSV asked for",
                                k + 1
                            )
                        });
                        let _ = self.tx.send(Err(fail(m))).await;
                        return None;
                    }
                    continue;
                };
                head.extend_from_slice(&c[..=i]);
                c = c.slice(i + 1..);
                in_header = false;
                if let Err(m) = self.check_header(&head, k) {
                    let _ = self.tx.send(Err(fail(m))).await;
                    return None;
                }
                if k == 0 && self.tx.send(Ok(bytes::Bytes::from(std::mem::take(&mut head)))).await.is_err() {
                    return None;
                }
            }
            for (i, &b) in c.iter().enumerate() {
                if b == b'"' {
                    in_quotes = !in_quotes;
                } else if b == b'\n' && !in_quotes {
                    rows += 1;
                    if rows > self.limit {
                        let _ = self.tx.send(Ok(c.slice(..i + 1))).await;
                        let m = format!(
                            "the portal returned more rows than asked: page {} holds more than its $limit={}; stopped reading it",
                            k + 1,
                            self.limit
                        );
                        let _ = self.tx.send(Err(fail(m))).await;
                        return None;
                    }
                }
            }
            if let Some(&b) = c.last() {
                last = b;
            }
            if !c.is_empty() && self.tx.send(Ok(c)).await.is_err() {
                return None;
            }
        }
        if in_header && !head.is_empty() {
            // A header without rows or a final newline.
            if let Err(m) = self.check_header(&head, k) {
                let _ = self.tx.send(Err(fail(m))).await;
                return None;
            }
            if k == 0 && self.tx.send(Ok(bytes::Bytes::from(head))).await.is_err() {
                return None;
            }
            return Some(0);
        }
        if last != b'\n' {
            // The last record had no newline: end it, so that the next page's
            // first record is not glued to it.
            rows += 1;
            if self.tx.send(Ok(bytes::Bytes::from_static(b"\n"))).await.is_err() {
                return None;
            }
        }
        Some(rows)
    }

    /// A page's header against the selected columns: the first page's may
    /// differ (the converter's header check names what differs, as for a
    /// file); a later one may not, and no page may be something else than CSV.
    fn check_header(&self, head: &[u8], k: u64) -> Result<(), String> {
        let names = header_names(head);
        let same = names.len() == self.select.len()
            && names.iter().zip(self.select).all(|(a, b)| a.eq_ignore_ascii_case(b.trim()));
        if same {
            return Ok(());
        }
        if let Some(m) = not_csv(head, k) {
            return Err(m);
        }
        if k == 0 {
            return Ok(());
        }
        Err(format!(
            "the portal changed the columns while the slice was read: page {}'s header is [{}], the query selected [{}]; it is read again",
            k + 1,
            crate::util::text::bounded(&names.join(","), 300),
            self.select.join(",")
        ))
    }
}

/// The field names of a CSV header line (quotes and spaces trimmed).
fn header_names(head: &[u8]) -> Vec<String> {
    let line = String::from_utf8_lossy(head);
    line.trim_end_matches(['\n', '\r']).split(',').map(|f| f.trim().trim_matches('"').trim().to_string()).collect()
}

/// The sentence for a page that is an HTML or JSON document (a portal error
/// or maintenance page served with 200), quoting how it starts.
fn not_csv(head: &[u8], k: u64) -> Option<String> {
    let start = head.iter().position(|b| !b.is_ascii_whitespace()).map_or(&[][..], |i| &head[i..]);
    matches!(start.first(), Some(b'<' | b'{' | b'[')).then(|| {
        format!("page {} is not CSV: it starts with {}", k + 1, crate::util::text::quote(&start[..start.len().min(40)]))
    })
}
