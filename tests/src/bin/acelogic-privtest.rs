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
    /// Internal: install pinned enforcement on a cgroup and wait to be
    /// killed (PIN_DIR CGROUP_DIR).
    #[arg(long, hide = true, num_args = 2)]
    hold: Option<Vec<std::path::PathBuf>>,
}

fn main() {
    let args = Args::parse();
    if let Some(paths) = args.hold {
        if let Err(e) = acelogic_tests::cases::hold(&paths[0], &paths[1]) {
            println!("hold failed: {e:#}");
        }
        std::process::exit(1);
    }
    let cases = acelogic_tests::cases::all();
    let code = match args.run_one {
        Some(name) => acelogic_tests::harness::run_one(&name, &cases),
        None => acelogic_tests::harness::run_all(args.env, args.filter.as_deref(), &cases),
    };
    std::process::exit(code);
}
