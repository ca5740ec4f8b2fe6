//! One HTTP client per process (connections reused), one API key shared by all tasks,
//! refreshed before its JWT `exp` and once on a 401.
//!
//! Failure classes follow Pluggy's behaviour: 429 waits `Retry-After` (bounded) and
//! tries again; 5xx, timeouts and connection errors are transient; other 4xx are
//! permanent.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use chrono::{DateTime, Utc};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use shared::secret::Secret;
use tokio::sync::Mutex;
use tracing::Instrument;

use super::model::{Auth, CursorPage, Item, Page};

/// 429s retried per call before giving up (the official SDK retries twice).
const MAX_RATE_LIMIT_RETRIES: u32 = 2;
/// Longest `Retry-After` honoured in process; beyond, the event is retried later.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);
/// A key is refreshed this long before it expires.
const KEY_MARGIN: chrono::Duration = chrono::Duration::seconds(60);

/// Where and who we are at Pluggy.
#[derive(Clone, Debug)]
pub struct PluggyConfig {
    /// `https://api.pluggy.ai` in production.
    pub base_url: String,
    /// `PLUGGY_CLIENT_ID`.
    pub client_id: String,
    /// `PLUGGY_CLIENT_SECRET`.
    pub client_secret: Secret,
    /// Per-request timeout.
    pub timeout: Duration,
}

/// A Pluggy API failure.
#[derive(Debug, thiserror::Error)]
pub enum PluggyError {
    /// Pluggy answered with an error status.
    #[error("Pluggy answered {status} for {endpoint}")]
    Status {
        /// HTTP status.
        status: u16,
        /// Endpoint (path without query).
        endpoint: String,
    },
    /// No answer: timeout, connection refused, TLS.
    #[error("Pluggy unreachable for {endpoint}")]
    Transport {
        /// Endpoint.
        endpoint: String,
        /// Cause.
        #[source]
        source: reqwest::Error,
    },
    /// An answer we cannot read.
    #[error("unexpected Pluggy response from {endpoint}: {detail}")]
    Decode {
        /// Endpoint.
        endpoint: String,
        /// What was wrong.
        detail: String,
    },
    /// The HTTP client cannot be built (TLS set-up).
    #[error("cannot build the HTTP client")]
    Client(#[source] reqwest::Error),
}

impl PluggyError {
    /// Worth retrying later.
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Status { status, .. } => {
                *status >= 500 || *status == 429 || *status == 401 || *status == 408
            }
            Self::Transport { .. } => true,
            Self::Decode { .. } | Self::Client(_) => false,
        }
    }
}

#[derive(Debug, Clone)]
struct ApiKey {
    value: String,
    expires_at: DateTime<Utc>,
}

/// The API client.
#[derive(Debug, Clone)]
pub struct PluggyClient {
    http: reqwest::Client,
    config: Arc<PluggyConfig>,
    key: Arc<Mutex<Option<ApiKey>>>,
}

