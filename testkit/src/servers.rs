//! Servers the tests run on loopback: HTTP sources with faults, moto's S3
//! server, a faulty proxy in front of an object store.

use std::collections::{HashMap, VecDeque};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::*;

// ---------------------------------------------------------------- sources

/// Reads an HTTP request's head (request line and headers) from `sock`.
pub async fn read_head(sock: &mut tokio::net::TcpStream) -> Option<String> {
    let mut buf = vec![0u8; 16384];
    let mut n = 0;
    while !buf[..n].windows(4).any(|w| w == b"\r\n\r\n") && n < buf.len() {
        match sock.read(&mut buf[n..]).await {
            Ok(0) | Err(_) => return None,
            Ok(k) => n += k,
        }
    }
    Some(String::from_utf8_lossy(&buf[..n]).to_string())
}

/// The value of header `name` (any case) in a request head.
pub fn header(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
    })
}

/// What the source does for one request of a file.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this status and no body.
    Status(u16),
    /// Announce the full length, send only this many bytes, close.
    Truncate(usize),
    /// Send the body slowly: this many chunks over this duration.
    Slow(usize, Duration),
    /// Answer 429 with `Retry-After: secs`.
    Throttle(u64),
}

#[derive(Default)]
struct SourceState {
    files: HashMap<String, Vec<u8>>,
    faults: HashMap<String, VecDeque<Fault>>,
    /// Faults for every request of every file, after the per-file ones.
    every: Vec<Fault>,
    hits: HashMap<String, Vec<Instant>>,
    in_flight: usize,
    max_in_flight: usize,
    /// Conditional requests: (file, status answered).
    conditional: Vec<(String, u16)>,
}

/// Accepts connections on 127.0.0.1 (a free port) and runs `handle` on
/// each in a task of its own; returns the server's base URL.
pub(crate) async fn serve<F, Fut>(handle: F) -> String
where
    F: Fn(tokio::net::TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            if let Ok((sock, _)) = listener.accept().await {
                tokio::spawn(handle(sock));
            }
        }
    });
    base
}

/// Answers with `status` (`"404 Not Found"`), no body, `headers` (each
/// ending in CRLF) and closes.
async fn reply_empty(sock: &mut tokio::net::TcpStream, status: &str, headers: &str) {
    let reply = format!("HTTP/1.1 {status}\r\n{headers}Content-Length: 0\r\nConnection: close\r\n\r\n");
    let _ = sock.write_all(reply.as_bytes()).await;
}

/// An HTTP file server on 127.0.0.1 run by the test.
#[derive(Clone)]
pub struct Source {
    pub base: String,
    state: Arc<Mutex<SourceState>>,
}

impl Source {
    pub async fn start() -> Source {
        let state: Arc<Mutex<SourceState>> = Arc::default();
        let st = state.clone();
        let base = serve(move |mut sock| {
                let st = st.clone();
                async move {
                    let Some(head) = read_head(&mut sock).await else { return };
                    let path = head.split_whitespace().nth(1).unwrap_or("/").trim_start_matches('/').to_string();
                    let (body, fault) = {
                        let mut s = st.lock().unwrap();
                        s.hits.entry(path.clone()).or_default().push(Instant::now());
                        let fault =
                            s.faults.get_mut(&path).and_then(|q| q.pop_front()).or_else(|| s.every.first().cloned());
                        s.in_flight += 1;
                        s.max_in_flight = s.max_in_flight.max(s.in_flight);
                        (s.files.get(&path).cloned(), fault)
                    };
                    // Counts this request as in flight until the function returns.
                    struct Leave(Arc<Mutex<SourceState>>);
                    impl Drop for Leave {
                        fn drop(&mut self) {
                            self.0.lock().unwrap().in_flight -= 1;
                        }
                    }
                    let _leave = Leave(st.clone());
                    // Files carry an ETag (from their bytes) and answer If-None-Match.
                    let etag = body.as_ref().map(|b| format!("\"{}\"", &sha256_hex(b)[..16]));
                    let asked = header(&head, "if-none-match");
                    if let Some(asked) = asked {
                        let same = etag.as_deref() == Some(asked.as_str());
                        st.lock().unwrap().conditional.push((path.clone(), if same { 304 } else { 200 }));
                        if same {
                            reply_empty(&mut sock, "304 Not Modified", "").await;
                            return;
                        }
                    }
                    let Some(body) = body else {
                        reply_empty(&mut sock, "404 Not Found", "").await;
                        return;
                    };
                    let etag = etag.unwrap_or_default();
                    let head = |len: usize| {
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Length: {len}\r\nETag: {etag}\r\nLast-Modified: Sat, 21 Nov 2026 09:00:00 GMT\r\nConnection: close\r\n\r\n"
                        )
                    };
                    match fault {
                        Some(Fault::Status(code)) => reply_empty(&mut sock, &format!("{code} Fault"), "").await,
                        Some(Fault::Throttle(secs)) => {
                            reply_empty(&mut sock, "429 Too Many Requests", &format!("Retry-After: {secs}\r\n")).await
                        }
                        Some(Fault::Truncate(k)) => {
                            let _ = sock.write_all(head(body.len()).as_bytes()).await;
                            let _ = sock.write_all(&body[..k.min(body.len())]).await;
                        }
                        Some(Fault::Slow(chunks, over)) => {
                            let _ = sock.write_all(head(body.len()).as_bytes()).await;
                            let size = body.len().div_ceil(chunks.max(1));
                            for (k, c) in body.chunks(size.max(1)).enumerate() {
                                if k > 0 {
                                    tokio::time::sleep(over / chunks as u32).await;
                                }
                                if sock.write_all(c).await.is_err() {
                                    return;
                                }
                            }
                        }
                        None => {
                            let _ = sock.write_all(head(body.len()).as_bytes()).await;
                            let _ = sock.write_all(&body).await;
                        }
                    }
                    drop(_leave); // the whole answer is written
                    let _ = sock.shutdown().await;
                }
            })
            .await;
        Source { base, state }
    }

    pub fn put(&self, name: &str, body: Vec<u8>) {
        self.state.lock().unwrap().files.insert(name.to_string(), body);
    }

    pub fn fault(&self, name: &str, faults: &[Fault]) {
        self.state.lock().unwrap().faults.entry(name.to_string()).or_default().extend(faults.iter().cloned());
    }

    /// Applies `fault` to every request (after any per-file faults).
    pub fn fault_every(&self, fault: Fault) {
        self.state.lock().unwrap().every = vec![fault];
    }

    /// Conditional requests so far: (file, status answered: 304 or 200).
    pub fn conditional(&self) -> Vec<(String, u16)> {
        self.state.lock().unwrap().conditional.clone()
    }

    /// The most requests served at once so far.
    pub fn max_in_flight(&self) -> usize {
        self.state.lock().unwrap().max_in_flight
    }

    /// Every request so far, in order of arrival.
    pub fn all_hits(&self) -> Vec<Instant> {
        let mut all: Vec<Instant> = self.state.lock().unwrap().hits.values().flatten().copied().collect();
        all.sort();
        all
    }

    /// Stops serving `name` (requests get 404).
    pub fn state_remove(&self, name: &str) {
        self.state.lock().unwrap().files.remove(name);
    }

    pub fn hits(&self, name: &str) -> Vec<Instant> {
        self.state.lock().unwrap().hits.get(name).cloned().unwrap_or_default()
    }
}

