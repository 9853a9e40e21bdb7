//! What tests share: mounts, per-test cgroups, starting a process inside a
//! cgroup before it execs, collecting records.

use std::{
    ffi::CString,
    fs,
    os::unix::{ffi::OsStrExt as _, process::CommandExt as _},
    path::{Path, PathBuf},
    process::{Child, Command},
    time::{Duration, Instant},
};

use acelogic_common::user::{DecisionInfo, Event, Hook, Reason, Verdict};
use acelogic_domain::{cgroupfs as node, policy::Mode};
use acelogic_kernel::{Kernel, LoadOptions, Records, cgroup_id};
use acelogic_lineage as lineage;
use anyhow::{Context as _, bail, ensure};

/// Mounts tracefs, bpffs and securityfs where they are missing. Tests need
/// the real kernel interfaces; a bare VM init or a minimal host may lack
/// them.
pub fn ensure_mounts() -> anyhow::Result<()> {
    for (fstype, dir, probe) in [
        (
            "tracefs",
            "/sys/kernel/tracing",
            "/sys/kernel/tracing/events",
        ),
        ("bpf", "/sys/fs/bpf", ""),
        (
            "securityfs",
            "/sys/kernel/security",
            "/sys/kernel/security/lsm",
        ),
    ] {
        let present = if probe.is_empty() {
            mounted(fstype)
        } else {
            Path::new(probe).exists()
        };
        if !present {
            fs::create_dir_all(dir).ok();
            mount(fstype, dir).with_context(|| format!("mount -t {fstype} {fstype} {dir}"))?;
            println!("acelogic-privtest: mounted {fstype} on {dir}");
        }
    }
    Ok(())
}

fn mounted(fstype: &str) -> bool {
    fs::read_to_string("/proc/self/mounts").is_ok_and(|m| {
        m.lines()
            .any(|l| l.split_whitespace().nth(2) == Some(fstype))
    })
}

fn mount(fstype: &str, dir: &str) -> anyhow::Result<()> {
    let c = |s: &str| CString::new(s).context("NUL in mount argument");
    let (src, target, ty) = (c(fstype)?, c(dir)?, c(fstype)?);
    // SAFETY: all pointers are valid NUL-terminated strings or null.
    let rc = unsafe {
        libc::mount(
            src.as_ptr(),
            target.as_ptr(),
            ty.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error().into());
    }
    Ok(())
}

/// A cgroup v2 directory made for one test, removed when dropped.
#[derive(Debug)]
pub struct TestCgroup {
    pub path: PathBuf,
    pub id: u64,
}

impl TestCgroup {
    /// Creates `<cgroup2 root>/acelogic-test-<pid>-<name>`.
    pub fn new(name: &str) -> anyhow::Result<Self> {
        let root = node::cgroup2_mount().context("cgroup v2 is not mounted")?;
        let path = root.join(format!("acelogic-test-{}-{name}", std::process::id()));
        fs::create_dir(&path).with_context(|| format!("creating {}", path.display()))?;
        let id = cgroup_id(&path)?;
        Ok(Self { path, id })
    }

