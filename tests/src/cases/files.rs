//! The write gates: a governed process may change files only below a
//! writable directory (baseline or grant), whichever path it takes:
//! open for write, create, truncate, unlink, mkdir, chmod, symlinks, hard
//! links, renames. Reads stay free.

use std::{fs, os::unix::fs::MetadataExt as _, path::Path, time::Duration};

use acelogic_common::{
    rules::rights,
    user::{Event, Hook, Reason, Verdict},
};
use acelogic_domain::grant::{GrantObject, GrantSpec, boot_ns_in};
use anyhow::{Context as _, ensure};

use crate::{
    fixtures::{Scratch, Setup, c_path, errno_if, expect_decision, render_all},
    harness::{Case, Need},
};

pub(crate) const CASES: &[Case] = &[
    case(
        "write_inside_allowed_outside_denied",
        write_inside_allowed_outside_denied,
    ),
    case(
        "write_through_symlink_checks_target",
        write_through_symlink_checks_target,
    ),
    case(
        "hardlink_and_rename_across_boundary_denied",
        hardlink_and_rename_across_boundary_denied,
    ),
    case(
        "truncate_unlink_mkdir_chmod_checked",
        truncate_unlink_mkdir_chmod_checked,
    ),
    case(
        "write_grant_installed_then_removed",
        write_grant_installed_then_removed,
    ),
    case(
        "path_aliases_decided_by_inode",
        path_aliases_decided_by_inode,
    ),
    case(
        "symlink_swapped_during_open_decided_on_the_object",
        symlink_swapped_during_open_decided_on_the_object,
    ),
];

const fn case(name: &'static str, run: fn() -> anyhow::Result<()>) -> Case {
    Case {
        name,
        needs: &[Need::BpfLsm],
        run,
    }
}

/// A scratch tree with `inside/` (writable by baseline), `outside/`, and a
/// file in each.
pub(crate) struct Tree {
    pub(crate) s: Setup,
    dir: Scratch,
}

impl Tree {
    pub(crate) fn new(name: &str) -> anyhow::Result<Self> {
        let mut s = Setup::new(name)?;
        let dir = Scratch::new(name)?;
        for d in ["inside", "outside"] {
            fs::create_dir(dir.join(d))?;
            fs::write(dir.join(d).join("file"), b"original")?;
        }
        s.kernel
            .allow_file(s.scope, &dir.join("inside"), rights::WRITE)?;
        Ok(Self { s, dir })
    }

    pub(crate) fn p(&self, rel: &str) -> std::path::PathBuf {
        self.dir.join(rel)
    }
}

pub(crate) fn open_errno(path: &Path, flags: i32) -> i32 {
    let p = c_path(path);
    // SAFETY: valid NUL-terminated path; the fd is closed right away.
    unsafe {
        let fd = libc::open(p.as_ptr(), flags | libc::O_CLOEXEC, 0o644);
        if fd >= 0 {
            libc::close(fd);
        }
        errno_if(i64::from(fd))
    }
}

/// The errno of a raw call on one or two paths.
fn call1(path: &Path, f: unsafe extern "C" fn(*const libc::c_char) -> i32) -> i32 {
    let p = c_path(path);
    // SAFETY: valid NUL-terminated path.
    errno_if(i64::from(unsafe { f(p.as_ptr()) }))
}

fn call2(
    a: &Path,
    b: &Path,
    f: unsafe extern "C" fn(*const libc::c_char, *const libc::c_char) -> i32,
) -> i32 {
    let (a, b) = (c_path(a), c_path(b));
    // SAFETY: valid NUL-terminated paths.
    errno_if(i64::from(unsafe { f(a.as_ptr(), b.as_ptr()) }))
}

/// The denial records with `hook`.
pub(crate) fn denials(events: &[Event], hook: Hook) -> Vec<&Event> {
    events
        .iter()
        .filter(|e| {
            e.decision()
                .is_some_and(|d| d.hook == hook && d.verdict == Verdict::Deny)
        })
        .collect()
}

fn expect_denied(events: &[Event], hook: Hook, name: &str) -> anyhow::Result<()> {
    let found = denials(events, hook).into_iter().find(|e| match e {
        Event::File(f) => f.name() == name.as_bytes(),
        _ => false,
    });
    let found = found
        .with_context(|| format!("no {hook} denial naming {name:?} in {}", render_all(events)))?;
    expect_decision(found, Verdict::Deny, Reason::NoGrant)?;
    Ok(())
}

