//! The end state a scenario must reach, and waiting for a backfill.

use std::process::Output;
use std::time::{Duration, Instant};

use chrono::NaiveDate;

use crate::*;

// ---------------------------------------------------------------- oracle

/// The end state every fault scenario must reach: each planned partition is
/// either in the lake exactly once (with its rows and source checksum) or
/// parked with the expected reason; nothing else is in the lake; the work and
/// retry queues are empty. Drains the parking queue.
pub async fn oracle(f: &Fleet, in_lake: &[(String, usize, String)], parked: &[(&str, &str)]) {
    let topo = f.topology();
    let objects = f.objects().await;
    let keys: Vec<&str> = objects.iter().map(|(k, _)| k.as_str()).collect();
    let mut want: Vec<&str> = in_lake.iter().map(|(k, _, _)| k.as_str()).collect();
    want.sort();
    assert_eq!(keys, want, "the lake holds exactly the expected objects");
    for (key, n, sha) in in_lake {
        let (batches, kv) = read_parquet(f.read_object(key).await);
        assert_eq!(rows(&batches), *n, "{key}");
        assert_eq!(&kv["lakefleet.source_sha256"], sha, "{key}");
    }
    // Where the dataset is a table, it holds exactly these objects, each
    // partition once, at its first generation unless refreshed.
    let lake = f.lake();
    let cat = lakefleet::catalog::Catalog::builtin();
    let mut datasets: Vec<&str> = in_lake.iter().filter_map(|(k, _, _)| k.split('/').next()).collect();
    datasets.dedup();
    for name in datasets {
        let Some(ds) = cat.get(name) else { continue };
        let snap = lakefleet::table::Table::new(&lake, ds).snapshot().await.unwrap();
        if snap.version.is_none() {
            continue;
        }
        let mut live: Vec<String> = snap.files.keys().map(|p| format!("{name}/{p}")).collect();
        live.sort();
        let mut want: Vec<&str> =
            in_lake.iter().map(|(k, _, _)| k.as_str()).filter(|k| k.starts_with(&format!("{name}/"))).collect();
        want.sort();
        assert_eq!(live, want, "the table of {name} holds exactly the expected objects");
        let partitions: std::collections::BTreeSet<_> = snap.files.values().map(|f| f.partition.clone()).collect();
        assert_eq!(partitions.len(), snap.files.len(), "one live file per partition in {name}");
    }
    let msgs = f.drain(&topo.parking).await;
    let mut got: Vec<(String, String)> = msgs
        .iter()
        .map(|d| {
            let h = d.properties.headers().as_ref();
            (
                lakefleet::rabbitmq::topology::header_str(h, "x-lakefleet-partition").unwrap_or_default(),
                lakefleet::rabbitmq::topology::header_str(h, "x-lakefleet-reason").unwrap_or_default(),
            )
        })
        .collect();
    got.sort();
    let mut want: Vec<(String, String)> = parked.iter().map(|(p, r)| (p.to_string(), r.to_string())).collect();
    want.sort();
    assert_eq!(got, want, "the parking queue holds exactly the expected tasks");
    for q in topo.all_queues().into_iter().filter(|q| *q != topo.parking) {
        assert_eq!(f.queue_len(&q).await, 0, "{q} is empty");
    }
}

/// Waits until the backfill printed in `out` has every partition done or parked.
/// The backfill id that `producer backfill` printed (`backfill bf-...: ...`).
pub fn backfill_id(out: &Output) -> String {
    let text = stdout(out);
    let id = text.split_whitespace().nth(1).unwrap_or_else(|| panic!("no backfill id in: {text}"));
    id.trim_end_matches(':').to_string()
}

pub async fn wait_finished(f: &Fleet, out: &Output, within: Duration) -> lakefleet::state::BackfillStatus {
    let id = backfill_id(out);
    let st = f.state().await;
    let start = Instant::now();
    loop {
        let s = st.backfill(&id).await.unwrap().unwrap();
        if s.finished() {
            return s;
        }
        assert!(start.elapsed() < within, "backfill {id} not finished after {within:?}: {s:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The object key of an MTA week's first generation.
pub fn mta_key(week: NaiveDate) -> String {
    format!("mta-turnstile/year={}/mta-turnstile_{}.parquet", week.format("%Y"), week)
}

/// `(key, rows, sha256)` of an MTA week as the oracle expects it.
pub fn mta_expect(week: NaiveDate, rows: usize, bytes: &[u8]) -> (String, usize, String) {
    (mta_key(week), rows, sha256_hex(bytes))
}

/// A fleet with one worker and weeks `0..n` of the MTA feed (`rows` rows
/// each, seeds from `seed`) served on loopback and landed by one backfill:
/// the preamble many scenarios start from.
pub struct Landed {
    pub src: Source,
    pub f: Fleet,
    pub w: WorkerProc,
    /// What the oracle expects of each week ([`mta_expect`]).
    pub expect: Vec<(String, usize, String)>,
}

pub async fn landed(name: &str, n: u64, rows: usize, seed: u64) -> Landed {
    let src = Source::start().await;
    let f = Fleet::local(name);
    let expect = serve_mta_weeks(&src, n, rows, seed, &[]);
    let w = f.worker(&[]);
    w.ready().await;
    let out = f.backfill_mta(&src, week(0), week(n - 1), &[]);
    assert_eq!(wait_finished(&f, &out, Duration::from_secs(60)).await.done, n, "{name}: the weeks land");
    Landed { src, f, w, expect }
}
