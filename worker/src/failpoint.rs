//! Crash points for the fault-injection tests (`scripts/chaos` scenario
//! `crash-points`). Inert unless `WORKER_CRASH_AT=<point>[:<n>]` is set: the
//! worker then aborts (like a SIGKILL: nothing flushed, nothing acked, locks
//! left to expire) the n-th time (default 1) it reaches `<point>`, so that a
//! crash lands exactly there rather than by luck.
//!
//! Points: `after-commit` (the group's transaction is committed; no outcome
//! published, nothing acked) and `after-publish` (outcomes published, not
//! yet acked).

use std::sync::{
    OnceLock,
    atomic::{AtomicU64, Ordering},
};

static ARMED: OnceLock<Option<(String, u64)>> = OnceLock::new();
static HITS: AtomicU64 = AtomicU64::new(0);

pub fn hit(point: &str) {
    let armed = ARMED.get_or_init(|| {
        let spec = std::env::var("WORKER_CRASH_AT").ok()?;
        let (name, nth) = spec.split_once(':').unwrap_or((spec.as_str(), "1"));
        Some((name.to_owned(), nth.parse().unwrap_or(1)))
    });
    if let Some((name, nth)) = armed
        && name == point
        && HITS.fetch_add(1, Ordering::Relaxed) + 1 >= *nth
    {
        eprintln!("WORKER_CRASH_AT={name}:{nth}: aborting at {point}");
        std::process::abort();
    }
}