impl PluggyClient {
    /// Builds the client (installs the process's TLS crypto provider if none is yet).
    pub fn new(config: PluggyConfig) -> Result<Self, PluggyError> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(Duration::from_secs(5))
            .user_agent(concat!("hookwire/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(PluggyError::Client)?;
        Ok(Self {
            http,
            config: Arc::new(config),
            key: Arc::new(Mutex::new(None)),
        })
    }

    /// The base URL, for recognising links Pluggy sends (`createdTransactionsLink`).
    pub fn base_url(&self) -> &str {
        &self.config.base_url
    }

    /// `GET /items/{id}`.
    pub async fn item(&self, id: &str) -> Result<Item, PluggyError> {
        self.get(&format!("/items/{}", encode(id))).await
    }

    /// Every account of an item, all pages.
    pub async fn accounts(&self, item_id: &str) -> Result<Vec<Value>, PluggyError> {
        self.paged(&format!("/accounts?itemId={}", encode(item_id)))
            .await
    }

    /// Transactions of an account created since `created_at_from` (all when `None`):
    /// the cursor API, falling back to the page-based one where v2 is not offered.
    pub async fn transactions(
        &self,
        account_id: &str,
        created_at_from: Option<&str>,
    ) -> Result<Vec<Value>, PluggyError> {
        let mut query = format!("accountId={}", encode(account_id));
        if let Some(from) = created_at_from {
            query.push_str(&format!("&createdAtFrom={}", encode(from)));
        }
        let mut url = format!("/v2/transactions?{query}");
        let mut all = Vec::new();
        loop {
            let page: CursorPage = match self.get(&url).await {
                Ok(page) => page,
                Err(PluggyError::Status { status: 404, .. })
                    if all.is_empty() && url.starts_with("/v2/") =>
                {
                    return self
                        .paged(&format!("/transactions?{query}&pageSize=500"))
                        .await;
                }
                Err(e) => return Err(e),
            };
            all.extend(page.results);
            match page.next {
                Some(next) if !next.is_empty() => url = self.relative(&next),
                _ => return Ok(all),
            }
        }
    }

    /// Transactions by id (`transactions/updated`).
    pub async fn transactions_by_ids(&self, ids: &[String]) -> Result<Vec<Value>, PluggyError> {
        let mut all = Vec::new();
        for chunk in ids.chunks(100) {
            let joined: Vec<String> = chunk.iter().map(|i| encode(i)).collect();
            all.extend(
                self.paged(&format!("/transactions?ids={}", joined.join(",")))
                    .await?,
            );
        }
        Ok(all)
    }

    /// Every webhook registered for our client.
    pub async fn webhooks(&self) -> Result<Vec<Value>, PluggyError> {
        self.paged("/webhooks").await
    }

    /// `POST /webhooks`.
    pub async fn create_webhook(&self, body: &Value) -> Result<Value, PluggyError> {
        self.call(Method::POST, "/webhooks", Some(body)).await
    }

    /// `PATCH /webhooks/{id}`.
    pub async fn update_webhook(&self, id: &str, body: &Value) -> Result<Value, PluggyError> {
        self.call(
            Method::PATCH,
            &format!("/webhooks/{}", encode(id)),
            Some(body),
        )
        .await
    }

    async fn paged(&self, path: &str) -> Result<Vec<Value>, PluggyError> {
        let mut all = Vec::new();
        let mut page_number = 1u32;
        loop {
            let separator = if path.contains('?') { '&' } else { '?' };
            let page: Page = self
                .get(&format!("{path}{separator}page={page_number}"))
                .await?;
            let total = page.total_pages.unwrap_or(1);
            let empty = page.results.is_empty();
            all.extend(page.results);
            if empty || page_number >= total {
                return Ok(all);
            }
            page_number += 1;
        }
    }

    /// A link from Pluggy as a path on our configured base (so a test server, or a
    /// regional endpoint, keeps serving the follow-up requests).
    fn relative(&self, link: &str) -> String {
        match link
            .find("://")
            .and_then(|i| link[i + 3..].find('/').map(|j| i + 3 + j))
        {
            Some(start) => link[start..].to_owned(),
            None => link.to_owned(),
        }
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, PluggyError> {
        self.call(Method::GET, path, None).await
    }

    async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<T, PluggyError> {
        let endpoint = endpoint_template(path.split('?').next().unwrap_or(path));
        let span = tracing::info_span!(
            "pluggy",
            otel.name = format!("{method} {endpoint}"),
            otel.kind = "client",
            otel.status_code = tracing::field::Empty,
            http.request.method = %method,
            url.template = %endpoint,
            server.address = %self.config.base_url,
            http.response.status_code = tracing::field::Empty,
        );
        self.call_in_span(method, path, body, endpoint)
            .instrument(span)
            .await
    }

    async fn call_in_span<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        endpoint: String,
    ) -> Result<T, PluggyError> {
        let mut refreshed = false;
        let mut rate_limited = 0;
        loop {
            let key = self.api_key(false).await?;
            let mut request = self
                .http
                .request(method.clone(), format!("{}{}", self.config.base_url, path))
                .header("X-API-KEY", key);
            if let Some(body) = body {
                request = request.json(body);
            }
            let response = request
                .send()
                .await
                .map_err(|source| PluggyError::Transport {
                    endpoint: endpoint.clone(),
                    source,
                })?;
            let status = response.status();
            tracing::debug!(%endpoint, status = status.as_u16(), "Pluggy API call");
            let span = tracing::Span::current();
            span.record("http.response.status_code", status.as_u16());
            if status.is_server_error() {
                span.record("otel.status_code", "ERROR");
            }
            metrics::counter!("hookwire_pluggy_api_calls_total",
                "endpoint" => endpoint.clone(), "status" => status.as_str().to_owned())
            .increment(1);
            if status == StatusCode::TOO_MANY_REQUESTS {
                metrics::counter!("hookwire_pluggy_rate_limited_total", "endpoint" => endpoint.clone())
                    .increment(1);
            }
            if status == StatusCode::UNAUTHORIZED && !refreshed {
                // The key expired early or was revoked: one fresh key, one more try.
                refreshed = true;
                self.api_key(true).await?;
                continue;
            }
            if status == StatusCode::TOO_MANY_REQUESTS && rate_limited < MAX_RATE_LIMIT_RETRIES {
                rate_limited += 1;
                let wait = retry_after(&response).min(MAX_RETRY_AFTER);
                tracing::warn!(%endpoint, ?wait, "Pluggy rate limit; waiting");
                tokio::time::sleep(wait).await;
                continue;
            }
            if !status.is_success() {
                return Err(PluggyError::Status {
                    status: status.as_u16(),
                    endpoint,
                });
            }
            return response.json::<T>().await.map_err(|e| PluggyError::Decode {
                endpoint,
                detail: e.to_string(),
            });
        }
    }

    /// The cached key, or a new one from `POST /auth`.
    async fn api_key(&self, force: bool) -> Result<String, PluggyError> {
        let mut cached = self.key.lock().await;
        if !force
            && let Some(key) = cached.as_ref()
            && key.expires_at - KEY_MARGIN > Utc::now()
        {
            return Ok(key.value.clone());
        }
        let endpoint = "/auth".to_owned();
        let response = self
            .http
            .post(format!("{}/auth", self.config.base_url))
            .json(&json!({"clientId": self.config.client_id, "clientSecret": self.config.client_secret.expose()}))
            .send()
            .await
            .map_err(|source| PluggyError::Transport {
                endpoint: endpoint.clone(),
                source,
            })?;
        metrics::counter!("hookwire_pluggy_api_calls_total",
            "endpoint" => "/auth", "status" => response.status().as_str().to_owned())
        .increment(1);
        if !response.status().is_success() {
            return Err(PluggyError::Status {
                status: response.status().as_u16(),
                endpoint,
            });
        }
        let auth: Auth = response.json().await.map_err(|e| PluggyError::Decode {
            endpoint: endpoint.clone(),
            detail: e.to_string(),
        })?;
        let expires_at =
            jwt_expiry(&auth.api_key).unwrap_or_else(|| Utc::now() + chrono::Duration::hours(2));
        *cached = Some(ApiKey {
            value: auth.api_key.clone(),
            expires_at,
        });
        Ok(auth.api_key)
    }
}

/// `Retry-After` in seconds (Pluggy sends 60); 1 s when absent or unreadable.
fn retry_after(response: &reqwest::Response) -> Duration {
    response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map_or(Duration::from_secs(1), Duration::from_secs)
}

/// The `exp` claim of a JWT, read without verifying (we only schedule a refresh by it).
fn jwt_expiry(token: &str) -> Option<DateTime<Utc>> {
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload.trim_end_matches('='))
        .ok()?;
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    DateTime::from_timestamp(claims.get("exp")?.as_i64()?, 0)
}

