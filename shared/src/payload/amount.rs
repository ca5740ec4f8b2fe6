//! Amounts as providers and our API send them: a JSON number, or a plain decimal
//! string. Nothing looser (`"1_000"`, `" 10"`, `"1e3"` in a string, `"+5"`): a value
//! that two readers could take differently is refused, not guessed.

use std::str::FromStr;

use rust_decimal::Decimal;
use serde_json::Value;

use super::PayloadError;

/// Whether a leading minus is meaningful for the field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sign {
    /// Never below zero (a payment).
    NonNegative,
    /// Either sign (a balance, a debit).
    Any,
}

/// Reads `value` exactly as a decimal.
pub fn parse(value: Option<&Value>, field: &str, sign: Sign) -> Result<Decimal, PayloadError> {
    let parsed = match value {
        // JSON numbers keep their text (serde_json's arbitrary precision): read it
        // exactly, exponent notation included, since JSON allows it.
        Some(Value::Number(n)) => {
            let text = n.to_string();
            Decimal::from_str(&text)
                .or_else(|_| Decimal::from_scientific(&text))
                .map_err(|_| out_of_range(field))?
        }
        Some(Value::String(s)) if is_plain_decimal(s, sign) => {
            Decimal::from_str(s).map_err(|_| out_of_range(field))?
        }
        Some(Value::String(_)) => {
            return Err(PayloadError::new(format!(
                "{field} must be a plain decimal such as \"10.50\""
            )));
        }
        Some(_) => {
            return Err(PayloadError::new(format!(
                "{field} must be a number or a decimal string"
            )));
        }
        None => return Err(PayloadError::new(format!("{field} is required"))),
    };
    if sign == Sign::NonNegative && parsed.is_sign_negative() && !parsed.is_zero() {
        return Err(PayloadError::new(format!("{field} must not be negative")));
    }
    Ok(parsed.normalize())
}

fn out_of_range(field: &str) -> PayloadError {
    PayloadError::new(format!("{field} is out of range"))
}

/// Digits, one optional point followed by digits, and a leading minus where allowed.
fn is_plain_decimal(text: &str, sign: Sign) -> bool {
    let unsigned = match (sign, text.strip_prefix('-')) {
        (Sign::Any, Some(rest)) => rest,
        (Sign::NonNegative, Some(_)) => return false,
        (_, None) => text,
    };
    let (whole, fraction) = match unsigned.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (unsigned, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(whole) && fraction.is_none_or(digits)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(value: Value) -> Result<Decimal, String> {
        parse(Some(&value), "amount", Sign::NonNegative).map_err(|e| e.0)
    }

    #[test]
    fn numbers_and_plain_strings_are_exact() {
        assert_eq!(read(json!("10.10")), Ok(Decimal::new(1010, 2)));
        assert_eq!(read(json!("7")), Ok(Decimal::new(7, 0)));
        let number: Value = serde_json::from_str("25.50").unwrap_or_default();
        assert_eq!(read(number), Ok(Decimal::new(255, 1)));
        let exponent: Value = serde_json::from_str("1e2").unwrap_or_default();
        assert_eq!(read(exponent), Ok(Decimal::new(100, 0)));
    }

    #[test]
    fn anything_looser_is_refused() {
        for bad in [
            "1_000", " 10", "10 ", "+5", "1e3", ".5", "5.", "1.2.3", "", "NaN", "-1", "0x10",
        ] {
            assert!(read(json!(bad)).is_err(), "{bad:?}");
        }
        assert!(read(json!(true)).is_err());
        assert_eq!(
            read(json!(-1)).map_err(|e| e.contains("negative")),
            Err(true)
        );
        assert_eq!(
            parse(Some(&json!("-12.5")), "balance", Sign::Any),
            Ok(Decimal::new(-125, 1))
        );
    }
}
