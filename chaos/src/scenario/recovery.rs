//! What every scenario asserts on top of the checker: after the last fault
//! healed, reservations were decided again (the system resumed by itself).
//! Also counts the answers given while a fault lasted, for the report.

use std::collections::BTreeMap;

use crate::{
    check::{self, Violation},
    history::{OpKind, Record},
};

/// A note on the reserves after the last fault, and a `no-recovery`
/// violation when none was decided; nothing for a run without faults.
pub(super) fn after_last_fault(records: &[Record]) -> Option<(String, Option<Violation>)> {
    let (_, ops, faults) = check::split(records);
    let healed = faults.iter().map(|f| f.end_ms).reduce(f64::max)?;
    let after: Vec<u16> = ops
        .iter()
        .filter(|op| op.op == OpKind::Reserve && op.start_ms > healed)
        .map(|op| op.status)
        .collect();
    let decided = after.iter().filter(|s| matches!(s, 200 | 409)).count();
    let confirmed = after.iter().filter(|s| **s == 200).count();
    let note = format!(
        "after the last fault healed: {decided} reserve(s) decided synchronously, {confirmed} confirmed"
    );
    let violation = (decided == 0).then(|| {
        Violation::new(
            "no-recovery",
            "-",
            format!("no reservation was decided after the last fault healed at {healed:.0} ms"),
        )
    });
    Some((note, violation))
}

/// Answers to requests that overlapped a fault window, by status.
pub(super) fn answers_during_faults(records: &[Record]) -> BTreeMap<u16, usize> {
    let (_, ops, faults) = check::split(records);
    let mut during = BTreeMap::new();
    for op in ops {
        if faults
            .iter()
            .any(|f| op.start_ms <= f.end_ms && op.end_ms >= f.start_ms)
        {
            *during.entry(op.status).or_insert(0) += 1;
        }
    }
    during
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::{Fault, Op};

    fn reserve(status: u16, start_ms: f64) -> Record {
        Record::Op(Op {
            op: OpKind::Reserve,
            client: 0,
            api: 0,
            method: "POST".into(),
            path: "/events/1/reserve".into(),
            event_id: Some(1),
            reservation_id: None,
            quantity: Some(1),
            idempotency_key: None,
            attempt: 1,
            asynchronous: false,
            start_ms,
            end_ms: start_ms + 10.0,
            status,
            retry_after: None,
            body: serde_json::Value::Null,
            error: None,
        })
    }

    fn fault(start_ms: f64, end_ms: f64) -> Record {
        Record::Fault(Fault {
            fault: "restart-mysql".into(),
            detail: String::new(),
            start_ms,
            end_ms,
        })
    }

    #[test]
    fn a_run_without_faults_asserts_nothing() {
        assert!(after_last_fault(&[reserve(503, 0.0)]).is_none());
    }

    #[test]
    fn nothing_decided_after_the_last_heal_is_no_recovery() {
        let records = [
            fault(100.0, 200.0),
            reserve(200, 150.0),
            fault(300.0, 400.0),
            reserve(503, 450.0),
            reserve(202, 460.0),
        ];
        let (note, violation) = after_last_fault(&records).expect("faults");
        assert!(note.contains("0 reserve(s) decided"), "{note}");
        assert_eq!(violation.map(|v| v.rule), Some("no-recovery"));
        assert_eq!(answers_during_faults(&records), BTreeMap::from([(200, 1)]));
    }

    #[test]
    fn a_decision_after_the_heal_is_recovery() {
        let records = [
            fault(100.0, 200.0),
            reserve(409, 250.0),
            reserve(200, 260.0),
        ];
        let (note, violation) = after_last_fault(&records).expect("a fault");
        assert!(
            note.contains("2 reserve(s) decided synchronously, 1 confirmed"),
            "{note}"
        );
        assert!(violation.is_none());
    }
}
