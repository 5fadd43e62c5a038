//! lakefleet's shared core, used by the `producer` CLI and the `worker` service.
//!
//! Map of the modules:
//! - [`catalog`]: datasets (URL template, cadence, range, explicit schema), built-in and from TOML;
//! - [`plan`]: a date range becomes one partition per publication, or a clear refusal;
//! - [`task`]: the versioned MessagePack task message;
//! - [`config`]: connection settings, validated; [`cli`] (feature `cli`): the flags they come from;
//! - [`topology`]: RabbitMQ queues (quorum work queue, retry delay queues, parking) and confirmed publishing;
//! - [`state`]: Redis done markers, leases and backfill progress;
//! - [`source`]: streaming HTTP download;
//! - [`convert`]: streaming CSV -> Parquet;
//! - [`lake`]: atomic uploads to any `object_store` URL; [`manifest`]: a backfill's plan, kept in the lake;
//! - [`failure`]: the one place that decides retry vs park; [`parking`]: the headers of a parked task;
//! - [`metrics`]: Prometheus metric names and registry; [`httpd`]: the hyper server that exposes them;
//! - [`timefmt`]: fast date/time parsing; [`swar`]: eight bytes at a time in a `u64`; [`text`]: bounded texts for headers, Redis and logs.

pub mod catalog;
#[cfg(feature = "cli")]
pub mod cli;
pub mod config;
pub mod convert;
pub mod failure;
pub mod httpd;
pub mod lake;
pub mod manifest;
pub mod metrics;
pub mod parking;
pub mod plan;
pub mod source;
pub mod state;
pub mod swar;
pub mod table;
pub mod task;
pub mod text;
pub mod timefmt;
pub mod topology;

/// lakefleet's version, written into Parquet metadata and `build_info`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
