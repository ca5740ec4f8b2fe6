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
use crate::guard::{InFlight, Networks, RateLimits, Slot};

/// Shared, read-mostly state of a running gateway.
#[derive(Debug)]
pub struct AppState {
    /// Pluggy secrets (HMAC keys and header values).
    pub pluggy_secrets: SecretList,
    /// Expected Pluggy `clientId`, when configured.
    pub pluggy_client_id: Option<String>,
    /// LiveTip tokens.
    pub livetip_tokens: SecretList,
    /// The broker.
    pub link: BrokerLink,
    /// Exchange events are published to.
    pub events_exchange: String,
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
    /// Bound on provider requests handled at once.
    pub in_flight: InFlight,
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
        self.in_flight.admit()
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
