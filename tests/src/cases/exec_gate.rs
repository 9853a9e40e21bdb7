//! The exec gate and executable mappings, end to end: what a governed
//! process may run, by identity, and what it may not, however it tries.
//! Every case also runs the same action ungoverned, which must work.

use std::{fs, os::unix::fs::PermissionsExt as _, time::Duration};

use acelogic_common::{
    rules::rights,
    user::{Event, Hook, Reason, Verdict, c_str_bytes},
};
use acelogic_domain::grant::{GrantObject, GrantSpec, boot_ns_in, file_identity};
use acelogic_kernel::LoadOptions;
use anyhow::{Context as _, bail, ensure};

use crate::{
    fixtures::{
        Exec, Scratch, Setup, errno_if, exec_in, expect_decision, one_decision, own_comm, real,
        render_all,
    },
    harness::{Case, Need},
};

pub(crate) const CASES: &[Case] = &[
    case("exec_denied_without_rule", exec_denied_without_rule),
    case("exec_allowed_by_baseline", exec_allowed_by_baseline),
    case("exec_one_time_grant_consumed", exec_one_time_grant_consumed),
    case("exec_grant_expires", exec_grant_expires),
    case("exec_replaced_binary_denied", exec_replaced_binary_denied),
    case("exec_from_memfd_denied", exec_from_memfd_denied),
    case("shebang_interpreter_checked", shebang_interpreter_checked),
    case("exec_through_loader_denied", exec_through_loader_denied),
    case(
        "full_ring_buffer_still_denies_and_counts",
        full_ring_buffer_still_denies_and_counts,
    ),
];

const fn case(name: &'static str, run: fn() -> anyhow::Result<()>) -> Case {
    Case {
        name,
        needs: &[Need::BpfLsm],
        run,
    }
}

const SH: &str = "/bin/sh";

/// Lets the scope map shared libraries (the dynamic loader maps them
/// executable for every dynamically linked program).
pub(crate) fn allow_libraries(setup: &mut Setup) -> anyhow::Result<()> {
    for dir in ["/lib", "/lib64", "/usr/lib", "/usr/lib64"] {
        if fs::metadata(dir).is_ok() {
            setup
                .kernel
                .allow_file(setup.scope, &real(dir)?, rights::MAP)?;
        }
    }
    Ok(())
}

/// Allows running the shell: the binary and its libraries.
pub(crate) fn allow_shell(setup: &mut Setup) -> anyhow::Result<()> {
    allow_libraries(setup)?;
    setup
        .kernel
        .allow_file(setup.scope, &real(SH)?, rights::EXEC)?;
    Ok(())
}

fn exec_denied_without_rule() -> anyhow::Result<()> {
    let mut s = Setup::new("exec-deny")?;
    let before = s.kernel.counters()?;
    let sh = exec_in(&s.governed, SH, &["-c", "exit 7"])?;
    ensure!(
        sh == Exec::Refused(libc::EPERM),
        "governed exec: {sh:?}, expected EPERM"
    );
    let free = exec_in(&s.free, SH, &["-c", "exit 7"])?;
    ensure!(free == Exec::Ran(7), "ungoverned exec: {free:?}");

    let events = s.decisions()?;
    let [event @ Event::File(d)] = events.as_slice() else {
        bail!("expected exactly one decision, got {}", render_all(&events));
    };
    let info = expect_decision(event, Verdict::Deny, Reason::NoGrant)?;
    ensure!(info.hook == Hook::Exec, "hook {}", info.hook);
    let (dev, ino) = file_identity(&real(SH)?)?;
    ensure!(
        (d.file.dev, d.file.ino) == (dev, ino),
        "record names file {}:{}, the shell is {dev}:{ino}",
        d.file.dev,
        d.file.ino
    );
    ensure!(
        d.name() == SH.as_bytes(),
        "record name {:?}",
        String::from_utf8_lossy(d.name())
    );
    ensure!(
        d.header.cgroup_id == s.governed.id,
        "cgroup {}",
        d.header.cgroup_id
    );
    ensure!(
        d.header.tgid != std::process::id(),
        "record names the test process"
    );
    ensure!(
        info.ppid == std::process::id(),
        "ppid {} is not the test process",
        info.ppid
    );
    let comm = own_comm()?;
    ensure!(
        c_str_bytes(&info.comm) == comm.as_bytes(),
        "comm {:?}",
        info.comm
    );
    let c = s.kernel.counters()?;
    ensure!(
        c.denied - before.denied == 1 && c.record_unavailable == before.record_unavailable,
        "counters {before:?} -> {c:?}"
    );
    Ok(())
}

