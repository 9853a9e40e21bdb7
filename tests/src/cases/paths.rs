//! What forensics reads comes from the kernel: the full path of each file
//! decision as the kernel resolved it (through relative names, symlinked
//! directories and mounts), both names of an exec through a symlink, and
//! a process's arguments, executable and working directory captured in
//! the exec itself, so a process that is gone a millisecond later keeps
//! them, and the daemon needs no `CAP_SYS_PTRACE`.

use std::{
    ffi::CString,
    fs,
    os::unix::ffi::OsStrExt as _,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use acelogic_common::{
    rules::rights,
    user::{Event, Hook, KernelPath, ProcessExecEvent, Verdict},
};
use acelogic_lineage::{enrich::path_text, journal::Journal, pb, pb::record::Body};
use anyhow::{Context as _, ensure};
use prost::Message as _;

use super::files::open_errno;
use crate::{
    daemon::Daemon,
    fixtures::{Scratch, Setup, TestCgroup, c_path, exit_code, render_all},
    harness::{Case, Need},
};

pub(crate) const CASES: &[Case] = &[
    Case {
        name: "paths_of_file_decisions_resolved_by_the_kernel",
        needs: &[Need::BpfLsm],
        run: paths_of_file_decisions_resolved_by_the_kernel,
    },
    Case {
        name: "exec_records_both_names_and_the_identity_it_ran_with",
        needs: &[Need::BpfLsm],
        run: exec_records_both_names_and_identity,
    },
    Case {
        name: "lineage_of_a_process_gone_at_once_needs_no_ptrace",
        needs: &[Need::BpfLsm],
        run: lineage_of_a_process_gone_at_once,
    },
];

/// The path text of a kernel path (as lineage writes it).
fn text(p: Option<&KernelPath>) -> String {
    p.map(|p| path_text(p).0).unwrap_or_default()
}

/// The real path of `p` (symlinks followed), as the kernel would walk it.
fn real(p: &Path) -> anyhow::Result<String> {
    Ok(fs::canonicalize(p)
        .with_context(|| format!("canonicalize {}", p.display()))?
        .display()
        .to_string())
}

/// A file created through a relative name, one created through a
/// symlinked directory, and a denied write outside: each record names the
/// file by its resolved path from `/` (crossing the scratch directory's
/// mount), and never by the names the process used.
fn paths_of_file_decisions_resolved_by_the_kernel() -> anyhow::Result<()> {
    let mut s = Setup::new("paths-files")?;
    let dir = Scratch::new("paths-files")?;
    fs::create_dir_all(dir.join("a/b/c"))?;
    fs::create_dir_all(dir.join("outside"))?;
    fs::write(dir.join("outside/file"), b"original")?;
    std::os::unix::fs::symlink(dir.join("a/b"), dir.join("link"))?;
    s.kernel
        .allow_file(s.scope, &dir.join("a"), rights::WRITE)?;
    let (a, via_link, outside) = (
        dir.join("a"),
        dir.join("link/c/file2"),
        dir.join("outside/file"),
    );
    let relative = CString::new("b/c/file")?;
    let writes = || {
        let d = c_path(&a);
        // SAFETY: valid NUL-terminated paths; fds closed right away.
        unsafe {
            if libc::chdir(d.as_ptr()) != 0 {
                return 90;
            }
            let fd = libc::open(
                relative.as_ptr(),
                libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
                0o644,
            );
            if fd < 0 {
                return 91;
            }
            libc::close(fd);
        }
        let _ = fs::remove_file(a.join("b/c/file"));
        if open_errno(&via_link, libc::O_CREAT | libc::O_WRONLY) != 0 {
            return 92;
        }
        let _ = fs::remove_file(a.join("b/c/file2"));
        0
    };
    ensure!(
        s.governed_and_free(writes)? == 0,
        "the governed writes inside failed"
    );
    let denied = s.governed_and_free(|| open_errno(&outside, libc::O_WRONLY))?;
    ensure!(
        denied == libc::EPERM,
        "write outside: errno {denied}, expected EPERM"
    );

    let events = s.decisions()?;
    let files: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::File(f) => Some(f),
            _ => None,
        })
        .collect();
    let root = real(dir.path.as_path())?;
    let want_file = format!("{root}/a/b/c/file");
    let want_file2 = format!("{root}/a/b/c/file2");
    let want_outside = format!("{root}/outside/file");
    ensure!(
        root.starts_with("/tmp/"),
        "the scratch directory is under /tmp: {root}"
    );
    for (want, hook, verdict) in [
        (&want_file, Hook::FileOpen, Verdict::Allow),
        (&want_file2, Hook::FileOpen, Verdict::Allow),
        (&want_outside, Hook::FileOpen, Verdict::Deny),
    ] {
        let found = files.iter().find(|f| {
            f.decision.hook == hook
                && f.decision.verdict == verdict
                && text(f.path.as_ref()) == *want
        });
        let Some(f) = found else {
            anyhow::bail!(
                "no {hook} {verdict} record with the path {want}; the file records say:\n{}",
                files
                    .iter()
                    .map(|f| format!(
                        "{} {} {:?} {:?}",
                        f.decision.hook,
                        f.decision.verdict,
                        text(f.path.as_ref()),
                        f.path
                    ))
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        };
        let p = f.path.as_ref().context("no path")?;
        ensure!(
            !p.truncated() && !p.without_mount(),
            "{want}: flags {:#x}",
            p.flags()
        );
    }
    // The creation through the relative name: path_mknod has the
    // directory's mount, so its path is absolute too.
    ensure!(
        files
            .iter()
            .any(|f| f.decision.hook == Hook::PathMknod && text(f.path.as_ref()) == want_file),
        "the creation's record lacks {want_file}:\n{}",
        render_all(&events)
    );
    ensure!(
        files
            .iter()
            .all(|f| !text(f.path.as_ref()).contains("/link/")),
        "a record names the symlink instead of the resolved directory"
    );
    Ok(())
}

