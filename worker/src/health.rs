//! `/healthz`, `/readyz` and `/metrics` on `WORKER_METRICS_ADDR`, for orchestrators and
//! Prometheus. Unauthenticated like any metrics port: no secret or personal data is
//! in it. It listens on loopback unless told otherwise; where Prometheus scrapes it
//! (compose, Kubernetes) the NetworkPolicy keeps the port off the public network.
//! Silent sockets are closed and one address holds few connections, as on the gateway.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use shared::connection::{Activity, PerClient, Tracked};

use crate::context::WorkerContext;

/// Serves until `shutdown`.
pub async fn serve(listener: TcpListener, ctx: Arc<WorkerContext>, shutdown: CancellationToken) {
    let per_client = PerClient::new(MAX_CONNECTIONS_PER_CLIENT);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = shutdown.cancelled() => return,
        };
        let Ok((stream, peer)) = accepted else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Some(slot) = per_client.admit(peer.ip()) else {
            continue;
        };
        let ctx = ctx.clone();
        let idle_timeout = ctx.settings.worker_http_idle_timeout;
        tokio::spawn(async move {
            let activity = Activity::new();
            let in_hand = activity.clone();
            let service = service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                let ctx = ctx.clone();
                let busy = in_hand.busy();
                async move {
                    let response = route(&ctx, request.uri().path()).await;
                    drop(busy);
                    Ok::<_, Infallible>(response)
                }
            });
            // HTTP/1.1 only, with a header deadline: a client that trickles one header
            // byte at a time (resetting the idle timer) is still cut off.
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(idle_timeout);
            let builder = builder.http1_only();
            let connection = builder.serve_connection(
                TokioIo::new(Tracked::new(stream, activity.clone())),
                service,
            );
            tokio::select! {
                _ = connection => {}
                () = activity.idle(idle_timeout) => {}
            }
            drop(slot);
        });
    }
}

/// Prometheus and the kubelet need a handful each.
const MAX_CONNECTIONS_PER_CLIENT: usize = 32;

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
