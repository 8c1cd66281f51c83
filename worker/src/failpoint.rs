//! Fault points for the fault-injection tests (`scripts/chaos`), so that a
//! crash or a pause lands exactly where a scenario needs it rather than by
//! luck. Inert unless armed through the environment:
//!
//! - `WORKER_CRASH_AT=<point>[:<n>]` aborts the worker (like a SIGKILL:
//!   nothing flushed, nothing acked, locks left to expire) the n-th time
//!   (default 1) it reaches `<point>`: `after-commit` (the group's
//!   transaction is committed; no outcome published, nothing acked) or
//!   `after-publish` (outcomes published, not yet acked).
//! - `WORKER_PAUSE_AT=<point>[:<n>]` stops the worker (SIGSTOP to itself)
//!   the n-th time it reaches `<point>`, until someone sends SIGCONT:
//!   `after-token` (the event's lock is held and its fencing token read; the
//!   transaction has not started), the moment a stalled lock holder is most
//!   dangerous.

use std::{
    fmt::Display,
    sync::{
        OnceLock,
        atomic::{AtomicU64, Ordering},
    },
};

struct Armed {
    variable: &'static str,
    point: String,
    nth: u64,
    hits: AtomicU64,
}

impl Armed {
    fn from_env(variable: &'static str) -> Option<Self> {
        let spec = std::env::var(variable).ok()?;
        let (point, nth) = spec.split_once(':').unwrap_or((spec.as_str(), "1"));
        Some(Self {
            variable,
            point: point.to_owned(),
            nth: nth.parse().unwrap_or(1),
            hits: AtomicU64::new(0),
        })
    }

    /// True exactly once: the n-th time `point` is reached.
    fn fires(&self, point: &str) -> bool {
        self.point == point && self.hits.fetch_add(1, Ordering::Relaxed) + 1 == self.nth
    }
}

static CRASH: OnceLock<Option<Armed>> = OnceLock::new();
static PAUSE: OnceLock<Option<Armed>> = OnceLock::new();

fn armed(cell: &'static OnceLock<Option<Armed>>, variable: &'static str) -> Option<&'static Armed> {
    cell.get_or_init(|| Armed::from_env(variable)).as_ref()
}

pub fn hit(point: &str) {
    if let Some(armed) = armed(&CRASH, "WORKER_CRASH_AT")
        && armed.fires(point)
    {
        eprintln!(
            "{}={}:{}: aborting at {point}",
            armed.variable, armed.point, armed.nth
        );
        std::process::abort();
    }
}

/// `what` says what the worker holds, for the scenario reading the log.
pub fn pause(point: &str, what: impl Display) {
    if let Some(armed) = armed(&PAUSE, "WORKER_PAUSE_AT")
        && armed.fires(point)
    {
        eprintln!(
            "{}={}:{}: pausing at {point} ({what})",
            armed.variable, armed.point, armed.nth
        );
        // kill(1) rather than raise(3): no unsafe code for a test hook. The
        // whole process stops until SIGCONT; then `status` returns.
        let stopped = std::process::Command::new("kill")
            .args(["-STOP", &std::process::id().to_string()])
            .status();
        if !stopped.is_ok_and(|status| status.success()) {
            eprintln!("{}: could not stop this process", armed.variable);
        }
    }
}
