//! `acelogicctl run --workload W -- CMD`: start a command governed from its
//! first instruction. The process creates a fresh cgroup below the
//! workload's governed directory, moves itself in, closes every inherited
//! descriptor but stdio, and execs: the exec itself is already decided by
//! the workload's policy.

use std::{
    os::unix::process::CommandExt as _,
    path::{Path, PathBuf},
};

use crate::{CtlError, CtlResult, connect};
use acelogic_domain::{Reason, cgroupfs};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long)]
    workload: String,
    #[arg(last = true, required = true)]
    cmd: Vec<String>,
}

/// Enters the workload's governed cgroup and execs; returns only on failure.
pub fn exec(args: &Args, socket: &Path) -> CtlResult<String> {
    let workload = &args.workload;
    let s = connect::block(super::status::fetch(socket))?;
    let Some(w) = s.workloads.iter().find(|w| &w.name == workload) else {
        return Err(CtlError::refused(
            Reason::UnknownWorkload,
            format!("the daemon governs no workload {workload:?}"),
        ));
    };
    let Some(dir) = w.cgroups.first() else {
        return Err(CtlError::refused(
            Reason::NoCgroup,
            format!("workload {workload:?} has no governed cgroup on this node"),
        ));
    };
    let dir = local_dir(
        Path::new(dir),
        Path::new(&s.cgroup_root),
        cgroupfs::cgroup2_mount().as_deref(),
    );
    enter(&dir)?;
    close_inherited()?;
    Err(exec_cmd(&args.cmd))
}

/// Where the daemon's governed directory `dir` is from this process: the
/// daemon names it under its own cgroup root (`--cgroup-root`), which in a
/// pod is the host's hierarchy mounted at another path, while here it is
/// under this host's cgroup2 mount `local_root`. A directory outside the
/// daemon's root, or no local mount, leaves `dir` as it is.
#[must_use]
pub fn local_dir(dir: &Path, daemon_root: &Path, local_root: Option<&Path>) -> PathBuf {
    match (dir.strip_prefix(daemon_root), local_root) {
        (Ok(rel), Some(local)) => local.join(rel),
        _ => dir.to_path_buf(),
    }
}

/// Moves this process into a new cgroup below `dir`; returns its path.
pub fn enter(dir: &Path) -> CtlResult<PathBuf> {
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
pub fn exec_cmd(cmd: &[String]) -> CtlError {
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
        exit: CtlError::EXEC,
        message: format!("exec {prog}: {e}{hint}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pods_cgroup_paths_map_to_this_hosts_mount() {
        let pod = Path::new("/host/sys/fs/cgroup");
        let here = Some(Path::new("/sys/fs/cgroup"));
        let dir = Path::new("/host/sys/fs/cgroup/acelogic/coding-agent");
        assert_eq!(
            local_dir(dir, pod, here),
            Path::new("/sys/fs/cgroup/acelogic/coding-agent")
        );
        // A daemon on the host: the same path.
        let host = Path::new("/sys/fs/cgroup/acelogic/coding-agent");
        assert_eq!(local_dir(host, Path::new("/sys/fs/cgroup"), here), host);
        // Outside the daemon's root, or nothing mounted here: as given.
        assert_eq!(local_dir(host, pod, here), host);
        assert_eq!(local_dir(dir, pod, None), dir);
    }
}
