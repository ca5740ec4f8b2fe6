//! Retry policy, kept in one small module so the backoff crate is a one-file swap.
//!
//! Two tiers: a short in-process backoff for blips (a database failover, a busy
//! claim), then durable delayed-retry steps on the broker for longer outages; an
//! event that keeps failing reaches the dead-letter queue after the attempt limit.

use std::time::Duration;

use backoff::ExponentialBackoff;
use lapin::BasicProperties;
use lapin::types::{AMQPValue, ShortString};

/// Header counting failed processing rounds (one round = in-process retries included).
pub const ATTEMPTS_HEADER: &str = "x-hookwire-attempts";

/// Exponential backoff with jitter, bounded by `budget` in total.
pub fn inline_policy(budget: Duration) -> ExponentialBackoff {
    let initial = Duration::from_millis(200).min(budget);
    ExponentialBackoff {
        // The crate starts from `current_interval`, not `initial_interval`.
        current_interval: initial,
        initial_interval: initial,
        max_interval: Duration::from_secs(5),
        randomization_factor: 0.5,
        multiplier: 2.0,
        max_elapsed_time: Some(budget),
        ..ExponentialBackoff::default()
    }
}

/// The delay before attempt `attempt + 1`, after `attempt` failed rounds (1-based):
/// step n for the n-th failure, the last step repeating.
pub fn delay_after(attempt: u32, steps: &[Duration]) -> Duration {
    let index = usize::try_from(attempt.saturating_sub(1)).unwrap_or(usize::MAX);
    steps
        .get(index)
        .or_else(|| steps.last())
        .copied()
        .unwrap_or(Duration::from_secs(60))
}

/// Failed rounds recorded on a message so far.
pub fn attempts(properties: &BasicProperties) -> u32 {
    let Some(headers) = properties.headers() else {
        return 0;
    };
    match headers.inner().get(&ShortString::from(ATTEMPTS_HEADER)) {
        Some(AMQPValue::LongUInt(n)) => *n,
        Some(AMQPValue::LongInt(n)) => u32::try_from(*n).unwrap_or(0),
        Some(AMQPValue::LongLongInt(n)) => u32::try_from(*n).unwrap_or(0),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use backoff::backoff::Backoff;

    #[test]
    fn steps_grow_then_repeat_the_last() {
        let steps = [Duration::from_secs(10), Duration::from_secs(60)];
        assert_eq!(delay_after(1, &steps), Duration::from_secs(10));
        assert_eq!(delay_after(2, &steps), Duration::from_secs(60));
        assert_eq!(delay_after(7, &steps), Duration::from_secs(60));
    }

    #[test]
    fn inline_backoff_is_bounded_and_grows() {
        let mut policy = inline_policy(Duration::from_secs(30));
        let first = policy.next_backoff().unwrap_or_default();
        let mut last = first;
        for _ in 0..5 {
            last = policy.next_backoff().unwrap_or_default();
        }
        assert!(first <= Duration::from_millis(300), "{first:?}");
        assert!(last > first);
        assert!(last <= Duration::from_secs(5) + Duration::from_millis(2_500));
    }
}
