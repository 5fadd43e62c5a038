//! A fake of the Google Cloud Storage XML API endpoints that object_store's
//! GCS client uses, on 127.0.0.1, so that the lake on `gs://` is part of the
//! test suite without a cloud: PUT (with `x-goog-if-generation-match: 0` for
//! create-if-absent, and `x-goog-copy-source` for copies), GET and HEAD with
//! ranges, DELETE, `list-type=2` listing with prefix, delimiter, start-after
//! and continuation tokens, and multipart uploads (initiate, parts,
//! complete, abort). The client is pointed at it with `GOOGLE_BASE_URL`,
//! `GOOGLE_ALLOW_HTTP` and a static `GOOGLE_BEARER_TOKEN`, which every
//! request must carry (with a static token the client never asks the cloud
//! metadata server: [`Gcs::env`]).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Clone)]
struct Object {
    data: Vec<u8>,
    generation: u64,
    modified: chrono::DateTime<chrono::Utc>,
}

/// A multipart upload under way: bucket, object name, part number -> bytes.
type Upload = (String, String, BTreeMap<u32, Vec<u8>>);

#[derive(Default)]
struct State {
    /// (bucket, name) -> object.
    objects: BTreeMap<(String, String), Object>,
    /// upload id -> the upload's parts.
    uploads: HashMap<String, Upload>,
    generation: u64,
    /// Conditional creates refused with 412 (another writer's object was there).
    refused_creates: u64,
}

/// The fake server.
#[derive(Clone)]
pub struct Gcs {
    pub base: String,
    pub bucket: String,
    state: Arc<Mutex<State>>,
}

/// One request: method, decoded path, query pairs, headers, body.
struct Request {
    method: String,
    path: String,
    query: HashMap<String, String>,
    head: String,
    body: Vec<u8>,
}

async fn read_request(sock: &mut tokio::net::TcpStream) -> Option<Request> {
    let mut buf = Vec::with_capacity(8192);
    let mut chunk = vec![0u8; 65536];
    let end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > 1 << 20 {
            return None;
        }
        match sock.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(k) => buf.extend_from_slice(&chunk[..k]),
        }
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_string();
    let len: usize = crate::header(&head, "content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    let mut body = buf[end..].to_vec();
    while body.len() < len {
        match sock.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(k) => body.extend_from_slice(&chunk[..k]),
        }
    }
    body.truncate(len);
    let mut first = head.lines().next()?.split_whitespace();
    let method = first.next()?.to_string();
    let target = first.next()?.to_string();
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let path = percent_decode(path);
    let query = url::form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    Some(Request { method, path, query, head, body })
}

fn percent_decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
        .next()
        .map(|(_, v)| v.into_owned())
        .unwrap_or_default()
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

struct Reply {
    status: &'static str,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn reply(status: &'static str, body: impl Into<Vec<u8>>) -> Reply {
    Reply { status, headers: vec![], body: body.into() }
}

impl Gcs {
    pub async fn start() -> Gcs {
        let state: Arc<Mutex<State>> = Arc::default();
        let st = state.clone();
        let base = crate::serve(move |mut sock| {
            let st = st.clone();
            async move {
                let Some(req) = read_request(&mut sock).await else { return };
                let head_only = req.method == "HEAD";
                let r = Self::answer(&st, req);
                let mut out = format!("HTTP/1.1 {}\r\n", r.status);
                for (k, v) in &r.headers {
                    out.push_str(&format!("{k}: {v}\r\n"));
                }
                out.push_str(&format!("Content-Length: {}\r\nConnection: close\r\n\r\n", r.body.len()));
                let _ = sock.write_all(out.as_bytes()).await;
                if !head_only {
                    let _ = sock.write_all(&r.body).await;
                }
                let _ = sock.shutdown().await;
            }
        })
        .await;
        let bucket = format!("gcs-lake-{}", std::process::id());
        Gcs { base, bucket, state }
    }

