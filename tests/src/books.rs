//! Steady load with bookkeeping, for fault tests: which events got a 2xx, and whether
//! the database holds each of them exactly once at the end.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use lapin::{Connection, ConnectionProperties};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use shared::amqp::Topology;
use shared::db::entities::webhook_log::{self, Entity as WebhookLogs};

use crate::gateway::LIVETIP_TOKEN;

/// Answers so far: payment ids answered 2xx, and how many were not.
#[derive(Debug, Default, Clone)]
pub struct Ledger {
    pub accepted: BTreeSet<String>,
    pub refused: usize,
    pub sent: BTreeSet<String>,
    /// When each request began (before its connection was opened).
    pub started: Vec<(tokio::time::Instant, String)>,
    /// When each answer came, and whether it was a 2xx (`run_load_into`).
    pub answers: Vec<(tokio::time::Instant, bool)>,
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
    run_load_into(ledger, addr, tag, total, clients, pace, Duration::ZERO).await
}

/// Like [`run_load`], but each event is sent again (every 200 ms, for at most
/// `give_up`; zero: once) until it is answered 2xx, as a provider retries: `refused`
/// counts the refused attempts, `accepted` what finally landed. The books are kept in
/// `ledger`, so a test can watch the answers while the load runs.
pub async fn run_load_into(
    ledger: Arc<Mutex<Ledger>>,
    addr: SocketAddr,
    tag: &str,
    total: usize,
    clients: usize,
    pace: Duration,
    give_up: Duration,
) -> Ledger {
    let mut tasks = Vec::new();
    for client in 0..clients {
        let ledger = ledger.clone();
        let tag = tag.to_owned();
        tasks.push(tokio::spawn(async move {
            for n in (client..total).step_by(clients) {
                let id = format!("{tag}-{n}");
                let deadline = tokio::time::Instant::now() + give_up;
                ledger.lock().unwrap().sent.insert(id.clone());
                loop {
                    let began = tokio::time::Instant::now();
                    let status = try_send(addr, &id).await;
                    let ok = status.is_some_and(|s| (200..300).contains(&s));
                    {
                        let mut l = ledger.lock().unwrap();
                        l.started.push((began, id.clone()));
                        l.answers.push((tokio::time::Instant::now(), ok));
                        if ok {
                            l.accepted.insert(id.clone());
                        } else {
                            l.refused += 1;
                        }
                    }
                    if ok || tokio::time::Instant::now() > deadline {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
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

/// What the database shows of each event's applications: per LiveTip payment id, the
/// spec's log rows that exactly one application writes (`webhook`, the received body,
/// and `payment_create`). A second application of one event adds a row to each, whatever
/// the unique indexes on payments and the inbox make of it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Applications {
    /// `webhook` rows per payment id.
    pub received: BTreeMap<String, usize>,
    /// `payment_create` rows per payment id.
    pub created: BTreeMap<String, usize>,
}

/// Reads the books' side from the spec's log.
pub async fn applications(conn: &DatabaseConnection) -> Applications {
    let rows = WebhookLogs::find()
        .filter(webhook_log::Column::Provider.eq("livetip"))
        .filter(webhook_log::Column::LogType.is_in(["webhook", "payment_create"]))
        .all(conn)
        .await
        .unwrap_or_default();
    let mut books = Applications::default();
    for row in rows {
        let Some(data) = row
            .data
            .as_deref()
            .and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        else {
            continue;
        };
        let (map, id) = if row.log_type == "webhook" {
            (
                &mut books.received,
                data["payment"]["paymentId"].as_str().map(str::to_owned),
            )
        } else {
            (
                &mut books.created,
                data["paymentId"].as_str().map(str::to_owned),
            )
        };
        if let Some(id) = id {
            *map.entry(id).or_default() += 1;
        }
    }
    books
}

/// Messages waiting in any of the topology's queues (work, retry, dead letters).
pub async fn queued(amqp_url: &str, topology: &Topology) -> u32 {
    let Ok(conn) = Connection::connect(amqp_url, ConnectionProperties::default()).await else {
        return u32::MAX;
    };
    let mut total = 0;
    for queue in topology.all_queues() {
        // A passive declare fails on a queue that does not exist; a channel per queue.
        let Ok(channel) = conn.create_channel().await else {
            return u32::MAX;
        };
        if let Ok(state) = channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
        {
            total += state.message_count();
        }
    }
    let _ = conn.close(200, "counted".into()).await;
    total
}

/// Inbox rows whose handling is not over (claimed with a lease, or waiting for a retry).
async fn unfinished(conn: &DatabaseConnection) -> u64 {
    use sea_orm::PaginatorTrait;
    use shared::db::entities::webhook_event::{Column, Entity as WebhookEvents};
    WebhookEvents::find()
        .filter(Column::Status.is_in(["processing", "retrying"]))
        .count(conn)
        .await
        .unwrap_or(u64::MAX)
}

/// The books once settled: every queue empty, no event in hand or waiting for a retry,
/// and the applications unchanged for `quiet` (so late redeliveries are seen). Panics
/// when that does not happen within `timeout`: unsettled books prove nothing.
pub async fn settle(
    conn: &DatabaseConnection,
    amqp_url: &str,
    topology: &Topology,
    quiet: Duration,
    timeout: Duration,
) -> Applications {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last = applications(conn).await;
    let mut still_since = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let now = applications(conn).await;
        if now != last {
            last = now;
            still_since = tokio::time::Instant::now();
        } else if still_since.elapsed() >= quiet
            && queued(amqp_url, topology).await == 0
            && unfinished(conn).await == 0
        {
            return last;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the books never settled within {timeout:?}: queues, events in hand, or counts kept moving"
        );
    }
}

/// The least number of accepted events for books to mean anything.
pub const MIN_ACCEPTED: usize = 100;

/// Checks the books: each event answered 2xx applied exactly once, nothing applied that
/// was never sent, and events applied although not answered 2xx (at-least-once) no
/// more than the refusals. `Err` says what is wrong.
pub fn check(ledger: &Ledger, books: &Applications) -> Result<String, String> {
    if ledger.accepted.len() < MIN_ACCEPTED {
        return Err(format!(
            "only {} events accepted: too few for the books to mean anything",
            ledger.accepted.len()
        ));
    }
    for (what, map) in [("received", &books.received), ("created", &books.created)] {
        let twice: Vec<_> = map.iter().filter(|(_, n)| **n > 1).collect();
        if !twice.is_empty() {
            return Err(format!("applied twice ({what} log rows): {twice:?}"));
        }
    }
    let applied: BTreeSet<String> = books.created.keys().cloned().collect();
    let missing: Vec<_> = ledger.accepted.difference(&applied).collect();
    if !missing.is_empty() {
        return Err(format!("answered 2xx but never applied: {missing:?}"));
    }
    if !applied.is_subset(&ledger.sent) {
        return Err("applied events nobody sent".into());
    }
    let extra = applied.len() - ledger.accepted.len();
    if extra > ledger.refused {
        return Err(format!(
            "{extra} applied beyond the 2xx answers, only {} refused",
            ledger.refused
        ));
    }
    Ok(format!(
        "books: sent {}, 2xx {}, refused {}, applied {} ({} applied although not answered 2xx), received rows {}",
        ledger.sent.len(),
        ledger.accepted.len(),
        ledger.refused,
        applied.len(),
        extra,
        books.received.values().sum::<usize>()
    ))
}

/// Settles and checks the books, printing them; panics when they do not balance.
pub async fn assert_books_balance(
    conn: &DatabaseConnection,
    amqp_url: &str,
    topology: &Topology,
    ledger: &Ledger,
    timeout: Duration,
) -> Applications {
    let books = settle(conn, amqp_url, topology, Duration::from_secs(3), timeout).await;
    match check(ledger, &books) {
        Ok(summary) => {
            eprintln!("{summary}");
            books
        }
        Err(problem) => panic!("the books do not balance: {problem}"),
    }
}
