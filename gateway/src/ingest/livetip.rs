//! `POST /webhook`, with the LiveTip specification's statuses and bodies.

use bytes::Bytes;
use chrono::{SecondsFormat, Utc};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use serde::Serialize;
use shared::payload::livetip;
use shared::provider::Provider;

use super::enqueue;
use crate::body::{check_codings, check_declared_length, is_json};
use crate::error::{ApiError, json_response};
use crate::state::{AppState, RequestContext};
use crate::verify::livetip::verify;

/// Accepts one LiveTip delivery.
pub async fn handle(
    state: &AppState,
    ctx: &RequestContext,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, ApiError> {
    super::verify_span(Provider::LiveTip)
        .in_scope(|| verify(&state.livetip_tokens, request.headers()))?;
    accept(state, ctx, request).await
}

/// Everything after authentication: the admin's `/test-webhook` sends its payload
/// through exactly this path.
pub async fn accept(
    state: &AppState,
    ctx: &RequestContext,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let (parts, body) = request.into_parts();
    check_declared_length(&parts.headers, state.body_limit)?;
    check_codings(&parts.headers)?;
    if !is_json(&parts.headers) {
        return Err(ApiError::UnsupportedMediaType);
    }
    let (body, _reserved) = state
        .read_body(&parts.headers, body, state.body_read_timeout)
        .await?;
    let event = livetip::parse(&body).map_err(|e| ApiError::InvalidPayload(e.0))?;
    let payment_id = event.payment.payment_id;
    enqueue(
        state,
        ctx,
        Provider::LiveTip,
        event.event.clone(),
        Some(payment_id.clone()),
        &parts.headers,
        body,
    )
    .await?;
    // `processed` is true because the event is durably queued: the spec's sender
    // needs to know it may stop retrying, not that the worker already ran.
    Ok(json_response(
        StatusCode::OK,
        &Accepted {
            success: true,
            received: true,
            event: &event.event,
            payment_id: &payment_id,
            processed: true,
            processing_time: format!("{}ms", ctx.started.elapsed().as_millis()),
            timestamp: Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
        },
    ))
}

/// The specification's success body, in its field order.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Accepted<'a> {
    success: bool,
    received: bool,
    event: &'a str,
    payment_id: &'a str,
    processed: bool,
    processing_time: String,
    timestamp: String,
}
