//! Abuse controls in front of the ingest path: who the client is behind trusted
//! proxies, per-provider source allow-lists, per-client rate limits and a bound on
//! requests in flight. All of them answer before a byte of body is read.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use http::HeaderMap;
use ipnet::IpNet;
use shared::Provider;

use crate::error::ApiError;

/// A list of networks from configuration: CIDRs or bare addresses, comma-separated.
#[derive(Clone, Debug, Default)]
pub struct Networks(Vec<IpNet>);

impl Networks {
    /// Parses `10.0.0.0/8, 192.168.1.7, ::1`; an empty string is an empty list.
    pub fn parse(raw: &str) -> Result<Self, String> {
        raw.split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(|s| {
                s.parse::<IpNet>()
                    .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("{s:?} is not an IP address or CIDR network"))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Self)
    }

    /// No network configured.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `ip` is in one of the networks (IPv4-mapped IPv6 counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }
}

/// The client's address: the peer, or, when the peer is a trusted proxy, the nearest
/// `X-Forwarded-For` hop that is not itself a trusted proxy. Hops further left were
/// written by whoever sent the request and prove nothing.
pub fn client_ip(peer: IpAddr, headers: &HeaderMap, trusted: &Networks) -> IpAddr {
    if trusted.is_empty() || !trusted.contains(peer) {
        return peer;
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        match hop.parse::<IpAddr>() {
            Ok(ip) if trusted.contains(ip) => client = ip,
            Ok(ip) => return ip,
            // A malformed hop ends the chain: the last trustworthy address stands.
            Err(_) => return client,
        }
    }
    client
}

/// Per provider route and client address: a token bucket.
#[derive(Debug)]
pub struct RateLimits {
    limiter: Option<DefaultKeyedRateLimiter<(Provider, IpAddr)>>,
}

impl RateLimits {
    /// `per_second` requests per second with a burst of twice that; 0 turns it off.
    pub fn new(per_second: u32) -> Self {
        let limiter = NonZeroU32::new(per_second).map(|rate| {
            let burst = rate.saturating_mul(NonZeroU32::MIN.saturating_add(1));
            RateLimiter::keyed(Quota::per_second(rate).allow_burst(burst))
        });
        Self { limiter }
    }

