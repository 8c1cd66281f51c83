//! Test support shared by the system tests (`e2e`) and the benchmark
//! (`bench`): an isolated deployment per caller, running the real binaries
//! against the real servers, and the invariants of DESIGN.md §2.

pub mod app;
pub mod blackhole;
pub mod broker;
pub mod invariants;
pub mod receiver;