/// Appends one byte through `path`; the errno.
pub(crate) fn append_errno(path: &Path) -> i32 {
    let p = c_path(path);
    // SAFETY: valid NUL-terminated path; one byte from a static buffer;
    // the fd is closed right away.
    unsafe {
        let fd = libc::open(
            p.as_ptr(),
            libc::O_WRONLY | libc::O_APPEND | libc::O_CLOEXEC,
        );
        if fd < 0 {
            return errno_if(-1);
        }
        let n = libc::write(fd, b"x".as_ptr().cast(), 1);
        let e = errno_if(i64::try_from(n).unwrap_or(-1));
        libc::close(fd);
        e
    }
}

/// The same outside file by other names: through `..` from the writable
/// directory, through `/proc/self/root`, and a read-only descriptor
/// reopened for writing through `/proc/self/fd`. Each is the outside
/// inode, so each is denied; the ungoverned twin appends. And the inside
/// file named through `outside/..` stays writable: no decision depends on
/// how the path is spelled.
fn path_aliases_decided_by_inode() -> anyhow::Result<()> {
    let mut t = Tree::new("w-alias")?;
    let outside = t.p("outside/file");
    let through_proc = format!("/proc/self/root{}", outside.display());
    let aliases = [
        t.p("inside/../outside/file"),
        std::path::PathBuf::from(through_proc),
    ];
    for alias in &aliases {
        let before = fs::metadata(&outside)?.len();
        let got = t.s.governed_and_free(|| append_errno(alias))?;
        ensure!(
            got == libc::EPERM,
            "appending through {}: errno {got}, expected EPERM",
            alias.display()
        );
        let after = fs::metadata(&outside)?.len();
        ensure!(
            after == before + 1,
            "only the ungoverned append may land: {before} -> {after} bytes"
        );
    }
    let reopen = || {
        let p = c_path(&outside);
        // SAFETY: valid NUL-terminated path; the fd is closed below.
        let fd = unsafe { libc::open(p.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
        if fd < 0 {
            return errno_if(-1);
        }
        let e = append_errno(Path::new(&format!("/proc/self/fd/{fd}")));
        // SAFETY: our own descriptor.
        unsafe { libc::close(fd) };
        e
    };
    let before = fs::metadata(&outside)?.len();
    let got = t.s.governed_and_free(reopen)?;
    ensure!(
        got == libc::EPERM,
        "reopening a read-only descriptor for writing: errno {got}, expected EPERM"
    );
    ensure!(
        fs::metadata(&outside)?.len() == before + 1,
        "the governed append landed"
    );
    let inside_alias = t.p("outside/../inside/file");
    let got = t.s.governed_and_free(|| append_errno(&inside_alias))?;
    ensure!(
        got == 0,
        "appending to the inside file through outside/..: errno {got}"
    );
    let events = t.s.decisions()?;
    let denied = denials(&events, Hook::FileOpen);
    ensure!(
        denied.len() == 3,
        "three denials, one per alias, each recorded: {}",
        render_all(&events)
    );
    expect_denied(&events, Hook::FileOpen, "file")?;
    Ok(())
}

/// Opens through `link` for appending while a thread swaps `link` and
/// `other` (`renameat2(RENAME_EXCHANGE)`) as fast as it can, so the name
/// points now at `inside/file`, now at `outside/file`. Returns 0 when what
/// it saw is what `governed` expects (governed: every open that succeeded
/// is the inside inode, and some were denied; free: both inodes were
/// opened, none denied), else a code saying what broke.
fn race_opens(link: &Path, other: &Path, inside_ino: u64, governed: bool) -> i32 {
    const TRIES: usize = 3000;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (a, b) = (c_path(link), c_path(other));
    let flipper = {
        let stop = std::sync::Arc::clone(&stop);
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                // SAFETY: valid NUL-terminated paths.
                unsafe {
                    libc::renameat2(
                        libc::AT_FDCWD,
                        a.as_ptr(),
                        libc::AT_FDCWD,
                        b.as_ptr(),
                        libc::RENAME_EXCHANGE,
                    )
                };
            }
        })
    };
    let (mut inside, mut outside, mut denied, mut other_errno) = (0, 0, 0, 0);
    let p = c_path(link);
    for _ in 0..TRIES {
        // SAFETY: valid path; fstat into a zeroed stat; one byte written
        // from a static buffer; the fd is closed.
        unsafe {
            let fd = libc::open(
                p.as_ptr(),
                libc::O_WRONLY | libc::O_APPEND | libc::O_CLOEXEC,
            );
            if fd < 0 {
                match errno_if(-1) {
                    libc::EPERM => denied += 1,
                    _ => other_errno += 1,
                }
                continue;
            }
            let mut st: libc::stat = std::mem::zeroed();
            libc::fstat(fd, &raw mut st);
            if st.st_ino == inside_ino {
                inside += 1;
            } else {
                outside += 1;
            }
            libc::write(fd, b"x".as_ptr().cast(), 1);
            libc::close(fd);
        }
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = flipper.join();
    let line = format!(
        "    {} run: {inside} opens of the inside file, {outside} of the outside file, \
         {denied} denied, {other_errno} other errors\n",
        if governed { "governed" } else { "ungoverned" }
    );
    // Not println!: stdout's lock may have been held by another thread of
    // the parent when this child was forked.
    // SAFETY: writing a live buffer to our stdout.
    unsafe { libc::write(1, line.as_ptr().cast(), line.len()) };
    match (governed, inside, outside, denied, other_errno) {
        (_, _, _, _, e) if e > 0 => 13,
        (true, _, o, _, _) if o > 0 => 10,
        (true, _, _, 0, _) => 11,
        (_, 0, _, _, _) => 12,
        (false, _, 0, _, _) => 14,
        (false, _, _, d, _) if d > 0 => 15,
        _ => 0,
    }
}

