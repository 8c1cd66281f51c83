//! Proof under faults (issue 4): a randomized workload recorded to a
//! JSON-lines history ([`workload`], [`history`]), a checker that judges a
//! history together with the database against the invariants of
//! DESIGN.md §2 ([`check`]), and fault scenarios that run both around a
//! real deployment ([`scenario`]), one of which cuts a worker off from etcd
//! through a [`testkit::blackhole`] proxy. `scripts/chaos` runs every scenario.

pub mod check;
pub mod history;
pub mod scenario;
pub mod workload;
