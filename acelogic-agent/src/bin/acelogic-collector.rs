//! The central lineage collector.
use std::process::ExitCode;

use clap::Parser;

/// ACELOGIC lineage collector. NOT IMPLEMENTED YET: chain verification,
/// storage and queries arrive with issue 5. Running it starts nothing and
/// exits with status 2.
#[derive(Debug, Parser)]
#[command(name = "acelogic-collector", version)]
struct Args {}

fn main() -> ExitCode {
    let Args {} = Args::parse();
    eprintln!("acelogic-collector: not implemented yet (issue 5); nothing was started");
    ExitCode::from(2)
}
