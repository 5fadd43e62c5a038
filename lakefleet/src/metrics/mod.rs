//! Prometheus metrics (prefix `lakefleet_`). Label values come from small
//! fixed sets: `dataset` (catalog names), `outcome`, `stage`, `reason`,
//! `result`, `service`. Every metric here is documented in docs/operations.md.

pub mod httpd;

use prometheus::{
    Encoder, GaugeVec, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
};

/// Task outcomes (`lakefleet_tasks_total{outcome}`).
pub mod outcome {
    pub const SUCCEEDED: &str = "succeeded";
    pub const SKIPPED_DUPLICATE: &str = "skipped_duplicate";
    pub const DELAYED: &str = "delayed";
    pub const RETRIED: &str = "retried";
    pub const PARKED: &str = "parked";
    pub const FAILED: &str = "failed";
    /// Acked without work: its backfill was cancelled.
    pub const CANCELLED: &str = "cancelled";
    /// Not published yet: asked again on the publication calendar.
    pub const WAITING: &str = "waiting";
    pub const ALL: [&str; 8] = [SUCCEEDED, SKIPPED_DUPLICATE, DELAYED, RETRIED, PARKED, FAILED, CANCELLED, WAITING];
}

/// Table commit outcomes (`lakefleet_table_commits_total{outcome}`).
pub mod table_outcome {
    pub const COMMITTED: &str = "committed";
    pub const ALREADY_COMMITTED: &str = "already_committed";
    pub const CONTENTION: &str = "contention";
    pub const FAILED: &str = "failed";
    pub const ALL: [&str; 4] = [COMMITTED, ALREADY_COMMITTED, CONTENTION, FAILED];
}

/// Stages (`lakefleet_stage_duration_seconds{stage}`).
pub mod stage {
    pub const DOWNLOAD: &str = "download";
    pub const CONVERT: &str = "convert";
    pub const UPLOAD: &str = "upload";
}

#[derive(Clone)]
pub struct Metrics {
    pub registry: Registry,
    pub tasks: IntCounterVec,
    pub parked: IntCounterVec,
    pub task_duration: HistogramVec,
    pub stage_duration: HistogramVec,
    pub source_bytes: IntCounterVec,
    pub rows_written: IntCounterVec,
    pub parquet_bytes: IntCounterVec,
    pub uploads: IntCounterVec,
    pub in_flight: IntGauge,
    pub lease_conflicts: IntCounterVec,
    /// Tasks waiting for a download slot of a source host (fleet-wide limits).
    pub host_waiting: IntGaugeVec,
    /// 429/503 answers with Retry-After that paused a host for the fleet.
    pub host_throttled: IntCounterVec,
    /// Refreshed partitions whose source had changed (object replaced).
    pub sources_changed: IntCounterVec,
    pub connection_up: IntGaugeVec,
    pub build_info: GaugeVec,
    /// Table commits by outcome: `committed`, `already_committed`,
    /// `contention` (retried through the queue), `failed`.
    pub table_commits: IntCounterVec,
    /// Attempts a table commit took (1: no other writer in the way).
    pub table_commit_attempts: HistogramVec,
    /// Seconds from the first attempt to the commit.
    pub table_commit_seconds: HistogramVec,
    /// When a source first answered "not published yet" for the dataset's
    /// oldest partition still unpublished (Unix seconds): "nothing new
    /// since". Set through [`Metrics::not_published`], cleared by
    /// [`Metrics::published`].
    pub nothing_new_since: IntGaugeVec,
    /// dataset -> (oldest unpublished partition, since): what the gauge shows.
    unpublished: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, (String, i64)>>>,
}

const DURATION_BUCKETS: &[f64] =
    &[0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0];