fn exec_allowed_by_baseline() -> anyhow::Result<()> {
    let mut s = Setup::new("exec-base")?;
    allow_shell(&mut s)?;
    let sh = exec_in(&s.governed, SH, &["-c", "exit 7"])?;
    ensure!(
        sh == Exec::Ran(7),
        "governed exec with a baseline rule: {sh:?}"
    );
    let events = s.decisions()?;
    let event = one_decision(&events, Hook::Exec)?;
    expect_decision(event, Verdict::Allow, Reason::Baseline)?;
    Ok(())
}

/// A grant of the shell for scope SCOPE, `uses` times, for `ttl`.
fn shell_grant(
    scope_id: u32,
    grant_id: u64,
    uses: Option<u32>,
    ttl: Duration,
) -> anyhow::Result<GrantSpec> {
    Ok(GrantSpec {
        grant_id,
        scope_id,
        expires_boot_ns: boot_ns_in(ttl),
        max_uses: uses,
        object: GrantObject::File {
            path: real(SH)?,
            rights: rights::EXEC,
        },
    })
}

fn exec_one_time_grant_consumed() -> anyhow::Result<()> {
    let mut s = Setup::new("exec-grant")?;
    allow_libraries(&mut s)?;
    s.kernel.install_grants(&[shell_grant(
        s.scope,
        4242,
        Some(1),
        Duration::from_secs(600),
    )?])?;
    let first = exec_in(&s.governed, SH, &["-c", "exit 7"])?;
    ensure!(
        first == Exec::Ran(7),
        "first exec under a one-time grant: {first:?}"
    );
    let second = exec_in(&s.governed, SH, &["-c", "exit 7"])?;
    ensure!(
        second == Exec::Refused(libc::EPERM),
        "second exec: {second:?}, expected EPERM"
    );

    let events = s.decisions()?;
    let execs: Vec<_> = events
        .iter()
        .filter(|e| e.decision().is_some_and(|d| d.hook == Hook::Exec))
        .collect();
    let [allowed, denied] = execs.as_slice() else {
        bail!("expected two exec decisions, got {}", render_all(&events));
    };
    let a = expect_decision(allowed, Verdict::Allow, Reason::Grant)?;
    ensure!(a.grant_id == 4242, "allowed by grant {}", a.grant_id);
    expect_decision(denied, Verdict::Deny, Reason::GrantUsedUp)?;
    let left: Vec<_> = s
        .kernel
        .grants()?
        .into_iter()
        .filter(|g| g.scope_id == s.scope)
        .collect();
    ensure!(
        left.len() == 1 && left[0].uses_left() == Some(0),
        "grant state after use: {left:?}"
    );
    Ok(())
}

fn exec_grant_expires() -> anyhow::Result<()> {
    let mut s = Setup::new("exec-expiry")?;
    allow_libraries(&mut s)?;
    s.kernel
        .install_grants(&[shell_grant(s.scope, 77, None, Duration::from_secs(2))?])?;
    let before = exec_in(&s.governed, SH, &["-c", "exit 7"])?;
    ensure!(before == Exec::Ran(7), "exec before expiry: {before:?}");
    std::thread::sleep(Duration::from_millis(2500));
    let after = exec_in(&s.governed, SH, &["-c", "exit 7"])?;
    ensure!(
        after == Exec::Refused(libc::EPERM),
        "exec after expiry: {after:?}"
    );
    let events = s.decisions()?;
    let denied = events
        .iter()
        .rev()
        .find(|e| e.decision().is_some_and(|d| d.hook == Hook::Exec))
        .context("no exec decision")?;
    expect_decision(denied, Verdict::Deny, Reason::GrantExpired)?;
    Ok(())
}

fn copy_executable(from: &std::path::Path, to: &std::path::Path) -> anyhow::Result<()> {
    fs::copy(from, to).with_context(|| format!("copying {}", from.display()))?;
    fs::set_permissions(to, fs::Permissions::from_mode(0o755))?;
    Ok(())
}

