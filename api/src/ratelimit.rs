//! Per-client rate limit on reserve. When a sale opens, a few scripted
//! clients can send more requests than every human buyer together; without a
//! per-client budget they would fill the command queue and the waiters, and
//! the other buyers would get 503s. A client over its budget gets 429 with a
//! `Retry-After` before anything is read or queued.
//!
//! A client is an API key. Anonymous requests are limited by address only
//! when a trusted proxy names it (`CLIENT_IP_HEADER`): without one, every
//! host client behind Docker's port proxy, or behind one load balancer,
//! arrives from the same address, and a per-address limit would refuse them
//! all as one. The header is believed only on connections from the proxies
//! in `TRUSTED_PROXIES`; from anyone else it is ignored, or a client that
//! reaches the api directly could name a fresh address per request.

use std::{
    net::{IpAddr, Ipv6Addr},
    num::NonZeroU32,
    sync::Arc,
    time::Duration,
};

use axum::http::{HeaderMap, HeaderName};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter, clock::Clock};
use ipnet::IpNet;
use tokio_util::sync::CancellationToken;

use crate::auth::Caller;

/// Whose budget a request spends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Key {
    Client(i64),
    /// An anonymous client's address as the trusted proxy gave it; IPv6 by
    /// /64, the block one subscriber gets.
    Address(IpAddr),
}

/// How often the state of clients that have gone quiet is dropped, so the
/// limiter's memory follows the number of recent clients, not of all
/// clients ever seen.
const FORGET_EVERY: Duration = Duration::from_secs(60);

/// A header naming the client's address (e.g. `X-Real-IP`) and the
/// proxies whose connections may carry it.
#[derive(Debug, Clone)]
pub struct ProxyHeader {
    pub name: HeaderName,
    pub trusted: Vec<IpNet>,
}

impl ProxyHeader {
    /// The client address the header names, if `peer` is a trusted proxy:
    /// the last address of the last header line, the one that proxy added
    /// (a client can only prepend).
    fn client(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<IpAddr> {
        // An IPv4 peer of a dual-stack listener arrives as ::ffff:a.b.c.d.
        let peer = peer?.to_canonical();
        if !self.trusted.iter().any(|net| net.contains(&peer)) {
            return None;
        }
        headers
            .get_all(&self.name)
            .iter()
            .next_back()
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.rsplit(',').next())
            .and_then(|last| last.trim().parse().ok())
    }
}

/// A token bucket per client: `per_second` sustained, `burst` at once.
pub struct ClientLimiter {
    limiter: DefaultKeyedRateLimiter<Key>,
    client_header: Option<ProxyHeader>,
}

impl ClientLimiter {
    /// `None` when `per_second` is 0 (limit off). `client_header` names a
    /// header set by a trusted reverse proxy that holds the client's address
    /// (e.g. `X-Real-IP`); without it anonymous clients are not limited.
    pub fn new(per_second: u32, burst: u32, client_header: Option<ProxyHeader>) -> Option<Self> {
        let per_second = NonZeroU32::new(per_second)?;
        let burst = NonZeroU32::new(burst).unwrap_or(per_second);
        Some(Self {
            limiter: RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst)),
            client_header,
        })
    }

    /// Whose budget `caller`, connected from `peer`, spends, if any: an API
    /// key's, or an anonymous client's address as named by a trusted proxy.
    /// The admin is not limited.
    pub fn key(&self, caller: Caller, peer: Option<IpAddr>, headers: &HeaderMap) -> Option<Key> {
        match caller {
            Caller::Client(id) => Some(Key::Client(id)),
            Caller::Admin => None,
            Caller::Anonymous => self
                .client_header
                .as_ref()
                .and_then(|header| header.client(peer, headers))
                .map(|address| Key::Address(block(address))),
        }
    }

    /// `Err(wait)` when `client` is over its budget.
    pub fn check(&self, client: Key) -> Result<(), Duration> {
        self.limiter
            .check_key(&client)
            .map_err(|not_until| not_until.wait_time_from(self.limiter.clock().now()))
    }

    /// Forgets quiet clients every [`FORGET_EVERY`] until `shutdown`.
    pub async fn forget_quiet_clients(self: Arc<Self>, shutdown: CancellationToken) {
        let mut ticks = tokio::time::interval(FORGET_EVERY);
        loop {
            tokio::select! {
                _ = ticks.tick() => {
                    self.limiter.retain_recent();
                    self.limiter.shrink_to_fit();
                }
                () = shutdown.cancelled() => return,
            }
        }
    }
}

