//! Provider authentication. Each verifier decides from headers first, so a request
//! without a credential is refused before its body is read.

pub mod livetip;
pub mod pluggy;

use http::HeaderMap;

/// A header's value as bytes, treating an empty value as absent.
pub(crate) fn header_bytes<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a [u8]> {
    headers
        .get(name)
        .map(|v| v.as_bytes())
        .filter(|v| !v.iter().all(u8::is_ascii_whitespace))
}
