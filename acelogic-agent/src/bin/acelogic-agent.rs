//! The node agent.
use std::path::PathBuf;

use acelogic_agent::kernel::{self, DEFAULT_PIN_DIR};
use clap::{Parser, Subcommand};

/// ACELOGIC node agent: loads the BPF LSM gates, pins them so enforcement
/// outlives this process, and governs cgroups, printing one lineage record
/// per decision.
///
/// At this stage there are no policies or artifacts yet: every governed
/// cgroup gets an empty baseline, so its exec, writes and connects are
/// denied. Needs root (CAP_BPF, CAP_SYS_ADMIN) and a kernel with BPF LSM
/// active; it refuses to start otherwise and says how to fix it.
#[derive(Debug, Parser)]
#[command(name = "acelogic-agent", version)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// A cgroup v2 directory to govern (repeatable).
    #[arg(long, value_name = "CGROUP_DIR")]
    govern: Vec<PathBuf>,
    /// bpffs directory for pinned programs, links and maps.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_PIN_DIR, global = true)]
    pin_dir: PathBuf,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Remove the pinned state: enforcement on this node ends.
    Uninstall,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    acelogic_agent::init_tracing();
    let args = Args::parse();
    if let Some(Command::Uninstall) = args.command {
        let done = kernel::uninstall(&args.pin_dir)?;
        println!(
            "acelogic-agent: removed {} link(s) and {} map(s) from {}; enforcement is off",
            done.links.len(),
            done.maps.len(),
            args.pin_dir.display()
        );
        return Ok(());
    }
    anyhow::ensure!(
        !args.govern.is_empty(),
        "nothing to govern: pass --govern CGROUP_DIR (or `uninstall`)"
    );
    acelogic_agent::daemon::run(acelogic_agent::daemon::Config {
        govern: args.govern,
        pin_dir: args.pin_dir,
    })
    .await
}
