//! Finding the payment a LiveTip event is about, in the specification's order.

use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter, QueryOrder};
use shared::db::entities::payment::{self, Column, Entity as Payments, MatchedBy, PaymentStatus};
use shared::money::{self, Decimal};
use shared::payload::livetip::LiveTipPayment;
use shared::payment_id;

/// The fallback's tolerance on amounts (spec: `< 0.01` apart, we accept `<= 0.01`).
fn tolerance() -> Decimal {
    Decimal::new(1, 2)
}

/// A found payment and how.
#[derive(Debug, Clone)]
pub struct Found {
    /// The payment as read.
    pub payment: payment::Model,
    /// Which method found it.
    pub matched_by: MatchedBy,
    /// Pending payments the fallback had to choose among (1 when unambiguous).
    pub candidates: usize,
}

/// Tries, in order: LiveTip's id already bound to a payment; one of our ids in the
/// payer's message; same payer and amount among pending payments, oldest first.
pub async fn find<C: ConnectionTrait>(
    db: &C,
    incoming: &LiveTipPayment,
) -> Result<Option<Found>, DbErr> {
    if let Some(payment) = Payments::find()
        .filter(Column::LivetipPaymentId.eq(incoming.payment_id.as_str()))
        .one(db)
        .await?
    {
        return Ok(Some(Found {
            payment,
            matched_by: MatchedBy::LivetipId,
            candidates: 1,
        }));
    }
    if let Some(content) = &incoming.content {
        for id in payment_id::find_all(content) {
            let Some(payment) = Payments::find_by_id(id).one(db).await? else {
                continue;
            };
            // Bound to another LiveTip payment already: this message merely quotes it.
            if payment
                .livetip_payment_id
                .as_deref()
                .is_some_and(|bound| bound != incoming.payment_id)
            {
                continue;
            }
            return Ok(Some(Found {
                payment,
                matched_by: MatchedBy::ExternalId,
                candidates: 1,
            }));
        }
    }
    let pending = Payments::find()
        .filter(Column::UserName.eq(incoming.sender.as_str()))
        .filter(Column::Status.eq(PaymentStatus::Pending.as_str()))
        .filter(Column::LivetipPaymentId.is_null())
        .filter(Column::Currency.eq(incoming.currency.as_str()))
        .order_by_asc(Column::CreatedAt)
        .order_by_asc(Column::Id)
        .all(db)
        .await?;
    let mut close: Vec<payment::Model> = pending
        .into_iter()
        .filter(|p| {
            money::from_text(&p.amount)
                .is_some_and(|amount| (amount - incoming.amount).abs() <= tolerance())
        })
        .collect();
    let candidates = close.len();
    if candidates == 0 {
        return Ok(None);
    }
    let payment = close.remove(0);
    if candidates > 1 {
        tracing::info!(
            chosen = %payment.id,
            candidates,
            "several pending payments match by amount and payer; the oldest wins"
        );
    }
    Ok(Some(Found {
        payment,
        matched_by: MatchedBy::AmountUser,
        candidates,
    }))
}
