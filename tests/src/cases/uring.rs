//! Operations submitted through io_uring instead of system calls. The
//! kernel runs them (in the submitting task or an io-wq worker of it)
//! through the same VFS paths, so the same LSM hooks decide: an openat for
//! writing outside the writable set, and a write through a descriptor
//! opened before governance, are refused; the ungoverned twin does both.
//! A request under a registered personality's credentials is refused to a
//! governed task (the file gates leave operations under substituted
//! credentials to the layer that decided them, so a task may not choose
//! them), even for an open the baseline allows.

use std::{ffi::CString, fs, os::fd::AsRawFd as _, os::unix::ffi::OsStrExt as _};

use acelogic_common::user::{Event, Hook, Reason, Verdict};
use anyhow::{Context as _, ensure};
use io_uring::{IoUring, opcode, types};

use crate::{
    cases::descriptors::expect_denial,
    cases::files::Tree,
    fixtures::{expect_decision, in_cgroup, render_all},
    harness::{Case, Need},
};

pub(crate) const CASES: &[Case] = &[
    Case {
        name: "io_uring_opens_and_writes_decided",
        needs: &[Need::BpfLsm],
        run: io_uring_opens_and_writes_decided,
    },
    Case {
        name: "io_uring_personality_refused",
        needs: &[Need::BpfLsm],
        run: io_uring_personality_refused,
    },
];

/// Exit codes of the child for a failed ring (the operation's errno is
/// returned otherwise, 0 for success).
const NO_RING: i32 = 200;
const NO_COMPLETION: i32 = 201;

/// Submits `entry` on a fresh ring and waits for it: 0 on success, the
/// errno of a failed operation, or a code above 199 when the ring itself
/// failed. An opened descriptor is closed.
fn submit(entry: &io_uring::squeue::Entry, closes_fd: bool) -> i32 {
    let Ok(mut ring) = IoUring::new(4) else {
        return NO_RING;
    };
    submit_on(&mut ring, entry, closes_fd)
}

fn submit_on(ring: &mut IoUring, entry: &io_uring::squeue::Entry, closes_fd: bool) -> i32 {
    // SAFETY: every buffer and path the entry points to outlives the wait
    // below, in the caller's frame.
    if unsafe { ring.submission().push(entry) }.is_err() || ring.submit_and_wait(1).is_err() {
        return NO_RING;
    }
    let Some(cqe) = ring.completion().next() else {
        return NO_COMPLETION;
    };
    match cqe.result() {
        r if r < 0 => -r,
        fd => {
            if closes_fd {
                // SAFETY: the descriptor the ring opened for us.
                unsafe { libc::close(fd) };
            }
            0
        }
    }
}

fn open_for_write(path: &CString) -> i32 {
    let e = opcode::OpenAt::new(types::Fd(libc::AT_FDCWD), path.as_ptr())
        .flags(libc::O_WRONLY | libc::O_APPEND | libc::O_CLOEXEC)
        .build();
    submit(&e, true)
}

/// Opens `path` for writing through the ring, under a personality the
/// task registers first (its own credentials, as `io_uring` allows any
/// task).
fn open_as_personality(path: &CString) -> i32 {
    const NO_PERSONALITY: i32 = 202;
    let Ok(mut ring) = IoUring::new(4) else {
        return NO_RING;
    };
    let Ok(id) = ring.submitter().register_personality() else {
        return NO_PERSONALITY;
    };
    let e = opcode::OpenAt::new(types::Fd(libc::AT_FDCWD), path.as_ptr())
        .flags(libc::O_WRONLY | libc::O_APPEND | libc::O_CLOEXEC)
        .build()
        .personality(id);
    submit_on(&mut ring, &e, true)
}

fn write_to(fd: i32) -> i32 {
    static BYTE: [u8; 1] = *b"x";
    let e = opcode::Write::new(types::Fd(fd), BYTE.as_ptr(), 1)
        .offset(u64::MAX) // the file position (append mode)
        .build();
    submit(&e, false)
}

fn io_uring_opens_and_writes_decided() -> anyhow::Result<()> {
    let mut t = Tree::new("uring")?;
    let outside = t.p("outside/file");
    let path = CString::new(outside.as_os_str().as_bytes())?;

    let len = || fs::metadata(&outside).map(|m| m.len());
    let before = len()?;
    let free = in_cgroup(&t.s.free, || open_for_write(&path))?;
    ensure!(
        free == 0,
        "io_uring openat ungoverned: {free} (errno, or {NO_RING} for no ring: is io_uring \
         disabled on this kernel?); the case proves nothing"
    );
    let governed = in_cgroup(&t.s.governed, || open_for_write(&path))?;
    ensure!(
        governed == libc::EPERM,
        "io_uring openat for writing outside, governed: {governed}, expected EPERM"
    );
    let events = t.s.decisions()?;
    expect_denial(&events, &[Hook::FileOpen], "file", "io_uring openat")?;

    // A descriptor opened before governance, written through the ring.
    let fd = fs::OpenOptions::new().append(true).open(&outside)?;
    let free = in_cgroup(&t.s.free, || write_to(fd.as_raw_fd()))?;
    ensure!(free == 0, "io_uring write ungoverned: {free}");
    ensure!(len()? == before + 1, "the ungoverned ring write landed");
    let governed = in_cgroup(&t.s.governed, || write_to(fd.as_raw_fd()))?;
    ensure!(
        governed == libc::EPERM,
        "io_uring write through an inherited descriptor, governed: {governed}, expected EPERM"
    );
    ensure!(
        len()? == before + 1,
        "the governed ring write changed the file"
    );
    let events = t.s.decisions()?;
    expect_denial(&events, &[Hook::FileWrite], "file", "io_uring write")?;

    // Inside the writable set the ring works governed too.
    let inside = CString::new(t.p("inside/file").as_os_str().as_bytes())?;
    let governed = in_cgroup(&t.s.governed, || open_for_write(&inside))?;
    ensure!(
        governed == 0,
        "io_uring openat inside, governed: {governed}"
    );
    Ok(())
}

/// A governed task's request under a personality is refused before it
/// runs, though the open it carries is allowed by baseline; the
/// ungoverned twin's runs; the refusal is a record.
fn io_uring_personality_refused() -> anyhow::Result<()> {
    let mut t = Tree::new("uring-personality")?;
    let inside = CString::new(t.p("inside/file").as_os_str().as_bytes())?;
    let free = in_cgroup(&t.s.free, || open_as_personality(&inside))?;
    ensure!(
        free == 0,
        "io_uring openat under a personality, ungoverned: {free}; the case proves nothing"
    );
    let plain = in_cgroup(&t.s.governed, || open_for_write(&inside))?;
    ensure!(plain == 0, "io_uring openat inside, governed: {plain}");
    let governed = in_cgroup(&t.s.governed, || open_as_personality(&inside))?;
    ensure!(
        governed == libc::EPERM,
        "io_uring openat under a personality, governed: {governed}, expected EPERM"
    );
    let events = t.s.decisions()?;
    let refused = events
        .iter()
        .find(|e| matches!(e, Event::System(s) if s.decision.hook == Hook::UringPersonality))
        .with_context(|| format!("no uring-personality decision in {}", render_all(&events)))?;
    expect_decision(refused, Verdict::Deny, Reason::Forbidden)?;
    Ok(())
}
