//! Prometheus metrics for both binaries: the `metrics` facade records, the
//! `metrics-exporter-prometheus` recorder renders; we only serve the text.
//!
//! Histograms get explicit buckets (latencies from 1 ms to 10 s) so that Prometheus
//! can aggregate percentiles across replicas, which summaries cannot.

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Buckets of the worker's batch sizes (events per transaction, at most 64).
pub const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 48.0, 64.0];

/// Latency buckets in seconds.
pub const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// How often recorded histogram samples are folded into their buckets.
const UPKEEP_PERIOD: Duration = Duration::from_secs(5);

/// Installs the process-wide recorder (once; later calls return the same handle).
/// `None` when another recorder was installed first.
///
/// The recorder keeps every histogram sample until an upkeep folds it into the
/// buckets. Left to scrapes alone, a process nobody scrapes would hold every sample it
/// ever recorded (a soak showed about 10 bytes per request, without end), so a
/// background thread does the upkeep; a thread rather than a task, because the
/// recorder outlives any runtime and may be installed outside one.
pub fn install() -> Option<&'static PrometheusHandle> {
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets(LATENCY_BUCKETS)
                .ok()?
                .set_buckets_for_metric(
                    Matcher::Full("hookwire_worker_batch_size".into()),
                    BATCH_BUCKETS,
                )
                .ok()?;
            let handle = builder.install_recorder().ok()?;
            let upkeep = handle.clone();
            // Without the thread the process still works; only the memory bound is lost.
            let _ = std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(UPKEEP_PERIOD);
                        upkeep.run_upkeep();
                    }
                });
            Some(handle)
        })
        .as_ref()
}

/// The current exposition text (empty when no recorder is installed).
pub fn render() -> String {
    match install() {
        Some(handle) => {
            handle.run_upkeep();
            handle.render()
        }
        None => String::new(),
    }
}

/// Content type of [`render`]'s output.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
