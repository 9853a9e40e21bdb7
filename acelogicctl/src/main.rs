//! The operator CLI. Exit codes: 0 done; 1 refused or invalid (the reason
//! code is printed as `[code]`); 2 usage or unreadable input; 3 daemon
//! unreachable; 4 internal error; 126 `run` could not exec its command.
use std::{path::PathBuf, process::ExitCode};

use acelogic_proto::DEFAULT_SOCKET;
use acelogicctl::commands::{self, Command};
use clap::Parser;

/// ACELOGIC control: keys, signed artifacts, the node daemon, governed
/// runs, policy checks.
#[derive(Debug, Parser)]
#[command(name = "acelogicctl", version)]
struct Args {
    /// The node daemon's API socket.
    #[arg(long, global = true, value_name = "PATH", default_value = DEFAULT_SOCKET)]
    socket: PathBuf,
    #[command(subcommand)]
    command: Command,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match commands::exec(&args.command, &args.socket) {
        Ok(out) => {
            if !out.is_empty() {
                println!("{}", out.trim_end());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("acelogicctl: {e}");
            ExitCode::from(e.exit)
        }
    }
}
