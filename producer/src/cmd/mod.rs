//! One file per `producer` command (mini-redis's `cmd/` layout); `main.rs`
//! only dispatches.

pub mod backfill;
pub mod cancel;
pub mod datasets;
pub mod dlq;
pub mod exporter;
pub mod hosts;
pub mod schedule;
pub mod status;
pub mod table;
pub mod vacuum;