    /// What a worker or producer needs to use `gs://{bucket}/...` here: the
    /// fake's address and a static token, so that the client never asks the
    /// cloud metadata server for credentials.
    pub fn env(&self) -> Vec<(String, String)> {
        [("GOOGLE_BASE_URL", self.base.as_str()), ("GOOGLE_ALLOW_HTTP", "true"), ("GOOGLE_BEARER_TOKEN", "test-token")]
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Conditional creates refused so far (412: an object was already there).
    pub fn refused_creates(&self) -> u64 {
        self.state.lock().unwrap().refused_creates
    }

    /// Object names under `prefix` in the bucket.
    pub fn names(&self, prefix: &str) -> Vec<String> {
        let s = self.state.lock().unwrap();
        s.objects.keys().filter(|(b, n)| *b == self.bucket && n.starts_with(prefix)).map(|(_, n)| n.clone()).collect()
    }

    fn object_headers(o: &Object) -> Vec<(String, String)> {
        vec![
            ("ETag".into(), format!("\"{}\"", o.generation)),
            ("x-goog-generation".into(), o.generation.to_string()),
            ("Last-Modified".into(), o.modified.format("%a, %d %b %Y %H:%M:%S GMT").to_string()),
            ("Content-Type".into(), "application/octet-stream".into()),
        ]
    }

    fn answer(st: &Mutex<State>, req: Request) -> Reply {
        let mut s = st.lock().unwrap();
        if crate::header(&req.head, "authorization").as_deref() != Some("Bearer test-token") {
            return reply("401 Unauthorized", "<Error><Code>AuthenticationRequired</Code></Error>");
        }
        let path = req.path.trim_start_matches('/');
        let (bucket, name) = match path.split_once('/') {
            Some((b, n)) => (b.to_string(), n.to_string()),
            None => (path.to_string(), String::new()),
        };
        let key = (bucket.clone(), name.clone());
        let now = chrono::Utc::now();
        match (req.method.as_str(), name.is_empty()) {
            ("GET", true) if req.query.get("list-type").map(String::as_str) == Some("2") => {
                Self::list(&s, &bucket, &req.query)
            }
            ("POST", false) if req.query.contains_key("uploads") => {
                let id = format!("upload-{}", s.uploads.len() + 1);
                s.uploads.insert(id.clone(), (bucket.clone(), name.clone(), BTreeMap::new()));
                let body = format!(
                    "<?xml version=\"1.0\" encoding=\"UTF-8\"?><InitiateMultipartUploadResult><Bucket>{}</Bucket><Key>{}</Key><UploadId>{id}</UploadId></InitiateMultipartUploadResult>",
                    xml_escape(&bucket),
                    xml_escape(&name)
                );
                reply("200 OK", body)
            }
            ("POST", false) if req.query.contains_key("uploadId") => {
                let Some((_, _, parts)) = s.uploads.remove(&req.query["uploadId"]) else {
                    return reply("404 Not Found", "<Error><Code>NoSuchUpload</Code></Error>");
                };
                s.generation += 1;
                let o =
                    Object { data: parts.into_values().flatten().collect(), generation: s.generation, modified: now };
                let etag = format!("\"{}\"", o.generation);
                let mut r = reply(
                    "200 OK",
                    format!(
                        "<?xml version=\"1.0\" encoding=\"UTF-8\"?><CompleteMultipartUploadResult><Bucket>{}</Bucket><Key>{}</Key><ETag>{}</ETag></CompleteMultipartUploadResult>",
                        xml_escape(&bucket),
                        xml_escape(&name),
                        xml_escape(&etag)
                    ),
                );
                r.headers.push(("x-goog-generation".into(), o.generation.to_string()));
                s.objects.insert(key, o);
                r
            }
            ("PUT", false) if req.query.contains_key("uploadId") => {
                let n: u32 = req.query.get("partNumber").and_then(|p| p.parse().ok()).unwrap_or(0);
                let Some((_, _, parts)) = s.uploads.get_mut(&req.query["uploadId"]) else {
                    return reply("404 Not Found", "<Error><Code>NoSuchUpload</Code></Error>");
                };
                parts.insert(n, req.body);
                let mut r = reply("200 OK", "");
                r.headers.push(("ETag".into(), format!("\"part-{n}\"")));
                r
            }
            ("DELETE", false) if req.query.contains_key("uploadId") => {
                s.uploads.remove(&req.query["uploadId"]);
                reply("204 No Content", "")
            }
            ("PUT", false) => {
                if crate::header(&req.head, "x-goog-if-generation-match").as_deref() == Some("0")
                    && s.objects.contains_key(&key)
                {
                    s.refused_creates += 1;
                    return reply("412 Precondition Failed", "<Error><Code>PreconditionFailed</Code></Error>");
                }
                let data = match crate::header(&req.head, "x-goog-copy-source") {
                    Some(src) => {
                        let src = percent_decode(&src);
                        let (b, n) = src.trim_start_matches('/').split_once('/').unwrap_or(("", ""));
                        match s.objects.get(&(b.to_string(), n.to_string())) {
                            Some(o) => o.data.clone(),
                            None => return reply("404 Not Found", "<Error><Code>NoSuchKey</Code></Error>"),
                        }
                    }
                    None => req.body,
                };
                s.generation += 1;
                let o = Object { data, generation: s.generation, modified: now };
                let mut r = reply("200 OK", "");
                r.headers = Self::object_headers(&o);
                s.objects.insert(key, o);
                r
            }
            ("GET" | "HEAD", false) => {
                let Some(o) = s.objects.get(&key) else {
                    return reply("404 Not Found", "<Error><Code>NoSuchKey</Code></Error>");
                };
                let mut r = reply("200 OK", o.data.clone());
                r.headers = Self::object_headers(o);
                if let Some(range) = crate::header(&req.head, "range")
                    && let Some((a, b)) = range.trim_start_matches("bytes=").split_once('-')
                {
                    let len = o.data.len();
                    let (start, end) = match (a.parse::<usize>().ok(), b.parse::<usize>().ok()) {
                        (Some(a), Some(b)) => (a, (b + 1).min(len)),
                        (Some(a), None) => (a, len),
                        (None, Some(n)) => (len.saturating_sub(n), len),
                        (None, None) => (0, len),
                    };
                    if start >= len && len > 0 {
                        return reply("416 Range Not Satisfiable", "");
                    }
                    r.status = "206 Partial Content";
                    r.body = o.data[start..end].to_vec();
                    r.headers.push(("Content-Range".into(), format!("bytes {start}-{}/{len}", end.max(1) - 1)));
                }
                r
            }
            ("DELETE", false) => match s.objects.remove(&key) {
                Some(_) => reply("204 No Content", ""),
                None => reply("404 Not Found", "<Error><Code>NoSuchKey</Code></Error>"),
            },
            _ => reply(
                "400 Bad Request",
                format!("<Error><Message>not faked: {} {}</Message></Error>", req.method, req.path),
            ),
        }
    }

    /// `GET /{bucket}?list-type=2&prefix=&delimiter=&start-after=&continuation-token=&max-keys=`.
    fn list(s: &State, bucket: &str, q: &HashMap<String, String>) -> Reply {
        let prefix = q.get("prefix").cloned().unwrap_or_default();
        let delimiter = q.get("delimiter").cloned();
        let after = q.get("continuation-token").or(q.get("start-after")).cloned().unwrap_or_default();
        let max: usize = q.get("max-keys").and_then(|m| m.parse().ok()).unwrap_or(1000);
        let mut contents = Vec::new();
        let mut prefixes = std::collections::BTreeSet::new();
        let mut next = None;
        for ((b, name), o) in &s.objects {
            if b != bucket || !name.starts_with(&prefix) || name.as_str() <= after.as_str() {
                continue;
            }
            if let Some(d) = &delimiter
                && let Some(i) = name[prefix.len()..].find(d.as_str())
            {
                prefixes.insert(name[..prefix.len() + i + d.len()].to_string());
                continue;
            }
            if contents.len() == max {
                next = contents.last().map(|(n, _): &(String, &Object)| n.clone());
                break;
            }
            contents.push((name.clone(), o));
        }
        let mut body = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?><ListBucketResult>");
        body.push_str(&format!("<Name>{}</Name><Prefix>{}</Prefix>", xml_escape(bucket), xml_escape(&prefix)));
        body.push_str(&format!("<KeyCount>{}</KeyCount><MaxKeys>{max}</MaxKeys>", contents.len()));
        body.push_str(&format!("<IsTruncated>{}</IsTruncated>", next.is_some()));
        if let Some(n) = &next {
            body.push_str(&format!("<NextContinuationToken>{}</NextContinuationToken>", xml_escape(n)));
        }
        for (name, o) in contents {
            body.push_str(&format!(
                "<Contents><Key>{}</Key><LastModified>{}</LastModified><ETag>\"{}\"</ETag><Size>{}</Size></Contents>",
                xml_escape(&name),
                o.modified.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                o.generation,
                o.data.len()
            ));
        }
        for p in prefixes {
            body.push_str(&format!("<CommonPrefixes><Prefix>{}</Prefix></CommonPrefixes>", xml_escape(&p)));
        }
        body.push_str("</ListBucketResult>");
        let mut r = reply("200 OK", body);
        r.headers.push(("Content-Type".into(), "application/xml".into()));
        r
    }
}