/// An exec through a symlink: the decision has the name it was called by
/// and the binary's resolved path; the exec record has the arguments, the
/// executable and the working directory, read in the exec.
fn exec_records_both_names_and_identity() -> anyhow::Result<()> {
    let mut s = Setup::new("paths-exec")?;
    let dir = Scratch::new("paths-exec")?;
    let busybox = PathBuf::from(real(Path::new("/bin/busybox"))?);
    let link = dir.join("tool");
    std::os::unix::fs::symlink(&busybox, &link)?;
    s.kernel.allow_file(s.scope, &busybox, rights::EXEC)?;
    let cwd = dir.join("work");
    fs::create_dir(&cwd)?;
    let run = |cg: &TestCgroup| -> anyhow::Result<(u32, i32)> {
        let mut cmd = cg.command(&link.display().to_string(), &["alpha", "beta gamma"])?;
        // argv[0] picks busybox's applet: `true`.
        std::os::unix::process::CommandExt::arg0(&mut cmd, "true");
        let child = cmd.current_dir(&cwd).spawn()?;
        let pid = child.id();
        Ok((pid, exit_code(child)?))
    };
    let (_, free) = run(&s.free)?;
    ensure!(free == 0, "the ungoverned exec failed: {free}");
    let (pid, code) = run(&s.governed)?;
    ensure!(code == 0, "the governed exec failed: {code}");
    let events = s.events()?;
    let exec = events
        .iter()
        .find_map(|e| match e {
            Event::File(f)
                if f.decision.hook == Hook::Exec
                    && f.header.tgid == pid
                    && f.decision.scope_id == s.scope =>
            {
                Some(f)
            }
            _ => None,
        })
        .with_context(|| format!("no exec decision of pid {pid}:\n{}", render_all(&events)))?;
    ensure!(
        exec.name() == link.as_os_str().as_bytes(),
        "called as {:?}, expected {}",
        String::from_utf8_lossy(exec.name()),
        link.display()
    );
    ensure!(
        text(exec.path.as_ref()) == busybox.display().to_string(),
        "resolved as {:?}, expected {}",
        text(exec.path.as_ref()),
        busybox.display()
    );
    let rec: &ProcessExecEvent = events
        .iter()
        .find_map(|e| match e {
            Event::ProcessExec(x) if x.header.tgid == pid => Some(x),
            _ => None,
        })
        .with_context(|| format!("no exec record of pid {pid}:\n{}", render_all(&events)))?;
    let id = rec
        .identity
        .as_ref()
        .context("the exec record has no identity")?;
    let argv: Vec<String> = id
        .argv()
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    ensure!(argv == ["true", "alpha", "beta gamma"], "argv {argv:?}");
    ensure!(
        !id.argv_truncated() && !id.argv_unreadable(),
        "argv flags {:#x}",
        id.argv_flags
    );
    ensure!(
        text(id.exe.as_ref()) == busybox.display().to_string(),
        "exe {:?}",
        text(id.exe.as_ref())
    );
    ensure!(
        text(id.cwd.as_ref()) == real(&cwd)?,
        "cwd {:?}",
        text(id.cwd.as_ref())
    );
    Ok(())
}

