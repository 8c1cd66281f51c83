//! Per-client rate limit on reserve. When a sale opens, a few scripted
//! clients can send more requests than every human buyer together; without a
//! per-client budget they would fill the command queue and the waiters, and
//! the other buyers would get 503s. A client over its budget gets 429 with a
//! `Retry-After` before anything is read or queued.

use std::{
    net::{IpAddr, SocketAddr},
    num::NonZeroU32,
    sync::Arc,
    time::Duration,
};

use axum::{
    extract::{ConnectInfo, Request, State},
    http::{HeaderMap, HeaderName},
    middleware::Next,
    response::{IntoResponse, Response},
};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter, clock::Clock};
use tokio_util::sync::CancellationToken;

use crate::problem::ApiError;

/// How often the state of clients that have gone quiet is dropped, so the
/// limiter's memory follows the number of recent clients, not of all
/// clients ever seen.
const FORGET_EVERY: Duration = Duration::from_secs(60);

/// A token bucket per client: `per_second` sustained, `burst` at once.
pub struct ClientLimiter {
    limiter: DefaultKeyedRateLimiter<IpAddr>,
    client_header: Option<HeaderName>,
}

impl ClientLimiter {
    /// `None` when `per_second` is 0 (limit off). `client_header` names a
    /// header set by a trusted reverse proxy that holds the client's address
    /// (e.g. `X-Real-IP`); without it the peer address is the client.
    pub fn new(per_second: u32, burst: u32, client_header: Option<HeaderName>) -> Option<Self> {
        let per_second = NonZeroU32::new(per_second)?;
        let burst = NonZeroU32::new(burst).unwrap_or(per_second);
        Some(Self {
            limiter: RateLimiter::keyed(Quota::per_second(per_second).allow_burst(burst)),
            client_header,
        })
    }

    /// Who is asking: the proxy's header when configured and parseable (the
    /// last address of a list, the one the trusted proxy added), else the
    /// peer address.
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        self.client_header
            .as_ref()
            .and_then(|name| headers.get(name))
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.rsplit(',').next())
            .and_then(|last| last.trim().parse().ok())
            .unwrap_or(peer)
    }

    /// `Err(wait)` when `client` is over its budget.
    pub fn check(&self, client: IpAddr) -> Result<(), Duration> {
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

/// Middleware: answers 429 to a client over its budget.
pub async fn limit(
    State(limiter): State<Arc<ClientLimiter>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
    next: Next,
) -> Response {
    let client = limiter.client(peer.ip(), request.headers());
    match limiter.check(client) {
        Ok(()) => next.run(request).await,
        Err(wait) => ApiError::TooManyRequests {
            retry_after: wait.as_secs_f64().ceil().max(1.0) as u64,
        }
        .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PEER: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(10, 0, 0, 1));

    #[test]
    fn a_client_gets_its_burst_then_waits_and_others_are_unaffected() {
        let limiter = ClientLimiter::new(1, 3, None).expect("limit on");
        for _ in 0..3 {
            assert_eq!(limiter.check(PEER), Ok(()));
        }
        let wait = limiter.check(PEER).expect_err("over budget");
        assert!(wait > Duration::ZERO && wait <= Duration::from_secs(1));
        assert_eq!(limiter.check("10.0.0.2".parse().unwrap()), Ok(()));
    }

    #[test]
    fn zero_rate_turns_the_limit_off() {
        assert!(ClientLimiter::new(0, 10, None).is_none());
    }

    #[test]
    fn the_proxy_header_names_the_client_only_when_configured_and_valid() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", "1.2.3.4, 5.6.7.8".parse().unwrap());
        let behind_proxy =
            ClientLimiter::new(1, 1, Some(HeaderName::from_static("x-forwarded-for"))).unwrap();
        assert_eq!(
            behind_proxy.client(PEER, &headers),
            "5.6.7.8".parse::<IpAddr>().unwrap()
        );
        let direct = ClientLimiter::new(1, 1, None).unwrap();
        assert_eq!(direct.client(PEER, &headers), PEER);
        headers.insert("x-forwarded-for", "not an address".parse().unwrap());
        assert_eq!(behind_proxy.client(PEER, &headers), PEER);
    }
}
