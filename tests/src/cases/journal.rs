//! The node journal under stress, with the real daemon: every governed
//! action is either journaled or was denied, and the counters say which,
//! across a daemon killed mid-stream, a daemon that stops reading, and a
//! journal at its cap.
//!
//! The workload is one governed process making many TCP connects to a
//! closed port its baseline allows: an allowed connect fails with
//! ECONNREFUSED, one denied for want of a record with EPERM. One hook per
//! action and no forks keeps the arithmetic exact.

use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use acelogic_kernel::{Counters, Kernel, LoadOptions};
use acelogic_lineage::{
    journal::Journal,
    pb::{self, record::Body},
};
use anyhow::{Context as _, bail, ensure};
use prost::Message as _;

use crate::{
    daemon::Daemon,
    fixtures::{TestCgroup, reap, spawn_in_cgroup},
    harness::{Case, Need, SHARED_PIN_DIR},
};

pub(crate) const CASES: &[Case] = &[
    Case {
        name: "journal_daemon_killed_mid_stream_loses_nothing",
        needs: &[Need::BpfLsm],
        run: daemon_killed_mid_stream_loses_nothing,
    },
    Case {
        name: "journal_flood_every_action_recorded_or_denied",
        needs: &[Need::BpfLsm],
        run: flood_every_action_recorded_or_denied,
    },
    Case {
        name: "journal_full_denies_then_catches_up",
        needs: &[Need::BpfLsm],
        run: journal_full_denies_then_catches_up,
    },
];

/// Nothing listens here in the VM: an allowed connect is refused.
pub(crate) const PORT: u16 = 9;

