//! Changes of a file's metadata, by path and through a descriptor opened
//! before governance: mode and owner (fchmod, fchown reach the path
//! hooks), timestamps (utimensat, futimens), extended attributes
//! (setxattr, fsetxattr, removexattr: `security.capability` on a binary
//! is one) and POSIX ACLs. Outside the
//! writable set each is refused with EPERM, the file's metadata stays as
//! it was, and the denial is in the records; the ungoverned twin of every
//! attempt succeeds first (or the case proves nothing), and inside the
//! writable set the governed attempt succeeds.

use std::{ffi::CString, fs, os::fd::AsRawFd as _, os::unix::fs::MetadataExt as _, path::Path};

use acelogic_common::user::Hook;
use anyhow::{Context as _, ensure};

use crate::{
    cases::{descriptors::expect_denial, files::Tree},
    fixtures::{c_path, errno_if, in_cgroup},
    harness::{Case, Need},
};

pub(crate) const CASES: &[Case] = &[Case {
    name: "timestamps_xattrs_and_acls_decided",
    needs: &[Need::BpfLsm],
    run: timestamps_xattrs_and_acls_decided,
}];

/// A `trusted.` attribute: tmpfs keeps those on every kernel of the
/// matrix (`user.` ones only from 6.6).
const XATTR: &str = "trusted.acelogic-test";
const ACL: &str = "system.posix_acl_access";

/// One way to change metadata.
#[derive(Debug, Clone, Copy)]
enum Op {
    Fchmod,
    Fchown,
    Utimensat,
    Futimens,
    Setxattr,
    Fsetxattr,
    Removexattr,
    SetAcl,
}

/// Every [`Op`] and the hooks that may decide it: before 6.2 an ACL is an
/// ordinary xattr to the LSM hooks.
const OPS: [(Op, &[Hook]); 8] = [
    (Op::Fchmod, &[Hook::PathChmod]),
    (Op::Fchown, &[Hook::PathChown]),
    (Op::Utimensat, &[Hook::InodeSetattrTimes]),
    (Op::Futimens, &[Hook::InodeSetattrTimes]),
    (Op::Setxattr, &[Hook::InodeSetxattr]),
    (Op::Fsetxattr, &[Hook::InodeSetxattr]),
    (Op::Removexattr, &[Hook::InodeRemovexattr]),
    (Op::SetAcl, &[Hook::InodeSetAcl, Hook::InodeSetxattr]),
];

/// The mode and the owner (uid and gid) an attempt sets.
const MODE: libc::mode_t = 0o600;
const OWNER: u32 = 1000;

/// The mtime an attempt sets, in seconds.
const STAMP: i64 = 1_000_000_000;

/// A POSIX ACL in its xattr form (version 2): the owner rw, user 1000 r,
/// the group r, mask r, others r. A named-user entry keeps it an ACL (an
/// ACL equal to the mode would be folded into the mode).
fn acl_blob() -> Vec<u8> {
    let mut b = 2u32.to_le_bytes().to_vec();
    for (tag, perm, id) in [
        (0x01u16, 6u16, u32::MAX),
        (0x02, 4, 1000),
        (0x04, 4, u32::MAX),
        (0x10, 4, u32::MAX),
        (0x20, 4, u32::MAX),
    ] {
        b.extend_from_slice(&tag.to_le_bytes());
        b.extend_from_slice(&perm.to_le_bytes());
        b.extend_from_slice(&id.to_le_bytes());
    }
    b
}

/// Runs `op` on `path` or on `fd` (the same file, opened read-only by the
/// test process before the child joined its cgroup). 0 or the errno.
fn attempt(op: Op, path: &Path, fd: i32) -> i32 {
    let p = c_path(path);
    let name = CString::new(XATTR).expect("no NUL");
    let acl_name = CString::new(ACL).expect("no NUL");
    let acl = acl_blob();
    let times = [
        libc::timespec {
            tv_sec: STAMP,
            tv_nsec: 0,
        },
        libc::timespec {
            tv_sec: STAMP,
            tv_nsec: 0,
        },
    ];
    let value = b"x".as_ptr().cast::<libc::c_void>();
    // SAFETY: raw calls with NUL-terminated names, buffers this process
    // owns and a descriptor it inherited.
    let rc = unsafe {
        match op {
            Op::Fchmod => libc::fchmod(fd, MODE),
            Op::Fchown => libc::fchown(fd, OWNER, OWNER),
            Op::Utimensat => libc::utimensat(libc::AT_FDCWD, p.as_ptr(), times.as_ptr(), 0),
            Op::Futimens => libc::futimens(fd, times.as_ptr()),
            Op::Setxattr => libc::setxattr(p.as_ptr(), name.as_ptr(), value, 1, 0),
            Op::Fsetxattr => libc::fsetxattr(fd, name.as_ptr(), value, 1, 0),
            Op::Removexattr => libc::removexattr(p.as_ptr(), name.as_ptr()),
            Op::SetAcl => libc::setxattr(
                p.as_ptr(),
                acl_name.as_ptr(),
                acl.as_ptr().cast(),
                acl.len(),
                0,
            ),
        }
    };
    errno_if(i64::from(rc))
}

