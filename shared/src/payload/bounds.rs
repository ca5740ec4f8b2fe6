//! The size and character rules of every provider field we store, in one place.
//!
//! The gateway refuses a field that breaks its rule with a 400 naming it; the worker
//! parses with the same code (so a message that reached the queue past the gateway is
//! dead-lettered as permanent, not retried). [`COLUMNS`] names the column each bound
//! sizes, and a test holds every one against the schema the migrations build: a
//! released migration never changes, so a bound that moves without a migration altering
//! its column fails that test instead of drifting apart in production.

use super::PayloadError;

/// Provider event names stored in `webhook_events.event` and `webhook_logs.event`.
pub const EVENT_NAME: usize = 255;
/// Pluggy event names, also kept in `pluggy_items.last_event`.
pub const PLUGGY_EVENT_NAME: usize = 64;
/// Provider event ids (`webhook_events.provider_event_id`): Pluggy's `eventId`,
/// LiveTip's `paymentId`.
pub const PROVIDER_EVENT_ID: usize = 255;
/// The inbox's dedupe key (`event:<eventId>` or `sha256:<hex>`).
pub const DEDUPE_KEY: usize = 255;
/// Pluggy object ids: items, accounts, transactions (`pluggy_items.id`, ...).
pub const PLUGGY_ID: usize = 64;
/// Pluggy `clientId` (compared, never stored; bounded all the same).
pub const PLUGGY_CLIENT_ID: usize = 255;
/// LiveTip's `paymentId` (`payments.livetip_payment_id`, `livetip_bindings`).
pub const LIVETIP_PAYMENT_ID: usize = 255;
/// A LiveTip user: `sender`, `receiver`, our `userName` (`payments.user_name`).
pub const USER_NAME: usize = 255;
/// The payer's message (`payments.content`, a text column): generous, since refusing
/// a confirmation for a long message would lose a payment, but not unbounded.
pub const CONTENT: usize = 4_096;
/// Currency codes are three ASCII letters (ISO 4217, and LiveTip's `BTC`).
pub const CURRENCY_CODE: usize = 3;
/// Width of the currency columns: room beyond today's three-letter codes.
pub const CURRENCY_COLUMN: usize = 8;
/// Exact decimal text of an amount (`payments.amount`, `payments.received_amount`).
pub const AMOUNT_TEXT: usize = 40;

/// `(table, column, bound)`: each column sized by a bound above, for the schema test.
pub const COLUMNS: &[(&str, &str, usize)] = &[
    ("webhook_events", "event", EVENT_NAME),
    ("webhook_events", "provider_event_id", PROVIDER_EVENT_ID),
    ("webhook_events", "dedupe_key", DEDUPE_KEY),
    ("webhook_events", "pluggy_item_id", PLUGGY_ID),
    ("webhook_events", "pluggy_account_id", PLUGGY_ID),
    ("webhook_logs", "event", EVENT_NAME),
    ("payments", "user_name", USER_NAME),
    ("payments", "amount", AMOUNT_TEXT),
    ("payments", "currency", CURRENCY_COLUMN),
    ("payments", "livetip_payment_id", LIVETIP_PAYMENT_ID),
    ("payments", "received_amount", AMOUNT_TEXT),
    ("payments", "received_currency", CURRENCY_COLUMN),
    ("livetip_bindings", "livetip_payment_id", LIVETIP_PAYMENT_ID),
    ("pluggy_items", "id", PLUGGY_ID),
    ("pluggy_items", "last_event", PLUGGY_EVENT_NAME),
    ("bank_accounts", "id", PLUGGY_ID),
    ("bank_accounts", "item_id", PLUGGY_ID),
    ("bank_transactions", "id", PLUGGY_ID),
    ("bank_transactions", "account_id", PLUGGY_ID),
];

/// An identifier or name: non-empty, at most `max` characters, no control characters.
pub fn name(field: &str, value: &str, max: usize) -> Result<(), PayloadError> {
    if value.trim().is_empty() {
        return Err(PayloadError::new(format!("{field} is empty")));
    }
    within(field, value, max)?;
    if value.chars().any(char::is_control) {
        return Err(PayloadError::new(format!(
            "{field} must not contain control characters"
        )));
    }
    Ok(())
}

/// Free text (a payer's message): line breaks and tabs allowed, other control
/// characters (NUL above all, which PostgreSQL cannot store) refused.
pub fn free_text(field: &str, value: &str, max: usize) -> Result<(), PayloadError> {
    within(field, value, max)?;
    if value
        .chars()
        .any(|c| c.is_control() && !matches!(c, '\n' | '\r' | '\t'))
    {
        return Err(PayloadError::new(format!(
            "{field} must not contain control characters other than line breaks and tabs"
        )));
    }
    Ok(())
}

/// A three-letter currency code, returned upper-cased.
pub fn currency(field: &str, value: &str) -> Result<String, PayloadError> {
    if value.len() == CURRENCY_CODE && value.bytes().all(|b| b.is_ascii_alphabetic()) {
        Ok(value.to_ascii_uppercase())
    } else {
        Err(PayloadError::new(format!(
            "{field} must be a three-letter currency code such as BRL"
        )))
    }
}

fn within(field: &str, value: &str, max: usize) -> Result<(), PayloadError> {
    // Bytes bound characters from above: only count when the bytes exceed the bound.
    if value.len() > max && value.chars().count() > max {
        return Err(PayloadError::new(format!(
            "{field} is longer than {max} characters"
        )));
    }
    Ok(())
}

/// Refuses a NUL character in any string (key or value) of a JSON document:
/// PostgreSQL can store it neither in text nor in `jsonb`, so such a body could never
/// be recorded.
pub fn no_nul(value: &serde_json::Value) -> Result<(), PayloadError> {
    let refuse = || PayloadError::new("strings must not contain the NUL character");
    match value {
        serde_json::Value::String(s) if s.contains('\0') => Err(refuse()),
        serde_json::Value::Array(items) => items.iter().try_for_each(no_nul),
        serde_json::Value::Object(map) => map.iter().try_for_each(|(k, v)| {
            if k.contains('\0') {
                Err(refuse())
            } else {
                no_nul(v)
            }
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_bounded_in_characters_and_refuse_controls() {
        assert!(name("f", &"é".repeat(10), 10).is_ok(), "20 bytes, 10 chars");
        assert_eq!(
            name("f", &"a".repeat(11), 10).map_err(|e| e.0),
            Err("f is longer than 10 characters".to_owned())
        );
        assert!(name("f", "a\u{0}b", 10).is_err());
        assert!(name("f", "a\nb", 10).is_err());
        assert!(name("f", " ", 10).is_err());
        assert!(free_text("f", "line\nnext\ttab", 20).is_ok());
        assert!(free_text("f", "nul\u{0}", 20).is_err());
    }

    #[test]
    fn currencies_are_three_letters() {
        assert_eq!(currency("c", "brl").ok().as_deref(), Some("BRL"));
        assert_eq!(currency("c", "BTC").ok().as_deref(), Some("BTC"));
        for bad in ["", "BR", "BRLX", "B1L", "R$ ", "ÇÇÇ"] {
            assert!(currency("c", bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn nul_is_found_at_any_depth() {
        let deep = serde_json::json!({"a": [{"b": "x\u{0}"}]});
        assert!(no_nul(&deep).is_err());
        let key = serde_json::json!({"k\u{0}": 1});
        assert!(no_nul(&key).is_err());
        assert!(no_nul(&serde_json::json!({"a": ["ok", 1, null]})).is_ok());
    }
}
