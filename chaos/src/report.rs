//! The suite's report: one Markdown table row per scenario run, read from
//! the `result.json` each run leaves (or the error `scripts/chaos` wrote in
//! its place), then the violations found, counted by rule and the first
//! ones listed. `chaos report` prints it; `scripts/chaos` keeps it in
//! `.chaos/report.md`.

use std::{collections::BTreeMap, fmt::Write, path::Path};

use anyhow::Context;
use serde::Deserialize;

/// Violations listed per scenario; the rest are only counted.
const LISTED: usize = 20;

/// One scenario's line in `result.json`.
#[derive(Debug)]
pub enum Entry {
    /// The scenario ended before writing a result.
    Failed {
        scenario: String,
        error: String,
    },
    Ran(Box<Ran>),
}

/// The fields of [`crate::scenario::ScenarioResult`] the report shows.
#[derive(Debug, Deserialize)]
pub struct Ran {
    pub scenario: String,
    pub short: bool,
    pub seed: u64,
    pub operations: usize,
    pub faults: usize,
    pub violations: usize,
    pub duration_s: f64,
    pub max_latency_ms: f64,
    pub max_latency_during_faults_ms: f64,
    pub during_faults: BTreeMap<u16, usize>,
    pub notes: Vec<String>,
    pub summary: Found,
}

#[derive(Debug, Deserialize)]
pub struct Found {
    pub violations: Vec<Violation>,
}

#[derive(Debug, Deserialize)]
pub struct Violation {
    pub rule: String,
    pub id: String,
    pub detail: String,
}

impl Entry {
    /// A line of `result.json`: an error (`scenario`, `error`) or a result.
    pub fn parse(line: &str) -> anyhow::Result<Self> {
        let value: serde_json::Value = serde_json::from_str(line)?;
        if let (Some(scenario), Some(error)) = (value["scenario"].as_str(), value["error"].as_str())
        {
            return Ok(Self::Failed {
                scenario: scenario.to_owned(),
                error: error.to_owned(),
            });
        }
        Ok(Self::Ran(Box::new(serde_json::from_value(value)?)))
    }
}

/// The last line of a `result.json`; a missing or unreadable file is a
/// failed run.
pub fn read(path: &Path) -> Entry {
    let scenario = path.parent().and_then(Path::file_name).map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into(),
    );
    let parsed = std::fs::read_to_string(path)
        .with_context(|| format!("no result at {}", path.display()))
        .and_then(|text| {
            let line = text.lines().rev().find(|l| !l.trim().is_empty());
            Entry::parse(line.unwrap_or_default())
                .with_context(|| format!("unreadable result at {}", path.display()))
        });
    parsed.unwrap_or_else(|error| Entry::Failed {
        scenario,
        error: format!("{error:#}"),
    })
}

/// The report of `entries`, in their order.
pub fn render(entries: &[Entry]) -> String {
    let mut out = String::from(
        "| scenario | operations | faults injected | violations | max latency (ms) | max \
         latency during faults (ms) | answers during faults | duration (s) | seed | notes |\n\
         |---|---:|---:|---:|---:|---:|---|---:|---:|---|\n",
    );
    for entry in entries {
        out.push_str(&row(entry));
    }
    for entry in entries {
        if let Entry::Ran(ran) = entry {
            out.push_str(&violations(ran));
        }
    }
    out
}

fn row(entry: &Entry) -> String {
    let ran = match entry {
        Entry::Failed { scenario, error } => {
            return format!(
                "| {} | – | – | ERROR | – | – | – | – | – | {} |\n",
                cell(scenario),
                cell(error)
            );
        }
        Entry::Ran(ran) => ran,
    };
    let during: Vec<String> = ran
        .during_faults
        .iter()
        .map(|(status, n)| format!("{status}:{n}"))
        .collect();
    let during = if during.is_empty() {
        "–".to_owned()
    } else {
        during.join(" ")
    };
    format!(
        "| {}{} | {} | {} | {} | {:.0} | {:.0} | {} | {:.0} | {} | {} |\n",
        cell(&ran.scenario),
        if ran.short { " (short)" } else { "" },
        ran.operations,
        ran.faults,
        ran.violations,
        ran.max_latency_ms,
        ran.max_latency_during_faults_ms,
        during,
        ran.duration_s,
        ran.seed,
        cell(&ran.notes.join("; ")),
    )
}

