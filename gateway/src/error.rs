//! Every way a request can fail, and the one place each becomes a status and a body.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode, header};
use http_body_util::Full;
use serde_json::{Value, json};
use shared::amqp::PublishError;

/// Seconds a client is told to wait before retrying a 503.
pub const RETRY_AFTER_SECS: &str = "5";

/// A request the gateway did not accept.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No credential header at all.
    #[error("no credential provided")]
    MissingCredential,
    /// A credential was provided and is wrong.
    #[error("invalid credential")]
    InvalidCredential,
    /// A valid credential for another Pluggy client.
    #[error("clientId does not match this gateway's Pluggy client")]
    ForeignClient,
    /// Body larger than the limit.
    #[error("payload larger than {limit} bytes")]
    PayloadTooLarge {
        /// The configured limit.
        limit: u64,
    },
    /// Content-Type is not JSON.
    #[error("content-type must be application/json")]
    UnsupportedMediaType,
    /// Body is not the payload the provider's contract defines.
    #[error("invalid payload: {0}")]
    InvalidPayload(String),
    /// The body did not arrive in time.
    #[error("request body not received in time")]
    BodyTimeout,
    /// The body stream broke.
    #[error("request body could not be read")]
    BodyRead(#[source] hyper::Error),
    /// No such route.
    #[error("no such route")]
    NotFound,
    /// The route exists; the record it names does not.
    #[error("{kind} not found")]
    NoSuchRecord {
        /// What was looked for (`payment`).
        kind: &'static str,
        /// The key asked for, echoed so the caller sees what was not found.
        key: String,
    },
    /// Route exists, method does not.
    #[error("method not allowed")]
    MethodNotAllowed {
        /// Value of the `Allow` header.
        allow: &'static str,
    },
    /// The sender's address is not on the provider's allow-list.
    #[error("source address not allowed for this provider")]
    SourceNotAllowed,
    /// Too many requests from this address on this route.
    #[error("too many requests")]
    RateLimited {
        /// Seconds until a request would be accepted again (at least 1).
        retry_after_secs: u64,
    },
    /// Too many requests in flight: shed rather than queue without bound.
    #[error("gateway overloaded")]
    Overloaded,
    /// The provider's secret is not configured: refuse rather than accept anything.
    #[error("provider not configured")]
    ProviderNotConfigured,
    /// The database behind an admin route is unavailable.
    #[error("database unavailable")]
    DatabaseUnavailable(#[source] sea_orm::DbErr),
    /// The broker did not take the event.
    #[error("event could not be queued")]
    Unavailable(#[source] PublishError),
}

/// Which error vocabulary a route speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    /// The LiveTip specification's exact (Portuguese) bodies.
    LiveTip,
    /// Plain English JSON errors for Pluggy and everything else.
    Plain,
}

impl ApiError {
    /// HTTP status for this error.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::MissingCredential => StatusCode::UNAUTHORIZED,
            Self::InvalidCredential | Self::ForeignClient | Self::SourceNotAllowed => {
                StatusCode::FORBIDDEN
            }
            Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::InvalidPayload(_) | Self::BodyRead(_) => StatusCode::BAD_REQUEST,
            Self::BodyTimeout => StatusCode::REQUEST_TIMEOUT,
            Self::NotFound | Self::NoSuchRecord { .. } => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            Self::ProviderNotConfigured
            | Self::Unavailable(_)
            | Self::DatabaseUnavailable(_)
            | Self::Overloaded => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    /// Whether this is a refusal of the sender's input, recorded for the spec's
    /// `validation` log (as opposed to our own unavailability or a wrong URL).
    pub fn is_rejection(&self) -> bool {
        matches!(
            self,
            Self::MissingCredential
                | Self::InvalidCredential
                | Self::ForeignClient
                | Self::PayloadTooLarge { .. }
                | Self::UnsupportedMediaType
                | Self::InvalidPayload(_)
                | Self::BodyTimeout
                | Self::BodyRead(_)
                | Self::SourceNotAllowed
                | Self::RateLimited { .. }
        )
    }

    /// A bounded label for metrics (a free-text reason would explode the series count).
    pub fn metric_reason(&self) -> &'static str {
        match self {
            Self::MissingCredential => "missing_credential",
            Self::InvalidCredential => "invalid_credential",
            Self::ForeignClient => "foreign_client",
            Self::PayloadTooLarge { .. } => "too_large",
            Self::UnsupportedMediaType => "unsupported_media_type",
            Self::InvalidPayload(_) => "invalid_payload",
            Self::BodyTimeout => "body_timeout",
            Self::BodyRead(_) => "body_read",
            Self::NotFound | Self::NoSuchRecord { .. } => "not_found",
            Self::MethodNotAllowed { .. } => "method_not_allowed",
            Self::ProviderNotConfigured => "provider_not_configured",
            Self::DatabaseUnavailable(_) => "database_unavailable",
            Self::Unavailable(_) => "broker_unavailable",
            Self::SourceNotAllowed => "source_not_allowed",
            Self::RateLimited { .. } => "rate_limited",
            Self::Overloaded => "overloaded",
        }
    }

    /// Short machine-readable reason for logs and audit records; never holds a secret.
    pub fn reason(&self) -> String {
        match self {
            Self::InvalidPayload(reason) => reason.clone(),
            other => other.to_string(),
        }
    }

    /// The response body in the route's dialect.
    fn body(&self, dialect: Dialect) -> Value {
        match (dialect, self) {
            (Dialect::LiveTip, Self::MissingCredential) => json!({"error": "Token não fornecido"}),
            (Dialect::LiveTip, Self::InvalidCredential | Self::ForeignClient) => {
                json!({"error": "Token inválido"})
            }
            (Dialect::LiveTip, Self::PayloadTooLarge { .. }) => {
                json!({"error": "Payload muito grande"})
            }
            (Dialect::LiveTip, Self::InvalidPayload(reason)) => {
                json!({"error": "Payload inválido", "reason": reason})
            }
            (Dialect::LiveTip, Self::BodyRead(_)) => {
                json!({"error": "Payload inválido", "reason": self.reason()})
            }
            (Dialect::LiveTip, Self::UnsupportedMediaType) => {
                json!({"error": "Content-Type não suportado", "reason": self.reason()})
            }
            (Dialect::LiveTip, Self::Unavailable(_)) => json!({
                "success": false,
                "received": false,
                "error": "Serviço indisponível, tente novamente",
            }),
            (_, Self::ProviderNotConfigured) => json!({"error": "provider not configured"}),
            (_, Self::NoSuchRecord { key, .. }) => json!({"error": self.to_string(), "id": key}),
            (_, Self::Unavailable(_)) => json!({
                "error": "service unavailable",
                "reason": "event could not be queued; retry later",
            }),
            (_, Self::InvalidPayload(reason)) => {
                json!({"error": "invalid payload", "reason": reason})
            }
            (_, other) => json!({"error": other.to_string()}),
        }
    }

    /// The complete response: status, JSON body and the headers the status calls for.
    pub fn into_response(self, dialect: Dialect) -> Response<Full<Bytes>> {
        let mut response = json_response(self.status(), &self.body(dialect));
        let headers = response.headers_mut();
        match &self {
            Self::MethodNotAllowed { allow } => {
                headers.insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            Self::Unavailable(_)
            | Self::ProviderNotConfigured
            | Self::DatabaseUnavailable(_)
            | Self::Overloaded => {
                headers.insert(
                    header::RETRY_AFTER,
                    HeaderValue::from_static(RETRY_AFTER_SECS),
                );
            }
            Self::RateLimited { retry_after_secs } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after_secs));
            }
            Self::PayloadTooLarge { .. } | Self::BodyTimeout | Self::BodyRead(_) => {
                // The rest of the body was not read; the connection cannot be reused.
                headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            _ => {}
        }
        response
    }
}

/// A JSON response with the given status. Any serialisable body: the ingest routes
/// answer from a struct of borrowed fields rather than a `Value` built per request.
pub fn json_response(status: StatusCode, body: &impl serde::Serialize) -> Response<Full<Bytes>> {
    // Our bodies have string keys only, the one thing serialisation can fail on.
    let body = serde_json::to_vec(body).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    response
}
