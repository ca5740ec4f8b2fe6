//! Latency percentiles for the benchmark tools.

use std::time::Duration;

/// The `p` quantile of sorted latencies, in milliseconds (0 when there are none).
pub fn quantile_ms(sorted: &[Duration], p: f64) -> f64 {
    sorted
        .get(((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1)))
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}
