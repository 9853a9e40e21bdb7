//! The combined result of `cargo xtask bench`: every benchmark's
//! `summary` rows (see `tests/src/summary.rs`: value, same-run baseline,
//! target) judged and rendered as one markdown table, plus the machine
//! they were measured on, written to `summary.json` and spliced into
//! `docs/benchmarks.md` between its marker lines.

use std::process::Command;

use anyhow::{Result, bail};
use serde_json::{Value, json};

use crate::util::kernel_release;

/// Where and when the numbers were taken.
#[derive(Debug, Clone)]
pub(crate) struct Machine {
    cpu: String,
    cores: usize,
    memory_gib: f64,
    host_kernel: String,
    /// Load average (1, 5, 15 min) when the benchmarks started: other
    /// work on the machine shows here.
    load: String,
    date: String,
    commit: String,
}

impl Machine {
    /// Reads the machine now (call before the benchmarks run: the load
    /// average is the other work on it).
    pub(crate) fn probe() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
        Self {
            cpu: cpu_model(&cpuinfo).unwrap_or_else(|| "unknown CPU".to_owned()),
            cores: std::thread::available_parallelism().map_or(0, usize::from),
            memory_gib: mem_total_gib(&meminfo).unwrap_or(f64::NAN),
            host_kernel: kernel_release(),
            load: load
                .split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" "),
            date: output(Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"]))
                .unwrap_or_else(|| "unknown date".to_owned()),
            commit: commit(),
        }
    }

    /// One line for `docs/benchmarks.md`: CPU, cores, memory, kernels, load,
    /// date, commit.
    pub(crate) fn line(&self, vm_kernel: Option<&str>) -> String {
        format!(
            "{}, {} cores, {:.1} GiB; host kernel {}; VM kernel {} (QEMU TCG); load average at \
             start {}; {}; commit {}",
            self.cpu,
            self.cores,
            self.memory_gib,
            self.host_kernel,
            vm_kernel.unwrap_or("not run"),
            self.load,
            self.date,
            self.commit
        )
    }

    /// Why targets cannot be judged on this run: the load average at the
    /// start was above the number of cores, so the benchmark shared the
    /// machine with other work.
    pub(crate) fn overloaded(&self) -> Option<String> {
        let load1: f64 = self.load.split_whitespace().next()?.parse().ok()?;
        #[expect(clippy::cast_precision_loss, reason = "a core count")]
        let cores = self.cores as f64;
        (self.cores == 0 || load1 > cores).then(|| {
            format!(
                "the load average at start ({load1:.2}) was above the machine's {} cores",
                self.cores
            )
        })
    }

    pub(crate) fn json(&self, vm_kernel: Option<&str>) -> Value {
        json!({
            "cpu": self.cpu,
            "cores": self.cores,
            "memory_gib": self.memory_gib,
            "host_kernel": self.host_kernel,
            "vm_kernel": vm_kernel,
            "load_average_at_start": self.load,
            "date": self.date,
            "commit": self.commit,
        })
    }
}

fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

/// The commit measured, marked when the work tree had changes.
fn commit() -> String {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let Some(head) =
        output(
            Command::new("git")
                .arg("-C")
                .arg(&root)
                .args(["rev-parse", "--short=12", "HEAD"]),
        )
    else {
        return "unknown".to_owned();
    };
    let dirty = output(Command::new("git").arg("-C").arg(&root).args([
        "status",
        "--porcelain",
        "--untracked-files=no",
    ]))
    .is_some_and(|s| !s.is_empty());
    if dirty {
        format!("{head} (with uncommitted changes)")
    } else {
        head
    }
}

fn cpu_model(cpuinfo: &str) -> Option<String> {
    cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|rest| rest.split_once(':'))
        .map(|(_, v)| v.split_whitespace().collect::<Vec<_>>().join(" "))
}

fn mem_total_gib(meminfo: &str) -> Option<f64> {
    let kib: f64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kib / (1024.0 * 1024.0))
}

/// The `summary` rows of a benchmark's JSON document.
pub(crate) fn rows_of(doc: &Value) -> Vec<Value> {
    doc["summary"].as_array().cloned().unwrap_or_default()
}

