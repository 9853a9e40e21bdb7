//! Kernel hook overhead, measured inside one kernel: the same workload
//! with no programs loaded, with programs loaded but the process
//! ungoverned, governed and allowed by baseline, and governed and allowed
//! by grant. Beside them, the kernel's own mechanisms doing the same job
//! with no programs loaded: Landlock restricting writes (the open+close
//! workload) and AppArmor restricting exec (the fork+exec workload), each
//! proven to enforce in the same run before it is measured. Only ratios to
//! the no-programs baseline of the same run mean anything (under
//! emulation absolute times do not).
//!
//! Configurations with programs are measured in interleaved rounds; the
//! no-programs baseline and the peers before loading and after unloading,
//! and the median of every round is reported. Then the submit-to-enforced
//! latency with the real daemon (`submit.rs`).

mod apparmor;
mod landlock;
pub(crate) mod submit;
mod workload;

use std::{
    fs,
    net::{Ipv4Addr, TcpListener},
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use acelogic_common::rules::rights;
use acelogic_domain::{
    capability::Protocol,
    grant::{GrantObject, GrantSpec, NetTarget, boot_ns_in},
    policy::Mode,
};
use acelogic_kernel::Kernel;
use anyhow::ensure;
use clap::Parser as _;

use self::workload::{Bench, Confine, Workload, measure};
use crate::{
    fixtures::{Scratch, TestCgroup, real},
    summary::{Row, Target, Unit, rows_json},
};

/// `acelogic-bench`, run by `cargo xtask bench` in the VM.
#[derive(Debug, clap::Parser)]
#[command(about = "Kernel hook overhead, kernel-native peers, submit-to-enforced latency")]
struct Args {
    /// The AppArmor profile compiler (Debian package `apparmor`).
    #[arg(long, default_value = "/usr/sbin/apparmor_parser")]
    apparmor_parser: PathBuf,
    /// Interleaved rounds per configuration (each phase).
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Submit-to-enforced iterations (one artifact each).
    #[arg(long, default_value_t = 50)]
    submit_iterations: usize,
}

const CONFIGS: [&str; 4] = [
    "no programs",
    "loaded, ungoverned",
    "governed, baseline",
    "governed, grant",
];

/// The targets: loaded but ungoverned at most 1.02x the no-programs
/// time, governed and allowed (baseline or grant) at most 1.10x.
const TARGETS: [Option<f64>; 4] = [None, Some(1.02), Some(1.10), Some(1.10)];

/// A kernel-native peer measured beside ACELOGIC.
#[derive(Debug, Clone, Copy)]
struct Peer {
    name: &'static str,
    workload: Workload,
}

const LANDLOCK: Peer = Peer {
    name: "Landlock, allowed path",
    workload: Workload::OpenClose,
};
const APPARMOR: Peer = Peer {
    name: "AppArmor profile, allowed exec",
    workload: Workload::ForkExec,
};

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The running kernel's release.
fn kernel_release() -> String {
    fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or_else(|_| "unknown".to_owned(), |s| s.trim().to_owned())
}

/// Samples per workload and configuration, and per peer.
#[derive(Debug, Default)]
struct Samples {
    configs: [[Vec<f64>; 4]; Workload::ALL.len()],
    landlock: Vec<f64>,
    apparmor: Vec<f64>,
}

/// Runs the benchmark; prints markdown tables and one
/// `ACELOGIC-BENCH-HOOKS {json}` and one `ACELOGIC-BENCH-SUBMIT {json}`
/// line.
pub fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(args.rounds > 0, "--rounds must be at least 1");
    crate::fixtures::ensure_mounts()?;
    let scratch = Scratch::new("bench")?;
    let file = scratch.join("target");
    fs::write(&file, b"x")?;
    let outside = Scratch::new("bench-outside")?;
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    let port = listener.local_addr()?.port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            drop(conn);
        }
    });
    let b = Bench {
        file,
        dir: scratch.path.clone(),
        shell: real("/bin/sh")?,
        port,
    };
    let free = TestCgroup::new("bench-free")?;
    let base = TestCgroup::new("bench-baseline")?;
    let grant = TestCgroup::new("bench-grant")?;

    // The peers must enforce in this kernel, or their numbers mean nothing.
    landlock::verify(&b.dir, &b.file, &outside.join("landlock-refused"), &free)?;
    println!(
        "peer: Landlock enforces (the restricted child writes {} and is refused EACCES outside)",
        b.file.display()
    );
    let aa = apparmor::load(&args.apparmor_parser, &b.shell, &scratch.path)?;
    let other = outside.join("other-sh");
    fs::copy(&b.shell, &other)?;
    apparmor::verify(&aa.attach, &b.shell, &other, &free)?;
    println!(
        "peer: AppArmor enforces (profile {}: the confined child runs {} and is refused EACCES \
         running a copy at {})",
        apparmor::PROFILE,
        b.shell.display(),
        other.display()
    );

    let mut samples = Samples::default();
    let unloaded = |samples: &mut Samples| -> anyhow::Result<()> {
        for _ in 0..args.rounds {
            for (i, w) in Workload::ALL.iter().enumerate() {
                samples.configs[i][0].push(measure(&b, &free, *w, Confine::Nothing)?);
                if matches!(w, Workload::OpenClose) {
                    let ruleset = landlock::prepare(&b.dir)?;
                    samples
                        .landlock
                        .push(measure(&b, &free, *w, Confine::Landlock(ruleset))?);
                }
                if matches!(w, Workload::ForkExec) {
                    samples
                        .apparmor
                        .push(measure(&b, &free, *w, Confine::AppArmor(&aa.attach))?);
                }
            }
        }
        Ok(())
    };
    unloaded(&mut samples)?;
    {
        let mut kernel = Kernel::load()?;
        kernel.attach_all()?;
        let records = kernel.records()?;
        setup_scopes(&mut kernel, &b, &base, &grant)?;
        // Drain the ring buffer while measuring, as the daemon does: an
        // undrained buffer fills and then governed actions are denied.
        let stop = Arc::new(AtomicBool::new(false));
        let drainer = {
            let stop = Arc::clone(&stop);
            let mut records = records;
            std::thread::spawn(move || {
                let mut seen = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    if records.next_within(Duration::from_millis(5)).is_some() {
                        seen += 1;
                    }
                }
                seen += records.drain().len() as u64;
                seen
            })
        };
        let measured = (|| -> anyhow::Result<()> {
            for _ in 0..args.rounds {
                for (i, w) in Workload::ALL.iter().enumerate() {
                    for (c, cg) in [(1, &free), (2, &base), (3, &grant)] {
                        samples.configs[i][c].push(measure(&b, cg, *w, Confine::Nothing)?);
                    }
                }
            }
            Ok(())
        })();
        stop.store(true, Ordering::Relaxed);
        let seen = drainer
            .join()
            .map_err(|_| anyhow::anyhow!("drain thread panicked"))?;
        measured?;
        println!("records drained during the benchmark: {seen}");
        let counters = kernel.counters()?;
        ensure!(
            counters.denied == 0 && counters.record_unavailable == 0,
            "the benchmark was denied something: {counters:?}"
        );
    }
    unloaded(&mut samples)?;
    drop(aa);

    let doc = report(&mut samples, args.rounds);
    println!("ACELOGIC-BENCH-HOOKS {doc}");

    let doc = submit::run(args.submit_iterations, &b.shell)?;
    println!("ACELOGIC-BENCH-SUBMIT {doc}");
    Ok(())
}

