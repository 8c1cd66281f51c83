//! The api as a library: the router and everything it needs, built by
//! [`startup`], so that tests can drive it in-process (`oneshot`) against
//! the real servers, and `main.rs` stays a thin entry point. The api is
//! stateless apart from its waiting requests; run as many as needed.

mod auth;
mod availability;
mod broker;
mod catalog;
mod conditional;
pub mod config;
mod extract;
mod integral;
mod known_events;
mod known_users;
mod live_feed;
mod metrics;
mod middleware;
mod pending;
mod problem;
mod ratelimit;
mod requests;
mod routes;
mod sale_pace;
mod server;
pub mod startup;
mod state;
mod views;
mod waiters;

pub use routes::{ApiDoc, document, router};
pub use state::AppState;
