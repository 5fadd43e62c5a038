//! `worker`: the lakefleet service that turns tasks into Parquet objects.
//!
//! - [`settings`]: flags, resolved once into the settings the rest uses;
//! - [`service`]: consume loop, reconnects, clean shutdown;
//! - [`process`]: one task (checked against the catalog, dedupe, lease,
//!   download, convert, upload, done marker);
//! - [`outcome`]: what happened to a task, settled with the broker and
//!   recorded (log, metrics, Redis) in one place;
//! - [`http`]: `/metrics`, `/healthz`, `/readyz`.
//!
//! `main` only parses flags, sets up logging and wires the parts.

mod ctx;
mod http;
mod outcome;
mod process;
mod service;
mod settings;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Parser, Subcommand};
use lakefleet::catalog::Catalog;
use lakefleet::convert::Provenance;
use lakefleet::lake::Lake;
use lakefleet::metrics::Metrics;
use lakefleet::source::Fetcher;
use lakefleet::state::State;
use tracing::info;

use crate::settings::{RunArgs, Settings};

/// The lakefleet worker: consumes backfill tasks from RabbitMQ, converts each
/// source (CSV, Parquet, a Socrata slice) into the dataset's Parquet schema and uploads it to
/// the lake, exactly once.
///
/// Run several (on one or many machines) to go faster. Stop with SIGTERM or
/// Ctrl-C: it stops taking tasks, lets in-flight tasks finish within
/// --shutdown-grace, returns the rest to the queue, and exits 0.
///
/// Exit codes: 0 stopped cleanly, 1 failure (a service unreachable at start),
/// 2 refused (an invalid flag or variable, a bad catalog).
///
/// Environment only: SOCRATA_APP_TOKEN, sent as X-App-Token to Socrata
/// portals (never logged).
#[derive(Debug, Parser)]
#[command(name = "worker", version, args_conflicts_with_subcommands = true)]
struct Cli {
    #[command(flatten)]
    run: RunArgs,
    /// Extra or overriding datasets (TOML); must match the producer's.
    #[arg(long, env = "LAKEFLEET_CATALOG", global = true)]
    catalog: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Cmd>,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Convert one local file or URL to Parquet without the queue (for
    /// checking a dataset definition, and for benchmarks).
    Convert {
        /// Dataset whose schema to use.
        #[arg(long)]
        dataset: String,
        /// Source: a local path (plain or gzip CSV, or Parquet, recognised by
        /// its magic bytes) or an http(s):// URL (in the dataset's format).
        /// A Parquet source's era (its column names) is picked by the first
        /// YYYY-MM in the file name, e.g. yellow_tripdata_2009-01.parquet.
        input: String,
        /// Output Parquet file (written to OUTPUT.partial, then renamed).
        output: PathBuf,
    },
    /// Exit 0 when the local worker's /readyz answers 200 (for container health checks).
    Healthcheck,
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => info!("SIGINT received"),
        _ = term.recv() => info!("SIGTERM received"),
    }
}

async fn run_service(s: Settings, catalog: Catalog) -> anyhow::Result<()> {
    let metrics = Metrics::new();
    for d in catalog.iter() {
        metrics.init_dataset(&d.name);
        metrics.init_host(&lakefleet::catalog::host_of(d.socrata.as_ref().map_or(&d.url_template, |s| &s.portal)));
    }
    let state = State::connect(&s.conn.redis_url, &s.conn.prefix).await?;
    metrics.connection_up.with_label_values(&["redis"]).set(1);
    let lake = Lake::open(&s.conn.lake_url)?.with_single_put_max(s.single_put_max).with_spool_dir(s.spool_dir.clone());
    std::fs::create_dir_all(&s.spool_dir)
        .with_context(|| format!("creating spool folder {}", s.spool_dir.display()))?;
    let stale = lakefleet::util::spool::clean(&s.spool_dir);
    if stale > 0 {
        info!(stale, dir = %s.spool_dir.display(), "removed spool files of dead workers");
    }
    // Socrata's app token comes from the environment only (never a flag, never logged).
    let fetcher =
        Fetcher::new(s.connect_timeout, s.read_timeout)?.with_app_token(std::env::var("SOCRATA_APP_TOKEN").ok());
    let listener = tokio::net::TcpListener::bind(&s.metrics_addr)
        .await
        .with_context(|| format!("binding --metrics-addr {}", s.metrics_addr))?;
    let bound = listener.local_addr()?;
    tokio::spawn(http::serve(listener, metrics.clone(), state.clone()));
    info!(%bound, worker = %s.worker_id, lake = %s.conn.lake_url, "metrics on http://{bound}/metrics");
    let ctx = Arc::new(ctx::Ctx {
        catalog,
        state,
        lake,
        fetcher,
        metrics,
        topo: s.conn.topology(),
        worker_id: s.worker_id.clone(),
        spool_dir: s.spool_dir.clone(),
        lease_ttl: s.lease_ttl,
        task_timeout: s.task_timeout,
        poison_after: s.poison_after,
        tables: s.tables,
        views: Default::default(),
        stop: tokio::sync::watch::Sender::new(ctx::Stop::Running),
    });
    let settings = service::Settings {
        amqp: s.conn.amqp_url.clone(),
        concurrency: s.concurrency,
        shutdown_grace: s.shutdown_grace,
    };
    service::run(ctx, settings, shutdown_signal()).await?;
    info!("stopped");
    Ok(())
}