/// The violations of one run: how many of each rule, then the first ones.
fn violations(ran: &Ran) -> String {
    let found = &ran.summary.violations;
    let mut out = String::new();
    if found.is_empty() {
        return out;
    }
    let mut rules: BTreeMap<&str, usize> = BTreeMap::new();
    for v in found {
        *rules.entry(&v.rule).or_default() += 1;
    }
    let counts: Vec<String> = rules.iter().map(|(r, n)| format!("{r} {n}")).collect();
    let _ = writeln!(
        out,
        "\nVIOLATIONS {} by rule: {}",
        ran.scenario,
        counts.join(", ")
    );
    for v in found.iter().take(LISTED) {
        let _ = writeln!(
            out,
            "\nVIOLATION {}: {} {}: {}",
            ran.scenario, v.rule, v.id, v.detail
        );
    }
    out
}

/// Text made safe for a table cell: a `|` would end the cell, a line break
/// the row.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        check::{Summary, Violation as Found},
        scenario::ScenarioResult,
    };

    fn result(scenario: &str, violations: Vec<Found>) -> Entry {
        let result = ScenarioResult {
            scenario: scenario.into(),
            short: true,
            seed: 42,
            requests: 1000,
            operations: 1234,
            faults: 2,
            violations: violations.len(),
            duration_s: 17.6,
            max_latency_ms: 812.4,
            max_latency_during_faults_ms: 5020.4,
            during_faults: BTreeMap::from([(503, 7), (200, 40)]),
            notes: vec!["peak RSS: api 1 49 MB".into(), "a | b".into()],
            history: "history.jsonl".into(),
            summary: Summary {
                violations,
                ..Summary::default()
            },
        };
        // Through JSON, as `scripts/chaos` hands it over.
        Entry::parse(&serde_json::to_string(&result).expect("serializes"))
            .expect("a result reads back")
    }

    #[test]
    fn a_passing_run_is_one_row() {
        let report = render(&[result("kill-worker", vec![])]);
        let lines: Vec<&str> = report.lines().collect();
        assert_eq!(lines.len(), 3, "{report}");
        assert!(lines[0].starts_with("| scenario | operations |"));
        assert_eq!(
            lines[2],
            "| kill-worker (short) | 1234 | 2 | 0 | 812 | 5020 | 200:40 503:7 | 18 | 42 | \
             peak RSS: api 1 49 MB; a \\| b |"
        );
    }

    #[test]
    fn violations_are_counted_by_rule_and_the_first_listed() {
        let found: Vec<Found> = (0..25)
            .map(|n| {
                Found::new(
                    if n < 3 { "hang" } else { "inv5-lost" },
                    format!("r{n}"),
                    "x",
                )
            })
            .collect();
        let report = render(&[result("poison", found)]);
        assert!(
            report.contains("| poison (short) | 1234 | 2 | 25 |"),
            "{report}"
        );
        assert!(
            report.contains("\nVIOLATIONS poison by rule: hang 3, inv5-lost 22\n"),
            "{report}"
        );
        assert_eq!(report.matches("\nVIOLATION poison: ").count(), LISTED);
        assert!(report.contains("\nVIOLATION poison: hang r0: x\n"));
        assert!(!report.contains("r20"));
    }

    #[test]
    fn a_run_without_a_result_is_an_error_row() {
        let dir = std::env::temp_dir().join(format!("chaos-report-{}", std::process::id()));
        let missing = dir.join("restart-mysql").join("result.json");
        let written = dir.join("overload").join("result.json");
        std::fs::create_dir_all(written.parent().expect("a parent")).expect("mkdir");
        std::fs::write(
            &written,
            "{\"scenario\":\"overload\",\"error\":\"exit 101, see chaos.log\"}\n",
        )
        .expect("write");
        let report = render(&[read(&missing), read(&written)]);
        std::fs::remove_dir_all(&dir).ok();
        let lines: Vec<&str> = report.lines().collect();
        assert!(
            lines[2].starts_with("| restart-mysql | – | – | ERROR |")
                && lines[2].contains("no result at"),
            "{report}"
        );
        assert_eq!(
            lines[3],
            "| overload | – | – | ERROR | – | – | – | – | – | exit 101, see chaos.log |"
        );
    }
}
