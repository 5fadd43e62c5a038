//! lakefleet's shared core, used by the `producer` CLI and the `worker` service.
//!
//! Map of the modules:
//! - [`catalog`]: datasets (URL template, cadence, range, explicit schema), built-in and from TOML;
//! - [`plan`]: a date range becomes one partition per publication, or a clear refusal;
//! - [`task`]: the versioned MessagePack task message;
//! - [`config`]: connection settings from flags and the environment;
//! - [`topology`]: RabbitMQ queues (quorum work queue, retry delay queues, parking) and confirmed publishing;
//! - [`state`]: Redis done markers, leases and backfill progress;
//! - [`source`]: streaming HTTP download;
//! - [`convert`]: streaming CSV -> Parquet;
//! - [`lake`]: atomic uploads to any `object_store` URL;
//! - [`failure`]: the one place that decides retry vs park;
//! - [`metrics`]: Prometheus metric names and registry; [`httpd`]: the tiny server that exposes them;
//! - [`timefmt`]: fast date/time parsing.

pub mod catalog;
pub mod config;
pub mod convert;
pub mod failure;
pub mod httpd;
pub mod lake;
pub mod metrics;
pub mod plan;
pub mod source;
pub mod state;
pub mod task;
pub mod timefmt;
pub mod topology;

/// lakefleet's version, written into Parquet metadata and `build_info`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
