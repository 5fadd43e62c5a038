//! Observability, proven against a real Prometheus (Debian's package) that
//! scrapes a real worker, the producer exporter and RabbitMQ's Prometheus
//! plugin after a real backfill: every dashboard query returns data, every
//! metric docs/operations.md documents exists with its labels, and the Prometheus,
//! alert and compose files validate.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use lakefleet_testkit::*;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn check(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd)
        .args(args)
        .current_dir(repo())
        .output()
        .unwrap_or_else(|e| panic!("{cmd} not found ({e}): run scripts/services.sh, which installs it"));
    let text = format!("{}{}", stdout(&out), stderr(&out));
    assert!(out.status.success(), "{cmd} {args:?} failed:\n{text}");
    text
}

#[test]
fn prometheus_alert_and_compose_files_validate() {
    let text = check("promtool", &["check", "config", "prometheus/prometheus.yml"]);
    assert!(text.contains("SUCCESS"), "{text}");
    let text = check("promtool", &["check", "rules", "prometheus/alerts.yml"]);
    assert!(text.contains("5 rules found"), "{text}");
    check("check-jsonschema", &["--builtin-schema", "vendor.compose-spec", "docker-compose.yml"]);
    // The compose file scales workers and Prometheus finds them by DNS.
    let compose = std::fs::read_to_string(repo().join("docker-compose.yml")).unwrap();
    let prom = std::fs::read_to_string(repo().join("prometheus/prometheus.yml")).unwrap();
    assert!(prom.contains("dns_sd_configs") && prom.contains("names: [worker]"), "{prom}");
    for svc in
        ["rabbitmq:", "redis:", "s3:", "s3-init:", "prometheus:", "grafana:", "worker:", "producer:", "exporter:"]
    {
        assert!(compose.contains(&format!("\n  {svc}")), "service {svc} missing");
    }
    // Every image is pinned to a version, none is a deleted MinIO image, RabbitMQ is 4.x.
    for line in compose.lines().filter_map(|l| l.trim().strip_prefix("image: ")) {
        let (name, tag) = line.rsplit_once(':').unwrap_or((line, ""));
        assert!(!tag.is_empty() && tag != "latest" && tag.chars().next().unwrap().is_ascii_alphanumeric(), "{line}");
        assert!(!name.contains("minio"), "{line}");
    }
    assert!(compose.contains("image: rabbitmq:4."), "RabbitMQ 4.x");
}

