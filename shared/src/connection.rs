//! What every listener of ours does with an accepted socket before HTTP sees it: a cap
//! on connections per client address, and an idle timeout that closes a connection
//! which sends nothing while no request of it is being answered.
//!
//! hyper's header timeout starts at a request's first byte, so a socket that never
//! sends one (or an HTTP/2 client that sends its preface and falls silent) would stay
//! open for ever; enough of them lock the listener. Both the gateway's listeners and
//! the worker's health listener use this, so none of them can be held that way.

use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Connections open per client address.
#[derive(Debug)]
pub struct PerClient {
    max: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One admitted connection; dropping it frees its place.
#[derive(Debug)]
pub struct ClientSlot {
    owner: Arc<PerClient>,
    client: IpAddr,
}

impl PerClient {
    /// At most `max` connections per address (0: no cap).
    pub fn new(max: usize) -> Arc<Self> {
        Arc::new(Self {
            max,
            open: Mutex::new(HashMap::new()),
        })
    }

    /// A place for one more connection from `client`, or `None` past the cap.
    pub fn admit(self: &Arc<Self>, client: IpAddr) -> Option<ClientSlot> {
        let client = client.to_canonical();
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = open.entry(client).or_insert(0);
        if self.max > 0 && *count >= self.max {
            return None;
        }
        *count += 1;
        Some(ClientSlot {
            owner: self.clone(),
            client,
        })
    }

    /// Connections open from `client` now.
    pub fn open_from(&self, client: IpAddr) -> usize {
        let open = self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        open.get(&client.to_canonical()).copied().unwrap_or(0)
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut open = self
            .owner
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.client) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.client);
            }
        }
    }
}

/// When a connection last received bytes, and how many of its requests are being
/// answered: idle means nothing received for a while and nothing in hand.
#[derive(Debug)]
pub struct Activity {
    epoch: Instant,
    last_read_ms: AtomicU64,
    busy: AtomicUsize,
}

/// A request being answered; while one exists the connection is not idle (a request
/// may wait seconds on the broker without a byte moving).
#[derive(Debug)]
pub struct Busy(Arc<Activity>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.touch();
        self.0.busy.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Activity {
    /// A new connection, active as of now.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            epoch: Instant::now(),
            last_read_ms: AtomicU64::new(0),
            busy: AtomicUsize::new(0),
        })
    }

    fn touch(&self) {
        let now = u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.last_read_ms.store(now, Ordering::Release);
    }

    /// Marks a request in hand until the guard drops.
    pub fn busy(self: &Arc<Self>) -> Busy {
        self.busy.fetch_add(1, Ordering::AcqRel);
        Busy(self.clone())
    }

    /// Time since the last byte arrived (or the connection was accepted).
    fn quiet_for(&self) -> Duration {
        let last = Duration::from_millis(self.last_read_ms.load(Ordering::Acquire));
        self.epoch.elapsed().saturating_sub(last)
    }

    /// Resolves once the connection has been idle for `timeout`: no byte received and
    /// no request in hand. Checked a few times per timeout, so a connection is closed
    /// between `timeout` and about 1.25 × `timeout` after it fell silent.
    pub async fn idle(&self, timeout: Duration) {
        let period = (timeout / 4).max(Duration::from_millis(10));
        loop {
            tokio::time::sleep(period).await;
            if self.busy.load(Ordering::Acquire) == 0 && self.quiet_for() >= timeout {
                return;
            }
        }
    }
}

/// A socket that records every read in its [`Activity`].
#[derive(Debug)]
pub struct Tracked<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S> Tracked<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, activity: Arc<Activity>) -> Self {
        Self { inner, activity }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Tracked<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.touch();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Tracked<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_per_client_are_capped_and_come_back() {
        let cap = PerClient::new(2);
        let a: IpAddr = [127, 0, 0, 2].into();
        let b: IpAddr = [127, 0, 0, 3].into();
        let first = cap.admit(a);
        let second = cap.admit(a);
        assert!(first.is_some() && second.is_some());
        assert!(
            cap.admit(a).is_none(),
            "a third from one address is refused"
        );
        assert!(cap.admit(b).is_some(), "another address has its own count");
        drop(first);
        assert!(cap.admit(a).is_some());
        assert!(PerClient::new(0).admit(a).is_some(), "0 turns the cap off");
    }

    #[tokio::test(start_paused = true)]
    async fn idle_means_silent_and_nothing_in_hand() {
        let activity = Activity::new();
        // A request in hand keeps a silent connection open.
        let busy = activity.busy();
        let waited = tokio::time::timeout(
            Duration::from_secs(60),
            activity.idle(Duration::from_secs(10)),
        );
        assert!(waited.await.is_err());
        drop(busy);
        let started = tokio::time::Instant::now();
        activity.idle(Duration::from_secs(10)).await;
        let took = started.elapsed();
        assert!(
            took >= Duration::from_secs(10) && took <= Duration::from_millis(12_500),
            "{took:?}"
        );
    }
}
