//! Writes through descriptors a governed process did not open itself:
//! inherited across fork (as a shell's `>> file` is), passed, or opened
//! before governance. Every way to change a file's content through such a
//! descriptor is decided by the writable set, like an open for write: the
//! write family, fallocate, copy_file_range, sendfile, splice, ftruncate,
//! shared writable mappings. Truncation by `open(O_RDONLY|O_TRUNC)` too.
//! Pipes, `/dev/null` and memfds stay usable.
//!
//! Each attempt runs ungoverned first (it must succeed, or the case
//! proves nothing), then governed (EPERM, the file unchanged), and the
//! denials are in the records.

use std::{fs, os::fd::AsRawFd as _, path::Path};

use acelogic_common::user::{Event, Hook, Reason, Verdict};
use anyhow::{Context as _, ensure};

use crate::{
    cases::files::{Tree, denials, open_errno},
    fixtures::{errno_if, expect_decision, in_cgroup, render_all},
    harness::{Case, Need},
};

pub(crate) const CASES: &[Case] = &[
    Case {
        name: "writes_through_inherited_descriptors_decided",
        needs: &[Need::BpfLsm],
        run: writes_through_inherited_descriptors_decided,
    },
    Case {
        name: "truncating_open_of_a_read_only_file_decided",
        needs: &[Need::BpfLsm],
        run: truncating_open_of_a_read_only_file_decided,
    },
    Case {
        name: "frozen_scope_stops_writes_through_open_files",
        needs: &[Need::BpfLsm],
        run: frozen_scope_stops_writes_through_open_files,
    },
    Case {
        name: "pipes_devices_and_memfds_stay_writable",
        needs: &[Need::BpfLsm],
        run: pipes_devices_and_memfds_stay_writable,
    },
    Case {
        name: "decided_writes_forgotten_when_their_files_close",
        needs: &[Need::BpfLsm],
        run: decided_writes_forgotten_when_their_files_close,
    },
];

const ORIGINAL: &[u8] = b"original";

/// The errno of a raw call returning a count or -1.
fn rc(r: isize) -> i32 {
    errno_if(if r < 0 { -1 } else { 0 })
}

/// One way to change a file's content through an open descriptor.
#[derive(Debug, Clone, Copy)]
enum Op {
    Write,
    Pwrite,
    Writev,
    Fallocate,
    CopyFileRange,
    Sendfile,
    Splice,
    Ftruncate,
    MmapShared,
    MprotectWritable,
}

/// Every [`Op`] and the hooks that may decide it. Linux 6.2+ decides
/// ftruncate in `file_truncate`, older kernels in `path_truncate`.
const OPS: [(Op, &[Hook]); 10] = [
    (Op::Write, &[Hook::FileWrite]),
    (Op::Pwrite, &[Hook::FileWrite]),
    (Op::Writev, &[Hook::FileWrite]),
    (Op::Fallocate, &[Hook::FileWrite]),
    (Op::CopyFileRange, &[Hook::FileWrite]),
    (Op::Sendfile, &[Hook::FileWrite]),
    (Op::Splice, &[Hook::FileWrite]),
    (Op::Ftruncate, &[Hook::FileTruncate, Hook::PathTruncate]),
    (Op::MmapShared, &[Hook::MmapWrite]),
    (Op::MprotectWritable, &[Hook::MprotectWrite]),
];

