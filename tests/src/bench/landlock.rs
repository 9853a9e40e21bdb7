//! Landlock, the kernel's own unprivileged write restriction, measured
//! beside ACELOGIC's write gate: the open+close(write) loop runs in a
//! child that restricted itself to writing beneath the benchmark
//! directory. The ruleset is built with the `landlock` crate (kept by
//! Landlock's maintainer; it tracks the ABI versions and their rights so
//! this file does not hand-roll the syscall structs).
//!
//! Before any number counts, [`verify`] proves the ruleset enforces in
//! this very kernel: the restricted child may write its allowed file and
//! is refused (`EACCES`) a write outside, which succeeds unrestricted.

use std::path::Path;

use anyhow::{Context as _, bail};
use landlock::{
    ABI, AccessFs, CompatLevel, Compatible as _, Ruleset, RulesetAttr as _, RulesetCreated,
    RulesetCreatedAttr as _, RulesetStatus, path_beneath_rules,
};

use super::workload::last_errno;
use crate::fixtures::{TestCgroup, c_path, in_cgroup};

/// The write rights of Landlock ABI 2 (Linux 5.19): the newest set both
/// kernels of the matrix (6.1, 6.12) enforce in full, so the two kernels
/// measure the same ruleset. Required, not best effort: a kernel that
/// cannot enforce it fails the benchmark.
const ABI_WRITES: ABI = ABI::V2;

/// A created ruleset, ready for a forked child to restrict itself with.
#[derive(Debug)]
pub(super) struct Prepared(RulesetCreated);

/// A ruleset handling every write right of [`ABI_WRITES`] and allowing
/// them beneath `dir` only. Reads and exec are not handled, so they stay
/// free, as they do for the ACELOGIC write configuration.
pub(super) fn prepare(dir: &Path) -> anyhow::Result<Prepared> {
    let writes = AccessFs::from_write(ABI_WRITES);
    let ruleset = Ruleset::default()
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(writes)
        .context("Landlock: handling the write rights")?
        .create()
        .context("Landlock: creating the ruleset (is landlock in the LSM list?)")?
        .add_rules(path_beneath_rules([dir], writes))
        .with_context(|| format!("Landlock: allowing writes beneath {}", dir.display()))?;
    Ok(Prepared(ruleset))
}

/// Errno reported when the kernel took the ruleset but did not enforce
/// all of it.
const PARTIAL: i32 = 1000;

impl Prepared {
    /// Restricts the calling process (`no_new_privs`, then
    /// `landlock_restrict_self`). Called in a forked child: on success it
    /// allocates nothing. `Err` carries the errno.
    pub(super) fn restrict(self) -> Result<(), i32> {
        match self.0.restrict_self() {
            Ok(status) if status.ruleset == RulesetStatus::FullyEnforced => Ok(()),
            Ok(_) => Err(PARTIAL),
            Err(_) => Err(last_errno()),
        }
    }
}

/// Proves the ruleset enforces here: a restricted child writes `allowed`
/// (inside the directory) and is refused `EACCES` creating `outside`,
/// which this process can create unrestricted.
pub(super) fn verify(
    dir: &Path,
    allowed: &Path,
    outside: &Path,
    cg: &TestCgroup,
) -> anyhow::Result<()> {
    std::fs::write(outside, b"unrestricted")
        .with_context(|| format!("writing {} unrestricted", outside.display()))?;
    std::fs::remove_file(outside)?;
    let prepared = prepare(dir)?;
    let (allowed_c, outside_c) = (c_path(allowed), c_path(outside));
    let code = in_cgroup(cg, move || {
        match prepared.restrict() {
            Ok(()) => {}
            Err(PARTIAL) => return 50,
            Err(errno) => return 10 + errno.clamp(0, 39),
        }
        // SAFETY: raw calls with valid NUL-terminated paths.
        unsafe {
            let fd = libc::open(allowed_c.as_ptr(), libc::O_WRONLY);
            if fd < 0 {
                return 60;
            }
            libc::close(fd);
            let fd = libc::open(
                outside_c.as_ptr(),
                libc::O_WRONLY | libc::O_CREAT,
                0o644 as libc::c_uint,
            );
            if fd >= 0 {
                libc::close(fd);
                return 61;
            }
            if last_errno() == libc::EACCES {
                0
            } else {
                70 + last_errno().clamp(0, 100)
            }
        }
    })?;
    match code {
        0 => Ok(()),
        50 => bail!("Landlock did not fully enforce the write ruleset in this kernel"),
        10..=49 => bail!(
            "Landlock: restricting the child failed: errno {}",
            code - 10
        ),
        60 => bail!(
            "Landlock: the restricted child could not write {} (its allowed file)",
            allowed.display()
        ),
        61 => bail!(
            "Landlock does not enforce: the restricted child created {}",
            outside.display()
        ),
        c if c >= 70 => bail!(
            "Landlock: writing outside failed with errno {}, not EACCES",
            c - 70
        ),
        c => bail!("Landlock: the check's child exited {c}"),
    }
}
