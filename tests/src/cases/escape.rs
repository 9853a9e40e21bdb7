//! Self-protection, end to end: a governed process cannot leave its
//! cgroup (by `cgroup.procs` or `clone3`), touch BPF, signal or trace
//! processes outside its scope, or mount; a frozen scope denies even its
//! baseline; a cgroup made below a governed one after registration is
//! governed too. Every denial is checked for its errno and its record, and
//! the same action is run ungoverned, where it must work.

use std::{
    fs,
    net::{IpAddr, Ipv4Addr},
    process::Child,
};

use acelogic_common::user::{Event, Hook, Reason, SystemDecisionEvent, TaskDecisionEvent, Verdict};
use acelogic_domain::{
    capability::Protocol,
    cgroupfs as node,
    grant::{NetTarget, file_identity},
};
use acelogic_kernel::cgroup_id;
use anyhow::{Context as _, bail, ensure};

use crate::{
    cases::network::{NetExpect, RawAddr, net_decisions, tcp_connect, tcp_listener},
    fixtures::{
        Scratch, Setup, TestCgroup, c_path, errno_if, expect_decision, in_cgroup, one_decision,
        render_all,
    },
    harness::{Case, Need},
};

pub(crate) const CASES: &[Case] = &[
    case("cgroup_procs_write_denied", cgroup_procs_write_denied),
    case("bpf_syscall_denied", bpf_syscall_denied),
    case("kill_outside_scope_denied", kill_outside_scope_denied),
    case("ptrace_outside_scope_denied", ptrace_outside_scope_denied),
    case("mount_denied", mount_denied),
    case("clone_into_cgroup_denied", clone_into_cgroup_denied),
    case("frozen_scope_denies_baseline", frozen_scope_denies_baseline),
    case(
        "child_cgroup_created_after_registration_is_governed",
        child_cgroup_created_after_registration_is_governed,
    ),
    case(
        "cached_answer_forgotten_on_registration",
        cached_answer_forgotten_on_registration,
    ),
];

const fn case(name: &'static str, run: fn() -> anyhow::Result<()>) -> Case {
    Case {
        name,
        needs: &[Need::BpfLsm],
        run,
    }
}

/// Opens `path` for writing and closes it again (for the forked child).
fn open_for_write(path: &std::ffi::CStr) -> i32 {
    // SAFETY: a valid NUL-terminated path.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return errno_if(-1);
    }
    // SAFETY: closing the descriptor opened above.
    unsafe { libc::close(fd) };
    0
}

/// Moving into another cgroup through `cgroup.procs` needs that file open
/// for writing: the open is refused.
fn cgroup_procs_write_denied() -> anyhow::Result<()> {
    let mut s = Setup::new("esc-procs")?;
    let root = node::cgroup2_mount().context("cgroup v2 is not mounted")?;
    let procs = root.join("cgroup.procs");
    let c_procs = c_path(&procs);
    let got = s.governed_and_free(|| open_for_write(&c_procs))?;
    ensure!(
        got == libc::EPERM,
        "governed write-open of {}: errno {got}, expected EPERM",
        procs.display()
    );
    let events = s.decisions()?;
    let event = one_decision(&events, Hook::FileOpen)?;
    expect_decision(event, Verdict::Deny, Reason::NoGrant)?;
    let Event::File(f) = event else {
        bail!("not a file decision: {}", render_all(&events));
    };
    let (dev, ino) = file_identity(&procs)?;
    ensure!(
        (f.file.dev, f.file.ino) == (dev, ino) && f.name() == b"cgroup.procs",
        "record names file {}:{} {:?}, the root's cgroup.procs is {dev}:{ino}",
        f.file.dev,
        f.file.ino,
        String::from_utf8_lossy(f.name())
    );
    ensure!(
        f.header.cgroup_id == s.governed.id,
        "cgroup {}",
        f.header.cgroup_id
    );
    Ok(())
}

/// The only system decision in `events` made by `hook`.
fn one_system(events: &[Event], hook: Hook) -> anyhow::Result<&SystemDecisionEvent> {
    match one_decision(events, hook)? {
        Event::System(e) => Ok(e),
        _ => bail!(
            "{hook} decision is not a system record: {}",
            render_all(events)
        ),
    }
}

