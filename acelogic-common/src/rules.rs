//! Baselines and grants: what a governed scope may do.
//!
//! Objects are matched by identity, not by name: files by (device, inode),
//! network endpoints by family, protocol, port and address prefix.

use core::mem::size_of;

/// Bits of a file rule's `rights`.
pub mod rights {
    /// The file itself may be executed (and mapped executable).
    pub const EXEC: u32 = 1;
    /// The file, or every file below this directory, may be mapped
    /// executable: shared libraries.
    pub const MAP: u32 = 2;
    /// The file, or every file below this directory, may be written,
    /// created, removed, renamed or have its attributes changed.
    pub const WRITE: u32 = 4;
    /// The bound AF_UNIX socket at this inode may be connected to or sent
    /// to (baseline only).
    pub const UNIX_CONNECT: u32 = 8;
    /// Every defined bit.
    pub const ALL: u32 = EXEC | MAP | WRITE | UNIX_CONNECT;
}

/// Number of directory levels the write and library checks walk above the
/// file (the file itself not counted). A file deeper than this below its
/// filesystem's root is denied with reason `path-too-deep` unless a rule
/// matched within the walked levels.
pub const MAX_PATH_DEPTH: u32 = 24;

/// Key of `FILE_BASELINE` and `FILE_GRANTS`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileKey {
    pub scope_id: u32,
    /// The kernel's `dev_t` of the filesystem (`MAJOR << 20 | MINOR`), not
    /// the userspace `st_dev` encoding.
    pub dev: u32,
    pub ino: u64,
}

const _: () = assert!(size_of::<FileKey>() == 16);

/// Value of `FILE_BASELINE`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileRule {
    /// [`rights`] bits.
    pub rights: u32,
    pub _reserved: u32,
}

const _: () = assert!(size_of::<FileRule>() == 8);

/// Bits of [`Grant::flags`].
pub mod grant_flags {
    /// Uses are not counted.
    pub const UNLIMITED_USES: u32 = 1;
}

/// Value of `FILE_GRANTS` and `NET_GRANTS`: a time- and use-bounded
/// permission installed from a verified artifact.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grant {
    /// Ties every decision the grant allowed back to its artifact.
    pub grant_id: u64,
    /// `CLOCK_BOOTTIME` nanoseconds after which the grant is dead. The
    /// kernel checks it on every match, so a grant expires even if no
    /// daemon is alive to remove it.
    pub expires_boot_ns: u64,
    /// Matches that tried to take a use so far. The kernel adds one
    /// atomically, then allows only if the sum is at most `max_uses`, so at
    /// most `max_uses` matches are ever allowed (under contention possibly
    /// fewer: it fails closed).
    pub used: u64,
    /// Uses the grant allows; ignored with [`grant_flags::UNLIMITED_USES`].
    pub max_uses: u32,
    /// [`rights`] bits for file grants; 0 for network grants.
    pub rights: u32,
    /// [`grant_flags`] bits.
    pub flags: u32,
    pub _reserved: u32,
}

const _: () = assert!(size_of::<Grant>() == 40);

/// Address families in [`NetKey::family`] (the kernel's `AF_*`).
pub mod family {
    pub const INET: u8 = 2;
    pub const INET6: u8 = 10;
}

/// Data of the LPM trie key of `NET_BASELINE` and `NET_GRANTS`. The LPM
/// prefix covers `scope_id`, `protocol`, `family` and `port` entirely
/// ([`NET_FIXED_PREFIX`] bits) plus the address prefix. Port 0 in a rule
/// means any port.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct NetKey {
    /// Big-endian, so that the fixed part sorts as a plain prefix.
    pub scope_id_be: u32,
    /// `IPPROTO_TCP` (6) or `IPPROTO_UDP` (17).
    pub protocol: u8,
    /// [`family`].
    pub family: u8,
    /// Destination port, network byte order; 0 in a rule matches any port.
    pub port_be: u16,
    /// IPv4 in the first 4 bytes (the rest zero), or IPv6.
    pub addr: [u8; 16],
}

const _: () = assert!(size_of::<NetKey>() == 24);

/// Bits of the LPM prefix before the address.
pub const NET_FIXED_PREFIX: u32 = 64;

/// Value of `NET_BASELINE`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NetRule {
    pub _reserved: u64,
}

const _: () = assert!(size_of::<NetRule>() == 8);

/// A write through an open file decided and allowed (or audited) for a
/// scope: the value of `WRITERS`, keyed by the `struct file` address.
/// Later writes through the file are not decided again while the entry
/// holds: same scope, same rules generation, before `until_boot_ns`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Writer {
    pub scope_id: u32,
    pub _reserved: u32,
    /// `RULES_GEN` when the write was decided. The agent bumps it after
    /// every change to the file rules (a narrowed baseline, a removed
    /// grant), so a write allowed by a rule that is gone is decided again.
    pub generation: u64,
    /// `CLOCK_BOOTTIME` ns from which the entry no longer holds: the expiry
    /// of the grant that allowed the write, `u64::MAX` for a baseline.
    pub until_boot_ns: u64,
}

const _: () = assert!(size_of::<Writer>() == 24);
