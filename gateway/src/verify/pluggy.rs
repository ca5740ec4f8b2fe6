//! Pluggy: an HMAC-SHA256 signature of the raw body (the product owner's guide) or the
//! secret header Pluggy itself sends when the webhook was registered with it. Either
//! one suffices; they use separate secrets, since the header's value travels with every
//! delivery and must never be enough to sign one.

use hmac::{Hmac, KeyInit, Mac};
use http::HeaderMap;
use sha2::Sha256;
use shared::secret::SecretList;

use super::header_bytes;
use crate::error::ApiError;

/// Hex HMAC-SHA256 of the body, optionally prefixed `sha256=`.
pub const SIGNATURE_HEADER: &str = "x-pluggy-signature";
/// The secret itself, as registered through Pluggy's `POST /webhooks` `headers`.
pub const SECRET_HEADER: &str = "x-pluggy-webhook-secret";

/// What the headers alone established.
#[derive(Debug, PartialEq, Eq)]
pub enum HeaderCheck {
    /// The secret header matched: no need to look at the body.
    Authentic,
    /// Only a signature can decide; it needs the body.
    NeedsBody(Vec<u8>),
}

/// Decides what can be decided before reading the body: the header secret is checked
/// against `secrets`; a signature is only worth reading the body for when `keys` exist.
pub fn check_headers(
    secrets: &SecretList,
    keys: &SecretList,
    headers: &HeaderMap,
) -> Result<HeaderCheck, ApiError> {
    if secrets.is_empty() && keys.is_empty() {
        return Err(ApiError::ProviderNotConfigured);
    }
    let signature = header_bytes(headers, SIGNATURE_HEADER);
    let secret = header_bytes(headers, SECRET_HEADER);
    if signature.is_none() && secret.is_none() {
        return Err(ApiError::MissingCredential);
    }
    if secret.is_some_and(|s| secrets.matches(s.trim_ascii())) {
        return Ok(HeaderCheck::Authentic);
    }
    match signature.and_then(decode_signature) {
        Some(signature) if !keys.is_empty() => Ok(HeaderCheck::NeedsBody(signature)),
        _ => Err(ApiError::InvalidCredential),
    }
}

/// Verifies the signature over the exact body bytes against every active key.
pub fn verify_signature(
    secrets: &SecretList,
    signature: &[u8],
    body: &[u8],
) -> Result<(), ApiError> {
    let mut valid = false;
    for secret in secrets.iter() {
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.expose().as_bytes()) else {
            continue;
        };
        mac.update(body);
        // `verify_slice` compares in constant time; every secret is tried regardless.
        valid |= mac.verify_slice(signature).is_ok();
    }
    if valid {
        Ok(())
    } else {
        Err(ApiError::InvalidCredential)
    }
}

/// `sha256=<hex>` or `<hex>`, either case; anything else is no signature at all.
fn decode_signature(raw: &[u8]) -> Option<Vec<u8>> {
    let raw = raw.trim_ascii();
    let hex_part = match raw.get(..7) {
        Some(prefix) if prefix.eq_ignore_ascii_case(b"sha256=") => &raw[7..],
        _ => raw,
    };
    let bytes = hex::decode(hex_part).ok()?;
    (bytes.len() == 32).then_some(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn sign(secret: &str, body: &[u8]) -> String {
        let mut mac =
            Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap_or_else(|_| unreachable!());
        mac.update(body);
        hex::encode(mac.finalize().into_bytes())
    }

    fn with(name: &'static str, value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Ok(v) = HeaderValue::from_str(value) {
            h.insert(name, v);
        }
        h
    }

    #[test]
    fn signature_in_any_accepted_form_verifies() {
        let secrets = SecretList::parse("old,new");
        let none = SecretList::default();
        let body = br#"{"event":"item/updated"}"#;
        for form in [
            sign("new", body),
            sign("old", body).to_uppercase(),
            format!("sha256={}", sign("new", body)),
            format!("SHA256={}", sign("old", body)),
        ] {
            let check = check_headers(&none, &secrets, &with(SIGNATURE_HEADER, &form));
            let Ok(HeaderCheck::NeedsBody(sig)) = check else {
                panic!("{form}: {check:?}");
            };
            assert!(verify_signature(&secrets, &sig, body).is_ok(), "{form}");
            assert!(
                verify_signature(&secrets, &sig, b"tampered").is_err(),
                "{form}"
            );
        }
    }

    #[test]
    fn secret_header_alone_authenticates() {
        let secrets = SecretList::parse("s1");
        let keys = SecretList::parse("k1");
        assert_eq!(
            check_headers(&secrets, &keys, &with(SECRET_HEADER, "s1")).ok(),
            Some(HeaderCheck::Authentic)
        );
        assert!(matches!(
            check_headers(&secrets, &keys, &with(SECRET_HEADER, "s2")),
            Err(ApiError::InvalidCredential)
        ));
        // The header secret is no signing key: a body signed with it does not verify.
        let body = b"{}";
        let forged = with(SIGNATURE_HEADER, &sign("s1", body));
        let Ok(HeaderCheck::NeedsBody(sig)) = check_headers(&secrets, &keys, &forged) else {
            panic!("a well-formed signature needs the body");
        };
        assert!(verify_signature(&keys, &sig, body).is_err());
        // Without signing keys a signature is refused before the body is read.
        assert!(matches!(
            check_headers(&secrets, &SecretList::default(), &forged),
            Err(ApiError::InvalidCredential)
        ));
    }

    #[test]
    fn missing_and_malformed_credentials() {
        let secrets = SecretList::parse("s1");
        let keys = SecretList::parse("k1");
        let none = SecretList::default();
        assert!(matches!(
            check_headers(&secrets, &keys, &HeaderMap::new()),
            Err(ApiError::MissingCredential)
        ));
        assert!(matches!(
            check_headers(&secrets, &keys, &with(SIGNATURE_HEADER, "not-hex")),
            Err(ApiError::InvalidCredential)
        ));
        assert!(matches!(
            check_headers(&none, &none, &with(SECRET_HEADER, "s1")),
            Err(ApiError::ProviderNotConfigured)
        ));
    }
}
