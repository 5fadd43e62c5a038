//! Utilities with no service behind them: [`text`] (bounded texts for
//! headers, Redis and logs, redacted URLs), [`timefmt`] (fast date and time
//! parsing), [`swar`] (eight bytes at a time in a `u64`), [`spool`] (spool
//! files on local disk).

pub mod spool;
pub mod swar;
pub mod text;
pub mod timefmt;
