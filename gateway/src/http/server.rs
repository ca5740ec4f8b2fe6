//! The listener: connection caps (in all and per client), idle and header timeouts,
//! graceful drain.

use std::convert::Infallible;
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use shared::connection::{Activity, PerClient, Tracked};

use crate::guard::Networks;

/// What a listener serves: a request (and the client's address) in, a response out.
pub trait Handler: Clone + Send + Sync + 'static {
    /// Answers one request; errors are already responses.
    fn handle(
        &self,
        client_ip: IpAddr,
        request: Request<Incoming>,
    ) -> impl Future<Output = Response<Full<Bytes>>> + Send;
}

/// Listener limits.
#[derive(Clone, Debug)]
pub struct ServerLimits {
    /// Connections served at once.
    pub max_connections: usize,
    /// Connections per client address (0: no cap).
    pub max_connections_per_client: usize,
    /// Addresses exempt from the per-client cap (trusted proxies carry many clients).
    pub per_client_exempt: Networks,
    /// A connection that sends nothing for this long while none of its requests is
    /// being answered is closed (from the first byte on, and between requests).
    pub idle_timeout: Duration,
    /// Time allowed for a request's headers.
    pub header_read_timeout: Duration,
    /// Time in-flight requests get once shutdown starts.
    pub shutdown_deadline: Duration,
}

/// Largest read buffer per HTTP/1 connection: a body passes through it in slices on
/// its way to the handler's own buffer, so it need not hold more (hyper's default
/// lets it grow to about 400 KiB per connection).
pub const HTTP1_MAX_BUF: usize = 64 * 1024;

/// Serves until `shutdown`, then stops accepting and lets in-flight requests finish
/// within the deadline. Returns whether they all did.
pub async fn serve<H: Handler>(
    listener: TcpListener,
    handler: H,
    limits: ServerLimits,
    shutdown: CancellationToken,
) -> bool {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .max_buf_size(HTTP1_MAX_BUF)
        .keep_alive(true);
    // HTTP/1.1 only: no provider speaks HTTP/2 to us, and an h2c connection could buffer
    // a flow-control window per stream that no budget here accounts for. An h2c
    // preface is answered as the malformed HTTP/1 request it is, and the socket closed.
    let builder = builder.http1_only();
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let per_client = PerClient::new(limits.max_connections_per_client);

    loop {
        // Take a slot before accepting: past the cap, clients wait in the kernel backlog
        // instead of costing us memory.
        let permit = tokio::select! {
            permit = slots.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
            () = shutdown.cancelled() => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Typically EMFILE: back off briefly instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let client_ip = peer.ip();
        let client_slot = if limits.per_client_exempt.contains(client_ip) {
            None
        } else {
            match per_client.admit(client_ip) {
                Some(slot) => Some(slot),
                None => {
                    // Closed at once: one address cannot hold the listener's slots.
                    metrics::counter!("hookwire_gateway_connections_refused_total", "reason" => "per_client").increment(1);
                    drop(stream);
                    continue;
                }
            }
        };
        let _ = stream.set_nodelay(true);
        let handler = handler.clone();
        let activity = Activity::new();
        let in_hand = activity.clone();
        let service = service_fn(move |request| {
            let handler = handler.clone();
            let busy = in_hand.busy();
            async move {
                let response = handler.handle(client_ip, request).await;
                drop(busy);
                Ok::<_, Infallible>(response)
            }
        });
        let connection = builder
            .serve_connection(
                TokioIo::new(Tracked::new(stream, activity.clone())),
                service,
            )
            .into_owned();
        let connection = graceful.watch(connection);
        let idle_timeout = limits.idle_timeout;
        tokio::spawn(async move {
            tokio::select! {
                ended = connection => {
                    if let Err(error) = ended {
                        tracing::debug!(error = %error, "connection ended with an error");
                    }
                }
                () = activity.idle(idle_timeout) => {
                    // Dropping the connection closes the socket.
                    metrics::counter!("hookwire_gateway_connections_closed_idle_total").increment(1);
                }
            }
            drop(client_slot);
            drop(permit);
        });
    }
    drop(listener);
    tracing::info!(
        open_connections = graceful.count(),
        "listener closed; draining in-flight requests"
    );
    tokio::time::timeout(limits.shutdown_deadline, graceful.shutdown())
        .await
        .is_ok()
}