    /// The cgroup's directory name, as policies name it below the root.
    #[must_use]
    pub fn name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// A command that joins this cgroup after fork and before exec, so the
    /// exec itself is decided in the cgroup.
    pub fn command(&self, program: &str, args: &[&str]) -> anyhow::Result<Command> {
        let procs = CString::new(self.path.join("cgroup.procs").as_os_str().as_bytes())?;
        let mut cmd = Command::new(program);
        cmd.args(args);
        // SAFETY: the closure only calls async-signal-safe functions (open,
        // write, close) on memory prepared before fork.
        unsafe {
            cmd.pre_exec(move || {
                let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
                if fd < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let n = libc::write(fd, b"0".as_ptr().cast(), 1);
                let err = std::io::Error::last_os_error();
                libc::close(fd);
                if n != 1 {
                    return Err(err);
                }
                Ok(())
            });
        }
        Ok(cmd)
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        // The directory can only go once its processes have exited.
        let deadline = Instant::now() + Duration::from_secs(5);
        while fs::remove_dir(&self.path).is_err() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Waits for a child and returns its exit code.
pub fn exit_code(mut child: Child) -> anyhow::Result<i32> {
    let status = child.wait()?;
    status
        .code()
        .with_context(|| format!("child ended without an exit code: {status}"))
}

/// Collects records until `quiet` passes with none arriving (or `max`
/// overall). Undecodable records fail the test: they would be lost lineage.
pub fn collect(
    records: &mut Records,
    quiet: Duration,
    max: Duration,
) -> anyhow::Result<Vec<Event>> {
    let deadline = Instant::now() + max;
    let mut out = Vec::new();
    while Instant::now() < deadline {
        match records.next_within(quiet) {
            Some(Ok(e)) => out.push(e),
            Some(Err(e)) => bail!("undecodable record: {e}"),
            None => break,
        }
    }
    Ok(out)
}

/// This process's `comm` as the kernel reports it.
pub fn own_comm() -> anyhow::Result<String> {
    Ok(fs::read_to_string("/proc/self/comm")?.trim_end().to_owned())
}

/// Forks a child that first joins `cg`, then runs `f` and exits with what
/// it returned (250 when it could not join). Returns the child's pid; reap
/// it with [`reap`]. `f` runs in the child only: it should make raw system
/// calls.
pub fn spawn_in_cgroup(cg: &TestCgroup, f: impl FnOnce() -> i32) -> anyhow::Result<libc::pid_t> {
    let procs = CString::new(cg.path.join("cgroup.procs").as_os_str().as_bytes())?;
    // SAFETY: the child runs only `f`'s raw calls, then `_exit`.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        bail!("fork: {}", std::io::Error::last_os_error());
    }
    if pid == 0 {
        // SAFETY: child side; only raw calls, then `_exit`.
        unsafe {
            let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                libc::_exit(250);
            }
            libc::close(fd);
            libc::_exit(f());
        }
    }
    Ok(pid)
}

/// Waits for a child of [`spawn_in_cgroup`]; its exit code.
pub fn reap(pid: libc::pid_t, cg: &TestCgroup) -> anyhow::Result<i32> {
    let mut status = 0;
    // SAFETY: waiting for our own child with a valid out-pointer.
    if unsafe { libc::waitpid(pid, &raw mut status, 0) } != pid {
        bail!("waitpid: {}", std::io::Error::last_os_error());
    }
    ensure!(
        libc::WIFEXITED(status),
        "child ended without exiting: {status:#x}"
    );
    let code = libc::WEXITSTATUS(status);
    ensure!(
        code != 250,
        "the child could not join {}",
        cg.path.display()
    );
    Ok(code)
}

/// Runs `f` in a forked child that first joins `cg`, and returns what `f`
/// returned as the child's exit code. `f` should make raw system calls and
/// return 0 for success or the `errno` of the failure under test.
pub fn in_cgroup(cg: &TestCgroup, f: impl FnOnce() -> i32) -> anyhow::Result<i32> {
    let pid = spawn_in_cgroup(cg, f)?;
    reap(pid, cg)
}

/// The `errno` of a failed raw call (`rc < 0`), or 0 when it succeeded.
#[must_use]
pub fn errno_if(rc: i64) -> i32 {
    if rc < 0 {
        std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(255)
    } else {
        0
    }
}

/// A NUL-terminated copy of a path for raw calls.
#[must_use]
pub fn c_path(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).expect("test paths have no NUL")
}

/// Attached programs, a governed cgroup in an enforcing scope of its own,
/// and an ungoverned twin. The programs are adopted from the run's shared
/// pinned install when there is one (see `harness`), else loaded here and
/// detached on drop.
#[derive(Debug)]
pub struct Setup {
    pub kernel: Kernel,
    pub records: Records,
    pub governed: TestCgroup,
    pub free: TestCgroup,
    /// This case's scope id (unique in the run: the case's pid).
    pub scope: u32,
}

/// The scope id of tests that load their own programs.
pub const SCOPE: u32 = 7;

impl Setup {
    pub fn new(name: &str) -> anyhow::Result<Self> {
        Self::with(name, &LoadOptions::default())
    }

    /// With non-default options the case loads its own programs.
    pub fn with(name: &str, options: &LoadOptions) -> anyhow::Result<Self> {
        let shared = std::env::var_os(crate::harness::SHARED_PIN_DIR);
        let (options, scope) = match shared {
            Some(dir) if *options == LoadOptions::default() => (
                LoadOptions {
                    pin_dir: Some(PathBuf::from(dir)),
                    ..LoadOptions::default()
                },
                std::process::id(),
            ),
            _ => (options.clone(), SCOPE),
        };
        let mut kernel = Kernel::load_with(&options)?;
        kernel.attach_all()?;
        let mut records = kernel.records()?;
        drop(records.drain());
        let governed = TestCgroup::new(&format!("{name}-gov"))?;
        let free = TestCgroup::new(&format!("{name}-free"))?;
        kernel.define_scope(scope, Mode::Enforce)?;
        kernel.govern(&governed.path, scope)?;
        Ok(Self {
            kernel,
            records,
            governed,
            free,
            scope,
        })
    }

