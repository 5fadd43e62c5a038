//! Where source bytes come from. One file per kind of source:
//!
//! - here: HTTP(S) files ([`Fetcher`]), whose body the async side pulls and
//!   hands to the converter's thread through [`stream::ChannelReader`], a
//!   bounded channel (memory does not grow with the file). What the bytes
//!   are (CSV, Parquet) is the converters' business (`convert/`);
//! - [`socrata`]: a time slice of a Socrata dataset, counted, then paged
//!   into the same channel as one CSV.

pub mod socrata;
pub mod stream;

use std::time::Duration;

use tokio::sync::mpsc;

pub use stream::ChannelReader;

const CHANNEL_CHUNKS: usize = 32;

/// Why a download could not start.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// `detail`: what the server said (a Socrata portal's error message).
    #[error("{url}: HTTP {status}{}", detail.as_deref().map(|d| format!(": {d}")).unwrap_or_default())]
    Status { url: String, status: u16, retry_after: Option<Duration>, detail: Option<String> },
    #[error("{url}: {message}")]
    Network { url: String, message: String },
    /// Not a URL the fleet fetches (only http and https are).
    #[error("{url}: {message}")]
    Refused { url: String, message: String },
}

/// HTTP client with connect and read timeouts.
#[derive(Clone)]
pub struct Fetcher {
    client: reqwest::Client,
    /// Sent as `X-App-Token` to Socrata portals; never logged.
    app_token: Option<String>,
}

/// What a server said identifies a file's version: recorded with each
/// ingest, sent back by a refresh (If-None-Match, If-Modified-Since).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Validators {
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub content_length: Option<u64>,
}

impl Validators {
    fn of(h: &reqwest::header::HeaderMap, content_length: Option<u64>) -> Validators {
        let get = |k| {
            h.get(k)
                .and_then(|v: &reqwest::header::HeaderValue| v.to_str().ok())
                .map(|v| crate::util::text::bounded(v, 200))
        };
        Validators {
            etag: get(reqwest::header::ETAG),
            last_modified: get(reqwest::header::LAST_MODIFIED),
            content_length,
        }
    }

    /// Whether a conditional request can be made with them.
    pub fn usable(&self) -> bool {
        self.etag.is_some() || self.last_modified.is_some()
    }
}

/// A download under way: the body as a blocking reader, the task that pumps
/// it, and the length the server announced.
pub struct Download {
    pub reader: ChannelReader,
    pub pump: tokio::task::JoinHandle<()>,
    /// `Content-Length`, when the server sent one: a body of another length
    /// is a failed download (transient), never a source.
    pub content_length: Option<u64>,
    /// The file's ETag, Last-Modified and length, as the server sent them.
    pub validators: Validators,
}

/// The answer to a download: the body, or "not modified" (a refresh's
/// conditional request).
pub enum Opened {
    Body(Download),
    NotModified,
}

/// Whether `url` is one the fleet fetches: http:// or https://.
pub fn is_http(url: &str) -> bool {
    url.starts_with("http://") || url.starts_with("https://")
}

