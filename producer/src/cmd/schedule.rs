//! `producer schedule`: the weekly (or monthly) job. Each run plans the latest
//! publications of each dataset and enqueues those missing from the lake,
//! through the same path as `producer backfill`.

use std::process::ExitCode;
use std::time::Duration;

use chrono::{Days, Months};
use lakefleet::catalog::{Cadence, Catalog};
use lakefleet::config::Connections;
use lakefleet::plan::latest_published;

use crate::cli::ScheduleArgs;
use crate::cmd::backfill::Request;

async fn run_once(conn: &Connections, catalog: &Catalog, args: &ScheduleArgs) -> anyhow::Result<ExitCode> {
    let today = chrono::Local::now().date_naive();
    let mut code = ExitCode::SUCCESS;
    for name in &args.datasets {
        let ds = catalog.require(name).map_err(crate::refusal::Refused)?;
        let to = latest_published(ds, today);
        let back = args.lookback.get() - 1;
        let from = match ds.cadence {
            Cadence::Daily => to - Days::new(back as u64),
            Cadence::Weekly => to - Days::new(7 * back as u64),
            Cadence::Monthly => to - Months::new(back),
        }
        .max(ds.first);
        let mut runs = vec![Request { mirror: args.mirror.clone(), scheduled: true, ..Request::new(name, from, to) }];
        if args.refresh_last > 0 {
            let back = args.refresh_last - 1;
            let from = match ds.cadence {
                Cadence::Daily => to - Days::new(back as u64),
                Cadence::Weekly => to - Days::new(7 * back as u64),
                Cadence::Monthly => to - Months::new(back),
            }
            .max(ds.first);
            runs.push(Request {
                mirror: args.mirror.clone(),
                scheduled: true,
                refresh: true,
                force: true,
                ..Request::new(name, from, to)
            });
        }
        for b in runs {
            match crate::cmd::backfill::run(conn, catalog, &b).await {
                Ok(c) if c == ExitCode::SUCCESS => {}
                Ok(c) => code = c,
                Err(e) => {
                    eprintln!("error: {name}: {e:#}");
                    code = ExitCode::FAILURE;
                }
            }
        }
    }
    Ok(code)
}

pub async fn run(conn: &Connections, catalog: &Catalog, args: &ScheduleArgs) -> anyhow::Result<ExitCode> {
    for name in &args.datasets {
        let ds = catalog.require(name).map_err(crate::refusal::Refused)?;
        if let Some(ended) = ds.ended() {
            return Err(crate::refusal::Refused(format!("{name}: not scheduled: {ended}")).into());
        }
    }
    if args.once {
        return run_once(conn, catalog, args).await;
    }
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    loop {
        // A failed run (a service down) is reported and retried at the next tick.
        let _ = run_once(conn, catalog, args).await?;
        let every = Duration::from_secs(args.every_hours.get() * 3600);
        eprintln!("schedule: next run in {}h", args.every_hours);
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = tokio::signal::ctrl_c() => return Ok(ExitCode::SUCCESS),
            _ = term.recv() => return Ok(ExitCode::SUCCESS),
        }
    }
}