/// The only task decision in `events` made by `hook`.
fn one_task(events: &[Event], hook: Hook) -> anyhow::Result<&TaskDecisionEvent> {
    match one_decision(events, hook)? {
        Event::Task(e) => Ok(e),
        _ => bail!(
            "{hook} decision is not a task record: {}",
            render_all(events)
        ),
    }
}

/// The start of `union bpf_attr` for `BPF_MAP_CREATE`; the rest is zero.
#[repr(C)]
struct MapCreateAttr {
    map_type: u32,
    key_size: u32,
    value_size: u32,
    max_entries: u32,
    rest: [u32; 12],
}

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_TYPE_ARRAY: u32 = 2;

fn bpf_syscall_denied() -> anyhow::Result<()> {
    let mut s = Setup::new("esc-bpf")?;
    let attr = MapCreateAttr {
        map_type: BPF_MAP_TYPE_ARRAY,
        key_size: 4,
        value_size: 4,
        max_entries: 1,
        rest: [0; 12],
    };
    let got = s.governed_and_free(|| {
        // SAFETY: `attr` is a valid, fully initialised bpf_attr prefix of
        // the size passed.
        let fd = unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_CREATE,
                std::ptr::from_ref(&attr),
                size_of::<MapCreateAttr>(),
            )
        };
        if fd < 0 {
            return errno_if(-1);
        }
        if let Ok(fd) = libc::c_int::try_from(fd) {
            // SAFETY: closing the map descriptor just created.
            unsafe { libc::close(fd) };
        }
        0
    })?;
    ensure!(
        got == libc::EPERM,
        "governed BPF_MAP_CREATE: errno {got}, expected EPERM"
    );
    let events = s.decisions()?;
    let e = one_system(&events, Hook::Bpf)?;
    expect_decision(&Event::System(e.clone()), Verdict::Deny, Reason::Forbidden)?;
    ensure!(
        e.detail == 0,
        "bpf command {} recorded, expected BPF_MAP_CREATE (0)",
        e.detail
    );
    ensure!(
        e.header.cgroup_id == s.governed.id,
        "cgroup {}",
        e.header.cgroup_id
    );
    Ok(())
}

/// An ungoverned `sleep 30` in the free cgroup, killed when dropped.
#[derive(Debug)]
struct Sleeper(Child);

impl Sleeper {
    fn start(s: &Setup) -> anyhow::Result<Self> {
        Ok(Self(s.free.command("/bin/sleep", &["30"])?.spawn()?))
    }

    fn pid(&self) -> anyhow::Result<libc::pid_t> {
        Ok(libc::pid_t::try_from(self.0.id())?)
    }

    fn alive(&mut self) -> anyhow::Result<bool> {
        Ok(self.0.try_wait()?.is_none())
    }
}

