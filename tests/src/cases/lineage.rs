//! Process lineage: exec, fork and exit of governed processes are
//! recorded, with the process start times procfs reports; ungoverned
//! processes and threads are not. Records not committed by a consumer
//! survive its restart.

use std::{
    collections::BTreeSet,
    fs,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use acelogic_common::user::{
    Event, ProcessExecEvent, ProcessExitEvent, ProcessForkEvent, start_ticks,
};
use acelogic_domain::policy::Mode;
use acelogic_kernel::{self as kernel, Kernel, LoadOptions, Records, compat};
use acelogic_lineage::{
    chain,
    enrich::proc_stat,
    journal::Journal,
    pb::{self, record::Body},
};
use anyhow::{Context as _, bail, ensure};
use prost::Message as _;

use crate::{
    daemon::Daemon,
    fixtures::{SCOPE, Scratch, TestCgroup, collect, exit_code, render_all},
    harness::{Case, Need},
};

pub(crate) const CASES: &[Case] = &[
    Case {
        name: "process_exec_recorded_for_governed_only",
        needs: &[Need::Tracepoints],
        run: process_exec_recorded_for_governed_only,
    },
    Case {
        name: "process_fork_and_exit_recorded_for_governed_only",
        needs: &[Need::Tracepoints],
        run: process_fork_and_exit_recorded_for_governed_only,
    },
    Case {
        name: "process_threads_are_not_forks",
        needs: &[Need::Tracepoints],
        run: process_threads_are_not_forks,
    },
    Case {
        name: "process_start_ns_matches_procfs",
        needs: &[Need::Tracepoints],
        run: process_start_ns_matches_procfs,
    },
    Case {
        name: "process_records_survive_consumer_restart",
        needs: &[Need::Tracepoints],
        run: process_records_survive_consumer_restart,
    },
    Case {
        name: "exec_parents_exact_across_daemon_kills",
        needs: &[Need::BpfLsm],
        run: exec_parents_exact_across_daemon_kills,
    },
];

fn process_exec_recorded_for_governed_only() -> anyhow::Result<()> {
    let mut kernel = Kernel::load()?;
    // Lineage only: no gate, so the governed exec succeeds.
    kernel.attach(&compat::PROCESS_LINEAGE)?;
    let mut records = kernel.records()?;
    let governed = TestCgroup::new("lineage-governed")?;
    let free = TestCgroup::new("lineage-free")?;
    kernel.define_scope(3, Mode::Enforce)?;
    kernel.govern(&governed.path, 3)?;

    let inside = governed.command("/bin/sh", &["-c", "exit 3"])?.spawn()?;
    let inside_pid = inside.id();
    ensure!(exit_code(inside)? == 3, "governed /bin/sh did not run");
    let outside = free.command("/bin/sh", &["-c", "exit 4"])?.spawn()?;
    let outside_pid = outside.id();
    ensure!(exit_code(outside)? == 4, "ungoverned /bin/sh did not run");

    let events = collect(
        &mut records,
        Duration::from_millis(500),
        Duration::from_secs(10),
    )?;
    let execs = execs(&events);
    let [rec] = execs.as_slice() else {
        bail!("expected exactly one process-exec record, got {events:#?}");
    };
    ensure!(
        rec.header.tgid == inside_pid,
        "record pid {} != {inside_pid}",
        rec.header.tgid
    );
    ensure!(
        rec.header.cgroup_id == governed.id,
        "record cgroup {}",
        rec.header.cgroup_id
    );
    ensure!(
        rec.filename() == b"/bin/sh",
        "record file name {:?} (`linux_binprm.filename` offset wrong?)",
        String::from_utf8_lossy(rec.filename())
    );
    ensure!(
        events.iter().all(|e| e.header().tgid != outside_pid),
        "the ungoverned process was recorded"
    );
    Ok(())
}

/// Every lineage program attached (no gate), a governed cgroup and an
/// ungoverned twin.
struct Lineage {
    // Keeps the programs attached.
    _kernel: Kernel,
    records: Records,
    governed: TestCgroup,
    free: TestCgroup,
}

impl Lineage {
    fn new(name: &str) -> anyhow::Result<Self> {
        let mut kernel = Kernel::load()?;
        for spec in &compat::LINEAGE {
            kernel.attach(spec)?;
        }
        let records = kernel.records()?;
        let governed = TestCgroup::new(&format!("{name}-gov"))?;
        let free = TestCgroup::new(&format!("{name}-free"))?;
        kernel.define_scope(SCOPE, Mode::Enforce)?;
        kernel.govern(&governed.path, SCOPE)?;
        Ok(Self {
            _kernel: kernel,
            records,
            governed,
            free,
        })
    }

    fn events(&mut self) -> anyhow::Result<Vec<Event>> {
        collect(
            &mut self.records,
            Duration::from_millis(500),
            Duration::from_secs(10),
        )
    }
}

fn execs(events: &[Event]) -> Vec<&ProcessExecEvent> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::ProcessExec(p) => Some(p),
            _ => None,
        })
        .collect()
}

