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
/// refused. One pass does both jobs: the check runs as each object is built, against
/// the keys already in it, because this runs on every request the gateway accepts. A
/// body with both a repeated key and a later syntax error is refused for whichever
/// comes first.
pub(crate) fn json_object(
    body: &[u8],
) -> Result<serde_json::Map<String, serde_json::Value>, PayloadError> {
    match serde_json::from_slice::<unique_keys::UniqueValue>(body) {
        Ok(unique_keys::UniqueValue(serde_json::Value::Object(map))) => Ok(map),
        Ok(_) => Err(PayloadError::new("body must be a JSON object")),
        Err(e) if e.is_data() => Err(PayloadError::new(format!("body has {e}"))),
        Err(e) => Err(PayloadError::new(format!("body is not valid JSON: {e}"))),
    }
}

/// A JSON value read like `serde_json::Value`, except that an object with a key twice,
/// or with one of serde_json's private keys, is an error (the only data errors it
/// raises: it accepts every JSON type).
mod unique_keys {
    use std::borrow::Cow;
    use std::fmt;
    use std::str::FromStr;

    use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
    use serde_json::map::Entry;
    use serde_json::{Map, Number, Value};

    /// With `arbitrary_precision` (which keeps amounts exact), serde_json hands a number
    /// to a visitor as a one-entry map under this key, holding the number's text; its own
    /// `Value` reads it the same way. Should serde_json ever rename it, numbers would
    /// arrive as objects and `numbers_keep_their_exact_text` fails.
    const NUMBER_TOKEN: &str = "$serde_json::private::Number";

    /// serde_json's other private keys: with its `raw_value` feature (which the database
    /// driver turns on), its `Value` parses a string under `...::RawValue` as JSON, so the
    /// worker would read such an object as something else than what we checked. No
    /// provider sends these keys; a body with one is refused.
    const RESERVED: &str = "$serde_json::private::";

    pub(super) struct UniqueValue(pub(super) Value);

    impl<'de> Deserialize<'de> for UniqueValue {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            deserializer.deserialize_any(Build).map(UniqueValue)
        }
    }

    struct Build;

    impl<'de> Visitor<'de> for Build {
        type Value = Value;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("any JSON value")
        }

        fn visit_bool<E>(self, b: bool) -> Result<Value, E> {
            Ok(Value::Bool(b))
        }
        fn visit_i64<E>(self, n: i64) -> Result<Value, E> {
            Ok(Value::Number(n.into()))
        }
        fn visit_u64<E>(self, n: u64) -> Result<Value, E> {
            Ok(Value::Number(n.into()))
        }
        fn visit_f64<E>(self, n: f64) -> Result<Value, E> {
            Ok(Number::from_f64(n).map_or(Value::Null, Value::Number))
        }
        fn visit_str<E>(self, s: &str) -> Result<Value, E> {
            Ok(Value::String(s.to_owned()))
        }
        fn visit_string<E>(self, s: String) -> Result<Value, E> {
            Ok(Value::String(s))
        }
        fn visit_unit<E>(self) -> Result<Value, E> {
            Ok(Value::Null)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
            let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
            while let Some(UniqueValue(item)) = seq.next_element()? {
                items.push(item);
            }
            Ok(Value::Array(items))
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
            let Some(Key(first)) = map.next_key()? else {
                return Ok(Value::Object(Map::new()));
            };
            if first == NUMBER_TOKEN {
                let text: String = map.next_value()?;
                return Number::from_str(&text)
                    .map(Value::Number)
                    .map_err(de::Error::custom);
            }
            let mut object = Map::new();
            let mut key = Some(first);
            while let Some(name) = key {
                if name.starts_with(RESERVED) {
                    return Err(de::Error::custom(format!("the reserved key {name:?}")));
                }
                match object.entry(name) {
                    Entry::Occupied(taken) => {
                        return Err(de::Error::custom(format!(
                            "the key {:?} twice",
                            taken.key()
                        )));
                    }
                    Entry::Vacant(slot) => {
                        let UniqueValue(value) = map.next_value()?;
                        slot.insert(value);
                    }
                }
                key = map.next_key::<Key<'de>>()?.map(|Key(name)| name);
            }
            Ok(Value::Object(object))
        }
    }

    /// An object key, borrowed from the body unless it had to be unescaped: most keys
    /// are compared with the number token and copied once, into the map.
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

    #[test]
    fn reads_every_value_as_serde_json_does() {
        let body = br#"{"s":"t\u00e9","n":null,"b":true,"i":-7,"u":18446744073709551615,
            "f":25.50,"e":1e400,"a":[1,"x",{"k":[]}],"o":{},"l":[]}"#;
        let ours = json_object(body).map(serde_json::Value::Object);
        assert_eq!(ours, Ok(serde_json::from_slice(body).unwrap_or_default()));
    }

    #[test]
    fn numbers_keep_their_exact_text() {
        let map = json_object(br#"{"amount":25.50,"big":123456789012345678901234567890.000001}"#);
        let text = |key: &str| {
            map.as_ref()
                .ok()
                .and_then(|m| m.get(key))
                .and_then(|v| v.as_number())
                .map(ToString::to_string)
        };
        assert_eq!(text("amount").as_deref(), Some("25.50"));
        assert_eq!(
            text("big").as_deref(),
            Some("123456789012345678901234567890.000001")
        );
    }

    #[test]
    fn says_which_of_the_two_it_is() {
        let reason = |body: &[u8]| json_object(body).map(|_| ()).map_err(|e| e.0);
        assert!(reason(b"{\"a\":").is_err_and(|e| e.starts_with("body is not valid JSON: ")));
        assert!(reason(b"[1]").is_err_and(|e| e == "body must be a JSON object"));
        assert!(
            reason(br#"{"a":{"b":1,"b":2}}"#)
                .is_err_and(|e| e.starts_with("body has the key \"b\" twice"))
        );
    }

    /// serde_json's `Value` (which the worker reads Pluggy bodies with) parses a string
    /// under its raw-value key as JSON: `itemId` would be an object to us and a string to
    /// it, past every bound we check.
    #[test]
    fn serde_jsons_private_keys_are_refused() {
        for body in [
            br#"{"event":"item/updated","itemId":{"$serde_json::private::RawValue":"\"i\""}}"#
                .as_slice(),
            br#"{"a":1,"$serde_json::private::Number":"2"}"#,
        ] {
            let refused = json_object(body).map(|_| ()).map_err(|e| e.0);
            assert!(
                refused
                    .as_ref()
                    .is_err_and(|e| e.starts_with("body has the reserved key")),
                "{}: {refused:?}",
                String::from_utf8_lossy(body)
            );
        }
    }
}
