//! lakefleet's shared core, used by the `producer` CLI and the `worker` service.
//!
//! Map of the modules, as the folders are:
//!
//! - the domain: [`catalog`] (datasets: URL template, cadence, range, explicit
//!   schema; built-in and from TOML), [`plan`] (a date range becomes one
//!   partition per publication, or a clear refusal), [`task`] (the versioned
//!   MessagePack task message and its lane), [`failure`] (the one place that
//!   decides retry vs park), [`manifest`] (a backfill's plan, kept in the lake);
//! - what the fleet talks to, one module each: [`rabbitmq`] (queues of both
//!   lanes, confirmed publishing, parked tasks' headers), [`state`] (Redis:
//!   done markers, leases, backfill progress, host slots), [`source`] (HTTP
//!   and Socrata sources, streamed), [`lake`] (the object store: uploads and
//!   reads of any `object_store` URL), [`table`] (each dataset's Delta table
//!   through `delta_kernel`), [`metrics`] (Prometheus names and registry, and
//!   the HTTP server that exposes them);
//! - the work: [`convert`] (CSV, Parquet and Socrata rows -> the dataset's one
//!   Parquet schema, streamed);
//! - settings: [`config`] (connection settings, validated) and [`cli`]
//!   (feature `cli`: the flags they come from);
//! - [`util`]: bounded texts, fast date parsing, SWAR, spool files.

pub mod catalog;
#[cfg(feature = "cli")]
pub mod cli;
pub mod config;
pub mod convert;
pub mod failure;
pub mod lake;
pub mod manifest;
pub mod metrics;
pub mod plan;
pub mod rabbitmq;
pub mod source;
pub mod state;
pub mod table;
pub mod task;
pub mod util;

/// lakefleet's version, written into Parquet metadata and `build_info`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
