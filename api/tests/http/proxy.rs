//! The client address header counts only on connections from a trusted
//! proxy: behind the proxy each named address has its own reserve budget;
//! a client that reaches the api directly cannot name addresses to escape
//! the limit or to spend someone else's budget.

use std::net::SocketAddr;

use axum::{
    body::Body,
    extract::ConnectInfo,
    http::{Method, Request},
};

use crate::harness::Api;

/// A reserve from `peer` with `X-Real-IP: named`; the status. The body is
/// invalid (quantity 0), so a request the limiter lets through is answered
/// 422 at once and queues nothing: the answers come within milliseconds,
/// well inside the one-second refill of the budget.
async fn reserve(api: &Api, peer: &str, named: &str) -> u16 {
    let mut request = Request::builder()
        .method(Method::POST)
        .uri("/events/1/reserve")
        .header("x-real-ip", named)
        .header("content-type", "application/json")
        .body(Body::from(r#"{"quantity": 0}"#))
        .expect("request");
    let peer: SocketAddr = peer.parse().expect("peer address");
    request.extensions_mut().insert(ConnectInfo(peer));
    api.call(request).await.status
}

#[tokio::test]
async fn only_a_trusted_proxy_names_the_client() {
    let api = Api::spawn_with(&[
        "--reserve-rate-limit-per-sec",
        "1",
        "--reserve-rate-limit-burst",
        "2",
        "--client-ip-header",
        "x-real-ip",
        "--trusted-proxies",
        "10.1.0.0/24, 192.0.2.7",
    ])
    .await;
    let proxy = "10.1.0.5:40000";

    // Through the proxy: 192.0.2.1 spends its burst of 2, then is limited;
    // 198.51.100.1, behind the same proxy, has a budget of its own.
    let through_proxy = [
        reserve(&api, proxy, "192.0.2.1").await,
        reserve(&api, proxy, "192.0.2.1").await,
        reserve(&api, proxy, "192.0.2.1").await,
    ];
    assert_eq!(through_proxy, [422, 422, 429]);
    assert_eq!(reserve(&api, proxy, "198.51.100.1").await, 422);
    // A single address is a trusted proxy too.
    assert_eq!(reserve(&api, "192.0.2.7:1234", "192.0.2.1").await, 429);

    // Directly from an untrusted peer the header is ignored: naming the
    // limited address does not spend its budget or get refused, and
    // naming a fresh address per request gives no budget of its own
    // either (anonymous direct clients are not keyed at all).
    for _ in 0..3 {
        assert_eq!(reserve(&api, "10.1.1.5:40000", "192.0.2.1").await, 422);
    }
    assert_eq!(reserve(&api, proxy, "198.51.100.1").await, 422);
    assert_eq!(reserve(&api, proxy, "198.51.100.1").await, 429);
}
