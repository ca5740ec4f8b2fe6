//! The providers hookwire accepts webhooks from, and the names each one owns on the broker.
//!
//! A closed enum matched exhaustively everywhere (no `_ =>` arms), so adding a provider
//! makes the compiler list every place that needs to learn about it.

use std::fmt;
use std::str::FromStr;

/// A webhook provider.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Provider {
    /// Pluggy, the open-finance aggregator (items, accounts, transactions).
    Pluggy,
    /// LiveTip, payments for streamers.
    LiveTip,
}

impl Provider {
    /// Every provider, for code that declares per-provider resources.
    pub const ALL: [Provider; 2] = [Provider::Pluggy, Provider::LiveTip];

    /// Stable lowercase name used in routing keys, queue names, headers and database rows.
    pub const fn as_str(self) -> &'static str {
        match self {
            Provider::Pluggy => "pluggy",
            Provider::LiveTip => "livetip",
        }
    }

    /// Key every one of this provider's events also carries on the ingest exchange (in
    /// a `BCC` header), and that its work queue binds. Never equal to an event's
    /// routing key, which always has a dot after the provider.
    pub const fn ingest_key(self) -> &'static str {
        self.as_str()
    }

    /// Routing key for one of this provider's events.
    ///
    /// Event names come from untrusted payloads, so they are folded into the
    /// topic-exchange alphabet: `item/updated` becomes `pluggy.item.updated`, anything
    /// outside `[a-z0-9_-]` becomes `_`, and the key stays far below AMQP's 255 bytes.
    pub fn routing_key(self, event: &str) -> String {
        const MAX_EVENT_CHARS: usize = 120;
        let mut key =
            String::with_capacity(self.as_str().len() + 1 + event.len().min(MAX_EVENT_CHARS));
        key.push_str(self.as_str());
        key.push('.');
        let start = key.len();
        for c in event.chars().take(MAX_EVENT_CHARS) {
            let c = c.to_ascii_lowercase();
            key.push(match c {
                'a'..='z' | '0'..='9' | '_' | '-' => c,
                '/' | '.' => '.',
                _ => '_',
            });
        }
        if key.len() == start {
            key.push_str("unknown");
        }
        key
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The name was not one of [`Provider::ALL`].
#[derive(Debug, thiserror::Error)]
#[error("unknown provider {0:?} (expected one of: pluggy, livetip)")]
pub struct UnknownProvider(pub String);

impl FromStr for Provider {
    type Err = UnknownProvider;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pluggy" => Ok(Provider::Pluggy),
            "livetip" => Ok(Provider::LiveTip),
            other => Err(UnknownProvider(other.to_owned())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routing_keys_follow_the_topic_alphabet() {
        assert_eq!(
            Provider::Pluggy.routing_key("item/updated"),
            "pluggy.item.updated"
        );
        assert_eq!(
            Provider::LiveTip.routing_key("payment_confirmed"),
            "livetip.payment_confirmed"
        );
        assert_eq!(Provider::Pluggy.routing_key("a#b*c d"), "pluggy.a_b_c_d");
        assert_eq!(Provider::Pluggy.routing_key(""), "pluggy.unknown");
        assert!(Provider::Pluggy.routing_key(&"x".repeat(10_000)).len() < 255);
    }

    #[test]
    fn names_round_trip() {
        for p in Provider::ALL {
            assert_eq!(p.as_str().parse::<Provider>().ok(), Some(p));
        }
    }
}
