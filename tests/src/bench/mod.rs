//! Kernel hook overhead, measured inside one kernel: the same workload
//! with no programs loaded; with the floor (the same hooks, each with a
//! program that returns at once: what calling a BPF program costs at all,
//! which every BPF-LSM enforcer pays); with our programs loaded but the
//! process ungoverned; governed and allowed by baseline; governed and
//! allowed by grant. Beside them, the kernel's own mechanisms doing the
//! same job with no programs loaded: Landlock restricting writes (the
//! open+close workload) and AppArmor restricting exec (the fork+exec
//! workload), each proven to enforce in the same run before it is
//! measured. Only ratios to the no-programs baseline of the same run mean
//! anything.
//!
//! Every configuration is measured once per round, rounds interleaved;
//! the first round warms caches and is dropped; medians are reported with
//! the smallest and largest sample. `cargo xtask bench` runs this twice:
//! in a guest whose clock counts instructions (`--clock instructions`,
//! the figures targets are judged on) and by the wall clock, which also
//! measures the submit-to-enforced latency with the real daemon
//! (`submit.rs`).

mod apparmor;
mod landlock;
mod programs;
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
use acelogic_kernel::{Kernel, LoadOptions};
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
    /// Counted rounds per configuration, after one warm-up round.
    #[arg(long, default_value_t = 7)]
    rounds: usize,
    /// What the guest's clock counts: `instructions` under QEMU's
    /// `-icount shift=0,sleep=off` (the figures targets are judged on),
    /// `wall` under plain TCG (printed beside them).
    #[arg(long, value_enum, default_value_t = Clock::Wall)]
    clock: Clock,
    /// Submit-to-enforced iterations (one artifact each).
    #[arg(long, default_value_t = 50)]
    submit_iterations: usize,
    /// Measure the hooks only.
    #[arg(long)]
    skip_submit: bool,
}

/// What the guest's clock counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Clock {
    Instructions,
    Wall,
}

/// The configurations, in the order of the table. Each is measured once
/// per round, all of them in every round.
const CONFIGS: [&str; 5] = [
    "no programs",
    "floor",
    "loaded, ungoverned",
    "governed, baseline",
    "governed, grant",
];
const NONE: usize = 0;
const FLOOR: usize = 1;
const UNGOVERNED: usize = 2;
const BASELINE: usize = 3;
const GRANT: usize = 4;

/// Loaded but ungoverned: at most this much over no programs, or over the
/// floor where the floor itself costs more ([`FLOOR_SLACK`]).
const UNGOVERNED_TARGET: f64 = 1.02;
const FLOOR_SLACK: f64 = 1.01;
/// Governed and allowed, where no kernel peer sets the bar.
const GOVERNED_TARGET: f64 = 1.10;

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

/// Median, smallest and largest sample.
#[derive(Debug, Clone, Copy)]
struct Stats {
    median: f64,
    min: f64,
    max: f64,
}

impl Stats {
    fn of(v: &[f64]) -> Self {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        Self {
            median: v[v.len() / 2],
            min: v[0],
            max: v[v.len() - 1],
        }
    }

    fn cell(self, none: f64, floor: f64) -> String {
        format!(
            "{:.0} ({:.3}x, {:.3}x floor) [{:.0}–{:.0}]",
            self.median,
            self.median / none,
            self.median / floor,
            self.min,
            self.max
        )
    }
}

/// The running kernel's release.
fn kernel_release() -> String {
    fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or_else(|_| "unknown".to_owned(), |s| s.trim().to_owned())
}

/// Samples per workload and configuration, and per peer.
#[derive(Debug, Default)]
struct Samples {
    configs: [[Vec<f64>; CONFIGS.len()]; Workload::ALL.len()],
    landlock: Vec<f64>,
    apparmor: Vec<f64>,
}