/// Whether the file has attribute `name`.
fn has_xattr(path: &Path, name: &str) -> bool {
    let (p, n) = (c_path(path), CString::new(name).expect("no NUL"));
    // SAFETY: NUL-terminated strings; a zero-size query writes nothing.
    unsafe { libc::getxattr(p.as_ptr(), n.as_ptr(), std::ptr::null_mut(), 0) >= 0 }
}

/// The file as each attempt starts: fresh times, the test attribute
/// present only for the removal, no ACL.
fn reset(op: Op, path: &Path) -> anyhow::Result<()> {
    fs::remove_file(path).ok();
    fs::write(path, b"original").with_context(|| format!("recreating {}", path.display()))?;
    if matches!(op, Op::Removexattr) {
        let (p, n) = (c_path(path), CString::new(XATTR).expect("no NUL"));
        // SAFETY: NUL-terminated strings and a one-byte value.
        let rc = unsafe { libc::setxattr(p.as_ptr(), n.as_ptr(), b"x".as_ptr().cast(), 1, 0) };
        ensure!(
            rc == 0,
            "setting {XATTR} on {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        );
    }
    Ok(())
}

/// Whether `op`'s change is on the file.
fn changed(op: Op, path: &Path) -> anyhow::Result<bool> {
    let meta = fs::metadata(path)?;
    Ok(match op {
        Op::Fchmod => meta.mode() & 0o7777 == MODE,
        Op::Fchown => meta.uid() == OWNER,
        Op::Utimensat | Op::Futimens => meta.mtime() == STAMP,
        Op::Setxattr | Op::Fsetxattr => has_xattr(path, XATTR),
        Op::Removexattr => !has_xattr(path, XATTR),
        Op::SetAcl => has_xattr(path, ACL),
    })
}

fn timestamps_xattrs_and_acls_decided() -> anyhow::Result<()> {
    let mut t = Tree::new("metadata")?;
    let (outside, inside) = (t.p("outside/file"), t.p("inside/file"));
    for (op, hooks) in OPS {
        let what = format!("{op:?}");
        let what = what.as_str();
        // Outside the writable set: ungoverned succeeds, governed refused.
        reset(op, &outside)?;
        let fd = fs::File::open(&outside)?;
        let free = in_cgroup(&t.s.free, || attempt(op, &outside, fd.as_raw_fd()))?;
        ensure!(
            free == 0,
            "{what} ungoverned: errno {free}; the case proves nothing"
        );
        ensure!(
            changed(op, &outside)?,
            "{what} ungoverned: no change seen; the check proves nothing"
        );
        reset(op, &outside)?;
        let fd = fs::File::open(&outside)?;
        let governed = in_cgroup(&t.s.governed, || attempt(op, &outside, fd.as_raw_fd()))?;
        ensure!(
            governed == libc::EPERM,
            "{what} outside, governed: errno {governed}, expected EPERM"
        );
        ensure!(
            !changed(op, &outside)?,
            "{what} outside, governed: the change was made"
        );
        let events = t.s.decisions()?;
        expect_denial(&events, hooks, "file", what)?;

        // Inside: the same change works, governed.
        reset(op, &inside)?;
        let fd = fs::File::open(&inside)?;
        let governed = in_cgroup(&t.s.governed, || attempt(op, &inside, fd.as_raw_fd()))?;
        ensure!(governed == 0, "{what} inside, governed: errno {governed}");
        ensure!(
            changed(op, &inside)?,
            "{what} inside, governed: no change seen"
        );
        drop(t.s.decisions()?);
    }
    Ok(())
}
