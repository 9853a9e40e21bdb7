//! `cargo xtask`: ACELOGIC's developer and CI tasks.
//!
//! - `setup`: nightly rust-src, bpf-linker, QEMU/busybox/cpio/systemd, the
//!   offline Kubernetes schema validator, VM kernels.
//! - `test`: the one test command (unit, deploy, host privileged, one VM per
//!   kernel).
//! - `demo`: plays the end-to-end story (`assets/demo/`) in the newest kernel.
//! - `vm`: boots kernels of the matrix with an ad-hoc payload.
//! - `policies-configmap`: writes deploy/kubernetes/policies-configmap.yaml
//!   from policies/*.yaml.

mod bench;
mod demo;
mod deploy;
mod kernels;
mod setup;
mod summary;
mod test;
mod util;
mod vm;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "ACELOGIC developer tasks")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Install what builds and tests need (idempotent; also run by test and demo).
    Setup,
    /// Run every test suite: unit, deploy, privileged on the host, privileged in VMs.
    Test(test::TestArgs),
    /// Boot a VM with the agent and run the demo script.
    Demo(demo::DemoArgs),
    /// Run the benchmarks (kernel hook overhead in a VM) and report ratios.
    Bench(bench::BenchArgs),
    /// Boot kernels of the matrix with an ad-hoc payload, for poking around.
    Vm(vm::VmArgs),
    /// Write deploy/kubernetes/policies-configmap.yaml from policies/*.yaml.
    PoliciesConfigmap,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match &cli.command {
        Task::Setup => setup::setup().map(|_| true),
        Task::Test(args) => test::test(args),
        Task::Demo(args) => demo::demo(args).map(|()| true),
        Task::Bench(args) => bench::bench(args).map(|()| true),
        Task::PoliciesConfigmap => deploy::write_policies_configmap().map(|()| true),
        Task::Vm(args) => setup::setup()
            .and_then(|ready| vm::vm_command(args, ready.kernels, &util::workspace()?.root)),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
