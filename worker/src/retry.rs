//! Retry policy, kept in one small module so the backoff crate is a one-file swap.
//!
//! Two tiers: a short in-process backoff for blips (a database failover, a busy
//! claim), then durable delayed-retry steps on the broker for longer outages; an
//! event that keeps failing reaches the dead-letter queue after the attempt limit.

use std::time::Duration;

use backoff::ExponentialBackoff;

/// Header counting failed processing rounds (one round = in-process retries included).
pub use shared::amqp::dead_header::{ATTEMPTS_HEADER, attempts};

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

/// How long to wait before looking again at an event held under another worker's lease
/// (`until`, written from that worker's clock): until it ends, a little past it, but at
/// most a second at a time, since the owner usually finishes well before its lease does.
pub fn until_lease_ends(
    until: chrono::DateTime<chrono::Utc>,
    now: chrono::DateTime<chrono::Utc>,
) -> Duration {
    const MARGIN: Duration = Duration::from_millis(100);
    const POLL: Duration = Duration::from_secs(1);
    let left = (until - now).to_std().unwrap_or(Duration::ZERO);
    left.min(POLL) + MARGIN
}

/// Renews a lease every third of its length while the future is polled; returns only
/// when `renew` says the claim is no longer ours. A failed renewal (a database blip) is
/// tried again at the next period: the lease still has two thirds to run.
pub async fn keep_alive<F, Fut, E>(lease: Duration, mut renew: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool, E>>,
    E: std::fmt::Display,
{
    let period = (lease / 3).max(Duration::from_millis(10));
    loop {
        tokio::time::sleep(period).await;
        match renew().await {
            Ok(true) => {}
            Ok(false) => return,
            Err(error) => tracing::debug!(%error, "lease not renewed; trying again"),
        }
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
    fn a_lease_is_looked_at_again_at_its_end_or_every_second() {
        let now = chrono::Utc::now();
        let soon = now + chrono::Duration::milliseconds(300);
        assert_eq!(until_lease_ends(soon, now), Duration::from_millis(400));
        let past = now - chrono::Duration::seconds(5);
        assert_eq!(until_lease_ends(past, now), Duration::from_millis(100));
        let later = now + chrono::Duration::seconds(25);
        assert_eq!(until_lease_ends(later, now), Duration::from_millis(1_100));
    }

    #[tokio::test(start_paused = true)]
    async fn a_lease_is_renewed_every_third_until_it_is_lost() {
        use std::sync::atomic::{AtomicU32, Ordering};
        let renewals = AtomicU32::new(0);
        let lease = Duration::from_secs(30);
        // Renewed while held: 95 s of work on a 30 s lease is 9 renewals, none late.
        let held = tokio::time::timeout(
            Duration::from_secs(95),
            keep_alive(lease, || async {
                renewals.fetch_add(1, Ordering::Relaxed);
                Ok::<bool, String>(true)
            }),
        )
        .await;
        assert!(held.is_err(), "keeps renewing while the claim is ours");
        assert_eq!(renewals.load(Ordering::Relaxed), 9);

        // Lost at the third renewal (taken over): returns at once, 30 s in.
        let started = tokio::time::Instant::now();
        let calls = AtomicU32::new(0);
        keep_alive(lease, || async {
            let n = calls.fetch_add(1, Ordering::Relaxed) + 1;
            if n == 1 {
                Err("database blip".to_owned())
            } else {
                Ok(n < 3)
            }
        })
        .await;
        assert_eq!(calls.load(Ordering::Relaxed), 3);
        assert_eq!(started.elapsed(), Duration::from_secs(30));
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
