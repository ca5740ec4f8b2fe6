//! LiveTip: a shared token in `X-Livetip-Webhook-Secret-Token` (not a signature).

use http::HeaderMap;
use shared::secret::SecretList;

use super::header_bytes;
use crate::error::ApiError;

/// Header LiveTip sends its token in.
pub const TOKEN_HEADER: &str = "x-livetip-webhook-secret-token";

/// Checks the token against every active one, in constant time.
pub fn verify(tokens: &SecretList, headers: &HeaderMap) -> Result<(), ApiError> {
    if tokens.is_empty() {
        return Err(ApiError::ProviderNotConfigured);
    }
    match header_bytes(headers, TOKEN_HEADER) {
        None => Err(ApiError::MissingCredential),
        Some(token) if tokens.matches(token.trim_ascii()) => Ok(()),
        Some(_) => Err(ApiError::InvalidCredential),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(token: Option<&'static str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(t) = token {
            h.insert(TOKEN_HEADER, HeaderValue::from_static(t));
        }
        h
    }

    #[test]
    fn statuses_follow_the_spec() {
        let tokens = SecretList::parse("old,new");
        assert!(verify(&tokens, &headers(Some("new"))).is_ok());
        assert!(verify(&tokens, &headers(Some("old"))).is_ok());
        assert!(matches!(
            verify(&tokens, &headers(None)),
            Err(ApiError::MissingCredential)
        ));
        assert!(matches!(
            verify(&tokens, &headers(Some(""))),
            Err(ApiError::MissingCredential)
        ));
        assert!(matches!(
            verify(&tokens, &headers(Some("nope"))),
            Err(ApiError::InvalidCredential)
        ));
        assert!(matches!(
            verify(&SecretList::default(), &headers(Some("new"))),
            Err(ApiError::ProviderNotConfigured)
        ));
    }
}
