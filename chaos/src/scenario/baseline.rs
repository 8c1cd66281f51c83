//! `baseline`: the workload alone, no fault: the control every other
//! scenario is read against.

use futures::future::LocalBoxFuture;

use super::{
    contract::Scenario,
    run::{Run, secs},
};

pub(super) struct Baseline;

impl Scenario for Baseline {
    fn name(&self) -> &'static str {
        "baseline"
    }

    fn description(&self) -> &'static str {
        "no fault (control): the checker's invariants on a quiet run"
    }

    fn inject<'a>(&'a mut self, run: &'a mut Run) -> LocalBoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            tokio::time::sleep(secs(if run.short() { 8.0 } else { 30.0 })).await;
            Ok(())
        })
    }
}