struct Prometheus {
    child: std::process::Child,
    url: String,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_prometheus(worker: &str, exporter: &str) -> Prometheus {
    let dir = tmpdir("prometheus");
    let alerts = repo().join("prometheus/alerts.yml");
    let config = format!(
        r#"global: {{ scrape_interval: 1s, evaluation_interval: 1s }}
rule_files: ["{}"]
scrape_configs:
  - job_name: lakefleet-worker
    static_configs: [{{ targets: ["{worker}"] }}]
  - job_name: lakefleet-producer
    static_configs: [{{ targets: ["{exporter}"] }}]
  - job_name: rabbitmq
    metrics_path: /metrics/per-object
    static_configs: [{{ targets: ["127.0.0.1:15692"] }}]
"#,
        alerts.display()
    );
    std::fs::write(dir.join("prometheus.yml"), config).unwrap();
    let port = free_port();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", dir.join("prometheus.yml").display()))
        .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("prometheus.log")).unwrap())
        .spawn()
        .expect("prometheus not found: run scripts/services.sh, which installs Debian's package");
    let url = format!("http://127.0.0.1:{port}");
    let start = Instant::now();
    while !reqwest::get(format!("{url}/-/ready")).await.is_ok_and(|r| r.status().is_success()) {
        let log = std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default();
        assert!(start.elapsed() < Duration::from_secs(30), "Prometheus did not start:\n{log}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Prometheus { child, url }
}

async fn query(prom: &str, q: &str) -> Vec<serde_json::Value> {
    let url = url::Url::parse_with_params(&format!("{prom}/api/v1/query"), &[("query", q)]).unwrap();
    let r = get_json(url.as_str()).await;
    assert_eq!(r["status"], "success", "{q}: {r}");
    r["data"]["result"].as_array().cloned().unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_dashboard_query_returns_data_and_every_documented_metric_exists() {
    let src = Source::start().await;
    let f = Fleet::local("obs");
    let week = |i: u64| NaiveDate::from_ymd_opt(2022, 1, 1).unwrap() + chrono::Days::new(7 * i);
    for i in 0..4 {
        let (bytes, _) = mta_week(week(i), 2000, 500 + i);
        src.put(&mta_name(week(i)), bytes);
    }
    src.fault(&mta_name(week(1)), &[Fault::Status(500)]); // one retry
    src.state_remove(&mta_name(week(3))); // one parked (404)
    let w = f.worker(&[]);
    w.ready().await;
    // The exporter.
    let exporter_addr = format!("127.0.0.1:{}", free_port());
    let mut cmd = f.producer_command(&["exporter", "--listen", &exporter_addr]);
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let _exporter = ChildGuard(cmd.spawn().unwrap());

    let out = f.backfill_mta(&src, d("2022-01-01"), week(3), &["--wait", "--wait-timeout", "60"]);
    assert_eq!(out.status.code(), Some(1), "one partition is parked");
    // A duplicate, and a lease conflict: the same partitions again.
    let again = f.backfill_mta(&src, d("2022-01-01"), week(0), &["--force", "--wait"]);
    assert_eq!(again.status.code(), Some(0));
    // The newest week is due and not on the source: it waits on the calendar.
    let newest = lakefleet::plan::latest_published(&mta_turnstile(), chrono::Local::now().date_naive());
    let due = f.backfill_mta(&src, newest, newest, &[]);
    assert_eq!(due.status.code(), Some(0));
    eventually(Duration::from_secs(20), "nothing new since", || async {
        w.metrics().await.contains("lakefleet_nothing_new_since_timestamp_seconds{dataset=\"mta-turnstile\"}")
    })
    .await;

    let prom = start_prometheus(&w.addr, &exporter_addr).await;
    let start = Instant::now();
    // Prometheus applies discovered targets every 5 s: wait for five good
    // scrapes of each of the three targets, so that rate() has samples.
    loop {
        let up = query(&prom.url, "min(sum_over_time(up[1m])) and on() count(up) == 3").await;
        let ok = up
            .first()
            .and_then(|v| v["value"][1].as_str())
            .and_then(|s| s.parse::<f64>().ok())
            .is_some_and(|n| n >= 5.0);
        if ok {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(60), "Prometheus does not scrape all three targets: {up:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Every query of every panel returns data.
    let dash: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(repo().join("grafana/dashboards/lakefleet-fleet.json")).unwrap())
            .unwrap();
    assert_eq!(dash["title"], "lakefleet fleet");
    let mut empty = Vec::new();
    let mut n = 0;
    for panel in dash["panels"].as_array().unwrap() {
        for t in panel["targets"].as_array().unwrap() {
            let expr = t["expr"].as_str().unwrap().replace("$__rate_interval", "30s");
            n += 1;
            if query(&prom.url, &expr).await.is_empty() {
                empty.push(format!("{}: {expr}", panel["title"]));
            }
        }
    }
    assert!(n >= 20, "{n} queries");
    assert!(empty.is_empty(), "panel queries without data:\n{}", empty.join("\n"));

    // The alert rules loaded into the real Prometheus.
    let rules = get_json(&format!("{}/api/v1/rules", prom.url)).await;
    let names: Vec<&str> =
        rules["data"]["groups"][0]["rules"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "LakefleetParkedTasks",
            "LakefleetFailureRatioHigh",
            "LakefleetNoWorker",
            "LakefleetNothingNewSince",
            "LakefleetQueueNotDraining"
        ]
    );

    // Every metric docs/operations.md documents exists, with its documented labels.
    let readme = std::fs::read_to_string(repo().join("docs/operations.md")).unwrap();
    let worker_metrics = w.metrics().await;
    let exporter_metrics = reqwest::get(format!("http://{exporter_addr}/metrics")).await.unwrap().text().await.unwrap();
    let all = format!("{worker_metrics}\n{exporter_metrics}");
    let mut documented = 0;
    for line in readme.lines().filter(|l| l.starts_with("| `lakefleet_")) {
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let name = cells[1].trim_matches('`');
        let labels: Vec<&str> = cells[3].split('`').skip(1).step_by(2).collect();
        let series: Vec<&str> = all
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter(|l| {
                let n = l.split(['{', ' ']).next().unwrap();
                n == name || n == format!("{name}_bucket") || n == format!("{name}_count")
            })
            .collect();
        assert!(!series.is_empty(), "documented metric {name} is not exposed");
        for label in &labels {
            assert!(
                series.iter().any(|s| s.contains(&format!("{label}=\""))),
                "{name} lacks documented label {label}: {series:?}"
            );
        }
        documented += 1;
    }
    assert!(documented >= 14, "{documented} metrics documented");
    // The calendar's queue of the waiting week is the fleet's too.
    f.delete_wait_queues(Duration::from_secs(6 * 3600)).await;
    f.cleanup().await;
}

async fn get_json(url: &str) -> serde_json::Value {
    let text = reqwest::get(url).await.unwrap().text().await.unwrap();
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{url}: {e}: {text}"))
}

/// Kills the child process when the test ends, however it ends.
struct ChildGuard(std::process::Child);
impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
