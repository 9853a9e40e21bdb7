//! `cargo xtask test`: unit tests on the host, the privileged test binary on
//! the host and in a VM per kernel of the matrix, one summary line per suite
//! and a `total:` line.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Result;

use crate::conformance::{self, Outcome};
use crate::deploy;
use crate::kernels::{self, Kernel};
use crate::setup::{cargo_with_linker, nightly_cargo, setup};
use crate::util::{StreamEnd, is_root, kernel_release, secs, stream_lines, workspace};
use crate::vm::{self, VmSpec};

/// Options of `cargo xtask test`. CI passes none.
#[derive(Debug, clap::Args)]
pub(crate) struct TestArgs {
    /// Only boot kernels whose label contains this (not inside a longer number: 6.1 is not 6.12).
    #[arg(long)]
    kernel: Option<String>,
    /// Skip the VM suites.
    #[arg(long)]
    skip_vm: bool,
    /// Skip the privileged suite on the host.
    #[arg(long)]
    skip_host: bool,
    /// Skip `cargo test` (unit tests).
    #[arg(long)]
    skip_unit: bool,
    /// Skip the deploy suite (manifests, container build file, systemd units).
    #[arg(long)]
    skip_deploy: bool,
    /// Skip playing `cargo xtask demo` in the newest VM kernel.
    #[arg(long)]
    skip_demo: bool,
    /// Only run privileged tests whose name contains this (or, comma
    /// separated, any of these).
    #[arg(long)]
    filter: Option<String>,
    /// Seconds before a VM (or the host privileged run) counts as hung.
    #[arg(long, default_value_t = 1200)]
    vm_timeout: u64,
    /// VM guests run at once (each TCG guest is mostly one busy host core).
    #[arg(long, default_value_t = 2)]
    vm_jobs: usize,
}

/// One suite's counts and the reasons for its failures.
#[derive(Debug, Default)]
pub(crate) struct Suite {
    name: &'static str,
    place: String,
    pub(crate) passed: u32,
    pub(crate) failed: u32,
    pub(crate) skipped: u32,
    failures: Vec<String>,
    /// Each privileged case's outcome, for the conformance table.
    cases: Vec<(String, Outcome)>,
}

impl Suite {
    pub(crate) fn new(name: &'static str, place: String) -> Self {
        Self {
            name,
            place,
            ..Self::default()
        }
    }

    pub(crate) fn fail(&mut self, why: String) {
        self.failed += 1;
        self.failures.push(why);
    }

    fn print(&self) {
        println!(
            "{} ({}): {} passed, {} failed, {} skipped",
            self.name, self.place, self.passed, self.failed, self.skipped
        );
    }
}

/// A suite that could not run at all counts as one failure.
fn errored(name: &'static str, place: String, err: &anyhow::Error) -> Suite {
    let mut suite = Suite::new(name, place);
    suite.fail(format!("could not run: {err:#}"));
    suite
}

/// The number written just before ` <word>` in `text` (`"3 passed"` → 3).
fn count_before(text: &str, word: &str) -> Option<u32> {
    let end = text.find(&format!(" {word}"))?;
    text[..end]
        .rsplit([' ', ',', ';', '.'])
        .next()?
        .parse()
        .ok()
}

/// `test result: ok. 3 passed; 1 failed; 2 ignored; ...` → [3, 1, 2].
pub(crate) fn parse_libtest(line: &str) -> Option<[u32; 3]> {
    let rest = &line[line.find("test result: ")?..];
    Some([
        count_before(rest, "passed")?,
        count_before(rest, "failed")?,
        count_before(rest, "ignored")?,
    ])
}

/// What `acelogic-privtest` printed.
#[derive(Debug, Default, PartialEq, Eq)]
struct PrivReport {
    counts: [u32; 3],
    outcomes: Vec<(String, Outcome)>,
    failures: Vec<String>,
    summary: Option<[u32; 3]>,
    kernel_panic: bool,
}