/// Prints the two tables and returns the JSON document with its summary
/// rows.
fn report(samples: &mut Samples, rounds: usize) -> serde_json::Value {
    let benchmark = format!("kernel hooks (VM {})", kernel_release());
    let mut rows = Vec::new();
    let mut workloads = Vec::new();
    let mut none = [0.0; Workload::ALL.len()];
    let mut governed = [0.0; Workload::ALL.len()];
    println!("| workload | {} |", CONFIGS.join(" | "));
    println!("|---|---|---|---|---|");
    for (i, w) in Workload::ALL.iter().enumerate() {
        let med: Vec<f64> = samples.configs[i].iter_mut().map(|s| median(s)).collect();
        (none[i], governed[i]) = (med[0], med[2]);
        let cells: Vec<String> = med
            .iter()
            .map(|m| format!("{:.0} ns ({:.3}x)", m, m / med[0]))
            .collect();
        println!("| {} | {} |", w.name(), cells.join(" | "));
        for c in 1..4 {
            let mut row = Row::new(
                &benchmark,
                &format!("{}: {}", w.name(), CONFIGS[c]),
                med[c],
                Unit::Nanos,
            )
            .against(CONFIGS[0], med[0]);
            if let Some(t) = TARGETS[c] {
                row = row.target(Target::RatioAtMost(t));
            }
            rows.push(row);
        }
        workloads.push(serde_json::json!({
            "workload": w.name(),
            "iterations": w.iterations(),
            "ns_per_op": {"none": med[0], "ungoverned": med[1], "baseline": med[2], "grant": med[3]},
            "ratio": {"ungoverned": med[1] / med[0], "baseline": med[2] / med[0], "grant": med[3] / med[0]},
        }));
    }

    println!();
    println!(
        "| workload | no programs | ACELOGIC governed, baseline | kernel-native peer (no programs loaded) | peer |"
    );
    println!("|---|---|---|---|---|");
    let mut peers = Vec::new();
    for (peer, v) in [
        (LANDLOCK, &mut samples.landlock),
        (APPARMOR, &mut samples.apparmor),
    ] {
        let i = Workload::ALL
            .iter()
            .position(|w| w.name() == peer.workload.name())
            .unwrap_or(0);
        let m = median(v);
        println!(
            "| {} | {:.0} ns (1.000x) | {:.0} ns ({:.3}x) | {} | {m:.0} ns ({:.3}x) |",
            peer.workload.name(),
            none[i],
            governed[i],
            governed[i] / none[i],
            peer.name,
            m / none[i]
        );
        rows.push(
            Row::new(
                &benchmark,
                &format!(
                    "{}: {} (kernel-native peer)",
                    peer.workload.name(),
                    peer.name
                ),
                m,
                Unit::Nanos,
            )
            .against(CONFIGS[0], none[i]),
        );
        peers.push(serde_json::json!({
            "peer": peer.name,
            "workload": peer.workload.name(),
            "ns_per_op": m,
            "ratio": m / none[i],
            "acelogic_governed_baseline_ratio": governed[i] / none[i],
        }));
    }
    serde_json::json!({
        "kernel": kernel_release(),
        "rounds": rounds,
        "workloads": workloads,
        "peers": peers,
        "summary": rows_json(&rows),
    })
}

