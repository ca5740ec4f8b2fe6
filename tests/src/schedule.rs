//! The clock of the open-loop benchmark tools: one send due every 1/rate s, whatever
//! the answers do, so a stalled server shows as latency rather than as fewer samples.

use std::time::Duration;

use tokio::time::Instant;

/// How late a send may be for the timer's sake alone: tokio's timer wakes on
/// millisecond ticks, so a send due between two ticks goes out at the next one or the
/// one after. That much lateness is the tool's own and is not counted as latency
/// (bare hyper's p50 read 1.22 ms when it was, 0.06 ms when it was not); any more is
/// counted, because a tool starved of CPU by a busy server must not hide its wait.
pub const TIMER_SLACK: Duration = Duration::from_millis(2);

/// Sends due at a fixed rate from when the schedule was made.
#[derive(Debug)]
pub struct Schedule {
    started: Instant,
    period: Duration,
    late: u64,
}

impl Schedule {
    /// A schedule of `rate` sends a second, starting now.
    pub fn new(rate: u32) -> Self {
        Self {
            started: Instant::now(),
            period: Duration::from_secs(1) / rate.max(1),
            late: 0,
        }
    }

    /// Waits until send `i` is due; returns where its latency starts: when it went
    /// out, but never later than [`TIMER_SLACK`] after it was due.
    pub async fn next(&mut self, i: u64) -> anyhow::Result<Instant> {
        let due = self.started + self.period * u32::try_from(i)?;
        tokio::time::sleep_until(due).await;
        let sent = Instant::now();
        if sent > due + TIMER_SLACK {
            self.late += 1;
        }
        Ok(sent.min(due + TIMER_SLACK))
    }

    /// Sends that went out later than the timer's slack.
    pub fn late(&self) -> u64 {
        self.late
    }
}
