//! Matching an action against the scope's baseline and grants.
//!
//! Order: baseline first (free, unlimited), then a grant (checked for
//! expiry, then a use is taken atomically). A grant that matched but is
//! dead is remembered so the denial says why.

use core::{
    intrinsics::{AtomicOrdering, atomic_xadd},
    ptr::{addr_of_mut, read_volatile},
};

use acelogic_common::{
    codes::reason,
    event::FileId,
    rules::{FileKey, Grant, MAX_PATH_DEPTH, NET_FIXED_PREFIX, NetKey, grant_flags},
};
use aya_ebpf::{helpers::bpf_ktime_get_boot_ns, maps::lpm_trie::Key};

use crate::{
    kobj::{self, Kptr},
    maps::{FILE_BASELINE, FILE_GRANTS, NET_BASELINE, NET_GRANTS},
    scope::Governed,
    verdict::{Error, Verdict},
};

/// Whether a matching grant's use is taken. Exec and writes consume;
/// executable mappings only need the grant to be live (the exec that ran
/// the binary already took the use).
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Use {
    Consume,
    Check,
    /// Live is enough, uses left or not: a write through a descriptor
    /// that came from elsewhere uses no new access to the file.
    Live,
}

/// Checks a matched grant: live, with a use left (taken when `how` says
/// so). `Allow` with the grant id, or `Deny` with why it is dead.
#[inline(always)]
fn take(grant: *mut Grant, how: Use) -> Verdict {
    // SAFETY: `grant` points into a map value returned by a lookup (kernel
    // memory, not a Rust allocation); fields are read in place and
    // `uses_left`, which other CPUs change concurrently, only atomically.
    unsafe {
        let now = bpf_ktime_get_boot_ns();
        if now >= (*grant).expires_boot_ns {
            return Verdict::deny(reason::GRANT_EXPIRED);
        }
        if how != Use::Live && (*grant).flags & grant_flags::UNLIMITED_USES == 0 {
            let used = addr_of_mut!((*grant).used);
            let max = u64::from((*grant).max_uses);
            if how == Use::Consume {
                // Add first, then read: at most `max` matches ever see a
                // sum within bounds. The add's result is deliberately not
                // used, so it is the plain BPF atomic add (ISA v1); using
                // it would need ISA v3, which the aya-build toolchain does
                // not target.
                let _ = atomic_xadd::<u64, u64, { AtomicOrdering::Relaxed }>(used, 1);
            }
            let after = read_volatile(used);
            let within = if how == Use::Consume {
                after <= max
            } else {
                after < max
            };
            if !within {
                return Verdict::deny(reason::GRANT_USED_UP);
            }
        }
        Verdict::allow(reason::GRANT, (*grant).grant_id).until((*grant).expires_boot_ns)
    }
}

/// Baseline or grant for exactly this file. Denied `no-grant` when
/// nothing matched; denied with why when a grant matched but is dead.
/// (A verdict, not an `Option`: see [`Verdict`] on undefined payloads.)
#[inline(always)]
pub(crate) fn file_exact(g: &Governed, id: FileId, right: u32, how: Use) -> Verdict {
    let key = FileKey {
        scope_id: g.scope_id,
        dev: id.dev,
        ino: id.ino,
    };
    // SAFETY: the value is only read.
    if let Some(rule) = unsafe { FILE_BASELINE.get(&key) }
        && rule.rights & right != 0
    {
        return Verdict::BASELINE;
    }
    let Some(grant) = FILE_GRANTS.get_ptr_mut(&key) else {
        return Verdict::deny(reason::NO_GRANT);
    };
    // SAFETY: a map value pointer from a successful lookup.
    if unsafe { (*grant).rights } & right == 0 {
        return Verdict::deny(reason::NO_GRANT);
    }
    take(grant, how)
}

/// The verdict for a single file, exact match only (exec).
#[inline(always)]
pub(crate) fn file(g: &Governed, id: FileId, right: u32, how: Use) -> Result<Verdict, Error> {
    g.open()?;
    Ok(file_exact(g, id, right, how))
}

/// The verdict for the object at `dentry`: a rule on the file itself or on
/// any directory above it, up to the filesystem root and at most
/// `MAX_PATH_DEPTH` levels. A negative dentry (a name being created) is
/// decided by its directories. The first allowing match wins; a dead grant
/// on the way is reported if nothing allows.
#[inline(always)]
pub(crate) fn subtree(g: &Governed, dentry: Kptr, right: u32, how: Use) -> Result<Verdict, Error> {
    g.open()?;
    let mut denial = reason::NO_GRANT;
    let mut d = dentry;
    let mut level = 0;
    while level <= MAX_PATH_DEPTH {
        let inode = kobj::dentry_inode(d)?;
        if !inode.is_null() {
            let v = file_exact(g, kobj::inode_id(inode)?, right, how);
            if v.allows() {
                return Ok(v);
            }
            // A dead grant says more than a level without one.
            if v.reason != reason::NO_GRANT {
                denial = v.reason;
            }
        }
        let parent = kobj::dentry_parent(d)?;
        if parent == d {
            return Ok(Verdict::deny(denial));
        }
        d = parent;
        level += 1;
    }
    Err(Error::TooDeep)
}

/// The verdict for a network destination. `port_be` and `addr` as in
/// [`NetKey`]; `addr_bits` is 32 or 128.
#[inline(always)]
pub(crate) fn net(
    g: &Governed,
    protocol: u8,
    family: u8,
    port_be: u16,
    addr: [u8; 16],
    addr_bits: u32,
) -> Result<Verdict, Error> {
    g.open()?;
    let mut key = Key::new(
        NET_FIXED_PREFIX + addr_bits,
        NetKey {
            scope_id_be: g.scope_id.to_be(),
            protocol,
            family,
            port_be,
            addr,
        },
    );
    let mut denial = reason::NO_GRANT;
    // The exact port first, then rules for any port (port 0).
    let mut round = 0;
    while round < 2 {
        if NET_BASELINE.get(&key).is_some() {
            return Ok(Verdict::BASELINE);
        }
        if let Some(grant) = NET_GRANTS.get(&key) {
            let v = take((grant as *const Grant).cast_mut(), Use::Consume);
            if v.allows() {
                return Ok(v);
            }
            denial = v.reason;
        }
        key.data.port_be = 0;
        round += 1;
    }
    Ok(Verdict::deny(denial))
}
