//! A SODA 2.1-compatible portal on 127.0.0.1, run by the test: datasets by
//! id, `/resource/{id}.json?$select=count(*) AS n&$where=...` and
//! `/resource/{id}.csv?$select=...&$where=...&$order=:id&$limit=...&$offset=...`
//! with quoted CSV headers, 404 and 400 with the portal's JSON message, and
//! injectable faults: a status (with Retry-After) for the next request, and
//! a row added to a slice right after its count was served.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::io::AsyncWriteExt;

/// One dataset: its fields, the field its slices are cut on, its rows (in `:id` order).
#[derive(Debug, Clone, Default)]
pub struct SodaData {
    pub fields: Vec<String>,
    pub time_field: String,
    pub rows: Vec<Vec<String>>,
}

/// A portal that misbehaves in the body of a 200 (`Soda::page_fault`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageFault {
    /// Pages after the first list their last two selected columns swapped,
    /// header and rows alike (consistent, yet in another order). Once.
    SwapColumnsAfterFirstPage,
    /// No page body ends with a newline. Always.
    NoFinalNewline,
    /// The page at this `$offset` is an HTML maintenance page, with 200. Once.
    HtmlAtOffset(usize),
    /// `$where` is ignored, as a static CSV mirror would: counts and pages
    /// cover the whole dataset. Always.
    IgnoreWhere,
    /// `count(*)` answers this, whatever the rows. Always.
    CountSays(u64),
    /// A page holds this many times its `$limit` rows (the rows repeated). Once.
    Overlong(usize),
}

impl PageFault {
    fn once(&self) -> bool {
        matches!(self, PageFault::SwapColumnsAfterFirstPage | PageFault::HtmlAtOffset(_) | PageFault::Overlong(_))
    }
}

/// One request the portal answered.
#[derive(Debug, Clone)]
pub struct SodaRequest {
    pub at: std::time::Instant,
    /// Path and query, as sent (percent-encoded).
    pub target: String,
    pub token: Option<String>,
    pub status: u16,
}

impl SodaState {
    /// A one-shot fault has been served: it is gone.
    fn fire(&mut self, id: &str, f: &PageFault) {
        if f.once()
            && let Some(v) = self.page_faults.get_mut(id)
        {
            v.retain(|x| x != f);
        }
    }
}

#[derive(Default)]
struct SodaState {
    datasets: HashMap<String, SodaData>,
    /// id -> (status, Retry-After seconds) for its next request.
    faults: HashMap<String, Vec<(u16, Option<u64>)>>,
    /// (id, slice start) -> a row appended after the next count of that slice.
    grow_after_count: HashMap<(String, String), Vec<String>>,
    /// id -> faults in the bodies of its answers.
    page_faults: HashMap<String, Vec<PageFault>>,
    /// Every request: (when, path and query, X-App-Token, status).
    requests: Vec<SodaRequest>,
}

/// The portal.
#[derive(Clone)]
pub struct Soda {
    pub base: String,
    state: Arc<Mutex<SodaState>>,
}

fn json_error(status: u16, message: &str) -> (u16, Option<u64>, &'static str, Vec<u8>) {
    let body = format!("{{\"code\":\"error\",\"error\":true,\"message\":{message:?}}}");
    (status, None, "application/json", body.into_bytes())
}

fn quote(v: &str) -> String {
    format!("\"{}\"", v.replace('"', "\"\""))
}

