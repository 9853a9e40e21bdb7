//! A write allowed once through an open file is remembered for that file
//! (`WRITERS`), so later writes through it are not decided again: only
//! while the rules that allowed it stand. A narrowed baseline, a removed
//! grant and an expired grant each make the next write through a file
//! opened before be decided again, and refused.
//!
//! A governed child opens the file, writes once (allowed), waits while
//! the test changes the rules, and writes again; its ungoverned twin does
//! the same and both its writes land.

use std::{path::Path, time::Duration};

use acelogic_common::{
    rules::rights,
    user::{Event, Hook, Reason, Verdict},
};
use acelogic_domain::grant::{GrantObject, GrantSpec, boot_ns_in};
use acelogic_kernel::baseline::Wanted;
use anyhow::{Context as _, bail, ensure};

use crate::{
    cases::files::Tree,
    fixtures::{TestCgroup, c_path, errno_if, expect_decision, reap, render_all, spawn_in_cgroup},
    harness::{Case, Need},
};

pub(crate) const CASES: &[Case] = &[Case {
    name: "open_files_decided_again_when_rules_narrow",
    needs: &[Need::BpfLsm],
    run: open_files_decided_again_when_rules_narrow,
}];

/// Child exit codes above this say the first write failed (with the errno
/// added); below, the second write's errno.
const FIRST_FAILED: i32 = 200;

/// Reads one byte from `fd`; false at end of file or on error.
fn wait_byte(fd: i32) -> bool {
    let mut b = [0u8; 1];
    // SAFETY: a one-byte read into a local buffer.
    unsafe { libc::read(fd, b.as_mut_ptr().cast(), 1) == 1 }
}

fn send_byte(fd: i32) -> bool {
    // SAFETY: a one-byte write from a static buffer.
    unsafe { libc::write(fd, b"!".as_ptr().cast(), 1) == 1 }
}

/// In `cg`: opens `path` for appending, writes a byte, tells the parent,
/// waits for `change` to run in the parent, writes a byte again. The
/// second write's errno (0: it landed).
fn write_across(
    cg: &TestCgroup,
    path: &Path,
    change: impl FnOnce() -> anyhow::Result<()>,
) -> anyhow::Result<i32> {
    let (mut ready, mut go) = ([0; 2], [0; 2]);
    // SAFETY: two pipes into local arrays.
    let piped = unsafe { libc::pipe(ready.as_mut_ptr()) == 0 && libc::pipe(go.as_mut_ptr()) == 0 };
    ensure!(piped, "pipe: {}", std::io::Error::last_os_error());
    let p = c_path(path);
    let pid = spawn_in_cgroup(cg, || {
        // SAFETY: raw calls in the forked child on its own descriptors.
        unsafe {
            let fd = libc::open(
                p.as_ptr(),
                libc::O_WRONLY | libc::O_APPEND | libc::O_CLOEXEC,
            );
            if fd < 0 {
                return FIRST_FAILED + errno_if(-1).min(50);
            }
            if libc::write(fd, b"a".as_ptr().cast(), 1) != 1 {
                return FIRST_FAILED + errno_if(-1).min(50);
            }
            if !send_byte(ready[1]) || !wait_byte(go[0]) {
                return 255;
            }
            let n = libc::write(fd, b"b".as_ptr().cast(), 1);
            errno_if(i64::try_from(n).unwrap_or(-1))
        }
    })?;
    let changed = if wait_byte(ready[0]) {
        change()
    } else {
        Err(anyhow::anyhow!("the child did not get to its first write"))
    };
    let sent = send_byte(go[1]);
    // SAFETY: closing our own pipe ends.
    unsafe {
        for fd in [ready[0], ready[1], go[0], go[1]] {
            libc::close(fd);
        }
    }
    let code = reap(pid, cg)?;
    changed?;
    ensure!(sent, "could not tell the child to go on");
    if code > FIRST_FAILED && code != 255 {
        bail!("the first write failed: errno {}", code - FIRST_FAILED);
    }
    ensure!(code != 255, "the child lost its pipes");
    Ok(code)
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// The last `file-write` denial of `file` in `events`.
fn last_write_denial(events: &[Event]) -> anyhow::Result<&Event> {
    events
        .iter()
        .rev()
        .find(|e| match e {
            Event::File(f) => {
                f.decision.hook == Hook::FileWrite
                    && f.decision.verdict == Verdict::Deny
                    && f.name() == b"file"
            }
            _ => false,
        })
        .with_context(|| format!("no file-write denial of `file` in {}", render_all(events)))
}

fn open_files_decided_again_when_rules_narrow() -> anyhow::Result<()> {
    let mut t = Tree::new("narrowing")?;
    let (inside, outside) = (t.p("inside/file"), t.p("outside/file"));
    let scope = t.s.scope;

    // The baseline narrowed under an open file, as the daemon narrows it
    // on a policy reload (the scope's baseline synced to what the new
    // policy resolves to: here, nothing).
    let free = write_across(&t.s.free, &inside, || Ok(()))?;
    ensure!(free == 0, "ungoverned second write: errno {free}");
    let before = file_len(&inside);
    let kernel = &mut t.s.kernel;
    let got = write_across(&t.s.governed, &inside, || {
        kernel.sync_baseline(scope, &Wanted::default())?;
        Ok(())
    })?;
    ensure!(
        got == libc::EPERM,
        "a write through a file opened before its directory left the baseline: errno {got}, \
         expected EPERM"
    );
    ensure!(
        file_len(&inside) == before + 1,
        "only the first governed write may land"
    );
    let events = t.s.decisions()?;
    expect_decision(last_write_denial(&events)?, Verdict::Deny, Reason::NoGrant)?;

    // A grant removed under an open file.
    let granted = t.p("outside");
    let grant = |id, expires| GrantSpec {
        grant_id: id,
        scope_id: scope,
        expires_boot_ns: expires,
        max_uses: None,
        object: GrantObject::File {
            path: granted.clone(),
            rights: rights::WRITE,
        },
    };
    let long = grant(4101, boot_ns_in(Duration::from_secs(600)));
    t.s.kernel.install_grants(&[long])?;
    let kernel = &mut t.s.kernel;
    let got = write_across(&t.s.governed, &outside, || {
        ensure!(
            kernel.remove_grant(4101)? == 1,
            "the grant was not installed"
        );
        Ok(())
    })?;
    ensure!(
        got == libc::EPERM,
        "a write through a file opened under a grant removed since: errno {got}, expected EPERM"
    );
    let events = t.s.decisions()?;
    expect_decision(last_write_denial(&events)?, Verdict::Deny, Reason::NoGrant)?;

    // A grant expired under an open file, no daemon there to remove it.
    let expires = boot_ns_in(Duration::from_secs(3));
    let short = grant(4102, expires);
    t.s.kernel.install_grants(&[short])?;
    let got = write_across(&t.s.governed, &outside, || {
        while acelogic_domain::grant::boot_ns_now() <= expires {
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    })?;
    ensure!(
        got == libc::EPERM,
        "a write through a file opened under a grant that expired since: errno {got}, \
         expected EPERM"
    );
    let events = t.s.decisions()?;
    expect_decision(
        last_write_denial(&events)?,
        Verdict::Deny,
        Reason::GrantExpired,
    )?;
    let free = write_across(&t.s.free, &outside, || Ok(()))?;
    ensure!(free == 0, "ungoverned second write outside: errno {free}");
    Ok(())
}
