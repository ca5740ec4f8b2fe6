//! `POST /api/banking/pluggy/webhook/`

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use serde::Serialize;
use shared::payload::pluggy::parse_head;
use shared::provider::Provider;

use super::enqueue;
use crate::body::{check_codings, check_declared_length, is_json};
use crate::error::{ApiError, json_response};
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
    check_codings(&parts.headers)?;
    let verify = super::verify_span(Provider::Pluggy);
    let header_check = verify.in_scope(|| {
        check_headers(
            &state.pluggy_secrets,
            &state.pluggy_signing_keys,
            &parts.headers,
        )
    })?;
    // Pluggy sends JSON; a request that declares something else is refused, one that
    // declares nothing is judged by its body.
    if parts.headers.contains_key(http::header::CONTENT_TYPE) && !is_json(&parts.headers) {
        return Err(ApiError::UnsupportedMediaType);
    }
    // A signature can only be checked over the body: until then the request is anyone's,
    // so it reads under the unverified bounds (a few per client, a short deadline).
    let (body, _reserved) = match header_check {
        HeaderCheck::Authentic => {
            state
                .read_body(&parts.headers, body, state.body_read_timeout)
                .await?
        }
        HeaderCheck::NeedsBody(signature) => {
            let slot = state.admit_unverified(ctx.client_ip)?;
            let read = state
                .read_body(&parts.headers, body, state.unverified.body_timeout)
                .await?;
            verify
                .in_scope(|| verify_signature(&state.pluggy_signing_keys, &signature, &read.0))?;
            // Verified: it no longer counts against the unverified bounds while it waits
            // for the broker's confirm.
            drop(slot);
            read
        }
    };
    let head = parse_head(&body).map_err(|e| ApiError::InvalidPayload(e.0))?;
    if let (Some(ours), Some(theirs)) = (&state.pluggy_client_id, &head.client_id)
        && ours != theirs
    {
        return Err(ApiError::ForeignClient);
    }
    enqueue(
        state,
        ctx,
        Provider::Pluggy,
        head.event.clone(),
        head.event_id.clone(),
        &parts.headers,
        body,
    )
    .await?;
    Ok(json_response(
        StatusCode::OK,
        &Accepted {
            received: true,
            event: &head.event,
            event_id: head.event_id.as_deref(),
            request_id: ctx.request_id,
        },
    ))
}

/// What Pluggy is answered once its event is queued.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Accepted<'a> {
    received: bool,
    event: &'a str,
    event_id: Option<&'a str>,
    request_id: uuid::Uuid,
}