/// Runs the benchmark; prints markdown tables and one
/// `ACELOGIC-BENCH-HOOKS {json}` (or `-HOOKS-WALL`) line and, unless
/// skipped, one `ACELOGIC-BENCH-SUBMIT {json}` line.
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

    // Both sets of programs are loaded (and verified) once; each round
    // attaches one set at a time, so every configuration of a round runs
    // on the same guest state.
    let mut full = Kernel::load()?;
    let mut floor = Kernel::load_with(&LoadOptions {
        floor: true,
        ..LoadOptions::default()
    })?;
    let records = full.records()?;
    setup_scopes(&mut full, &b, &base, &grant)?;
    // Drain the ring buffer throughout, as the daemon does (an undrained
    // buffer fills and then governed actions are denied): wait for a
    // record, take all there are, let more gather for the daemon's
    // linger. It runs in every configuration, so its idle wake-ups cost
    // each the same.
    let stop = Arc::new(AtomicBool::new(false));
    let drainer = {
        let stop = Arc::clone(&stop);
        let mut records = records;
        std::thread::spawn(move || {
            let mut seen = 0u64;
            while !stop.load(Ordering::Relaxed) {
                if records.next_within(Duration::from_millis(5)).is_some() {
                    seen += 1 + records.drain().len() as u64;
                    std::thread::sleep(acelogic_agent::daemon::RING_LINGER);
                }
            }
            seen += records.drain().len() as u64;
            seen
        })
    };
    let mut samples = Samples::default();
    let mut costs = Vec::new();
    let measured = (|| -> anyhow::Result<()> {
        // Round 0 warms caches and is not counted.
        for round in 0..=args.rounds {
            let mut one = Samples::default();
            for (i, w) in Workload::ALL.iter().enumerate() {
                one.configs[i][NONE].push(measure(&b, &free, *w, Confine::Nothing)?);
                if matches!(w, Workload::OpenClose) {
                    let ruleset = landlock::prepare(&b.dir)?;
                    one.landlock
                        .push(measure(&b, &free, *w, Confine::Landlock(ruleset))?);
                }
                if matches!(w, Workload::ForkExec) {
                    one.apparmor
                        .push(measure(&b, &free, *w, Confine::AppArmor(&aa.attach))?);
                }
            }
            floor.attach_all()?;
            for (i, w) in Workload::ALL.iter().enumerate() {
                one.configs[i][FLOOR].push(measure(&b, &free, *w, Confine::Nothing)?);
            }
            floor.detach_all()?;
            full.attach_all()?;
            for (i, w) in Workload::ALL.iter().enumerate() {
                for (c, cg) in [(UNGOVERNED, &free), (BASELINE, &base), (GRANT, &grant)] {
                    one.configs[i][c].push(measure(&b, cg, *w, Confine::Nothing)?);
                }
            }
            full.detach_all()?;
            if round > 0 {
                samples.add(one);
            }
            println!("hooks: round {round} of {} done", args.rounds);
        }
        costs = programs::measure_all(&mut floor, &b, &[(CONFIGS[FLOOR], &free)])?;
        costs.extend(programs::measure_all(
            &mut full,
            &b,
            &[(CONFIGS[UNGOVERNED], &free), (CONFIGS[BASELINE], &base)],
        )?);
        Ok(())
    })();
    stop.store(true, Ordering::Relaxed);
    let seen = drainer
        .join()
        .map_err(|_| anyhow::anyhow!("drain thread panicked"))?;
    measured?;
    println!("records drained during the benchmark: {seen}");
    let counters = full.counters()?;
    ensure!(
        counters.denied == 0 && counters.record_unavailable == 0,
        "the benchmark was denied something: {counters:?}"
    );
    drop((full, floor, aa));

    let mut doc = report(&samples, args.rounds, args.clock);
    doc["programs"] = programs::report(&costs, &CONFIGS);
    match args.clock {
        Clock::Instructions => println!("ACELOGIC-BENCH-HOOKS {doc}"),
        Clock::Wall => println!("ACELOGIC-BENCH-HOOKS-WALL {doc}"),
    }
    if !args.skip_submit {
        let doc = submit::run(args.submit_iterations, &b.shell)?;
        println!("ACELOGIC-BENCH-SUBMIT {doc}");
    }
    Ok(())
}

impl Samples {
    fn add(&mut self, other: Self) {
        for (mine, theirs) in self.configs.iter_mut().zip(other.configs) {
            for (m, t) in mine.iter_mut().zip(theirs) {
                m.extend(t);
            }
        }
        self.landlock.extend(other.landlock);
        self.apparmor.extend(other.apparmor);
    }
}

