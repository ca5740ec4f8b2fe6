//! LiveTip scenario helpers: a full stack, the admin API, events as LiveTip sends them.

use std::net::SocketAddr;
use std::time::Duration;

use http::Method;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use serde_json::{Value, json};
use shared::db::entities::payment::{self, Entity as Payments};
use shared::db::entities::webhook_log::{self, Entity as WebhookLogs};

use crate::database::TestDatabase;
use crate::gateway::{GatewaySettings, LIVETIP_TOKEN, TestGateway, spawn_gateway_with};
use crate::http_client::{TestResponse, send};
use crate::worker::{TestWorker, spawn_worker};

pub const ADMIN_TOKEN: &str = "admin-test-token";

/// Gateway (with admin), one worker, one PostgreSQL database.
#[derive(Debug)]
pub struct Stack {
    pub gw: TestGateway,
    pub worker: TestWorker,
    pub conn: DatabaseConnection,
    pub db: TestDatabase,
}

pub async fn stack(extra: &[&str]) -> Stack {
    stack_on(TestDatabase::postgres().await, extra).await
}

/// The same on the default store, an SQLite file (the gateway's admin routes read it
/// too).
pub async fn stack_sqlite(extra: &[&str]) -> Stack {
    stack_on(TestDatabase::sqlite(), extra).await
}

async fn stack_on(db: TestDatabase, extra: &[&str]) -> Stack {
    let mut settings = GatewaySettings {
        database_url: Some(db.url.clone()),
        ..GatewaySettings::default()
    }
    .arg("--admin-token", ADMIN_TOKEN);
    for pair in extra.chunks(2) {
        settings = settings.arg(pair[0], pair[1]);
    }
    let gw = spawn_gateway_with(settings).await;
    gw.wait_ready().await;
    let worker = spawn_worker(&db.url, &gw.topology, &[]).await;
    worker.wait_consuming().await;
    let conn = db.connect().await;
    Stack {
        gw,
        worker,
        conn,
        db,
    }
}

/// A request to the admin listener with the test token.
pub async fn admin(
    addr: SocketAddr,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> TestResponse {
    let auth = format!("Bearer {ADMIN_TOKEN}");
    let mut headers = vec![("authorization", auth.as_str())];
    if body.is_some() {
        headers.push(("content-type", "application/json"));
    }
    send(
        addr,
        method,
        path,
        &headers,
        body.map(|b| b.to_string()).unwrap_or_default(),
    )
    .await
}

/// Creates an expected payment; returns its JSON.
pub async fn expect_payment(addr: SocketAddr, user: &str, amount: &str) -> Value {
    let response = admin(
        addr,
        Method::POST,
        "/payments",
        Some(json!({"userName": user, "amount": amount})),
    )
    .await;
    assert_eq!(response.status, 201, "{:?}", response.body);
    response.json()
}

/// Sends a LiveTip event through the gateway; asserts it was accepted.
pub async fn livetip_event(addr: SocketAddr, event: &str, payment: Value) {
    let body = json!({"event": event, "payment": payment}).to_string();
    let headers = [
        ("content-type", "application/json"),
        ("x-livetip-webhook-secret-token", LIVETIP_TOKEN),
    ];
    let response = crate::http_client::post(addr, "/webhook", &headers, body).await;
    assert_eq!(response.status, 200, "{:?}", response.body);
}

pub async fn payment_row(conn: &DatabaseConnection, id: &str) -> payment::Model {
    Payments::find_by_id(id.to_owned())
        .one(conn)
        .await
        .unwrap()
        .unwrap()
}

/// Waits until the payment has `status`.
pub async fn wait_status(conn: &DatabaseConnection, id: &str, status: &str) -> payment::Model {
    crate::eventually(
        &format!("{id} becomes {status}"),
        Duration::from_secs(20),
        || async {
            Payments::find_by_id(id.to_owned())
                .one(conn)
                .await
                .ok()
                .flatten()
                .filter(|p| p.status == status)
        },
    )
    .await
}

/// Log entries of a type for an event, oldest first.
pub async fn logs_of(conn: &DatabaseConnection, log_type: &str) -> Vec<webhook_log::Model> {
    let mut logs = WebhookLogs::find()
        .filter(webhook_log::Column::LogType.eq(log_type))
        .all(conn)
        .await
        .unwrap();
    logs.sort_by_key(|l| l.timestamp);
    logs
}

/// Waits until `n` events are finished in the inbox (processed or ignored).
pub async fn settled(conn: &DatabaseConnection, n: u64) {
    crate::worker::wait_finished(conn, n, Duration::from_secs(30)).await;
}

/// A log entry's data as JSON.
pub fn data(log: &webhook_log::Model) -> Value {
    serde_json::from_str(log.data.as_deref().unwrap_or("null")).unwrap()
}
