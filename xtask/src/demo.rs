//! `cargo xtask demo`: boots the newest kernel of the matrix with the node
//! daemon, the collector, acelogicctl, etcd and the demo's assets
//! (`assets/demo/`: the script, the agent runtime, the stand-in commands
//! and the policies), and streams the guest console.

use std::{
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context, Result, bail};

use crate::kernels::{self, Kernel};
use crate::setup::{cargo_with_linker, setup};
use crate::util::{run, secs, workspace};
use crate::vm::{self, VmSpec};

/// The demo's files: (name in `assets/demo/`, path in the guest, contents).
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "demo.sh",
        "/demo/demo.sh",
        include_str!("../assets/demo/demo.sh"),
    ),
    (
        "agent.sh",
        "/demo/agent.sh",
        include_str!("../assets/demo/agent.sh"),
    ),
    (
        "scale",
        "/usr/local/bin/scale",
        include_str!("../assets/demo/scale"),
    ),
    (
        "kubectl",
        "/usr/local/bin/kubectl",
        include_str!("../assets/demo/kubectl"),
    ),
    (
        "scaling-agents.yaml",
        "/demo/policies/scaling-agents.yaml",
        include_str!("../assets/demo/policies/scaling-agents.yaml"),
    ),
    (
        "deploy-agent.yaml",
        "/demo/policies/deploy-agent.yaml",
        include_str!("../assets/demo/policies/deploy-agent.yaml"),
    ),
    (
        "issuing.yaml",
        "/demo/policies/issuing.yaml",
        include_str!("../assets/demo/policies/issuing.yaml"),
    ),
];
/// The daemon, the collector, the authority and the CLI, from the
/// release build.
const BINARIES: &[&str] = &[
    "acelogic-agent",
    "acelogic-collector",
    "acelogic-authority",
    "acelogicctl",
];
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
    println!("demo: building {} (release)", BINARIES.join(", "));
    run(
        cargo_with_linker()?
            .args(["build", "--release"])
            .args(crate::test::SERVICE_BINS),
        "fix the build errors above, then run `cargo xtask demo` again",
    )?;
    play(
        &kernel,
        &ws.target_dir.join("release"),
        &ws.root,
        Duration::from_secs(args.vm_timeout),
        |line| println!("{line}"),
    )?;
    println!("demo: OK on {}", kernel.label);
    Ok(())
}

/// Plays the demo in a VM of `kernel` with the binaries in `bin_dir`,
/// passing each line the guest prints after it started to `echo`. Fails,
/// naming what went wrong, unless demo.sh finished and printed
/// `ACELOGIC-DEMO-OK`. `cargo xtask test` plays it too (with the debug
/// binaries), so the demo cannot rot.
pub(crate) fn play(
    kernel: &Kernel,
    bin_dir: &Path,
    root: &Path,
    timeout: Duration,
    mut echo: impl FnMut(&str),
) -> Result<()> {
    let asset_dir = root.join(".acelogic").join("demo");
    std::fs::create_dir_all(&asset_dir)
        .with_context(|| format!("creating {}", asset_dir.display()))?;
    let mut files: Vec<(PathBuf, String)> = BINARIES
        .iter()
        .map(|b| (bin_dir.join(b), format!("/usr/bin/{b}")))
        .collect();
    // The cluster store both of the demo's nodes share.
    let etcd = Path::new("/usr/bin/etcd");
    if !etcd.is_file() {
        bail!("the demo needs etcd (/usr/bin/etcd): run `cargo xtask setup`");
    }
    files.push((etcd.to_path_buf(), "/usr/bin/etcd".to_owned()));
    for (name, guest, text) in ASSETS {
        let path = asset_dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
        // The scripts are run as commands; the policies are only read.
        let mode = if name.ends_with(".yaml") {
            0o644
        } else {
            0o755
        };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
            .with_context(|| format!("chmod {}", path.display()))?;
        files.push((path, (*guest).to_owned()));
    }
    let spec = VmSpec {
        name: format!("demo-{}", kernel.label),
        kernel: kernel.clone(),
        files,
        payload: "sh /demo/demo.sh".to_owned(),
        timeout,
        clock: vm::Clock::Wall,
    };
    println!(
        "demo: booting {} (QEMU TCG; the guest console follows)",
        kernel.label
    );
    let mut started = false;
    let outcome = vm::run_vm(&spec, root, |line| {
        if started {
            echo(line);
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
            timeout.as_secs()
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
                echo(line);
            }
        }
        bail!(
            "demo failed on {}: {}; full console log: {}",
            kernel.label,
            missing.join("; "),
            outcome.log.display()
        );
    }
    Ok(())
}
