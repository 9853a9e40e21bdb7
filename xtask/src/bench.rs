//! `cargo xtask bench`: the benchmark suite. Native benchmarks first
//! (verify and decide; kernel into journal; collector ingest), then two VM
//! runs (`acelogic-bench`, see `tests/src/bench/`): kernel hook overhead
//! beside the kernel's own Landlock and AppArmor and beside a floor of
//! programs that return at once, first in a guest whose clock counts
//! instructions (the figures the targets are judged on), then in a plain
//! TCG guest (wall-clock ratios, and the submit-to-enforced latency with
//! the real daemon). Every result is a ratio to a baseline of the same
//! run; no target is judged when the machine was loaded at the start. Prints each benchmark's tables, then one combined table;
//! writes each benchmark's JSON and `summary.json` (every row plus the
//! machine), and rewrites the results section of `docs/benchmarks.md`
//! (between its marker lines) with the machine line and the combined
//! table. `--render-only SUMMARY_JSON` does only that last step.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context as _, Result, bail};

use crate::{
    kernels,
    setup::setup,
    summary::{self, Machine},
    test::cargo_build,
    util::{secs, workspace},
    vm::{self, VmSpec},
};

#[derive(Debug, clap::Args)]
pub(crate) struct BenchArgs {
    /// Kernel of the matrix to measure in (substring of its version);
    /// default: the newest.
    #[arg(long)]
    kernel: Option<String>,
    /// Seconds before the VM is given up on.
    #[arg(long, default_value_t = 1800)]
    vm_timeout: u64,
    /// Skip the native benchmarks (verify and decide, journal, cluster
    /// store, collector);
    /// the combined table then takes their rows from the JSON of an
    /// earlier run, when there is one.
    #[arg(long)]
    skip_native: bool,
    /// Skip the VM benchmarks (kernel hooks, peers, submit to enforced).
    #[arg(long)]
    skip_vm: bool,
    /// Skip the wall-clock VM run (its hook ratios and the submit-to-enforced
    /// latency); the instruction-count run still happens.
    #[arg(long)]
    skip_wall: bool,
    /// Interleaved rounds per configuration in each VM run, after one
    /// warm-up round that is not counted.
    #[arg(long, default_value_t = 7)]
    rounds: usize,
    /// Submit-to-enforced iterations in the VM.
    #[arg(long, default_value_t = 50)]
    submit_iterations: usize,
    /// Run no benchmark: rewrite the results section of
    /// `docs/benchmarks.md` from the `summary.json` of an earlier run
    /// (e.g. `target/acelogic-bench/summary.json`).
    #[arg(
        long,
        value_name = "SUMMARY_JSON",
        conflicts_with_all = ["kernel", "skip_native", "skip_vm"]
    )]
    render_only: Option<PathBuf>,
}

/// The page whose results section (between `summary::BEGIN_MARKER` and
/// `summary::END_MARKER`) a complete run rewrites; the text around the
/// markers is hand-written and left alone.
const DOCS_PAGE: &str = "docs/benchmarks.md";

/// A benchmark binary run natively on this machine: its name, the prefix
/// of its JSON result line, the file the result goes to, and what it
/// measures.
struct Native {
    bin: &'static str,
    tag: &'static str,
    json: &'static str,
    what: &'static str,
}

const NATIVE: &[Native] = &[
    Native {
        bin: "acelogic-authz-bench",
        tag: "ACELOGIC-BENCH-AUTHZ ",
        json: "authz.json",
        what: "verify and decide",
    },
    Native {
        bin: "acelogic-journal-bench",
        tag: "ACELOGIC-BENCH-JOURNAL ",
        json: "journal.json",
        what: "kernel into journal (host tracepoints; needs root)",
    },
    Native {
        bin: "acelogic-cluster-bench",
        tag: "ACELOGIC-BENCH-CLUSTER ",
        json: "cluster.json",
        what: "cluster claims (a real etcd on loopback)",
    },
    Native {
        bin: "acelogic-collector-bench",
        tag: "ACELOGIC-BENCH-COLLECTOR ",
        json: "collector.json",
        what: "collector ingest (gRPC on loopback, chain verification, SQLite)",
    },
];

