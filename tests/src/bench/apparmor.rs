//! AppArmor, the path-based MAC of Debian's kernels, measured beside
//! ACELOGIC's exec gate: the fork+exec loop runs in a child confined by a
//! profile that allows exec of the workload's shell and nothing else.
//!
//! The profile is compiled and loaded by `apparmor_parser` (Debian package
//! `apparmor`, shipped into the guest by xtask). The measuring child moves
//! itself into the profile with `changeprofile` (what libapparmor's
//! `aa_change_profile` writes to `/proc/self/attr/apparmor/current`), so
//! the loop process is confined the way a governed process is, and every
//! exec its children make is decided by the profile's exec rule. A
//! `change_onexec` would confine only the image after each exec and leave
//! the exec itself to the unconfined label: that is a transition, not the
//! exec check we compare with.
//!
//! Before any number counts, [`verify`] proves the profile enforces in
//! this very kernel: the confined child runs the shell and is refused
//! (`EACCES`) an identical copy of it at another path, which runs
//! unconfined.

use std::{
    ffi::CString,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context as _, bail, ensure};

use super::workload::{EXEC_FAILED, fork_exec_shell, last_errno};
use crate::fixtures::{TestCgroup, c_path, in_cgroup};

/// The profile's name.
pub(super) const PROFILE: &str = "acelogic-bench-exec";
/// The kernel's AppArmor interface (securityfs); present when AppArmor is
/// active.
const AA_FS: &str = "/sys/kernel/security/apparmor";
/// Where a task asks AppArmor for a profile change (the LSM-specific
/// attribute directory, so no other LSM's `current` is meant).
const ATTR: &str = "/proc/self/attr/apparmor/current";

/// The profile: the shell may be executed and inherits the profile
/// (`ix`); anything else the confined processes exec is refused. Reads
/// and writes of files are not what is measured, and the workload makes
/// none after confinement but the exec.
#[must_use]
pub(super) fn profile_text(shell: &Path) -> String {
    let quoted = shell.display().to_string().replace('"', "\\\"");
    format!("profile {PROFILE} {{\n  \"{quoted}\" rix,\n}}\n")
}

/// A loaded profile; removed from the kernel when dropped.
#[derive(Debug)]
pub(super) struct Loaded {
    pub(super) attach: Attach,
}

/// What a forked child writes to enter the profile, prepared before the
/// fork.
#[derive(Debug)]
pub(super) struct Attach {
    attr: CString,
    command: CString,
}

/// Loads the profile for `shell` with `parser`, writing its source to
/// `dir`.
pub(super) fn load(parser: &Path, shell: &Path, dir: &Path) -> anyhow::Result<Loaded> {
    let lsm = std::fs::read_to_string("/sys/kernel/security/lsm")
        .context("reading /sys/kernel/security/lsm (is securityfs mounted?)")?;
    ensure!(
        lsm.trim().split(',').any(|m| m == "apparmor"),
        "AppArmor is not active in this kernel (lsm={})",
        lsm.trim()
    );
    ensure!(
        Path::new(AA_FS).join("profiles").exists(),
        "{AA_FS}/profiles is missing although AppArmor is active"
    );
    ensure!(
        parser.is_file(),
        "{} is missing: xtask ships it from the Debian package `apparmor`",
        parser.display()
    );
    let source: PathBuf = dir.join(format!("{PROFILE}.profile"));
    std::fs::write(&source, profile_text(shell))?;
    let out = Command::new(parser)
        .args(["--replace", "--skip-cache"])
        .arg(&source)
        .output()
        .with_context(|| format!("running {}", parser.display()))?;
    ensure!(
        out.status.success(),
        "{} --replace {} failed ({}): {}{}",
        parser.display(),
        source.display(),
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let profiles = std::fs::read_to_string(Path::new(AA_FS).join("profiles"))?;
    ensure!(
        profiles
            .lines()
            .any(|l| l.trim() == format!("{PROFILE} (enforce)")),
        "{PROFILE} is not loaded in enforce mode after {}; loaded: {profiles}",
        parser.display()
    );
    Ok(Loaded {
        attach: Attach {
            attr: CString::new(ATTR)?,
            command: CString::new(format!("changeprofile {PROFILE}"))?,
        },
    })
}

impl Drop for Loaded {
    fn drop(&mut self) {
        let _ = std::fs::write(Path::new(AA_FS).join(".remove"), PROFILE);
    }
}

impl Attach {
    /// Moves the calling process into the profile now. Raw calls only
    /// (called in a forked child); `Err` carries the errno.
    pub(super) fn change_profile(&self) -> Result<(), i32> {
        // SAFETY: valid NUL-terminated path and buffer with its length.
        unsafe {
            let fd = libc::open(self.attr.as_ptr(), libc::O_WRONLY);
            if fd < 0 {
                return Err(last_errno());
            }
            let bytes = self.command.as_bytes();
            let n = libc::write(fd, bytes.as_ptr().cast(), bytes.len());
            let errno = last_errno();
            libc::close(fd);
            if usize::try_from(n).ok() != Some(bytes.len()) {
                return Err(errno);
            }
        }
        Ok(())
    }
}

/// Proves the profile enforces here: confined, the child runs `shell`
/// and is refused `EACCES` executing `other` (a copy of the shell at
/// another path), which runs unconfined.
pub(super) fn verify(
    attach: &Attach,
    shell: &Path,
    other: &Path,
    cg: &TestCgroup,
) -> anyhow::Result<()> {
    let (shell_c, other_c) = (c_path(shell), c_path(other));
    // SAFETY: raw calls in the forked child.
    let free = in_cgroup(cg, || unsafe {
        libc::WEXITSTATUS(fork_exec_shell(&other_c))
    })?;
    ensure!(
        free == 0,
        "{} does not run unconfined (exit {free}): the AppArmor check would prove nothing",
        other.display()
    );
    let code = in_cgroup(cg, || {
        if let Err(errno) = attach.change_profile() {
            return 10 + errno.clamp(0, 39);
        }
        // SAFETY: raw calls in the forked child.
        let (allowed, refused) = unsafe {
            (
                libc::WEXITSTATUS(fork_exec_shell(&shell_c)),
                libc::WEXITSTATUS(fork_exec_shell(&other_c)),
            )
        };
        if allowed != 0 {
            return 60;
        }
        if refused == 0 {
            return 61;
        }
        if refused == EXEC_FAILED + libc::EACCES {
            0
        } else {
            62
        }
    })?;
    match code {
        0 => Ok(()),
        10..=49 => bail!(
            "AppArmor: writing `changeprofile {PROFILE}` to {ATTR} failed: errno {}",
            code - 10
        ),
        60 => bail!(
            "AppArmor: the confined child could not run {} (the profile allows it)",
            shell.display()
        ),
        61 => bail!(
            "AppArmor does not enforce: the confined child ran {}",
            other.display()
        ),
        62 => bail!(
            "AppArmor: executing {} confined failed, but not with EACCES",
            other.display()
        ),
        c => bail!("AppArmor: the check's child exited {c}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_profile_allows_exactly_the_shell() {
        assert_eq!(
            profile_text(Path::new("/bin/busybox")),
            "profile acelogic-bench-exec {\n  \"/bin/busybox\" rix,\n}\n"
        );
        assert!(profile_text(Path::new("/a \"b\"")).contains("\"/a \\\"b\\\"\" rix,"));
    }
}
