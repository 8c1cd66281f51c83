//! Proof under faults (issue 4): a randomized workload recorded to a
//! JSON-lines history ([`workload`], [`history`]), a checker that judges a
//! history together with the database against the invariants of
//! DESIGN.md §2 ([`check`]), and fault scenarios that run both around a
//! real deployment ([`scenario`]); some cut a worker off from etcd or MySQL,
//! or a whole deployment off from Redis, through [`testkit::blackhole`]
//! proxies, and read the workers' logs by their fields ([`worker_log`]);
//! the webhooks the workers send reach a [`receiver`] of the run's own.
//! `scripts/chaos` runs every scenario and prints the [`report`].

pub mod check;
pub mod history;
pub mod receiver;
pub mod report;
pub mod scenario;
pub mod worker_log;
pub mod workload;