/// Syscall-argument TOCTOU: the name is swapped between the inside and the
/// outside file while the governed process opens it. The gate decides on
/// the inode the kernel resolved, so every open that succeeds is of the
/// inside file and the outside file never changes, however the race
/// falls; the ungoverned twin opens both.
fn symlink_swapped_during_open_decided_on_the_object() -> anyhow::Result<()> {
    let mut t = Tree::new("w-toctou")?;
    let (link, other) = (t.p("inside/link"), t.p("inside/other"));
    std::os::unix::fs::symlink(t.p("inside/file"), &link)?;
    std::os::unix::fs::symlink(t.p("outside/file"), &other)?;
    let inside_ino = fs::metadata(t.p("inside/file"))?.ino();
    let outside = t.p("outside/file");
    let free =
        crate::fixtures::in_cgroup(&t.s.free, || race_opens(&link, &other, inside_ino, false))?;
    ensure!(
        free == 0,
        "the ungoverned race did not open both files (code {free}): the test proves nothing"
    );
    let before = fs::read(&outside)?;
    let got = crate::fixtures::in_cgroup(&t.s.governed, || {
        race_opens(&link, &other, inside_ino, true)
    })?;
    ensure!(
        got == 0,
        "the governed race: code {got} (10: an open reached the outside file, 11: no open \
         was denied, 12: none allowed, 13: other errors)"
    );
    ensure!(
        fs::read(&outside)? == before,
        "the outside file changed under the governed race"
    );
    let events = t.s.decisions()?;
    ensure!(
        !denials(&events, Hook::FileOpen).is_empty(),
        "the denials are recorded: {}",
        render_all(&events)
    );
    Ok(())
}

