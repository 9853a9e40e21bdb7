//! The daemon as the Kubernetes DaemonSet runs it
//! (`deploy/kubernetes/agent.yaml`): the host's cgroup2 hierarchy mounted
//! at another path and named with `--cgroup-root`, while `acelogicctl run`
//! on the host enters the workload's cgroup through its own mount.

use std::{
    fs,
    os::unix::ffi::OsStrExt as _,
    path::{Path, PathBuf},
};

use acelogic_domain::cgroupfs as node;
use anyhow::{Context as _, ensure};

use crate::{
    daemon::{Daemon, binary},
    fixtures::{TestCgroup, c_path},
    harness::{Case, Need},
};

pub(crate) const CASES: &[Case] = &[Case {
    name: "deploy_cgroup_root_mounted_elsewhere",
    needs: &[Need::BpfLsm],
    run: cgroup_root_mounted_elsewhere,
}];

/// A bind mount of the cgroup2 root, detached when dropped. Never removed
/// recursively: below it are live cgroups.
struct BindMount {
    path: PathBuf,
}

impl BindMount {
    fn new(source: &Path, path: PathBuf) -> anyhow::Result<Self> {
        fs::create_dir_all(&path)?;
        let (src, dst) = (c_path(source), c_path(&path));
        // SAFETY: both are valid NUL-terminated paths; a bind mount takes
        // no file system type and no data.
        let rc = unsafe {
            libc::mount(
                src.as_ptr(),
                dst.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND,
                std::ptr::null(),
            )
        };
        ensure!(
            rc == 0,
            "bind-mounting {} at {}: {}",
            source.display(),
            path.display(),
            std::io::Error::last_os_error()
        );
        Ok(Self { path })
    }
}

impl Drop for BindMount {
    fn drop(&mut self) {
        let dst = c_path(&self.path);
        // SAFETY: a valid NUL-terminated path.
        unsafe { libc::umount2(dst.as_ptr(), libc::MNT_DETACH) };
        let _ = fs::remove_dir(&self.path);
    }
}

fn cgroup_root_mounted_elsewhere() -> anyhow::Result<()> {
    let root = node::cgroup2_mount().context("cgroup v2 is not mounted")?;
    let cg = TestCgroup::new("cgroot")?;
    let pid = std::process::id();
    let workload = format!("agent-{pid}");
    let policy = format!(
        "apiVersion: acelogic.dev/v1
kind: CapabilityPolicy
metadata:
  name: cgroot-test
spec:
  workloads:
    - name: {workload}
      cgroups: [/{}]
  baseline:
    libraries: [/lib/**, /lib64/**]
",
        cg.name()
    );

    // A cgroup below the root, as a pod's namespaced /sys/fs/cgroup is,
    // is refused at start with what to do instead.
    let mut wrong = Daemon::prepare("cgroot-wrong", &policy)?;
    wrong.args = vec!["--cgroup-root".into(), cg.path.display().to_string()];
    let refused = wrong
        .start()
        .err()
        .context("a non-root --cgroup-root was accepted")?;
    ensure!(
        format!("{refused:#}").contains("below the hierarchy's root"),
        "refused, but not for the right reason: {refused:#}"
    );

    // The real root, mounted elsewhere as the DaemonSet mounts it.
    let mnt = BindMount::new(&root, PathBuf::from(format!("/tmp/acelogic-{pid}-hostcg")))?;
    let mut d = Daemon::prepare("cgroot", &policy)?;
    d.args = vec!["--cgroup-root".into(), mnt.path.display().to_string()];
    d.start()?;
    let status = d.ctl(&["status", "--json"])?.ok("status")?;
    let want = format!("\"cgroupRoot\":\"{}\"", mnt.path.display());
    ensure!(
        status.stdout.contains(&want),
        "status lacks {want}: {}",
        status.stdout
    );

    // The daemon's mount is gone from here, as a pod's mounts are from the
    // host (the cgroup stays registered: the kernel knows it by id).
    // `acelogicctl run` maps the daemon's path to this host's mount,
    // enters a new cgroup below the workload's, and the exec is decided by
    // the policy the daemon installed through the other mount: denied.
    let daemon_view = mnt.path.clone();
    drop(mnt);
    ensure!(
        !daemon_view.exists(),
        "{} still exists",
        daemon_view.display()
    );
    let ctl = binary("acelogicctl")?.display().to_string();
    let run = d.ctl(&["run", "--workload", &workload, "--", &ctl, "--version"])?;
    let entered: Vec<PathBuf> = fs::read_dir(&cg.path)?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.is_dir()
                && p.file_name()
                    .is_some_and(|n| n.as_bytes().starts_with(b"run-"))
        })
        .collect();
    for dir in &entered {
        let _ = fs::remove_dir(dir);
    }
    ensure!(
        entered.len() == 1,
        "acelogicctl run made {} cgroup(s) below {}: {entered:?} (exit {}: {})",
        entered.len(),
        cg.path.display(),
        run.code,
        run.stderr
    );
    ensure!(
        run.code == 126 && run.stderr.contains("denied"),
        "the governed exec was not denied: exit {}: {}{}",
        run.code,
        run.stdout,
        run.stderr
    );
    // Ungoverned, the same command works.
    let out = std::process::Command::new(&ctl).arg("--version").output()?;
    ensure!(
        out.status.success(),
        "ungoverned acelogicctl --version failed"
    );
    d.stop()?;
    Ok(())
}