impl Metrics {
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let counter = |name: &str, help: &str, labels: &[&str]| {
            let c = IntCounterVec::new(Opts::new(name, help), labels).expect("valid metric");
            registry.register(Box::new(c.clone())).expect("unique metric");
            c
        };
        let histogram = |name: &str, help: &str, labels: &[&str]| {
            let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(DURATION_BUCKETS.to_vec()), labels)
                .expect("valid metric");
            registry.register(Box::new(h.clone())).expect("unique metric");
            h
        };
        let m = Metrics {
            tasks: counter("lakefleet_tasks_total", "Tasks handled, by dataset and outcome", &["dataset", "outcome"]),
            parked: counter(
                "lakefleet_tasks_parked_total",
                "Tasks sent to the parking queue, by reason",
                &["dataset", "reason"],
            ),
            task_duration: histogram(
                "lakefleet_task_duration_seconds",
                "Duration of a task, delivery to ack",
                &["dataset"],
            ),
            stage_duration: histogram(
                "lakefleet_stage_duration_seconds",
                "Duration of a task's stages (download, convert, upload)",
                &["dataset", "stage"],
            ),
            source_bytes: counter("lakefleet_source_bytes_total", "Source bytes downloaded", &["dataset"]),
            rows_written: counter("lakefleet_rows_written_total", "Rows written to Parquet objects", &["dataset"]),
            parquet_bytes: counter("lakefleet_parquet_bytes_total", "Bytes of Parquet objects uploaded", &["dataset"]),
            uploads: counter(
                "lakefleet_uploads_total",
                "Uploads by result (written, already_present)",
                &["dataset", "result"],
            ),
            in_flight: IntGauge::new("lakefleet_tasks_in_flight", "Tasks being processed by this worker")
                .expect("valid"),
            lease_conflicts: counter(
                "lakefleet_lease_conflicts_total",
                "Deliveries delayed because another worker held the partition's lease",
                &["dataset"],
            ),
            host_waiting: IntGaugeVec::new(
                Opts::new("lakefleet_host_waiting_tasks", "Tasks waiting for a download slot of a source host"),
                &["host"],
            )
            .expect("valid"),
            host_throttled: counter(
                "lakefleet_host_throttled_total",
                "Answers (429, 503 with Retry-After) that paused a source host for the whole fleet",
                &["host"],
            ),
            sources_changed: counter(
                "lakefleet_sources_changed_total",
                "Partitions whose source changed since it was ingested; found by a refresh, object replaced",
                &["dataset"],
            ),
            connection_up: IntGaugeVec::new(
                Opts::new("lakefleet_connection_up", "1 when connected to the service (rabbitmq, redis)"),
                &["service"],
            )
            .expect("valid"),
            build_info: GaugeVec::new(
                Opts::new("lakefleet_build_info", "Always 1; labels carry the version"),
                &["version"],
            )
            .expect("valid"),
            table_commits: counter(
                "lakefleet_table_commits_total",
                "Delta table commits of partitions, by outcome (committed, already_committed, contention, failed)",
                &["dataset", "outcome"],
            ),
            table_commit_attempts: {
                let h = HistogramVec::new(
                    HistogramOpts::new("lakefleet_table_commit_attempts", "Attempts a Delta table commit took")
                        .buckets(vec![1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 25.0]),
                    &["dataset"],
                )
                .expect("valid metric");
                registry.register(Box::new(h.clone())).expect("unique metric");
                h
            },
            table_commit_seconds: histogram(
                "lakefleet_table_commit_seconds",
                "Seconds a Delta table commit took, first attempt to commit",
                &["dataset"],
            ),
            nothing_new_since: IntGaugeVec::new(
                Opts::new(
                    "lakefleet_nothing_new_since_timestamp_seconds",
                    "When a source first answered 'not published yet' for the dataset's oldest partition still unpublished (Unix seconds)",
                ),
                &["dataset"],
            )
            .expect("valid"),
            unpublished: Default::default(),
            registry: registry.clone(),
        };
        registry.register(Box::new(m.in_flight.clone())).expect("unique");
        registry.register(Box::new(m.connection_up.clone())).expect("unique");
        registry.register(Box::new(m.host_waiting.clone())).expect("unique");
        registry.register(Box::new(m.build_info.clone())).expect("unique");
        registry.register(Box::new(m.nothing_new_since.clone())).expect("unique");
        m.build_info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1.0);
        m
    }

    /// Creates every series of `dataset` at zero, so that rates and
    /// dashboards show zeros instead of gaps.
    pub fn init_dataset(&self, dataset: &str) {
        for o in outcome::ALL {
            self.tasks.with_label_values(&[dataset, o]);
        }
        for r in crate::failure::Reason::ALL {
            self.parked.with_label_values(&[dataset, r.code()]);
        }
        self.source_bytes.with_label_values(&[dataset]);
        self.rows_written.with_label_values(&[dataset]);
        self.parquet_bytes.with_label_values(&[dataset]);
        self.lease_conflicts.with_label_values(&[dataset]);
        self.sources_changed.with_label_values(&[dataset]);
        for r in ["written", "already_present"] {
            self.uploads.with_label_values(&[dataset, r]);
        }
        for o in table_outcome::ALL {
            self.table_commits.with_label_values(&[dataset, o]);
        }
    }

    /// The source answered "not published yet" for `partition` of `dataset`,
    /// first at `since` (Unix seconds): the dataset's gauge shows the oldest
    /// such partition's first answer.
    pub fn not_published(&self, dataset: &str, partition: &str, since: i64) {
        let mut map = self.unpublished.lock().unwrap_or_else(|e| e.into_inner());
        let entry = map.entry(dataset.to_string()).or_insert_with(|| (partition.to_string(), since));
        if partition < entry.0.as_str() || (partition == entry.0 && since < entry.1) {
            *entry = (partition.to_string(), since);
        }
        self.nothing_new_since.with_label_values(&[dataset]).set(entry.1);
    }

    /// A partition of `dataset` was converted: if it is at or after the
    /// oldest unpublished one, something new came and the gauge goes.
    pub fn published(&self, dataset: &str, partition: &str) {
        let mut map = self.unpublished.lock().unwrap_or_else(|e| e.into_inner());
        if map.get(dataset).is_some_and(|(p, _)| partition >= p.as_str()) {
            map.remove(dataset);
            let _ = self.nothing_new_since.remove_label_values(&[dataset]);
        }
    }

    /// Creates the series of source host `host` at zero.
    pub fn init_host(&self, host: &str) {
        self.host_waiting.with_label_values(&[host]);
        self.host_throttled.with_label_values(&[host]);
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        TextEncoder::new().encode(&self.registry.gather(), &mut buf).expect("text encoding");
        String::from_utf8(buf).expect("utf-8")
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gauge(m: &Metrics, dataset: &str) -> Option<i64> {
        let text = m.render();
        let prefix = format!("lakefleet_nothing_new_since_timestamp_seconds{{dataset=\"{dataset}\"}} ");
        text.lines().find_map(|l| l.strip_prefix(&prefix)).map(|v| v.parse().unwrap())
    }

    #[test]
    fn nothing_new_since_shows_the_oldest_unpublished_partition_until_a_newer_one_lands() {
        let m = Metrics::new();
        assert_eq!(gauge(&m, "mta"), None);
        m.not_published("mta", "2026-11-28", 2_000);
        m.not_published("mta", "2026-11-21", 1_000);
        m.not_published("mta", "2026-11-28", 500);
        assert_eq!(gauge(&m, "mta"), Some(1_000), "the oldest partition's first answer");
        // An older partition converted (a backfill of history) is not news.
        m.published("mta", "2026-11-14");
        assert_eq!(gauge(&m, "mta"), Some(1_000));
        m.published("mta", "2026-11-21");
        assert_eq!(gauge(&m, "mta"), None);
    }
}
