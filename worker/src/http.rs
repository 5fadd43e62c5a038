//! `/metrics`, `/healthz` and `/readyz` over a minimal HTTP/1.1 responder.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use lakefleet::metrics::Metrics;
use lakefleet::state::State;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::service::Ready;

pub async fn serve(listener: TcpListener, metrics: Metrics, state: State, ready: Arc<Ready>) {
    loop {
        let Ok((mut sock, _)) = listener.accept().await else {
            continue;
        };
        let (metrics, state, ready) = (metrics.clone(), state.clone(), ready.clone());
        tokio::spawn(async move {
            let mut buf = vec![0u8; 4096];
            let mut n = 0;
            // Read until the end of the request head (or a small limit).
            while n < buf.len() {
                match tokio::time::timeout(Duration::from_secs(5), sock.read(&mut buf[n..])).await {
                    Ok(Ok(0)) | Err(_) | Ok(Err(_)) => break,
                    Ok(Ok(k)) => n += k,
                }
                if buf[..n].windows(4).any(|w| w == b"\r\n\r\n") {
                    break;
                }
            }
            let head = String::from_utf8_lossy(&buf[..n]);
            let path = head.split_whitespace().nth(1).unwrap_or("/");
            let path = path.split('?').next().unwrap_or(path);
            let (status, ctype, body) = match path {
                "/metrics" => {
                    let redis_up =
                        tokio::time::timeout(Duration::from_secs(1), state.ping()).await.is_ok_and(|r| r.is_ok());
                    metrics.connection_up.with_label_values(&["redis"]).set(redis_up as i64);
                    ("200 OK", "text/plain; version=0.0.4", metrics.render())
                }
                "/healthz" => ("200 OK", "text/plain", "ok\n".to_string()),
                "/readyz" => {
                    let amqp = ready.amqp.load(Ordering::SeqCst);
                    let redis =
                        tokio::time::timeout(Duration::from_secs(1), state.ping()).await.is_ok_and(|r| r.is_ok());
                    metrics.connection_up.with_label_values(&["redis"]).set(redis as i64);
                    let body = format!("rabbitmq: {}\nredis: {}\n", up(amqp), up(redis));
                    if amqp && redis {
                        ("200 OK", "text/plain", body)
                    } else {
                        ("503 Service Unavailable", "text/plain", body)
                    }
                }
                _ => ("404 Not Found", "text/plain", "try /metrics, /healthz or /readyz\n".to_string()),
            };
            let resp = format!(
                "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = sock.write_all(resp.as_bytes()).await;
            let _ = sock.shutdown().await;
        });
    }
}

fn up(b: bool) -> &'static str {
    if b { "connected" } else { "NOT connected" }
}