fn forks(events: &[Event]) -> Vec<&ProcessForkEvent> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::ProcessFork(f) => Some(f),
            _ => None,
        })
        .collect()
}

fn exits(events: &[Event]) -> Vec<&ProcessExitEvent> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::ProcessExit(x) => Some(x),
            _ => None,
        })
        .collect()
}

/// The one exit record of process `pid`.
fn exit_of(events: &[Event], pid: u32) -> anyhow::Result<&ProcessExitEvent> {
    let found: Vec<_> = exits(events)
        .into_iter()
        .filter(|x| x.header.tgid == pid)
        .collect();
    let [one] = found.as_slice() else {
        bail!(
            "expected one exit record of pid {pid}, got {}: {}",
            found.len(),
            render_all(events)
        );
    };
    Ok(one)
}

/// Waits for a shell to write a pid into `path`.
fn pid_in(path: &Path) -> anyhow::Result<u32> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(text) = fs::read_to_string(path)
            && text.ends_with('\n')
        {
            return text
                .trim()
                .parse()
                .with_context(|| format!("{} holds {text:?}", path.display()));
        }
        if Instant::now() > deadline {
            bail!("{} was never written", path.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Field 22 of `/proc/PID/stat`: the start time in clock ticks since boot.
fn proc_starttime(pid: u32) -> anyhow::Result<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The comm (field 2) is parenthesised and may hold spaces; fields
    // after it start with field 3.
    let after = stat
        .rsplit_once(')')
        .with_context(|| format!("malformed stat {stat:?}"))?
        .1;
    let field = after
        .split_whitespace()
        .nth(22 - 3)
        .with_context(|| format!("short stat {stat:?}"))?;
    Ok(field.parse()?)
}

/// The shell script of the fork/exit case: a foreground child, a
/// background child, each writing its own pid, then `exit CODE`.
fn family_script(dir: &Path, code: i32) -> String {
    let d = dir.display();
    format!(
        "/bin/sh -c 'echo $$ > {d}/fg'; /bin/sh -c 'echo $$ > {d}/bg' & echo $! > {d}/bang; \
         wait; exit {code}"
    )
}

fn process_fork_and_exit_recorded_for_governed_only() -> anyhow::Result<()> {
    let mut l = Lineage::new("family")?;
    let inside_dir = Scratch::new("family-gov")?;
    let outside_dir = Scratch::new("family-free")?;

    let inside = l
        .governed
        .command("/bin/sh", &["-c", &family_script(&inside_dir.path, 7)])?
        .spawn()?;
    let sh = inside.id();
    ensure!(exit_code(inside)? == 7, "governed script did not exit 7");
    let outside = l
        .free
        .command("/bin/sh", &["-c", &family_script(&outside_dir.path, 9)])?
        .spawn()?;
    let free_sh = outside.id();
    ensure!(exit_code(outside)? == 9, "ungoverned script did not exit 9");
    let (fg, bg) = (
        pid_in(&inside_dir.join("fg"))?,
        pid_in(&inside_dir.join("bg"))?,
    );
    ensure!(
        pid_in(&inside_dir.join("bang"))? == bg,
        "$! is not the background child's pid"
    );
    let free_pids: BTreeSet<u32> = [
        free_sh,
        pid_in(&outside_dir.join("fg"))?,
        pid_in(&outside_dir.join("bg"))?,
    ]
    .into();
    let events = l.events()?;

    // Forks: exactly the shell's two children, with their real pids; the
    // children themselves (sh running a builtin) create nothing.
    let forked = forks(&events);
    let children: BTreeSet<u32> = forked
        .iter()
        .filter(|f| f.header.tgid == sh)
        .map(|f| f.child_tgid)
        .collect();
    ensure!(
        children == [fg, bg].into() && forked.len() == 2,
        "expected fork records of {sh} for children {fg} and {bg}, got {}",
        render_all(&events)
    );
    for f in &forked {
        ensure!(
            f.header.cgroup_id == l.governed.id && f.header.pid == sh,
            "fork record not from the governed shell: {f:?}"
        );
    }

    // Exits: the wait status of each process.
    ensure!(
        exit_of(&events, sh)?.exit_code == 7 << 8,
        "shell exit record: {:?}",
        exit_of(&events, sh)?
    );
    for child in [fg, bg] {
        let x = exit_of(&events, child)?;
        ensure!(x.exit_code == 0, "child {child} exit record: {x:?}");
        ensure!(x.header.pid == x.header.tgid, "exit of a non-leader: {x:?}");
        // The child's start time as its creator saw it is the one its own
        // records carry.
        let f = forked
            .iter()
            .find(|f| f.child_tgid == child)
            .context("fork")?;
        ensure!(
            f.child_start_ns != 0 && f.child_start_ns == x.header.start_ns,
            "child {child}: fork says start {} ns, its exit says {} ns",
            f.child_start_ns,
            x.header.start_ns
        );
    }
    ensure!(
        forked[0].header.start_ns == exit_of(&events, sh)?.header.start_ns,
        "the shell's start time differs between its fork and exit records"
    );
    ensure!(
        execs(&events)
            .iter()
            .filter(|e| e.header.tgid == fg || e.header.tgid == bg)
            .count()
            == 2,
        "expected the children's two execs: {}",
        render_all(&events)
    );

    // Nothing about the ungoverned family.
    let leaked: Vec<&Event> = events
        .iter()
        .filter(|e| {
            free_pids.contains(&e.header().tgid)
                || matches!(e, Event::ProcessFork(f) if free_pids.contains(&f.child_tgid))
        })
        .collect();
    ensure!(
        leaked.is_empty(),
        "ungoverned processes {free_pids:?} were recorded: {leaked:?}"
    );
    Ok(())
}

/// What the threaded child's thread found.
struct Report {
    tid: u32,
    grandchild: u32,
}

fn process_threads_are_not_forks() -> anyhow::Result<()> {
    let mut l = Lineage::new("threads")?;
    let procs = crate::fixtures::c_path(&l.governed.path.join("cgroup.procs"));
    let mut report = [0i32; 2];
    let mut hold = [0i32; 2];
    for fds in [&mut report, &mut hold] {
        // SAFETY: a valid out-pointer for two fds.
        let rc = unsafe { libc::pipe(fds.as_mut_ptr()) };
        ensure!(rc == 0, "pipe: {}", std::io::Error::last_os_error());
    }
    // SAFETY: the case runs alone in a single-threaded process, so the
    // child may run ordinary code (it spawns a thread) after fork.
    let child = unsafe { libc::fork() };
    if child < 0 {
        bail!("fork: {}", std::io::Error::last_os_error());
    }
    if child == 0 {
        // SAFETY: child side; raw calls, then `_exit`.
        unsafe {
            let fd = libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
            if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                libc::_exit(250);
            }
            libc::close(fd);
            // A thread of this (now governed) process creates a process;
            // creating the thread itself must not count as one.
            let joined = std::thread::spawn(|| {
                let tid = u32::try_from(libc::syscall(libc::SYS_gettid)).unwrap_or(0);
                let gc = libc::fork();
                if gc == 0 {
                    libc::_exit(5);
                }
                let mut status = 0;
                libc::waitpid(gc, &raw mut status, 0);
                #[expect(clippy::cast_sign_loss, reason = "fork succeeded")]
                let grandchild = gc as u32;
                Report { tid, grandchild }
            })
            .join();
            let Ok(r) = joined else { libc::_exit(251) };
            let bytes = [r.tid.to_ne_bytes(), r.grandchild.to_ne_bytes()].concat();
            libc::write(report[1], bytes.as_ptr().cast(), bytes.len());
            // Stay alive until the parent has read our start time.
            let mut b = 0u8;
            libc::close(hold[1]);
            libc::read(hold[0], (&raw mut b).cast(), 1);
            libc::_exit(3);
        }
    }
    #[expect(clippy::cast_sign_loss, reason = "fork succeeded")]
    let child_pid = child as u32;
    // SAFETY: closing our copies of the child's ends.
    unsafe {
        libc::close(report[1]);
        libc::close(hold[0]);
    }
    let mut buf = [0u8; 8];
    // SAFETY: reading into a local buffer of the given size.
    let n = unsafe { libc::read(report[0], buf.as_mut_ptr().cast(), buf.len()) };
    let started = proc_starttime(child_pid);
    // SAFETY: closing our ends releases the child.
    unsafe {
        libc::close(report[0]);
        libc::close(hold[1]);
    }
    let mut status = 0;
    // SAFETY: waiting for our own child with a valid out-pointer.
    let waited = unsafe { libc::waitpid(child, &raw mut status, 0) };
    ensure!(
        waited == child,
        "waitpid: {}",
        std::io::Error::last_os_error()
    );
    ensure!(
        n == 8 && libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 3,
        "the threaded child failed (read {n} bytes, status {status:#x})"
    );
    let started = started?;
    let tid = u32::from_ne_bytes(buf[..4].try_into()?);
    let grandchild = u32::from_ne_bytes(buf[4..].try_into()?);
    ensure!(tid != child_pid, "the thread reported the leader's id");
    let events = l.events()?;

    let from_child: Vec<_> = forks(&events)
        .into_iter()
        .filter(|f| f.header.tgid == child_pid)
        .collect();
    let [f] = from_child.as_slice() else {
        bail!(
            "expected exactly one fork record of {child_pid} (the grandchild {grandchild}; \
             the thread {tid} is not a process), got {}",
            render_all(&events)
        );
    };
    ensure!(
        f.child_tgid == grandchild && f.header.pid == tid,
        "fork record {f:?}: expected child {grandchild} created by thread {tid}"
    );
    ensure!(
        f.header.start_ticks() == Some(started),
        "a thread's record carries start {:?} ticks, its process started at {started}",
        f.header.start_ticks()
    );
    ensure!(
        exit_of(&events, grandchild)?.exit_code == 5 << 8,
        "grandchild exit {:?}",
        exit_of(&events, grandchild)?
    );
    ensure!(
        exit_of(&events, child_pid)?.exit_code == 3 << 8,
        "child exit {:?}",
        exit_of(&events, child_pid)?
    );
    ensure!(
        !exits(&events).iter().any(|x| x.header.pid == tid),
        "the thread's exit was recorded as a process exit: {}",
        render_all(&events)
    );
    Ok(())
}

