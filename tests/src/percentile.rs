//! Latency percentiles, and where an open-loop latency starts, for the benchmark tools.

use std::time::Duration;

/// The `p` quantile of sorted latencies, in milliseconds (0 when there are none).
#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    clippy::cast_precision_loss
)]
pub fn quantile_ms(sorted: &[Duration], p: f64) -> f64 {
    sorted
        .get(((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1)))
        .map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// How late a send may be for the timer's sake alone: tokio's timer wakes on
/// millisecond ticks, so a message due between two ticks goes out at the next one or
/// the one after. That much lateness is the tool's own and is not counted as latency
/// (bare hyper's p50 read 1.22 ms when it was, 0.06 ms when it was not); any more is
/// counted, because a tool starved of CPU by a busy server must not hide its wait.
pub const TIMER_SLACK: Duration = Duration::from_millis(2);

/// Where an open-loop request's latency starts: when it went out, but never later than
/// [`TIMER_SLACK`] after it was due.
pub fn latency_origin(
    due: tokio::time::Instant,
    sent: tokio::time::Instant,
) -> tokio::time::Instant {
    sent.min(due + TIMER_SLACK)
}