// ---------------------------------------------------------------- S3

/// moto's S3 server (`moto_server` from PyPI), on a free loopback port.
pub struct S3Server {
    child: Child,
    pub endpoint: String,
    pub bucket: String,
}

impl S3Server {
    pub async fn start() -> S3Server {
        let port = free_port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server not found: pip install 'moto[server]' (the CI script does)");
        let endpoint = format!("http://127.0.0.1:{port}");
        let bucket = format!("lake-{}", COUNTER.fetch_add(1, Ordering::SeqCst));
        let client = reqwest::Client::new();
        let start = Instant::now();
        loop {
            if let Ok(r) = client.put(format!("{endpoint}/{bucket}")).send().await
                && r.status().is_success()
            {
                break;
            }
            assert!(start.elapsed() < Duration::from_secs(30), "moto_server did not start on {endpoint}");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        S3Server { child, endpoint, bucket }
    }

    pub fn env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT", self.endpoint.as_str()),
            ("AWS_ALLOW_HTTP", "true"),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_REGION", "us-east-1"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------- faulty object store

/// An HTTP proxy in front of the S3 server that answers 500 to the next
/// `fail_puts` PUT requests and forwards everything else (one request per
/// connection).
pub struct FaultyProxy {
    pub endpoint: String,
    pub failed: Arc<AtomicU32>,
}

impl FaultyProxy {
    pub async fn start(target: &str, fail_puts: u32) -> FaultyProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let target = target.trim_start_matches("http://").to_string();
        let budget = Arc::new(AtomicU32::new(fail_puts));
        let failed = Arc::new(AtomicU32::new(0));
        let (b, fl) = (budget.clone(), failed.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else { continue };
                let (target, b, fl) = (target.clone(), b.clone(), fl.clone());
                tokio::spawn(async move {
                    // Request head.
                    let mut buf = Vec::new();
                    let mut tmp = [0u8; 8192];
                    let head_end = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        match client.read(&mut tmp).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&tmp[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
                    let len: usize = head
                        .lines()
                        .find_map(|l| {
                            l.to_ascii_lowercase()
                                .strip_prefix("content-length:")
                                .map(|v| v.trim().parse().unwrap_or(0))
                        })
                        .unwrap_or(0);
                    while buf.len() < head_end + len {
                        match client.read(&mut tmp).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&tmp[..n]),
                        }
                    }
                    if head.starts_with("PUT ")
                        && b.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1)).is_ok()
                    {
                        fl.fetch_add(1, Ordering::SeqCst);
                        let body = "<Error><Code>InternalError</Code><Message>injected</Message></Error>";
                        let _ = client
                            .write_all(format!("HTTP/1.1 500 Internal Server Error\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len()).as_bytes())
                            .await;
                        return;
                    }
                    // Forward with "Connection: close" and relay the answer to EOF.
                    let mut lines: Vec<&str> = head[..head_end - 4]
                        .split("\r\n")
                        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
                        .collect();
                    lines.push("Connection: close");
                    let mut req = lines.join("\r\n").into_bytes();
                    req.extend_from_slice(b"\r\n\r\n");
                    req.extend_from_slice(&buf[head_end..]);
                    let Ok(mut up) = tokio::net::TcpStream::connect(&target).await else { return };
                    if up.write_all(&req).await.is_err() {
                        return;
                    }
                    let _ = tokio::io::copy(&mut up, &mut client).await;
                    let _ = client.shutdown().await;
                });
            }
        });
        FaultyProxy { endpoint, failed }
    }
}