/// Parses `Retry-After` given in seconds.
fn retry_after(h: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = h.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

impl Fetcher {
    pub fn new(connect_timeout: Duration, read_timeout: Duration) -> anyhow::Result<Fetcher> {
        let client = reqwest::Client::builder()
            .connect_timeout(connect_timeout)
            .read_timeout(read_timeout)
            .user_agent(concat!("lakefleet/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Fetcher { client, app_token: None })
    }

    /// Sends `token` as `X-App-Token` on Socrata requests (`SOCRATA_APP_TOKEN`).
    pub fn with_app_token(mut self, token: Option<String>) -> Fetcher {
        self.app_token = token.filter(|t| !t.is_empty());
        self
    }

    /// Starts downloading `url`. The pump task ends with the body (or its
    /// failure, which the reader then returns).
    pub async fn open(
        &self,
        url: &str,
        on_chunk: impl Fn(usize) + Send + Sync + 'static,
    ) -> Result<Download, FetchError> {
        match self.open_if_changed(url, None, on_chunk).await? {
            Opened::Body(d) => Ok(d),
            Opened::NotModified => Err(FetchError::Network {
                url: url.to_string(),
                message: "304 Not Modified to an unconditional request".into(),
            }),
        }
    }

    /// Like [`open`](Self::open); with `since`, asks with If-None-Match /
    /// If-Modified-Since and returns `NotModified` on a 304.
    pub async fn open_if_changed(
        &self,
        url: &str,
        since: Option<&Validators>,
        on_chunk: impl Fn(usize) + Send + Sync + 'static,
    ) -> Result<Opened, FetchError> {
        let net = |e: reqwest::Error| FetchError::Network { url: url.to_string(), message: describe(&e) };
        if !is_http(url) {
            return Err(FetchError::Refused {
                url: crate::util::text::bounded(url, 200),
                message: "only http:// and https:// sources are fetched".into(),
            });
        }
        let mut req = self.get(url, false);
        if let Some(v) = since {
            if let Some(e) = &v.etag {
                req = req.header(reqwest::header::IF_NONE_MATCH, e);
            }
            if let Some(m) = &v.last_modified {
                req = req.header(reqwest::header::IF_MODIFIED_SINCE, m);
            }
        }
        let mut resp = req.send().await.map_err(net)?;
        let status = resp.status();
        if status == reqwest::StatusCode::NOT_MODIFIED && since.is_some() {
            return Ok(Opened::NotModified);
        }
        if !status.is_success() {
            return Err(FetchError::Status {
                url: url.to_string(),
                status: status.as_u16(),
                retry_after: retry_after(resp.headers()),
                detail: None,
            });
        }
        let content_length = resp.content_length();
        let validators = Validators::of(resp.headers(), content_length);
        let (tx, rx) = mpsc::channel(CHANNEL_CHUNKS);
        let url = url.to_string();
        let pump = tokio::spawn(async move {
            send_body(&mut resp, &tx, &url, &on_chunk).await;
        });
        Ok(Opened::Body(Download { reader: ChannelReader::new(rx), pump, content_length, validators }))
    }

    /// A GET with the app token when `socrata` (the token goes to portals only).
    fn get(&self, url: &str, socrata: bool) -> reqwest::RequestBuilder {
        let req = self.client.get(url);
        match (&self.app_token, socrata) {
            (Some(t), true) => req.header("X-App-Token", t),
            _ => req,
        }
    }
}

type Chunks = mpsc::Sender<std::io::Result<bytes::Bytes>>;

/// Awaited before each request of a multi-request source (a Socrata slice's
/// pages): the source host's fleet-wide rate limit.
pub type Pace = std::sync::Arc<dyn Fn() -> futures_util::future::BoxFuture<'static, ()> + Send + Sync>;

/// No pacing (tests, `worker convert`).
pub fn unpaced() -> Pace {
    std::sync::Arc::new(|| Box::pin(async {}))
}

/// Sends `resp`'s body into `tx`; false when the pump must stop (the body
/// failed, or the converter stopped reading).
async fn send_body(
    resp: &mut reqwest::Response,
    tx: &Chunks,
    url: &str,
    on_chunk: &(impl Fn(usize) + Send + Sync),
) -> bool {
    let mut total = 0u64;
    loop {
        match resp.chunk().await {
            Ok(Some(c)) => {
                total += c.len() as u64;
                on_chunk(c.len());
                if !c.is_empty() && tx.send(Ok(c)).await.is_err() {
                    return false; // the converter stopped reading
                }
            }
            Ok(None) => return true,
            Err(e) => {
                let msg = format!("{url}: download interrupted after {total} bytes: {}", describe(&e));
                let _ = tx.send(Err(std::io::Error::new(std::io::ErrorKind::UnexpectedEof, msg))).await;
                return false;
            }
        }
    }
}

/// reqwest's error with its causes, on one line.
fn describe(e: &reqwest::Error) -> String {
    let mut s = e.to_string();
    let mut src = std::error::Error::source(e);
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn retry_after_in_seconds() {
        let mut h = reqwest::header::HeaderMap::new();
        assert_eq!(super::retry_after(&h), None);
        h.insert(reqwest::header::RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(super::retry_after(&h), Some(std::time::Duration::from_secs(7)));
    }
}
