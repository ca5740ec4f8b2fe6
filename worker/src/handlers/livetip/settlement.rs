//! Whether a LiveTip payment settles the payment it matched.
//!
//! Matching says which payment an event is about; it never says the money is right.
//! A payment completes only when LiveTip's currency is the payment's and the amount is
//! at least the expected one, compared as exact decimals. No tolerance below: any
//! shortfall accepted once can be repeated by anyone who can pay a cent with our id in
//! the message. More than expected settles it (a tip above the price is the payer's
//! choice) and the received amount is kept beside the expected one.

use shared::db::entities::payment;
use shared::money;
use shared::payload::livetip::LiveTipPayment;

/// Why a LiveTip payment does not settle the payment.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mismatch {
    /// Less than the expected amount.
    Amount,
    /// Another currency (amounts in different currencies are not compared).
    Currency,
}

impl Mismatch {
    /// Log and metric label.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Amount => "amount_below_expected",
            Self::Currency => "currency_differs",
        }
    }
}

/// `None` when `incoming` settles `payment` in full.
pub fn check(payment: &payment::Model, incoming: &LiveTipPayment) -> Option<Mismatch> {
    if !payment.currency.eq_ignore_ascii_case(&incoming.currency) {
        return Some(Mismatch::Currency);
    }
    // An expected amount we cannot read is never settled by guesswork.
    match money::from_text(&payment.amount) {
        Some(expected) if incoming.amount >= expected => None,
        _ => Some(Mismatch::Amount),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use shared::money::Decimal;

    fn payment(amount: &str, currency: &str) -> payment::Model {
        payment::Model {
            id: "HW-00000000".into(),
            user_name: "u".into(),
            amount: amount.into(),
            currency: currency.into(),
            status: "pending".into(),
            livetip_payment_id: None,
            content: None,
            matched_by: None,
            created_at: Utc::now(),
            updated_at: Utc::now(),
            paid_at: None,
            received_amount: None,
            received_currency: None,
        }
    }

    fn incoming(amount: Decimal, currency: &str) -> LiveTipPayment {
        LiveTipPayment {
            sender: "u".into(),
            receiver: None,
            content: None,
            amount,
            currency: currency.into(),
            timestamp: None,
            paid: true,
            payment_id: "lt".into(),
            read: None,
        }
    }

    #[test]
    fn at_least_the_amount_in_the_same_currency() {
        let p = payment("500.00", "BRL");
        assert_eq!(
            check(&p, &incoming(Decimal::new(1, 2), "BRL")),
            Some(Mismatch::Amount)
        );
        assert_eq!(
            check(&p, &incoming(Decimal::new(49_999, 2), "BRL")),
            Some(Mismatch::Amount)
        );
        assert_eq!(check(&p, &incoming(Decimal::new(500, 0), "BRL")), None);
        assert_eq!(check(&p, &incoming(Decimal::new(50_001, 2), "BRL")), None);
        assert_eq!(
            check(&p, &incoming(Decimal::new(900, 0), "USD")),
            Some(Mismatch::Currency)
        );
        assert_eq!(
            check(&payment("x", "BRL"), &incoming(Decimal::new(1, 0), "BRL")),
            Some(Mismatch::Amount)
        );
    }
}
