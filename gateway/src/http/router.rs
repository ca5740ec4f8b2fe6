//! Maps method and path to a handler, and decorates every response the same way.

use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use serde_json::json;

use tracing::Instrument;

use super::server::Handler;
use super::telemetry;
use crate::audit::RejectedRequest;
use crate::error::{ApiError, Dialect, json_response};
use crate::guard;
use crate::ingest;
use crate::state::{AppState, RequestContext};
use shared::Provider;

/// The routes of the public listener.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Route {
    Pluggy,
    LiveTip,
    Health,
    Ready,
}

impl Route {
    fn resolve(path: &str) -> Option<Self> {
        match path {
            "/api/banking/pluggy/webhook/" | "/api/banking/pluggy/webhook" => Some(Self::Pluggy),
            "/webhook" => Some(Self::LiveTip),
            "/healthz" => Some(Self::Health),
            "/readyz" => Some(Self::Ready),
            _ => None,
        }
    }

    fn allow(self) -> &'static str {
        match self {
            Self::Pluggy | Self::LiveTip => "POST",
            Self::Health | Self::Ready => "GET, HEAD",
        }
    }

    fn accepts(self, method: &Method) -> bool {
        match self {
            Self::Pluggy | Self::LiveTip => method == Method::POST,
            Self::Health | Self::Ready => method == Method::GET || method == Method::HEAD,
        }
    }

    fn dialect(self) -> Dialect {
        match self {
            Self::LiveTip => Dialect::LiveTip,
            Self::Pluggy | Self::Health | Self::Ready => Dialect::Plain,
        }
    }

    /// The route as in metrics and span names.
    fn template(self) -> &'static str {
        match self {
            Self::Pluggy => "/api/banking/pluggy/webhook/",
            Self::LiveTip => "/webhook",
            Self::Health => "/healthz",
            Self::Ready => "/readyz",
        }
    }

    fn provider_name(self) -> &'static str {
        match self {
            Self::Pluggy => "pluggy",
            Self::LiveTip => "livetip",
            Self::Health | Self::Ready => "unknown",
        }
    }
}

/// The public listener's routes.
#[derive(Clone, Debug)]
pub struct PublicRoutes(pub Arc<AppState>);

impl Handler for PublicRoutes {
    async fn handle(&self, client_ip: IpAddr, request: Request<Incoming>) -> Response<Full<Bytes>> {
        handle(self.0.clone(), client_ip, request).await
    }
}

/// Serves one request inside its server span; never fails (errors become responses).
pub async fn handle(
    state: Arc<AppState>,
    client_ip: IpAddr,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let route = Route::resolve(request.uri().path());
    let client_ip = guard::client_ip(client_ip, request.headers(), &state.trusted_proxies);
    let span = telemetry::server_span(
        request.method(),
        route.map_or("unmatched", Route::template),
        client_ip,
        request.headers(),
    );
    let ctx = RequestContext::new(client_ip, &span);
    telemetry::record_trace(&span, &ctx.trace);
    let started = std::time::Instant::now();
    let response = serve(&state, &ctx, route, request)
        .instrument(span.clone())
        .await;
    telemetry::finish_server_span(
        &span,
        route.map_or("unknown", Route::provider_name),
        route.map_or("unmatched", Route::template),
        response.status(),
        started.elapsed(),
    );
    response
}

async fn serve(
    state: &AppState,
    ctx: &RequestContext,
    route: Option<Route>,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let ctx = ctx.clone();
    let method = request.method().clone();
    // A handle on the request's own bytes: the path is copied only for a rejection's record.
    let uri = request.uri().clone();
    tracing::Span::current().record("request_id", tracing::field::display(ctx.request_id));
    let outcome = match route {
        None => Err(ApiError::NotFound),
        Some(route) if !route.accepts(&method) => Err(ApiError::MethodNotAllowed {
            allow: route.allow(),
        }),
        Some(Route::Health) => Ok(json_response(StatusCode::OK, &json!({"status": "ok"}))),
        Some(Route::Ready) => Ok(readiness(state)),
        Some(Route::Pluggy) => match state.admit(Provider::Pluggy, ctx.client_ip) {
            // The slot is held until the answer is ready.
            Ok(_slot) => ingest::pluggy::handle(state, &ctx, request).await,
            Err(refused) => Err(refused),
        },
        Some(Route::LiveTip) => match state.admit(Provider::LiveTip, ctx.client_ip) {
            Ok(_slot) => ingest::livetip::handle(state, &ctx, request).await,
            Err(refused) => Err(refused),
        },
    };
    let mut response = match outcome {
        Ok(response) => response,
        Err(error) => {
            let dialect = route.map_or(Dialect::Plain, Route::dialect);
            if error.is_rejection() {
                let provider = route.map_or("unknown", Route::provider_name);
                metrics::counter!("hookwire_gateway_rejected_total",
                    "provider" => provider, "reason" => error.metric_reason())
                .increment(1);
                // One line per client and reason per window is written by the audit
                // sink; this one is for debugging only.
                tracing::debug!(
                    request_id = %ctx.request_id,
                    path = %uri.path(),
                    status = error.status().as_u16(),
                    reason = %error.reason(),
                    client_ip = %ctx.client_ip,
                    "request rejected"
                );
                state.audit.record(RejectedRequest {
                    timestamp: chrono::Utc::now()
                        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
                    provider,
                    method: method.to_string(),
                    path: uri.path().to_owned(),
                    status: error.status().as_u16(),
                    reason: error.reason(),
                    kind: error.metric_reason(),
                    client_ip: Some(ctx.client_ip),
                    request_id: ctx.request_id.to_string(),
                    trace_id: ctx.trace.trace_id(),
                    count: 1,
                    window_secs: 0,
                });
            }
            error.into_response(dialect)
        }
    };
    finish(&ctx, &method, &mut response);
    response
}

/// Headers every response carries, and HEAD's empty body.
pub fn finish(ctx: &RequestContext, method: &Method, response: &mut Response<Full<Bytes>>) {
    let headers = response.headers_mut();
    let mut text = uuid::Uuid::encode_buffer();
    if let Ok(id) = HeaderValue::from_str(ctx.request_id.hyphenated().encode_lower(&mut text)) {
        headers.insert("x-request-id", id);
    }
    if let Ok(id) = HeaderValue::from_str(&ctx.trace.trace_id()) {
        headers.insert("x-trace-id", id);
    }
    if method == Method::HEAD {
        *response.body_mut() = Full::new(Bytes::new());
    }
}

fn readiness(state: &AppState) -> Response<Full<Bytes>> {
    if state.is_ready() {
        json_response(StatusCode::OK, &json!({"status": "ready"}))
    } else {
        let reason = if state.draining.load(std::sync::atomic::Ordering::Relaxed) {
            "shutting down"
        } else {
            "broker not connected"
        };
        json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({"status": "not ready", "reason": reason}),
        )
    }
}
