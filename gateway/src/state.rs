//! What every request handler shares.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use shared::amqp::BrokerLink;
use shared::secret::SecretList;
use shared::trace_context::TraceContext;
use uuid::Uuid;

use shared::Provider;

use crate::audit::AuditSink;
use crate::error::ApiError;
use crate::guard::{BodyBudget, BodyReservation, InFlight, Networks, RateLimits, Slot};

/// Shared, read-mostly state of a running gateway.
#[derive(Debug)]
pub struct AppState {
    /// Pluggy's `X-Pluggy-Webhook-Secret` values.
    pub pluggy_secrets: SecretList,
    /// Pluggy's HMAC keys for `X-Pluggy-Signature` (never the header values).
    pub pluggy_signing_keys: SecretList,
    /// Expected Pluggy `clientId`, when configured.
    pub pluggy_client_id: Option<String>,
    /// LiveTip tokens.
    pub livetip_tokens: SecretList,
    /// The broker.
    pub link: BrokerLink,
    /// Exchange events are published to (the direct ingest exchange).
    pub ingest_exchange: String,
    /// Rejected-request records.
    pub audit: AuditSink,
    /// Body size limit.
    pub body_limit: u64,
    /// Body read deadline.
    pub body_read_timeout: Duration,
    /// Set once shutdown starts, so readiness turns false before the listener closes.
    pub draining: AtomicBool,
    /// Proxies whose `X-Forwarded-For` is believed.
    pub trusted_proxies: Networks,
    /// Per-provider source allow-lists (empty: any).
    pub allowed_sources: [(Provider, Networks); 2],
    /// Per-client token buckets.
    pub rate_limits: RateLimits,
    /// Bound on requests handled at once, per provider: a flood on one route never
    /// takes the other's slots.
    pub in_flight: [(Provider, InFlight); 2],
    /// Bytes of bodies held at once, all requests together.
    pub body_budget: BodyBudget,
    /// Bound on requests whose body must be read before they can be verified (Pluggy
    /// signed with HMAC only): in all, per client address, and in time.
    pub unverified: Unverified,
}

/// What an unverified request may hold: one of `global` slots (kept well under the
/// provider's in-flight bound, so verified deliveries always find room), one of a few
/// per client address, and its body for `body_timeout` at most.
#[derive(Debug)]
pub struct Unverified {
    /// Unverified requests at once, all clients together.
    pub global: InFlight,
    /// Unverified requests at once per client address.
    pub per_client: std::sync::Arc<shared::connection::PerClient>,
    /// Deadline for an unverified body (short: Pluggy's bodies are a few KiB).
    pub body_timeout: Duration,
}

/// Slots an unverified request holds until its answer.
#[derive(Debug)]
pub struct UnverifiedSlot {
    _global: Slot,
    _client: shared::connection::ClientSlot,
}

impl AppState {
    /// Lets a provider request in, or says why not: source allow-list (403), rate
    /// limit (429), then the in-flight bound (503). Nothing is read before this.
    pub fn admit(&self, provider: Provider, client: IpAddr) -> Result<Slot, ApiError> {
        if let Some((_, allowed)) = self.allowed_sources.iter().find(|(p, _)| *p == provider)
            && !allowed.is_empty()
            && !allowed.contains(client)
        {
            return Err(ApiError::SourceNotAllowed);
        }
        self.rate_limits.check(provider, client)?;
        self.pool(provider).admit()
    }

    /// Reads a provider request's body within `timeout`: first reserving room for it
    /// (its declared length, or the whole limit when chunked; 503 when bodies already
    /// fill the budget), then reading at most the limit. The reservation is held until
    /// the returned guard drops, that is until the request is answered.
    pub async fn read_body(
        &self,
        headers: &http::HeaderMap,
        body: hyper::body::Incoming,
        timeout: Duration,
    ) -> Result<(bytes::Bytes, BodyReservation), ApiError> {
        let declared = crate::body::declared_length(headers);
        let reserved = self
            .body_budget
            .reserve(declared.unwrap_or(self.body_limit).min(self.body_limit))?;
        let body = crate::body::read_limited(body, headers, self.body_limit, timeout).await?;
        Ok((body, reserved))
    }

    /// The in-flight bound of `provider`'s route.
    pub fn pool(&self, provider: Provider) -> &InFlight {
        let [(first, pool), (_, other)] = &self.in_flight;
        if *first == provider { pool } else { other }
    }

    /// Lets a request whose credential needs its body (an HMAC signature) read it, or
    /// says why not: its client already holds its share (429), or all unverified slots
    /// are taken (503).
    pub fn admit_unverified(&self, client: IpAddr) -> Result<UnverifiedSlot, ApiError> {
        let Some(client) = self.unverified.per_client.admit(client) else {
            return Err(ApiError::RateLimited {
                retry_after_secs: 1,
            });
        };
        Ok(UnverifiedSlot {
            _global: self.unverified.global.admit()?,
            _client: client,
        })
    }

    /// Ready to take events: broker connected with confirm channels, not draining.
    pub fn is_ready(&self) -> bool {
        !self.draining.load(Ordering::Relaxed) && self.link.is_ready()
    }
}

/// Per-request facts every handler and log line needs.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// Unique id, returned in `X-Request-Id` and used as the AMQP message id.
    pub request_id: Uuid,
    /// The trace this request starts; its id is returned in `X-Trace-Id`.
    pub trace: TraceContext,
    /// Peer address.
    pub client_ip: IpAddr,
    /// When the request arrived.
    pub started: Instant,
}

impl RequestContext {
    /// A new request inside `span` (its server span): fresh id, the span's trace, clock
    /// started.
    pub fn new(client_ip: IpAddr, span: &tracing::Span) -> Self {
        Self {
            request_id: Uuid::new_v4(),
            trace: TraceContext::of_span(span).unwrap_or_else(TraceContext::new_root),
            client_ip,
            started: Instant::now(),
        }
    }
}
