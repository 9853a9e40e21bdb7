//! Runs ACELOGIC's privileged tests; see the `acelogic_tests` crate docs.
use clap::Parser;

/// ACELOGIC privileged tests: load the BPF programs into this kernel and
/// try to break them. Run as root.
#[derive(Debug, Parser)]
struct Args {
    /// Where we run: on the host missing kernel features skip tests; in
    /// the VM matrix they fail them.
    #[arg(long, value_enum)]
    env: acelogic_tests::harness::Env,
    /// Only run tests whose name contains this.
    #[arg(long)]
    filter: Option<String>,
    /// Internal: run one test in this process.
    #[arg(long, hide = true)]
    run_one: Option<String>,
}

fn main() {
    let args = Args::parse();
    let cases = acelogic_tests::cases::all();
    let code = match args.run_one {
        Some(name) => acelogic_tests::harness::run_one(&name, &cases),
        None => acelogic_tests::harness::run_all(args.env, args.filter.as_deref(), &cases),
    };
    std::process::exit(code);
}
