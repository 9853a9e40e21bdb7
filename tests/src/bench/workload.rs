//! The measured workloads and the child that runs them: forked, moved into
//! a cgroup, optionally confined by a kernel-native peer, then timed by
//! itself with raw system calls only.

use std::{
    ffi::CStr,
    fs,
    io::Read as _,
    net::Ipv4Addr,
    os::fd::{FromRawFd as _, OwnedFd},
    path::PathBuf,
    time::Instant,
};

use anyhow::{Context as _, bail, ensure};

use super::{apparmor, landlock};
use crate::fixtures::{TestCgroup, c_path};

/// One measured workload.
#[derive(Debug, Clone, Copy)]
pub(super) enum Workload {
    OpenClose,
    /// One byte written and read back through a descriptor opened once:
    /// what `file_permission` costs every read and write on the node.
    WriteRead,
    ForkExec,
    Connect,
}

impl Workload {
    pub(super) const ALL: [Self; 4] = [
        Self::OpenClose,
        Self::WriteRead,
        Self::ForkExec,
        Self::Connect,
    ];

    pub(super) const fn name(self) -> &'static str {
        match self {
            Self::OpenClose => "open+close (write)",
            Self::WriteRead => "pwrite+pread (1 byte, open file)",
            Self::ForkExec => "fork+exec+wait",
            Self::Connect => "tcp connect+close",
        }
    }

    pub(super) const fn iterations(self) -> u32 {
        match self {
            Self::OpenClose => 5_000,
            Self::WriteRead => 20_000,
            Self::ForkExec => 200,
            Self::Connect => 2_000,
        }
    }
}

/// What the workloads act on.
#[derive(Debug)]
pub(super) struct Bench {
    /// The file opened for writing (inside `dir`).
    pub(super) file: PathBuf,
    pub(super) dir: PathBuf,
    /// The shell the fork+exec workload runs (`sh -c 'exit 0'`).
    pub(super) shell: PathBuf,
    pub(super) port: u16,
}

/// What the measuring child does to itself after joining its cgroup and
/// before the timed loop. Everything that allocates is prepared before
/// the fork: the child makes raw calls only.
#[derive(Debug)]
pub(super) enum Confine<'a> {
    Nothing,
    Landlock(landlock::Prepared),
    AppArmor(&'a apparmor::Attach),
}

/// Runs `w` in a child forked into `cg`, confined as `confine` says, and
/// returns nanoseconds per iteration, measured by the child.
pub(super) fn measure(
    b: &Bench,
    cg: &TestCgroup,
    w: Workload,
    confine: Confine<'_>,
) -> anyhow::Result<f64> {
    let mut fds = [0; 2];
    // SAFETY: valid out-array for two fds.
    ensure!(unsafe { libc::pipe(fds.as_mut_ptr()) } == 0, "pipe");
    let file = c_path(&b.file);
    let shell = c_path(&b.shell);
    let procs = c_path(&cg.path.join("cgroup.procs"));
    // SAFETY: the other threads of the benchmark (the acceptor, the ring
    // drainer) hold no lock the child needs; the child uses raw calls and
    // `_exit`.
    let pid = unsafe { libc::fork() };
    ensure!(pid >= 0, "fork");
    if pid == 0 {
        // SAFETY: child side; raw calls only.
        unsafe {
            let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
            if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                libc::_exit(2);
            }
            libc::close(fd);
            let confined = match confine {
                Confine::Nothing => Ok(()),
                Confine::Landlock(ruleset) => ruleset.restrict(),
                Confine::AppArmor(attach) => attach.change_profile(),
            };
            let out = match confined {
                Err(errno) => CONFINE_FAILED | u64::from(errno.unsigned_abs()),
                Ok(()) => {
                    let start = Instant::now();
                    match run(w, &file, &shell, b.port) {
                        Ok(()) => u64::try_from(start.elapsed().as_nanos()).unwrap_or(1 << 60),
                        Err(errno) => FAILED | u64::from(errno.unsigned_abs()),
                    }
                }
            };
            libc::write(fds[1], (&raw const out).cast(), 8);
            libc::_exit(0);
        }
    }
    drop(confine);
    // SAFETY: we own the read end; the write end is closed here.
    let mut rd = unsafe {
        libc::close(fds[1]);
        fs::File::from(OwnedFd::from_raw_fd(fds[0]))
    };
    let mut buf = [0u8; 8];
    rd.read_exact(&mut buf)
        .context("reading the child's result")?;
    let mut status = 0;
    // SAFETY: our own child.
    unsafe { libc::waitpid(pid, &raw mut status, 0) };
    let ns = u64::from_ne_bytes(buf);
    if ns & CONFINE_FAILED != 0 {
        bail!(
            "{}: the child could not confine itself: errno {}",
            w.name(),
            ns & !CONFINE_FAILED
        );
    }
    if ns & FAILED != 0 {
        bail!(
            "{} failed in {}: errno {}",
            w.name(),
            cg.path.display(),
            ns & !FAILED
        );
    }
    #[expect(clippy::cast_precision_loss, reason = "a ratio of timings")]
    Ok(ns as f64 / f64::from(w.iterations()))
}