fn block(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V4(_) => address,
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !((1u128 << 64) - 1))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLIENT: Key = Key::Client(1);

    #[test]
    fn a_client_gets_its_burst_then_waits_and_others_are_unaffected() {
        let limiter = ClientLimiter::new(1, 3, None).expect("limit on");
        for _ in 0..3 {
            assert_eq!(limiter.check(CLIENT), Ok(()));
        }
        let wait = limiter.check(CLIENT).expect_err("over budget");
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1));
        assert_eq!(limiter.check(Key::Client(2)), Ok(()));
    }

    #[test]
    fn zero_rate_turns_the_limit_off() {
        assert!(ClientLimiter::new(0, 10, None).is_none());
    }

    fn proxy_header(name: &'static str) -> Option<ProxyHeader> {
        Some(ProxyHeader {
            name: HeaderName::from_static(name),
            trusted: vec!["10.1.0.0/24".parse().unwrap()],
        })
    }

    const PROXY: Option<IpAddr> = Some(IpAddr::V4(std::net::Ipv4Addr::new(10, 1, 0, 5)));

    #[test]
    fn keys_are_api_keys_and_proxy_named_addresses_only() {
        let mut headers = HeaderMap::new();
        headers.append("x-forwarded-for", "1.2.3.4, 5.6.7.8".parse().unwrap());
        let behind_proxy = ClientLimiter::new(1, 1, proxy_header("x-forwarded-for")).unwrap();
        let direct = ClientLimiter::new(1, 1, None).unwrap();
        assert_eq!(
            behind_proxy.key(Caller::Anonymous, PROXY, &headers),
            Some(Key::Address("5.6.7.8".parse().unwrap()))
        );
        assert_eq!(direct.key(Caller::Anonymous, PROXY, &headers), None);
        assert_eq!(
            direct.key(Caller::Client(7), PROXY, &headers),
            Some(Key::Client(7))
        );
        assert_eq!(behind_proxy.key(Caller::Admin, PROXY, &headers), None);

        // A client cannot pick its key by sending the header first: the
        // proxy's line comes last.
        headers.append("x-forwarded-for", "9.9.9.9".parse().unwrap());
        assert_eq!(
            behind_proxy.key(Caller::Anonymous, PROXY, &headers),
            Some(Key::Address("9.9.9.9".parse().unwrap()))
        );
        headers.append("x-forwarded-for", "not an address".parse().unwrap());
        assert_eq!(behind_proxy.key(Caller::Anonymous, PROXY, &headers), None);
    }

    #[test]
    fn the_header_counts_only_on_a_connection_from_a_trusted_proxy() {
        let limiter = ClientLimiter::new(1, 1, proxy_header("x-real-ip")).unwrap();
        let mut headers = HeaderMap::new();
        headers.insert("x-real-ip", "5.6.7.8".parse().unwrap());
        let outsider = Some("10.1.1.5".parse().unwrap());
        assert_eq!(limiter.key(Caller::Anonymous, outsider, &headers), None);
        assert_eq!(limiter.key(Caller::Anonymous, None, &headers), None);
        let mapped = Some("::ffff:10.1.0.5".parse().unwrap());
        assert_eq!(
            limiter.key(Caller::Anonymous, mapped, &headers),
            Some(Key::Address("5.6.7.8".parse().unwrap()))
        );
        assert_eq!(
            limiter.key(Caller::Anonymous, PROXY, &headers),
            Some(Key::Address("5.6.7.8".parse().unwrap()))
        );
    }

    #[test]
    fn ipv6_clients_are_limited_by_their_64_block() {
        let limiter = ClientLimiter::new(1, 1, proxy_header("x-real-ip")).unwrap();
        let key = |address: &str| {
            let mut headers = HeaderMap::new();
            headers.insert("x-real-ip", address.parse().unwrap());
            limiter.key(Caller::Anonymous, PROXY, &headers)
        };
        assert_eq!(key("2001:db8:1:2::1"), key("2001:db8:1:2:ffff::9"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
    }
}
