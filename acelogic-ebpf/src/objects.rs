//! Describing and deciding the objects several gates share: files reached
//! through a dentry (the write gates) and executable mappings (mmap and
//! mprotect). Each hook file stays a thin adapter from its kernel
//! prototype to one of these.

use acelogic_common::{
    codes::reason,
    event::{FileDecision, FileId, TaskDecision},
    rules::{Writer, rights},
};
use aya_ebpf::helpers::bpf_ktime_get_boot_ns;
use core::intrinsics::{AtomicOrdering, atomic_xadd};

use crate::{
    gate,
    kobj::{self, Kptr},
    kpath,
    maps::{RULES_GEN, WRITERS, WRITERS_HELD},
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

/// Writes the object at `dentry` (on the mount `mnt`, null when the hook
/// gives none) into the record: identity, name and full path.
#[inline(always)]
fn describe(rec: *mut FileDecision, mnt: Kptr, dentry: Kptr) -> Result<(), Error> {
    let id = dentry_id(dentry)?;
    // SAFETY: `rec` is the gate's exclusively owned ring-buffer slot.
    unsafe {
        (*rec).file = id;
        (*rec).name_len = kobj::dentry_name(dentry, &mut (*rec).name);
        kpath::walk(&raw mut (*rec).path, mnt, dentry);
    }
    Ok(())
}

/// A write to (or creation, removal or attribute change of) the object at
/// `dentry`: allowed when the object or a directory above it is writable.
/// For hooks that give no mount: the path is recorded from the root of
/// the file's filesystem ([`write_at`] when the hook has one).
#[inline(always)]
pub(crate) fn write(g: &Governed, rec: *mut FileDecision, dentry: Kptr) -> Result<Verdict, Error> {
    write_at(g, rec, core::ptr::null(), dentry)
}

/// [`write`] for a dentry on the mount `mnt`.
#[inline(always)]
pub(crate) fn write_at(
    g: &Governed,
    rec: *mut FileDecision,
    mnt: Kptr,
    dentry: Kptr,
) -> Result<Verdict, Error> {
    describe(rec, mnt, dentry)?;
    rules::subtree(g, dentry, rights::WRITE, Use::Consume)
}

/// A link or rename from `from` to the new name `to`: both ends must be
/// writable, or a file from outside a writable directory could be
/// hard-linked into it and written through the new name.
#[inline(always)]
pub(crate) fn write_pair(
    g: &Governed,
    rec: *mut FileDecision,
    mnt: Kptr,
    from: Kptr,
    to: Kptr,
) -> Result<Verdict, Error> {
    describe(rec, mnt, from)?;
    let to_id = dentry_id(to)?;
    // SAFETY: as in `describe`.
    unsafe { (*rec).other = to_id };
    let from = rules::subtree(g, from, rights::WRITE, Use::Consume)?;
    if from.allows() {
        rules::subtree(g, to, rights::WRITE, Use::Consume)
    } else {
        Ok(from)
    }
}

/// `PROT_EXEC` in `mmap`/`mprotect` protection bits.
pub(crate) const PROT_EXEC: u64 = 4;
/// `PROT_WRITE` in `mmap`/`mprotect` protection bits.
pub(crate) const PROT_WRITE: u64 = 2;
/// `FMODE_WRITE` in `file->f_mode`.
pub(crate) const FMODE_WRITE: u32 = 2;

/// `S_IFMT` and `S_IFREG` of `inode->i_mode`.
const S_IFMT: u16 = 0o170_000;
const S_IFREG: u16 = 0o100_000;
/// `SB_KERNMOUNT` in `super_block->s_flags`: a filesystem only the kernel
/// mounts (memfd, anonymous shared memory), with no name to govern.
const SB_KERNMOUNT: u64 = 1 << 22;

/// Whether writes to `file` change a file the write gates govern: a
/// regular file on a filesystem with names. Pipes, sockets, ttys, device
/// nodes, anonymous inodes and memfds are not. Unreadable: governed.
#[inline(always)]
pub(crate) fn governed_content(file: Kptr) -> bool {
    kobj::file_inode(file).map_or(true, governed_inode)
}

/// [`governed_content`] for an inode.
#[inline(always)]
pub(crate) fn governed_inode(inode: Kptr) -> bool {
    match (kobj::inode_mode(inode), kobj::inode_sb_flags(inode)) {
        (Ok(mode), Ok(flags)) => mode & S_IFMT == S_IFREG && flags & SB_KERNMOUNT == 0,
        _ => true,
    }
}

/// The file rules' generation now: read before a decision, stored with
/// what it allowed.
#[inline(always)]
pub(crate) fn rules_generation() -> u64 {
    RULES_GEN.get(0).copied().unwrap_or(0)
}

/// Whether this scope's write to the open `file` was decided and allowed
/// already (at its open, or an earlier write through it), by rules that
/// still stand: none changed since, and the grant behind it, if any, has
/// not expired.
#[inline(always)]
pub(crate) fn write_decided(file: Kptr, scope_id: u32) -> bool {
    // SAFETY: the entry's fields are read in place, each once (no
    // `Option` of the value is copied: see `Verdict` on undefined payloads).
    let Some(w) = (unsafe { WRITERS.get(&(file as u64)) }) else {
        return false;
    };
    let (scope, generation, until) = (w.scope_id, w.generation, w.until_boot_ns);
    scope == scope_id
        && generation == rules_generation()
        // SAFETY: plain BPF helper call with no arguments.
        && (until == u64::MAX || unsafe { bpf_ktime_get_boot_ns() } < until)
}

/// Remembers that `scope_id` may write through the open `file`, as
/// decided by the rules of `generation` (read before the decision) until
/// `until_boot_ns`. Only files open for write are remembered: those are
/// the ones `file_free` forgets, so no entry outlives its file (a later
/// file at the same address would otherwise inherit it).
#[inline(always)]
pub(crate) fn remember_write(file: Kptr, scope_id: u32, generation: u64, until_boot_ns: u64) {
    if kobj::file_mode(file).is_ok_and(|m| m & FMODE_WRITE != 0) {
        let w = Writer {
            scope_id,
            _reserved: 0,
            generation,
            until_boot_ns,
        };
        let key = file as u64;
        // A new key is counted; a known one (decided again after a rules
        // change) is replaced. A full map takes neither: the next write
        // is decided again.
        if WRITERS.insert(&key, &w, BPF_NOEXIST).is_ok() {
            held_add(1);
        } else {
            let _ = WRITERS.insert(&key, &w, BPF_EXIST);
        }
    }
}

/// `bpf_map_update_elem` flags: create only, replace only.
const BPF_NOEXIST: u64 = 1;
const BPF_EXIST: u64 = 2;

/// Adds `delta` (wrapping: `u64::MAX` takes one) to `WRITERS_HELD`.
#[inline(always)]
fn held_add(delta: u64) {
    if let Some(held) = WRITERS_HELD.get_ptr_mut(0) {
        // SAFETY: a pointer into the array's value; other CPUs change it
        // only atomically. The result is not used: the ISA v1 atomic add.
        let _ = unsafe { atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(held, delta) };
    }
}

/// Forgets a freed file.
#[inline(always)]
pub(crate) fn forget_write(file: Kptr) {
    // Nothing remembered anywhere: nothing to read. The count of a file's
    // entry was added before the file's last reference went (its writer
    // held one), so a file with an entry never finds it 0.
    if WRITERS_HELD.get(0).is_none_or(|held| *held == 0) {
        return;
    }
    // A lookup first: most files freed on a node were never remembered,
    // and a lookup takes no lock where a delete takes the bucket's.
    if kobj::file_mode(file).is_ok_and(|m| m & FMODE_WRITE != 0)
        // SAFETY: only whether the entry exists is read.
        && unsafe { WRITERS.get(&(file as u64)) }.is_some()
        && WRITERS.remove(&(file as u64)).is_ok()
    {
        held_add(u64::MAX);
    }
}

/// Changing the content of the open `file` (a write, a truncation, a shared
/// writable mapping): allowed when the object or a directory above it is
/// writable, by baseline or by a live grant (its uses are not taken: the
/// open took them, or the descriptor came from outside and takes no new
/// access). Allowed writes are remembered for the open file.
#[inline(always)]
pub(crate) fn write_through(
    g: &Governed,
    rec: *mut FileDecision,
    file: Kptr,
    detail: u32,
) -> Result<Verdict, Error> {
    let dentry = kobj::file_dentry(file)?;
    describe(
        rec,
        kobj::file_mnt(file).unwrap_or(core::ptr::null()),
        dentry,
    )?;
    // SAFETY: `rec` is the gate's exclusively owned ring-buffer slot.
    unsafe { (*rec).detail = detail };
    let generation = rules_generation();
    let verdict = rules::subtree(g, dentry, rights::WRITE, Use::Live)?;
    // Audit mode lets a would-be denial through: remember it too, or every
    // write of an audited process would be a record.
    if verdict.allows() {
        remember_write(file, g.scope_id, generation, verdict.until_boot_ns);
    } else if !g.enforcing() {
        remember_write(file, g.scope_id, generation, u64::MAX);
    }
    Ok(verdict)
}

/// The gate for a change to the content of an open file: ungoverned
/// tasks pass after the scope lookup, ungoverned files and writes already
/// decided after a few reads; anything else is decided and recorded
/// ([`write_through`]).
///
/// The hook is a const parameter so each program has its own copy of the
/// decision closure: one closure shared by four programs is outlined by
/// LLVM into a BPF function taking a record pointer, which the 6.1
/// verifier refuses ("Unrecognized arg#0 type STRUCT").
#[inline(always)]
pub(crate) fn content_gate<const HOOK: u16>(prev: i32, file: Kptr, detail: u32) -> i32 {
    if prev != 0 || file.is_null() {
        return prev;
    }
    // The scope first: most writes on a node are ungoverned, and the
    // cached scope lookup costs less than the file-type reads.
    let Some(g) = scope::current() else {
        return prev;
    };
    if !governed_content(file) {
        return prev;
    }
    // A frozen scope (or one whose state is gone) is decided again, and
    // denied: the kill switch also stops writes through open files.
    if g.open().is_ok() && write_decided(file, g.scope_id) {
        return 0;
    }
    // Overlayfs writing its upper layer (a copy-up, a write through the
    // merged file): decided on the merged file. After the remembered-write
    // lookup, so writes already decided pay no credential reads.
    if scope::on_layers() {
        return prev;
    }
    gate::governed::<FileDecision>(&g, HOOK, |g, rec| write_through(g, rec, file, detail))
}

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
        kpath::walk(
            &raw mut (*rec).path,
            kobj::file_mnt(file).unwrap_or(core::ptr::null()),
            dentry,
        );
    }
    g.open()?;
    if kobj::task_exe_inode(scope::current_task()).is_ok_and(|exe| exe == inode) {
        return Ok(Verdict::allow(reason::OWN_EXECUTABLE, 0));
    }
    let exact = rules::file_exact(g, id, rights::EXEC | rights::MAP, Use::Check);
    if exact.allows() {
        Ok(exact)
    } else {
        rules::subtree(g, dentry, rights::MAP, Use::Check)
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
        Verdict::allow(reason::SAME_SCOPE, 0)
    } else {
        Verdict::deny(reason::OUTSIDE_SCOPE)
    })
}
