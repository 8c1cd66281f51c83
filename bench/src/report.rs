//! The comparison table: printed, written as JSON and Markdown, and spliced
//! into BENCHMARKS.md between its markers.

use std::{fmt::Write, path::Path};

use serde::Serialize;

use crate::stats::Row;

const BEGIN: &str = "<!-- bench:begin -->";
const END: &str = "<!-- bench:end -->";

#[derive(Debug, Serialize)]
pub struct Report {
    pub generated_at: String,
    pub command: String,
    pub machine: String,
    pub clients: usize,
    pub duration_secs: u64,
    pub rows: Vec<Row>,
    /// Named ratios between rows, e.g. batched pipeline / database ceiling.
    pub ratios: Vec<(String, f64)>,
}

fn opt(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_owned(), |v| format!("{v:.0}"))
}

impl Report {
    pub fn markdown(&self) -> String {
        let mut md = String::new();
        let _ = writeln!(md, "Run {} on {}.\n", self.generated_at, self.machine);
        let _ = writeln!(md, "Command: `{}`\n", self.command);
        let _ = writeln!(
            md,
            "| scenario | ok/s | ok | errors | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | violations | api RSS MB | worker RSS MB |"
        );
        let _ = writeln!(
            md,
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        );
        for r in &self.rows {
            let _ = writeln!(
                md,
                "| {} | {:.0} | {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {} | {} | {} |",
                r.scenario,
                r.ops_per_sec,
                r.operations,
                r.errors,
                r.p50_ms,
                r.p90_ms,
                r.p99_ms,
                r.p999_ms,
                r.max_ms,
                r.violations,
                opt(r.api_peak_rss_mb),
                opt(r.worker_peak_rss_mb),
            );
        }
        let costed: Vec<&Row> = self.rows.iter().filter(|r| r.cost.is_some()).collect();
        if !costed.is_empty() {
            let servers: String = crate::servers::SERVERS
                .iter()
                .map(|(name, _)| format!(" {name} CPU µs |"))
                .collect();
            let _ = writeln!(
                md,
                "\nWhat one confirmed reservation cost (whole scenario, from the processes' CPU time and the servers' own counters):\n\n| scenario | api CPU µs | worker CPU µs |{servers} etcd writes / 1k | MySQL commits / 1k |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|"
            );
            for r in costed {
                if let Some(c) = &r.cost {
                    let servers: String = c
                        .server_cpu_us
                        .iter()
                        .map(|us| format!(" {us:.0} |"))
                        .collect();
                    let _ = writeln!(
                        md,
                        "| {} | {:.0} | {:.0} |{servers} {:.1} | {:.1} |",
                        r.scenario,
                        c.api_cpu_us,
                        c.worker_cpu_us,
                        c.etcd_writes_per_1k,
                        c.mysql_commits_per_1k
                    );
                }
            }
        }
        if !self.ratios.is_empty() {
            let _ = writeln!(md, "\n| ratio | value |\n|---|---:|");
            for (name, value) in &self.ratios {
                let _ = writeln!(md, "| {name} | {value:.2}× |");
            }
        }
        md
    }

    pub fn write(&self, dir: &Path) -> std::io::Result<()> {
        std::fs::create_dir_all(dir)?;
        std::fs::write(
            dir.join("report.json"),
            serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?,
        )?;
        std::fs::write(dir.join("report.md"), self.markdown())
    }

    /// Replaces the text between the markers of `path` with this table.
    pub fn splice_into(&self, path: &Path) -> std::io::Result<()> {
        let text = std::fs::read_to_string(path)?;
        let (Some(begin), Some(end)) = (text.find(BEGIN), text.find(END)) else {
            return Err(std::io::Error::other(format!(
                "{} lacks the {BEGIN} / {END} markers",
                path.display()
            )));
        };
        let updated = format!(
            "{}{BEGIN}\n{}{}",
            &text[..begin],
            self.markdown(),
            &text[end..]
        );
        std::fs::write(path, updated)
    }
}
