//! Request input for the admin routes (no framework on this side either): query
//! strings, and small JSON bodies.

use std::collections::HashMap;

use crate::error::ApiError;

/// Longest parameter value: every filter is a name, id, status or number, whose
/// columns are no wider.
const MAX_VALUE_CHARS: usize = 255;

/// Decodes `a=1&b=x%20y` into a map; later duplicates win. A value longer than any
/// column it could be compared with, or with a control character (which no stored
/// value has, and PostgreSQL refuses as a NUL), is a 400 naming the parameter.
pub fn parse(query: Option<&str>) -> Result<HashMap<String, String>, ApiError> {
    query
        .unwrap_or_default()
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            let (key, value) = (decode(key), decode(value));
            if !value.is_empty() {
                shared::payload::bounds::name(&key, &value, MAX_VALUE_CHARS)
                    .map_err(|e| ApiError::InvalidPayload(e.0))?;
            }
            Ok((key, value))
        })
        .collect()
}

/// An admin route's JSON body: `application/json`, at most `limit` bytes, read within
/// 10 s, parsed.
pub async fn json_body(
    request: hyper::Request<hyper::body::Incoming>,
    limit: u64,
) -> Result<serde_json::Value, ApiError> {
    use crate::body::{is_json, read_limited};
    if !is_json(request.headers()) {
        return Err(ApiError::UnsupportedMediaType);
    }
    let (parts, body) = request.into_parts();
    let body = read_limited(
        body,
        &parts.headers,
        limit,
        std::time::Duration::from_secs(10),
    )
    .await?;
    serde_json::from_slice(&body)
        .map_err(|e| ApiError::InvalidPayload(format!("body is not valid JSON: {e}")))
}

/// A non-empty parameter.
pub fn text<'a>(params: &'a HashMap<String, String>, name: &str) -> Option<&'a str> {
    params
        .get(name)
        .map(String::as_str)
        .filter(|v| !v.is_empty())
}

/// `limit`, defaulting to `default`, refusing anything but 1..=`max`.
pub fn limit(params: &HashMap<String, String>, default: u64, max: u64) -> Result<u64, ApiError> {
    match text(params, "limit") {
        None => Ok(default),
        Some(raw) => match raw.parse::<u64>() {
            Ok(n) if n >= 1 => Ok(n.min(max)),
            _ => Err(ApiError::InvalidPayload(format!(
                "limit must be a whole number from 1 to {max}"
            ))),
        },
    }
}

fn decode(raw: &str) -> String {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                match raw
                    .get(i + 1..i + 3)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                    .ok_or(())
                {
                    Ok(byte) => {
                        out.push(byte);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            other => out.push(other),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_pairs() {
        let p = parse(Some(
            "event=payment_confirmed&status=&q=a%20b+c&bad=%zz&flag",
        ))
        .unwrap_or_default();
        assert_eq!(text(&p, "event"), Some("payment_confirmed"));
        assert_eq!(text(&p, "status"), None);
        assert_eq!(text(&p, "q"), Some("a b c"));
        assert_eq!(text(&p, "bad"), Some("%zz"));
        assert!(p.contains_key("flag"));
    }

    #[test]
    fn refuses_controls_and_overlong_values_naming_the_parameter() {
        let nul = parse(Some("event=a%00b")).map_err(|e| e.to_string());
        assert_eq!(
            nul,
            Err("invalid payload: event must not contain control characters".to_owned())
        );
        let long = format!("status={}", "x".repeat(256));
        assert!(parse(Some(&long)).is_err());
    }

    #[test]
    fn limits() {
        let params = |q| parse(Some(q)).unwrap_or_default();
        assert_eq!(
            limit(&parse(None).unwrap_or_default(), 50, 1000).ok(),
            Some(50)
        );
        assert_eq!(limit(&params("limit=5000"), 50, 1000).ok(), Some(1000));
        assert!(limit(&params("limit=0"), 50, 1000).is_err());
        assert!(limit(&params("limit=x"), 50, 1000).is_err());
    }
}