impl Drop for Sleeper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Forks a process that waits for signals, signals it with SIGTERM and
/// reaps it (for the forked child): 0 when it died of the signal.
fn kill_own_child() -> i32 {
    // SAFETY: the caller is a single-threaded forked child.
    let pid = unsafe { libc::fork() };
    if pid < 0 {
        return errno_if(-1);
    }
    if pid == 0 {
        loop {
            // SAFETY: waiting for a signal; SIGTERM ends the process.
            unsafe { libc::pause() };
        }
    }
    // SAFETY: signalling our own child.
    let sent = errno_if(unsafe { libc::kill(pid, libc::SIGTERM) }.into());
    if sent != 0 {
        // SAFETY: as above; the child must not outlive us.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
    let mut status = 0;
    // SAFETY: reaping our own child with a valid out-pointer.
    unsafe { libc::waitpid(pid, &raw mut status, 0) };
    if sent != 0 {
        return sent;
    }
    if libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGTERM {
        0
    } else {
        libc::EIO
    }
}

/// `kill(pid, SIGTERM)`: 0 or its errno (for the forked child).
fn sigterm(pid: libc::pid_t) -> i32 {
    // SAFETY: signalling a pid; no memory involved.
    errno_if(unsafe { libc::kill(pid, libc::SIGTERM) }.into())
}

fn kill_outside_scope_denied() -> anyhow::Result<()> {
    let mut s = Setup::new("esc-kill")?;
    let mut sleeper = Sleeper::start(&s)?;
    let pid = sleeper.pid()?;
    let target = u32::try_from(pid)?;

    let governed = in_cgroup(&s.governed, || sigterm(pid))?;
    ensure!(
        governed == libc::EPERM,
        "governed kill of ungoverned {pid}: errno {governed}, expected EPERM"
    );
    ensure!(
        sleeper.alive()?,
        "the ungoverned sleeper {pid} died of a refused signal"
    );
    let events = s.decisions()?;
    let e = one_task(&events, Hook::TaskKill)?;
    expect_decision(&Event::Task(e.clone()), Verdict::Deny, Reason::OutsideScope)?;
    ensure!(
        e.target_tgid == target
            && e.target_scope_id == 0
            && e.target_cgroup_id == s.free.id
            && e.detail == u32::try_from(libc::SIGTERM)?
            && e.header.cgroup_id == s.governed.id,
        "record {}, expected SIGTERM to {pid} in cgroup {} (no scope)",
        render_all(&events),
        s.free.id
    );

    // The same signal sent ungoverned kills it.
    let free = in_cgroup(&s.free, || sigterm(pid))?;
    ensure!(free == 0, "ungoverned kill of {pid}: errno {free}");
    let status = sleeper.0.wait()?;
    ensure!(
        std::os::unix::process::ExitStatusExt::signal(&status) == Some(libc::SIGTERM),
        "the sleeper ended with {status} after an ungoverned SIGTERM"
    );

    // Within the scope, signals work.
    let own = s.governed_and_free(kill_own_child)?;
    ensure!(own == 0, "governed kill of its own child: errno {own}");
    let events = s.decisions()?;
    let e = one_task(&events, Hook::TaskKill)?;
    expect_decision(&Event::Task(e.clone()), Verdict::Allow, Reason::SameScope)?;
    ensure!(
        e.target_scope_id == s.scope
            && e.target_cgroup_id == s.governed.id
            && e.target_tgid != target,
        "record {}, expected a target in scope {}",
        render_all(&events),
        s.scope
    );
    Ok(())
}

/// `PTRACE_MODE_ATTACH` in the hook's mode argument.
const PTRACE_MODE_ATTACH: u32 = 0x02;

/// Attaches to `pid`, waits for the attach stop and detaches again (for
/// the forked child).
fn ptrace_attach_detach(pid: libc::pid_t) -> i32 {
    let null = std::ptr::null_mut::<libc::c_void>();
    // SAFETY: PTRACE_ATTACH takes no pointers.
    if unsafe { libc::ptrace(libc::PTRACE_ATTACH, pid, null, null) } < 0 {
        return errno_if(-1);
    }
    let mut status = 0;
    // SAFETY: waiting for the tracee with a valid out-pointer.
    let waited = unsafe { libc::waitpid(pid, &raw mut status, libc::__WALL) };
    let waited = errno_if(waited.into());
    // SAFETY: detaching with no signal to deliver.
    let detached = errno_if(unsafe { libc::ptrace(libc::PTRACE_DETACH, pid, null, null) });
    if waited != 0 { waited } else { detached }
}

fn ptrace_outside_scope_denied() -> anyhow::Result<()> {
    let mut s = Setup::new("esc-ptrace")?;
    let mut sleeper = Sleeper::start(&s)?;
    let pid = sleeper.pid()?;
    let got = s.governed_and_free(|| ptrace_attach_detach(pid))?;
    ensure!(
        got == libc::EPERM,
        "governed PTRACE_ATTACH to {pid}: errno {got}, expected EPERM"
    );
    ensure!(sleeper.alive()?, "the sleeper {pid} is gone");
    let events = s.decisions()?;
    let e = one_task(&events, Hook::Ptrace)?;
    expect_decision(&Event::Task(e.clone()), Verdict::Deny, Reason::OutsideScope)?;
    ensure!(
        e.target_tgid == u32::try_from(pid)?
            && e.target_scope_id == 0
            && e.target_cgroup_id == s.free.id
            && e.detail & PTRACE_MODE_ATTACH != 0
            && e.header.cgroup_id == s.governed.id,
        "record {}, expected an attach to {pid} in cgroup {} (no scope)",
        render_all(&events),
        s.free.id
    );
    Ok(())
}

fn mount_denied() -> anyhow::Result<()> {
    let mut s = Setup::new("esc-mount")?;
    let dir = Scratch::new("mount")?;
    let target = c_path(&dir.path);
    let got = s.governed_and_free(|| {
        // SAFETY: valid NUL-terminated strings and no data.
        let rc = unsafe {
            libc::mount(
                c"none".as_ptr(),
                target.as_ptr(),
                c"tmpfs".as_ptr(),
                0,
                std::ptr::null(),
            )
        };
        if rc != 0 {
            return errno_if(-1);
        }
        // SAFETY: as above.
        errno_if(unsafe { libc::umount(target.as_ptr()) }.into())
    })?;
    ensure!(
        got == libc::EPERM,
        "governed mount: errno {got}, expected EPERM"
    );
    let events = s.decisions()?;
    let e = one_system(&events, Hook::SbMount)?;
    expect_decision(&Event::System(e.clone()), Verdict::Deny, Reason::Forbidden)?;
    ensure!(
        e.detail == 0 && e.header.cgroup_id == s.governed.id,
        "record {}, expected mount flags 0",
        render_all(&events)
    );
    Ok(())
}

/// `struct clone_args` (include/uapi/linux/sched.h, version 2).
#[repr(C)]
#[derive(Debug, Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

fn clone_into_cgroup_denied() -> anyhow::Result<()> {
    let mut s = Setup::new("esc-clone")?;
    let dir = fs::File::open(&s.free.path)?;
    let args = CloneArgs {
        flags: CLONE_INTO_CGROUP,
        exit_signal: u64::try_from(libc::SIGCHLD)?,
        cgroup: u64::try_from(std::os::fd::AsRawFd::as_raw_fd(&dir))?,
        ..CloneArgs::default()
    };
    let got = s.governed_and_free(|| {
        // SAFETY: `args` is a whole clone_args of the size passed; without
        // CLONE_VM the child runs on a copy of this address space and
        // only calls `_exit`.
        let pid = unsafe {
            libc::syscall(
                libc::SYS_clone3,
                std::ptr::from_ref(&args),
                size_of::<CloneArgs>(),
            )
        };
        if pid < 0 {
            return errno_if(-1);
        }
        if pid == 0 {
            // SAFETY: the new child ends at once.
            unsafe { libc::_exit(0) };
        }
        let Ok(pid) = libc::pid_t::try_from(pid) else {
            return libc::EIO;
        };
        let mut status = 0;
        // SAFETY: reaping our own child with a valid out-pointer.
        errno_if(unsafe { libc::waitpid(pid, &raw mut status, 0) }.into())
    })?;
    ensure!(
        got == libc::EPERM,
        "governed clone3(CLONE_INTO_CGROUP): errno {got}, expected EPERM"
    );
    let events = s.decisions()?;
    let e = one_system(&events, Hook::CloneIntoCgroup)?;
    expect_decision(&Event::System(e.clone()), Verdict::Deny, Reason::Forbidden)?;
    ensure!(
        e.detail & CLONE_INTO_CGROUP != 0 && e.header.cgroup_id == s.governed.id,
        "record {}, expected clone flags with CLONE_INTO_CGROUP",
        render_all(&events)
    );
    Ok(())
}

fn frozen_scope_denies_baseline() -> anyhow::Result<()> {
    let mut s = Setup::new("esc-frozen")?;
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let (_l, a) = tcp_listener(ip)?;
    s.kernel
        .allow_net(s.scope, &NetTarget::host(Protocol::Tcp, ip, a.port()))?;
    let r = RawAddr::new(a);
    let before = s.governed_and_free(|| tcp_connect(&r))?;
    ensure!(
        before == 0,
        "governed connect allowed by baseline: errno {before}"
    );
    s.kernel.set_frozen(s.scope, true)?;
    let frozen = s.governed_and_free(|| tcp_connect(&r));
    s.kernel.set_frozen(s.scope, false)?;
    let frozen = frozen?;
    ensure!(
        frozen == libc::EPERM,
        "governed connect in a frozen scope: errno {frozen}, expected EPERM"
    );
    let after = s.governed_and_free(|| tcp_connect(&r))?;
    ensure!(
        after == 0,
        "governed connect after unfreezing: errno {after}"
    );

    let events = s.decisions()?;
    let [b, f, u] = net_decisions(&events, Hook::SocketConnect)[..] else {
        bail!(
            "expected three connect decisions, got {}",
            render_all(&events)
        );
    };
    let expect = |verdict, reason| NetExpect {
        verdict,
        reason,
        to: a,
        protocol: 6,
        cgroup_id: s.governed.id,
    };
    expect(Verdict::Allow, Reason::Baseline).check(b)?;
    expect(Verdict::Deny, Reason::Frozen).check(f)?;
    expect(Verdict::Allow, Reason::Baseline).check(u)?;
    Ok(())
}

fn child_cgroup_created_after_registration_is_governed() -> anyhow::Result<()> {
    let mut s = Setup::new("esc-sub")?;
    let path = s.governed.path.join("late");
    fs::create_dir(&path).with_context(|| format!("creating {}", path.display()))?;
    // Removed when dropped, before the governed parent.
    let sub = TestCgroup {
        id: cgroup_id(&path)?,
        path,
    };
    let (_l, a) = tcp_listener(IpAddr::V4(Ipv4Addr::LOCALHOST))?;
    let r = RawAddr::new(a);
    let free = in_cgroup(&s.free, || tcp_connect(&r))?;
    ensure!(free == 0, "ungoverned connect to {a}: errno {free}");
    let got = in_cgroup(&sub, || tcp_connect(&r))?;
    ensure!(
        got == libc::EPERM,
        "connect from {} (made after registration): errno {got}, expected EPERM",
        sub.path.display()
    );
    let events = s.decisions()?;
    let [e] = net_decisions(&events, Hook::SocketConnect)[..] else {
        bail!("expected one connect decision, got {}", render_all(&events));
    };
    NetExpect {
        verdict: Verdict::Deny,
        reason: Reason::NoGrant,
        to: a,
        protocol: 6,
        cgroup_id: sub.id,
    }
    .check(e)?;
    ensure!(
        e.decision.scope_id == s.scope,
        "scope {}",
        e.decision.scope_id
    );
    drop(sub);
    Ok(())
}

/// The kernel caches "not governed" per cgroup. Registering that cgroup
/// later must take effect at once (the generation bump), and releasing it
/// must too: a stale cache entry would be an enforcement gap.
fn cached_answer_forgotten_on_registration() -> anyhow::Result<()> {
    let mut s = Setup::new("esc-cache")?;
    let late = TestCgroup::new("esc-cache-late")?;
    let (_l, a) = tcp_listener(IpAddr::V4(Ipv4Addr::LOCALHOST))?;
    let r = RawAddr::new(a);
    let before = in_cgroup(&late, || tcp_connect(&r))?;
    ensure!(before == 0, "connect before registration: errno {before}");
    let cached = s.kernel.cached_scope(late.id)?;
    ensure!(
        cached.is_some_and(|c| c.governed == 0),
        "the kernel did not cache the ungoverned answer ({cached:?}); the test proves nothing"
    );
    s.kernel.govern(&late.path, s.scope)?;
    let governed = in_cgroup(&late, || tcp_connect(&r))?;
    ensure!(
        governed == libc::EPERM,
        "connect right after registration: errno {governed}, expected EPERM (stale cache)"
    );
    let events = s.decisions()?;
    let [e] = net_decisions(&events, Hook::SocketConnect)[..] else {
        bail!("expected one connect decision, got {}", render_all(&events));
    };
    NetExpect {
        verdict: Verdict::Deny,
        reason: Reason::NoGrant,
        to: a,
        protocol: 6,
        cgroup_id: late.id,
    }
    .check(e)?;
    s.kernel.release(late.id)?;
    let after = in_cgroup(&late, || tcp_connect(&r))?;
    ensure!(after == 0, "connect after release: errno {after}");
    Ok(())
}