/// Whether a row meets its target; `None` without one.
pub(crate) fn met(row: &Value) -> Option<bool> {
    let target = row["target"].as_object()?;
    let limit = target.get("value")?.as_f64()?;
    let value = row["value"].as_f64()?;
    match target.get("kind")?.as_str()? {
        "max" => Some(value <= limit),
        "min" => Some(value >= limit),
        "max_ratio" => Some(row["ratio"].as_f64()? <= limit),
        _ => None,
    }
}

/// `1234567.8` → `1,234,568`.
fn grouped(v: f64) -> String {
    #[expect(
        clippy::cast_possible_truncation,
        reason = "a displayed count, far below i64::MAX"
    )]
    let n = v.round() as i64;
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

/// A value in its unit, scaled for reading: `ns` as ns/µs/ms/s, `/s` as
/// a grouped count per second.
pub(crate) fn fmt_value(v: f64, unit: &str) -> String {
    if !v.is_finite() {
        return "n/a".to_owned();
    }
    match unit {
        "ns" if v >= 1e9 => format!("{:.2} s", v / 1e9),
        "ns" if v >= 1e6 => format!("{:.2} ms", v / 1e6),
        "ns" if v >= 1e3 => format!("{:.1} µs", v / 1e3),
        "ns" => format!("{v:.0} ns"),
        "/s" => format!("{}/s", grouped(v)),
        other => format!("{v} {other}"),
    }
}

fn fmt_target(row: &Value) -> String {
    let unit = row["unit"].as_str().unwrap_or_default();
    let t = &row["target"];
    let (Some(kind), Some(v)) = (t["kind"].as_str(), t["value"].as_f64()) else {
        return String::new();
    };
    match kind {
        "max" => format!("≤ {}", fmt_value(v, unit)),
        "min" => format!("≥ {}", fmt_value(v, unit)),
        "max_ratio" => format!("≤ {v:.2}x"),
        other => format!("{other} {v}"),
    }
}

/// The combined markdown table.
/// `not_judged`: why no target is called met or missed on this run.
pub(crate) fn table(rows: &[Value], not_judged: Option<&str>) -> String {
    let mut out = String::from(
        "| benchmark | measure | value | baseline (same run) | ratio | target | met? |\n\
         |---|---|---|---|---|---|---|\n",
    );
    for row in rows {
        let unit = row["unit"].as_str().unwrap_or_default();
        let value = row["value"].as_f64().unwrap_or(f64::NAN);
        let baseline = match (
            row["baseline"]["name"].as_str(),
            row["baseline"]["value"].as_f64(),
        ) {
            (Some(name), Some(v)) => format!("{name}: {}", fmt_value(v, unit)),
            _ => "–".to_owned(),
        };
        let ratio = row["ratio"]
            .as_f64()
            .map_or_else(|| "–".to_owned(), |r| format!("{r:.2}x"));
        let met = match (met(row), not_judged) {
            (Some(_), Some(_)) => "not judged",
            (Some(true), None) => "yes",
            (Some(false), None) => "**no**",
            (None, _) => "–",
        };
        let value = match (row["spread"]["min"].as_f64(), row["spread"]["max"].as_f64()) {
            (Some(min), Some(max)) => format!(
                "{} [{}–{}]",
                fmt_value(value, unit),
                fmt_value(min, unit),
                fmt_value(max, unit)
            ),
            _ => fmt_value(value, unit),
        };
        let target = fmt_target(row);
        out.push_str(&format!(
            "| {} | {} | {value} | {baseline} | {ratio} | {} | {met} |\n",
            row["benchmark"].as_str().unwrap_or_default(),
            row["measure"].as_str().unwrap_or_default(),
            if target.is_empty() { "–" } else { &target },
        ));
    }
    out
}

/// The line after which `docs/benchmarks.md` holds the generated results.
pub(crate) const BEGIN_MARKER: &str = "<!-- bench:begin -->";
/// The line before which the generated results end.
pub(crate) const END_MARKER: &str = "<!-- bench:end -->";

