//! The LiveTip payment webhook, as the product owner's specification defines it.
//!
//! Tolerant where LiveTip is known to vary (amount as number or string, unknown
//! fields), strict on the fields the specification marks required.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde_json::Value;

use super::amount::{self, Sign};
use super::{PayloadError, bounds, json_object};

/// Currency assumed when the payment does not name one (spec: "padrão: BRL").
pub const DEFAULT_CURRENCY: &str = "BRL";

/// The events the specification names; anything else is recorded as ignored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LiveTipEventKind {
    /// `payment_confirmed`
    Confirmed,
    /// `payment_pending`
    Pending,
    /// `payment_failed`
    Failed,
    /// `payment_cancelled`
    Cancelled,
}

impl LiveTipEventKind {
    /// Maps the wire name; `None` for events the spec does not define.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "payment_confirmed" => Some(Self::Confirmed),
            "payment_pending" => Some(Self::Pending),
            "payment_failed" => Some(Self::Failed),
            "payment_cancelled" => Some(Self::Cancelled),
            _ => None,
        }
    }
}

/// A LiveTip webhook.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveTipEvent {
    /// Event name as sent.
    pub event: String,
    /// The payment it is about.
    pub payment: LiveTipPayment,
}

/// The `payment` object.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveTipPayment {
    /// Who paid (required).
    pub sender: String,
    /// Who received it.
    pub receiver: Option<String>,
    /// The payer's message; carries our payment id when the payer copied it.
    pub content: Option<String>,
    /// Exact amount (required, never negative).
    pub amount: Decimal,
    /// ISO currency code, `BRL` when absent.
    pub currency: String,
    /// When LiveTip says the payment happened, when it says so in a readable form.
    pub timestamp: Option<DateTime<Utc>>,
    /// Whether LiveTip considers it paid (required).
    pub paid: bool,
    /// LiveTip's id for the payment (required).
    pub payment_id: String,
    /// Whether the notification was read.
    pub read: Option<bool>,
}

/// Parses and validates a LiveTip webhook body: every field we store is checked
/// against its bound in [`bounds`], so what passes here fits its column.
pub fn parse(body: &[u8]) -> Result<LiveTipEvent, PayloadError> {
    let map = json_object(body)?;
    let event = required_string(map.get("event"), "event", bounds::EVENT_NAME)?;
    let payment = match map.get("payment") {
        Some(Value::Object(p)) => p,
        Some(_) => return Err(PayloadError::new("payment must be an object")),
        None => return Err(PayloadError::new("payment is required")),
    };
    let sender = required_string(payment.get("sender"), "payment.sender", bounds::USER_NAME)?;
    let payment_id = required_string(
        payment.get("paymentId"),
        "payment.paymentId",
        bounds::LIVETIP_PAYMENT_ID,
    )?;
    let amount = amount::parse(payment.get("amount"), "payment.amount", Sign::NonNegative)?;
    let paid = match payment.get("paid") {
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(PayloadError::new("payment.paid must be a boolean")),
        None => return Err(PayloadError::new("payment.paid is required")),
    };
    let currency = match payment.get("currency") {
        None | Some(Value::Null) => DEFAULT_CURRENCY.to_owned(),
        Some(Value::String(c)) => bounds::currency("payment.currency", c)?,
        Some(_) => {
            return Err(PayloadError::new(
                "payment.currency must be a three-letter currency code such as BRL",
            ));
        }
    };
    let receiver = optional_string(payment.get("receiver"), "payment.receiver")?;
    if let Some(receiver) = &receiver {
        bounds::name("payment.receiver", receiver, bounds::USER_NAME)?;
    }
    let content = optional_string(payment.get("content"), "payment.content")?;
    if let Some(content) = &content {
        bounds::free_text("payment.content", content, bounds::CONTENT)?;
    }
    Ok(LiveTipEvent {
        event,
        payment: LiveTipPayment {
            sender,
            receiver,
            content,
            amount,
            currency,
            timestamp: payment
                .get("timestamp")
                .and_then(Value::as_str)
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc)),
            paid,
            payment_id,
            read: payment.get("read").and_then(Value::as_bool),
        },
    })
}

fn required_string(value: Option<&Value>, field: &str, max: usize) -> Result<String, PayloadError> {
    match value {
        Some(Value::String(s)) => {
            bounds::name(field, s, max)?;
            Ok(s.clone())
        }
        Some(_) => Err(PayloadError::new(format!("{field} must be a string"))),
        None => Err(PayloadError::new(format!("{field} is required"))),
    }
}

/// A string field that may be absent or null; any other type is refused, so what we
/// store is what was sent.
fn optional_string(value: Option<&Value>, field: &str) -> Result<Option<String>, PayloadError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(PayloadError::new(format!("{field} must be a string"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPEC_EXAMPLE: &str = r#"{
      "event": "payment_confirmed",
      "payment": {"sender": "string", "receiver": "string", "content": "string",
        "amount": 25.50, "currency": "BRL", "timestamp": "2025-05-28T12:30:00.000Z",
        "paid": true, "paymentId": "lt_pay_abc123def456", "read": true, "extra": [1]}
    }"#;

    #[test]
    fn parses_the_spec_example() {
        let event = parse(SPEC_EXAMPLE.as_bytes()).map_err(|e| e.0);
        let event = event
            .as_ref()
            .map(|e| (&e.event[..], e.payment.amount, e.payment.paid));
        assert_eq!(event, Ok(("payment_confirmed", Decimal::new(255, 1), true)));
    }

    #[test]
    fn amount_may_be_a_numeric_string_and_stays_exact() {
        let body = br#"{"event":"payment_pending","payment":{"sender":"s","amount":"10.10","paymentId":"p","paid":false}}"#;
        let parsed = parse(body).map(|e| (e.payment.amount, e.payment.currency));
        assert_eq!(parsed, Ok((Decimal::new(1010, 2), "BRL".to_owned())));
    }

    #[test]
    fn names_the_missing_or_wrong_field() {
        let cases: &[(&str, &str)] = &[
            (r#"{"payment":{}}"#, "event is required"),
            (r#"{"event":"x"}"#, "payment is required"),
            (
                r#"{"event":"x","payment":{"amount":1,"paymentId":"p","paid":true}}"#,
                "payment.sender is required",
            ),
            (
                r#"{"event":"x","payment":{"sender":"s","paymentId":"p","paid":true}}"#,
                "payment.amount is required",
            ),
            (
                r#"{"event":"x","payment":{"sender":"s","amount":"abc","paymentId":"p","paid":true}}"#,
                "payment.amount must be a plain decimal such as \"10.50\"",
            ),
            (
                r#"{"event":"x","payment":{"sender":"s","amount":-1,"paymentId":"p","paid":true}}"#,
                "payment.amount must not be negative",
            ),
            (
                r#"{"event":"x","payment":{"sender":"s","amount":1,"paid":true}}"#,
                "payment.paymentId is required",
            ),
            (
                r#"{"event":"x","payment":{"sender":"s","amount":1,"paymentId":"p","paid":"yes"}}"#,
                "payment.paid must be a boolean",
            ),
        ];
        for (body, reason) in cases {
            assert_eq!(
                parse(body.as_bytes()).map(|_| ()),
                Err(PayloadError((*reason).to_owned())),
                "{body}"
            );
        }
    }
}
