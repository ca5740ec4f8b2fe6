//! Scale-out proof: a three-node RabbitMQ cluster (private nodes in temp dirs, joined
//! with `join_cluster`) loses the node leading the work queues under load, later its
//! majority for a few seconds, and the books still balance: every LiveTip and Pluggy
//! event the load tools sent until it was answered 2xx landed, each applied exactly
//! once.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hookwire_tests::books::{Ledger, assert_books_balance, run_load_into};
use hookwire_tests::broker::PrivateRabbit;
use hookwire_tests::database::TestDatabase;
use hookwire_tests::gateway::{GatewaySettings, spawn_gateway_with};
use hookwire_tests::worker::{finished_count, spawn_worker_on};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use shared::Provider;
use shared::db::entities::webhook_event::{self, Entity as WebhookEvents};
use tokio::time::Instant;

/// Pluggy events sent beside the LiveTip load.
const PLUGGY_EVENTS: usize = 150;

/// How long refusals lasted after `fault` (until the last refused answer before
/// `until`), and how long until the first 2xx after them.
fn outage(ledger: &Ledger, fault: Instant, until: Instant) -> (Duration, Duration) {
    let window: Vec<&(Instant, bool)> = ledger
        .answers
        .iter()
        .filter(|(at, _)| *at >= fault && *at < until)
        .collect();
    let last_refused = window
        .iter()
        .filter(|(_, ok)| !ok)
        .map(|(at, _)| *at)
        .max()
        .unwrap_or(fault);
    let recovered = window
        .iter()
        .filter(|(at, ok)| *ok && *at >= last_refused)
        .map(|(at, _)| *at)
        .min()
        .unwrap_or(last_refused);
    (last_refused - fault, recovered - fault)
}

/// Whether the last `n` answers since `since` were all 2xx.
fn accepting_again(ledger: &Ledger, since: Instant, n: usize) -> bool {
    let recent: Vec<bool> = ledger
        .answers
        .iter()
        .filter(|(at, _)| *at >= since)
        .map(|(_, ok)| *ok)
        .collect();
    recent.len() >= n && recent[recent.len() - n..].iter().all(|ok| *ok)
}