/// What goes between the markers: the machine line and the combined
/// table, as `cargo xtask bench` prints them, with a blank line around.
pub(crate) fn section(machine_line: &str, rows: &[Value], not_judged: Option<&str>) -> String {
    let judged = not_judged.map_or_else(String::new, |why| {
        format!("Targets not judged on this run: {why}.\n\n")
    });
    format!(
        "\nMachine: {machine_line}\n\n{judged}{}\n",
        table(rows, not_judged)
    )
}

/// The byte range of the one line of `doc` that is `marker` (surrounding
/// whitespace allowed), its line ending included.
fn marker_line(doc: &str, marker: &str) -> Result<(usize, usize)> {
    let mut found = Vec::new();
    let mut start = 0;
    for line in doc.split_inclusive('\n') {
        if line.trim() == marker {
            found.push((start, start + line.len()));
        }
        start += line.len();
    }
    match found.as_slice() {
        [one] => Ok(*one),
        [] => bail!(
            "no line `{marker}`: the generated results go between a line `{BEGIN_MARKER}` and a \
             line `{END_MARKER}`; add both where the results belong"
        ),
        more => bail!(
            "{} lines `{marker}`, expected one (the generated results go between one \
             `{BEGIN_MARKER}` line and one `{END_MARKER}` line)",
            more.len()
        ),
    }
}

