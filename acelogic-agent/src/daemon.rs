//! The node agent's main loop: check the node, load and attach the
//! programs, govern the configured cgroups, stream records until told to
//! stop.

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use tokio::{
    io::unix::AsyncFd,
    signal::unix::{SignalKind, signal},
};

use crate::{
    kernel::{Kernel, LoadOptions, scopes::Mode},
    lineage,
    node::NodeReport,
};

/// What the agent runs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// cgroup v2 directories to govern; scope ids are assigned in order,
    /// starting at 1, each enforcing with an empty baseline.
    pub govern: Vec<PathBuf>,
    /// bpffs directory of the pinned state (adopted when present).
    pub pin_dir: PathBuf,
}

/// Runs the agent until SIGINT or SIGTERM.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let report = NodeReport::inspect();
    if !report.ready() {
        bail!("this node cannot enforce; refusing to start in enforce mode:\n{report}");
    }
    let mut kernel = Kernel::load_with(&LoadOptions {
        pin_dir: Some(config.pin_dir.clone()),
        ..LoadOptions::default()
    })
    .context("loading the BPF object")?;
    let attached = kernel.attach_all().context("attaching the programs")?;
    println!(
        "acelogic-agent: {} program(s) attached, {} adopted from {}",
        attached.attached.len(),
        attached.adopted.len(),
        config.pin_dir.display()
    );
    let records = kernel.records()?;
    for (i, path) in config.govern.iter().enumerate() {
        let scope_id = u32::try_from(i + 1).context("too many cgroups")?;
        kernel.define_scope(scope_id, Mode::Enforce)?;
        kernel
            .govern(path, scope_id)
            .with_context(|| format!("governing {}", path.display()))?;
    }
    println!(
        "acelogic-agent: enforcing on {} cgroup(s); records follow",
        config.govern.len()
    );

    // SAFETY: `Records` owns the ring buffer's fd; it stays open and the
    // same for as long as the `AsyncFd` owns the `Records`.
    let mut ring = unsafe { AsyncFd::register(records) }
        .map_err(|e| anyhow::anyhow!("watching the ring buffer: {e}"))?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            ready = ring.readable_mut() => {
                let mut guard = ready.context("waiting for records")?;
                for record in guard.get_inner_mut().drain() {
                    match record {
                        Ok(event) => println!("{}", lineage::render(&event)),
                        Err(e) => tracing::error!(error = %e, "undecodable record"),
                    }
                }
                guard.clear_ready();
            }
        }
    }
    let c = kernel.counters()?;
    println!(
        "acelogic-agent: stopping; denied={} allowed={} audited={} record_unavailable={} \
         lineage_lost={}; enforcement stays pinned at {} (`acelogic-agent uninstall` removes it)",
        c.denied,
        c.allowed,
        c.audited,
        c.record_unavailable,
        c.lineage_lost,
        config.pin_dir.display()
    );
    Ok(())
}
