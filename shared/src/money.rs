//! Money as exact decimals, stored as canonical text.
//!
//! SQLite has no decimal type (its NUMERIC affinity stores a float) and SeaORM reads
//! SQLite decimals through `f64`; storing the canonical string keeps every amount exact
//! on both databases. Arithmetic happens on [`Decimal`], never on floats.

use std::str::FromStr;

pub use rust_decimal::Decimal;

/// Canonical text: at least two decimal places (`25.5` -> `25.50`), no trailing noise.
pub fn to_text(amount: Decimal) -> String {
    let mut normalized = amount.normalize();
    if normalized.scale() < 2 {
        normalized.rescale(2);
    }
    normalized.to_string()
}

/// Reads stored text back; `None` for text that is not a decimal.
pub fn from_text(text: &str) -> Option<Decimal> {
    Decimal::from_str(text.trim()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_text_round_trips_exactly() {
        for (value, text) in [
            ("25.5", "25.50"),
            ("10", "10.00"),
            ("0.00000001", "0.00000001"),
            ("1.230", "1.23"),
        ] {
            let amount = Decimal::from_str(value).unwrap_or_default();
            assert_eq!(to_text(amount), text);
            assert_eq!(
                from_text(text),
                Some(amount),
                "{value} compares equal after the trip"
            );
        }
    }
}
