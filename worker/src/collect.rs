//! Forming a batch from a consumer's deliveries without making a lone event wait.
//!
//! The first delivery is awaited; whatever the broker has already sent is taken at
//! once. Only when that already made a batch (two or more deliveries in hand, so the
//! queue is busy) does the slot wait, at most `wait`, for the batch to fill: at low
//! rates an event is handled the moment it arrives; under load, batches fill.

use std::time::Duration;

use futures_util::{FutureExt, Stream, StreamExt};

/// How big a batch may grow: `items` (at least 1) and `bytes` by `weight` (a batch
/// holds at least one item, however heavy).
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Items.
    pub items: usize,
    /// Total weight (message bytes).
    pub bytes: usize,
    /// How long a forming batch waits for more.
    pub wait: Duration,
}

/// A batch being formed.
struct Forming<T, E> {
    items: Vec<Result<T, E>>,
    bytes: usize,
    /// No more: full, over its bytes, or an error joined.
    closed: bool,
}

impl<T, E> Forming<T, E> {
    fn push(&mut self, item: Result<T, E>, limits: Limits, weight: impl Fn(&T) -> usize) {
        match &item {
            Ok(value) => self.bytes = self.bytes.saturating_add(weight(value)),
            Err(_) => self.closed = true,
        }
        self.items.push(item);
        if self.items.len() >= limits.items || self.bytes >= limits.bytes {
            self.closed = true;
        }
    }
}

/// The next batch within `limits`, or `None` when the stream has ended. An `Err` item
/// ends the batch it joins: the caller handles what came before it and then
/// re-subscribes.
pub async fn next_batch<S, T, E>(
    stream: &mut S,
    limits: Limits,
    weight: impl Fn(&T) -> usize + Copy,
) -> Option<Vec<Result<T, E>>>
where
    S: Stream<Item = Result<T, E>> + Unpin,
{
    let mut batch = Forming {
        items: Vec::new(),
        bytes: 0,
        closed: false,
    };
    batch.push(stream.next().await?, limits, weight);
    // What is already here.
    while !batch.closed {
        match stream.next().now_or_never() {
            Some(Some(item)) => batch.push(item, limits, weight),
            Some(None) | None => break,
        }
    }
    if batch.items.len() < 2 || batch.closed || limits.wait.is_zero() {
        return Some(batch.items);
    }
    // A batch is forming: give it a moment to fill.
    let deadline = tokio::time::Instant::now() + limits.wait;
    while !batch.closed {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(item)) => batch.push(item, limits, weight),
            Ok(None) | Err(_) => break,
        }
    }
    Some(batch.items)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::pin::Pin;
    use tokio::sync::mpsc;
    use tokio::time::Instant;

    type Item = Result<u32, &'static str>;
    type Receiving = Pin<Box<dyn Stream<Item = Item> + Send>>;

    /// A sender and, as a stream, its receiver (what a consumer looks like).
    fn channel() -> (mpsc::UnboundedSender<Item>, Receiving) {
        let (tx, rx) = mpsc::unbounded_channel();
        let stream = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|item| (item, rx))
        });
        (tx, Box::pin(stream.fuse()))
    }

    fn limits(items: usize, wait_ms: u64) -> Limits {
        Limits {
            items,
            bytes: usize::MAX,
            wait: Duration::from_millis(wait_ms),
        }
    }

    fn weight(value: &u32) -> usize {
        *value as usize
    }

    fn values(batch: &[Item]) -> Vec<u32> {
        batch.iter().filter_map(|i| i.ok()).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_lone_event_does_not_wait() {
        let (tx, mut rx) = channel();
        tx.send(Ok(1)).unwrap();
        let started = Instant::now();
        let batch = next_batch(&mut rx, limits(64, 5), weight).await.unwrap();
        assert_eq!(values(&batch), [1]);
        assert_eq!(started.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn a_forming_batch_waits_at_most_the_wait_for_more() {
        let (tx, mut rx) = channel();
        tx.send(Ok(1)).unwrap();
        tx.send(Ok(2)).unwrap();
        let late = tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(3)).await;
            late.send(Ok(3)).unwrap();
            tokio::time::sleep(Duration::from_millis(5)).await;
            late.send(Ok(4)).unwrap();
        });
        let started = Instant::now();
        let batch = next_batch(&mut rx, limits(64, 5), weight).await.unwrap();
        assert_eq!(
            values(&batch),
            [1, 2, 3],
            "the one after the deadline waits"
        );
        assert_eq!(started.elapsed(), Duration::from_millis(5));
        let next = next_batch(&mut rx, limits(64, 5), weight).await.unwrap();
        assert_eq!(values(&next), [4]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_batch_goes_at_once_and_leaves_the_rest() {
        let (tx, mut rx) = channel();
        for i in 0..10 {
            tx.send(Ok(i)).unwrap();
        }
        let started = Instant::now();
        let batch = next_batch(&mut rx, limits(4, 5), weight).await.unwrap();
        assert_eq!(values(&batch), [0, 1, 2, 3]);
        assert_eq!(started.elapsed(), Duration::ZERO);
        let batch = next_batch(&mut rx, limits(4, 5), weight).await.unwrap();
        assert_eq!(values(&batch), [4, 5, 6, 7]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_batch_stops_growing_at_its_bytes_but_holds_at_least_one() {
        let (tx, mut rx) = channel();
        for value in [700, 200, 200, 5_000, 10] {
            tx.send(Ok(value)).unwrap();
        }
        let bounded = Limits {
            bytes: 1_000,
            ..limits(64, 5)
        };
        let batch = next_batch(&mut rx, bounded, weight).await.unwrap();
        assert_eq!(
            values(&batch),
            [700, 200, 200],
            "the one crossing the bound ends it"
        );
        let batch = next_batch(&mut rx, bounded, weight).await.unwrap();
        assert_eq!(values(&batch), [5_000], "alone, however heavy");
        let batch = next_batch(&mut rx, bounded, weight).await.unwrap();
        assert_eq!(values(&batch), [10]);
    }

    #[tokio::test(start_paused = true)]
    async fn an_error_ends_the_batch_and_an_ended_stream_ends_the_loop() {
        let (tx, mut rx) = channel();
        tx.send(Ok(1)).unwrap();
        tx.send(Err("channel closed")).unwrap();
        tx.send(Ok(2)).unwrap();
        let batch = next_batch(&mut rx, limits(64, 5), weight).await.unwrap();
        assert_eq!(batch, [Ok(1), Err("channel closed")]);
        drop(tx);
        let batch = next_batch(&mut rx, limits(64, 5), weight).await.unwrap();
        assert_eq!(values(&batch), [2]);
        assert!(next_batch(&mut rx, limits(64, 5), weight).await.is_none());
    }
}