impl Soda {
    pub async fn start() -> Soda {
        let state: Arc<Mutex<SodaState>> = Arc::default();
        let st = state.clone();
        let base = crate::serve(move |mut sock| {
                let st = st.clone();
                async move {
                    let Some(head) = crate::read_head(&mut sock).await else { return };
                    let target = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                    let token = crate::header(&head, "x-app-token");
                    let (status, retry, ctype, body) = Self::answer(&st, &target);
                    st.lock().unwrap().requests.push(SodaRequest {
                        at: std::time::Instant::now(),
                        target,
                        token,
                        status,
                    });
                    let retry = retry.map(|s| format!("Retry-After: {s}\r\n")).unwrap_or_default();
                    let reply = format!(
                        "HTTP/1.1 {status} X\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\n{retry}Connection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = sock.write_all(reply.as_bytes()).await;
                    let _ = sock.write_all(&body).await;
                    let _ = sock.shutdown().await;
                }
            })
            .await;
        Soda { base, state }
    }

    fn answer(st: &Mutex<SodaState>, target: &str) -> (u16, Option<u64>, &'static str, Vec<u8>) {
        let mut s = st.lock().unwrap();
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let params: HashMap<String, String> = url::form_urlencoded::parse(query.as_bytes()).into_owned().collect();
        let Some((id, ext)) = path.strip_prefix("/resource/").and_then(|r| r.split_once('.')) else {
            return json_error(404, "no such path");
        };
        if let Some(q) = s.faults.get_mut(id)
            && !q.is_empty()
        {
            let (status, retry) = q.remove(0);
            let (_, _, ctype, body) = json_error(status, "Too many requests; slow down");
            return (status, retry, ctype, body);
        }
        let Some(data) = s.datasets.get(id).cloned() else {
            return json_error(404, &format!("Dataset {id} not found"));
        };
        let col = |name: &str| data.fields.iter().position(|f| f == name);
        let faults = s.page_faults.get(id).cloned().unwrap_or_default();
        let has = |f: &PageFault| faults.contains(f);
        let mut fired: Vec<PageFault> = Vec::new();
        // `$where=c >= 'a' AND c < 'b'`
        let mut range: (String, String) = (String::new(), "\u{10ffff}".into());
        if let Some(w) = params.get("$where") {
            for part in w.split(" AND ") {
                let mut it = part.splitn(3, ' ');
                let (c, op, v) = (it.next().unwrap_or(""), it.next().unwrap_or(""), it.next().unwrap_or(""));
                if col(c).is_none() {
                    return json_error(400, &format!("No such column: {c}"));
                }
                if c != data.time_field {
                    return json_error(400, &format!("{c} is not the test portal's time field"));
                }
                let v = v.trim_matches('\'').to_string();
                match op {
                    ">=" => range.0 = v,
                    "<" => range.1 = v,
                    _ => return json_error(400, &format!("unsupported operator {op}")),
                }
            }
        }
        let t = col(&data.time_field).unwrap();
        let in_slice: Vec<&Vec<String>> = data
            .rows
            .iter()
            .filter(|r| {
                has(&PageFault::IgnoreWhere) || r[t].as_str() >= range.0.as_str() && r[t].as_str() < range.1.as_str()
            })
            .collect();
        let select = params.get("$select").cloned().unwrap_or_default();
        if ext == "json" && select == "count(*) AS n" {
            let lie = faults.iter().find_map(|f| match f {
                PageFault::CountSays(n) => Some(*n as usize),
                _ => None,
            });
            let n = lie.unwrap_or(in_slice.len());
            if let Some(extra) = s.grow_after_count.remove(&(id.to_string(), range.0.clone())) {
                s.datasets.get_mut(id).unwrap().rows.push(extra);
            }
            return (200, None, "application/json", format!("[{{\"n\":\"{n}\"}}]").into_bytes());
        }
        if ext != "csv" {
            return json_error(400, "this test portal answers count(*) as JSON and rows as CSV");
        }
        // `field` or `field AS name`: the header says the name.
        let mut idx = Vec::new();
        let mut names = Vec::new();
        for item in select.split(',') {
            let (f, name) = item.split_once(" AS ").unwrap_or((item, item));
            match col(f) {
                Some(i) => {
                    idx.push(i);
                    names.push(name.to_string());
                }
                None => return json_error(400, &format!("No such column: {f}")),
            }
        }
        let num = |k: &str, d: usize| params.get(k).and_then(|v| v.parse::<usize>().ok()).unwrap_or(d);
        let (limit, offset) = (num("$limit", 1000), num("$offset", 0));
        if faults.contains(&PageFault::HtmlAtOffset(offset)) {
            s.fire(id, &PageFault::HtmlAtOffset(offset));
            let page = "<html><head><title>Down for maintenance</title></head><body>back soon</body></html>\n";
            return (200, None, "text/html", page.as_bytes().to_vec());
        }
        if offset > 0 && has(&PageFault::SwapColumnsAfterFirstPage) && idx.len() >= 2 {
            let n = idx.len();
            idx.swap(n - 2, n - 1);
            fired.push(PageFault::SwapColumnsAfterFirstPage);
        }
        let times = faults
            .iter()
            .find_map(|f| match f {
                PageFault::Overlong(k) => Some(*k),
                _ => None,
            })
            .unwrap_or(1);
        if times > 1 {
            fired.push(PageFault::Overlong(times));
        }
        if offset > 0 && has(&PageFault::SwapColumnsAfterFirstPage) && names.len() >= 2 {
            let n = names.len();
            names.swap(n - 2, n - 1);
        }
        let mut out = names.iter().map(|n| quote(n)).collect::<Vec<_>>().join(",");
        out.push('\n');
        for _ in 0..times {
            for r in in_slice.iter().skip(offset).take(limit) {
                out.push_str(&idx.iter().map(|&i| quote(&r[i])).collect::<Vec<_>>().join(","));
                out.push('\n');
            }
        }
        if has(&PageFault::NoFinalNewline) {
            out.pop();
        }
        for f in fired {
            s.fire(id, &f);
        }
        (200, None, "text/csv", out.into_bytes())
    }

    /// Adds a fault to the bodies of `id`'s answers.
    pub fn page_fault(&self, id: &str, fault: PageFault) {
        self.state.lock().unwrap().page_faults.entry(id.to_string()).or_default().push(fault);
    }

    pub fn put(&self, id: &str, data: SodaData) {
        self.state.lock().unwrap().datasets.insert(id.to_string(), data);
    }

    /// The next request for `id` gets `status` (and `Retry-After: secs`).
    pub fn fail_next(&self, id: &str, status: u16, retry_after: Option<u64>) {
        self.state.lock().unwrap().faults.entry(id.to_string()).or_default().push((status, retry_after));
    }

    /// Right after the next `count(*)` of the slice of `id` that starts at
    /// `start` (`2025-02-01T00:00:00`), `row` is added (the data changes
    /// between the count and the read).
    pub fn grow_after_count(&self, id: &str, start: &str, row: Vec<String>) {
        self.state.lock().unwrap().grow_after_count.insert((id.to_string(), start.to_string()), row);
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<SodaRequest> {
        self.state.lock().unwrap().requests.clone()
    }
}
