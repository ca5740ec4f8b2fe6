//! `/healthz`, `/readyz` and `/metrics` on `WORKER_METRICS_ADDR`, for orchestrators and
//! Prometheus. Unauthenticated like any metrics port: no secret or personal data is
//! in it; keep the port off the public network (the NetworkPolicy does).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::app::WorkerContext;

/// Serves until `shutdown`.
pub async fn serve(listener: TcpListener, ctx: Arc<WorkerContext>, shutdown: CancellationToken) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.cancelled() => return,
        };
        let Ok((stream, _)) = accepted else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                let ctx = ctx.clone();
                async move { Ok::<_, Infallible>(route(&ctx, request.uri().path()).await) }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn route(ctx: &WorkerContext, path: &str) -> Response<Full<Bytes>> {
    match path {
        "/healthz" => json(StatusCode::OK, serde_json::json!({"status": "ok"})),
        "/metrics" => {
            let mut response = Response::new(Full::new(Bytes::from(shared::metrics::render())));
            response.headers_mut().insert(
                http::header::CONTENT_TYPE,
                http::HeaderValue::from_static(shared::metrics::CONTENT_TYPE),
            );
            response
        }
        "/readyz" => {
            let broker = ctx.link.is_ready();
            let consuming = ctx.is_consuming();
            let database = tokio::time::timeout(Duration::from_secs(2), shared::db::ping(&ctx.db))
                .await
                .unwrap_or(false);
            let ready = broker && consuming && database;
            json(
                if ready {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                },
                serde_json::json!({
                    "status": if ready { "ready" } else { "not ready" },
                    "broker": broker,
                    "consuming": consuming,
                    "database": database,
                }),
            )
        }
        _ => json(
            StatusCode::NOT_FOUND,
            serde_json::json!({"error": "no such route"}),
        ),
    }
}

fn json(status: StatusCode, body: serde_json::Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}