    /// Every decision of this case's scope recorded since the last call.
    pub fn decisions(&mut self) -> anyhow::Result<Vec<Event>> {
        let scope = self.scope;
        Ok(collect(
            &mut self.records,
            Duration::from_millis(300),
            Duration::from_secs(10),
        )?
        .into_iter()
        .filter(|e| e.decision().is_some_and(|d| d.scope_id == scope))
        .collect())
    }

    /// Every record since the last call: decisions of any scope and the
    /// lifecycle records (exec, fork, exit).
    pub fn events(&mut self) -> anyhow::Result<Vec<Event>> {
        collect(
            &mut self.records,
            Duration::from_millis(300),
            Duration::from_secs(10),
        )
    }

    /// Runs `f` governed and ungoverned; the ungoverned run must succeed
    /// (return 0). Returns the governed result.
    pub fn governed_and_free(&self, f: impl Fn() -> i32) -> anyhow::Result<i32> {
        let free = in_cgroup(&self.free, &f)?;
        ensure!(
            free == 0,
            "the same action failed ungoverned (errno {free}): the test proves nothing"
        );
        in_cgroup(&self.governed, &f)
    }
}

/// How a process started by [`exec_in`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exec {
    /// The exec succeeded and the program exited with this code.
    Ran(i32),
    /// The exec itself failed with this errno.
    Refused(i32),
}

/// Executes `program args` in `cg` (joining it between fork and exec).
pub fn exec_in(cg: &TestCgroup, program: &str, args: &[&str]) -> anyhow::Result<Exec> {
    match cg.command(program, args)?.spawn() {
        Ok(child) => Ok(Exec::Ran(exit_code(child)?)),
        Err(e) => Ok(Exec::Refused(e.raw_os_error().unwrap_or(-1))),
    }
}

/// The only decision in `events` made by `hook`, failing otherwise.
pub fn one_decision(events: &[Event], hook: Hook) -> anyhow::Result<&Event> {
    let mut it = events
        .iter()
        .filter(|e| e.decision().is_some_and(|d| d.hook == hook));
    let (Some(first), None) = (it.next(), it.next()) else {
        bail!(
            "expected exactly one {hook} decision, got {}",
            render_all(events)
        );
    };
    Ok(first)
}

/// Every decision with `hook`, verdict and reason.
pub fn decisions_of(events: &[Event], hook: Hook) -> Vec<&DecisionInfo> {
    events
        .iter()
        .filter_map(Event::decision)
        .filter(|d| d.hook == hook)
        .collect()
}

/// Asserts a decision's verdict and reason.
pub fn expect_decision(
    event: &Event,
    verdict: Verdict,
    reason: Reason,
) -> anyhow::Result<&DecisionInfo> {
    let d = event.decision().context("not a decision")?;
    ensure!(
        d.verdict == verdict && d.reason == reason,
        "expected {verdict}/{reason}, got {}",
        lineage::render(event)
    );
    Ok(d)
}

/// The records, one per line, for failure messages.
#[must_use]
pub fn render_all(events: &[Event]) -> String {
    let lines: Vec<String> = events.iter().map(lineage::render).collect();
    format!("[{}]", lines.join(" | "))
}

/// The resolved path of an executable on PATH-less systems: follows
/// symlinks (`/bin/sh` is a link to busybox in the VM).
pub fn real(path: &str) -> anyhow::Result<PathBuf> {
    fs::canonicalize(path).with_context(|| format!("resolving {path}"))
}

/// A fresh scratch directory under /tmp, removed when dropped.
#[derive(Debug)]
pub struct Scratch {
    pub path: PathBuf,
}

impl Scratch {
    pub fn new(name: &str) -> anyhow::Result<Self> {
        let path = PathBuf::from(format!("/tmp/acelogic-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path)?;
        Ok(Self { path })
    }

    #[must_use]
    pub fn join(&self, p: &str) -> PathBuf {
        self.path.join(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}
