//! The runner: requirements, one subprocess per case, result lines.

use std::{
    io::Read,
    os::unix::process::CommandExt as _,
    process::{Command, ExitStatus, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use acelogic_kernel::{Kernel, compat};

use crate::fixtures;

/// Where the tests run. On the host a missing kernel feature skips the
/// tests that need it; in the VM matrix every feature is required, so a
/// missing one fails instead of silently skipping.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Env {
    Host,
    Vm,
}

/// What a case needs from the kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// BPF LSM programs load (probed by loading the exec gate).
    BpfLsm,
    /// The lineage programs (BTF tracepoints) load.
    Tracepoints,
}

/// One test.
#[derive(Debug, Clone, Copy)]
pub struct Case {
    pub name: &'static str,
    pub needs: &'static [Need],
    pub run: fn() -> anyhow::Result<()>,
}

#[derive(Debug)]
enum Outcome {
    Pass,
    Fail(String),
    Skip(String),
}

/// Exit status of a child that skipped (automake's convention).
const EXIT_SKIP: i32 = 77;
/// Longest a single case may take before it is killed and failed: a
/// guard against a hung case, not a measure of speed. The slowest case
/// (`exec_parents_exact_across_daemon_kills`, 6,000 execs and 10 daemon
/// restarts) took 166 s for 9 of its 10 rounds on 7.3.4 while another
/// guest shared the two host cores, and about 55 s alone.
const CASE_TIMEOUT: Duration = Duration::from_secs(360);

/// Runs every case whose name contains `filter` (or one of its
/// comma-separated parts); returns the process exit code.
pub fn run_all(env: Env, filter: Option<&str>, cases: &[Case]) -> i32 {
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    if root && let Err(e) = fixtures::ensure_mounts() {
        println!("acelogic-privtest: preparing mounts failed: {e:#}");
    }
    let lsm = if root {
        probe(Need::BpfLsm)
    } else {
        Err("not root".to_owned())
    };
    let tracepoints = if root {
        probe(Need::Tracepoints)
    } else {
        Err("not root".to_owned())
    };

    // Verifying two dozen LSM programs takes seconds under emulation, so
    // they are loaded and pinned once per run; cases adopt them (and use
    // their own scope ids and cgroups, so their rules cannot meet).
    // A kernel that refuses the object fails every case that needs it at
    // once, with the loader's error, instead of each timing out.
    let (shared, refused) = match lsm.is_ok().then(install_shared) {
        Some(Ok(dir)) => (Some(dir), None),
        Some(Err(e)) => {
            println!("acelogic-privtest: the programs do not install on this kernel: {e:#}");
            let first = format!("{e:#}");
            let first = first.lines().next().unwrap_or_default().to_owned();
            (
                None,
                Some(format!(
                    "the programs do not install on this kernel: {first}"
                )),
            )
        }
        None => (None, None),
    };

    let (mut passed, mut failed, mut skipped) = (0u32, 0u32, 0u32);
    for case in cases
        .iter()
        .filter(|c| filter.is_none_or(|f| f.split(',').any(|f| c.name.contains(f))))
    {
        let missing = case.needs.iter().find_map(|need| {
            let available = match need {
                Need::BpfLsm => &lsm,
                Need::Tracepoints => &tracepoints,
            };
            available
                .as_ref()
                .err()
                .map(|why| format!("{need:?} unavailable: {why}"))
        });
        let outcome = match (missing, env) {
            (Some(why), Env::Host) => Outcome::Skip(format!("host kernel: {why}")),
            (Some(why), Env::Vm) => Outcome::Fail(format!("required in the VM matrix: {why}")),
            (None, _) => match &refused {
                Some(why) if case.needs.contains(&Need::BpfLsm) => Outcome::Fail(why.clone()),
                _ => run_isolated(case, env, shared.as_deref()),
            },
        };
        let (word, detail) = match &outcome {
            Outcome::Pass => {
                passed += 1;
                ("PASS", "")
            }
            Outcome::Fail(d) => {
                failed += 1;
                ("FAIL", d.as_str())
            }
            Outcome::Skip(d) => {
                skipped += 1;
                ("SKIP", d.as_str())
            }
        };
        println!(
            "ACELOGIC-TEST {} {word} {}",
            case.name,
            detail.replace('\n', " | ")
        );
    }
    if let Some(dir) = &shared
        && let Err(e) = acelogic_kernel::uninstall(dir)
    {
        println!("acelogic-privtest: removing the shared install: {e:#}");
        failed += 1;
    }
    println!("ACELOGIC-SUMMARY {passed} passed, {failed} failed, {skipped} skipped");
    i32::from(failed > 0)
}

/// Environment variable naming the pinned install cases adopt.
pub const SHARED_PIN_DIR: &str = "ACELOGIC_TEST_PIN_DIR";

/// Loads, attaches and pins every program once for the whole run.
fn install_shared() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::path::PathBuf::from(format!(
        "/sys/fs/bpf/acelogic-privtest-{}",
        std::process::id()
    ));
    let mut kernel = Kernel::load_with(&acelogic_kernel::LoadOptions {
        pin_dir: Some(dir.clone()),
        ..Default::default()
    })?;
    kernel.attach_all()?;
    Ok(dir)
}

