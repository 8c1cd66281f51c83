//! HTTP semantics of the api, in-process (see `harness`): what a request
//! gets back and that a refused one changes nothing. The process-level
//! behaviour (workers, signals, crashes, limits of the server loop) is in
//! `e2e`.

mod docs;
mod harness;
mod problems;
mod proxy;
mod spec;
mod validation;
