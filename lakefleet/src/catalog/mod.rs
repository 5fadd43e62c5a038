//! The dataset catalog: what a dataset is (URL template, cadence, available
//! range, CSV dialect, explicit output schema) and where its files come from.
//!
//! Built-in entries live in [`Catalog::builtin`]; users add or override entries
//! with a TOML file (see `testdata/catalog.example.toml` and the README).
//!
//! Rooms: `types.rs` (a dataset and its options, with defaults),
//! `cadence.rs` (the partition a date falls in, and the next one),
//! `dataset.rs` (what a partition's date gives: URLs, keys, eras),
//! `validate.rs` (every refusal of an entry), `load.rs` (built-ins and
//! user files).

pub mod cadence;
mod dataset;
mod load;
mod types;
mod validate;

#[cfg(test)]
mod tests;

pub use dataset::{file_name, host_of, snake_case};
pub use load::{Catalog, CatalogError};
pub use types::*;
pub use validate::MAX_COLUMNS;