/// The rule names an inode, not a path: a new file at the same path is a
/// different binary and is denied.
fn exec_replaced_binary_denied() -> anyhow::Result<()> {
    let mut s = Setup::new("exec-replace")?;
    allow_libraries(&mut s)?;
    let dir = Scratch::new("replace")?;
    // Named `sh` so that busybox (the VM's shell) runs as the shell.
    let tool = dir.join("sh");
    copy_executable(&real(SH)?, &tool)?;
    s.kernel.allow_file(s.scope, &tool, rights::EXEC)?;
    let tool_s = tool.to_str().context("path")?;
    let ok = exec_in(&s.governed, tool_s, &["-c", "exit 7"])?;
    ensure!(ok == Exec::Ran(7), "allowed tool: {ok:?}");
    // Same path, new inode (as an agent would swap a granted binary).
    let swap = dir.join("sh.new");
    copy_executable(&real(SH)?, &swap)?;
    fs::rename(&swap, &tool)?;
    let replaced = exec_in(&s.governed, tool_s, &["-c", "exit 7"])?;
    ensure!(
        replaced == Exec::Refused(libc::EPERM),
        "replaced tool: {replaced:?}"
    );
    let free = exec_in(&s.free, tool_s, &["-c", "exit 7"])?;
    ensure!(free == Exec::Ran(7), "ungoverned replaced tool: {free:?}");
    let events = s.decisions()?;
    let last = events
        .iter()
        .rev()
        .find(|e| e.decision().is_some_and(|d| d.hook == Hook::Exec))
        .context("no exec decision")?;
    expect_decision(last, Verdict::Deny, Reason::NoGrant)?;
    Ok(())
}

/// The exec decision in `events` about the file `(dev, ino)`.
fn exec_decision_of(events: &[Event], id: (u32, u64)) -> Option<&Event> {
    events.iter().find(|e| match e {
        Event::File(d) => d.decision.hook == Hook::Exec && (d.file.dev, d.file.ino) == id,
        _ => false,
    })
}

/// A script runs only when both it and its interpreter may run: the
/// kernel checks the `#!` interpreter as a second exec of the same call.
fn shebang_interpreter_checked() -> anyhow::Result<()> {
    let dir = Scratch::new("shebang")?;
    let script = dir.join("tool");
    fs::write(&script, format!("#!{SH}\nexit 7\n"))?;
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755))?;
    let script_s = script.to_str().context("path")?;
    let script_id = file_identity(&script)?;
    let sh_id = file_identity(&real(SH)?)?;

    // The script allowed, its interpreter not.
    let mut s = Setup::new("exec-shebang")?;
    allow_libraries(&mut s)?;
    s.kernel.allow_file(s.scope, &script, rights::EXEC)?;
    let got = exec_in(&s.governed, script_s, &[])?;
    ensure!(
        got == Exec::Refused(libc::EPERM),
        "a script whose interpreter may not run: {got:?}, expected EPERM"
    );
    let free = exec_in(&s.free, script_s, &[])?;
    ensure!(free == Exec::Ran(7), "ungoverned script: {free:?}");
    let events = s.decisions()?;
    let allowed = exec_decision_of(&events, script_id)
        .with_context(|| format!("no decision on the script: {}", render_all(&events)))?;
    expect_decision(allowed, Verdict::Allow, Reason::Baseline)?;
    let denied = exec_decision_of(&events, sh_id)
        .with_context(|| format!("no decision on the interpreter: {}", render_all(&events)))?;
    expect_decision(denied, Verdict::Deny, Reason::NoGrant)?;
    drop(s);

    // The interpreter allowed, the script not; then both. (A second
    // script: the rule on the first stays in this case's scope.)
    let script = dir.join("tool2");
    fs::write(&script, format!("#!{SH}\nexit 7\n"))?;
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755))?;
    let script_s = script.to_str().context("path")?;
    let script_id = file_identity(&script)?;
    let mut s = Setup::new("exec-shebang2")?;
    allow_shell(&mut s)?;
    let got = exec_in(&s.governed, script_s, &[])?;
    ensure!(
        got == Exec::Refused(libc::EPERM),
        "a script that may not run, under an allowed interpreter: {got:?}"
    );
    let events = s.decisions()?;
    let denied = exec_decision_of(&events, script_id)
        .with_context(|| format!("no decision on the script: {}", render_all(&events)))?;
    expect_decision(denied, Verdict::Deny, Reason::NoGrant)?;
    s.kernel.allow_file(s.scope, &script, rights::EXEC)?;
    let got = exec_in(&s.governed, script_s, &[])?;
    ensure!(
        got == Exec::Ran(7),
        "script and interpreter allowed: {got:?}"
    );
    Ok(())
}

