//! `/metrics`, `/healthz` and `/readyz`.

use std::time::Duration;

use hyper::StatusCode;
use lakefleet::metrics::Metrics;
use lakefleet::metrics::httpd::{self, PROMETHEUS_TEXT, Response};
use lakefleet::state::State;
use tokio::net::TcpListener;

async fn redis_up(state: &State, metrics: &Metrics) -> bool {
    let up = tokio::time::timeout(Duration::from_secs(1), state.ping()).await.is_ok_and(|r| r.is_ok());
    metrics.connection_up.with_label_values(&["redis"]).set(up as i64);
    up
}

pub async fn serve(listener: TcpListener, metrics: Metrics, state: State) {
    httpd::serve(listener, move |path| {
        let (metrics, state) = (metrics.clone(), state.clone());
        async move {
            match path.as_str() {
                "/metrics" => {
                    redis_up(&state, &metrics).await;
                    Response::ok(PROMETHEUS_TEXT, metrics.render())
                }
                "/healthz" => Response::ok("text/plain", "ok\n".into()),
                "/readyz" => {
                    // Set by the consume loop: 1 only while it consumes.
                    let amqp = metrics.connection_up.with_label_values(&["rabbitmq"]).get() == 1;
                    let redis = redis_up(&state, &metrics).await;
                    let word = |b: bool| if b { "connected" } else { "NOT connected" };
                    let body = format!("rabbitmq: {}\nredis: {}\n", word(amqp), word(redis));
                    let status = if amqp && redis { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
                    Response::text(status, body)
                }
                _ => Response::text(StatusCode::NOT_FOUND, "try /metrics, /healthz or /readyz\n"),
            }
        }
    })
    .await
}