/// `doc` with everything between its marker lines replaced by `section`;
/// the marker lines and the text around them are kept as they are.
pub(crate) fn splice(doc: &str, section: &str) -> Result<String> {
    let (_, after_begin) = marker_line(doc, BEGIN_MARKER)?;
    let (before_end, _) = marker_line(doc, END_MARKER)?;
    if before_end < after_begin {
        bail!("the line `{END_MARKER}` comes before the line `{BEGIN_MARKER}`");
    }
    let mut out = String::with_capacity(doc.len() + section.len());
    out.push_str(&doc[..after_begin]);
    out.push_str(section);
    if !section.ends_with('\n') {
        out.push('\n');
    }
    out.push_str(&doc[before_end..]);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(value: f64, ratio: Option<f64>, target: &Value) -> Value {
        json!({
            "benchmark": "b", "measure": "m", "value": value, "unit": "ns",
            "baseline": ratio.map(|r| json!({"name": "base", "value": value / r})),
            "ratio": ratio, "target": target,
        })
    }

    #[test]
    fn judges_each_kind_of_target() {
        let max_ratio = json!({"kind": "max_ratio", "value": 1.10});
        assert_eq!(met(&row(110.0, Some(1.10), &max_ratio)), Some(true));
        assert_eq!(met(&row(111.0, Some(1.11), &max_ratio)), Some(false));
        let max = json!({"kind": "max", "value": 1e6});
        assert_eq!(met(&row(264_600.0, None, &max)), Some(true));
        assert_eq!(met(&row(1_000_001.0, None, &max)), Some(false));
        let min = json!({"kind": "min", "value": 100_000.0});
        assert_eq!(met(&row(213_852.0, None, &min)), Some(true));
        assert_eq!(met(&row(73_859.0, None, &min)), Some(false));
        assert_eq!(met(&row(1.0, None, &Value::Null)), None);
        assert_eq!(
            met(&row(1.0, None, &json!({"kind": "max_ratio", "value": 1.0}))),
            None
        );
    }

    #[test]
    fn formats_values_in_their_units() {
        assert_eq!(fmt_value(165_554.0, "ns"), "165.6 µs");
        assert_eq!(fmt_value(34_900_454.0, "ns"), "34.90 ms");
        assert_eq!(fmt_value(2.5e9, "ns"), "2.50 s");
        assert_eq!(fmt_value(812.4, "ns"), "812 ns");
        assert_eq!(fmt_value(8_269_667.4, "/s"), "8,269,667/s");
        assert_eq!(fmt_value(999.0, "/s"), "999/s");
        assert_eq!(fmt_value(f64::NAN, "ns"), "n/a");
    }

    #[test]
    fn renders_one_line_per_row() {
        let rows = [
            row(
                110.0,
                Some(1.1),
                &json!({"kind": "max_ratio", "value": 1.02}),
            ),
            json!({"benchmark": "c", "measure": "rate", "value": 73_859.0, "unit": "/s",
                   "baseline": null, "ratio": null,
                   "target": {"kind": "min", "value": 100_000.0}}),
        ];
        let t = table(&rows, None);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(
            lines[2],
            "| b | m | 110 ns | base: 100 ns | 1.10x | ≤ 1.02x | **no** |"
        );
        assert_eq!(
            lines[3],
            "| c | rate | 73,859/s | – | – | ≥ 100,000/s | **no** |"
        );
    }

    #[test]
    fn shows_the_spread_and_judges_nothing_on_a_loaded_machine() {
        let mut r = row(
            110.0,
            Some(1.1),
            &json!({"kind": "max_ratio", "value": 1.02}),
        );
        r["spread"] = json!({"min": 100.0, "max": 130.0});
        let t = table(std::slice::from_ref(&r), Some("busy"));
        assert_eq!(
            t.lines().nth(2),
            Some(
                "| b | m | 110 ns [100 ns–130 ns] | base: 100 ns | 1.10x | ≤ 1.02x | not judged |"
            )
        );
        let s = section("m", &[r], Some("load 3.00 above 2 cores"));
        assert!(s.contains("Targets not judged on this run: load 3.00 above 2 cores."));
        let machine = |load: &str, cores| Machine {
            cpu: String::new(),
            cores,
            memory_gib: 1.0,
            host_kernel: String::new(),
            load: load.to_owned(),
            date: String::new(),
            commit: String::new(),
        };
        assert_eq!(machine("1.99 3.00 4.00", 2).overloaded(), None);
        assert_eq!(machine("2.00 3.00 4.00", 2).overloaded(), None);
        assert!(
            machine("2.01 0.1 0.1", 2)
                .overloaded()
                .is_some_and(|w| w.contains("(2.01)") && w.contains("2 cores"))
        );
    }

    #[test]
    fn splices_between_the_markers_only() {
        let doc = "# Benchmarks\n\nhand-written\n<!-- bench:begin -->\nold\ntable\n\
                   <!-- bench:end -->\n\nafter\n";
        let out = splice(doc, "\nnew\n").unwrap();
        assert_eq!(
            out,
            "# Benchmarks\n\nhand-written\n<!-- bench:begin -->\n\nnew\n<!-- bench:end -->\n\nafter\n"
        );
        assert_eq!(splice(&out, "\nnew\n").unwrap(), out, "idempotent");
        let empty = splice("<!-- bench:begin -->\n<!-- bench:end -->", "x").unwrap();
        assert_eq!(empty, "<!-- bench:begin -->\nx\n<!-- bench:end -->");
    }

    #[test]
    fn refuses_missing_duplicate_or_reversed_markers() {
        let err = splice("text\n<!-- bench:end -->\n", "x").unwrap_err();
        assert!(
            err.to_string().contains("no line `<!-- bench:begin -->`"),
            "{err}"
        );
        let err = splice("<!-- bench:begin -->\ntext\n", "x").unwrap_err();
        assert!(
            err.to_string().contains("no line `<!-- bench:end -->`"),
            "{err}"
        );
        let twice = "<!-- bench:begin -->\n<!-- bench:begin -->\n<!-- bench:end -->\n";
        assert!(
            splice(twice, "x")
                .unwrap_err()
                .to_string()
                .contains("2 lines")
        );
        let reversed = "<!-- bench:end -->\n<!-- bench:begin -->\n";
        assert!(
            splice(reversed, "x")
                .unwrap_err()
                .to_string()
                .contains("comes before")
        );
    }

    #[test]
    fn section_is_the_machine_line_and_the_table() {
        let s = section("a machine", &[], None);
        assert!(
            s.starts_with("\nMachine: a machine\n\n| benchmark |"),
            "{s}"
        );
        assert!(s.ends_with("|---|---|---|---|---|---|---|\n\n"), "{s}");
    }

    #[test]
    fn reads_cpu_and_memory() {
        let cpuinfo = "processor\t: 0\nmodel name\t: AMD EPYC  7B13\nflags\t: x\n";
        assert_eq!(cpu_model(cpuinfo).as_deref(), Some("AMD EPYC 7B13"));
        let mem = mem_total_gib("MemTotal:        8388608 kB\nMemFree: 1 kB\n");
        assert_eq!(mem, Some(8.0));
    }
}
