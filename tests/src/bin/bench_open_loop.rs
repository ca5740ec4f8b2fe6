//! Benchmark load tool: HTTP POSTs at a fixed rate, open loop.
//!
//! k6 is the usual tool for this, but on a 2-core machine its JavaScript VM keeps a
//! third to two thirds of a core busy at 2,000 requests/s, and that CPU comes out of
//! what it measures: the broker's confirm p99 rose from about 5 ms alone to 25-44 ms
//! with k6 beside it (BENCHMARKS.md, session 10). This tool keeps the same schedule on
//! one thread for about a fifth of k6's CPU, so a fixed-rate tail says more about the
//! server than about the client.
//!
//! Sends never wait for answers (open loop), so a stalled server shows as latency,
//! not as fewer samples. Latency starts when a request went out, forgiving the
//! timer's tick and no more (`Schedule::next`); `bench-broker-ceiling --rate`, the
//! publisher this is compared with, measures the same way. A request due while
//! `--max-in-flight` are outstanding is dropped and counted, as k6's
//! constant-arrival-rate drops an iteration with no VU free. Unlike k6's
//! `http_req_duration`, a request's latency includes connecting when it needs a new
//! connection (a few on loopback over a whole run).

use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use hookwire_tests::percentile::quantile_ms;
use hookwire_tests::schedule::Schedule;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

#[derive(Parser)]
#[command(about = "POSTs a body at a fixed rate and prints latency percentiles")]
struct Args {
    /// Full URL to POST to.
    #[arg(long)]
    url: String,
    /// Requests per second.
    #[arg(long)]
    rate: u32,
    /// How long to send.
    #[arg(long)]
    seconds: u64,
    /// The request body.
    #[arg(long)]
    body_file: PathBuf,
    /// `Name: value`, repeatable.
    #[arg(long = "header")]
    headers: Vec<String>,
    /// Requests outstanding at most; one due beyond it is dropped.
    #[arg(long, default_value_t = 2000)]
    max_in_flight: usize,
    /// A request still unanswered after this is a failure.
    #[arg(long, default_value_t = 10)]
    timeout_seconds: u64,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let body = Bytes::from(std::fs::read(&args.body_file)?);
    let uri: hyper::Uri = args.url.parse()?;
    let mut headers = Vec::new();
    for header in &args.headers {
        let (name, value) = header
            .split_once(':')
            .ok_or_else(|| anyhow::anyhow!("--header {header:?}: expected `Name: value`"))?;
        headers.push((
            http::HeaderName::from_bytes(name.trim().as_bytes())?,
            http::HeaderValue::from_str(value.trim())?,
        ));
    }
    let mut connector = HttpConnector::new();
    connector.set_nodelay(true);
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(usize::MAX)
        .build(connector);

    let total = u64::from(args.rate) * args.seconds;
    let timeout = Duration::from_secs(args.timeout_seconds);
    let mut dropped = 0u64;
    let mut tally = Tally::default();
    let mut tasks = tokio::task::JoinSet::new();
    let mut schedule = Schedule::new(args.rate);
    for i in 0..total {
        let origin = schedule.next(i).await?;
        // Finished requests are reaped as they go, so the set's size is what is
        // outstanding.
        while let Some(outcome) = tasks.try_join_next() {
            tally.add(outcome?);
        }
        if tasks.len() >= args.max_in_flight {
            dropped += 1;
            continue;
        }
        let mut request = hyper::Request::post(uri.clone()).body(Full::new(body.clone()))?;
        request.headers_mut().extend(headers.iter().cloned());
        let client = client.clone();
        tasks.spawn(async move {
            let answered = tokio::time::timeout(timeout, async {
                let response = client.request(request).await.ok()?;
                let status = response.status();
                response.into_body().collect().await.ok()?;
                status.is_success().then_some(())
            })
            .await;
            matches!(answered, Ok(Some(()))).then(|| origin.elapsed())
        });
    }
    while let Some(outcome) = tasks.join_next().await {
        tally.add(outcome?);
    }
    let Tally {
        mut latencies,
        failed,
    } = tally;
    latencies.sort_unstable();
    println!(
        "open-loop rate={}/s requests={} failed={failed} dropped={dropped} late={} p50={:.2}ms p99={:.2}ms p99.9={:.2}ms",
        args.rate,
        latencies.len() as u64 + failed,
        schedule.late(),
        quantile_ms(&latencies, 0.50),
        quantile_ms(&latencies, 0.99),
        quantile_ms(&latencies, 0.999)
    );
    Ok(())
}

/// Answered requests' latencies, and how many got no 2xx in time.
#[derive(Default)]
struct Tally {
    latencies: Vec<Duration>,
    failed: u64,
}

impl Tally {
    fn add(&mut self, outcome: Option<Duration>) {
        match outcome {
            Some(latency) => self.latencies.push(latency),
            None => self.failed += 1,
        }
    }
}