fn parse_privtest<'a>(lines: impl IntoIterator<Item = &'a str>) -> PrivReport {
    let mut report = PrivReport::default();
    for line in lines {
        if let Some(i) = line.find("ACELOGIC-TEST ") {
            let rest = line[i + "ACELOGIC-TEST ".len()..].trim_start();
            let (name, rest) = rest.split_once(' ').unwrap_or((rest, ""));
            let rest = rest.trim_start();
            let (verdict, detail) = rest.split_once(' ').unwrap_or((rest, ""));
            let outcome = match verdict {
                "PASS" => {
                    report.counts[0] += 1;
                    Outcome::Pass
                }
                "SKIP" => {
                    report.counts[2] += 1;
                    Outcome::Skip
                }
                "FAIL" => {
                    report.counts[1] += 1;
                    report.failures.push(format!("{name}: {}", detail.trim()));
                    Outcome::Fail
                }
                other => {
                    report.counts[1] += 1;
                    report
                        .failures
                        .push(format!("{name}: unknown verdict `{other}` in: {line}"));
                    Outcome::Fail
                }
            };
            report.outcomes.push((name.to_owned(), outcome));
        } else if let Some(i) = line.find("ACELOGIC-SUMMARY ") {
            let rest = &line[i..];
            report.summary = (|| {
                Some([
                    count_before(rest, "passed")?,
                    count_before(rest, "failed")?,
                    count_before(rest, "skipped")?,
                ])
            })();
        } else if line.contains("Kernel panic") {
            report.kernel_panic = true;
        }
    }
    report
}

/// Turns a privileged run into suite counts; `exit` is the binary's exit code.
fn judge(suite: &mut Suite, report: &PrivReport, exit: Option<i32>, reported: bool) {
    let [passed, failed, skipped] = report.counts;
    suite.passed += passed;
    suite.skipped += skipped;
    suite.failed += failed;
    suite.failures.extend(report.failures.iter().cloned());
    suite.cases.extend(report.outcomes.iter().cloned());
    if report.kernel_panic {
        suite.fail("the kernel panicked (see `Kernel panic` in the console output)".to_owned());
    }
    if !reported {
        return;
    }
    match report.summary {
        None => suite
            .fail("no ACELOGIC-SUMMARY line: acelogic-privtest crashed or was cut off".to_owned()),
        Some(s) if s != report.counts => suite.fail(format!(
            "ACELOGIC-SUMMARY says {} passed, {} failed, {} skipped but the ACELOGIC-TEST lines \
             say {passed}, {failed}, {skipped}",
            s[0], s[1], s[2]
        )),
        Some(_) => {}
    }
    match exit {
        Some(0) if failed > 0 => {
            suite.fail("acelogic-privtest exited 0 although tests failed".into());
        }
        Some(rc) if rc != 0 && failed == 0 => {
            suite.fail(format!(
                "acelogic-privtest exited {rc} although no test failed"
            ));
        }
        None => suite.fail("acelogic-privtest was killed by a signal".into()),
        Some(_) => {}
    }
}

/// Crates that must build with no BPF toolchain: none may depend on the
/// kernel adapter or anything that runs aya-build.
const BPF_FREE: &[&str] = &[
    "acelogic-domain",
    "acelogic-proto",
    "acelogic-authz",
    "acelogic-lineage",
    "acelogic-collector",
    "acelogic-authority",
    "acelogicctl",
    "acelogic-cluster",
];
/// What only the kernel adapter (and the daemon above it) may pull in.
const BPF_ONLY: &[&str] = &["acelogic-kernel", "acelogic-ebpf", "aya-build"];

