//! `POST /api/banking/pluggy/webhook/`

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use serde_json::json;
use shared::payload::pluggy::parse_head;
use shared::provider::Provider;

use super::enqueue;
use crate::error::{ApiError, json_response};
use crate::http::body::{check_declared_length, is_json, read_limited};
use crate::state::{AppState, RequestContext};
use crate::verify::pluggy::{HeaderCheck, check_headers, verify_signature};

/// Accepts one Pluggy delivery.
pub async fn handle(
    state: &AppState,
    ctx: &RequestContext,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let (parts, body) = request.into_parts();
    check_declared_length(&parts.headers, state.body_limit)?;
    let verify = super::verify_span(Provider::Pluggy);
    let header_check = verify.in_scope(|| check_headers(&state.pluggy_secrets, &parts.headers))?;
    // Pluggy sends JSON; a request that declares something else is refused, one that
    // declares nothing is judged by its body.
    if parts.headers.contains_key(http::header::CONTENT_TYPE) && !is_json(&parts.headers) {
        return Err(ApiError::UnsupportedMediaType);
    }
    let body = read_limited(body, state.body_limit, state.body_read_timeout).await?;
    if let HeaderCheck::NeedsBody(signature) = header_check {
        verify.in_scope(|| verify_signature(&state.pluggy_secrets, &signature, &body))?;
    }
    let head = parse_head(&body).map_err(|e| ApiError::InvalidPayload(e.0))?;
    if let (Some(ours), Some(theirs)) = (&state.pluggy_client_id, &head.client_id)
        && ours != theirs
    {
        return Err(ApiError::ForeignClient);
    }
    let answer = json!({
        "received": true,
        "event": head.event,
        "eventId": head.event_id,
        "requestId": ctx.request_id.to_string(),
    });
    enqueue(
        state,
        ctx,
        Provider::Pluggy,
        head.event,
        head.event_id,
        &parts.headers,
        body,
    )
    .await?;
    Ok(json_response(StatusCode::OK, &answer))
}
