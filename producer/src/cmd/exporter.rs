//! `producer exporter`: backfill progress (from Redis) and queue depths (from
//! RabbitMQ) as Prometheus gauges, computed at each scrape.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use hyper::StatusCode;
use lakefleet::config::Connections;
use lakefleet::metrics::httpd::{self, PROMETHEUS_TEXT, Response};
use lakefleet::rabbitmq::topology::{self, Topology};
use lakefleet::state::State;
use lapin::options::QueueDeclareOptions;
use prometheus::{Encoder, IntGaugeVec, Opts, Registry, TextEncoder};
use tokio::sync::Mutex;

use crate::cli::ExporterArgs;

struct Exporter {
    state: State,
    topo: Topology,
    amqp_url: lakefleet::rabbitmq::AmqpNodes,
    conn: Mutex<Option<lapin::Connection>>,
    backfills: std::num::NonZeroUsize,
}

impl Exporter {
    async fn queue_depths(&self) -> anyhow::Result<Vec<(&'static str, u64)>> {
        let mut guard = self.conn.lock().await;
        if guard.as_ref().is_none_or(|c| !c.status().connected()) {
            *guard = Some(topology::connect(&self.amqp_url, "lakefleet-exporter").await?);
        }
        let conn = guard.as_ref().expect("just connected");
        let ch = conn.create_channel().await?;
        let passive = QueueDeclareOptions { passive: true, ..Default::default() };
        let depth = |q: String| {
            let ch = ch.clone();
            async move {
                ch.queue_declare(q.as_str().into(), passive, Default::default())
                    .await
                    .map(|q| q.message_count() as u64)
                    .unwrap_or(0)
            }
        };
        // Both lanes: `work` and `retry` count the high lane's queues too.
        let parking = depth(self.topo.parking.clone()).await;
        let (mut work, mut retry) = (0, 0);
        for lane in lakefleet::task::Lane::ALL {
            work += depth(self.topo.work_queue(lane).to_string()).await;
            for l in 0..topology::RETRY_LEVELS {
                retry += depth(self.topo.retry_queue_in(lane, l)).await;
            }
        }
        let _ = ch.close(200, "".into()).await;
        Ok(vec![("work", work), ("retry", retry), ("parking", parking)])
    }

    async fn render(&self) -> anyhow::Result<String> {
        let registry = Registry::new();
        let parts = IntGaugeVec::new(
            Opts::new("lakefleet_backfill_partitions", "Partitions of recent backfills, by state"),
            &["backfill", "dataset", "state"],
        )?;
        let queues =
            IntGaugeVec::new(Opts::new("lakefleet_queue_messages", "Messages in the fleet's queues"), &["queue"])?;
        registry.register(Box::new(parts.clone()))?;
        registry.register(Box::new(queues.clone()))?;
        for id in self.state.recent_backfills(self.backfills).await.context("reading backfills from Redis")? {
            if let Some(s) = self.state.backfill(&id).await? {
                let set = |state: &str, v: u64| parts.with_label_values(&[&s.id, &s.dataset, state]).set(v as i64);
                set("planned", s.planned);
                set("done", s.done);
                set("skipped", s.skipped);
                set("parked", s.parked.len() as u64);
                set("cancelled", s.cancelled);
                set("pending", s.pending());
            }
        }
        for (q, n) in self.queue_depths().await.context("reading queue depths from RabbitMQ")? {
            queues.with_label_values(&[q]).set(n as i64);
        }
        let mut buf = Vec::new();
        TextEncoder::new().encode(&registry.gather(), &mut buf)?;
        Ok(String::from_utf8(buf)?)
    }
}

pub async fn run(conn: &Connections, args: &ExporterArgs) -> anyhow::Result<ExitCode> {
    let state = State::connect(&conn.redis_url, &conn.prefix).await?;
    let exporter = Arc::new(Exporter {
        state,
        topo: conn.topology(),
        amqp_url: conn.amqp_url.clone(),
        conn: Mutex::new(None),
        backfills: args.backfills,
    });
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("binding --listen {}", args.listen))?;
    eprintln!("exporter: http://{}/metrics", listener.local_addr()?);
    let server = httpd::serve(listener, move |path| {
        let exporter = exporter.clone();
        async move {
            match path.as_str() {
                "/metrics" => match exporter.render().await {
                    Ok(body) => Response::ok(PROMETHEUS_TEXT, body),
                    Err(e) => Response::text(StatusCode::SERVICE_UNAVAILABLE, format!("{e:#}\n")),
                },
                "/healthz" => Response::ok("text/plain", "ok\n".into()),
                _ => Response::text(StatusCode::NOT_FOUND, "try /metrics\n"),
            }
        }
    });
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = server => {}
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
    Ok(ExitCode::SUCCESS)
}
