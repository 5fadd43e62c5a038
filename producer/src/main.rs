//! `producer`: plan and enqueue backfills, follow them, manage dead letters.
//!
//! - [`cli`]: flags; [`backfill`]: plan and publish; [`status`]: progress;
//!   [`dlq`]: parked tasks; [`exporter`]: progress for Prometheus;
//!   [`schedule`]: the recurring enqueue of new publications;
//!   [`progress`]: terminal display.

mod backfill;
mod cli;
mod ddl;
mod dlq;
mod exporter;
mod progress;
mod schedule;
mod status;

use std::process::ExitCode;

use clap::Parser;
use lakefleet::catalog::Catalog;

use crate::cli::{Cli, Command};

/// A refusal of the user's request: exit code 2 and one line, nothing done.
#[derive(Debug)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// Asks a person at the terminal to type `yes`. Without a terminal the
/// request is refused (exit 2) with `refusal`, which says which flag to pass.
pub fn confirm(question: &str, refusal: String) -> anyhow::Result<bool> {
    use std::io::{BufRead, IsTerminal, Write};
    if !std::io::stdin().is_terminal() {
        return Err(Refused(refusal).into());
    }
    print!("{question} type yes: ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(answer.trim() == "yes")
}

async fn datasets(conn: &lakefleet::config::Connections, catalog: &Catalog) {
    // The tables' state, from the lake (a local lake that does not exist yet is not created).
    let local = !conn.lake_url.contains("://") || conn.lake_url.starts_with("file://");
    let dir = conn.lake_url.strip_prefix("file://").unwrap_or(&conn.lake_url);
    let lake = match local && !std::path::Path::new(dir).exists() {
        true => None,
        false => lakefleet::lake::Lake::open(&conn.lake_url).ok(),
    };
    for d in catalog.iter() {
        let last = d.last.map(|l| l.to_string()).unwrap_or_else(|| "still publishing".into());
        let lag = if d.publish_lag_days > 0 {
            format!(", published {} days after", d.publish_lag_days)
        } else {
            String::new()
        };
        println!("{}  ({}, {} .. {last}{lag}, {} source)", d.name, d.cadence, d.first, d.format);
        if !d.description.is_empty() {
            println!("  {}", d.description);
        }
        match (d.ended(), &d.successor) {
            (Some(ended), _) => println!("  ended: {ended}"),
            (None, Some(next)) => println!("  its publisher's current data: dataset {next}"),
            (None, None) => {}
        }
        match &d.socrata {
            Some(s) => {
                println!("  portal: {}  time column: {}  ({} rows per page)", s.portal, s.time_column, s.page_rows);
                for id in &s.ids {
                    let last = id.last.map(|l| l.to_string()).unwrap_or_else(|| "now".into());
                    println!("    {}/resource/{}  {} .. {last}", s.portal, id.id, id.first);
                }
            }
            None => println!("  url: {}", d.url_template),
        }
        match (&lake, d.table) {
            (_, false) => println!("  table: off (plain Parquet files)"),
            (Some(lake), true) => println!("  {}", status::table_line(lake, d).await),
            (None, true) => println!("  table {}: none yet (no lake at {})", d.name, conn.lake_url),
        }
        if d.format != lakefleet::catalog::SourceFormat::Parquet {
            println!("  schema (v{}): {}", d.schema_version, d.schema_summary().join(", "));
        } else {
            println!("  schema (v{}), each column with the source names it accepts:", d.schema_version);
            for (i, summary) in d.schema_summary().into_iter().enumerate() {
                let names = d.accepted_names(i, None);
                let from = if names.is_empty() { "(only in an era below)".to_string() } else { names.join(" | ") };
                println!("    {summary:<34} <- {from}");
            }
            println!(
                "  columns: missing ones become {}, unknown ones {}{}",
                match d.missing_columns {
                    lakefleet::catalog::MissingColumns::Null => "nulls",
                    lakefleet::catalog::MissingColumns::Fail => "a schema_mismatch",
                },
                match d.unknown_columns {
                    lakefleet::catalog::UnknownColumns::Fail => "park the partition as schema_drift",
                    lakefleet::catalog::UnknownColumns::Ignore => "are ignored",
                },
                if d.ignore_columns.is_empty() {
                    String::new()
                } else {
                    format!("; never read: {}", d.ignore_columns.join(", "))
                }
            );
        }
        for e in &d.eras {
            let last = e.last.map(|l| l.to_string()).unwrap_or_else(|| "now".into());
            println!("  era {} .. {last}: {}", e.first, e.note);
            for (out, names) in &e.sources {
                let from = if names.is_empty() { "(nothing)".to_string() } else { names.join(" | ") };
                println!("    {out} <- {from}");
            }
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let conn = cli.conn.resolve().map_err(Refused)?;
    let catalog = Catalog::load(cli.catalog.as_deref()).map_err(|e| Refused(e.to_string()))?;
    match &cli.command {
        Command::Datasets => {
            datasets(&conn, &catalog).await;
            Ok(ExitCode::SUCCESS)
        }
        Command::Backfill(args) => backfill::run(&conn, &catalog, &backfill::Request::from(args)).await,
        Command::Status(args) => status::run(&conn, &catalog, args.backfill_id.as_deref(), args.limit).await,
        Command::Dlq(cmd) => dlq::run(&conn, cmd).await,
        Command::Exporter(args) => exporter::run(&conn, args).await,
        Command::Cancel(args) => status::cancel(&conn, &args.backfill_id).await,
        Command::Schedule(args) => schedule::run(&conn, &catalog, args).await,
        Command::Hosts(args) => status::hosts(&conn, args).await,
        Command::Vacuum(args) => status::vacuum(&conn, &catalog, args).await,
        Command::Table(cli::TableCommand::Init { dataset }) => status::table_init(&conn, &catalog, dataset).await,
        Command::Table(cli::TableCommand::Ddl(args)) => {
            let ds = catalog.require(&args.dataset).map_err(Refused)?;
            println!("{}", ddl::ddl(ds, &conn.lake_url, args).map_err(Refused)?);
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