/// What the VM benchmarks print: (line prefix, JSON file).
const VM_DOCS: [(&str, &str); 3] = [
    ("ACELOGIC-BENCH-HOOKS ", "kernel-hooks.json"),
    ("ACELOGIC-BENCH-HOOKS-WALL ", "kernel-hooks-wall.json"),
    ("ACELOGIC-BENCH-SUBMIT ", "submit.json"),
];

/// Writes `doc` as pretty JSON to `out_dir/name`.
fn write_json(out_dir: &Path, name: &str, doc: &serde_json::Value) -> Result<()> {
    let path = out_dir.join(name);
    std::fs::write(&path, serde_json::to_string_pretty(doc)?)
        .with_context(|| format!("writing {}", path.display()))?;
    println!("bench: wrote {}", path.display());
    Ok(())
}

/// Builds and runs one native benchmark; prints its table, writes its
/// JSON and returns it.
fn native(target: &Path, out_dir: &Path, bench: &Native) -> Result<serde_json::Value> {
    cargo_build(&["-p", "acelogic-tests", "--bin", bench.bin])
        .map_err(|e| anyhow::anyhow!("building {}: {e}", bench.bin))?;
    println!("bench: {}, natively on this machine", bench.what);
    let out = std::process::Command::new(target.join("release").join(bench.bin))
        .output()
        .with_context(|| format!("running {}", bench.bin))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut doc = None;
    for line in text.lines() {
        if let Some(json) = line.strip_prefix(bench.tag) {
            doc = Some(serde_json::from_str::<serde_json::Value>(json)?);
        } else {
            println!("{line}");
        }
    }
    let doc = doc.with_context(|| {
        format!(
            "{} did not finish: {}",
            bench.bin,
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    write_json(out_dir, bench.json, &doc)?;
    Ok(doc)
}

/// Rewrites the results section of `root/docs/benchmarks.md` with the
/// machine line and the combined table of `rows`. `summary_json` is where
/// the same results are, for the error message.
fn write_docs(
    root: &Path,
    machine_line: &str,
    rows: &[serde_json::Value],
    summary_json: &Path,
    not_judged: Option<&str>,
) -> Result<()> {
    let path = root.join(DOCS_PAGE);
    let page =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let section = summary::section(machine_line, rows, not_judged);
    let page = summary::splice(&page, &section).with_context(|| {
        format!(
            "rewriting the results section of {} (the results are kept in {}; fix the page, then \
             run `cargo xtask bench --render-only {}`)",
            path.display(),
            summary_json.display(),
            summary_json.display()
        )
    })?;
    std::fs::write(&path, page).with_context(|| format!("writing {}", path.display()))?;
    println!("bench: rewrote the results section of {}", path.display());
    Ok(())
}

/// `--render-only`: the results section of `docs/benchmarks.md` from an
/// earlier run's `summary.json`, no benchmark run.
fn render_only(summary_json: &Path) -> Result<()> {
    let text = std::fs::read_to_string(summary_json)
        .with_context(|| format!("reading {}", summary_json.display()))?;
    let doc: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("parsing {}", summary_json.display()))?;
    let written_by = || {
        format!(
            "{} has no `machine_line` string and `rows` array: is it a `summary.json` written by \
             `cargo xtask bench`?",
            summary_json.display()
        )
    };
    let line = doc["machine_line"].as_str().with_context(written_by)?;
    let rows = doc["rows"].as_array().with_context(written_by)?;
    let not_judged = doc["targets_not_judged"].as_str();
    print!("{}", summary::table(rows, not_judged));
    println!();
    println!("Machine: {line}");
    write_docs(&workspace()?.root, line, rows, summary_json, not_judged)
}

pub(crate) fn bench(args: &BenchArgs) -> Result<()> {
    if let Some(summary_json) = &args.render_only {
        return render_only(summary_json);
    }
    let machine = Machine::probe();
    let not_judged = machine.overloaded();
    if let Some(why) = &not_judged {
        println!("bench: {why}: the figures are printed, but no target is judged on this run");
    }
    let ready = setup()?;
    let ws = workspace()?;
    let out_dir: PathBuf = ws.target_dir.join("acelogic-bench");
    std::fs::create_dir_all(&out_dir)?;
    let mut docs = Vec::new();
    if args.skip_native {
        for bench in NATIVE {
            let path = out_dir.join(bench.json);
            if let Ok(text) = std::fs::read_to_string(&path) {
                println!(
                    "bench: {} skipped (--skip-native); its rows come from the earlier run in {}",
                    bench.bin,
                    path.display()
                );
                docs.push(serde_json::from_str(&text).with_context(|| path.display().to_string())?);
            } else {
                println!("bench: {} skipped (--skip-native)", bench.bin);
            }
        }
    } else {
        for bench in NATIVE {
            docs.push(native(&ws.target_dir, &out_dir, bench)?);
        }
    }
    let mut vm_kernel = None;
    let mut vm_failure = None;
    if args.skip_vm {
        println!("bench: VM benchmark skipped (--skip-vm)");
    } else {
        let mut matrix = kernels::select(ready.kernels, args.kernel.as_deref())?;
        let kernel = matrix.pop().context("no kernel in the matrix")?;
        vm_kernel = Some(kernel.label.clone());
        let clocks: &[vm::Clock] = if args.skip_wall {
            println!("bench: wall-clock VM run skipped (--skip-wall)");
            &[vm::Clock::Instructions]
        } else {
            &[vm::Clock::Instructions, vm::Clock::Wall]
        };
        for clock in clocks {
            let vm_run = in_vm(args, &kernel, *clock, &ws.root, &ws.target_dir)?;
            for (name, doc) in &vm_run.docs {
                write_json(&out_dir, name, doc)?;
            }
            docs.extend(vm_run.docs.into_iter().map(|(_, d)| d));
            if vm_run.failure.is_some() {
                vm_failure = vm_run.failure;
                break;
            }
        }
    }

    let rows: Vec<serde_json::Value> = docs.iter().flat_map(summary::rows_of).collect();
    let line = machine.line(vm_kernel.as_deref());
    println!();
    println!("## Combined results");
    println!();
    print!("{}", summary::table(&rows, not_judged.as_deref()));
    println!();
    println!("Machine: {line}");
    if let Some(why) = &not_judged {
        println!("Targets not judged: {why}.");
    }
    write_json(
        &out_dir,
        "summary.json",
        &serde_json::json!({
            "machine": machine.json(vm_kernel.as_deref()),
            "machine_line": line,
            "targets_not_judged": not_judged,
            "rows": rows,
        }),
    )?;
    if let Some(why) = vm_failure {
        bail!("{why} ({DOCS_PAGE} was not rewritten)");
    }
    // Only a table with every benchmark's rows replaces the published one
    // (with --skip-native the native rows of an earlier run count).
    if docs.len() == NATIVE.len() + VM_DOCS.len() {
        write_docs(
            &ws.root,
            &line,
            &rows,
            &out_dir.join("summary.json"),
            not_judged.as_deref(),
        )?;
    } else {
        println!(
            "bench: {DOCS_PAGE} not rewritten: the combined table lacks some benchmarks' rows \
             (--skip-vm, --skip-wall, or --skip-native with no earlier run to take them from)"
        );
    }
    Ok(())
}

/// What the VM run produced: JSON documents by file name, and why it did
/// not finish, if it did not (what it measured before is kept).
struct VmRun {
    docs: Vec<(&'static str, serde_json::Value)>,
    failure: Option<String>,
}

/// Builds what the guest needs, boots `kernel` with `clock` and runs
/// `acelogic-bench`: the hooks under either clock, the submit latency only
/// under the wall clock (with idle time skipped, waits on the disk and
/// on timers would not count). Returns its JSON documents (named by file)
/// and, when it did not finish, why (what it measured before is still
/// returned).
fn in_vm(
    args: &BenchArgs,
    kernel: &kernels::Kernel,
    clock: vm::Clock,
    root: &Path,
    target: &Path,
) -> Result<VmRun> {
    cargo_build(&["-p", "acelogic-tests", "--bin", "acelogic-bench"])
        .map_err(|e| anyhow::anyhow!("building acelogic-bench: {e}"))?;
    cargo_build(&[
        "-p",
        "acelogic-agent",
        "-p",
        "acelogicctl",
        "-p",
        "acelogic-authority",
        "--bins",
    ])
    .map_err(|e| {
        anyhow::anyhow!("building acelogic-agent, acelogicctl and acelogic-authority: {e}")
    })?;
    let parser = kernels::host_package("apparmor")?.join("sbin/apparmor_parser");
    if !parser.is_file() {
        bail!(
            "{} is missing from the extracted Debian package `apparmor`",
            parser.display()
        );
    }
    let release = target.join("release");
    let (name, payload, expected) = match clock {
        vm::Clock::Instructions => (
            format!("bench-icount-{}", kernel.label),
            format!(
                "/acelogic-bench --apparmor-parser /usr/sbin/apparmor_parser --rounds {} \
                 --clock instructions --skip-submit",
                args.rounds
            ),
            1,
        ),
        vm::Clock::Wall => (
            format!("bench-{}", kernel.label),
            format!(
                "/acelogic-bench --apparmor-parser /usr/sbin/apparmor_parser --rounds {} \
                 --clock wall --submit-iterations {}",
                args.rounds, args.submit_iterations
            ),
            2,
        ),
    };
    let spec = VmSpec {
        name,
        kernel: kernel.clone(),
        files: vec![
            (release.join("acelogic-bench"), "/acelogic-bench".to_owned()),
            (
                release.join("acelogic-agent"),
                "/usr/bin/acelogic-agent".to_owned(),
            ),
            (
                release.join("acelogicctl"),
                "/usr/bin/acelogicctl".to_owned(),
            ),
            (
                release.join("acelogic-authority"),
                "/usr/bin/acelogic-authority".to_owned(),
            ),
            (parser, "/usr/sbin/apparmor_parser".to_owned()),
        ],
        payload,
        timeout: Duration::from_secs(args.vm_timeout),
        clock,
    };
    match clock {
        vm::Clock::Instructions => println!(
            "bench: kernel hooks beside a floor, Landlock and AppArmor in a {} VM whose clock \
             counts instructions (QEMU TCG, one vCPU, -icount shift=0,sleep=off; 1 ns = 1 guest \
             instruction)",
            kernel.label
        ),
        vm::Clock::Wall => println!(
            "bench: the same by the wall clock, and submit to enforced, in a {} VM (QEMU TCG, two \
             vCPUs; compare ratios, not times)",
            kernel.label
        ),
    }
    let outcome = vm::run_vm(&spec, root, |_| {})?;
    let lines = vm::after_start(&outcome.lines);
    let mut docs = Vec::new();
    for line in lines {
        if let Some((tag, name)) = VM_DOCS.iter().find(|(tag, _)| line.starts_with(tag)) {
            let json = &line[tag.len()..];
            let v: serde_json::Value =
                serde_json::from_str(json).with_context(|| format!("bench output {json}"))?;
            docs.push((*name, v));
        } else if line.starts_with('|')
            || line.is_empty()
            || [
                "acelogic-bench failed",
                "record: ",
                "hooks: ",
                "peer: ",
                "submit to enforced: ",
                "records drained",
            ]
            .iter()
            .any(|p| line.starts_with(p))
        {
            println!("{line}");
        }
    }
    let failure = if docs.len() < expected || outcome.exit != Some(0) {
        for l in lines {
            println!("  vm| {l}");
        }
        Some(format!(
            "the VM benchmark did not complete (log: {})",
            outcome.log.display()
        ))
    } else {
        println!("bench: the VM run took {}", secs(outcome.elapsed));
        None
    };
    Ok(VmRun { docs, failure })
}
