//! SHA-256 of files, remembered per file version so a submit does not
//! rehash a binary that has not changed since it was last hashed.
//!
//! The cache must never vouch for content that changed, so an entry is
//! used only when everything the kernel changes on a write is unchanged,
//! and is made only when that is known to cover every write:
//!
//! - **Key.** Device, inode, size, modification and change times with
//!   nanoseconds, and the birth time where the filesystem reports one
//!   (statx). Every write, truncate or fallocate updates mtime and ctime,
//!   and ctime cannot be set from userspace (`utimensat` sets mtime and
//!   atime and moves ctime to now). The inode's change counter (i_version,
//!   `STATX_CHANGE_COOKIE`) would be better still, but the kernel keeps it
//!   to itself: `statx` masks the bit out of its answer, so the time tuple
//!   is the key everywhere.
//! - **One descriptor.** The digest is read from the descriptor the caller
//!   opened (and will make the grant from), stat'ed before and after the
//!   read; if the two differ, nothing is cached.
//! - **Settled times.** Timestamps have a granularity (a clock tick, a
//!   whole second on some filesystems), so a write in the same tick as the
//!   hash could leave them unchanged. An entry is made only when the
//!   file's ctime is older than [`SETTLE`] before the hash started: any
//!   later write stamps a later ctime.
//! - **No writer.** A shared writable mapping changes content without
//!   touching the times after its first write fault (on tmpfs, for as long
//!   as it stays mapped), and a long `write` stamps the times when it
//!   starts. Both keep the file open for writing, which a read lease
//!   cannot coexist with: before hashing, after hashing and before every
//!   use of an entry, the cache takes a read lease on its read-only
//!   descriptor and drops it at once (`F_SETLEASE`), and a file anyone has
//!   open for writing (`EAGAIN`), or where leases are not allowed, is
//!   hashed and not cached. Should a writer open the file in the moment
//!   the lease is held, the kernel signals the lease holder: the
//!   descriptor is set to signal `SIGURG` (ignored by default) rather than
//!   `SIGIO` (which would end the daemon).
//! - **Local filesystems only.** ext2/3/4, XFS, Btrfs, tmpfs and ramfs. On a
//!   network filesystem, FUSE or overlayfs, content can change where this
//!   kernel's inode does not see it (another client, the FUSE server, an
//!   overlay's lower or upper file written directly): such files are
//!   always hashed.
//!
//! What is left is root changing the wall clock back and then writing in
//! the very nanosecond of an entry's ctime, or writing the block device
//! under the filesystem: root is trusted.
//!
//! Bounded: at most `capacity` files, the least recently used dropped
//! first.

use std::{
    collections::HashMap,
    fs::File,
    os::{fd::AsRawFd as _, unix::fs::FileExt as _},
    sync::{
        LazyLock, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use sha2::{Digest as _, Sha256};

/// How much older than the start of a hash a file's ctime must be for its
/// digest to be kept (a whole second of timestamp granularity, and more).
pub const SETTLE: Duration = Duration::from_secs(2);
/// Files the process-wide cache remembers.
pub const CAPACITY: usize = 16_384;

static PROCESS: LazyLock<DigestCache> = LazyLock::new(|| DigestCache::new(CAPACITY, SETTLE));

/// SHA-256 of `file`'s content, through the process-wide cache.
pub fn sha256(file: &File) -> std::io::Result<[u8; 32]> {
    PROCESS.sha256(file)
}

/// The process-wide cache's counters.
#[must_use]
pub fn stats() -> Stats {
    PROCESS.stats()
}

/// What the cache did so far.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Digests served from the cache.
    pub hits: u64,
    /// Files read and hashed.
    pub hashed: u64,
    /// Of those, digests kept.
    pub stored: u64,
}

/// One version of one file: what a write changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Version {
    dev: (u32, u32),
    ino: u64,
    size: u64,
    mtime: (i64, u32),
    ctime: (i64, u32),
    btime: Option<(i64, u32)>,
}

#[derive(Debug)]
struct Entry {
    version: Version,
    digest: [u8; 32],
    used: u64,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<((u32, u32), u64), Entry>,
    clock: u64,
}

