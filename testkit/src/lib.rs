//! Test support for the producer's and the worker's integration tests: a
//! fleet with its own queue prefix, Redis prefix and lake; the real
//! `producer` and `worker` binaries, always built fresh from this workspace;
//! an HTTP source served by the test (with injectable faults); seeded data
//! generators; Parquet readers; moto's S3 server; the lake oracle.
//!
//! Tests that stop, restart or reconfigure the machine's shared RabbitMQ or
//! Redis call [`disruptive`] first: they run only when
//! `LAKEFLEET_DISRUPTIVE_TESTS=1` (CI sets it), never on a developer's laptop
//! by default.

pub mod gcs;
pub mod soda;
pub mod tlc;

mod data;
mod fleet;
mod oracle;
mod readers;
mod servers;

pub use data::*;
pub use fleet::*;
pub use oracle::*;
pub use readers::*;
pub use servers::*;