fn write_inside_allowed_outside_denied() -> anyhow::Result<()> {
    let mut t = Tree::new("w-basic")?;
    let inside_new = t.p("inside/new");
    let inside_file = t.p("inside/file");
    let outside_new = t.p("outside/new");
    let outside_file = t.p("outside/file");
    let got =
        t.s.governed_and_free(|| open_errno(&inside_new, libc::O_CREAT | libc::O_WRONLY))?;
    ensure!(got == 0, "create inside: errno {got}");
    let got =
        t.s.governed_and_free(|| open_errno(&inside_file, libc::O_WRONLY | libc::O_TRUNC))?;
    ensure!(got == 0, "write inside: errno {got}");
    drop(t.s.decisions()?);

    // The free run creates the file; remove it so the governed run must
    // create it again.
    let create_outside = || {
        let e = open_errno(&outside_new, libc::O_CREAT | libc::O_WRONLY);
        let _ = fs::remove_file(&outside_new);
        e
    };
    let got = t.s.governed_and_free(create_outside)?;
    ensure!(
        got == libc::EPERM,
        "create outside: errno {got}, expected EPERM"
    );
    let got =
        t.s.governed_and_free(|| open_errno(&outside_file, libc::O_WRONLY))?;
    ensure!(
        got == libc::EPERM,
        "write outside: errno {got}, expected EPERM"
    );
    let got =
        t.s.governed_and_free(|| open_errno(&outside_file, libc::O_RDONLY))?;
    ensure!(
        got == 0,
        "read outside: errno {got}; reads are not governed"
    );
    let events = t.s.decisions()?;
    expect_denied(&events, Hook::PathMknod, "new")?;
    expect_denied(&events, Hook::FileOpen, "file")?;
    ensure!(
        fs::read(&outside_file)? == b"original",
        "the outside file changed"
    );
    Ok(())
}

/// A symlink may be created inside (it is a name inside), but opening it
/// for write follows it to its target, which is decided as itself.
fn write_through_symlink_checks_target() -> anyhow::Result<()> {
    let mut t = Tree::new("w-symlink")?;
    let link = t.p("inside/link");
    let target = t.p("outside/file");
    let make = || {
        let _ = fs::remove_file(&link);
        call2(&target, &link, libc::symlink)
    };
    let got = t.s.governed_and_free(make)?;
    ensure!(got == 0, "creating a symlink inside: errno {got}");
    let got =
        t.s.governed_and_free(|| open_errno(&link, libc::O_WRONLY))?;
    ensure!(
        got == libc::EPERM,
        "writing through the symlink: errno {got}, expected EPERM"
    );
    let events = t.s.decisions()?;
    expect_denied(&events, Hook::FileOpen, "file")?;
    Ok(())
}

fn hardlink_and_rename_across_boundary_denied() -> anyhow::Result<()> {
    let mut t = Tree::new("w-links")?;
    let (outside, inside) = (t.p("outside/file"), t.p("inside/file"));
    let (in_link, out_link) = (t.p("inside/hl"), t.p("outside/hl"));

    // Hard-linking an outside file into the writable directory would let
    // the process write it through the new name.
    let link_in = || {
        let e = call2(&outside, &in_link, libc::link);
        let _ = fs::remove_file(&in_link);
        e
    };
    let got = t.s.governed_and_free(link_in)?;
    ensure!(got == libc::EPERM, "hard link outside->inside: errno {got}");
    let link_out = || {
        let e = call2(&inside, &out_link, libc::link);
        let _ = fs::remove_file(&out_link);
        e
    };
    let got = t.s.governed_and_free(link_out)?;
    ensure!(got == libc::EPERM, "hard link inside->outside: errno {got}");

    // Renames in and out both cross the boundary; each free run moves the
    // file back.
    let (moved_in, moved_out) = (t.p("inside/moved"), t.p("outside/moved"));
    let rename_in = || {
        let e = call2(&outside, &moved_in, libc::rename);
        if e == 0 {
            let _ = fs::rename(&moved_in, &outside);
        }
        e
    };
    let got = t.s.governed_and_free(rename_in)?;
    ensure!(got == libc::EPERM, "rename outside->inside: errno {got}");
    let rename_out = || {
        let e = call2(&inside, &moved_out, libc::rename);
        if e == 0 {
            let _ = fs::rename(&moved_out, &inside);
        }
        e
    };
    let got = t.s.governed_and_free(rename_out)?;
    ensure!(got == libc::EPERM, "rename inside->outside: errno {got}");
    let rename_within = || {
        let e = call2(&inside, &moved_in, libc::rename);
        if e == 0 {
            let _ = fs::rename(&moved_in, &inside);
        }
        e
    };
    let got = t.s.governed_and_free(rename_within)?;
    ensure!(
        got == 0,
        "rename within the writable directory: errno {got}"
    );
    let events = t.s.decisions()?;
    ensure!(
        denials(&events, Hook::PathLink).len() == 2
            && denials(&events, Hook::PathRename).len() == 2,
        "expected 2 link and 2 rename denials: {}",
        render_all(&events)
    );
    ensure!(outside.exists() && inside.exists(), "files moved");
    Ok(())
}

