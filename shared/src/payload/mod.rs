//! Parsing of provider payloads, shared so that the gateway's validation and the
//! worker's handling can never disagree on what a field means.

pub mod amount;
pub mod bounds;
pub mod livetip;
pub mod pluggy;
#[cfg(test)]
mod properties;

/// Why a payload was refused; the text is safe to return to the sender.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PayloadError(pub String);

impl PayloadError {
    pub(crate) fn new(reason: impl Into<String>) -> Self {
        Self(reason.into())
    }
}

/// Parses a body that must be a JSON object.
pub(crate) fn json_object(
    body: &[u8],
) -> Result<serde_json::Map<String, serde_json::Value>, PayloadError> {
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        Ok(_) => Err(PayloadError::new("body must be a JSON object")),
        Err(e) => Err(PayloadError::new(format!("body is not valid JSON: {e}"))),
    }
}

/// A string field, or an integer tolerated as its decimal text (ids sometimes arrive as numbers).
pub(crate) fn id_like(value: Option<&serde_json::Value>) -> Option<String> {
    match value? {
        serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
        serde_json::Value::Number(n) if n.is_u64() || n.is_i64() => Some(n.to_string()),
        _ => None,
    }
}