/// With the daemon: it keeps no `CAP_SYS_PTRACE`, and the journaled exec of
/// a process that exited before the daemon could look at it still has its
/// executable, working directory and arguments, with nothing missing.
fn lineage_of_a_process_gone_at_once() -> anyhow::Result<()> {
    let cg = TestCgroup::new("paths-gone")?;
    let pid = std::process::id();
    let policy = format!(
        "apiVersion: acelogic.dev/v1
kind: CapabilityPolicy
metadata:
  name: paths-gone
spec:
  workloads:
    - name: gone-{pid}
      cgroups: [/{}]
  baseline:
    exec: [/bin/busybox]
",
        cg.name()
    );
    let mut d = Daemon::prepare("paths-gone", &policy)?;
    d.start()?;
    const CAP_SYS_PTRACE: u64 = 1 << 19;
    for set in ["CapEff", "CapPrm", "CapBnd"] {
        let caps = d.capabilities(set)?;
        ensure!(
            caps & CAP_SYS_PTRACE == 0,
            "the daemon's {set} holds CAP_SYS_PTRACE: {caps:#x}"
        );
    }
    let base = Journal::open(&d.journal_path(), "vm", u64::MAX)?.head().0;
    let mut pids = Vec::new();
    for i in 0..20 {
        let child = cg
            .command("/bin/busybox", &["true", &format!("round-{i}")])?
            .current_dir("/tmp")
            .spawn()?;
        pids.push(child.id());
        ensure!(exit_code(child)? == 0, "the governed exec failed");
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let j = Journal::open(&d.journal_path(), "vm", u64::MAX)?;
        let execs: Vec<pb::ProcessExec> = j
            .read_after(base, usize::MAX, usize::MAX)?
            .iter()
            .filter_map(|e| pb::Record::decode(e.record.as_slice()).ok())
            .filter_map(|r| match r.body {
                Some(Body::Exec(x)) => Some(x),
                _ => None,
            })
            .filter(|x| x.process.as_ref().is_some_and(|p| pids.contains(&p.pid)))
            .collect();
        if execs.len() == pids.len() {
            for (i, x) in execs.iter().enumerate() {
                let pid = x.process.as_ref().map_or(0, |p| p.pid);
                let n = pids.iter().position(|p| *p == pid).unwrap_or(i);
                ensure!(
                    x.enrichment.is_empty()
                        && x.exe == "/bin/busybox"
                        && x.cwd == "/tmp"
                        && x.argv
                            == [
                                "/bin/busybox".to_owned(),
                                "true".to_owned(),
                                format!("round-{n}"),
                            ],
                    "pid {pid}: exe {:?} cwd {:?} argv {:?} missing {:?}",
                    x.exe,
                    x.cwd,
                    x.argv,
                    x.enrichment
                );
            }
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "{} of {} execs journaled:\n{}",
            execs.len(),
            pids.len(),
            d.log_tail()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
