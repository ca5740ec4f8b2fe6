//! The admin listener: the LiveTip specification's monitoring routes, the payments API,
//! events and dead letters, the console page over them, and the development-only test
//! webhook. Separate from the public listener, every data route behind a bearer token
//! (the console's assets hold no data), and the only part of the gateway that uses the
//! database.

pub mod console;
pub mod dead_letters;
pub mod events;
pub mod monitoring;
pub mod overview;
pub mod payments;
pub mod query;

use std::net::IpAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use sea_orm::DatabaseConnection;
use serde_json::json;
use shared::secret::SecretList;
use tracing::Instrument;

use crate::error::{ApiError, Dialect, json_response};
use crate::http::router::finish;
use crate::http::server::Handler;
use crate::ingest;
use crate::state::{AppState, RequestContext};

/// What the admin routes share.
#[derive(Debug)]
pub struct AdminState {
    /// Read by the monitoring routes, written by `POST /payments`.
    pub db: DatabaseConnection,
    /// `None`: no authentication (only allowed on loopback).
    pub token: Option<SecretList>,
    /// `POST /test-webhook` is on.
    pub development: bool,
    /// The public side, for `/test-webhook`'s trip through the real path.
    pub app: Arc<AppState>,
    /// `TRACE_UI_URL`: a trace's page, `{traceId}` standing for the id.
    pub trace_ui: Option<String>,
}

impl AdminState {
    /// The trace viewer's link for `trace_id`, when one is configured.
    pub fn trace_url(&self, trace_id: Option<&str>) -> Option<String> {
        Some(self.trace_ui.as_ref()?.replace("{traceId}", trace_id?))
    }
}

/// The admin listener's routes.
#[derive(Clone, Debug)]
pub struct AdminRoutes(pub Arc<AdminState>);

impl Handler for AdminRoutes {
    async fn handle(&self, client_ip: IpAddr, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let span = crate::http::telemetry::server_span(
            request.method(),
            "admin",
            client_ip,
            request.headers(),
        );
        let ctx = RequestContext::new(client_ip, &span);
        crate::http::telemetry::record_trace(&span, &ctx.trace);
        let method = request.method().clone();
        // `/test-webhook` answers exactly as `/webhook` would, errors included.
        let dialect = if request.uri().path() == "/test-webhook" {
            Dialect::LiveTip
        } else {
            Dialect::Plain
        };
        let mut response = match route(&self.0, &ctx, request).instrument(span.clone()).await {
            Ok(response) => response,
            Err(error) => {
                if matches!(error, ApiError::DatabaseUnavailable(_)) {
                    tracing::warn!(error = %error, cause = ?std::error::Error::source(&error), "admin route without database");
                }
                error.into_response(dialect)
            }
        };
        span.record("http.response.status_code", response.status().as_u16());
        finish(&ctx, &method, &mut response);
        response
    }
}

fn authorize(state: &AdminState, request: &Request<Incoming>) -> Result<(), ApiError> {
    let Some(tokens) = &state.token else {
        return Ok(());
    };
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .map(|v| v.as_bytes())
        // The scheme is case-insensitive (RFC 9110 11.1): `Bearer`, `bearer`, `BEARER`.
        .and_then(|v| match v.split_at_checked(7) {
            Some((scheme, token)) if scheme.eq_ignore_ascii_case(b"bearer ") => Some(token),
            _ => None,
        })
        .map(<[u8]>::trim_ascii)
        .filter(|v| !v.is_empty());
    match presented {
        None => Err(ApiError::MissingCredential),
        Some(token) if tokens.matches(token) => Ok(()),
        Some(_) => Err(ApiError::InvalidCredential),
    }
}

async fn route(
    state: &AdminState,
    ctx: &RequestContext,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let path = request.uri().path().to_owned();
    let method = request.method().clone();
    // The console's assets hold no data: the page must load to ask for the token.
    if method == Method::GET
        && let Some(asset) = console::asset(&path)
    {
        return Ok(asset);
    }
    // Unknown paths get 404 only after authentication: the surface stays unmapped.
    authorize(state, &request)?;
    let allow = |allowed: &'static str, ok: bool| {
        if ok {
            Ok(())
        } else {
            Err(ApiError::MethodNotAllowed { allow: allowed })
        }
    };
    match path.as_str() {
        "/webhook-logs" => {
            allow("GET", method == Method::GET)?;
            monitoring::logs(state, request.uri().query()).await
        }
        "/webhook-stats" => {
            allow("GET", method == Method::GET)?;
            monitoring::stats(&state.db).await
        }
        "/payments" => match method {
            Method::POST => payments::create(&state.db, request).await,
            Method::GET => payments::list(&state.db, request.uri().query()).await,
            _ => Err(ApiError::MethodNotAllowed { allow: "GET, POST" }),
        },
        "/dead-letters" => {
            allow("GET", method == Method::GET)?;
            dead_letters::list(state, request.uri().query()).await
        }
        "/dead-letters/replay" => {
            allow("POST", method == Method::POST)?;
            dead_letters::replay(state, request).await
        }
        "/overview" => {
            allow("GET", method == Method::GET)?;
            overview::get(state).await
        }
        "/events" => {
            allow("GET", method == Method::GET)?;
            events::list(state, request.uri().query()).await
        }
        "/test-webhook" if state.development => {
            allow("POST", method == Method::POST)?;
            ingest::livetip::accept(&state.app, ctx, request).await
        }
        "/healthz" => Ok(json_response(StatusCode::OK, &json!({"status": "ok"}))),
        "/metrics" => {
            allow("GET", method == Method::GET)?;
            Ok(metrics_response(&state.app))
        }
        other => {
            if let Some(id) = other.strip_prefix("/payments/").filter(|k| is_key(k)) {
                allow("GET", method == Method::GET)?;
                payments::get(&state.db, id).await
            } else if let Some(key) = other.strip_prefix("/events/").filter(|k| is_key(k)) {
                allow("GET", method == Method::GET)?;
                events::get(state, key).await
            } else {
                Err(ApiError::NotFound)
            }
        }
    }
}

/// One path segment naming a record.
fn is_key(key: &str) -> bool {
    !key.is_empty() && !key.contains('/')
}

/// Prometheus exposition of this process's metrics.
///
/// Requests in flight are read at scrape time rather than counted per request: the
/// bound already keeps the number, and the ingest path pays nothing for the gauge.
fn metrics_response(app: &AppState) -> Response<Full<Bytes>> {
    for (provider, pool) in &app.in_flight {
        let provider = provider.as_str();
        metrics::gauge!("hookwire_gateway_in_flight", "provider" => provider)
            .set(pool.current() as f64);
        metrics::gauge!("hookwire_gateway_in_flight_limit", "provider" => provider)
            .set(pool.max() as f64);
    }
    metrics::gauge!("hookwire_gateway_unverified_in_flight")
        .set(app.unverified.global.current() as f64);
    metrics::gauge!("hookwire_gateway_unverified_limit").set(app.unverified.global.max() as f64);
    let mut response = Response::new(Full::new(Bytes::from(shared::metrics::render())));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static(shared::metrics::CONTENT_TYPE),
    );
    response
}