/// Runs `op` on `fd` (opened read-write by the test process before the
/// child joined its cgroup); `src` is a readable descriptor holding `X`,
/// for the copying calls. 0 or the errno.
fn attempt(op: Op, fd: i32, src: i32) -> i32 {
    let x = b"X".as_ptr().cast::<libc::c_void>();
    let null = std::ptr::null_mut::<i64>();
    // SAFETY: raw calls on descriptors this process inherited, with
    // buffers and mappings it owns.
    unsafe {
        match op {
            Op::Write => rc(libc::write(fd, x, 1)),
            Op::Pwrite => rc(libc::pwrite(fd, x, 1, 0)),
            Op::Writev => {
                let iov = libc::iovec {
                    iov_base: x.cast_mut(),
                    iov_len: 1,
                };
                rc(libc::writev(fd, &raw const iov, 1))
            }
            Op::Fallocate => errno_if(i64::from(libc::fallocate(fd, 0, 0, 4096))),
            Op::CopyFileRange => {
                let mut off = 0i64;
                rc(libc::copy_file_range(src, &raw mut off, fd, null, 1, 0))
            }
            Op::Sendfile => {
                let mut off = 0i64;
                rc(libc::sendfile(fd, src, &raw mut off, 1))
            }
            Op::Splice => {
                let mut p = [0; 2];
                if libc::pipe(p.as_mut_ptr()) != 0 || libc::write(p[1], x, 1) != 1 {
                    return 254;
                }
                rc(libc::splice(p[0], null, fd, null, 1, 0))
            }
            Op::Ftruncate => errno_if(i64::from(libc::ftruncate(fd, 1))),
            Op::MmapShared | Op::MprotectWritable => {
                let first = if matches!(op, Op::MmapShared) {
                    libc::PROT_READ | libc::PROT_WRITE
                } else {
                    libc::PROT_READ
                };
                let p = libc::mmap(std::ptr::null_mut(), 4096, first, libc::MAP_SHARED, fd, 0);
                if p == libc::MAP_FAILED {
                    return errno_if(-1);
                }
                let e = if matches!(op, Op::MprotectWritable) {
                    errno_if(i64::from(libc::mprotect(
                        p,
                        4096,
                        libc::PROT_READ | libc::PROT_WRITE,
                    )))
                } else {
                    0
                };
                if e == 0 {
                    p.cast::<u8>().write(b'X');
                    libc::msync(p, 4096, libc::MS_SYNC);
                }
                libc::munmap(p, 4096);
                e
            }
        }
    }
}

/// The file's content restored between attempts.
fn reset(path: &Path) -> anyhow::Result<()> {
    fs::write(path, ORIGINAL).with_context(|| format!("restoring {}", path.display()))
}

/// A denial record with one of `hooks`, naming `name`, for NoGrant.
pub(crate) fn expect_denial(
    events: &[Event],
    hooks: &[Hook],
    name: &str,
    what: &str,
) -> anyhow::Result<()> {
    let found = hooks
        .iter()
        .flat_map(|h| denials(events, *h))
        .find(|e| matches!(e, Event::File(f) if f.name() == name.as_bytes()))
        .with_context(|| {
            format!(
                "{what}: no {hooks:?} denial naming {name:?} in {}",
                render_all(events)
            )
        })?;
    expect_decision(found, Verdict::Deny, Reason::NoGrant)?;
    Ok(())
}

fn writes_through_inherited_descriptors_decided() -> anyhow::Result<()> {
    let mut t = Tree::new("fd-write")?;
    let (outside, inside) = (t.p("outside/file"), t.p("inside/file"));
    let rw = |p: &Path| fs::OpenOptions::new().read(true).write(true).open(p);
    fs::write(t.p("inside/src"), b"X")?;
    let src = fs::File::open(t.p("inside/src"))?;
    for (op, hooks) in OPS {
        let what = format!("{op:?}");
        let what = what.as_str();
        // Outside the writable set: ungoverned succeeds, governed refused.
        let out = rw(&outside)?;
        reset(&outside)?;
        let free = in_cgroup(&t.s.free, || attempt(op, out.as_raw_fd(), src.as_raw_fd()))?;
        ensure!(
            free == 0,
            "{what} ungoverned: errno {free}; the case proves nothing"
        );
        reset(&outside)?;
        let governed = in_cgroup(&t.s.governed, || {
            attempt(op, out.as_raw_fd(), src.as_raw_fd())
        })?;
        ensure!(
            governed == libc::EPERM,
            "{what} outside, governed: errno {governed}, expected EPERM"
        );
        ensure!(
            fs::read(&outside)? == ORIGINAL,
            "{what} outside, governed: the file changed"
        );
        let events = t.s.decisions()?;
        expect_denial(&events, hooks, "file", what)?;

        // Inside: the same attempt through an inherited descriptor works.
        let fd = rw(&inside)?;
        reset(&inside)?;
        let governed = in_cgroup(&t.s.governed, || {
            attempt(op, fd.as_raw_fd(), src.as_raw_fd())
        })?;
        ensure!(governed == 0, "{what} inside, governed: errno {governed}");
        ensure!(
            fs::read(&inside)? != ORIGINAL,
            "{what} inside, governed: the file did not change"
        );
        drop(t.s.decisions()?);
    }
    Ok(())
}