/// Marks a failed measurement; the low bits carry the errno.
const FAILED: u64 = 1 << 63;
/// Marks a child that could not apply its confinement.
const CONFINE_FAILED: u64 = 1 << 62;

/// The errno of the last failed call.
pub(super) fn last_errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(-1)
}

/// The workload loop; `Err(errno)` when an operation failed (for exec, the
/// child's exit status).
unsafe fn run(w: Workload, file: &CStr, shell: &CStr, port: u16) -> Result<(), i32> {
    // SAFETY: raw calls with valid pointers and lengths throughout.
    unsafe {
        match w {
            Workload::OpenClose => {
                for _ in 0..w.iterations() {
                    let fd = libc::open(file.as_ptr(), libc::O_WRONLY);
                    if fd < 0 {
                        return Err(last_errno());
                    }
                    libc::close(fd);
                }
            }
            Workload::WriteRead => {
                let fd = libc::open(file.as_ptr(), libc::O_RDWR);
                if fd < 0 {
                    return Err(last_errno());
                }
                let mut byte = [b'x'];
                for _ in 0..w.iterations() {
                    if libc::pwrite(fd, byte.as_ptr().cast(), 1, 0) != 1
                        || libc::pread(fd, byte.as_mut_ptr().cast(), 1, 0) != 1
                    {
                        let errno = last_errno();
                        libc::close(fd);
                        return Err(errno);
                    }
                }
                libc::close(fd);
            }
            Workload::ForkExec => {
                for _ in 0..w.iterations() {
                    let st = fork_exec_shell(shell);
                    if st != 0 {
                        return Err(st);
                    }
                }
            }
            Workload::Connect => {
                let addr = libc::sockaddr_in {
                    sin_family: libc::sa_family_t::try_from(libc::AF_INET).unwrap_or(2),
                    sin_port: port.to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from(Ipv4Addr::LOCALHOST).to_be(),
                    },
                    sin_zero: [0; 8],
                };
                for _ in 0..w.iterations() {
                    let s = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
                    let rc = libc::connect(
                        s,
                        (&raw const addr).cast(),
                        libc::socklen_t::try_from(size_of::<libc::sockaddr_in>()).unwrap_or(16),
                    );
                    let errno = last_errno();
                    libc::close(s);
                    if rc != 0 {
                        return Err(errno);
                    }
                }
            }
        }
    }
    Ok(())
}

/// Exit code of a forked child whose `execve` failed: 200 + errno, so the
/// caller can tell a refused exec from the program's own exit code.
pub(super) const EXEC_FAILED: i32 = 200;

/// Forks, execs `program` as `sh -c 'exit 0'` (busybox and dash both take
/// that) and waits; the wait status (0 when it ran and exited 0, exit code
/// `EXEC_FAILED + errno` when the exec was refused). Raw calls only: safe
/// in a forked child.
pub(super) unsafe fn fork_exec_shell(program: &CStr) -> i32 {
    let argv = [
        c"sh".as_ptr(),
        c"-c".as_ptr(),
        c"exit 0".as_ptr(),
        std::ptr::null(),
    ];
    let envp = [std::ptr::null()];
    // SAFETY: raw calls with valid NUL-terminated arrays; the child only
    // execs or exits.
    unsafe {
        let pid = libc::fork();
        if pid < 0 {
            return -1;
        }
        if pid == 0 {
            libc::execve(program.as_ptr(), argv.as_ptr(), envp.as_ptr());
            libc::_exit(EXEC_FAILED + last_errno().clamp(0, 55));
        }
        let mut st = 0;
        libc::waitpid(pid, &raw mut st, 0);
        st
    }
}
