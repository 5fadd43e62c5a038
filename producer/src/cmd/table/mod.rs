//! `producer table`: `init` (a table over existing files) and `ddl` (how
//! other engines declare the table).

pub mod ddl;
pub mod init;