/// Scope 1 allows by baseline, scope 2 by grant: the file's directory
/// (write), the shell (exec) with the libraries, the listener's port.
fn setup_scopes(
    kernel: &mut Kernel,
    b: &Bench,
    base: &TestCgroup,
    grant: &TestCgroup,
) -> anyhow::Result<()> {
    let target = NetTarget::host(Protocol::Tcp, Ipv4Addr::LOCALHOST.into(), b.port);
    for (scope, cg) in [(1, base), (2, grant)] {
        kernel.define_scope(scope, Mode::Enforce)?;
        kernel.govern(&cg.path, scope)?;
        for lib in ["/lib", "/lib64", "/usr/lib", "/usr/lib64"] {
            if Path::new(lib).exists() {
                kernel.allow_file(scope, &real(lib)?, rights::MAP)?;
            }
        }
    }
    kernel.allow_file(1, &b.dir, rights::WRITE)?;
    kernel.allow_file(1, &b.shell, rights::EXEC)?;
    kernel.allow_net(1, &target)?;
    let expires = boot_ns_in(Duration::from_secs(3600));
    let g = |id, object| GrantSpec {
        grant_id: id,
        scope_id: 2,
        expires_boot_ns: expires,
        max_uses: None,
        object,
    };
    kernel.install_grants(&[
        g(
            1,
            GrantObject::File {
                path: b.dir.clone(),
                rights: rights::WRITE,
            },
        ),
        g(
            2,
            GrantObject::File {
                path: b.shell.clone(),
                rights: rights::EXEC,
            },
        ),
        g(3, GrantObject::Net(target)),
    ])?;
    Ok(())
}