fn process_start_ns_matches_procfs() -> anyhow::Result<()> {
    let mut l = Lineage::new("start")?;
    let dir = Scratch::new("start")?;
    let script = format!(
        "/bin/sleep 30 & echo $! > {}/bg; wait $!",
        dir.path.display()
    );
    let mut shell = l.governed.command("/bin/sh", &["-c", &script])?.spawn()?;
    let sh = shell.id();
    let result = (|| -> anyhow::Result<(u32, u64, u64)> {
        let bg = pid_in(&dir.join("bg"))?;
        // `$!` is known right after fork; wait for the exec so the kill
        // below cannot come first.
        let deadline = Instant::now() + Duration::from_secs(10);
        while fs::read_to_string(format!("/proc/{bg}/comm"))?.trim_end() != "sleep" {
            ensure!(Instant::now() < deadline, "{bg} never became sleep");
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok((bg, proc_starttime(sh)?, proc_starttime(bg)?))
    })();
    if let Ok((bg, ..)) = &result {
        // SAFETY: signalling the test's own grandchild.
        unsafe { libc::kill(i32::try_from(*bg)?, libc::SIGTERM) };
    } else {
        let _ = shell.kill();
    }
    let status = shell.wait()?;
    let (bg, sh_start, bg_start) = result?;
    ensure!(
        status.code() == Some(128 + libc::SIGTERM),
        "shell ended {status}"
    );
    let events = l.events()?;

    let fork = forks(&events)
        .into_iter()
        .find(|f| f.header.tgid == sh && f.child_tgid == bg)
        .with_context(|| format!("no fork record {sh} -> {bg}: {}", render_all(&events)))?;
    ensure!(
        fork.header.start_ticks() == Some(sh_start),
        "parent: header.start_ns {} ns / 10^7 != /proc/{sh}/stat starttime {sh_start}",
        fork.header.start_ns
    );
    ensure!(
        start_ticks(fork.child_start_ns) == Some(bg_start),
        "child: child_start_ns {} ns / 10^7 != /proc/{bg}/stat starttime {bg_start}",
        fork.child_start_ns
    );
    // The same process keeps its start time across exec.
    let exec = execs(&events)
        .into_iter()
        .find(|e| e.header.tgid == bg)
        .context("no exec record of the sleeper")?;
    ensure!(
        exec.header.start_ns == fork.child_start_ns,
        "exec record start {} != fork record child start {}",
        exec.header.start_ns,
        fork.child_start_ns
    );
    let killed = exit_of(&events, bg)?;
    ensure!(
        killed.signal() == Some(u8::try_from(libc::SIGTERM)?) && killed.exit_code == 15,
        "sleeper exit record {killed:?}"
    );
    ensure!(
        exit_of(&events, sh)?.exited() == Some(143),
        "shell exit record {:?}",
        exit_of(&events, sh)?
    );
    Ok(())
}

/// A consumer that reads without committing, then dies, loses nothing: a
/// new one on the same pinned ring sees the same records; once committed
/// they are gone, for this consumer and the next.
fn process_records_survive_consumer_restart() -> anyhow::Result<()> {
    let dir = PathBuf::from(format!(
        "/sys/fs/bpf/acelogic-test-{}-ring",
        std::process::id()
    ));
    let result = survive(&dir);
    let _ = kernel::uninstall(&dir);
    result
}

/// Loads with pinned state at `dir` and attaches (or adopts) the lineage
/// programs, as a restarted daemon would.
fn pinned(dir: &Path) -> anyhow::Result<(Kernel, Records)> {
    let mut kernel = Kernel::load_with(&LoadOptions {
        pin_dir: Some(dir.to_path_buf()),
        ..LoadOptions::default()
    })?;
    for spec in &compat::LINEAGE {
        kernel.attach(spec)?;
    }
    let records = kernel.records()?;
    Ok((kernel, records))
}

fn survive(dir: &Path) -> anyhow::Result<()> {
    let cg = TestCgroup::new("ring")?;
    let (mut kernel, mut records) = pinned(dir)?;
    kernel.define_scope(SCOPE, Mode::Enforce)?;
    kernel.govern(&cg.path, SCOPE)?;
    drop(records.drain());
    let ring_id = records.ring_id();
    let before = records.consumer_pos();

    for code in [3, 4] {
        let child = cg
            .command("/bin/sh", &["-c", &format!("exit {code}")])?
            .spawn()?;
        ensure!(exit_code(child)? == code, "governed sh did not run");
    }
    // Each run: one exec and one exit record.
    let deadline = Instant::now() + Duration::from_secs(10);
    let first = loop {
        let batch = records.peek(64);
        if batch.len() >= 4 || Instant::now() > deadline {
            break batch;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    ensure!(
        first.len() == 4,
        "expected 4 records (exec and exit, twice), peeked {}",
        first.len()
    );
    let decoded = first
        .records()
        .iter()
        .map(|r| r.decode())
        .collect::<Result<Vec<_>, _>>()?;
    let codes: Vec<u32> = exits(&decoded).iter().map(|x| x.exit_code).collect();
    ensure!(
        codes == [3 << 8, 4 << 8],
        "exit records {}",
        render_all(&decoded)
    );
    ensure!(
        records.consumer_pos() == before && first.start() == before,
        "peek moved the consumer position"
    );
    ensure!(
        records.peek(64) == first,
        "a second peek saw something else"
    );

    // The consumer dies without committing; a new one adopts the ring.
    drop(records);
    drop(kernel);
    let (kernel, mut records) = pinned(dir)?;
    ensure!(
        records.ring_id() == ring_id,
        "restart got ring {} instead of the pinned {ring_id}",
        records.ring_id()
    );
    ensure!(
        records.consumer_pos() == before,
        "consumer position {} after restart, expected {before}",
        records.consumer_pos()
    );
    let again = records.peek(64);
    ensure!(
        again == first,
        "after restart the uncommitted records differ: {} records",
        again.len()
    );

    // Commit the first run's two records only.
    let half = first.records()[1].pos();
    ensure!(
        records.commit(half + 8).is_err(),
        "a position inside a record was accepted"
    );
    ensure!(records.consumer_pos() == before, "a refused commit moved");
    records.commit(half)?;
    ensure!(records.consumer_pos() == half, "commit did not store");
    drop(records);
    drop(kernel);
    let (kernel, mut records) = pinned(dir)?;
    let rest = records.peek(64);
    ensure!(
        rest.records() == &first.records()[2..],
        "after committing two records, a restarted consumer sees {} records",
        rest.len()
    );

    records.commit(rest.end())?;
    drop(records);
    drop(kernel);
    let (_kernel, records) = pinned(dir)?;
    let after = records.peek(64);
    ensure!(
        after.is_empty() && records.consumer_pos() == first.end(),
        "committed records came back: {} records from {}",
        after.len(),
        after.start()
    );
    Ok(())
}

/// Rounds of the daemon-kill case, one kill each. The defect it guards
/// against struck about one run in three (a run: 1,000 execs, one kill).
/// Whether a run strikes depends on where the kill cuts the stream of
/// records (inside one child's fork, exec decision, exec and exit), not
/// on how many execs follow, so what counts is kills. Half the rounds cut
/// where a daemon trusting procfs mis-links ([`Restart::AfterPidReuse`]):
/// such a build fails the first of them. The other half cut wherever the
/// loop is, as in the field. Each round is a kill during a loop at least
/// as likely to strike as the field's, so a one-in-three event escapes
/// all 10 with probability (2/3)^10 < 2%.
const ROUNDS: usize = 10;
/// Execs per round (the kill comes after 200 to 400). The daemon is dead
/// for at most 400 of them: their records (about 3 KiB per fork, exec
/// decision, exec and exit) must fit in the 4 MiB ring buffer, or the
/// kernel would deny the execs. 600 keeps the case near a minute in a
/// TCG guest (4.5-6.6 s a round measured on 6.1; rounds of 700 took
/// 6-13 s on 6.12 on a busy host).
const EXECS: usize = 600;

/// Where the kill cuts the stream of records, and when the killed daemon
/// is started again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Restart {
    /// Killed wherever the loop is (so between any two records), started
    /// again at once while the loop runs on: the records the first daemon
    /// left are read while the loop shell is alive.
    AtOnce,
    /// Killed right after it journaled a child's fork record, while the
    /// child waits before its exec; started again once the loop shell has
    /// exited and its pid has been given to another process. The new
    /// daemon meets the child's exec decision and exec knowing nothing of
    /// its fork, and procfs then says about the shell's pid is about a
    /// stranger: the cut and the state a daemon trusting procfs
    /// mis-links the child in.
    AfterPidReuse,
}

fn exec_loop_policy(cg: &TestCgroup) -> String {
    format!(
        "apiVersion: acelogic.dev/v1
kind: CapabilityPolicy
metadata:
  name: exec-parents
spec:
  workloads:
    - name: exec-loop-{pid}
      cgroups: [/{rel}]
  baseline:
    exec: [/bin/busybox]
    libraries: [/lib/**, /lib64/**, /usr/lib/**]
",
        rel = cg.name(),
        pid = std::process::id()
    )
}

/// `EXECS` runs of `/bin/true`, printing the count every 50 (builtins
/// only, so each iteration is one fork and one exec), then how many
/// failed. Run `pause` (counting from 1; 0: none) prints `paused` after
/// its fork and waits for a line on stdin before its exec.
fn exec_loop_script(pause: usize) -> String {
    format!(
        "i=0; f=0; while [ $i -lt {EXECS} ]; do i=$((i+1)); \
         if [ $i -eq {pause} ]; then ( echo paused; read go; exec /bin/true ) || f=$((f+1)); \
         else /bin/true || f=$((f+1)); fi; \
         [ $((i % 50)) -ne 0 ] || echo $i; done; echo failed $f; [ $f -eq 0 ]"
    )
}

/// Gives pid `pid` (free again) to a new, ungoverned process.
fn take_pid(pid: u32) -> anyhow::Result<std::process::Child> {
    for _ in 0..20 {
        // The kernel hands out `ns_last_pid + 1` next, unless something
        // else forks first (a kernel worker): then try again.
        fs::write("/proc/sys/kernel/ns_last_pid", format!("{}", pid - 1))
            .context("writing /proc/sys/kernel/ns_last_pid")?;
        let mut child = std::process::Command::new("/bin/sleep")
            .arg("120")
            .spawn()?;
        if child.id() == pid {
            return Ok(child);
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    bail!("could not get pid {pid} handed out again")
}

/// The process a lineage record is about.
fn process_of(r: &pb::Record) -> Option<&pb::Process> {
    match r.body.as_ref()? {
        Body::Decision(d) => d.process.as_ref(),
        Body::Exec(x) => x.process.as_ref(),
        Body::Fork(f) => f.process.as_ref(),
        Body::Exit(x) => x.process.as_ref(),
        _ => None,
    }
}

/// The journal's entries after `seq`, decoded (the chain is checked once
/// at the end).
fn journal_after(d: &Daemon, seq: u64) -> anyhow::Result<Vec<pb::Record>> {
    let j = Journal::open(&d.journal_path(), "vm", u64::MAX)?;
    j.read_after(seq, usize::MAX, usize::MAX)?
        .iter()
        .map(|e| pb::Record::decode(e.record.as_slice()).context("decoding a record"))
        .collect()
}

/// What one round found.
#[derive(Debug, Default)]
struct Round {
    /// Records of the shell's children that named no parent (decisions
    /// and exits a restarted daemon could not link, honestly).
    unlinked: usize,
    /// Execs of `/bin/true` journaled.
    execs: usize,
    /// Lifecycle records the kernel counted as lost during the round.
    lost: u64,
    /// Of those, skipped by a recorder's recursion guard.
    missed: u64,
    secs: f64,
}

fn exec_parents_round(
    d: &mut Daemon,
    cg: &TestCgroup,
    boot: &[u8; 16],
    restart: Restart,
    kill_at: usize,
) -> anyhow::Result<Round> {
    use std::io::{BufRead as _, Write as _};
    let t0 = Instant::now();
    let base = Journal::open(&d.journal_path(), "vm", u64::MAX)?.head().0;
    let before = super::journal::counters()?;
    let pause = if restart == Restart::AfterPidReuse {
        kill_at
    } else {
        0
    };
    let mut sh = cg
        .command("/bin/sh", &["-c", &exec_loop_script(pause)])?
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()?;
    let sh_pid = sh.id();
    // The shell's identity, from procfs while it runs: computed here
    // independently of the daemon.
    let st = proc_stat(Path::new("/proc"), sh_pid).context("the loop shell's stat")?;
    let sh_id = chain::exec_id(boot, st.start_ticks, sh_pid);
    let mut go = sh.stdin.take().context("stdin")?;
    let mut lines = std::io::BufReader::new(sh.stdout.take().context("stdout")?).lines();
    let mut last = String::new();
    // Mid-loop (200 to 400 execs in, by round): kill the daemon.
    loop {
        let line = lines.next().context("the loop ended early")??;
        if restart == Restart::AtOnce && line.parse::<usize>().is_ok_and(|n| n >= kill_at) {
            break;
        }
        if line == "paused" {
            // Everything up to the paused child's fork is journaled (the
            // loop stands still meanwhile): the kill cuts right there.
            let deadline = Instant::now() + Duration::from_secs(30);
            loop {
                let forks = journal_after(d, base)?
                    .iter()
                    .filter(|r| matches!(&r.body, Some(Body::Fork(_))))
                    .filter(|r| process_of(r).is_some_and(|p| p.ppid == sh_pid))
                    .count();
                if forks >= kill_at {
                    break;
                }
                ensure!(
                    Instant::now() < deadline,
                    "{forks} of {kill_at} fork records journaled in 30 s"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
            break;
        }
    }
    d.signal(libc::SIGKILL)?;
    match restart {
        Restart::AtOnce => d.start()?,
        // The paused child goes on to its exec.
        Restart::AfterPidReuse => go.write_all(b"go\n")?,
    }
    for line in lines {
        last = line?;
    }
    let status = sh.wait()?;
    drop(go);
    ensure!(
        status.success() && last == "failed 0",
        "the loop shell ended {status} ({last:?}): governed execs failed"
    );
    let stranger = if restart == Restart::AfterPidReuse {
        let s = take_pid(sh_pid)?;
        d.start()?;
        Some(s)
    } else {
        None
    };
    let result = (|| {
        // Everything journaled: every child's exec and exit.
        // Everything journaled: every child's exec and exit, or, for a
        // lifecycle record the kernel could not reserve, its loss (counted
        // by the kernel and journaled as a `Loss` record).
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let records = journal_after(d, base)?;
            let now = super::journal::counters()?;
            let lost = now.lineage_unrecorded() - before.lineage_unrecorded();
            let tally = Tally::of(&records, cg, sh_pid);
            // The children's exits and the shell's.
            if tally.exits + lost > EXECS as u64 && tally.lost_journaled >= lost {
                return check_exec_parents(&records, cg, &sh_id, sh_pid, lost);
            }
            ensure!(
                Instant::now() < deadline,
                "the round's records were not journaled in 60 s ({tally:?}, the kernel counted \
                 {lost} lifecycle records lost):\n{}",
                d.log_tail()
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    })();
    if let Some(mut s) = stranger {
        let _ = s.kill();
        let _ = s.wait();
    }
    let mut round = result?;
    round.secs = t0.elapsed().as_secs_f64();
    round.missed = super::journal::counters()?.lineage_missed - before.lineage_missed;
    Ok(round)
}

/// How many of a round's lifecycle records the journal holds.
#[derive(Debug, Default)]
struct Tally {
    /// Exits in the loop's cgroup (the children's and the shell's).
    exits: u64,
    /// Fork records of the shell's children.
    forks: u64,
    /// Lifecycle records the kernel could not reserve, as the journal's
    /// `Loss` records tell.
    lost_journaled: u64,
}

impl Tally {
    fn of(records: &[pb::Record], cg: &TestCgroup, sh_pid: u32) -> Self {
        let mut t = Self::default();
        for r in records {
            match &r.body {
                Some(Body::Exit(_)) if process_of(r).is_some_and(|p| p.cgroup_id == cg.id) => {
                    t.exits += 1;
                }
                Some(Body::Fork(_)) if process_of(r).is_some_and(|p| p.ppid == sh_pid) => {
                    t.forks += 1;
                }
                Some(Body::Loss(l)) if l.what == "kernel-lineage" => t.lost_journaled += l.count,
                _ => {}
            }
        }
        t
    }
}

/// Every `/bin/true` exec of the round is journaled once, under the loop
/// shell; no record of those processes names another parent. `lost`
/// lifecycle records the kernel counted as lost (no ring space; from 6.15
/// on, a reservation that gave up on the ring's contended lock; from 7.0
/// on, a recorder skipped because it was preempted mid-run on that CPU)
/// may be missing, and no more.
fn check_exec_parents(
    records: &[pb::Record],
    cg: &TestCgroup,
    sh_id: &str,
    sh_pid: u32,
    lost: u64,
) -> anyhow::Result<Round> {
    let mut children = BTreeSet::new();
    for r in records {
        if let Some(Body::Exec(x)) = &r.body
            && x.filename == "/bin/true"
            && let Some(p) = &x.process
            && p.cgroup_id == cg.id
        {
            ensure!(
                p.parent_exec_id == sh_id && p.ppid == sh_pid,
                "exec of /bin/true by pid {} (exec id {}) names parent {:?} (pid {}), not the \
                 loop shell {sh_id} (pid {sh_pid})",
                p.pid,
                p.exec_id,
                p.parent_exec_id,
                p.ppid
            );
            ensure!(
                children.insert(p.exec_id.clone()),
                "exec {} journaled twice",
                p.exec_id
            );
        }
    }
    let tally = Tally::of(records, cg, sh_pid);
    let missing = |have: u64, want: usize| (want as u64).saturating_sub(have);
    let gaps = missing(children.len() as u64, EXECS)
        + missing(tally.forks, EXECS)
        + missing(tally.exits, EXECS + 1);
    ensure!(
        tally.forks <= EXECS as u64 && tally.exits <= EXECS as u64 + 1,
        "more lifecycle records than processes: {tally:?}"
    );
    if gaps > lost {
        // Which children lack an exec: their forks name them.
        let forked: Vec<u32> = records
            .iter()
            .filter(|r| matches!(r.body, Some(Body::Fork(_))))
            .filter_map(process_of)
            .filter(|p| p.ppid == sh_pid && !children.contains(&p.exec_id))
            .map(|p| p.pid)
            .collect();
        bail!(
            "{} of {EXECS} execs of /bin/true are in the journal ({tally:?}; {gaps} lifecycle \
             records missing, {lost} counted lost by the kernel); forked without an exec: \
             {forked:?}",
            children.len()
        );
    }
    let mut unlinked = 0;
    for r in records {
        let Some(p) = process_of(r).filter(|p| children.contains(&p.exec_id)) else {
            continue;
        };
        if p.parent_exec_id.is_empty() {
            unlinked += 1;
            continue;
        }
        ensure!(
            p.parent_exec_id == sh_id,
            "a record of pid {} ({}) names parent {:?}, not the loop shell {sh_id}: {r:?}",
            p.pid,
            p.exec_id,
            p.parent_exec_id
        );
    }
    Ok(Round {
        unlinked,
        execs: children.len(),
        lost,
        missed: 0,
        secs: 0.0,
    })
}

/// The daemon is SIGKILLed in the middle of a loop of governed execs,
/// round after round; every exec is journaled under its true parent,
/// whichever daemon read it and whatever its parent's pid names by then.
fn exec_parents_exact_across_daemon_kills() -> anyhow::Result<()> {
    let cg = TestCgroup::new("exec-parents")?;
    let mut d = Daemon::prepare("exec-parents", &exec_loop_policy(&cg))?;
    d.start()?;
    let boot = chain::boot_id()?;
    let mut rounds = Vec::new();
    for i in 0..ROUNDS {
        let restart = if i % 2 == 0 {
            Restart::AtOnce
        } else {
            Restart::AfterPidReuse
        };
        let kill_at = 200 + 50 * (i % 5);
        let round = exec_parents_round(&mut d, &cg, &boot, restart, kill_at)
            .with_context(|| format!("round {} of {ROUNDS} (restart {restart:?})", i + 1))?;
        // Shown when the case fails.
        println!(
            "    round {}: {restart:?} at exec {kill_at}, {:.1} s, {} records unlinked, {} lost \
             ({} of them skipped by a recorder's recursion guard)",
            i + 1,
            round.secs,
            round.unlinked,
            round.lost,
            round.missed
        );
        rounds.push(round);
    }
    d.stop()?;
    // Every restarted daemon adopted the recorders and read their counts
    // after dropping its privileges (a read that fails is logged, and the
    // misses it would have counted are journaled late).
    let log = d.log_text();
    ensure!(
        !log.contains("opening an adopted program")
            && !log.contains("the recorders' recursion misses")
            && log.contains("lineage_missed="),
        "a daemon could not read the recorders' recursion misses:\n{}",
        d.log_tail()
    );
    // The chain holds across every kill.
    let all = super::journal::journal(&d)?;
    let starts = all
        .iter()
        .filter(|r| matches!(&r.body, Some(Body::Lifecycle(l)) if l.event == "daemon-start"))
        .count();
    ensure!(
        starts == ROUNDS + 1,
        "{starts} daemon starts journaled, expected {}",
        ROUNDS + 1
    );
    let unlinked: usize = rounds.iter().map(|r| r.unlinked).sum();
    let lost: u64 = rounds.iter().map(|r| r.lost).sum();
    let execs: usize = rounds.iter().map(|r| r.execs).sum();
    let secs: Vec<String> = rounds.iter().map(|r| format!("{:.1}", r.secs)).collect();
    println!(
        "    {ROUNDS} rounds of {EXECS} execs, the daemon SIGKILLed mid-loop in each (half \
         anywhere and restarted at once, half after a child's fork and restarted once the \
         shell's pid went to another process): {execs} of {} execs journaled under their shell, {lost} \
         lifecycle records counted lost by the kernel, no record mis-linked, {unlinked} \
         decision/exit records left unlinked; seconds per round {}",
        ROUNDS * EXECS,
        secs.join(" ")
    );
    Ok(())
}