/// Digests by file version; see the module docs for when one is kept.
#[derive(Debug)]
pub struct DigestCache {
    inner: Mutex<Inner>,
    capacity: usize,
    settle: Duration,
    hits: AtomicU64,
    hashed: AtomicU64,
    stored: AtomicU64,
}

impl DigestCache {
    /// A cache of at most `capacity` files that keeps a digest only when
    /// the file's ctime is older than `settle` before the hash began.
    #[must_use]
    pub fn new(capacity: usize, settle: Duration) -> Self {
        Self {
            inner: Mutex::new(Inner::default()),
            capacity,
            settle,
            hits: AtomicU64::new(0),
            hashed: AtomicU64::new(0),
            stored: AtomicU64::new(0),
        }
    }

    #[must_use]
    pub fn stats(&self) -> Stats {
        Stats {
            hits: self.hits.load(Ordering::Relaxed),
            hashed: self.hashed.load(Ordering::Relaxed),
            stored: self.stored.load(Ordering::Relaxed),
        }
    }

    /// SHA-256 of everything `file` holds (read from offset 0, whatever
    /// the descriptor's position), from the cache when this version of the
    /// file was hashed before.
    pub fn sha256(&self, file: &File) -> std::io::Result<[u8; 32]> {
        let started = SystemTime::now();
        let before = cacheable(file);
        if let Some(v) = before
            && let Some(d) = self.lookup(&v)
        {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(d);
        }
        let digest = read_sha256(file)?;
        self.hashed.fetch_add(1, Ordering::Relaxed);
        if let Some(v) = before
            && settled(v.ctime, started, self.settle)
            && cacheable(file) == Some(v)
        {
            self.insert(v, digest);
            self.stored.fetch_add(1, Ordering::Relaxed);
        }
        Ok(digest)
    }

    fn lookup(&self, v: &Version) -> Option<[u8; 32]> {
        let mut inner = self.inner.lock().ok()?;
        inner.clock += 1;
        let now = inner.clock;
        let e = inner.entries.get_mut(&(v.dev, v.ino))?;
        if e.version != *v {
            return None;
        }
        e.used = now;
        Some(e.digest)
    }

    fn insert(&self, version: Version, digest: [u8; 32]) {
        let Ok(mut inner) = self.inner.lock() else {
            return;
        };
        inner.clock += 1;
        let used = inner.clock;
        let key = (version.dev, version.ino);
        if !inner.entries.contains_key(&key)
            && inner.entries.len() >= self.capacity
            && let Some(oldest) = inner
                .entries
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(k, _)| *k)
        {
            inner.entries.remove(&oldest);
        }
        if self.capacity > 0 {
            inner.entries.insert(
                key,
                Entry {
                    version,
                    digest,
                    used,
                },
            );
        }
    }
}

/// Reads `file` from offset 0 to its end.
fn read_sha256(file: &File) -> std::io::Result<[u8; 32]> {
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut at = 0u64;
    loop {
        let n = match file.read_at(&mut buf, at) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        hasher.update(&buf[..n]);
        at += n as u64;
    }
    Ok(hasher.finalize().into())
}

/// True when `ctime` is at least `settle` before `started`.
fn settled(ctime: (i64, u32), started: SystemTime, settle: Duration) -> bool {
    let Ok(secs) = u64::try_from(ctime.0) else {
        return false;
    };
    let changed = UNIX_EPOCH + Duration::new(secs, ctime.1);
    changed
        .checked_add(settle)
        .is_some_and(|limit| limit <= started)
}

/// The file's version when its digest may be cached: a regular file on a
/// local filesystem that nobody has open for writing; `None` otherwise.
fn cacheable(file: &File) -> Option<Version> {
    if !local_filesystem(file) || !no_writer(file) {
        return None;
    }
    version(file)
}

/// Filesystem magic numbers (`statfs(2)`) whose inodes see every change.
const LOCAL: [libc::__fsword_t; 5] = [
    0xEF53,      // ext2, ext3, ext4
    0x5846_5342, // XFS
    0x9123_683E, // Btrfs
    0x0102_1994, // tmpfs
    0x8584_58F6, // ramfs (an initramfs root)
];

