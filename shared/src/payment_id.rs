//! Our payment ids: short enough for a LiveTip message, distinctive enough to find in
//! free text, and never found inside another token.
//!
//! Form: `HW-` + 8 characters of Crockford's base32 (no I, L, O, U, so nothing is
//! misread when a payer types it), 11 characters in all, matched case-insensitively as
//! a whole token.

use uuid::Uuid;

/// Prefix of every id.
pub const PREFIX: &str = "HW-";
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
const BODY_LEN: usize = 8;

/// A new random id (40 bits of randomness; uniqueness is enforced by the primary key).
pub fn generate() -> String {
    let random = Uuid::new_v4().into_bytes();
    let mut id = String::with_capacity(PREFIX.len() + BODY_LEN);
    id.push_str(PREFIX);
    for byte in random.iter().take(BODY_LEN) {
        id.push(char::from(ALPHABET[usize::from(byte & 31)]));
    }
    id
}

/// Whether `candidate` is a well-formed id (as stored: upper case).
pub fn is_valid(candidate: &str) -> bool {
    candidate.len() == PREFIX.len() + BODY_LEN
        && candidate.starts_with(PREFIX)
        && candidate[PREFIX.len()..]
            .bytes()
            .all(|b| ALPHABET.contains(&b))
}

/// Every id standing as a whole token in `text`, upper-cased, in order of appearance.
pub fn find_all(text: &str) -> Vec<String> {
    let upper = text.to_ascii_uppercase();
    let bytes = upper.as_bytes();
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(offset) = upper[from..].find(PREFIX) {
        let start = from + offset;
        let end = start + PREFIX.len() + BODY_LEN;
        from = start + PREFIX.len();
        let before_ok = start == 0 || !is_word_byte(bytes[start - 1]);
        let after_ok = end >= bytes.len() || !is_word_byte(bytes[end]);
        if end <= bytes.len() && before_ok && after_ok {
            let candidate = &upper[start..end];
            if is_valid(candidate) && !found.iter().any(|f| f == candidate) {
                found.push(candidate.to_owned());
            }
        }
    }
    found
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b >= 0x80
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_well_formed_and_distinct() {
        let a = generate();
        let b = generate();
        assert!(is_valid(&a), "{a}");
        assert_eq!(a.len(), 11);
        assert_ne!(a, b);
    }

    #[test]
    fn finds_whole_tokens_only() {
        assert_eq!(find_all("valeu! HW-7K2M9QXA obrigado"), ["HW-7K2M9QXA"]);
        assert_eq!(find_all("hw-7k2m9qxa"), ["HW-7K2M9QXA"]);
        assert_eq!(find_all("(HW-7K2M9QXA)."), ["HW-7K2M9QXA"]);
        assert!(find_all("XHW-7K2M9QXA").is_empty(), "glued before");
        assert!(find_all("HW-7K2M9QXAB").is_empty(), "longer token");
        assert!(find_all("HW-7K2M9QX").is_empty(), "too short");
        assert!(
            find_all("HW-7K2M9QXI").is_empty(),
            "I is not in the alphabet"
        );
        assert_eq!(
            find_all("HW-AAAAAAAA e HW-BBBBBBBB"),
            ["HW-AAAAAAAA", "HW-BBBBBBBB"]
        );
    }
}