async fn convert_one(catalog: &Catalog, dataset: &str, input: &str, output: &std::path::Path) -> anyhow::Result<()> {
    let ds = catalog.require(dataset).map_err(|e| anyhow::anyhow!(e))?.clone();
    let partial = output.with_extension("parquet.partial");
    let file = std::fs::File::create(&partial).with_context(|| format!("creating {}", partial.display()))?;
    let start = Instant::now();
    let prov = Provenance::file(input);
    let out = std::io::BufWriter::with_capacity(1 << 20, file);
    let stats = if lakefleet::source::is_http(input) {
        let fetcher = Fetcher::new(Duration::from_secs(10), Duration::from_secs(60))?;
        let download = fetcher.open(input, |_| {}).await?;
        let spool = output.with_extension("parquet.source");
        let s = spool.clone();
        let r = tokio::task::spawn_blocking(move || {
            lakefleet::convert::convert_source(&ds, download.reader, download.content_length, &s, out, &prov)
        })
        .await?;
        let _ = std::fs::remove_file(&spool);
        r
    } else {
        let path = PathBuf::from(input);
        tokio::task::spawn_blocking(move || lakefleet::convert::convert_file(&ds, &path, out, &prov)).await?
    };
    if let Some(peak) = peak_rss_mib() {
        eprintln!("peak RSS: {peak} MiB");
    }
    let stats = match stats {
        Ok(s) => s,
        Err(e) => {
            let _ = std::fs::remove_file(&partial);
            return Err(e.into());
        }
    };
    std::fs::rename(&partial, output).with_context(|| format!("renaming to {}", output.display()))?;
    let secs = start.elapsed().as_secs_f64();
    let size = std::fs::metadata(output)?.len();
    println!(
        "{input} -> {}: {} rows, {} source bytes ({:.1} MB/s), {} Parquet bytes, {:.2}s, sha256 {}",
        output.display(),
        stats.rows,
        stats.source_bytes,
        stats.source_bytes as f64 / 1e6 / secs.max(1e-9),
        size,
        secs,
        stats.source_sha256
    );
    Ok(())
}

/// This process's peak resident set (`VmHWM`), in MiB, where /proc has it.
fn peak_rss_mib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: u64 =
        status.lines().find_map(|l| l.strip_prefix("VmHWM:"))?.trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kb / 1024)
}

async fn healthcheck(metrics_addr: &str) -> anyhow::Result<()> {
    let port = metrics_addr.rsplit(':').next().unwrap_or("9464");
    let url = format!("http://127.0.0.1:{port}/readyz");
    let resp = reqwest::get(&url).await.with_context(|| format!("GET {url}"))?;
    let status = resp.status();
    let body = resp.text().await.unwrap_or_default();
    anyhow::ensure!(status.is_success(), "{url}: {status}: {}", body.trim().replace('\n', ", "));
    Ok(())
}

fn main() -> ExitCode {
    // glibc gives every thread that allocates its own arena, which inflates
    // RSS with many runtime and blocking threads; two arenas keep the worker's
    // peak memory flat (measured in bench/).
    // Blocks up to 32 MiB come from the heap instead of fresh mappings, and
    // up to 16 MiB freed at a heap's top stay there: a conversion allocates
    // and frees the same batch and page buffers over and over, and faulting
    // fresh zeroed pages in each time cost 7-9% of its CPU (MTA 10 weeks,
    // TLC month; `perf`: clear_page, page faults), for 1-2 MiB more peak
    // RSS (a 64 MiB trim threshold held 10 MiB more on 10,000 columns).
    // SAFETY: called first thing in main, before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 16 << 20);
    }
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("RUST_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let catalog = match Catalog::load(cli.catalog.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let result = match cli.command {
        Some(Cmd::Convert { dataset, input, output }) => rt.block_on(convert_one(&catalog, &dataset, &input, &output)),
        Some(Cmd::Healthcheck) => rt.block_on(healthcheck(&cli.run.metrics_addr)),
        None => match cli.run.resolve() {
            Ok(s) => rt.block_on(run_service(s, catalog)),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        },
    };
    // A conversion still running on a blocking thread was handed back with
    // its task: the process does not wait for it.
    rt.shutdown_timeout(std::time::Duration::from_millis(200));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
