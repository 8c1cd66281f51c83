//! What a scenario is: the trait every fault scenario implements, so that
//! the registry ([`super::all`]) and the runner ([`super::run`]) treat
//! them all alike.

use futures::future::LocalBoxFuture;

use super::run::{Env, Run};
use crate::history::Record;

/// One kind of fault, injected into a running deployment while the
/// workload runs. The checker judges every run by the same invariants; a
/// scenario adds what is particular to its fault in [`Scenario::assess`]
/// or while injecting (`Run::violate`).
pub trait Scenario {
    /// The name on the command line and in the report.
    fn name(&self) -> &'static str;

    /// The fault, and what must hold through it, in a line.
    fn description(&self) -> &'static str;

    /// Changes the deployment's environment before it starts (a proxy in
    /// front of a server, a configuration under test).
    fn prepare<'a>(&'a mut self, _env: &'a mut Env) -> LocalBoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async { Ok(()) })
    }

    /// Injects the fault (and heals it) while the workload runs; the
    /// workload stops when this returns.
    fn inject<'a>(&'a mut self, run: &'a mut Run) -> LocalBoxFuture<'a, anyhow::Result<()>>;

    /// Once the workload has stopped: the scenario's own checks and notes,
    /// with the history at hand.
    fn assess<'a>(
        &'a mut self,
        _run: &'a mut Run,
        _records: &'a [Record],
    ) -> LocalBoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async { Ok(()) })
    }
}
