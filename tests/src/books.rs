//! Steady load with bookkeeping, for fault tests: which events got a 2xx, and whether
//! the database holds each of them exactly once at the end.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use shared::db::entities::payment::{self, Entity as Payments};

use crate::gateway::LIVETIP_TOKEN;

/// Answers so far: payment ids answered 2xx, and how many were not.
#[derive(Debug, Default, Clone)]
pub struct Ledger {
    pub accepted: BTreeSet<String>,
    pub refused: usize,
    pub sent: BTreeSet<String>,
}

/// One LiveTip `payment_confirmed` (unmatched, paid: it creates a payment row, so the
/// effect is countable). `None` when no HTTP answer came at all.
pub async fn try_send(addr: SocketAddr, payment_id: &str) -> Option<u16> {
    let body = serde_json::json!({"event": "payment_confirmed", "payment": {
        "sender": format!("load-{payment_id}"), "amount": "1.00", "paymentId": payment_id, "paid": true}});
    let attempt = async {
        let stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .ok()?;
        tokio::spawn(connection);
        let request = Request::post("/webhook")
            .header("host", "localhost")
            .header("content-type", "application/json")
            .header("x-livetip-webhook-secret-token", LIVETIP_TOKEN)
            .body(Full::new(Bytes::from(body.to_string())))
            .ok()?;
        let response = sender.send_request(request).await.ok()?;
        let status = response.status().as_u16();
        let _ = response.into_body().collect().await;
        Some(status)
    };
    tokio::time::timeout(Duration::from_secs(15), attempt)
        .await
        .ok()
        .flatten()
}

/// Sends `total` events from `clients` concurrent senders, each pausing `pace` between
/// requests, tagging ids with `tag`.
pub async fn run_load(
    addr: SocketAddr,
    tag: &str,
    total: usize,
    clients: usize,
    pace: Duration,
) -> Ledger {
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut tasks = Vec::new();
    for client in 0..clients {
        let ledger = ledger.clone();
        let tag = tag.to_owned();
        tasks.push(tokio::spawn(async move {
            for n in (client..total).step_by(clients) {
                let id = format!("{tag}-{n}");
                let status = try_send(addr, &id).await;
                {
                    let mut l = ledger.lock().unwrap();
                    l.sent.insert(id.clone());
                    match status {
                        Some(s) if (200..300).contains(&s) => {
                            l.accepted.insert(id);
                        }
                        _ => l.refused += 1,
                    }
                }
                tokio::time::sleep(pace).await;
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    ledger.lock().unwrap().clone()
}

/// LiveTip payment ids with a created payment row, with how many rows each has.
pub async fn stored(conn: &DatabaseConnection) -> Vec<String> {
    Payments::find()
        .filter(payment::Column::MatchedBy.eq("created"))
        .all(conn)
        .await
        .unwrap_or_default()
        .into_iter()
        .filter_map(|p| p.livetip_payment_id)
        .collect()
}

/// Waits until every accepted event is stored, then checks the books: each 2xx event
/// exactly once, nothing that was never sent, and any extra (an event stored although
/// its answer was lost or non-2xx: at-least-once) counted against the refusals.
pub async fn assert_books_balance(conn: &DatabaseConnection, ledger: &Ledger, timeout: Duration) {
    assert!(!ledger.accepted.is_empty(), "some events were accepted");
    let deadline = tokio::time::Instant::now() + timeout;
    let mut rows = stored(conn).await;
    while tokio::time::Instant::now() < deadline
        && !ledger.accepted.iter().all(|id| rows.contains(id))
    {
        tokio::time::sleep(Duration::from_millis(250)).await;
        rows = stored(conn).await;
    }
    let distinct: BTreeSet<String> = rows.iter().cloned().collect();
    assert_eq!(rows.len(), distinct.len(), "an effect was applied twice");
    let missing: Vec<_> = ledger.accepted.difference(&distinct).collect();
    assert!(
        missing.is_empty(),
        "answered 2xx but never stored: {missing:?}"
    );
    assert!(
        distinct.is_subset(&ledger.sent),
        "stored events nobody sent"
    );
    let extra = distinct.len() - ledger.accepted.len();
    assert!(
        extra <= ledger.refused,
        "{extra} stored beyond the 2xx answers, only {} refused",
        ledger.refused
    );
    eprintln!(
        "books: sent {}, 2xx {}, refused {}, stored {} ({} stored although not answered 2xx)",
        ledger.sent.len(),
        ledger.accepted.len(),
        ledger.refused,
        distinct.len(),
        extra
    );
}
