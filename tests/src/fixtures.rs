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

use acelogic_agent::{
    kernel::{Records, cgroup_id},
    node,
};
use acelogic_common::user::Event;
use anyhow::{Context as _, bail};

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
