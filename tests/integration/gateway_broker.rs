//! The 2xx-only-when-confirmed promise when the broker is away, stalls or cannot route.

use std::time::Duration;

use hookwire_tests::broker::take;
use hookwire_tests::eventually;
use hookwire_tests::gateway::{
    GatewaySettings, LIVETIP_TOKEN, PLUGGY_NEW, spawn_gateway, spawn_gateway_with,
};
use hookwire_tests::http_client::post;
use hookwire_tests::proxy::{Mode, TcpProxy};
use lapin::options::QueueBindOptions;
use lapin::types::FieldTable;
use serde_json::json;
use shared::Provider;

const BROKER: &str = "127.0.0.1:5672";

async fn livetip(
    addr: std::net::SocketAddr,
    id: &str,
) -> hookwire_tests::http_client::TestResponse {
    let body = json!({"event": "payment_confirmed", "payment": {"sender": "s", "amount": 5, "paymentId": id, "paid": true}});
    post(
        addr,
        "/webhook",
        &[
            ("content-type", "application/json"),
            ("x-livetip-webhook-secret-token", LIVETIP_TOKEN),
        ],
        body.to_string(),
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_down_means_503_and_its_return_means_ready_again() {
    let proxy = TcpProxy::start(BROKER.parse().unwrap(), Mode::Down).await;
    let gw = spawn_gateway_with(GatewaySettings {
        amqp_url: proxy.amqp_url(),
        ..GatewaySettings::default()
    })
    .await;

    // Started without a broker: alive, not ready, never a false 2xx.
    assert_eq!(
        hookwire_tests::http_client::get(gw.addr, "/healthz")
            .await
            .status,
        200
    );
    assert_eq!(gw.readyz().await, 503);
    let refused = livetip(gw.addr, "while-down").await;
    assert_eq!(refused.status, 503);
    assert_eq!(refused.header("retry-after"), Some("5"));
    assert_eq!(refused.json()["success"], false);

    proxy.set(Mode::Up);
    gw.wait_ready().await;
    assert_eq!(livetip(gw.addr, "after-start").await.status, 200);

    // Connection lost while running: readiness follows, requests get 503.
    proxy.set(Mode::Down);
    eventually("readiness drops", Duration::from_secs(10), || async {
        (gw.readyz().await == 503).then_some(())
    })
    .await;
    assert_eq!(livetip(gw.addr, "while-cut").await.status, 503);

    // Back without restarting the process.
    proxy.set(Mode::Up);
    gw.wait_ready().await;
    assert_eq!(livetip(gw.addr, "after-return").await.status, 200);

    let ids: Vec<String> = take(&gw.queue(Provider::LiveTip), 2)
        .await
        .iter()
        .map(|t| {
            serde_json::from_slice::<serde_json::Value>(&t.body).unwrap()["payment"]["paymentId"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(
        ids,
        ["after-start", "after-return"],
        "exactly the 2xx answers are queued"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confirm_that_never_comes_is_a_503_not_a_hang() {
    let proxy = TcpProxy::start(BROKER.parse().unwrap(), Mode::Up).await;
    let gw = spawn_gateway_with(
        GatewaySettings {
            amqp_url: proxy.amqp_url(),
            ..GatewaySettings::default()
        }
        .arg("--confirm-timeout-ms", "500"),
    )
    .await;
    gw.wait_ready().await;
    proxy.set(Mode::Stall);
    let stalled = livetip(gw.addr, "stalled").await;
    assert_eq!(stalled.status, 503);
    // Answered by the confirm timeout, not by the connection's loss: the link still
    // counts as up (its heartbeats have not run out yet).
    assert_eq!(
        gw.readyz().await,
        200,
        "the 503 came before the link was given up"
    );

    // The stalled connection is abandoned (missed heartbeats) and replaced.
    eventually("readiness drops", Duration::from_secs(15), || async {
        (gw.readyz().await == 503).then_some(())
    })
    .await;
    proxy.set(Mode::Up);
    gw.wait_ready().await;
    assert_eq!(livetip(gw.addr, "recovered").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unroutable_event_is_returned_and_answered_503() {
    let gw = spawn_gateway().await;
    let (conn, channel) = broker_channel().await;
    let queue = gw.queue(Provider::Pluggy);
    // The gateway publishes to the ingest exchange only: the topic exchange's binding,
    // left in place, must not make the event routable.
    let exchange = gw.topology.topology.ingest_exchange();
    let key = Provider::Pluggy.ingest_key();
    channel
        .queue_unbind(
            queue.as_str().into(),
            exchange.as_str().into(),
            key.into(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let body = r#"{"event":"item/updated","eventId":"unroutable"}"#;
    let headers = [
        ("content-type", "application/json"),
        ("x-pluggy-webhook-secret", PLUGGY_NEW),
    ];
    let response = post(gw.addr, "/api/banking/pluggy/webhook/", &headers, body).await;
    assert_eq!(response.status, 503);
    assert_eq!(response.header("retry-after"), Some("5"));
    // A return is a per-message failure: the link stays up.
    assert_eq!(gw.readyz().await, 200);

    channel
        .queue_bind(
            queue.as_str().into(),
            exchange.as_str().into(),
            key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        post(gw.addr, "/api/banking/pluggy/webhook/", &headers, body)
            .await
            .status,
        200
    );
    assert_eq!(take(&queue, 1).await.len(), 1);
    let _ = conn.close(200, "done".into()).await;
}

/// Counts the answers by status.
async fn statuses(gw: &hookwire_tests::gateway::TestGateway, count: usize, tag: &str) -> Vec<u16> {
    let sends = (0..count).map(|i| {
        let addr = gw.addr;
        let id = format!("{tag}-{i}");
        async move { livetip(addr, &id).await.status }
    });
    futures_util::future::join_all(sends).await
}

/// One channel closed by the broker (a message over its `max_message_size`: a
/// channel-level error) is replaced alone: the connection, and the requests on the
/// other channels, go on. Then a memory alarm: while the broker blocks the
/// connection, requests are answered 503 at once, not after the confirm timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_the_broker_closes_is_replaced_alone_and_an_alarm_answers_503_at_once() {
    let rabbit = hookwire_tests::broker::PrivateRabbit::start_with("max_message_size = 2048\n");
    let gw = spawn_gateway_with(
        GatewaySettings {
            amqp_url: rabbit.amqp_url(),
            ..GatewaySettings::default()
        }
        // Longer than the test client waits (20 s): an answer proves no one waited
        // for a confirm that cannot come.
        .arg("--confirm-timeout-ms", "60000"),
    )
    .await;
    gw.wait_ready().await;
    assert!(statuses(&gw, 16, "before").await.iter().all(|s| *s == 200));

    // Within the gateway's body limit, over the broker's: its channel is closed.
    let big = json!({"event": "payment_confirmed", "payment": {"sender": "s", "amount": 5,
        "paymentId": "big", "paid": true, "content": "x".repeat(3_000)}});
    let refused = post(
        gw.addr,
        "/webhook",
        &[
            ("content-type", "application/json"),
            ("x-livetip-webhook-secret-token", LIVETIP_TOKEN),
        ],
        big.to_string(),
    )
    .await;
    assert_eq!(refused.status, 503, "{:?}", refused.body);
    wait_channel_replaced(&gw, "closed").await;
    assert_one_connection(&gw).await;
    let after = statuses(&gw, 32, "after").await;
    assert!(after.iter().all(|s| *s == 200), "{after:?}");
    assert_eq!(gw.readyz().await, 200);

    // A memory alarm: the broker blocks the connection. Requests are answered 503 with
    // `Retry-After` at once, and readiness is off until the alarm clears.
    tokio::task::block_in_place(|| rabbit.set_memory_watermark(&["absolute", "1MB"]));
    let first = eventually(
        "the broker's block felt",
        Duration::from_secs(30),
        || async {
            let response = livetip(gw.addr, "while-blocked").await;
            (response.status == 503).then_some(response)
        },
    )
    .await;
    assert!(first.headers.contains_key("retry-after"));
    let blocked = statuses(&gw, 8, "blocked").await;
    assert!(blocked.iter().all(|s| *s == 503), "{blocked:?}");
    assert_eq!(gw.readyz().await, 503);
    tokio::task::block_in_place(|| rabbit.set_memory_watermark(&["0.4"]));
    eventually("publishing again", Duration::from_secs(30), || async {
        (livetip(gw.addr, "unblocked").await.status == 200).then_some(())
    })
    .await;
    assert_eq!(gw.readyz().await, 200);
}

/// A publish the broker nacks is a 503, and the channel that carried it is replaced
/// (RabbitMQ before 3.12.5 keeps nacking on a channel that learnt a dead quorum leader;
/// the cluster test shows that case): here a policy makes the work queue refuse every
/// message, then goes, and publishing comes back on the same connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nacked_publish_is_a_503_and_its_channel_is_replaced() {
    let rabbit = hookwire_tests::broker::PrivateRabbit::start();
    let gw = spawn_gateway_with(GatewaySettings {
        amqp_url: rabbit.amqp_url(),
        ..GatewaySettings::default()
    })
    .await;
    gw.wait_ready().await;
    assert!(statuses(&gw, 16, "before").await.iter().all(|s| *s == 200));

    let queue = regex_escape(&gw.queue(Provider::LiveTip));
    tokio::task::block_in_place(|| {
        rabbit.set_policy(
            "refuse",
            &format!("^{queue}$"),
            r#"{"max-length": 0, "overflow": "reject-publish"}"#,
        )
    });
    eventually("a nack answered 503", Duration::from_secs(30), || async {
        (livetip(gw.addr, "refused").await.status == 503).then_some(())
    })
    .await;
    wait_channel_replaced(&gw, "nacked").await;
    tokio::task::block_in_place(|| rabbit.clear_policy("refuse"));
    eventually("publishing again", Duration::from_secs(30), || async {
        statuses(&gw, 16, "again")
            .await
            .iter()
            .all(|s| *s == 200)
            .then_some(())
    })
    .await;
    assert_one_connection(&gw).await;
}

/// Waits until the gateway has replaced a publish channel for `reason`.
async fn wait_channel_replaced(gw: &hookwire_tests::gateway::TestGateway, reason: &str) {
    let label = format!("reason=\"{reason}\"");
    eventually(
        &format!("a channel replaced ({reason})"),
        Duration::from_secs(10),
        || async {
            let text = hookwire_tests::scrape(gw.admin).await;
            (hookwire_tests::metric_value(
                &text,
                "hookwire_broker_channels_replaced_total",
                &[label.as_str()],
            ) >= 1.0)
                .then_some(())
        },
    )
    .await;
}

/// The gateway's first connection still serves: replacing channels dropped nothing.
async fn assert_one_connection(gw: &hookwire_tests::gateway::TestGateway) {
    let connections = hookwire_tests::metric_value(
        &hookwire_tests::scrape(gw.admin).await,
        "hookwire_broker_connections_total",
        &[],
    );
    assert_eq!(connections, 1.0, "the first connection still serves");
}

fn regex_escape(name: &str) -> String {
    name.replace('.', "\\.")
}

/// `AMQP_URL` with several addresses (a cluster's nodes; here two proxies in front of
/// one broker, which serves the same queues through either, as a cluster does): when
/// the node in use goes away the gateway moves to the other, declares its topology
/// again and answers 200 through it, whichever node it started on. What was answered 200
/// is in the queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_several_addresses_the_gateway_moves_to_a_node_that_answers() {
    let first = TcpProxy::start(BROKER.parse().unwrap(), Mode::Up).await;
    let second = TcpProxy::start(BROKER.parse().unwrap(), Mode::Up).await;
    let gw = spawn_gateway_with(GatewaySettings {
        amqp_url: format!("{}, {}", first.amqp_url(), second.amqp_url()),
        ..GatewaySettings::default()
    })
    .await;
    gw.wait_ready().await;
    for (round, (down, up)) in [(&first, &second), (&second, &first)]
        .into_iter()
        .enumerate()
    {
        up.set(Mode::Up);
        down.set(Mode::Down);
        eventually(
            "200 through the node left",
            Duration::from_secs(30),
            || async {
                (livetip(gw.addr, &format!("several-{round}")).await.status == 200).then_some(())
            },
        )
        .await;
    }
    let queued: Vec<String> = hookwire_tests::broker::drain(&gw.queue(Provider::LiveTip))
        .await
        .into_iter()
        .map(|t| String::from_utf8_lossy(&t.body).into_owned())
        .collect();
    for id in ["several-0", "several-1"] {
        assert!(
            queued.iter().any(|body| body.contains(id)),
            "the 200 for {id} is in the queue: {queued:?}"
        );
    }
}

/// The arguments the shared node shows for `queue` (`rabbitmqctl list_queues`).
fn queue_arguments(queue: &str) -> String {
    let output = std::process::Command::new("rabbitmqctl")
        .args(["-q", "list_queues", "name", "arguments"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{queue}\t")).map(str::to_owned))
        .unwrap_or_default()
}

/// `AMQP_QUORUM_INITIAL_GROUP_SIZE` sizes the quorum queues a process creates; a queue
/// that exists keeps its size (RabbitMQ refuses to redeclare it with another), so a
/// process set differently still starts, and consumes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quorum_group_size_sizes_new_queues_and_spares_existing_ones() {
    let gw =
        spawn_gateway_with(GatewaySettings::default().arg("--amqp-quorum-initial-group-size", "1"))
            .await;
    gw.wait_ready().await;
    let work = gw.queue(Provider::LiveTip);
    let created = queue_arguments(&work);
    assert!(
        created.contains("x-quorum-initial-group-size") && created.contains(",1}"),
        "{created}"
    );
    let db = hookwire_tests::database::TestDatabase::sqlite();
    let worker = hookwire_tests::worker::spawn_worker(
        &db.url,
        &gw.topology,
        &["--amqp-quorum-initial-group-size", "3"],
    )
    .await;
    worker.wait_consuming().await;
    assert_eq!(
        queue_arguments(&work),
        created,
        "the existing queue is left as it was"
    );
    let dead = queue_arguments(&gw.topology.topology.dead_letter_queue(Provider::LiveTip));
    assert!(dead.contains(",3}"), "the worker's new queue: {dead}");
    assert_eq!(livetip(gw.addr, "group-size").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_an_operator_binds_to_one_events_key_gets_that_event_and_no_routing_header() {
    let gw = spawn_gateway().await;
    let (conn, channel) = broker_channel().await;
    let exchange = gw.topology.topology.ingest_exchange();
    let prefix = gw.topology.topology.prefix().to_owned();
    // One tap on a single event's key, one on the provider's key (every LiveTip event).
    let taps = [
        (
            format!("{prefix}.tap.confirmed"),
            "livetip.payment_confirmed",
        ),
        (
            format!("{prefix}.tap.livetip"),
            Provider::LiveTip.ingest_key(),
        ),
    ];
    for (queue, key) in &taps {
        tap(&channel, queue, &exchange, key).await;
    }
    // Patterns, for whoever needs them: an exchange of one's own, bound by the
    // provider's key, routes on the keys the message carries.
    let patterns = format!("{prefix}.tap.patterns");
    let pending_tap = format!("{prefix}.tap.pending");
    channel
        .exchange_declare(
            patterns.as_str().into(),
            lapin::ExchangeKind::Topic,
            // Gone with its queue's binding, should the test fail first.
            lapin::options::ExchangeDeclareOptions {
                auto_delete: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    channel
        .exchange_bind(
            patterns.as_str().into(),
            exchange.as_str().into(),
            Provider::LiveTip.ingest_key().into(),
            lapin::options::ExchangeBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    tap(&channel, &pending_tap, &patterns, "*.payment_pending").await;
    assert_eq!(livetip(gw.addr, "tapped").await.status, 200);
    hookwire_tests::livetip::livetip_event(
        gw.addr,
        "payment_pending",
        json!({"sender": "s", "amount": 5, "paymentId": "pending", "paid": false}),
    )
    .await;

    let work = take(&gw.queue(Provider::LiveTip), 2).await;
    let confirmed_only = take(&taps[0].0, 1).await;
    let every_livetip = take(&taps[1].0, 2).await;
    let keys = |taken: &[hookwire_tests::broker::Taken]| -> Vec<String> {
        taken.iter().map(|m| m.routing_key.clone()).collect()
    };
    let mut work_keys = keys(&work);
    work_keys.sort_unstable();
    assert_eq!(
        work_keys,
        ["livetip.payment_confirmed", "livetip.payment_pending"],
        "the work queue gets both, under their own keys"
    );
    assert_eq!(every_livetip.len(), 2);
    assert_eq!(keys(&confirmed_only), ["livetip.payment_confirmed"]);
    let pending_only = take(&pending_tap, 1).await;
    assert_eq!(keys(&pending_only), ["livetip.payment_pending"]);
    // Nothing more arrives on the single-event taps (routing is over once confirmed).
    assert_eq!(hookwire_tests::broker::ready_messages(&taps[0].0).await, 0);
    assert_eq!(
        hookwire_tests::broker::ready_messages(&pending_tap).await,
        0
    );
    // The broker strips the routing header: a consumer moving the message on (through
    // the default exchange, say) cannot route on it.
    for message in work
        .iter()
        .chain(&every_livetip)
        .chain(&confirmed_only)
        .chain(&pending_only)
    {
        assert_eq!(
            hookwire_tests::broker::header(message, shared::envelope::BCC_HEADER),
            None
        );
    }
    for tap in taps.iter().map(|(tap, _)| tap).chain([&pending_tap]) {
        let _ = channel
            .queue_delete(tap.as_str().into(), Default::default())
            .await;
    }
    let _ = channel
        .exchange_delete(patterns.as_str().into(), Default::default())
        .await;
    let _ = conn.close(200, "done".into()).await;
}

/// A queue bound to `key` on `exchange`, as an operator's tap; it expires if the test
/// fails before deleting it.
async fn tap(channel: &lapin::Channel, queue: &str, exchange: &str, key: &str) {
    let mut expiring = FieldTable::default();
    expiring.insert("x-expires".into(), lapin::types::AMQPValue::LongInt(60_000));
    channel
        .queue_declare(
            queue.into(),
            lapin::options::QueueDeclareOptions::default(),
            expiring,
        )
        .await
        .unwrap();
    channel
        .queue_bind(
            queue.into(),
            exchange.into(),
            key.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
}

/// A connection of the test's own to the shared broker, and a channel on it.
async fn broker_channel() -> (lapin::Connection, lapin::Channel) {
    let conn = lapin::Connection::connect(
        &hookwire_tests::amqp_url(),
        lapin::ConnectionProperties::default(),
    )
    .await
    .unwrap();
    let channel = conn.create_channel().await.unwrap();
    (conn, channel)
}
