//! `GET /dead-letters` and `POST /dead-letters/replay`: the worker CLI's `dlq list` and
//! `dlq replay` over HTTP, through the same implementation
//! (`shared::amqp::dead_letters`) and the same rule for replaying everything.

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use serde_json::{Value, json};
use shared::Provider;
use shared::amqp::dead_letters::{self, DeadLetter, ReplayFilter};

use super::{AdminState, query};
use crate::error::{ApiError, json_response};

/// A replay's filter is a few short fields.
const BODY_LIMIT: u64 = 4 * 1024;

/// One replay at a time per gateway: two would take each other's letters and report
/// halves.
static REPLAYING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// `GET /dead-letters?provider=&limit=50`: dead letters left in place, per provider.
pub async fn list(
    state: &AdminState,
    raw_query: Option<&str>,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let params = query::parse(raw_query)?;
    let limit = query::limit(&params, 50, 1000)?;
    let provider = query::text(&params, "provider").map(provider).transpose()?;
    let letters = dead_letters::list(
        &state.app.link,
        state.app.link.topology(),
        provider,
        usize::try_from(limit).unwrap_or(usize::MAX),
    )
    .await
    .map_err(unavailable)?;
    let listed: Vec<Value> = letters.iter().map(letter_json).collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({"count": listed.len(), "deadLetters": listed}),
    ))
}

/// `POST /dead-letters/replay {"provider"?, "event"?, "requestId"?, "all"?, "dryRun"?}`.
pub async fn replay(
    state: &AdminState,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let input = query::json_body(request, BODY_LIMIT).await?;
    let flag = |name: &str| match input.get(name) {
        None | Some(Value::Null) => Ok(false),
        Some(Value::Bool(b)) => Ok(*b),
        Some(_) => Err(ApiError::InvalidPayload(format!(
            "{name} must be true or false"
        ))),
    };
    let text = |name: &str| match input.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if !s.is_empty() && s.len() <= 128 => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::InvalidPayload(format!(
            "{name} must be a non-empty string of at most 128 characters"
        ))),
    };
    let filter = ReplayFilter {
        provider: text("provider")?.as_deref().map(provider).transpose()?,
        event: text("event")?,
        request_id: text("requestId")?,
        all: flag("all")?,
        dry_run: flag("dryRun")?,
    };
    filter
        .check()
        .map_err(|refused| ApiError::InvalidPayload(refused.to_owned()))?;
    // Its own task: a client that hangs up does not stop a replay halfway (a letter
    // copied but not yet acknowledged would be replayed again next time).
    let link = state.app.link.clone();
    let task_filter = filter.clone();
    let report = tokio::spawn(async move {
        let _one_at_a_time = REPLAYING.lock().await;
        dead_letters::replay(&link, link.topology(), &task_filter).await
    })
    .await
    .map_err(|_| ApiError::Overloaded)?
    .map_err(unavailable)?;
    tracing::info!(
        provider = filter.provider.map(Provider::as_str),
        event = filter.event.as_deref(),
        request_id = filter.request_id.as_deref(),
        dry_run = filter.dry_run,
        replayed = report.replayed,
        kept = report.kept,
        "dead letters replayed through the admin API"
    );
    Ok(json_response(
        StatusCode::OK,
        &json!({"dryRun": filter.dry_run, "replayed": report.replayed, "kept": report.kept}),
    ))
}

fn provider(raw: &str) -> Result<Provider, ApiError> {
    raw.parse()
        .map_err(|_| ApiError::InvalidPayload("provider must be pluggy or livetip".to_owned()))
}

fn unavailable(error: dead_letters::DlqError) -> ApiError {
    tracing::warn!(%error, "dead-letter queue not reachable");
    ApiError::Unavailable(shared::amqp::PublishError::NotConnected)
}

fn letter_json(l: &DeadLetter) -> Value {
    json!({
        "provider": l.provider.as_str(),
        "event": l.event,
        "reason": l.reason,
        "class": l.class,
        "attempts": l.attempts,
        "deadAt": l.dead_at,
        "requestId": l.request_id,
        "bytes": l.bytes,
    })
}
