//! The payments API our users' applications call to say what they expect to be paid.

use bytes::Bytes;
use chrono::{SecondsFormat, Utc};
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};
use serde_json::{Value, json};
use shared::db::entities::payment::{self, Column, Entity as Payments, PaymentStatus};
use shared::money;
use shared::payload::amount::{self, Sign};
use shared::payload::bounds;
use shared::payment_id;

use super::query;
use crate::error::{ApiError, json_response};

/// Requests to this API are small.
const BODY_LIMIT: u64 = 16 * 1024;

/// `POST /payments {"userName", "amount", "currency"?}` -> 201 and the payment.
pub async fn create(
    db: &DatabaseConnection,
    request: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let input = query::json_body(request, BODY_LIMIT).await?;
    let bad = |e: shared::payload::PayloadError| ApiError::InvalidPayload(e.0);
    let user_name = match input.get("userName") {
        Some(Value::String(s)) => {
            bounds::name("userName", s.trim(), bounds::USER_NAME).map_err(bad)?;
            s.trim().to_owned()
        }
        _ => {
            return Err(ApiError::InvalidPayload(
                "userName must be a non-empty string".into(),
            ));
        }
    };
    let amount = amount::parse(input.get("amount"), "amount", Sign::NonNegative).map_err(bad)?;
    if amount.is_zero() {
        return Err(ApiError::InvalidPayload("amount must be above zero".into()));
    }
    let currency = match input.get("currency") {
        None | Some(Value::Null) => shared::payload::livetip::DEFAULT_CURRENCY.to_owned(),
        Some(Value::String(c)) => bounds::currency("currency", c).map_err(bad)?,
        _ => {
            return Err(ApiError::InvalidPayload(
                "currency must be a three-letter currency code such as BRL".into(),
            ));
        }
    };
    let now = Utc::now();
    let row = payment::ActiveModel {
        id: Set(payment_id::generate()),
        user_name: Set(user_name),
        amount: Set(money::to_text(amount)),
        currency: Set(currency),
        status: Set(PaymentStatus::Pending.as_str().to_owned()),
        livetip_payment_id: Set(None),
        content: Set(None),
        matched_by: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        paid_at: Set(None),
        received_amount: Set(None),
        received_currency: Set(None),
    };
    let created = Payments::insert(row)
        .exec_with_returning(db)
        .await
        .map_err(ApiError::DatabaseUnavailable)?;
    Ok(json_response(StatusCode::CREATED, &to_json(&created)))
}

/// `GET /payments/{id}`.
pub async fn get(db: &DatabaseConnection, id: &str) -> Result<Response<Full<Bytes>>, ApiError> {
    let found = Payments::find_by_id(id.to_ascii_uppercase())
        .one(db)
        .await
        .map_err(ApiError::DatabaseUnavailable)?
        .ok_or_else(|| ApiError::NoSuchRecord {
            kind: "payment",
            key: id.chars().take(128).collect(),
        })?;
    Ok(json_response(StatusCode::OK, &to_json(&found)))
}

/// `GET /payments?status=&limit=`, newest first.
pub async fn list(
    db: &DatabaseConnection,
    raw_query: Option<&str>,
) -> Result<Response<Full<Bytes>>, ApiError> {
    let params = query::parse(raw_query)?;
    let limit = query::limit(&params, 50, 1000)?;
    let mut select = Payments::find();
    if let Some(status) = query::text(&params, "status") {
        let status = PaymentStatus::parse(status).ok_or_else(|| {
            ApiError::InvalidPayload(format!(
                "status must be one of {}",
                PaymentStatus::ALL.map(PaymentStatus::as_str).join(", ")
            ))
        })?;
        select = select.filter(Column::Status.eq(status.as_str()));
    }
    let rows = select
        .order_by_desc(Column::CreatedAt)
        .order_by_desc(Column::Id)
        .limit(limit)
        .all(db)
        .await
        .map_err(ApiError::DatabaseUnavailable)?;
    let payments: Vec<Value> = rows.iter().map(to_json).collect();
    Ok(json_response(
        StatusCode::OK,
        &json!({"count": payments.len(), "payments": payments}),
    ))
}

/// The payment as the API shows it. `amount` is a string so no client reads it as a
/// float; `message` is what the payer writes in the LiveTip message.
pub(crate) fn to_json(p: &payment::Model) -> Value {
    let time = |t: chrono::DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Millis, true);
    json!({
        "id": p.id,
        "userName": p.user_name,
        "amount": p.amount,
        "currency": p.currency,
        "status": p.status,
        "createdAt": time(p.created_at),
        "updatedAt": time(p.updated_at),
        "paidAt": p.paid_at.map(time),
        "livetipPaymentId": p.livetip_payment_id,
        "matchedBy": p.matched_by,
        "receivedAmount": p.received_amount,
        "receivedCurrency": p.received_currency,
        "message": p.id,
    })
}