/// `open(O_RDONLY|O_TRUNC)` empties a file though `file_open` sees a read.
fn truncating_open_of_a_read_only_file_decided() -> anyhow::Result<()> {
    let mut t = Tree::new("fd-otrunc")?;
    let outside = t.p("outside/file");
    let attempt = || open_errno(&outside, libc::O_RDONLY | libc::O_TRUNC);
    let free = in_cgroup(&t.s.free, attempt)?;
    ensure!(free == 0, "O_RDONLY|O_TRUNC ungoverned: errno {free}");
    reset(&outside)?;
    let governed = in_cgroup(&t.s.governed, attempt)?;
    ensure!(
        governed == libc::EPERM,
        "O_RDONLY|O_TRUNC governed: errno {governed}, expected EPERM"
    );
    ensure!(
        fs::read(&outside)? == ORIGINAL,
        "O_RDONLY|O_TRUNC governed: the file was emptied"
    );
    let events = t.s.decisions()?;
    expect_denial(
        &events,
        &[Hook::FileTruncate, Hook::PathTruncate],
        "file",
        "O_RDONLY|O_TRUNC",
    )
}

/// Writes that change no named file are not the write gates' business.
fn pipes_devices_and_memfds_stay_writable() -> anyhow::Result<()> {
    let mut t = Tree::new("fd-other")?;
    let null = fs::OpenOptions::new().write(true).open("/dev/null")?;
    let (null_fd, mut pipe) = (null.as_raw_fd(), [0; 2]);
    // SAFETY: a valid out-array of two fds.
    ensure!(unsafe { libc::pipe(pipe.as_mut_ptr()) } == 0, "pipe");
    let attempt = move || {
        // SAFETY: raw calls on inherited descriptors and a memfd of our own.
        unsafe {
            if libc::write(pipe[1], b"X".as_ptr().cast(), 1) != 1 {
                return 1;
            }
            if libc::write(null_fd, b"X".as_ptr().cast(), 1) != 1 {
                return 2;
            }
            let m = libc::memfd_create(c"acelogic-test".as_ptr(), libc::MFD_CLOEXEC);
            if m < 0 {
                return 3;
            }
            if libc::write(m, b"X".as_ptr().cast(), 1) != 1 {
                return 4;
            }
            if libc::ftruncate(m, 4096) != 0 {
                return 5;
            }
            let p = libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_WRITE,
                libc::MAP_SHARED,
                m,
                0,
            );
            if p == libc::MAP_FAILED {
                return 6;
            }
            0
        }
    };
    let free = in_cgroup(&t.s.free, attempt)?;
    ensure!(free == 0, "ungoverned: step {free} failed");
    let governed = in_cgroup(&t.s.governed, attempt)?;
    ensure!(
        governed == 0,
        "governed: step {governed} failed (1 pipe, 2 /dev/null, 3 memfd_create, 4 memfd write, 5 memfd ftruncate, 6 memfd shared writable map)"
    );
    let events = t.s.decisions()?;
    for hook in [Hook::FileWrite, Hook::MmapWrite, Hook::FileTruncate] {
        ensure!(
            denials(&events, hook).is_empty(),
            "a {hook} denial: {}",
            render_all(&events)
        );
    }
    // SAFETY: closing our own pipe.
    unsafe {
        libc::close(pipe[0]);
        libc::close(pipe[1]);
    }
    Ok(())
}

