//! `--perf-secs N`: a whole-machine CPU profile of each scenario's load
//! phase, taken with `perf record -a -g` while the load runs. Every server
//! of the pipeline shares the same cores, so the first question is which
//! process spends them; the answer goes in `<scenario>.cpu.txt` and the
//! call stacks in a flame graph (`<scenario>.svg`, when `inferno` is
//! installed: `cargo install inferno`).

use std::{
    collections::BTreeMap,
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
};

use anyhow::{Context, bail};

pub struct Recording {
    perf: Child,
    data: PathBuf,
    stem: PathBuf,
}

/// Starts sampling every CPU for `secs` seconds.
pub fn start(out: &Path, scenario: &str, secs: u64) -> anyhow::Result<Recording> {
    fs::create_dir_all(out)?;
    let slug: String = scenario
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let stem = out.join(slug.trim_matches('-'));
    let data = stem.with_extension("perf.data");
    let perf = Command::new("perf")
        .args(["record", "-F", "499", "-a", "-g", "-o"])
        .arg(&data)
        .args(["--", "sleep", &secs.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting `perf record` (apt-get install linux-perf)")?;
    Ok(Recording { perf, data, stem })
}

impl Recording {
    /// Waits for the recording, writes the per-process CPU shares and the
    /// flame graph, and returns the shares, largest first. Call it while the
    /// scenario's processes still run: threads are mapped to their process
    /// through `/proc`.
    pub fn finish(mut self) -> anyhow::Result<Vec<(String, f64)>> {
        if !self.perf.wait()?.success() {
            bail!("`perf record` failed");
        }
        let report = Command::new("perf")
            .args([
                "report",
                "--stdio",
                "--no-children",
                "--sort",
                "pid",
                "-g",
                "none",
                "-i",
            ])
            .arg(&self.data)
            .output()
            .context("running `perf report`")?;
        let shares = shares_by_process(&String::from_utf8_lossy(&report.stdout));
        let text: String = shares
            .iter()
            .map(|(process, percent)| format!("{percent:6.2}%  {process}\n"))
            .collect();
        fs::write(self.stem.with_extension("cpu.txt"), text)?;
        self.flame_graph();
        Ok(shares)
    }

    /// Best effort: the shares are the part the report needs.
    fn flame_graph(&self) {
        let svg = self.stem.with_extension("svg");
        let pipeline = format!(
            "perf script -i '{}' 2>/dev/null | inferno-collapse-perf | inferno-flamegraph > '{}'",
            self.data.display(),
            svg.display()
        );
        let made = Command::new("bash")
            .args(["-o", "pipefail", "-c", &pipeline])
            .status()
            .is_ok_and(|s| s.success());
        if !made {
            eprintln!(
                "no flame graph (is inferno installed?); the samples are in {}",
                self.data.display()
            );
            fs::remove_file(svg).ok();
        }
    }
}

/// Sums `perf report --sort pid` lines (`  12.34%  4242:thread-name`) per
/// process, naming each by its main thread's `comm`.
fn shares_by_process(report: &str) -> Vec<(String, f64)> {
    let mut shares: BTreeMap<String, f64> = BTreeMap::new();
    for line in report.lines() {
        let Some((percent, thread)) = line.trim().split_once("%") else {
            continue;
        };
        let (Ok(percent), Some((tid, name))) =
            (percent.trim().parse::<f64>(), thread.trim().split_once(':'))
        else {
            continue;
        };
        let process = process_name(tid).unwrap_or_else(|| name.trim().to_owned());
        *shares.entry(process).or_default() += percent;
    }
    let mut shares: Vec<_> = shares.into_iter().collect();
    shares.sort_by(|a, b| b.1.total_cmp(&a.1));
    shares
}

fn process_name(tid: &str) -> Option<String> {
    let status = fs::read_to_string(format!("/proc/{tid}/status")).ok()?;
    let tgid = status
        .lines()
        .find_map(|line| line.strip_prefix("Tgid:"))?
        .trim();
    let comm = fs::read_to_string(format!("/proc/{tgid}/comm")).ok()?;
    Some(comm.trim().to_owned())
}
