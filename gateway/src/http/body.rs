//! Reading request bodies without ever holding more than the limit.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, header};
use http_body_util::BodyExt;
use hyper::body::{Body, Incoming};

use crate::error::ApiError;

/// Refuses a declared `Content-Length` above the limit before a byte is read.
pub fn check_declared_length(headers: &HeaderMap, limit: u64) -> Result<(), ApiError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    match declared {
        Some(length) if length > limit => Err(ApiError::PayloadTooLarge { limit }),
        _ => Ok(()),
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
/// A chunked body has no declared length, so the limit is enforced frame by frame: the
/// buffer never grows beyond `limit`.
pub async fn read_limited(
    body: Incoming,
    limit: u64,
    timeout: Duration,
) -> Result<Bytes, ApiError> {
    tokio::time::timeout(timeout, collect(body, limit))
        .await
        .map_err(|_| ApiError::BodyTimeout)?
}

async fn collect(mut body: Incoming, limit: u64) -> Result<Bytes, ApiError> {
    let limit_usize = usize::try_from(limit).unwrap_or(usize::MAX);
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
                buffer.reserve(data.len());
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
    fn declared_length_over_the_limit_is_refused() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("11"));
        assert!(check_declared_length(&headers, 10).is_err());
        assert!(check_declared_length(&headers, 11).is_ok());
    }
}
