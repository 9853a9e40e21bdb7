//! One module per top-level subcommand, as cargo keeps
//! `src/bin/cargo/commands/*.rs`: each declares its arguments and runs
//! them. What a command returns is printed on stdout; its error decides
//! the exit code.

use std::path::Path;

use clap::Subcommand;

use crate::CtlResult;

pub mod approvals;
pub mod artifact;
pub mod certs;
pub mod freeze;
pub mod grants;
pub mod keygen;
pub mod lineage;
pub mod operations;
pub mod policy;
pub mod request;
pub mod revoke;
pub mod run;
pub mod status;
pub mod unfreeze;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Generate an Ed25519 key (file mode 0600); prints its trust-store entry.
    Keygen(keygen::Args),
    /// Signed artifacts.
    #[command(subcommand)]
    Artifact(artifact::Command),
    /// Remove a live artifact's grants now.
    Revoke(revoke::Args),
    /// List live grants.
    Grants(grants::Args),
    /// Deny every action of a workload, its baseline included.
    Freeze(freeze::Args),
    /// Lift a freeze.
    Unfreeze(unfreeze::Args),
    /// The daemon's state: policy, workloads, warnings.
    Status(status::Args),
    /// Run CMD governed as WORKLOAD (new cgroup, inherited descriptors closed).
    Run(run::Args),
    /// Capability policies.
    #[command(subcommand)]
    Policy(policy::Command),
    /// Execution lineage, asked of the collector.
    Lineage(lineage::Args),
    /// Certificates for the collector: a CA for client certificates, and
    /// client certificates with a role (reader, auditor, node) or the
    /// collector's own server certificate.
    #[command(subcommand)]
    Certs(certs::Command),
    /// Operation keys in the cluster store: holders, fencing tokens,
    /// completions; an administrator's release.
    #[command(subcommand)]
    Operations(operations::Command),
    /// Ask the authority for capabilities, through the node daemon (it attests who asks).
    Request(request::Args),
    /// The authority's approval queue: list, show, approve, deny.
    Approvals(approvals::Args),
}

/// Runs `command`; `socket` is the daemon's API socket (`--socket`), for
/// the commands that ask the daemon.
pub fn exec(command: &Command, socket: &Path) -> CtlResult<String> {
    match command {
        Command::Keygen(args) => keygen::exec(args),
        Command::Artifact(cmd) => artifact::exec(cmd, socket),
        Command::Revoke(args) => revoke::exec(args, socket),
        Command::Grants(args) => grants::exec(args, socket),
        Command::Freeze(args) => freeze::exec(args, socket),
        Command::Unfreeze(args) => unfreeze::exec(args, socket),
        Command::Status(args) => status::exec(args, socket),
        Command::Run(args) => run::exec(args, socket),
        Command::Policy(cmd) => policy::exec(cmd),
        Command::Lineage(args) => lineage::exec(args),
        Command::Certs(cmd) => certs::exec(cmd),
        Command::Operations(cmd) => operations::exec(cmd, socket),
        Command::Request(args) => request::exec(args, socket),
        Command::Approvals(args) => approvals::exec(args),
    }
}