pub(crate) fn policy(cg: &TestCgroup) -> String {
    let rel = cg.name();
    format!(
        "apiVersion: acelogic.dev/v1
kind: CapabilityPolicy
metadata:
  name: journal-test
spec:
  workloads:
    - name: flood-{pid}
      cgroups: [/{rel}]
  baseline:
    connect:
      - {{host: 127.0.0.1, ports: \"{PORT}\", protocol: tcp}}
",
        pid = std::process::id()
    )
}

/// Outcomes of the connects one flood made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Flood {
    pub(crate) refused: u32,
    pub(crate) eperm: u32,
    pub(crate) other: u32,
}

/// Set by SIGUSR1 in a flooding child: stop early and report.
static STOP: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

extern "C" fn on_stop(_: libc::c_int) {
    STOP.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// A child in `cg` making `n` connects (fewer if interrupted); it reports
/// through a pipe.
pub(crate) struct Flooder {
    pid: libc::pid_t,
    read_fd: libc::c_int,
}

impl Flooder {
    pub(crate) fn start(cg: &TestCgroup, n: u32) -> anyhow::Result<Self> {
        let mut fds = [0; 2];
        // SAFETY: valid out-array of two fds.
        let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
        ensure!(rc == 0, "pipe2");
        let family = libc::sa_family_t::try_from(libc::AF_INET)?;
        let addr_len = libc::socklen_t::try_from(size_of::<libc::sockaddr_in>())?;
        let pid = spawn_in_cgroup(cg, || {
            let mut out = [0u32; 3];
            let addr = libc::sockaddr_in {
                sin_family: family,
                sin_port: PORT.to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_be_bytes([127, 0, 0, 1]).to_be(),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: raw calls on memory the child owns; the handler only
            // stores to an atomic.
            unsafe {
                libc::signal(
                    libc::SIGUSR1,
                    on_stop as extern "C" fn(libc::c_int) as *const () as libc::sighandler_t,
                );
                for _ in 0..n {
                    if STOP.load(std::sync::atomic::Ordering::Relaxed) {
                        break;
                    }
                    let s = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
                    if s < 0 {
                        return 251;
                    }
                    let rc = libc::connect(s, (&raw const addr).cast(), addr_len);
                    let errno = if rc == 0 {
                        0
                    } else {
                        *libc::__errno_location()
                    };
                    match errno {
                        libc::ECONNREFUSED => out[0] += 1,
                        libc::EPERM => out[1] += 1,
                        _ => out[2] += 1,
                    }
                    libc::close(s);
                }
                let len = size_of::<[u32; 3]>();
                if libc::write(fds[1], out.as_ptr().cast(), len) != len as isize {
                    return 252;
                }
            }
            0
        })?;
        // SAFETY: closing our copy of the write end.
        unsafe { libc::close(fds[1]) };
        Ok(Self {
            pid,
            read_fd: fds[0],
        })
    }

    /// Asks the child to stop after its current connect.
    pub(crate) fn interrupt(&self) {
        // SAFETY: a signal to our own child.
        unsafe { libc::kill(self.pid, libc::SIGUSR1) };
    }

    pub(crate) fn wait(mut self, cg: &TestCgroup) -> anyhow::Result<Flood> {
        let pid = std::mem::replace(&mut self.pid, 0);
        let code = reap(pid, cg)?;
        ensure!(code == 0, "the flooding child failed: exit {code}");
        let mut out = [0u32; 3];
        let len = size_of::<[u32; 3]>();
        // SAFETY: reading into a buffer of `len` bytes we own.
        let n = unsafe { libc::read(self.read_fd, out.as_mut_ptr().cast(), len) };
        // SAFETY: closing our fd.
        unsafe { libc::close(self.read_fd) };
        ensure!(n == len as isize, "short report from the flooding child");
        Ok(Flood {
            refused: out[0],
            eperm: out[1],
            other: out[2],
        })
    }
}

/// A case that failed before waiting stops its flood: it would run on
/// for minutes after the case ended.
impl Drop for Flooder {
    fn drop(&mut self) {
        if self.pid > 0 {
            // SAFETY: killing and reaping our own child.
            unsafe {
                libc::kill(self.pid, libc::SIGKILL);
                libc::waitpid(self.pid, std::ptr::null_mut(), 0);
            }
        }
    }
}

/// The shared install's kernel counters, summed over CPUs.
pub(crate) fn counters() -> anyhow::Result<Counters> {
    let pin = std::env::var(SHARED_PIN_DIR).context("no shared pin dir")?;
    let kernel = Kernel::load_with(&LoadOptions {
        pin_dir: Some(pin.into()),
        ..LoadOptions::default()
    })?;
    Ok(kernel.counters()?)
}

/// Enough connects to overrun the shared ring buffer with nobody reading:
/// twice what it holds of connect records (a record is 8 bytes of ring
/// header and the event, rounded to 8).
fn overrun() -> anyhow::Result<u32> {
    let pin = std::env::var(SHARED_PIN_DIR).context("no shared pin dir")?;
    let mut kernel = Kernel::load_with(&LoadOptions {
        pin_dir: Some(pin.into()),
        ..LoadOptions::default()
    })?;
    let ring = kernel.records()?.ring_bytes();
    let record = (size_of::<acelogic_common::event::NetDecision>() as u64 + 8).next_multiple_of(8);
    Ok(u32::try_from(2 * ring / record)?)
}

/// Every record of the daemon's journal, after checking its chain.
pub(crate) fn journal(d: &Daemon) -> anyhow::Result<Vec<pb::Record>> {
    let j = Journal::open(&d.journal_path(), "vm", u64::MAX)?;
    j.verify().context("the journal's chain")?;
    ensure!(j.acked() == 0, "nothing acknowledged without a collector");
    let entries = j.read_after(0, usize::MAX, usize::MAX)?;
    ensure!(
        entries.first().map(|e| e.seq) == Some(1),
        "the journal starts at seq 1"
    );
    entries
        .iter()
        .map(|e| pb::Record::decode(e.record.as_slice()).context("decoding a record"))
        .collect()
}

/// Allowed connects to our port, by kernel time (unique per connect of one
/// thread): duplicates would collapse.
pub(crate) fn allowed_connects(records: &[pb::Record]) -> anyhow::Result<usize> {
    let mut times = HashSet::new();
    let mut n = 0;
    for r in records {
        if let Some(Body::Decision(d)) = &r.body
            && d.hook == "connect"
            && d.object == format!("127.0.0.1:{PORT}/tcp")
        {
            ensure!(
                d.verdict == "allow" && d.reason == "baseline",
                "unexpected decision {d:?}"
            );
            ensure!(
                d.process
                    .as_ref()
                    .is_some_and(|p| p.workload.starts_with("flood-")),
                "decision without its workload: {d:?}"
            );
            times.insert(r.time_unix_nano);
            n += 1;
        }
    }
    ensure!(times.len() == n, "{} duplicate record(s)", n - times.len());
    Ok(n)
}

fn losses(records: &[pb::Record], what: &str) -> u64 {
    records
        .iter()
        .filter_map(|r| match &r.body {
            Some(Body::Loss(l)) if l.what == what => Some(l.count),
            _ => None,
        })
        .sum()
}

fn lifecycle(records: &[pb::Record]) -> Vec<(String, u64)> {
    records
        .iter()
        .filter_map(|r| match &r.body {
            Some(Body::Lifecycle(l)) => Some((l.event.clone(), r.epoch)),
            _ => None,
        })
        .collect()
}

/// The flood's arithmetic: each allowed connect is in the journal exactly
/// once, each denied one is counted by the kernel and reported as a loss.
fn check_accounting(
    flood: Flood,
    before: Counters,
    after: Counters,
    records: &[pb::Record],
) -> anyhow::Result<()> {
    ensure!(flood.other == 0, "unexpected connect errors: {flood:?}");
    let journaled = allowed_connects(records)?;
    ensure!(
        journaled == flood.refused as usize,
        "{} connects were allowed but {journaled} are journaled ({flood:?})",
        flood.refused
    );
    let unavailable = after.record_unavailable - before.record_unavailable;
    ensure!(
        unavailable == u64::from(flood.eperm),
        "{} connects were denied but the kernel counted {unavailable} unrecordable decisions",
        flood.eperm
    );
    let reported = losses(records, "record-unavailable");
    ensure!(
        reported == after.record_unavailable,
        "loss records report {reported} unrecordable decisions, the kernel counted {}",
        after.record_unavailable
    );
    Ok(())
}

fn wait_journaled(d: &Daemon, want: usize) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let n = allowed_connects(&journal(d)?)?;
        if n >= want {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "{n} of {want} records journaled after 90 s:\n{}",
                d.log_tail()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn daemon_killed_mid_stream_loses_nothing() -> anyhow::Result<()> {
    let cg = TestCgroup::new("journal-kill")?;
    let mut d = Daemon::prepare("journal-kill", &policy(&cg))?;
    d.start()?;
    let before = counters()?;
    let flooder = Flooder::start(&cg, 40_000)?;
    std::thread::sleep(Duration::from_millis(150));
    d.signal(libc::SIGKILL)?;
    std::thread::sleep(Duration::from_millis(300));
    d.start()?;
    let flood = flooder.wait(&cg)?;
    wait_journaled(&d, flood.refused as usize)?;
    d.stop()?;
    let after = counters()?;
    let records = journal(&d)?;
    check_accounting(flood, before, after, &records)?;
    let life = lifecycle(&records);
    let starts: Vec<u64> = life
        .iter()
        .filter(|(e, _)| e == "daemon-start")
        .map(|(_, epoch)| *epoch)
        .collect();
    ensure!(
        starts.len() == 2 && starts[1] == starts[0] + 1,
        "expected two starts with consecutive epochs: {life:?}"
    );
    ensure!(
        life.iter().filter(|(e, _)| e == "daemon-stop").count() == 1,
        "the killed daemon wrote no stop record, the stopped one did: {life:?}"
    );
    println!(
        "    {} connects allowed and journaled across a SIGKILL, {} denied unrecordable",
        flood.refused, flood.eperm
    );
    Ok(())
}

fn flood_every_action_recorded_or_denied() -> anyhow::Result<()> {
    let cg = TestCgroup::new("journal-flood")?;
    let mut d = Daemon::prepare("journal-flood", &policy(&cg))?;
    d.start()?;
    // The daemon stops reading: the ring buffer fills up.
    let n = overrun()?;
    d.signal(libc::SIGSTOP)?;
    let before = counters()?;
    let flood = Flooder::start(&cg, n)?.wait(&cg)?;
    ensure!(
        flood.eperm > 0 && flood.refused > 0,
        "the flood should overrun the ring buffer: {flood:?}"
    );
    d.signal(libc::SIGCONT)?;
    wait_journaled(&d, flood.refused as usize)?;
    d.stop()?;
    let after = counters()?;
    check_accounting(flood, before, after, &journal(&d)?)?;
    println!(
        "    ring full: {} connects journaled, {} denied and counted",
        flood.refused, flood.eperm
    );
    Ok(())
}

fn journal_full_denies_then_catches_up() -> anyhow::Result<()> {
    let cg = TestCgroup::new("journal-cap")?;
    let mut d = Daemon::prepare("journal-cap", &policy(&cg))?;
    // Room for a few hundred records; no collector acknowledges any.
    d.args = vec!["--journal-cap".into(), "65536".into()];
    d.start()?;
    let n = overrun()?;
    let before = counters()?;
    let flood = Flooder::start(&cg, n)?.wait(&cg)?;
    ensure!(
        flood.eperm > 0,
        "a full journal should end in denials: {flood:?}"
    );
    d.eventually("the daemon reports the full journal", || {
        Ok(d.log_text().contains("journal full"))
    })?;
    let held = allowed_connects(&journal(&d)?)?;
    ensure!(
        held < flood.refused as usize,
        "the capped journal holds {held}, not all {} (the rest wait in the ring buffer)",
        flood.refused
    );
    // Raise the cap: what waited in the pinned ring buffer is journaled.
    d.stop()?;
    d.args.clear();
    d.start()?;
    wait_journaled(&d, flood.refused as usize)?;
    d.stop()?;
    let after = counters()?;
    check_accounting(flood, before, after, &journal(&d)?)?;
    println!(
        "    cap reached after {held} records: {} denied; the other {} waited in the ring \
         and were journaled after the restart",
        flood.eperm,
        flood.refused as usize - held
    );
    Ok(())
}
