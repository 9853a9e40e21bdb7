//! Paths as the kernel resolved them, for the records: a bounded walk from
//! a dentry up through its parents, crossing each mount to the dentry it
//! is mounted on, until the root of the mount tree (or of the file's own
//! filesystem when the hook gives no mount).
//!
//! Nothing is decided on a path (decisions use inode identity); a walk
//! that fails keeps what it read and says so in the flags, and never turns
//! into a denial. The components are written leaf first, each
//! NUL-terminated, straight into the reserved record: no byte is moved,
//! userspace reverses them.
//!
//! The walk's cursor (bytes used, components, flags) lives in the per-CPU
//! `PATH_WALK` map, read back at each step: to the verifier it is then the
//! same unknown, bounded value at the top of every iteration, whichever
//! way the previous one went (a name or a mount crossing), so it prunes
//! instead of following every combination (6.1 gave up with E2BIG when
//! the cursor lived in registers).

use acelogic_common::event::{KPath, PATH_DEPTH, PATH_LEN, path_flag};
use aya_ebpf::helpers::bpf_probe_read_kernel_str_bytes;

use crate::{
    kobj::{self, Kptr},
    maps::PATH_WALK,
};

/// A component starts in the first half of the buffer and may take the
/// whole second half: the verifier sees every write inside the buffer.
const HALF: usize = PATH_LEN / 2;
/// Mount crossings allowed on top of the components.
const CROSSINGS: u32 = 8;

/// The walk's cursor, one per CPU.
#[repr(C)]
#[derive(Clone, Copy)]
pub(crate) struct Cursor {
    pos: usize,
    depth: u16,
    flags: u16,
    _pad: u32,
}

/// `v & mask`, with the mask applied where the verifier sees it (the value
/// passes through a volatile read the optimizer cannot see through).
#[inline(always)]
pub(crate) fn bounded(v: usize, mask: usize) -> usize {
    // SAFETY: a read of a local.
    unsafe { core::ptr::read_volatile(&raw const v) & mask }
}

/// Writes a path that was not walked: no components, `flags`.
#[inline(always)]
fn empty(out: *mut KPath, flags: u16) {
    // SAFETY: `out` is inside the caller's exclusively owned record.
    unsafe {
        (*out).len = 0;
        (*out).depth = 0;
        (*out).flags = flags;
        (*out)._pad = 0;
    }
}

/// A path whose start could not be read: nothing recorded.
#[inline(always)]
pub(crate) fn unreadable(out: *mut KPath) {
    empty(out, path_flag::UNREADABLE);
}

/// Walks `dentry` (on the mount `mnt`, or null when the hook gives none)
/// into `out`.
#[inline(always)]
pub(crate) fn walk(out: *mut KPath, mnt: Kptr, dentry: Kptr) {
    let Some(c) = PATH_WALK.get_ptr_mut(0) else {
        empty(out, path_flag::UNREADABLE);
        return;
    };
    // SAFETY: `c` (here and below) is a per-CPU map value this program
    // owns while it runs.
    unsafe {
        (*c).pos = 0;
        (*c).depth = 0;
        (*c).flags = if mnt.is_null() {
            path_flag::NO_MOUNT
        } else {
            0
        };
    }
    let mut vfsmnt = mnt;
    let mut mount = if mnt.is_null() {
        core::ptr::null()
    } else {
        kobj::real_mount(mnt)
    };
    let mut d = dentry;
    let mut steps = 0;
    let mut end = path_flag::TRUNCATED;
    while steps < PATH_DEPTH + CROSSINGS {
        steps += 1;
        let Ok(parent) = kobj::dentry_parent(d) else {
            end = path_flag::UNREADABLE;
            break;
        };
        let mnt_root = if vfsmnt.is_null() {
            core::ptr::null()
        } else {
            kobj::vfsmount_root(vfsmnt).unwrap_or(core::ptr::null())
        };
        if d == mnt_root {
            // The root of this mount: continue at its mountpoint, unless
            // it is the root of the whole tree.
            let (Ok(up), Ok(point)) = (kobj::mount_parent(mount), kobj::mount_mountpoint(mount))
            else {
                end = path_flag::UNREADABLE;
                break;
            };
            if up == mount {
                end = 0;
                break;
            }
            d = point;
            mount = up;
            vfsmnt = kobj::mount_vfsmount(up);
            continue;
        }
        if parent == d {
            // A filesystem's root that is not its mount's: the hook gave
            // no mount (fine), or the dentry is not under its mount's root
            // (unlinked, or outside a bind mount's view).
            end = if vfsmnt.is_null() {
                0
            } else {
                path_flag::UNLINKED
            };
            break;
        }
        // SAFETY: see above.
        let pos = unsafe { (*c).pos };
        if pos >= HALF {
            break;
        }
        let start = bounded(pos, HALF - 1);
        let name = kobj::dentry_name_ptr(d);
        // SAFETY: `out` is an exclusively owned slot of the reserved
        // record; the slice starts below HALF and is HALF long, inside the
        // PATH_LEN-byte buffer; the helper bounds the copy by it.
        let read = unsafe {
            let dst = core::slice::from_raw_parts_mut((*out).bytes.as_mut_ptr().add(start), HALF);
            bpf_probe_read_kernel_str_bytes(name, dst).map(<[u8]>::len)
        };
        let Ok(n) = read else {
            end = path_flag::UNREADABLE;
            break;
        };
        // SAFETY: see above.
        unsafe {
            (*c).pos = start + n + 1;
            (*c).depth += 1;
        }
        d = parent;
    }
    // SAFETY: see above; `out` as in the loop.
    unsafe {
        #[expect(clippy::cast_possible_truncation, reason = "pos < PATH_LEN")]
        {
            (*out).len = (*c).pos.min(PATH_LEN) as u16;
        }
        (*out).depth = (*c).depth;
        (*out).flags = (*c).flags | end;
        (*out)._pad = 0;
    }
}