fn truncate_unlink_mkdir_chmod_checked() -> anyhow::Result<()> {
    let mut t = Tree::new("w-ops")?;
    let (outside, inside) = (t.p("outside/file"), t.p("inside/file"));
    let truncate = |p: &Path| {
        let c = c_path(p);
        // SAFETY: valid NUL-terminated path.
        errno_if(i64::from(unsafe { libc::truncate(c.as_ptr(), 0) }))
    };
    let chmod = |p: &Path| {
        let c = c_path(p);
        // SAFETY: valid NUL-terminated path.
        errno_if(i64::from(unsafe { libc::chmod(c.as_ptr(), 0o600) }))
    };
    let mkdir = |p: &Path| {
        let c = c_path(p);
        // SAFETY: valid NUL-terminated path.
        let e = errno_if(i64::from(unsafe { libc::mkdir(c.as_ptr(), 0o755) }));
        let _ = fs::remove_dir(p);
        e
    };
    let unlink = |p: &Path| {
        let e = call1(p, libc::unlink);
        if e == 0 {
            let _ = fs::write(p, b"original");
        }
        e
    };

    ensure!(
        t.s.governed_and_free(|| truncate(&outside))? == libc::EPERM,
        "truncate outside"
    );
    fs::write(&outside, b"original")?;
    ensure!(
        t.s.governed_and_free(|| chmod(&outside))? == libc::EPERM,
        "chmod outside"
    );
    ensure!(
        t.s.governed_and_free(|| mkdir(&t.p("outside/d")))? == libc::EPERM,
        "mkdir outside"
    );
    ensure!(
        t.s.governed_and_free(|| unlink(&outside))? == libc::EPERM,
        "unlink outside"
    );
    let events = t.s.decisions()?;
    for hook in [
        Hook::PathTruncate,
        Hook::PathChmod,
        Hook::PathMkdir,
        Hook::PathUnlink,
    ] {
        ensure!(
            !denials(&events, hook).is_empty(),
            "no {hook} denial in {}",
            render_all(&events)
        );
    }
    ensure!(
        t.s.governed_and_free(|| truncate(&inside))? == 0,
        "truncate inside"
    );
    ensure!(
        t.s.governed_and_free(|| chmod(&inside))? == 0,
        "chmod inside"
    );
    ensure!(
        t.s.governed_and_free(|| mkdir(&t.p("inside/d")))? == 0,
        "mkdir inside"
    );
    ensure!(
        t.s.governed_and_free(|| unlink(&inside))? == 0,
        "unlink inside"
    );
    Ok(())
}

fn write_grant_installed_then_removed() -> anyhow::Result<()> {
    let mut t = Tree::new("w-grant")?;
    let target = t.p("outside/file");
    let write = || open_errno(&target, libc::O_WRONLY);
    ensure!(
        t.s.governed_and_free(write)? == libc::EPERM,
        "write before the grant"
    );
    t.s.kernel.install_grants(&[GrantSpec {
        grant_id: 31337,
        scope_id: t.s.scope,
        expires_boot_ns: boot_ns_in(Duration::from_secs(600)),
        max_uses: None,
        object: GrantObject::File {
            path: t.p("outside"),
            rights: rights::WRITE,
        },
    }])?;
    ensure!(t.s.governed_and_free(write)? == 0, "write under the grant");
    let events = t.s.decisions()?;
    let allowed = events
        .iter()
        .find(|e| {
            e.decision()
                .is_some_and(|d| d.hook == Hook::FileOpen && d.verdict == Verdict::Allow)
        })
        .with_context(|| format!("no allowed open in {}", render_all(&events)))?;
    let d = expect_decision(allowed, Verdict::Allow, Reason::Grant)?;
    ensure!(d.grant_id == 31337, "grant id {}", d.grant_id);
    ensure!(
        t.s.kernel.remove_grant(31337)? == 1,
        "grant not found to remove"
    );
    ensure!(
        t.s.governed_and_free(write)? == libc::EPERM,
        "write after removal"
    );
    Ok(())
}