/// Prints the tables and returns the JSON document with its summary rows.
/// Targets go on the rows of the instruction-count run only.
fn report(samples: &Samples, rounds: usize, clock: Clock) -> serde_json::Value {
    let (benchmark, unit_note) = match clock {
        Clock::Instructions => (
            format!("kernel hooks, instructions (VM {})", kernel_release()),
            "guest instructions per operation (1 ns of the icount clock = 1 instruction)",
        ),
        Clock::Wall => (
            format!("kernel hooks, wall clock (VM {})", kernel_release()),
            "wall-clock ns per operation under TCG",
        ),
    };
    let judged = clock == Clock::Instructions;
    let peer_stats = |peer: Peer| {
        let v = match peer.workload {
            Workload::ForkExec => &samples.apparmor,
            _ => &samples.landlock,
        };
        Stats::of(v)
    };
    println!(
        "hooks: {unit_note}: median (ratio to no programs, to the floor) [min–max] of {rounds} rounds"
    );
    println!();
    println!("| workload | {} |", CONFIGS.join(" | "));
    println!("|---|---|---|---|---|---|");
    let mut rows = Vec::new();
    let mut workloads = Vec::new();
    let mut peers = Vec::new();
    for (i, w) in Workload::ALL.iter().enumerate() {
        let st: Vec<Stats> = samples.configs[i].iter().map(|v| Stats::of(v)).collect();
        let (none, floor) = (st[NONE].median, st[FLOOR].median);
        let cells: Vec<String> = st.iter().map(|s| s.cell(none, floor)).collect();
        println!("| {} | {} |", w.name(), cells.join(" | "));
        let peer = [LANDLOCK, APPARMOR]
            .into_iter()
            .find(|p| p.workload.name() == w.name());
        let peer_ratio = peer.map(|p| peer_stats(p).median / none);
        for c in [FLOOR, UNGOVERNED, BASELINE, GRANT] {
            let s = st[c];
            let mut row = Row::new(
                &benchmark,
                &format!("{}: {}", w.name(), CONFIGS[c]),
                s.median,
                Unit::Nanos,
            )
            .against(CONFIGS[NONE], none)
            .spread(s.min, s.max);
            let target = match c {
                UNGOVERNED => Some(UNGOVERNED_TARGET.max(floor / none * FLOOR_SLACK)),
                BASELINE => Some(peer_ratio.unwrap_or(GOVERNED_TARGET)),
                GRANT => Some(GOVERNED_TARGET),
                _ => None,
            };
            if let (true, Some(t)) = (judged, target) {
                row = row.target(Target::RatioAtMost(t));
            }
            rows.push(row);
        }
        // What the programs cost beyond calling them at all.
        let mut row = Row::new(
            &benchmark,
            &format!("{}: loaded, ungoverned over the floor", w.name()),
            st[UNGOVERNED].median,
            Unit::Nanos,
        )
        .against(CONFIGS[FLOOR], floor);
        if judged {
            row = row.target(Target::RatioAtMost(FLOOR_SLACK));
        }
        rows.push(row);
        let ns = |s: &Stats| serde_json::json!({"median": s.median, "min": s.min, "max": s.max});
        workloads.push(serde_json::json!({
            "workload": w.name(),
            "iterations": w.iterations(),
            "ns_per_op": {
                "none": ns(&st[NONE]), "floor": ns(&st[FLOOR]), "ungoverned": ns(&st[UNGOVERNED]),
                "baseline": ns(&st[BASELINE]), "grant": ns(&st[GRANT]),
            },
            "ratio": {
                "floor": floor / none,
                "ungoverned": st[UNGOVERNED].median / none,
                "ungoverned_over_floor": st[UNGOVERNED].median / floor,
                "baseline": st[BASELINE].median / none,
                "grant": st[GRANT].median / none,
            },
        }));
        if let Some(p) = peer {
            let ps = peer_stats(p);
            rows.push(
                Row::new(
                    &benchmark,
                    &format!("{}: {} (kernel-native peer)", w.name(), p.name),
                    ps.median,
                    Unit::Nanos,
                )
                .against(CONFIGS[NONE], none)
                .spread(ps.min, ps.max),
            );
            peers.push(serde_json::json!({
                "peer": p.name,
                "workload": w.name(),
                "ns_per_op": ns(&ps),
                "ratio": ps.median / none,
                "acelogic_governed_baseline_ratio": st[BASELINE].median / none,
            }));
        }
    }
    println!();
    println!("| workload | ACELOGIC governed, baseline | kernel-native peer | peer |");
    println!("|---|---|---|---|");
    for p in &peers {
        println!(
            "| {} | {:.3}x | {} | {:.3}x |",
            p["workload"].as_str().unwrap_or_default(),
            p["acelogic_governed_baseline_ratio"]
                .as_f64()
                .unwrap_or(f64::NAN),
            p["peer"].as_str().unwrap_or_default(),
            p["ratio"].as_f64().unwrap_or(f64::NAN),
        );
    }
    serde_json::json!({
        "kernel": kernel_release(),
        "clock": match clock { Clock::Instructions => "instructions", Clock::Wall => "wall" },
        "rounds": rounds,
        "warm_up_rounds": 1,
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
