//! `cargo xtask bench`: the benchmark suite. Native benchmarks first
//! (verify and decide; kernel into journal; collector ingest, see
//! `tests/src/collector_bench.rs`), then kernel hook overhead
//! measured inside one VM run (`acelogic-bench`, see `tests/src/bench.rs`)
//! and reported as ratios to the no-programs baseline of the same run.
//! Prints the markdown tables and writes the results as JSON.

use std::{path::PathBuf, time::Duration};

use anyhow::{Context as _, Result, bail};

use crate::{
    kernels,
    setup::{cargo_with_linker, setup},
    util::{run, secs, workspace},
    vm::{self, VmSpec},
};

#[derive(Debug, clap::Args)]
pub(crate) struct BenchArgs {
    /// Kernel of the matrix to measure in (substring of its version);
    /// default: the newest.
    #[arg(long)]
    kernel: Option<String>,
    /// Seconds before the VM is given up on.
    #[arg(long, default_value_t = 1200)]
    vm_timeout: u64,
}

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
        bin: "acelogic-collector-bench",
        tag: "ACELOGIC-BENCH-COLLECTOR ",
        json: "collector.json",
        what: "collector ingest (gRPC on loopback, chain verification, SQLite)",
    },
];

/// Builds and runs one native benchmark; prints its table and writes its
/// JSON.
fn native(target: &std::path::Path, out_dir: &std::path::Path, bench: &Native) -> Result<()> {
    run(
        cargo_with_linker()?.args(["build", "--release", "-p", "acelogic-tests", "--bin", bench.bin]),
        &format!("building {}", bench.bin),
    )?;
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
    let path = out_dir.join(bench.json);
    std::fs::write(&path, serde_json::to_string_pretty(&doc)?)?;
    println!("bench: wrote {}", path.display());
    Ok(())
}

pub(crate) fn bench(args: &BenchArgs) -> Result<()> {
    let ready = setup()?;
    let mut matrix = kernels::select(ready.kernels, args.kernel.as_deref())?;
    let kernel = matrix.pop().context("no kernel in the matrix")?;
    let ws = workspace()?;
    run(
        cargo_with_linker()?.args([
            "build",
            "--release",
            "-p",
            "acelogic-tests",
            "--bin",
            "acelogic-bench",
        ]),
        "building acelogic-bench",
    )?;
    let out_dir: PathBuf = ws.target_dir.join("acelogic-bench");
    std::fs::create_dir_all(&out_dir)?;
    for bench in NATIVE {
        native(&ws.target_dir, &out_dir, bench)?;
    }

    let bin = ws.target_dir.join("release/acelogic-bench");
    let spec = VmSpec {
        name: format!("bench-{}", kernel.label),
        kernel: kernel.clone(),
        files: vec![(bin, "/acelogic-bench".to_owned())],
        payload: "/acelogic-bench".to_owned(),
        timeout: Duration::from_secs(args.vm_timeout),
    };
    println!(
        "bench: kernel hook overhead in a {} VM (QEMU TCG; compare ratios, not times)",
        kernel.label
    );
    let outcome = vm::run_vm(&spec, &ws.root, |_| {})?;
    let lines = vm::after_start(&outcome.lines);
    let mut results = Vec::new();
    for line in lines {
        if line.starts_with('|') {
            println!("{line}");
        } else if let Some(json) = line.strip_prefix("ACELOGIC-BENCH ") {
            let v: serde_json::Value =
                serde_json::from_str(json).with_context(|| format!("bench output {json}"))?;
            results.push(v);
        } else if line.starts_with("acelogic-bench failed") || line.starts_with("record: ") {
            println!("{line}");
        }
    }
    if results.is_empty() || outcome.exit != Some(0) {
        for l in lines {
            println!("  vm| {l}");
        }
        bail!(
            "the benchmark did not complete (log: {})",
            outcome.log.display()
        );
    }
    println!(
        "targets: loaded-but-ungoverned <= 1.02x, governed allowed <= 1.10x; measured in {}",
        secs(outcome.elapsed)
    );
    let path = out_dir.join("kernel-hooks.json");
    let doc = serde_json::json!({ "kernel": kernel.label, "results": results });
    std::fs::write(&path, serde_json::to_string_pretty(&doc)?)?;
    println!("bench: wrote {}", path.display());
    Ok(())
}
