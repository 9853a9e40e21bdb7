//! `cargo xtask demo`: boots the newest kernel of the matrix with the agent,
//! acelogicctl and `assets/demo.sh`, and streams the guest console.

use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::kernels;
use crate::setup::{cargo_with_linker, setup};
use crate::util::{run, secs, workspace};
use crate::vm::{self, VmSpec};

/// The guest side of the demo, run as `sh /demo.sh`.
const DEMO_SH: &str = include_str!("../assets/demo.sh");
/// The line demo.sh prints when everything it showed worked.
const DEMO_OK: &str = "ACELOGIC-DEMO-OK";

/// Options of `cargo xtask demo`.
#[derive(Debug, clap::Args)]
pub(crate) struct DemoArgs {
    /// Boot the newest kernel whose label contains this (not inside a longer number: 6.1 is not 6.12).
    #[arg(long)]
    kernel: Option<String>,
    /// Seconds before the VM counts as hung.
    #[arg(long, default_value_t = 600)]
    vm_timeout: u64,
}

pub(crate) fn demo(args: &DemoArgs) -> Result<()> {
    let ready = setup()?;
    let kernel = kernels::select(ready.kernels, args.kernel.as_deref())?
        .pop()
        .context("the kernel matrix is empty")?;
    let ws = workspace()?;
    println!("demo: building acelogic-agent and acelogicctl (release)");
    run(
        cargo_with_linker()?.args(["build", "--release", "-p", "acelogic-agent", "--bins"]),
        "fix the build errors above, then run `cargo xtask demo` again",
    )?;
    let release = ws.target_dir.join("release");
    let script_dir = ws.root.join(".acelogic").join("demo");
    std::fs::create_dir_all(&script_dir)
        .with_context(|| format!("creating {}", script_dir.display()))?;
    let script = script_dir.join("demo.sh");
    std::fs::write(&script, DEMO_SH).with_context(|| format!("writing {}", script.display()))?;
    let spec = VmSpec {
        name: format!("demo-{}", kernel.label),
        kernel: kernel.clone(),
        files: vec![
            (
                release.join("acelogic-agent"),
                "/usr/bin/acelogic-agent".to_owned(),
            ),
            (
                release.join("acelogicctl"),
                "/usr/bin/acelogicctl".to_owned(),
            ),
            (script, "/demo.sh".to_owned()),
        ],
        payload: "sh /demo.sh".to_owned(),
        timeout: Duration::from_secs(args.vm_timeout),
    };
    println!(
        "demo: booting {} (QEMU TCG; the guest console follows)",
        kernel.label
    );
    let mut started = false;
    let outcome = vm::run_vm(&spec, &ws.root, |line| {
        if started {
            println!("{line}");
        }
        started |= line.contains(vm::START_MARKER);
    })?;
    println!("demo: VM finished in {}", secs(outcome.elapsed));
    let ok = vm::after_start(&outcome.lines)
        .iter()
        .any(|l| l.contains(DEMO_OK));
    let mut missing = Vec::new();
    if outcome.timed_out {
        missing.push(format!(
            "the VM did not finish within {} s (raise --vm-timeout?)",
            args.vm_timeout
        ));
    }
    if !ok {
        missing.push(format!("demo.sh never printed {DEMO_OK}"));
    }
    match outcome.exit {
        Some(0) => {}
        Some(rc) => missing.push(format!("demo.sh exited {rc} (ACELOGIC-VM-EXIT {rc})")),
        None => missing.push("the VM never printed ACELOGIC-VM-EXIT".to_owned()),
    }
    if !missing.is_empty() {
        if !started {
            for line in &outcome.lines {
                println!("{line}");
            }
        }
        bail!(
            "demo failed on {}: {}; full console log: {}",
            kernel.label,
            missing.join("; "),
            outcome.log.display()
        );
    }
    println!("demo: OK on {}", kernel.label);
    Ok(())
}
