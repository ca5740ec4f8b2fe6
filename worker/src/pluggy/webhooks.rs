//! `worker pluggy setup-webhook`: registers our endpoint with Pluggy so that real
//! deliveries carry the `X-Pluggy-Webhook-Secret` header the gateway checks.
//!
//! Idempotent because ops run it on every deploy: a webhook already registered for the
//! same URL and event is left alone (Pluggy never shows its headers, so we cannot tell
//! whether the secret changed; `--force` re-sends it with a `PATCH`).

use reqwest::Url;
use serde_json::{Value, json};
use shared::secret::Secret;

use super::client::{PluggyClient, PluggyError};

/// Path of the Pluggy route on the gateway.
pub const WEBHOOK_PATH: &str = "/api/banking/pluggy/webhook/";
/// Header Pluggy echoes on every delivery; the gateway accepts it as proof.
pub const SECRET_HEADER: &str = "X-Pluggy-Webhook-Secret";

/// What the command did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// No webhook matched: one was created.
    Created { id: String },
    /// A webhook for this URL and event exists and was left as it is.
    Unchanged { id: String },
    /// A webhook existed and `--force` re-sent its URL, event and secret header.
    Updated { id: String },
}

/// Why the command could not run.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    /// Pluggy only delivers to `https://` on port 443 with a public domain name.
    #[error("BACKEND_URL {url:?} cannot receive Pluggy webhooks: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// What Pluggy would object to.
        reason: &'static str,
    },
    /// Pluggy answered with an error or could not be reached.
    #[error(transparent)]
    Pluggy(#[from] PluggyError),
}

/// `$BACKEND_URL/api/banking/pluggy/webhook/`, refused where Pluggy would refuse it, so
/// that the operator learns it before a half-done registration.
pub fn webhook_url(backend_url: &str) -> Result<Url, SetupError> {
    let invalid = |reason| SetupError::InvalidUrl {
        url: backend_url.to_owned(),
        reason,
    };
    let base = Url::parse(backend_url.trim()).map_err(|_| invalid("not a URL"))?;
    if base.scheme() != "https" {
        return Err(invalid("Pluggy only calls https:// URLs"));
    }
    if base.port().is_some() {
        return Err(invalid("Pluggy only calls port 443"));
    }
    match base.host() {
        Some(url::Host::Domain(domain)) => {
            let domain = domain.trim_end_matches('.').to_ascii_lowercase();
            if domain == "localhost" || domain.ends_with(".localhost") {
                return Err(invalid("localhost is not reachable from Pluggy"));
            }
            if !domain.contains('.') {
                return Err(invalid("the host must be a public domain name"));
            }
        }
        Some(url::Host::Ipv4(_) | url::Host::Ipv6(_)) => {
            return Err(invalid("Pluggy refuses IP addresses; use a domain name"));
        }
        None => return Err(invalid("the URL has no host")),
    }
    let mut url = base;
    let path = format!("{}{}", url.path().trim_end_matches('/'), WEBHOOK_PATH);
    url.set_path(&path);
    url.set_query(None);
    url.set_fragment(None);
    Ok(url)
}

/// Finds, creates or (with `force`) updates the webhook for `url` and `event`.
pub async fn setup(
    client: &PluggyClient,
    url: &Url,
    event: &str,
    secret: &Secret,
    force: bool,
) -> Result<Outcome, SetupError> {
    let existing = client.webhooks().await?.into_iter().find(|hook| {
        hook.get("url").and_then(Value::as_str) == Some(url.as_str())
            && hook.get("event").and_then(Value::as_str) == Some(event)
    });
    let body = json!({
        "url": url.as_str(),
        "event": event,
        "headers": { SECRET_HEADER: secret.expose() },
    });
    let id_of = |hook: &Value| {
        hook.get("id")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    Ok(match existing {
        Some(hook) if !force => Outcome::Unchanged { id: id_of(&hook) },
        Some(hook) => {
            let id = id_of(&hook);
            let mut patch = body;
            patch["enabled"] = json!(true);
            client.update_webhook(&id, &patch).await?;
            Outcome::Updated { id }
        }
        None => Outcome::Created {
            id: id_of(&client.create_webhook(&body).await?),
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_the_gateway_route_under_the_backend_url() {
        let url = webhook_url("https://hooks.example.com").map(|u| u.to_string());
        assert_eq!(
            url.ok().as_deref(),
            Some("https://hooks.example.com/api/banking/pluggy/webhook/")
        );
        let url = webhook_url("https://example.com/base/").map(|u| u.to_string());
        assert_eq!(
            url.ok().as_deref(),
            Some("https://example.com/base/api/banking/pluggy/webhook/")
        );
    }

    #[test]
    fn refuses_what_pluggy_refuses() {
        for bad in [
            "http://hooks.example.com",
            "https://127.0.0.1",
            "https://[::1]",
            "https://localhost",
            "https://api.localhost",
            "https://hooks.example.com:8443",
            "https://intranet",
            "not a url",
        ] {
            assert!(
                matches!(webhook_url(bad), Err(SetupError::InvalidUrl { .. })),
                "{bad} should be refused"
            );
        }
    }
}