/// The path with Pluggy's ids replaced, for span names and metric labels.
fn endpoint_template(path: &str) -> String {
    let mut parts = path.split('/');
    let mut out = Vec::new();
    let mut previous = "";
    for part in parts.by_ref() {
        let id_position = matches!(previous, "items" | "accounts" | "webhooks" | "transactions");
        out.push(if id_position && !part.is_empty() {
            "{id}"
        } else {
            part
        });
        previous = part;
    }
    out.join("/")
}

/// Percent-encodes a query or path component.
fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(char::from(byte))
            }
            other => out.push_str(&format!("%{other:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_jwt_expiry() {
        let claims =
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(br#"{"exp":1900000000}"#);
        let token = format!("eyJhbGciOiJIUzI1NiJ9.{claims}.sig");
        assert_eq!(
            jwt_expiry(&token).map(|t| t.timestamp()),
            Some(1_900_000_000)
        );
        assert_eq!(jwt_expiry("not-a-jwt"), None);
    }

    #[test]
    fn endpoints_are_templated() {
        assert_eq!(endpoint_template("/items/abc-123"), "/items/{id}");
        assert_eq!(endpoint_template("/webhooks/w1"), "/webhooks/{id}");
        assert_eq!(endpoint_template("/v2/transactions"), "/v2/transactions");
        assert_eq!(endpoint_template("/accounts"), "/accounts");
    }

    #[test]
    fn encodes_components() {
        assert_eq!(
            encode("2025-02-13T17:21:53.719Z"),
            "2025-02-13T17%3A21%3A53.719Z"
        );
        assert_eq!(encode("a b/c"), "a%20b%2Fc");
    }
}
