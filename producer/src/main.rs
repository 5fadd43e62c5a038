//! `producer`: plan and enqueue backfills, follow them, manage dead letters.
//!
//! - [`cli`]: flags; [`cmd`]: one file per command (`backfill`, `status`,
//!   `dlq`, `schedule`...); [`refusal`]: exit 2 and the typed confirmation;
//!   [`progress`]: terminal display. This file only dispatches.

mod cli;
mod cmd;
mod progress;
mod refusal;

use std::process::ExitCode;

use clap::Parser;
use lakefleet::catalog::Catalog;

use crate::cli::{Cli, Command};
use crate::cmd::*;
use crate::refusal::Refused;

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let conn = cli.conn.resolve().map_err(Refused)?;
    let catalog = Catalog::load(cli.catalog.as_deref()).map_err(|e| Refused(e.to_string()))?;
    match &cli.command {
        Command::Datasets => {
            datasets::run(&conn, &catalog).await;
            Ok(ExitCode::SUCCESS)
        }
        Command::Backfill(args) => backfill::run(&conn, &catalog, &backfill::Request::from(args)).await,
        Command::Status(args) => status::run(&conn, &catalog, args.backfill_id.as_deref(), args.limit).await,
        Command::Dlq(cmd) => dlq::run(&conn, cmd).await,
        Command::Exporter(args) => exporter::run(&conn, args).await,
        Command::Cancel(args) => cancel::run(&conn, &args.backfill_id).await,
        Command::Schedule(args) => schedule::run(&conn, &catalog, args).await,
        Command::Hosts(args) => hosts::run(&conn, args).await,
        Command::Vacuum(args) => vacuum::run(&conn, &catalog, args).await,
        Command::Table(cli::TableCommand::Init { dataset }) => table::init::run(&conn, &catalog, dataset).await,
        Command::Table(cli::TableCommand::Ddl(args)) => {
            let ds = catalog.require(&args.dataset).map_err(Refused)?;
            println!("{}", table::ddl::ddl(ds, &conn.lake_url, args).map_err(Refused)?);
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn main() -> ExitCode {
    // Behave like a Unix tool in a pipe (`producer dlq list | head`): die quietly on SIGPIPE.
    // SAFETY: called first thing in main, before any other thread exists.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    match rt.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.downcast_ref::<Refused>().is_some() { ExitCode::from(2) } else { ExitCode::FAILURE }
        }
    }
}
