//! The checker's summary as text, for a person reading a run's output.

use super::model::Summary;

/// Violations listed in full; the rest are counted.
const LISTED: usize = 50;

impl Summary {
    /// Human-readable report.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let ops: Vec<String> = self
            .by_op
            .iter()
            .map(|(op, statuses)| {
                let total: usize = statuses.values().sum();
                let detail: Vec<String> =
                    statuses.iter().map(|(s, n)| format!("{s}:{n}")).collect();
                format!("{op} {total} ({})", detail.join(" "))
            })
            .collect();
        out.push_str(&format!(
            "operations {} [{}]\nacknowledged {}, reservations named {}, rows not named by any answer {}\n",
            self.operations,
            ops.join("; "),
            self.acknowledged,
            self.reservations_seen,
            self.rows_not_in_history
        ));
        let kinds: Vec<String> = self
            .fault_kinds
            .iter()
            .map(|(k, n)| format!("{k}×{n}"))
            .collect();
        out.push_str(&format!(
            "faults injected {} [{}]\n",
            self.faults,
            kinds.join(", ")
        ));
        out.push_str(&format!(
            "max latency {:.0} ms (during faults {:.0} ms)\n",
            self.max_latency_ms, self.max_latency_during_faults_ms
        ));
        for (id, e) in &self.events {
            out.push_str(&format!(
                "event {id}: capacity {} available {} held or confirmed {}\n",
                e.capacity, e.available, e.taken_quantity
            ));
        }
        let w = &self.webhooks;
        if w.endpoints > 0 {
            out.push_str(&format!(
                "webhooks: {} endpoint(s), {} reservations owed them, {} messages, {} deliveries \
                 ({} delivered, {} retried), \
                 {} received (and {} written since the database was read; {} first attempts \
                 refused on purpose, {} accepted again)\n",
                w.endpoints,
                w.reservations,
                w.messages,
                w.deliveries,
                w.delivered,
                w.retried,
                w.received,
                w.late,
                w.refused_on_purpose,
                w.redelivered
            ));
        }
        out.push_str(&format!("violations {}\n", self.violations.len()));
        for v in self.violations.iter().take(LISTED) {
            out.push_str(&format!("  {v}\n"));
        }
        if self.violations.len() > LISTED {
            out.push_str(&format!(
                "  … and {} more\n",
                self.violations.len() - LISTED
            ));
        }
        out
    }
}
