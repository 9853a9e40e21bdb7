//! The node agent.
use std::path::PathBuf;

use clap::Parser;

/// ACELOGIC node agent: loads the BPF LSM programs and denies every exec
/// from the governed cgroups, printing one lineage record per decision.
///
/// At this stage there are no policies or artifacts yet (nothing is allowed
/// in a governed cgroup) and enforcement lasts only while this process
/// runs. Needs root (CAP_BPF, CAP_SYS_ADMIN) and a kernel with BPF LSM
/// active; it refuses to start otherwise and says how to fix it.
#[derive(Debug, Parser)]
#[command(name = "acelogic-agent", version)]
struct Args {
    /// A cgroup v2 directory to govern (repeatable).
    #[arg(long, required = true, value_name = "CGROUP_DIR")]
    govern: Vec<PathBuf>,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<()> {
    acelogic_agent::init_tracing();
    let args = Args::parse();
    acelogic_agent::daemon::run(acelogic_agent::daemon::Config {
        govern: args.govern,
    })
    .await
}