/// The lint suite: the tree is `cargo fmt` and clippy clean (the BPF
/// programs too, for their target), and the crates that need no BPF do not
/// reach the BPF toolchain through any dependency (normal or build), so
/// they build on stable Rust without bpf-linker.
fn lint(ws: &Path) -> Suite {
    let mut suite = Suite::new("lint", format!("host {}", kernel_release()));
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let fmt = Command::new(&cargo)
        .args(["fmt", "--all", "--check", "--manifest-path"])
        .arg(ws.join("Cargo.toml"))
        .status();
    match fmt {
        Ok(s) if s.success() => suite.passed += 1,
        Ok(s) => suite.fail(format!(
            "`cargo fmt --all --check` exited with {s}: run `cargo fmt --all`"
        )),
        Err(e) => suite.fail(format!("could not run cargo fmt: {e}")),
    }
    // Clippy of the default members (all but the BPF-only crate), with
    // the workspace's strict lints as errors.
    let clippy = cargo_with_linker().and_then(|mut c| {
        c.args(["clippy", "--quiet", "--all-targets", "--manifest-path"])
            .arg(ws.join("Cargo.toml"))
            .args(["--", "-D", "warnings"])
            .status()
            .map_err(Into::into)
    });
    match clippy {
        Ok(s) if s.success() => suite.passed += 1,
        Ok(s) => suite.fail(format!(
            "`cargo clippy --all-targets -- -D warnings` exited with {s}: see above"
        )),
        Err(e) => suite.fail(format!("could not run cargo clippy: {e:#}")),
    }
    // Clippy of the BPF programs, which the run above leaves out: for the
    // BPF target, as aya-build builds them (nightly, `-Z build-std=core`,
    // the same `bpf_target_arch`), so the lints see the code that loads.
    let target = if cfg!(target_endian = "big") {
        "bpfeb-unknown-none"
    } else {
        "bpfel-unknown-none"
    };
    let bpf_clippy = nightly_cargo().and_then(|mut c| {
        c.args([
            "clippy",
            "--quiet",
            "--package",
            "acelogic-ebpf",
            "--release",
            "--target",
            target,
            "-Z",
            "build-std=core",
            "--manifest-path",
        ])
        .arg(ws.join("Cargo.toml"))
        .env(
            "CARGO_ENCODED_RUSTFLAGS",
            format!("--cfg=bpf_target_arch=\"{}\"", std::env::consts::ARCH),
        )
        .args(["--", "-D", "warnings"])
        .status()
        .map_err(Into::into)
    });
    match bpf_clippy {
        Ok(s) if s.success() => suite.passed += 1,
        Ok(s) => suite.fail(format!(
            "`cargo +nightly clippy -p acelogic-ebpf --target {target} -Z build-std=core -- -D \
             warnings` exited with {s}: see above"
        )),
        Err(e) => suite.fail(format!("could not run clippy on acelogic-ebpf: {e:#}")),
    }
    for krate in BPF_FREE {
        let out = Command::new(&cargo)
            .args([
                "tree",
                "--quiet",
                "--prefix",
                "none",
                "-e",
                "normal,build",
                "-p",
                krate,
            ])
            .arg("--manifest-path")
            .arg(ws.join("Cargo.toml"))
            .output();
        match out {
            Ok(o) if o.status.success() => {
                let tree = String::from_utf8_lossy(&o.stdout);
                let reached: Vec<&str> = BPF_ONLY
                    .iter()
                    .copied()
                    .filter(|dep| {
                        tree.lines()
                            .any(|l| l.split_whitespace().next() == Some(*dep))
                    })
                    .collect();
                if reached.is_empty() {
                    suite.passed += 1;
                } else {
                    suite.fail(format!(
                        "{krate} depends on {reached:?}: it would need the BPF toolchain"
                    ));
                }
            }
            Ok(o) => suite.fail(format!(
                "`cargo tree -p {krate}` failed: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            )),
            Err(e) => suite.fail(format!("could not run cargo tree: {e}")),
        }
    }
    suite
}

fn unit() -> Result<Suite> {
    let mut suite = Suite::new("unit", format!("host {}", kernel_release()));
    let ws = workspace()?;
    let mut cmd = cargo_with_linker()?;
    // The default members: the whole workspace except the BPF-only crate.
    cmd.arg("test")
        .arg("--manifest-path")
        .arg(ws.root.join("Cargo.toml"))
        .arg("--no-fail-fast");
    let end = stream_lines(
        &mut cmd,
        None,
        "run `cargo test` yourself to see why",
        |line| {
            println!("{line}");
            if let Some([p, f, i]) = parse_libtest(line) {
                suite.passed += p;
                suite.failed += f;
                suite.skipped += i;
            }
        },
    )?;
    if let StreamEnd::Exited(status) = end
        && !status.success()
        && suite.failed == 0
    {
        suite.fail(format!(
            "`cargo test` exited with {status} (a build error? see above)"
        ));
    }
    Ok(suite)
}

/// The packages whose binaries a node, the demo and the VM suites ship.
pub(crate) const SERVICE_BINS: &[&str] = &[
    "-p",
    "acelogic-agent",
    "-p",
    "acelogic-collector",
    "-p",
    "acelogic-authority",
    "-p",
    "acelogicctl",
    "--bins",
];

/// Builds one cargo target set in release mode; `Err` holds the reason.
pub(crate) fn cargo_build(args: &[&str]) -> Result<(), String> {
    let mut cmd = cargo_with_linker().map_err(|e| format!("{e:#}"))?;
    cmd.args(["build", "--release"]).args(args);
    let status = cmd
        .status()
        .map_err(|e| format!("could not run cargo: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "`cargo build --release {}` failed ({status})",
            args.join(" ")
        ))
    }
}

/// Counts a build as passed or failed; returns whether it passed.
fn record(suite: &mut Suite, result: Result<(), String>) -> bool {
    match result {
        Ok(()) => {
            suite.passed += 1;
            true
        }
        Err(why) => {
            suite.fail(why);
            false
        }
    }
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn host_privileged(bin: Option<&Path>, args: &TestArgs) -> Result<Suite> {
    let mut suite = Suite::new("privileged", format!("host {}", kernel_release()));
    let Some(bin) = bin else {
        println!("privileged (host): skipped: acelogic-privtest did not build");
        suite.skipped = 1;
        return Ok(suite);
    };
    if !is_root() {
        println!("privileged (host): skipped: not root (BPF needs root)");
        suite.skipped = 1;
        return Ok(suite);
    }
    let mut cmd = Command::new(bin);
    cmd.args(["--env", "host"]).stderr(Stdio::piped());
    if let Some(filter) = &args.filter {
        cmd.args(["--filter", filter]);
    }
    let timeout = Duration::from_secs(args.vm_timeout);
    let mut lines = Vec::new();
    let end = stream_lines(
        &mut cmd,
        Some(timeout),
        "build it with `cargo xtask test`",
        |line| {
            println!("  host| {line}");
            lines.push(line.to_owned());
        },
    )?;
    let report = parse_privtest(lines.iter().map(String::as_str));
    match end {
        StreamEnd::TimedOut => {
            judge(&mut suite, &report, None, false);
            suite.fail(format!(
                "acelogic-privtest on the host never finished (timeout after {} s)",
                args.vm_timeout
            ));
        }
        StreamEnd::Exited(status) => judge(&mut suite, &report, status.code(), true),
    }
    Ok(suite)
}

/// The privileged test binary and the workspace binaries it drives
/// (`/usr/bin/acelogic-agent`, `/usr/bin/acelogicctl`,
/// `/usr/bin/acelogic-collector`, `/usr/bin/acelogic-authority`), and etcd
/// (`/usr/bin/etcd`).
fn guest_files(privtest: &Path) -> Vec<(PathBuf, String)> {
    let mut files = vec![(privtest.to_path_buf(), "/acelogic-privtest".to_owned())];
    // The cluster cases start their own etcd member in the guest.
    let etcd = Path::new("/usr/bin/etcd");
    if etcd.is_file() {
        files.push((etcd.to_path_buf(), "/usr/bin/etcd".to_owned()));
    }
    if let Some(dir) = privtest.parent() {
        for name in [
            "acelogic-agent",
            "acelogicctl",
            "acelogic-collector",
            "acelogic-authority",
        ] {
            let p = dir.join(name);
            if p.is_file() {
                files.push((p, format!("/usr/bin/{name}")));
            }
        }
    }
    files
}

fn vm_privileged(
    kernel: &Kernel,
    bin: Option<&Path>,
    args: &TestArgs,
    root: &Path,
) -> Result<Suite> {
    let mut suite = Suite::new("privileged", format!("vm {}", kernel.label));
    let Some(bin) = bin else {
        println!(
            "privileged (vm {}): skipped: acelogic-privtest did not build",
            kernel.label
        );
        suite.skipped = 1;
        return Ok(suite);
    };
    let mut payload = "/acelogic-privtest --env vm".to_owned();
    if let Some(filter) = &args.filter {
        payload.push_str(&format!(" --filter {}", shell_quote(filter)));
    }
    let spec = VmSpec {
        name: kernel.label.clone(),
        kernel: kernel.clone(),
        files: guest_files(bin),
        payload,
        timeout: Duration::from_secs(args.vm_timeout),
        clock: vm::Clock::Wall,
    };
    println!(
        "vm {}: booting (QEMU TCG, timeout {} s)",
        kernel.label, args.vm_timeout
    );
    let mut started = false;
    let outcome = vm::run_vm(&spec, root, |line| {
        started |= line.contains(vm::START_MARKER);
        if started {
            println!("  {}| {line}", kernel.label);
        }
    })?;
    let report = parse_privtest(vm::after_start(&outcome.lines).iter().map(String::as_str));
    let reported = outcome.exit.is_some() && !outcome.timed_out;
    judge(&mut suite, &report, outcome.exit, reported);
    if outcome.timed_out {
        suite.fail(format!(
            "VM {} never reported (timeout after {} s)",
            kernel.label, args.vm_timeout
        ));
    } else if outcome.exit.is_none() {
        suite.fail(format!(
            "VM {} never reported (no ACELOGIC-VM-EXIT line)",
            kernel.label
        ));
    }
    if suite.failed > 0 {
        if !started {
            for line in &outcome.lines {
                println!("  {}| {line}", kernel.label);
            }
        }
        println!(
            "vm {}: full console log: {}",
            kernel.label,
            outcome.log.display()
        );
    }
    println!("vm {}: finished in {}", kernel.label, secs(outcome.elapsed));
    Ok(suite)
}

/// A QEMU guest of the run: a kernel's privileged suite, or the demo.
enum Guest<'a> {
    Privileged(&'a Kernel),
    Demo(&'a Kernel),
}

impl Guest<'_> {
    fn timing_name(&self) -> String {
        match self {
            Guest::Privileged(k) => format!("vm {}", k.label),
            Guest::Demo(_) => "demo".to_owned(),
        }
    }
}

/// Runs `run` for every guest, at most `jobs` at once, in order of the
/// list as workers free up; returns each guest's suite (printed as it
/// ends) and time, in the order of `guests`. Under TCG a guest leaves
/// much of two cores idle: measured on this 2-core machine, one guest
/// alone runs the suite in about 7 min and two at once in 10 to 11 min
/// each, about 1.6 times the throughput, which fits the matrix into CI.
fn run_guests<'a>(
    guests: &[Guest<'a>],
    jobs: usize,
    run: impl Fn(&Guest<'a>) -> Suite + Sync,
) -> Vec<(Suite, Duration)> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let done: std::sync::Mutex<Vec<Option<(Suite, Duration)>>> =
        std::sync::Mutex::new(guests.iter().map(|_| None).collect());
    std::thread::scope(|scope| {
        for _ in 0..jobs.clamp(1, guests.len().max(1)) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let Some(guest) = guests.get(i) else { break };
                    let t = Instant::now();
                    let suite = run(guest);
                    suite.print();
                    let took = t.elapsed();
                    done.lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)[i] =
                        Some((suite, took));
                }
            });
        }
    });
    done.into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .into_iter()
        .zip(guests)
        .map(|(r, g)| {
            r.unwrap_or_else(|| {
                let place = match g {
                    Guest::Privileged(k) | Guest::Demo(k) => format!("vm {}", k.label),
                };
                (
                    errored("guest", place, &anyhow::anyhow!("its worker ended early")),
                    Duration::ZERO,
                )
            })
        })
        .collect()
}