    /// Takes one token, or says how long until one is free.
    pub fn check(&self, provider: Provider, client: IpAddr) -> Result<(), ApiError> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        limiter
            .check_key(&(provider, client.to_canonical()))
            .map_err(|not_until| {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                ApiError::RateLimited {
                    retry_after_secs: wait.as_secs().saturating_add(1),
                }
            })
    }

    /// Forgets clients whose buckets are full again, so memory follows active clients.
    pub fn forget_idle(&self) {
        if let Some(limiter) = &self.limiter {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

/// Requests being handled right now, bounded: beyond the bound the gateway answers
/// 503 at once instead of queueing work (and memory) without limit.
#[derive(Debug)]
pub struct InFlight {
    current: Arc<AtomicUsize>,
    max: usize,
}

/// One admitted request; leaving the scope frees its slot.
#[derive(Debug)]
pub struct Slot(Arc<AtomicUsize>);

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl InFlight {
    /// At most `max` requests at once.
    pub fn new(max: usize) -> Self {
        Self {
            current: Arc::default(),
            max,
        }
    }

    /// A slot, or `Overloaded`.
    pub fn admit(&self) -> Result<Slot, ApiError> {
        let previous = self.current.fetch_add(1, Ordering::AcqRel);
        let slot = Slot(self.current.clone());
        if previous >= self.max {
            return Err(ApiError::Overloaded);
        }
        Ok(slot)
    }

    /// Requests in flight now (a refused request counts for the instant it is refused).
    pub fn current(&self) -> usize {
        self.current.load(Ordering::Acquire)
    }

    /// The bound.
    pub fn max(&self) -> usize {
        self.max
    }
}

/// Bytes of request bodies held at once, across every request: a body reserves its
/// declared length (or the whole limit when chunked) before a byte is read, and gets
/// 503 at once when the budget is spent. So the memory bodies can take is a setting,
/// whatever their number and size.
#[derive(Debug)]
pub struct BodyBudget {
    kib: Arc<tokio::sync::Semaphore>,
    total_kib: u32,
}

/// A body's share of the budget, given back when the request is answered.
#[derive(Debug)]
pub struct BodyReservation {
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl BodyBudget {
    /// At most `bytes` of bodies at once (counted in KiB).
    pub fn new(bytes: u64) -> Self {
        let total_kib = u32::try_from(bytes / 1024).unwrap_or(u32::MAX >> 4).max(1);
        Self {
            kib: Arc::new(tokio::sync::Semaphore::new(total_kib as usize)),
            total_kib,
        }
    }

    /// Reserves room for a body of `bytes`, or `Overloaded`.
    pub fn reserve(&self, bytes: u64) -> Result<BodyReservation, ApiError> {
        let kib = u32::try_from(bytes.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .clamp(1, self.total_kib);
        self.kib
            .clone()
            .try_acquire_many_owned(kib)
            .map(|permit| BodyReservation { _permit: permit })
            .map_err(|_| ApiError::Overloaded)
    }

    /// KiB reserved now.
    pub fn reserved_kib(&self) -> u32 {
        self.total_kib
            .saturating_sub(u32::try_from(self.kib.available_permits()).unwrap_or(u32::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append(
                "x-forwarded-for",
                v.parse().unwrap_or_else(|_| unreachable!()),
            );
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|_| unreachable!())
    }

    #[test]
    fn forwarded_for_counts_only_behind_trusted_proxies() {
        let trusted = Networks::parse("10.0.0.0/8, 192.168.1.7").unwrap_or_default();
        let xff = headers(&["6.6.6.6, 203.0.113.9", "10.1.2.3"]);
        // Untrusted peer: its header is ignored.
        assert_eq!(
            client_ip(ip("198.51.100.1"), &xff, &trusted),
            ip("198.51.100.1")
        );
        // Trusted peer: right to left, skipping trusted hops, first untrusted wins;
        // the spoofed 6.6.6.6 on the left is never reached.
        assert_eq!(
            client_ip(ip("192.168.1.7"), &xff, &trusted),
            ip("203.0.113.9")
        );
        // Garbage ends the chain at the last trusted hop.
        let bad = headers(&["203.0.113.9, nonsense", "10.1.2.3"]);
        assert_eq!(client_ip(ip("10.9.9.9"), &bad, &trusted), ip("10.1.2.3"));
        // No proxies configured: always the peer.
        assert_eq!(
            client_ip(ip("10.1.1.1"), &xff, &Networks::default()),
            ip("10.1.1.1")
        );
    }

    #[test]
    fn networks_parse_addresses_and_cidrs() {
        let nets = Networks::parse("52.67.145.81, 177.71.238.0/24").unwrap_or_default();
        assert!(nets.contains(ip("52.67.145.81")));
        assert!(nets.contains(ip("177.71.238.212")));
        assert!(nets.contains(ip("::ffff:52.67.145.81")));
        assert!(!nets.contains(ip("52.67.145.82")));
        assert!(Networks::parse("10.0.0.0/33").is_err());
        assert!(Networks::parse("").is_ok_and(|n| n.is_empty()));
    }

    #[test]
    fn rate_limit_allows_a_burst_then_refuses_with_a_wait() {
        let limits = RateLimits::new(2);
        let client = ip("203.0.113.1");
        for _ in 0..4 {
            assert!(limits.check(Provider::LiveTip, client).is_ok());
        }
        assert!(matches!(
            limits.check(Provider::LiveTip, client),
            Err(ApiError::RateLimited {
                retry_after_secs: 1
            })
        ));
        // Another route's bucket and another client's are their own.
        assert!(limits.check(Provider::Pluggy, client).is_ok());
        assert!(limits.check(Provider::LiveTip, ip("203.0.113.2")).is_ok());
        assert!(RateLimits::new(0).check(Provider::LiveTip, client).is_ok());
    }

    #[test]
    fn bodies_share_a_byte_budget() {
        let budget = BodyBudget::new(3 * 1024 * 1024);
        let a = budget.reserve(1_048_576);
        let b = budget.reserve(2 * 1_048_576);
        assert!(a.is_ok() && b.is_ok());
        assert!(matches!(budget.reserve(300), Err(ApiError::Overloaded)));
        drop(a);
        assert!(budget.reserve(300).is_ok());
        assert_eq!(budget.reserved_kib(), 2048);
    }

    #[test]
    fn in_flight_is_bounded_and_slots_come_back() {
        let bound = InFlight::new(2);
        let a = bound.admit();
        let b = bound.admit();
        assert!(a.is_ok() && b.is_ok());
        assert!(matches!(bound.admit(), Err(ApiError::Overloaded)));
        drop(a);
        assert!(bound.admit().is_ok());
        assert_eq!(bound.current(), 1);
    }
}
