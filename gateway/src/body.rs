//! Reading request bodies without ever holding more than the limit.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, header};
use http_body_util::BodyExt;
use hyper::body::{Body, Incoming};

use crate::error::ApiError;

/// Refuses a declared `Content-Length` above the limit before a byte is read.
pub fn check_declared_length(headers: &HeaderMap, limit: u64) -> Result<(), ApiError> {
    match declared_length(headers) {
        Some(length) if length > limit => Err(ApiError::PayloadTooLarge { limit }),
        _ => Ok(()),
    }
}

/// Refuses a body in a coding we do not decode: a transfer coding other than `chunked`
/// (`gzip, chunked` would otherwise reach the parser still compressed, or be taken for
/// what it is not) and any content coding but `identity`.
pub fn check_codings(headers: &HeaderMap) -> Result<(), ApiError> {
    let only = |name: header::HeaderName, allowed: &str| {
        headers
            .get_all(name)
            .iter()
            .flat_map(|v| v.to_str().unwrap_or("?").split(','))
            .map(str::trim)
            .filter(|coding| !coding.is_empty())
            .all(|coding| coding.eq_ignore_ascii_case(allowed))
    };
    if only(header::TRANSFER_ENCODING, "chunked") && only(header::CONTENT_ENCODING, "identity") {
        Ok(())
    } else {
        Err(ApiError::UnsupportedMediaType)
    }
}

/// Whether the request declares a JSON body (`application/json`, parameters allowed).
pub fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|mime| mime.trim().eq_ignore_ascii_case("application/json"))
}

/// Reads the whole body, stopping as soon as it passes `limit` bytes or `timeout` expires.
///
/// The buffer is allocated once, when the first bytes arrive (a client that declares
/// and sends nothing costs nothing): at the declared length, or at the limit for a
/// chunked body, and never grows past it (hyper refuses more bytes than declared; the
/// limit is checked frame by frame).
pub async fn read_limited(
    body: Incoming,
    headers: &HeaderMap,
    limit: u64,
    timeout: Duration,
) -> Result<Bytes, ApiError> {
    tokio::time::timeout(timeout, collect(body, declared_length(headers), limit))
        .await
        .map_err(|_| ApiError::BodyTimeout)?
}

/// The declared `Content-Length`, when there is a readable one.
pub fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
}

async fn collect(mut body: Incoming, declared: Option<u64>, limit: u64) -> Result<Bytes, ApiError> {
    let limit_usize = usize::try_from(limit).unwrap_or(usize::MAX);
    // The reservation made for this body (its declared length, or the limit when
    // chunked) is what the buffer gets, once: growing by doubling could take twice it.
    let capacity = declared
        .filter(|&length| length <= limit)
        .and_then(|length| usize::try_from(length).ok())
        .unwrap_or(limit_usize);
    let mut buffer = BytesMut::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(ApiError::BodyRead)?;
        if let Ok(data) = frame.into_data() {
            if buffer.len().saturating_add(data.len()) > limit_usize {
                return Err(ApiError::PayloadTooLarge { limit });
            }
            if buffer.is_empty() {
                // Most bodies arrive in one frame: keep it without copying.
                if body.is_end_stream() {
                    return Ok(data);
                }
                buffer.reserve(capacity);
            }
            buffer.extend_from_slice(&data);
        }
    }
    Ok(buffer.freeze())
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    #[test]
    fn json_content_types() {
        let mut headers = HeaderMap::new();
        assert!(!is_json(&headers));
        for (value, expected) in [
            ("application/json", true),
            ("Application/JSON; charset=utf-8", true),
            ("text/plain", false),
            ("application/jsonx", false),
            ("application/x-www-form-urlencoded", false),
        ] {
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(value));
            assert_eq!(is_json(&headers), expected, "{value}");
        }
    }

    #[test]
    fn only_codings_we_decode_pass() {
        let with = |name: &'static str, value: &'static str| {
            let mut headers = HeaderMap::new();
            headers.insert(name, HeaderValue::from_static(value));
            check_codings(&headers).is_ok()
        };
        assert!(check_codings(&HeaderMap::new()).is_ok());
        assert!(with("transfer-encoding", "chunked"));
        assert!(with("transfer-encoding", "Chunked"));
        assert!(with("content-encoding", "identity"));
        assert!(!with("transfer-encoding", "gzip, chunked"));
        assert!(!with("transfer-encoding", "deflate"));
        assert!(!with("content-encoding", "gzip"));
    }

    #[test]
    fn declared_length_over_the_limit_is_refused() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("11"));
        assert!(check_declared_length(&headers, 10).is_err());
        assert!(check_declared_length(&headers, 11).is_ok());
    }
}