/// Plays the demo in `kernel` with the release binaries just built.
fn demo(kernel: &Kernel, args: &TestArgs, ws: &crate::util::Workspace) -> Suite {
    let mut suite = Suite::new("demo", format!("vm {}", kernel.label));
    let mut tail: Vec<String> = Vec::new();
    match crate::demo::play(
        kernel,
        &ws.target_dir.join("release"),
        &ws.root,
        Duration::from_secs(args.vm_timeout),
        |line| {
            // Only the step headers and the verdicts; the full
            // story is in the console log.
            if line.starts_with("== ") || line.contains("DEMO") {
                println!("  demo| {line}");
            }
            tail.push(line.to_owned());
        },
    ) {
        Ok(()) => suite.passed += 1,
        Err(e) => {
            for line in tail.iter().rev().take(30).rev() {
                println!("  demo| {line}");
            }
            suite.fail(format!("{e:#}"));
        }
    }
    suite
}

/// Runs every suite; returns whether all passed.
pub(crate) fn test(args: &TestArgs) -> Result<bool> {
    let mut timings: Vec<(String, Duration)> = Vec::new();
    let t = Instant::now();
    let ready = setup()?;
    timings.push(("setup".into(), t.elapsed()));
    let matrix = kernels::select(ready.kernels, args.kernel.as_deref())?;
    let ws = workspace()?;
    let mut suites = Vec::new();

    let t = Instant::now();
    let suite = lint(&ws.root);
    suite.print();
    suites.push(suite);
    timings.push(("lint".into(), t.elapsed()));

    if args.skip_unit {
        println!("unit: skipped (--skip-unit)");
    } else {
        let t = Instant::now();
        let host = format!("host {}", kernel_release());
        let suite = unit().unwrap_or_else(|e| errored("unit", host, &e));
        suite.print();
        suites.push(suite);
        timings.push(("unit".into(), t.elapsed()));
    }

    // The release builds serve the privileged suites (and the deploy
    // suite's systemd checks, which build what they miss themselves).
    let privtest: Option<PathBuf> = if args.skip_host && args.skip_vm {
        println!("build: skipped (no privileged suite runs)");
        None
    } else {
        let t = Instant::now();
        let mut build = Suite::new("build", format!("host {}", kernel_release()));
        let privtest_built = record(
            &mut build,
            cargo_build(&["-p", "acelogic-tests", "--bin", "acelogic-privtest"]),
        );
        record(&mut build, cargo_build(SERVICE_BINS));
        let bin = ws.target_dir.join("release/acelogic-privtest");
        build.print();
        suites.push(build);
        timings.push(("build".into(), t.elapsed()));
        (privtest_built && bin.is_file()).then_some(bin)
    };

    if args.skip_deploy {
        println!("deploy: skipped (--skip-deploy)");
    } else {
        let t = Instant::now();
        let suite = deploy::suite(&ws.root, &ws.target_dir)
            .unwrap_or_else(|e| errored("deploy", "host, offline".to_owned(), &e));
        suite.print();
        suites.push(suite);
        timings.push(("deploy".into(), t.elapsed()));
    }

    if args.skip_host {
        println!("privileged (host): skipped (--skip-host)");
    } else {
        let t = Instant::now();
        let host = format!("host {}", kernel_release());
        let suite = host_privileged(privtest.as_deref(), args)
            .unwrap_or_else(|e| errored("privileged", host, &e));
        suite.print();
        suites.push(suite);
        timings.push(("privileged host".into(), t.elapsed()));
    }

    let mut guests: Vec<Guest<'_>> = Vec::new();
    if args.skip_vm {
        println!("privileged (vm): skipped (--skip-vm)");
    } else {
        guests.extend(matrix.iter().map(Guest::Privileged));
    }
    // The demo is the README's first command: play it here too (newest
    // kernel, the release binaries just built), so it cannot rot.
    if args.skip_vm || args.skip_demo || args.filter.is_some() {
        println!("demo: skipped (--skip-vm, --skip-demo or --filter)");
    } else if let Some(kernel) = matrix.last() {
        guests.push(Guest::Demo(kernel));
    }
    let t = Instant::now();
    let ran = run_guests(&guests, args.vm_jobs, |guest| match guest {
        Guest::Privileged(kernel) => {
            let place = format!("vm {}", kernel.label);
            vm_privileged(kernel, privtest.as_deref(), args, &ws.root)
                .unwrap_or_else(|e| errored("privileged", place, &e))
        }
        Guest::Demo(kernel) => demo(kernel, args, &ws),
    });
    if !guests.is_empty() {
        timings.push((
            format!("guests ({} at once)", args.vm_jobs.max(1)),
            t.elapsed(),
        ));
    }
    let columns: Vec<conformance::Column<'_>> = guests
        .iter()
        .zip(&ran)
        .filter_map(|(guest, (suite, _))| match guest {
            Guest::Privileged(k) => Some(conformance::Column {
                label: &k.label,
                cases: &suite.cases,
            }),
            Guest::Demo(_) => None,
        })
        .collect();
    if !columns.is_empty() {
        let whole = args.kernel.is_none() && args.filter.is_none();
        match conformance::write(&ws.root, &columns, whole) {
            Ok(path) => println!("conformance table: {}", path.display()),
            Err(e) => println!("conformance table: not written: {e:#}"),
        }
    }
    drop(columns);
    for (guest, (suite, took)) in guests.iter().zip(ran) {
        suites.push(suite);
        timings.push((guest.timing_name(), took));
    }

    println!();
    let failures: Vec<String> = suites
        .iter()
        .flat_map(|s| {
            s.failures
                .iter()
                .map(move |f| format!("  {} ({}): {f}", s.name, s.place))
        })
        .collect();
    if !failures.is_empty() {
        println!("failures:");
        for f in &failures {
            println!("{f}");
        }
    }
    let timing: Vec<String> = timings
        .iter()
        .map(|(n, d)| format!("{n} {}", secs(*d)))
        .collect();
    println!("timings: {}", timing.join(", "));
    let (p, f, s) = suites.iter().fold((0, 0, 0), |(p, f, s), x| {
        (p + x.passed, f + x.failed, s + x.skipped)
    });
    println!("total: {p} passed, {f} failed, {s} skipped");
    Ok(f == 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_libtest_lines() {
        let line = "test result: FAILED. 12 passed; 2 failed; 3 ignored; 0 measured; 0 filtered out; finished in 0.01s";
        assert_eq!(parse_libtest(line), Some([12, 2, 3]));
        assert_eq!(parse_libtest("running 3 tests"), None);
    }

    #[test]
    fn parses_privtest_output() {
        let out = "log line\nACELOGIC-TEST exec_denied PASS blocked /bin/true\n\
                   [  1.0] noise ACELOGIC-TEST open_denied FAIL write-open succeeded\n\
                   ACELOGIC-TEST needs_btf SKIP no BTF\n\
                   ACELOGIC-SUMMARY 1 passed, 1 failed, 1 skipped\n";
        let report = parse_privtest(out.lines());
        assert_eq!(report.counts, [1, 1, 1]);
        assert_eq!(
            report.outcomes,
            [
                ("exec_denied".to_owned(), Outcome::Pass),
                ("open_denied".to_owned(), Outcome::Fail),
                ("needs_btf".to_owned(), Outcome::Skip),
            ]
        );
        assert_eq!(report.summary, Some([1, 1, 1]));
        assert_eq!(report.failures, ["open_denied: write-open succeeded"]);
        let mut suite = Suite::new("privileged", "vm x".into());
        judge(&mut suite, &report, Some(1), true);
        assert_eq!((suite.passed, suite.failed, suite.skipped), (1, 1, 1));
    }

    #[test]
    fn flags_missing_or_wrong_summary() {
        let report = parse_privtest(["ACELOGIC-TEST a PASS ok", "thread 'main' panicked"]);
        let mut suite = Suite::new("privileged", "host".into());
        judge(&mut suite, &report, Some(101), true);
        assert_eq!(suite.failed, 2, "{:?}", suite.failures);
        let report = parse_privtest([
            "ACELOGIC-TEST a PASS ok",
            "ACELOGIC-SUMMARY 2 passed, 0 failed, 0 skipped",
        ]);
        let mut suite = Suite::new("privileged", "host".into());
        judge(&mut suite, &report, Some(0), true);
        assert_eq!(suite.failed, 1);
        let report = parse_privtest(["Kernel panic - not syncing: x"]);
        assert!(report.kernel_panic);
    }
}
