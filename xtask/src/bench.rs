//! `cargo xtask bench`: the benchmark suite. Natively: verify-and-decide
//! (`acelogic-authz-bench`) and collector ingest (`acelogic-collector-bench`,
//! see `tests/src/collector_bench.rs`); then kernel hook overhead,
//! measured inside one VM run (`acelogic-bench`, see `tests/src/bench.rs`)
//! and reported as ratios to the no-programs baseline of the same run.
//! Prints the markdown table and writes the results as JSON.

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

/// Runs a native benchmark binary: prints its table, returns the JSON it
/// reports on the line starting with `tag`.
fn native(bin: &std::path::Path, tag: &str) -> Result<serde_json::Value> {
    let out = std::process::Command::new(bin)
        .output()
        .with_context(|| format!("running {}", bin.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut doc = None;
    for line in text.lines() {
        if let Some(json) = line.strip_prefix(tag) {
            doc = Some(serde_json::from_str::<serde_json::Value>(json)?);
        } else {
            println!("{line}");
        }
    }
    doc.with_context(|| {
        format!(
            "{} did not finish: {}",
            bin.display(),
            String::from_utf8_lossy(&out.stderr)
        )
    })
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
    run(
        cargo_with_linker()?.args([
            "build",
            "--release",
            "-p",
            "acelogic-tests",
            "--bin",
            "acelogic-authz-bench",
            "--bin",
            "acelogic-collector-bench",
        ]),
        "building acelogic-authz-bench and acelogic-collector-bench",
    )?;
    println!("bench: verify and decide, natively on this machine");
    let authz = native(
        &ws.target_dir.join("release/acelogic-authz-bench"),
        "ACELOGIC-BENCH-AUTHZ ",
    )?;
    let out_dir: PathBuf = ws.target_dir.join("acelogic-bench");
    std::fs::create_dir_all(&out_dir)?;
    std::fs::write(
        out_dir.join("authz.json"),
        serde_json::to_string_pretty(&authz)?,
    )?;
    println!("bench: wrote {}", out_dir.join("authz.json").display());

    println!("bench: collector ingest, natively on this machine (gRPC on loopback)");
    let collector = native(
        &ws.target_dir.join("release/acelogic-collector-bench"),
        "ACELOGIC-BENCH-COLLECTOR ",
    )?;
    std::fs::write(
        out_dir.join("collector.json"),
        serde_json::to_string_pretty(&collector)?,
    )?;
    println!("bench: wrote {}", out_dir.join("collector.json").display());

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
