//! The worker: consumes reservation commands in batches and decides each
//! event's commands under that event's etcd lock, in one MySQL transaction
//! fenced by the lock's revision (DESIGN.md §3–4).

pub mod assignment;
pub mod config;
pub mod consumer;
mod decision;
pub mod deliveries;
mod event_state;
pub mod expiry;
pub mod failpoint;
pub mod fence;
pub mod holds;
pub mod http;
pub mod lease;
pub mod lock;
pub mod membership;
pub mod metrics;
mod outbox;
pub mod permanent;
pub mod rules;
pub mod stock;
pub mod store;
mod traces;
pub mod webhooks;
