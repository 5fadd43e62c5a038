//! `/metrics` and health endpoints, served by hyper (already in the tree
//! through reqwest): HTTP/1.1, GET and HEAD, keep-alive, a bounded lifetime
//! per connection.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// An answer: status, content type, body.
pub struct Response {
    pub status: StatusCode,
    pub content_type: &'static str,
    pub body: String,
}

impl Response {
    pub fn ok(content_type: &'static str, body: String) -> Self {
        Response { status: StatusCode::OK, content_type, body }
    }

    pub fn text(status: StatusCode, body: impl Into<String>) -> Self {
        Response { status, content_type: "text/plain", body: body.into() }
    }
}

/// Prometheus' text exposition content type.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4";

/// A connection (Prometheus keeps one open between scrapes) lives at most this long.
const CONNECTION_LIFETIME: Duration = Duration::from_secs(300);

/// Serves `handler(path)` on `listener` forever.
pub async fn serve<F, Fut>(listener: TcpListener, handler: F)
where
    F: Fn(String) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Response> + Send + 'static,
{
    let handler = Arc::new(handler);
    loop {
        let Ok((sock, _)) = listener.accept().await else { continue };
        let handler = handler.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<Incoming>| {
                let handler = handler.clone();
                async move {
                    let r = if req.method() == Method::GET || req.method() == Method::HEAD {
                        handler(req.uri().path().to_string()).await
                    } else {
                        Response::text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n")
                    };
                    let mut resp = hyper::Response::new(Full::new(Bytes::from(r.body)));
                    *resp.status_mut() = r.status;
                    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(r.content_type));
                    Ok::<_, Infallible>(resp)
                }
            });
            let conn = http1::Builder::new().serve_connection(TokioIo::new(sock), svc);
            let _ = tokio::time::timeout(CONNECTION_LIFETIME, conn).await;
        });
    }
}
