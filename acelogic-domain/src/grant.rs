//! Grants in the kernel's terms: objects resolved to identities (a file
//! to its kernel device and inode, a destination to protocol, prefix and
//! port), the scope, the expiry on `CLOCK_BOOTTIME` and the uses. The
//! engine decides these and the kernel adapter installs them; neither
//! needs the other to say what a grant is.

use std::{
    net::IpAddr,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    time::Duration,
};

use crate::capability::Protocol;

/// A file whose identity could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct StatError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// A network destination rule: protocol, address prefix, port (0: any).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct NetTarget {
    pub protocol: Protocol,
    pub addr: IpAddr,
    pub prefix: u8,
    pub port: u16,
}

impl NetTarget {
    /// One exact address and port.
    #[must_use]
    pub const fn host(protocol: Protocol, addr: IpAddr, port: u16) -> Self {
        let prefix = match addr {
            IpAddr::V4(_) => 32,
            IpAddr::V6(_) => 128,
        };
        Self {
            protocol,
            addr,
            prefix,
            port,
        }
    }
}

/// What a grant allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantObject {
    /// A file or directory (resolved to device and inode now) with
    /// `acelogic_common::rules::rights` bits.
    File {
        path: PathBuf,
        rights: u32,
    },
    /// A file or directory already resolved to (kernel dev, inode), for
    /// callers that checked the object through an open descriptor (the
    /// digest of a binary) and must not look the path up a second time.
    FileId {
        dev: u32,
        ino: u64,
        rights: u32,
    },
    Net(NetTarget),
}

/// One grant to install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantSpec {
    /// Non-zero; the artifact's grant id, carried into every record.
    pub grant_id: u64,
    pub scope_id: u32,
    /// `CLOCK_BOOTTIME` nanoseconds after which the grant is dead; see
    /// [`boot_ns_in`].
    pub expires_boot_ns: u64,
    /// `None`: unlimited uses until expiry.
    pub max_uses: Option<u32>,
    pub object: GrantObject,
}

/// `CLOCK_BOOTTIME` now, in nanoseconds: the clock grants expire by.
#[must_use]
pub fn boot_ns_now() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid out-pointer; CLOCK_BOOTTIME always exists on
    // the kernels BPF LSM runs on.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &raw mut ts) };
    u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000 + u64::try_from(ts.tv_nsec).unwrap_or(0)
}

/// `CLOCK_BOOTTIME` nanoseconds `after` from now.
#[must_use]
pub fn boot_ns_in(after: Duration) -> u64 {
    boot_ns_now().saturating_add(u64::try_from(after.as_nanos()).unwrap_or(u64::MAX))
}

/// The kernel's `dev_t` (`MAJOR << 20 | MINOR`) for a userspace `st_dev`.
#[must_use]
pub fn kernel_dev(st_dev: u64) -> u32 {
    (libc::major(st_dev) << 20) | libc::minor(st_dev)
}

/// Device and inode of the file at `path`, symlinks followed: the object
/// the kernel will see when the file is used.
pub fn file_identity(path: &Path) -> Result<(u32, u64), StatError> {
    let meta = std::fs::metadata(path).map_err(|source| StatError {
        path: path.to_path_buf(),
        source,
    })?;
    Ok((kernel_dev(meta.dev()), meta.ino()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_dev_matches_the_kernel_encoding() {
        // 8:1 (sda1) is 0x801 in userspace and (8 << 20) | 1 in the kernel.
        assert_eq!(kernel_dev(libc::makedev(8, 1)), (8 << 20) | 1);
        // Minors above 255 use the split userspace encoding.
        assert_eq!(kernel_dev(libc::makedev(259, 300)), (259 << 20) | 300);
    }
}
