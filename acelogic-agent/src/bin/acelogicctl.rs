//! The operator CLI.
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// ACELOGIC control: node checks. (Keys, artifacts, `run` and policy
/// commands arrive with the authorization work, issue 4.)
#[derive(Debug, Parser)]
#[command(name = "acelogicctl", version)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check that this node can enforce: BPF LSM active, kernel BTF,
    /// cgroup v2, bpffs. Exit status 0 when ready, 1 when not, with the fix
    /// for each failed check.
    CheckNode,
}

fn main() -> ExitCode {
    match Args::parse().command {
        Command::CheckNode => {
            let report = acelogic_agent::node::NodeReport::inspect();
            print!("{report}");
            if report.ready() {
                println!("node is ready to enforce");
                ExitCode::SUCCESS
            } else {
                println!("node is NOT ready to enforce");
                ExitCode::FAILURE
            }
        }
    }
}