/// Can this kernel do what `need` says? `Err` carries the reason.
fn probe(need: Need) -> Result<(), String> {
    let specs: &[compat::ProgramSpec] = match need {
        Need::BpfLsm => &[compat::EXEC_GATE],
        Need::Tracepoints => &compat::LINEAGE,
    };
    let mut kernel = Kernel::load().map_err(|e| format!("{e:#}"))?;
    for spec in specs {
        kernel.probe(spec).map_err(|e| match e.load_errno() {
            Some(libc::EPERM) => format!(
                "BPF_PROG_LOAD of `{}` returned EPERM (this kernel refuses BPF trampoline \
                 programs)",
                spec.name
            ),
            _ => format!("{e:#}"),
        })?;
    }
    Ok(())
}

/// Runs one case in a child process of this binary so that a crash, a
/// leaked program or a stuck cgroup cannot affect the next case.
fn run_isolated(case: &Case, env: Env, shared: Option<&std::path::Path>) -> Outcome {
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => return Outcome::Fail(format!("cannot find own executable: {e}")),
    };
    let env_arg = match env {
        Env::Host => "host",
        Env::Vm => "vm",
    };
    let mut command = Command::new(exe);
    if let Some(dir) = shared {
        command.env(SHARED_PIN_DIR, dir);
    }
    // Its own process group: a timeout kills what the case started too
    // (daemons, flooding children), which would otherwise run on and hold
    // the output pipes open.
    let child = command
        .process_group(0)
        .args(["--env", env_arg, "--run-one", case.name])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => return Outcome::Fail(format!("spawning the case: {e}")),
    };
    // Both pipes are drained while the case runs: a case that prints more
    // than a pipe holds (an error quoting a long daemon log) would
    // otherwise block on its write and look like a hang.
    let output = Output::default();
    let readers = [
        child.stdout.take().map(|p| output.drain(p)),
        child.stderr.take().map(|p| output.drain(p)),
    ];
    let started = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Ok(status),
            Ok(None) if started.elapsed() > CASE_TIMEOUT => {
                if let Ok(pgid) = libc::pid_t::try_from(child.id()) {
                    // SAFETY: a signal to the process group we created.
                    unsafe { libc::kill(-pgid, libc::SIGKILL) };
                }
                let _ = child.kill();
                let _ = child.wait();
                break Err(format!("timed out after {} s", CASE_TIMEOUT.as_secs()));
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(20)),
            Err(e) => break Err(format!("waiting for the case: {e}")),
        }
    };
    // A process the case left in another process group may hold a pipe
    // open: take what was read by then rather than wait for it.
    let deadline = Instant::now() + Duration::from_secs(5);
    for reader in readers.into_iter().flatten() {
        while !reader.is_finished() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let output = output.text();
    let outcome = match status {
        Ok(s) if s.success() => Outcome::Pass,
        Ok(s) if s.code() == Some(EXIT_SKIP) => Outcome::Skip(last_line(&output)),
        Ok(s) => Outcome::Fail(format!("{}: {}", describe(s), last_line(&output))),
        Err(e) => Outcome::Fail(e),
    };
    if !matches!(outcome, Outcome::Pass) {
        print_case_output(case.name, &output);
    }
    outcome
}

/// What a case printed on stdout and stderr, in the order it was read.
#[derive(Clone, Default)]
struct Output(Arc<Mutex<Vec<u8>>>);

impl Output {
    fn drain(&self, mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<()> {
        let sink = self.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                match pipe.read(&mut buf) {
                    Ok(0) => break,
                    Ok(n) => sink
                        .0
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(_) => break,
                }
            }
        })
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }
}

/// A failed case's output, its head and tail when it is long (the error
/// comes last).
fn print_case_output(name: &str, output: &str) {
    const HEAD: usize = 60;
    const TAIL: usize = 300;
    let lines: Vec<&str> = output.lines().collect();
    if lines.len() <= HEAD + TAIL {
        for line in &lines {
            println!("    {name} | {line}");
        }
        return;
    }
    for line in &lines[..HEAD] {
        println!("    {name} | {line}");
    }
    println!(
        "    {name} | ... {} lines left out ...",
        lines.len() - HEAD - TAIL
    );
    for line in &lines[lines.len() - TAIL..] {
        println!("    {name} | {line}");
    }
}

fn describe(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt as _;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => "unknown exit".to_owned(),
    }
}

fn last_line(output: &str) -> String {
    output
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("no output")
        .to_owned()
}

/// Runs one case in this process (the child side of [`run_isolated`]).
pub fn run_one(name: &str, cases: &[Case]) -> i32 {
    let Some(case) = cases.iter().find(|c| c.name == name) else {
        eprintln!("no test named {name}");
        return 2;
    };
    match (case.run)() {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("{e:#}");
            1
        }
    }
}
