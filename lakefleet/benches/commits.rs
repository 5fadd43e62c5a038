//! Table commits under contention: `committers` tasks commit `partitions`
//! partitions (each a different one) into one dataset's Delta table at once,
//! on a local folder and on moto's S3 server (started here; `pip install
//! 'moto[server]'`). Prints commits per second and attempts per commit.
//!
//!   cargo bench -p lakefleet --bench commits [-- COMMITTERS PARTITIONS [local|s3]]
//!
//! A last word `local` or `s3` measures that lake only (to profile one).
//!
//! Each committer keeps its own snapshot of the log, as separate workers do.

use std::sync::Arc;
use std::time::{Duration, Instant};

use lakefleet::catalog::Catalog;
use lakefleet::lake::Lake;
use lakefleet::table::{Committed, PartitionCommit, Snapshot, Table};

async fn run(name: &str, lake: Lake, committers: usize, partitions: usize) {
    let cat = Catalog::builtin();
    let ds = Arc::new(cat.get("mta-turnstile").expect("built-in").clone());
    let lake = Arc::new(lake);
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..committers {
        let (ds, lake) = (ds.clone(), lake.clone());
        tasks.spawn(async move {
            let mut snap = Snapshot::default();
            let mut attempts = Vec::new();
            let mut p = c;
            while p < partitions {
                let date = chrono::NaiveDate::from_ymd_opt(2014, 10, 18).unwrap() + chrono::Days::new(7 * p as u64);
                let commit = PartitionCommit {
                    partition: date.to_string(),
                    key: ds.object_key(date),
                    size: 1_000_000,
                    rows: 200_000,
                    generation: 1,
                    year: chrono::Datelike::year(&date),
                    stats: None,
                };
                let t = Instant::now();
                match Table::new(&lake, &ds).commit(&mut snap, &commit).await.expect("commit") {
                    Committed::Written { attempts: a, .. } => attempts.push((a, t.elapsed())),
                    Committed::AlreadyCommitted { .. } => panic!("each partition is committed once"),
                }
                p += committers;
            }
            attempts
        });
    }
    let mut all: Vec<(u32, Duration)> = Vec::new();
    while let Some(r) = tasks.join_next().await {
        all.extend(r.expect("committer"));
    }
    let took = start.elapsed();
    all.sort_by_key(|a| a.1);
    let mean_attempts = all.iter().map(|a| a.0 as f64).sum::<f64>() / all.len() as f64;
    let max_attempts = all.iter().map(|a| a.0).max().unwrap_or(0);
    let p95 = all[(all.len() * 95 / 100).min(all.len() - 1)].1;
    println!(
        "{name:<6} {committers} committers, {partitions} commits: {:.1} commits/s, attempts per commit mean {mean_attempts:.2} max {max_attempts}, latency p50 {:.0} ms p95 {:.0} ms",
        partitions as f64 / took.as_secs_f64(),
        all[all.len() / 2].1.as_secs_f64() * 1000.0,
        p95.as_secs_f64() * 1000.0
    );
}

fn main() {
    let args: Vec<usize> = std::env::args().skip(1).filter_map(|a| a.parse().ok()).collect();
    let committers = args.first().copied().unwrap_or(8);
    let partitions = args.get(1).copied().unwrap_or(200);
    let only = std::env::args().skip(1).find(|a| a == "local" || a == "s3");
    let measures = |lake: &str| only.as_deref().is_none_or(|o| o == lake);
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    rt.block_on(async {
        let dir = std::env::temp_dir().join(format!("lakefleet-bench-commits-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        if measures("local") {
            run(
                "local",
                Lake::open(&lakefleet::lake::LakeUrl::parse(dir.to_str().unwrap()).expect("lake url")).expect("lake"),
                committers,
                partitions,
            )
            .await;
            let _ = std::fs::remove_dir_all(&dir);
        }
        if !measures("s3") {
            return;
        }

        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let Ok(mut moto) = std::process::Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
        else {
            println!("s3     skipped: moto_server not found (pip install 'moto[server]')");
            return;
        };
        let endpoint = format!("http://127.0.0.1:{port}");
        let client = reqwest::Client::new();
        for _ in 0..150 {
            if client.put(format!("{endpoint}/bench")).send().await.is_ok_and(|r| r.status().is_success()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let lake = Lake::open_s3_with("s3://bench/lake", &endpoint, "testing", "testing").expect("s3 lake");
        run("s3", lake, committers, partitions).await;
        let _ = moto.kill();
        let _ = moto.wait();
    });
}
