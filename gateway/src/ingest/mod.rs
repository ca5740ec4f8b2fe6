//! Accepting one webhook: verify, validate, publish, answer.
//!
//! Handlers touch no database: the only I/O on the ingest path is the publish and
//! its confirm.

pub mod livetip;
pub mod pluggy;

use bytes::Bytes;
use chrono::Utc;
use http::HeaderMap;
use shared::envelope::{Envelope, KEPT_HTTP_HEADERS};
use shared::provider::Provider;

use crate::error::ApiError;
use crate::state::{AppState, RequestContext};

/// Publishes an accepted event and returns once the broker has confirmed it.
async fn enqueue(
    state: &AppState,
    ctx: &RequestContext,
    provider: Provider,
    event: String,
    provider_event_id: Option<String>,
    headers: &HeaderMap,
    body: Bytes,
) -> Result<(), ApiError> {
    let envelope = Envelope {
        provider,
        event,
        provider_event_id,
        received_at: Utc::now(),
        request_id: ctx.request_id,
        client_ip: Some(ctx.client_ip),
        http_headers: kept_headers(headers),
        trace: ctx.trace.clone(),
        body,
    };
    state
        .link
        .publish(
            &state.events_exchange,
            &envelope.routing_key(),
            &envelope.body,
            envelope.properties(),
        )
        .await
        .map_err(|error| {
            tracing::warn!(
                request_id = %ctx.request_id,
                provider = provider.as_str(),
                error = %error,
                "event not queued; answering 503"
            );
            ApiError::Unavailable(error)
        })
}

/// The allow-listed request headers, valid UTF-8 only, bounded in size.
fn kept_headers(headers: &HeaderMap) -> Vec<(String, String)> {
    KEPT_HTTP_HEADERS
        .iter()
        .filter_map(|name| {
            let value = headers.get(*name)?.to_str().ok()?;
            (value.len() <= 1024).then(|| ((*name).to_owned(), value.to_owned()))
        })
        .collect()
}