/// Fileless execution: copy the (allowed) shell into a memfd and exec
/// that. The memfd is a new inode with no rule.
/// In the forked child: copies `image` into a memfd and executes it as
/// `sh -c "exit 0"`, by descriptor (`fexecve`) or by its `/proc/self/fd`
/// name; the errno when the exec fails.
fn exec_memfd(image: &[u8], by_name: bool) -> i32 {
    let argv = [
        c"sh".as_ptr(),
        c"-c".as_ptr(),
        c"exit 0".as_ptr(),
        std::ptr::null(),
    ];
    let envp = [std::ptr::null()];
    // SAFETY: raw calls in the forked child, with valid buffers.
    unsafe {
        let fd = libc::memfd_create(c"payload".as_ptr(), 0);
        if fd < 0 || libc::write(fd, image.as_ptr().cast(), image.len()) < 0 {
            return errno_if(-1);
        }
        if by_name {
            let Ok(path) = std::ffi::CString::new(format!("/proc/self/fd/{fd}")) else {
                return 255;
            };
            libc::execve(path.as_ptr(), argv.as_ptr(), envp.as_ptr());
        } else {
            libc::fexecve(fd, argv.as_ptr(), envp.as_ptr());
        }
        errno_if(-1)
    }
}

fn exec_from_memfd_denied() -> anyhow::Result<()> {
    let mut s = Setup::new("exec-memfd")?;
    allow_shell(&mut s)?;
    let image = fs::read(real(SH)?)?;
    let got = s.governed_and_free(|| exec_memfd(&image, false))?;
    ensure!(
        got == libc::EPERM,
        "governed exec from memfd: errno {got}, expected EPERM"
    );
    let events = s.decisions()?;
    let denied = events
        .iter()
        .find(|e| {
            e.decision()
                .is_some_and(|d| d.hook == Hook::Exec && d.verdict == Verdict::Deny)
        })
        .with_context(|| format!("no exec denial in {}", render_all(&events)))?;
    expect_decision(denied, Verdict::Deny, Reason::NoGrant)?;

    // The same memfd by name, through /proc/self/fd.
    let got = s.governed_and_free(|| exec_memfd(&image, true))?;
    ensure!(
        got == libc::EPERM,
        "governed exec of a memfd through /proc/self/fd: errno {got}, expected EPERM"
    );

    // A copy in a tmpfs (/dev/shm where the system has one): a new inode.
    let shm = if fs::metadata("/dev/shm").is_ok_and(|m| m.is_dir()) {
        std::path::PathBuf::from("/dev/shm")
    } else {
        std::env::temp_dir()
    };
    // Named `sh` so that busybox (the VM's shell) runs as the shell.
    let holder = shm.join(format!("acelogic-payload-{}", std::process::id()));
    fs::create_dir_all(&holder)?;
    let copy = holder.join("sh");
    copy_executable(&real(SH)?, &copy)?;
    let copy_s = copy.to_str().context("path")?.to_owned();
    let governed = exec_in(&s.governed, &copy_s, &["-c", "exit 7"])?;
    let free = exec_in(&s.free, &copy_s, &["-c", "exit 7"])?;
    let _ = fs::remove_dir_all(&holder);
    ensure!(
        free == Exec::Ran(7),
        "ungoverned copy in {}: {free:?}",
        shm.display()
    );
    ensure!(
        governed == Exec::Refused(libc::EPERM),
        "governed copy of the shell in {}: {governed:?}, expected EPERM",
        shm.display()
    );
    let events = s.decisions()?;
    ensure!(
        events
            .iter()
            .filter(|e| e
                .decision()
                .is_some_and(|d| d.hook == Hook::Exec && d.verdict == Verdict::Deny))
            .count()
            >= 2,
        "the /proc/self/fd and the copy's denials are recorded: {}",
        render_all(&events)
    );
    Ok(())
}

