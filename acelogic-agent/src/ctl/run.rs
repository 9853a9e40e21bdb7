//! `acelogicctl run --workload W -- CMD`: start a command governed from its
//! first instruction. The process creates a fresh cgroup below the
//! workload's governed directory, moves itself in, closes every inherited
//! descriptor but stdio, and execs: the exec itself is already decided by
//! the workload's policy.

use std::{os::unix::process::CommandExt as _, path::PathBuf};

use super::{CtlError, CtlResult};

/// Moves this process into a new cgroup below `dir`; returns its path.
pub fn enter(dir: &std::path::Path) -> CtlResult<PathBuf> {
    let pid = std::process::id();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let child = dir.join(format!("run-{pid}-{nanos:09}"));
    std::fs::create_dir(&child)
        .map_err(|e| CtlError::internal(format!("creating {}: {e}", child.display())))?;
    std::fs::write(child.join("cgroup.procs"), pid.to_string())
        .map_err(|e| CtlError::internal(format!("entering {}: {e}", child.display())))?;
    Ok(child)
}

/// Closes every descriptor above 2.
pub fn close_inherited() -> CtlResult {
    // SAFETY: close_range(3, ~0, 0) only closes descriptors; nothing in
    // this process uses one past this point (the caller execs next).
    let rc = unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, 0u32) };
    if rc == 0 {
        return Ok(());
    }
    // Kernels before 5.9: close them one by one.
    let fds: Vec<i32> = std::fs::read_dir("/proc/self/fd")
        .map_err(CtlError::internal)?
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd > 2)
        .collect();
    for fd in fds {
        // SAFETY: as above; a descriptor already gone just fails.
        unsafe { libc::close(fd) };
    }
    Ok(())
}

/// Execs `cmd` (this only returns on failure).
pub fn exec(cmd: &[String]) -> CtlError {
    let Some((prog, args)) = cmd.split_first() else {
        return CtlError::input("nothing to run: acelogicctl run --workload W -- CMD [ARGS]");
    };
    let e = std::process::Command::new(prog).args(args).exec();
    let hint = if e.raw_os_error() == Some(libc::EPERM) {
        " (denied: the workload's policy does not allow running it, and no artifact grants it)"
    } else {
        ""
    };
    CtlError {
        exit: 126,
        message: format!("exec {prog}: {e}{hint}"),
    }
}
