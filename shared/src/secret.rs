//! Secrets held in memory: never printed, compared only in constant time.

use std::fmt;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// A single secret value whose `Debug` and `Display` never show it.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    /// Wraps a value read from configuration.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The raw value, for the few places that must use it (HMAC keys, outgoing auth).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// Every currently valid value of one credential.
///
/// Several values are active at once while a secret is rotated: the old one keeps
/// working until every sender has switched to the new one.
#[derive(Clone, Default)]
pub struct SecretList(Vec<Secret>);

impl SecretList {
    /// Parses a comma-separated list; blanks around and between entries are ignored.
    pub fn parse(raw: &str) -> Self {
        Self(
            raw.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(Secret::new)
                .collect(),
        )
    }

    /// No value configured: the route that needs it must refuse everything.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The active secrets, for keyed checks such as HMAC.
    pub fn iter(&self) -> impl Iterator<Item = &Secret> {
        self.0.iter()
    }

    /// Whether `candidate` equals one of the secrets.
    ///
    /// Both sides are hashed first so that the comparison takes the same time whatever
    /// the lengths, and every secret is compared so that timing does not reveal which
    /// one matched.
    pub fn matches(&self, candidate: &[u8]) -> bool {
        let candidate = Sha256::digest(candidate);
        let mut found = subtle::Choice::from(0u8);
        for secret in &self.0 {
            let expected = Sha256::digest(secret.expose().as_bytes());
            found |= expected.as_slice().ct_eq(candidate.as_slice());
        }
        found.into()
    }
}

impl fmt::Debug for SecretList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretList({} redacted)", self.0.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_matches_any_active_secret() {
        let list = SecretList::parse(" old-secret , ,new-secret,");
        assert!(list.matches(b"old-secret"));
        assert!(list.matches(b"new-secret"));
        assert!(!list.matches(b"new-secre"));
        assert!(!list.matches(b""));
        assert!(SecretList::parse(" , ").is_empty());
    }

    #[test]
    fn debug_never_shows_the_value() {
        let list = SecretList::parse("hunter2");
        assert!(!format!("{list:?}").contains("hunter2"));
        assert!(!format!("{:?}", Secret::new("hunter2")).contains("hunter2"));
    }
}
