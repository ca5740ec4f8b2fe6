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

/// Parses a body that must be a JSON object, with no key twice in any object.
///
/// JSON readers disagree on a duplicate key (first wins, last wins, error), so a signed
/// body with one could mean one thing to us and another to whoever reads it after us:
/// refused.
pub(crate) fn json_object(
    body: &[u8],
) -> Result<serde_json::Map<String, serde_json::Value>, PayloadError> {
    let map = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Object(map)) => map,
        Ok(_) => return Err(PayloadError::new("body must be a JSON object")),
        Err(e) => return Err(PayloadError::new(format!("body is not valid JSON: {e}"))),
    };
    serde_json::from_slice::<unique_keys::UniqueKeys>(body)
        .map_err(|e| PayloadError::new(format!("body has {e}")))?;
    Ok(map)
}

/// A second pass over a JSON document that fails on the first object key seen twice.
/// Keys are borrowed from the body where they hold no escape: the pass allocates a set
/// per object, not a string per key (it runs on every request the gateway accepts).
mod unique_keys {
    use std::borrow::Cow;
    use std::collections::HashSet;
    use std::fmt;

    use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

    pub(super) struct UniqueKeys;

    impl<'de> Deserialize<'de> for UniqueKeys {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            deserializer.deserialize_any(Walk)
        }
    }

    struct Walk;

    impl<'de> Visitor<'de> for Walk {
        type Value = UniqueKeys;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("any JSON value")
        }

        fn visit_bool<E>(self, _: bool) -> Result<UniqueKeys, E> {
            Ok(UniqueKeys)
        }
        fn visit_i64<E>(self, _: i64) -> Result<UniqueKeys, E> {
            Ok(UniqueKeys)
        }
        fn visit_u64<E>(self, _: u64) -> Result<UniqueKeys, E> {
            Ok(UniqueKeys)
        }
        fn visit_f64<E>(self, _: f64) -> Result<UniqueKeys, E> {
            Ok(UniqueKeys)
        }
        fn visit_str<E>(self, _: &str) -> Result<UniqueKeys, E> {
            Ok(UniqueKeys)
        }
        fn visit_unit<E>(self) -> Result<UniqueKeys, E> {
            Ok(UniqueKeys)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<UniqueKeys, A::Error> {
            while seq.next_element::<UniqueKeys>()?.is_some() {}
            Ok(UniqueKeys)
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<UniqueKeys, A::Error> {
            let mut seen = HashSet::new();
            while let Some(Key(key)) = map.next_key()? {
                if seen.contains(&key) {
                    return Err(de::Error::custom(format!("the key {key:?} twice")));
                }
                seen.insert(key);
                map.next_value::<UniqueKeys>()?;
            }
            Ok(UniqueKeys)
        }
    }

    /// An object key, borrowed from the body unless it had to be unescaped.
    struct Key<'de>(Cow<'de, str>);

    impl<'de> Deserialize<'de> for Key<'de> {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            deserializer.deserialize_str(KeyText)
        }
    }

    struct KeyText;

    impl<'de> Visitor<'de> for KeyText {
        type Value = Key<'de>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("an object key")
        }

        fn visit_borrowed_str<E>(self, key: &'de str) -> Result<Key<'de>, E> {
            Ok(Key(Cow::Borrowed(key)))
        }
        fn visit_str<E>(self, key: &str) -> Result<Key<'de>, E> {
            Ok(Key(Cow::Owned(key.to_owned())))
        }
        fn visit_string<E>(self, key: String) -> Result<Key<'de>, E> {
            Ok(Key(Cow::Owned(key)))
        }
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

#[cfg(test)]
mod tests {
    use super::json_object;

    #[test]
    fn a_key_twice_is_refused_however_it_is_spelled() {
        for body in [
            br#"{"a":1,"a":2}"#.as_slice(),
            br#"{"a":1,"\u0061":2}"#,
            br#"{"o":{"k\"":1,"k\u0022":2}}"#,
            br#"{"l":[{"x":1},{"y":1,"y":{}}]}"#,
        ] {
            let refused = json_object(body).map(|_| ()).map_err(|e| e.0);
            assert!(
                refused.as_ref().is_err_and(|e| e.contains("twice")),
                "{}: {refused:?}",
                String::from_utf8_lossy(body)
            );
        }
        assert!(
            json_object(br#"{"a":1,"b":{"a":1.000000000000000000001},"c":[{"a":1},{"a":2}]}"#)
                .is_ok()
        );
    }
}