/// A write allowed once through an open file is not decided again, except
/// in a frozen scope: the kill switch stops writes through files opened
/// and written before it was thrown.
fn frozen_scope_stops_writes_through_open_files() -> anyhow::Result<()> {
    let mut t = Tree::new("fd-frozen")?;
    let inside = t.p("inside/file");
    let fd = fs::OpenOptions::new().write(true).open(&inside)?;
    let write = || attempt(Op::Write, fd.as_raw_fd(), -1);
    let first = in_cgroup(&t.s.governed, write)?;
    ensure!(first == 0, "governed write inside: errno {first}");
    let again = in_cgroup(&t.s.governed, write)?;
    ensure!(again == 0, "second governed write inside: errno {again}");
    t.s.kernel.set_frozen(t.s.scope, true)?;
    let frozen = in_cgroup(&t.s.governed, write);
    t.s.kernel.set_frozen(t.s.scope, false)?;
    let frozen = frozen?;
    ensure!(
        frozen == libc::EPERM,
        "governed write in a frozen scope: errno {frozen}, expected EPERM"
    );
    let after = in_cgroup(&t.s.governed, write)?;
    ensure!(after == 0, "governed write after unfreezing: errno {after}");
    let events = t.s.decisions()?;
    let writes: Vec<_> = events
        .iter()
        .filter(|e| e.decision().is_some_and(|d| d.hook == Hook::FileWrite))
        .collect();
    // The first write is decided (allow), the second is remembered (no
    // record), the frozen one is decided (deny), the last is remembered.
    let [allowed, denied] = writes[..] else {
        anyhow::bail!(
            "expected two file-write decisions, got {}",
            render_all(&events)
        );
    };
    expect_decision(allowed, Verdict::Allow, Reason::Baseline)?;
    expect_decision(denied, Verdict::Deny, Reason::Frozen)?;
    Ok(())
}

/// The kernel remembers a governed write decided through an open file
/// (`WRITERS`) and counts what it remembers (`WRITERS_HELD`, which lets
/// `file_free` skip its lookup on a node where nothing is remembered).
/// Writes through ungoverned processes are not remembered; every entry
/// goes when its file is freed, and the count with it, whoever closes the
/// file last.
fn decided_writes_forgotten_when_their_files_close() -> anyhow::Result<()> {
    const FILES: usize = 5;
    let t = Tree::new("fd-forgotten")?;
    let empty = acelogic_kernel::rules::Writers {
        entries: 0,
        held: 0,
    };
    ensure!(
        t.s.kernel.writers()? == empty,
        "a fresh kernel remembers writes: {:?}",
        t.s.kernel.writers()?
    );
    let mut files = Vec::new();
    for i in 0..FILES {
        let path = t.p(&format!("inside/file-{i}"));
        fs::write(&path, ORIGINAL)?;
        files.push(fs::OpenOptions::new().write(true).open(&path)?);
    }
    // The ungoverned twin: the same writes through the same files.
    for f in &files {
        let e = in_cgroup(&t.s.free, || attempt(Op::Write, f.as_raw_fd(), -1))?;
        ensure!(e == 0, "ungoverned write: errno {e}");
    }
    ensure!(
        t.s.kernel.writers()? == empty,
        "ungoverned writes were remembered: {:?}",
        t.s.kernel.writers()?
    );
    for f in &files {
        // Twice: the second is remembered, not counted again.
        for _ in 0..2 {
            let e = in_cgroup(&t.s.governed, || attempt(Op::Write, f.as_raw_fd(), -1))?;
            ensure!(e == 0, "governed write inside: errno {e}");
        }
    }
    let held = t.s.kernel.writers()?;
    ensure!(
        held.entries == FILES as u64 && held.held == FILES as u64,
        "{FILES} files written by the governed process: {held:?}"
    );
    // Closed by the (ungoverned) test process, the last holder.
    files.truncate(2);
    let two = t.s.kernel.writers()?;
    ensure!(
        two.entries == 2 && two.held == 2,
        "three of {FILES} files closed: {two:?}"
    );
    drop(files);
    ensure!(
        t.s.kernel.writers()? == empty,
        "every file closed: {:?}",
        t.s.kernel.writers()?
    );
    Ok(())
}
