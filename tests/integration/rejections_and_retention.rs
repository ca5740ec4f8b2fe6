//! A flood of refused requests is a few log lines and audit rows with counts, and old
//! rows leave the database in short batches while what may still matter stays.

use std::time::Duration;

use chrono::Utc;
use hookwire_tests::database::TestDatabase;
use hookwire_tests::eventually;
use hookwire_tests::process::GatewayProcess;
use hookwire_tests::worker::spawn_worker;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter};
use shared::db::entities::webhook_event::{Column as EventColumn, Entity as WebhookEvents};
use shared::db::entities::webhook_log::{self, Entity as WebhookLogs};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Sends `n` token-less requests pipelined on one connection; returns the statuses.
async fn pipelined_refusals(addr: std::net::SocketAddr, n: usize) -> Vec<u16> {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let one = "POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
    let writer = {
        let all = one.repeat(n);
        async move {
            stream.write_all(all.as_bytes()).await.unwrap();
            stream
        }
    };
    let mut stream = writer.await;
    let mut seen = String::new();
    let mut buf = vec![0u8; 64 * 1024];
    while seen.matches("HTTP/1.1 ").count() < n {
        let read = tokio::time::timeout(Duration::from_secs(20), stream.read(&mut buf))
            .await
            .expect("answers keep coming")
            .unwrap();
        assert!(
            read > 0,
            "closed after {} answers",
            seen.matches("HTTP/1.1 ").count()
        );
        seen.push_str(&String::from_utf8_lossy(&buf[..read]));
    }
    seen.split("HTTP/1.1 ")
        .skip(1)
        .filter_map(|answer| answer.get(..3)?.parse().ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_refusals_is_a_few_lines_and_rows_with_counts() {
    let db = TestDatabase::postgres().await;
    let log_path = std::env::temp_dir().join(format!(
        "hookwire-flood-{}.log",
        uuid::Uuid::new_v4().simple()
    ));
    let file = std::fs::File::create(&log_path).unwrap();
    let gw = GatewayProcess::spawn_logging_to(
        &[("LOG_FORMAT", "json"), ("RATE_LIMIT_PER_IP", "100")],
        std::process::Stdio::from(file),
    )
    .await;
    hookwire_tests::http_client::wait_ready("gateway", gw.addr).await;
    let worker = spawn_worker(&db.url, &gw.topology, &[]).await;
    worker.wait_consuming().await;
    let mut statuses = Vec::new();
    for _ in 0..4 {
        statuses.extend(pipelined_refusals(gw.addr, 1_000).await);
    }
    assert_eq!(statuses.len(), 4_000);
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert!(
        limited > 0 && statuses.iter().all(|s| *s == 401 || *s == 429),
        "{limited}"
    );

    // Every refusal is counted in the validation log, in a handful of rows.
    let conn = db.connect().await;
    let rows = eventually("every refusal counted", Duration::from_secs(30), || async {
        let rows = WebhookLogs::find()
            .filter(webhook_log::Column::LogType.eq("validation"))
            .all(&conn)
            .await
            .ok()?;
        let counted: u64 = rows
            .iter()
            .filter_map(|r| serde_json::from_str::<serde_json::Value>(r.data.as_deref()?).ok())
            .filter_map(|d| d["count"].as_u64())
            .sum();
        (counted == 4_000).then_some(rows)
    })
    .await;
    assert!(rows.len() <= 200, "{} rows for 4,000 refusals", rows.len());
    let rate_limited = rows
        .iter()
        .filter(|r| {
            r.data
                .as_deref()
                .is_some_and(|d| d.contains("\"httpStatus\":429"))
        })
        .count();
    assert!(rate_limited < limited, "429s are not recorded one by one");

    // And in a handful of log lines.
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    let _ = std::fs::remove_file(&log_path);
    let lines = log
        .lines()
        .filter(|l| l.contains("requests rejected"))
        .count();
    assert!(
        (1..=200).contains(&lines),
        "{lines} log lines for 4,000 refusals"
    );
    assert!(
        !log.contains("\"request rejected\""),
        "no line per request at the default level"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_deletes_old_finished_rows_in_batches_and_keeps_the_rest() {
    let db = TestDatabase::postgres().await;
    let conn = db.connect().await;
    shared::db::migrate(&conn).await.unwrap();
    // 2,500 old log entries (more than two batches) and 10 recent ones.
    conn.execute_unprepared(
        "INSERT INTO webhook_logs (id, timestamp, type, status) \
         SELECT gen_random_uuid(), now() - interval '40 days', 'webhook', 'received' FROM generate_series(1, 2500); \
         INSERT INTO webhook_logs (id, timestamp, type, status) \
         SELECT gen_random_uuid(), now(), 'webhook', 'received' FROM generate_series(1, 10);",
    )
    .await
    .unwrap();
    // Inbox: old processed, old ignored, old dead, old retrying, recent processed.
    for (i, (status, age)) in [
        ("processed", "40 days"),
        ("ignored", "40 days"),
        ("rejected", "40 days"),
        ("dead", "40 days"),
        ("retrying", "40 days"),
        ("processed", "1 day"),
    ]
    .iter()
    .enumerate()
    {
        conn.execute_unprepared(&format!(
            "INSERT INTO webhook_events (id, provider, event, dedupe_key, payload, received_at, status, attempts, duplicates, created_at, updated_at) \
             VALUES (gen_random_uuid(), 'livetip', 'payment_confirmed', 'k{i}', '\\x7b7d', now() - interval '{age}', '{status}', 1, 0, now(), now())"
        ))
        .await
        .unwrap();
    }
    let month = Utc::now() - chrono::Duration::days(30);
    let deleted = worker::retention::run_once(&conn, month, month)
        .await
        .unwrap();
    assert_eq!((deleted.logs, deleted.events), (2_500, 3));
    assert_eq!(WebhookLogs::find().count(&conn).await.unwrap(), 10);
    let mut left: Vec<String> = WebhookEvents::find()
        .all(&conn)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.status)
        .collect();
    left.sort();
    assert_eq!(
        left,
        ["dead", "processed", "retrying"],
        "unfinished rows and recent ones stay"
    );
    let recent = WebhookEvents::find()
        .filter(EventColumn::Status.eq("processed"))
        .one(&conn)
        .await
        .unwrap();
    assert!(recent.is_some_and(|e| e.received_at > month));
}
