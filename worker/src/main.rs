//! `worker`: the lakefleet service that turns tasks into Parquet objects.
//!
//! - [`service`]: consume loop, reconnects, clean shutdown;
//! - [`process`]: one task from delivery to ack (dedupe, lease, download,
//!   convert, upload, done marker; retry or park);
//! - [`http`]: `/metrics`, `/healthz`, `/readyz`.
//!
//! `main` only parses flags, sets up logging and wires the parts.

mod http;
mod process;
mod service;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use lakefleet::catalog::Catalog;
use lakefleet::config::Connections;
use lakefleet::lake::Lake;
use lakefleet::metrics::Metrics;
use lakefleet::source::Fetcher;
use lakefleet::state::State;
use tracing::info;

/// The lakefleet worker: consumes backfill tasks from RabbitMQ, converts each
/// source CSV into Parquet and uploads it to the lake, exactly once.
///
/// Run several (on one or many machines) to go faster. Stop with SIGTERM or
/// Ctrl-C: it stops taking tasks, lets in-flight tasks finish within
/// --shutdown-grace, returns the rest to the queue, and exits 0.
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
        /// Source: a local path or an http(s):// URL (plain or gzip CSV).
        input: String,
        /// Output Parquet file (written to OUTPUT.partial, then renamed).
        output: PathBuf,
    },
    /// Exit 0 when the local worker's /readyz answers 200 (for container health checks).
    Healthcheck,
}

#[derive(Debug, Args)]
struct RunArgs {
    #[command(flatten)]
    conn: Connections,
    /// Tasks processed at once (and the RabbitMQ prefetch). Default: the number of cores.
    #[arg(long, env = "LAKEFLEET_CONCURRENCY")]
    concurrency: Option<usize>,
    /// Seconds in-flight tasks get to finish after SIGTERM before they go back to the queue.
    #[arg(long, env = "LAKEFLEET_SHUTDOWN_GRACE", default_value_t = 30)]
    shutdown_grace: u64,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "LAKEFLEET_METRICS_ADDR", default_value = "127.0.0.1:9464")]
    metrics_addr: String,
    /// Folder for Parquet files being built before upload (default: the system temp folder).
    #[arg(long, env = "LAKEFLEET_SPOOL_DIR")]
    spool_dir: Option<PathBuf>,
    /// Seconds a partition lease lasts without renewal (renewed every third of it).
    #[arg(long, env = "LAKEFLEET_LEASE_TTL", default_value_t = 60)]
    lease_ttl: u64,
    /// Seconds a task may take before it is abandoned and retried; keep it well
    /// under RabbitMQ's consumer timeout (30 minutes by default).
    #[arg(long, env = "LAKEFLEET_TASK_TIMEOUT", default_value_t = 1200)]
    task_timeout: u64,
    /// Parquet files larger than this many bytes are uploaded as multipart
    /// uploads (atomic on completion) instead of one conditional PUT.
    #[arg(long, env = "LAKEFLEET_SINGLE_PUT_MAX", default_value_t = lakefleet::lake::SINGLE_PUT_MAX)]
    single_put_max: u64,
    /// Seconds to wait for a source server to accept the connection.
    #[arg(long, env = "LAKEFLEET_CONNECT_TIMEOUT", default_value_t = 10)]
    connect_timeout: u64,
    /// Seconds without a byte from the source before the download fails (and is retried).
    #[arg(long, env = "LAKEFLEET_READ_TIMEOUT", default_value_t = 60)]
    read_timeout: u64,
    /// Name of this worker in parked messages and logs (default: host-pid).
    #[arg(long, env = "LAKEFLEET_WORKER_ID")]
    worker_id: Option<String>,
}

async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => info!("SIGINT received"),
        _ = term.recv() => info!("SIGTERM received"),
    }
}

async fn run_service(args: RunArgs, catalog: Catalog) -> anyhow::Result<()> {
    let worker_id = args.worker_id.clone().unwrap_or_else(|| {
        let host =
            std::fs::read_to_string("/etc/hostname").map(|h| h.trim().to_string()).unwrap_or_else(|_| "worker".into());
        format!("{host}-{}", std::process::id())
    });
    let concurrency =
        args.concurrency.unwrap_or_else(|| std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1)).max(1);
    let metrics = Metrics::new();
    for d in catalog.iter() {
        metrics.init_dataset(&d.name);
    }
    let state = State::connect(&args.conn.redis_url, &args.conn.prefix).await?;
    metrics.connection_up.with_label_values(&["redis"]).set(1);
    let lake = Lake::open(&args.conn.lake_url)?.with_single_put_max(args.single_put_max);
    let spool_dir = args.spool_dir.clone().unwrap_or_else(std::env::temp_dir);
    std::fs::create_dir_all(&spool_dir).with_context(|| format!("creating spool folder {}", spool_dir.display()))?;
    let stale = process::clean_spool(&spool_dir);
    if stale > 0 {
        info!(stale, dir = %spool_dir.display(), "removed spool files of dead workers");
    }
    let fetcher = Fetcher::new(Duration::from_secs(args.connect_timeout), Duration::from_secs(args.read_timeout))?;
    let listener = tokio::net::TcpListener::bind(&args.metrics_addr)
        .await
        .with_context(|| format!("binding --metrics-addr {}", args.metrics_addr))?;
    let bound = listener.local_addr()?;
    tokio::spawn(http::serve(listener, metrics.clone(), state.clone()));
    info!(%bound, worker = %worker_id, lake = %args.conn.lake_url, "metrics on http://{bound}/metrics");
    let ctx = Arc::new(process::Ctx {
        catalog,
        state,
        lake,
        fetcher,
        metrics,
        topo: args.conn.topology(),
        worker_id,
        spool_dir,
        lease_ttl: Duration::from_secs(args.lease_ttl.max(3)),
        task_timeout: Duration::from_secs(args.task_timeout.max(1)),
    });
    let settings = service::Settings {
        amqp_url: args.conn.amqp_url.clone(),
        concurrency,
        shutdown_grace: Duration::from_secs(args.shutdown_grace),
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
    let source: Box<dyn std::io::Read + Send> = if input.starts_with("http://") || input.starts_with("https://") {
        let fetcher = Fetcher::new(Duration::from_secs(10), Duration::from_secs(60))?;
        Box::new(fetcher.open(input, |_| {}).await?.0)
    } else {
        Box::new(std::fs::File::open(input).with_context(|| format!("opening {input}"))?)
    };
    let name = input.to_string();
    let out = std::io::BufWriter::with_capacity(1 << 20, file);
    let stats = tokio::task::spawn_blocking(move || lakefleet::convert::convert(&ds, &name, source, out, &[])).await?;
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
    // SAFETY: called first thing in main, before any other thread exists.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
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
    if cli.command.is_none()
        && let Err(e) = cli.run.conn.validate()
    {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("tokio runtime");
    let result = rt.block_on(async {
        match cli.command {
            Some(Cmd::Convert { dataset, input, output }) => convert_one(&catalog, &dataset, &input, &output).await,
            Some(Cmd::Healthcheck) => healthcheck(&cli.run.metrics_addr).await,
            None => run_service(cli.run, catalog).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
