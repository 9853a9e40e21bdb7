//! What the kernel counts per program (`bpf_prog_info`): its recursion
//! misses, and, while counting is on ([`RunTimeStats`], or the sysctl
//! `kernel.bpf_stats_enabled`), its run count and run time.
//!
//! Recursion misses are lifecycle records the kernel skipped without
//! running their program. The fork, exec and exit recorders are BTF
//! tracepoints. The kernel runs such a program through `__bpf_trace_run`,
//! which skips it, and counts a "recursion miss" on the program, when the
//! same program is already running on that CPU. Up to 6.x a tracepoint's
//! callbacks ran with preemption disabled, so that could only happen from
//! an interrupt. From 7.0 they run preemptible with only migration
//! disabled (`tracing: Guard __DECLARE_TRACE() use of __DO_TRACE_CALL()
//! with SRCU-fast`, and `__bpf_trace_run` using
//! `rcu_read_lock_dont_migrate`): a recorder preempted in the middle of
//! its run makes the same recorder skip every other task's fork (or exec,
//! or exit) on that CPU until it runs again. The LSM programs that decide
//! are not affected (the kernel runs them without that check, so they
//! nest).
//!
//! Nothing in the program sees such a skip; only the kernel's per-program
//! `recursion_misses` (`bpf_prog_info`) counts it. It is read here so a
//! skipped record is a counted loss, journaled like a record the ring had
//! no room for, never a silent gap.

use std::{
    io,
    os::fd::{AsFd as _, AsRawFd as _, BorrowedFd, FromRawFd as _, OwnedFd},
    path::Path,
};

use aya::programs::links::{FdLink, PinnedLink};
use aya_obj::generated::bpf_prog_info;

const BPF_PROG_GET_FD_BY_ID: libc::c_long = 13;
const BPF_OBJ_GET_INFO_BY_FD: libc::c_long = 15;

/// `bpf(2)` with an attribute struct; the returned value (an fd or 0).
fn bpf<A>(cmd: libc::c_long, attr: &mut A) -> io::Result<libc::c_long> {
    let size = libc::c_uint::try_from(size_of::<A>()).map_err(io::Error::other)?;
    // SAFETY: `attr` is a live, writable #[repr(C)] struct of the layout
    // `cmd` reads, and its size is passed with it.
    let rc = unsafe { libc::syscall(libc::SYS_bpf, cmd, std::ptr::from_mut(attr), size) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

fn owned(fd: libc::c_long) -> io::Result<OwnedFd> {
    let fd = i32::try_from(fd).map_err(|_| io::Error::other("fd out of range"))?;
    // SAFETY: the kernel just returned this new descriptor to us alone.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// `BPF_OBJ_GET_INFO_BY_FD` into `info` (the kernel fills what it knows
/// and zero-extends nothing: `info` starts zeroed).
fn info_by_fd<I>(fd: BorrowedFd<'_>, info: &mut I) -> io::Result<()> {
    #[repr(C)]
    struct Attr {
        bpf_fd: u32,
        info_len: u32,
        info: u64,
    }
    let mut attr = Attr {
        bpf_fd: u32::try_from(fd.as_raw_fd()).map_err(|_| io::Error::other("negative fd"))?,
        info_len: u32::try_from(size_of::<I>()).map_err(|_| io::Error::other("info size"))?,
        info: std::ptr::from_mut(info) as u64,
    };
    bpf(BPF_OBJ_GET_INFO_BY_FD, &mut attr).map(drop)
}

/// What the kernel counted for one program.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProgramStats {
    /// Runs, counted only while counting is on ([`RunTimeStats`]).
    pub run_count: u64,
    /// Time spent in the program, counted likewise (under an icount
    /// guest clock: instructions).
    pub run_time_ns: u64,
    /// Runs skipped because the program was already running on the CPU.
    pub recursion_misses: u64,
}

/// The counts of the program behind `fd`.
pub(crate) fn of_program(fd: BorrowedFd<'_>) -> io::Result<ProgramStats> {
    // SAFETY: `bpf_prog_info` is plain integers and pointers-as-integers;
    // all zeroes is a valid value.
    let mut info: bpf_prog_info = unsafe { std::mem::zeroed() };
    info_by_fd(fd, &mut info)?;
    Ok(ProgramStats {
        run_count: info.run_cnt,
        run_time_ns: info.run_time_ns,
        recursion_misses: info.recursion_misses,
    })
}

/// The counts of the program attached by the link pinned at `path`.
pub(crate) fn of_pinned_link(path: &Path) -> io::Result<ProgramStats> {
    of_program(program_of_pinned_link(path)?.as_fd())
}

/// The program attached by the link pinned at `path` (`CAP_SYS_ADMIN`).
/// aya opens the link and reads its program id; opening a program by id
/// is not public in aya 0.14.
pub(crate) fn program_of_pinned_link(path: &Path) -> io::Result<OwnedFd> {
    #[repr(C)]
    struct GetById {
        id: u32,
        next_id: u32,
        open_flags: u32,
    }
    // Dropping the `FdLink` closes the descriptor; the pin stays.
    let link = FdLink::from(PinnedLink::from_pin(path).map_err(io::Error::other)?);
    let mut by_id = GetById {
        id: link.info().map_err(io::Error::other)?.program_id(),
        next_id: 0,
        open_flags: 0,
    };
    owned(bpf(BPF_PROG_GET_FD_BY_ID, &mut by_id)?)
}

/// Run counts and run times are counted while this lives
/// (`BPF_ENABLE_STATS`; the kernel stops when the last such descriptor
/// closes, so a crashed holder leaves nothing switched on). Each run then
/// pays for two clock reads: keep it off while measuring anything else.
#[derive(Debug)]
pub struct RunTimeStats {
    _fd: OwnedFd,
}

impl RunTimeStats {
    /// Switches the counting on.
    ///
    /// # Errors
    /// The kernel refused (`CAP_SYS_ADMIN` is needed).
    pub fn enable() -> io::Result<Self> {
        const BPF_ENABLE_STATS: libc::c_long = 32;
        /// `BPF_STATS_RUN_TIME`.
        #[repr(C)]
        struct Attr {
            stats_type: u32,
        }
        let mut attr = Attr { stats_type: 0 };
        Ok(Self {
            _fd: owned(bpf(BPF_ENABLE_STATS, &mut attr)?)?,
        })
    }
}