async fn wait_finished_at_least(conn: &sea_orm::DatabaseConnection, n: u64) {
    hookwire_tests::eventually(
        &format!("{n} events applied"),
        Duration::from_secs(90),
        || async { (finished_count(conn).await >= n).then_some(()) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_losing_its_leader_then_its_majority_under_load_keeps_the_books() {
    let begun = Instant::now();
    let nodes = tokio::task::spawn_blocking(|| {
        let starting: Vec<_> = (0..3)
            .map(|_| std::thread::spawn(PrivateRabbit::start))
            .collect();
        starting
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    let mut nodes = nodes;
    tokio::task::block_in_place(|| {
        nodes[1].join(&nodes[0]);
        nodes[2].join(&nodes[0]);
    });
    eprintln!("cluster of 3 up in {:?}", begun.elapsed());
    let urls: Vec<String> = nodes.iter().map(PrivateRabbit::amqp_url).collect();
    let all = urls.join(",");
    let gw = spawn_gateway_with(GatewaySettings {
        amqp_url: all.clone(),
        ..GatewaySettings::default()
    })
    .await;
    gw.wait_ready().await;
    let db = TestDatabase::postgres().await;
    let mut workers = Vec::new();
    for _ in 0..2 {
        let worker = spawn_worker_on(&db.url, &all, &gw.topology, &[]).await;
        worker.wait_consuming().await;
        workers.push(worker);
    }
    let conn = db.connect().await;

    let books = Arc::new(Mutex::new(Ledger::default()));
    let load = tokio::spawn(run_load_into(
        books.clone(),
        gw.addr,
        "cluster",
        1500,
        6,
        Duration::from_millis(40),
        Duration::from_secs(120),
    ));
    // Pluggy events beside them, each sent again until answered 200, as Pluggy does.
    let addr = gw.addr;
    let pluggy = tokio::spawn(async move {
        for n in 0..PLUGGY_EVENTS {
            let body = serde_json::json!({"event": "item/waiting_user_action",
                "eventId": format!("cluster-pluggy-{n}"), "itemId": "it-cluster"});
            while hookwire_tests::gateway::post_pluggy(addr, &body)
                .await
                .status
                != 200
            {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    });
    wait_finished_at_least(&conn, 100).await;

    // Fault 1: SIGKILL the node leading the LiveTip work queue.
    let queue = gw.queue(Provider::LiveTip);
    let leader = nodes[0]
        .quorum_leader(&queue)
        .expect("the work queue has a leader");
    let victim = nodes
        .iter()
        .position(|n| n.node() == leader)
        .expect("the leader is one of ours");
    let fault_1 = Instant::now();
    tokio::task::block_in_place(|| nodes[victim].kill());
    // Publishing recovers on its own, on every channel: RabbitMQ 3.10 nacks each later
    // publish on a channel opened while the queues' leader had just died, so a gateway
    // that kept such a channel would refuse for good (once 90 s, until this test gave up).
    hookwire_tests::eventually(
        "16 answers in a row 2xx after the leader's loss",
        Duration::from_secs(60),
        || async { accepting_again(&books.lock().unwrap(), fault_1, 16).then_some(()) },
    )
    .await;
    let before = finished_count(&conn).await;
    wait_finished_at_least(&conn, before + 150).await;

    // Fault 2: a second node's app stopped for a few seconds: no majority, so no
    // publish can be confirmed (503s, never a false 2xx); then it comes back.
    let second = (0..3).find(|i| *i != victim).unwrap_or(0);
    let survivor = (0..3).find(|i| *i != victim && *i != second).unwrap_or(0);
    assert!(
        !load.is_finished(),
        "the load still runs when the majority goes"
    );
    let fault_2 = Instant::now();
    tokio::task::block_in_place(|| nodes[second].stop_app());
    tokio::time::sleep(Duration::from_secs(5)).await;
    tokio::task::block_in_place(|| nodes[second].start_app());

    let ledger = load.await.unwrap();
    pluggy.await.unwrap();
    let end = Instant::now();
    assert!(ledger.refused > 0, "the faults were felt by the senders");
    assert_eq!(
        ledger.accepted, ledger.sent,
        "every event was retried until it landed"
    );
    assert_books_balance(
        &conn,
        &urls[survivor],
        &gw.topology.topology,
        &ledger,
        Duration::from_secs(90),
    )
    .await;
    // Every Pluggy event landed, once each (its `eventId` is the inbox's key).
    hookwire_tests::eventually(
        "every Pluggy event recorded",
        Duration::from_secs(60),
        || async {
            let recorded = WebhookEvents::find()
                .filter(webhook_event::Column::Provider.eq("pluggy"))
                .all(&conn)
                .await
                .unwrap();
            let ids: std::collections::BTreeSet<_> = recorded
                .iter()
                .filter_map(|e| e.provider_event_id.clone())
                .collect();
            (recorded.len() == PLUGGY_EVENTS && ids.len() == PLUGGY_EVENTS).then_some(())
        },
    )
    .await;
    let (refused_1, recovered_1) = outage(&ledger, fault_1, fault_2);
    let (refused_2, recovered_2) = outage(&ledger, fault_2, end);
    eprintln!(
        "cluster faults (RabbitMQ 3.10.8, 3 nodes on one 2-core host, 1500 events, {} refused attempts):\n  \
         leader killed: refusals for {refused_1:?}, first 2xx after them at {recovered_1:?}\n  \
         majority lost for 5 s: refusals for {refused_2:?}, first 2xx after them at {recovered_2:?}",
        ledger.refused
    );
    drop(workers);
}