fn local_filesystem(file: &File) -> bool {
    // SAFETY: an all-zero statfs is a valid value; fstatfs overwrites it.
    let mut s: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: the descriptor is open for the duration of the call, and
    // fstatfs writes only the struct it is given.
    if unsafe { libc::fstatfs(file.as_raw_fd(), &raw mut s) } != 0 {
        return false;
    }
    LOCAL.contains(&s.f_type)
}

/// `fcntl` command: the signal sent when a lease breaks
/// (`<asm-generic/fcntl.h>`; the libc crate does not name it).
const F_SETSIG: libc::c_int = 10;

/// True when nobody has the file open for writing (a read lease can be
/// taken); the lease is dropped at once.
fn no_writer(file: &File) -> bool {
    let fd = file.as_raw_fd();
    // SAFETY: fcntl on a descriptor we own; F_SETSIG and F_SETLEASE change
    // only this open file's signal and lease, and the lease is released
    // before returning (or, should that fail, when the file is closed).
    unsafe {
        if libc::fcntl(fd, F_SETSIG, libc::SIGURG) != 0 {
            return false;
        }
        if libc::fcntl(fd, libc::F_SETLEASE, libc::F_RDLCK) != 0 {
            return false;
        }
        libc::fcntl(fd, libc::F_SETLEASE, libc::F_UNLCK) == 0
    }
}

/// The descriptor's statx, when it is a regular file and the kernel filled
/// in every field of the key.
fn version(file: &File) -> Option<Version> {
    // SAFETY: an all-zero statx is a valid value; statx overwrites it.
    let mut s: libc::statx = unsafe { std::mem::zeroed() };
    let want = libc::STATX_TYPE
        | libc::STATX_INO
        | libc::STATX_SIZE
        | libc::STATX_MTIME
        | libc::STATX_CTIME
        | libc::STATX_BTIME;
    // SAFETY: an empty C string with AT_EMPTY_PATH stats the descriptor
    // itself; statx writes only the struct it is given.
    let rc = unsafe {
        libc::statx(
            file.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | libc::AT_STATX_SYNC_AS_STAT,
            want,
            &raw mut s,
        )
    };
    let needed = want & !libc::STATX_BTIME;
    if rc != 0 || s.stx_mask & needed != needed {
        return None;
    }
    if u32::from(s.stx_mode) & libc::S_IFMT != libc::S_IFREG {
        return None;
    }
    let t = |t: libc::statx_timestamp| (t.tv_sec, t.tv_nsec);
    Some(Version {
        dev: (s.stx_dev_major, s.stx_dev_minor),
        ino: s.stx_ino,
        size: s.stx_size,
        mtime: t(s.stx_mtime),
        ctime: t(s.stx_ctime),
        btime: (s.stx_mask & libc::STATX_BTIME != 0).then(|| t(s.stx_btime)),
    })
}

#[cfg(test)]
mod tests {
    use std::{
        io::Write as _,
        os::unix::fs::{FileExt as _, MetadataExt as _},
        path::Path,
    };

    use super::*;

    /// Short enough for tests, well above a clock tick.
    const TEST_SETTLE: Duration = Duration::from_millis(300);

    fn digest_of(bytes: &[u8]) -> [u8; 32] {
        Sha256::digest(bytes).into()
    }

