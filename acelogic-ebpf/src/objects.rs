//! Describing and deciding the objects several gates share: files reached
//! through a dentry (the write gates) and executable mappings (mmap and
//! mprotect). Each hook file stays a thin adapter from its kernel
//! prototype to one of these.

use acelogic_common::{
    codes::reason,
    event::{FileDecision, FileId, TaskDecision},
    rules::rights,
};

use crate::{
    kobj::{self, Kptr},
    rules::{self, Use},
    scope::{self, Governed},
    verdict::{Error, Verdict},
};

/// Identity of the object at `dentry`: its inode, or for a negative dentry
/// (a name being created) its directory's.
#[inline(always)]
fn dentry_id(dentry: Kptr) -> Result<FileId, Error> {
    let mut inode = kobj::dentry_inode(dentry)?;
    if inode.is_null() {
        inode = kobj::dentry_inode(kobj::dentry_parent(dentry)?)?;
    }
    kobj::inode_id(inode)
}

/// Writes the object at `dentry` into the record: identity and name.
#[inline(always)]
fn describe(rec: *mut FileDecision, dentry: Kptr) -> Result<(), Error> {
    let id = dentry_id(dentry)?;
    // SAFETY: `rec` is the gate's exclusively owned ring-buffer slot.
    unsafe {
        (*rec).file = id;
        (*rec).name_len = kobj::dentry_name(dentry, &mut (*rec).name);
    }
    Ok(())
}

/// A write to (or creation, removal or attribute change of) the object at
/// `dentry`: allowed when the object or a directory above it is writable.
#[inline(always)]
pub(crate) fn write(g: &Governed, rec: *mut FileDecision, dentry: Kptr) -> Result<Verdict, Error> {
    describe(rec, dentry)?;
    rules::subtree(g, dentry, rights::WRITE, Use::Consume)
}

/// A link or rename from `from` to the new name `to`: both ends must be
/// writable, or a file from outside a writable directory could be
/// hard-linked into it and written through the new name.
#[inline(always)]
pub(crate) fn write_pair(
    g: &Governed,
    rec: *mut FileDecision,
    from: Kptr,
    to: Kptr,
) -> Result<Verdict, Error> {
    describe(rec, from)?;
    let to_id = dentry_id(to)?;
    // SAFETY: as in `describe`.
    unsafe { (*rec).other = to_id };
    match rules::subtree(g, from, rights::WRITE, Use::Consume)? {
        Verdict::Allow { .. } => rules::subtree(g, to, rights::WRITE, Use::Consume),
        denied @ Verdict::Deny(_) => Ok(denied),
    }
}

/// `PROT_EXEC` in `mmap`/`mprotect` protection bits.
pub(crate) const PROT_EXEC: u64 = 4;

/// Mapping `file` executable. Allowed when the file is the task's own
/// executable (exec decided it), may be executed or mapped by exact rule,
/// or lies below a directory whose files may be mapped (shared
/// libraries). Grants are checked, not consumed: the exec took the use.
#[inline(always)]
pub(crate) fn mapping(
    g: &Governed,
    rec: *mut FileDecision,
    file: Kptr,
    prot: u64,
) -> Result<Verdict, Error> {
    let inode = kobj::file_inode(file)?;
    let id = kobj::inode_id(inode)?;
    let dentry = kobj::file_dentry(file)?;
    // SAFETY: `rec` is the gate's exclusively owned ring-buffer slot.
    unsafe {
        (*rec).file = id;
        #[expect(
            clippy::cast_possible_truncation,
            reason = "protection bits fit in u32"
        )]
        {
            (*rec).detail = prot as u32;
        }
        (*rec).name_len = kobj::dentry_name(dentry, &mut (*rec).name);
    }
    g.open()?;
    if kobj::task_exe_inode(scope::current_task()).is_ok_and(|exe| exe == inode) {
        return Ok(Verdict::Allow {
            reason: reason::OWN_EXECUTABLE,
            grant_id: 0,
        });
    }
    match rules::file_exact(g, id, rights::EXEC | rights::MAP, Use::Check) {
        Some(v @ Verdict::Allow { .. }) => Ok(v),
        _ => rules::subtree(g, dentry, rights::MAP, Use::Check),
    }
}

/// Acting on another process (signal, ptrace): allowed only inside the
/// caller's own scope.
#[inline(always)]
pub(crate) fn task(
    g: &Governed,
    rec: *mut TaskDecision,
    target: Kptr,
    detail: u32,
) -> Result<Verdict, Error> {
    let tgid = kobj::task_tgid(target)?;
    let (cgroup_id, target_scope) = scope::of_task(target)?;
    // SAFETY: `rec` is the gate's exclusively owned ring-buffer slot.
    unsafe {
        (*rec).target_tgid = tgid;
        (*rec).target_cgroup_id = cgroup_id;
        (*rec).target_scope_id = target_scope.unwrap_or(0);
        (*rec).detail = detail;
    }
    g.open()?;
    Ok(if target_scope == Some(g.scope_id) {
        Verdict::Allow {
            reason: reason::SAME_SCOPE,
            grant_id: 0,
        }
    } else {
        Verdict::Deny(reason::OUTSIDE_SCOPE)
    })
}
