//! Forming a batch from a consumer's deliveries without making a lone event wait.
//!
//! The first delivery is awaited; whatever the broker has already sent is taken at
//! once. Only when that already made a batch (two or more deliveries in hand, so the
//! queue is busy) does the slot wait, at most `wait`, for the batch to fill: at low
//! rates an event is handled the moment it arrives; under load, batches fill.

use std::time::Duration;

use futures_util::{FutureExt, Stream, StreamExt};

/// The next batch of at most `size` items (`size` ≥ 1), or `None` when the stream has
/// ended. An `Err` item ends the batch it joins: the caller handles what came before
/// it and then re-subscribes.
pub async fn next_batch<S, T, E>(
    stream: &mut S,
    size: usize,
    wait: Duration,
) -> Option<Vec<Result<T, E>>>
where
    S: Stream<Item = Result<T, E>> + Unpin,
{
    let first = stream.next().await?;
    let failed = first.is_err();
    let mut batch = vec![first];
    if failed {
        return Some(batch);
    }
    // What is already here.
    while batch.len() < size {
        match stream.next().now_or_never() {
            Some(Some(item)) => {
                let failed = item.is_err();
                batch.push(item);
                if failed {
                    return Some(batch);
                }
            }
            Some(None) | None => break,
        }
    }
    if batch.len() < 2 || batch.len() >= size || wait.is_zero() {
        return Some(batch);
    }
    // A batch is forming: give it a moment to fill.
    let deadline = tokio::time::Instant::now() + wait;
    while batch.len() < size {
        match tokio::time::timeout_at(deadline, stream.next()).await {
            Ok(Some(item)) => {
                let failed = item.is_err();
                batch.push(item);
                if failed {
                    break;
                }
            }
            Ok(None) | Err(_) => break,
        }
    }
    Some(batch)
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

    fn values(batch: &[Item]) -> Vec<u32> {
        batch.iter().filter_map(|i| i.ok()).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn a_lone_event_does_not_wait() {
        let (tx, mut rx) = channel();
        tx.send(Ok(1)).unwrap();
        let started = Instant::now();
        let batch = next_batch(&mut rx, 64, Duration::from_millis(5))
            .await
            .unwrap();
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
        let batch = next_batch(&mut rx, 64, Duration::from_millis(5))
            .await
            .unwrap();
        assert_eq!(
            values(&batch),
            [1, 2, 3],
            "the one after the deadline waits"
        );
        assert_eq!(started.elapsed(), Duration::from_millis(5));
        let next = next_batch(&mut rx, 64, Duration::from_millis(5))
            .await
            .unwrap();
        assert_eq!(values(&next), [4]);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_batch_goes_at_once_and_leaves_the_rest() {
        let (tx, mut rx) = channel();
        for i in 0..10 {
            tx.send(Ok(i)).unwrap();
        }
        let started = Instant::now();
        let batch = next_batch(&mut rx, 4, Duration::from_millis(5))
            .await
            .unwrap();
        assert_eq!(values(&batch), [0, 1, 2, 3]);
        assert_eq!(started.elapsed(), Duration::ZERO);
        let batch = next_batch(&mut rx, 4, Duration::from_millis(5))
            .await
            .unwrap();
        assert_eq!(values(&batch), [4, 5, 6, 7]);
    }

    #[tokio::test(start_paused = true)]
    async fn an_error_ends_the_batch_and_an_ended_stream_ends_the_loop() {
        let (tx, mut rx) = channel();
        tx.send(Ok(1)).unwrap();
        tx.send(Err("channel closed")).unwrap();
        tx.send(Ok(2)).unwrap();
        let batch = next_batch(&mut rx, 64, Duration::from_millis(5))
            .await
            .unwrap();
        assert_eq!(batch, [Ok(1), Err("channel closed")]);
        drop(tx);
        let batch = next_batch(&mut rx, 64, Duration::from_millis(5))
            .await
            .unwrap();
        assert_eq!(values(&batch), [2]);
        assert!(
            next_batch(&mut rx, 64, Duration::from_millis(5))
                .await
                .is_none()
        );
    }
}