    fn scratch() -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix("acelogic-digest-")
            .tempdir()
            .unwrap()
    }

    /// Writes `path` and waits until its ctime has settled.
    fn settled_file(path: &Path, bytes: &[u8]) {
        std::fs::write(path, bytes).unwrap();
        std::thread::sleep(TEST_SETTLE + Duration::from_millis(50));
    }

    fn hash(cache: &DigestCache, path: &Path) -> [u8; 32] {
        cache.sha256(&File::open(path).unwrap()).unwrap()
    }

    fn cache() -> DigestCache {
        DigestCache::new(64, TEST_SETTLE)
    }

    /// Fails, never skips, where the temporary directory's filesystem is
    /// not one the cache serves or leases are not allowed: a cache test
    /// that returned early there would pass without checking anything.
    /// Point `TMPDIR` at a local filesystem to run them.
    fn assert_served(dir: &Path) {
        let probe = dir.join("probe");
        std::fs::write(&probe, b"probe").unwrap();
        let f = File::open(&probe).unwrap();
        assert!(
            local_filesystem(&f) && no_writer(&f),
            "{} is not a filesystem the digest cache serves (local, leases allowed); set \
             TMPDIR to one",
            dir.display()
        );
    }

    #[test]
    fn an_unchanged_file_is_served_from_the_cache() {
        let dir = scratch();
        assert_served(dir.path());
        let p = dir.path().join("tool");
        settled_file(&p, b"#!/bin/sh\necho one\n");
        let c = cache();
        assert_eq!(hash(&c, &p), digest_of(b"#!/bin/sh\necho one\n"));
        assert_eq!(
            c.stats(),
            Stats {
                hits: 0,
                hashed: 1,
                stored: 1
            }
        );
        for _ in 0..3 {
            assert_eq!(hash(&c, &p), digest_of(b"#!/bin/sh\necho one\n"));
        }
        assert_eq!(
            c.stats(),
            Stats {
                hits: 3,
                hashed: 1,
                stored: 1
            }
        );
        // The descriptor's position does not matter.
        let mut f = File::open(&p).unwrap();
        std::io::Read::read(&mut f, &mut [0u8; 4]).unwrap();
        assert_eq!(c.sha256(&f).unwrap(), digest_of(b"#!/bin/sh\necho one\n"));
    }

    /// Same size, and the mtime put back with utimensat: the ctime still
    /// moves, so the new content is hashed.
    #[test]
    fn an_in_place_rewrite_with_the_same_size_and_mtime_is_hashed_again() {
        let dir = scratch();
        assert_served(dir.path());
        let p = dir.path().join("tool");
        settled_file(&p, b"#!/bin/sh\necho one\n");
        let c = cache();
        hash(&c, &p);
        let before = std::fs::metadata(&p).unwrap();
        let f = std::fs::OpenOptions::new().write(true).open(&p).unwrap();
        f.write_all_at(b"#!/bin/sh\necho two\n", 0).unwrap();
        drop(f);
        // utimensat(2): the old mtime back, atime left alone.
        let times = [
            libc::timespec {
                tv_sec: 0,
                tv_nsec: libc::UTIME_OMIT,
            },
            libc::timespec {
                tv_sec: before.mtime(),
                tv_nsec: before.mtime_nsec(),
            },
        ];
        let c_path = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid C path and two timespecs, as utimensat expects.
        let rc = unsafe { libc::utimensat(libc::AT_FDCWD, c_path.as_ptr(), times.as_ptr(), 0) };
        assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
        let after = std::fs::metadata(&p).unwrap();
        assert_eq!((after.len(), after.ino()), (before.len(), before.ino()));
        assert_eq!(
            (after.mtime(), after.mtime_nsec()),
            (before.mtime(), before.mtime_nsec())
        );
        assert_ne!(
            (after.ctime(), after.ctime_nsec()),
            (before.ctime(), before.ctime_nsec())
        );
        assert_eq!(hash(&c, &p), digest_of(b"#!/bin/sh\necho two\n"));
        assert_eq!(c.stats().hits, 0);
    }

    #[test]
    fn a_truncated_file_is_hashed_again() {
        let dir = scratch();
        assert_served(dir.path());
        let p = dir.path().join("tool");
        settled_file(&p, b"#!/bin/sh\necho one\n");
        let c = cache();
        hash(&c, &p);
        File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_len(4)
            .unwrap();
        assert_eq!(hash(&c, &p), digest_of(b"#!/b"));
        assert_eq!(c.stats().hits, 0);
    }

    #[test]
    fn a_file_renamed_over_the_path_is_hashed_again() {
        let dir = scratch();
        assert_served(dir.path());
        let p = dir.path().join("tool");
        let q = dir.path().join("tool.new");
        settled_file(&p, b"#!/bin/sh\necho one\n");
        std::fs::write(&q, b"#!/bin/sh\necho two\n").unwrap();
        let c = cache();
        hash(&c, &p);
        std::fs::rename(&q, &p).unwrap();
        assert_eq!(hash(&c, &p), digest_of(b"#!/bin/sh\necho two\n"));
        assert_eq!(c.stats().hits, 0);
    }

    /// A file changed within the settle time is hashed each time and never
    /// kept: a write in the same timestamp tick could go unseen.
    #[test]
    fn a_freshly_changed_file_is_not_kept() {
        let dir = scratch();
        assert_served(dir.path());
        let p = dir.path().join("tool");
        std::fs::write(&p, b"fresh").unwrap();
        let c = DigestCache::new(64, Duration::from_secs(3600));
        hash(&c, &p);
        hash(&c, &p);
        assert_eq!(
            c.stats(),
            Stats {
                hits: 0,
                hashed: 2,
                stored: 0
            }
        );
    }

    /// While anyone has the file open for writing (a shared writable
    /// mapping keeps it so), its digest is neither kept nor served.
    #[test]
    fn a_file_open_for_writing_is_hashed_every_time() {
        let dir = scratch();
        assert_served(dir.path());
        let p = dir.path().join("tool");
        settled_file(&p, b"#!/bin/sh\necho one\n");
        let c = cache();
        let mut writer = File::options().write(true).open(&p).unwrap();
        hash(&c, &p);
        assert_eq!(
            c.stats(),
            Stats {
                hits: 0,
                hashed: 1,
                stored: 0
            }
        );
        // Kept once the writer is gone; not served while one is back.
        writer.flush().unwrap();
        drop(writer);
        hash(&c, &p);
        assert_eq!(c.stats().stored, 1);
        let _writer = File::options().write(true).open(&p).unwrap();
        hash(&c, &p);
        assert_eq!(
            c.stats(),
            Stats {
                hits: 0,
                hashed: 3,
                stored: 1
            }
        );
    }

    #[test]
    fn the_cache_is_bounded_and_drops_the_least_recently_used() {
        let dir = scratch();
        assert_served(dir.path());
        let paths: Vec<_> = (0..3).map(|i| dir.path().join(format!("f{i}"))).collect();
        for (i, p) in paths.iter().enumerate() {
            std::fs::write(p, format!("file {i}")).unwrap();
        }
        std::thread::sleep(TEST_SETTLE + Duration::from_millis(50));
        let c = DigestCache::new(2, TEST_SETTLE);
        hash(&c, &paths[0]);
        hash(&c, &paths[1]);
        hash(&c, &paths[0]); // f1 is now the least recently used
        hash(&c, &paths[2]); // evicts f1
        assert_eq!(
            c.stats(),
            Stats {
                hits: 1,
                hashed: 3,
                stored: 3
            }
        );
        hash(&c, &paths[0]);
        hash(&c, &paths[1]);
        assert_eq!(
            c.stats(),
            Stats {
                hits: 2,
                hashed: 4,
                stored: 4
            }
        );
        assert_eq!(c.inner.lock().unwrap().entries.len(), 2);
    }

    /// The kernel keeps the change cookie to itself; if a kernel ever
    /// answers STATX_CHANGE_COOKIE, this test says the key could use it.
    #[test]
    fn statx_does_not_expose_the_change_cookie() {
        const STATX_CHANGE_COOKIE: u32 = 0x4000_0000;
        let dir = scratch();
        let p = dir.path().join("f");
        std::fs::write(&p, b"x").unwrap();
        let f = File::open(&p).unwrap();
        // SAFETY: as in `version`.
        let mut s: libc::statx = unsafe { std::mem::zeroed() };
        // SAFETY: as in `version`.
        let rc = unsafe {
            libc::statx(
                f.as_raw_fd(),
                c"".as_ptr(),
                libc::AT_EMPTY_PATH,
                libc::STATX_BASIC_STATS | STATX_CHANGE_COOKIE,
                &raw mut s,
            )
        };
        assert_eq!(rc, 0);
        assert_eq!(s.stx_mask & STATX_CHANGE_COOKIE, 0);
    }

    #[test]
    fn settling_compares_ctime_with_the_start_of_the_hash() {
        let t = UNIX_EPOCH + Duration::from_secs(1_000);
        assert!(settled((990, 0), t, Duration::from_secs(2)));
        assert!(!settled((999, 0), t, Duration::from_secs(2)));
        assert!(!settled((1_001, 0), t, Duration::from_secs(2)));
        assert!(!settled((-1, 0), t, Duration::from_secs(2)));
    }
}