fn dynamic_loader() -> anyhow::Result<std::path::PathBuf> {
    for p in [
        "/lib64/ld-linux-x86-64.so.2",
        "/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
        "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
    ] {
        if fs::metadata(p).is_ok() {
            return real(p);
        }
    }
    bail!("no dynamic loader found")
}

/// `ld.so BINARY` maps BINARY itself instead of asking exec: with the
/// loader allowed and the binary not, the mapping is refused.
fn exec_through_loader_denied() -> anyhow::Result<()> {
    let mut s = Setup::new("exec-loader")?;
    allow_libraries(&mut s)?;
    let loader = dynamic_loader()?;
    s.kernel.allow_file(s.scope, &loader, rights::EXEC)?;
    let me = real("/proc/self/exe")?;
    s.kernel.allow_file(s.scope, &me, rights::EXEC)?;
    let dir = Scratch::new("loader")?;
    let denied_bin = dir.join("denied");
    copy_executable(&me, &denied_bin)?;
    let ld = loader.to_str().context("path")?;

    // Control: the loader runs an allowed binary (libraries map fine).
    let ok = exec_in(&s.governed, ld, &[me.to_str().context("path")?, "--help"])?;
    ensure!(
        ok == Exec::Ran(0),
        "loader running an allowed binary: {ok:?}"
    );
    let direct = exec_in(
        &s.governed,
        denied_bin.to_str().context("path")?,
        &["--help"],
    )?;
    ensure!(
        direct == Exec::Refused(libc::EPERM),
        "direct exec of the copy: {direct:?}"
    );
    drop(s.decisions()?);

    let via = exec_in(
        &s.governed,
        ld,
        &[denied_bin.to_str().context("path")?, "--help"],
    )?;
    ensure!(
        matches!(via, Exec::Ran(code) if code != 0),
        "loader running a denied binary: {via:?}, expected the loader to fail"
    );
    let free = exec_in(
        &s.free,
        ld,
        &[denied_bin.to_str().context("path")?, "--help"],
    )?;
    ensure!(free == Exec::Ran(0), "ungoverned loader run: {free:?}");
    let events = s.decisions()?;
    let (dev, ino) = file_identity(&denied_bin)?;
    let refused = events.iter().find(|e| match e {
        Event::File(f) => {
            matches!(f.decision.hook, Hook::MmapExec | Hook::MprotectExec)
                && f.decision.verdict == Verdict::Deny
                && (f.file.dev, f.file.ino) == (dev, ino)
        }
        _ => false,
    });
    let refused = refused.with_context(|| {
        format!(
            "no executable-mapping denial of the copy in {}",
            render_all(&events)
        )
    })?;
    expect_decision(refused, Verdict::Deny, Reason::NoGrant)?;
    Ok(())
}

/// No record, no allow: with the ring buffer full and nobody draining it,
/// every governed exec is still denied, and each one is accounted for,
/// either as a record or in the `record_unavailable` counter.
fn full_ring_buffer_still_denies_and_counts() -> anyhow::Result<()> {
    // One page holds a few dozen decision records; make many more attempts.
    const ATTEMPTS: u64 = 100;
    let mut s = Setup::with(
        "exec-flood",
        &LoadOptions {
            ring_bytes: Some(4096),
            ..LoadOptions::default()
        },
    )?;
    for i in 0..ATTEMPTS {
        let got = exec_in(&s.governed, SH, &["-c", "exit 7"])?;
        if got != Exec::Refused(libc::EPERM) {
            bail!("attempt {i}: governed exec {got:?}, expected EPERM");
        }
    }
    let c = s.kernel.counters()?;
    // Lifecycle records (the refused children's exits) share the ring;
    // only decisions are compared with the decision counters.
    let recorded = u64::try_from(
        s.records
            .drain()
            .into_iter()
            .filter(|r| r.as_ref().map_or(true, |e| e.decision().is_some()))
            .count(),
    )?;
    ensure!(
        c.record_unavailable > 0,
        "the ring buffer never filled ({recorded} records); the test proves nothing"
    );
    ensure!(
        recorded == c.denied,
        "{recorded} records drained but the denied counter says {}",
        c.denied
    );
    ensure!(
        c.denied + c.record_unavailable == ATTEMPTS,
        "{} recorded + {} unrecorded denials != {ATTEMPTS} attempts",
        c.denied,
        c.record_unavailable
    );
    ensure!(c.allowed == 0, "allowed counter {}", c.allowed);
    Ok(())
}
