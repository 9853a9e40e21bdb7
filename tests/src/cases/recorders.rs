//! The lineage recorders run for every exec and exit, whatever else the
//! CPU is doing in the kernel.
//!
//! A classic tracepoint's program is skipped whenever the CPU's
//! `bpf_prog_active` is held, and a BPF map syscall holds it with only
//! migration disabled. On a preemptible kernel a thread preempted inside
//! such a syscall leaves every classic tracepoint program on that CPU
//! skipped until it runs again: exec and exit records went missing,
//! counted nowhere. The recorders are BTF tracepoints, guarded per
//! program; this case makes the window wide and keeps it open. The guard
//! of a BTF tracepoint skips its program only while the same program is
//! running on the CPU (from 7.0 on, when a recorder is preempted mid-run),
//! and the kernel counts each such skip: a record may be missing only
//! against such a count.
//!
//! The window: a batched lookup on an empty hash map with a million
//! buckets walks every bucket in one syscall without leaving it (about as
//! long as a scheduler tick under emulation), so a thread doing nothing
//! else is, most of the time, inside it. That thread and a governed loop
//! of execs share one CPU. On a kernel that preempts in kernel mode
//! (Debian's 6.18 and 7.3, `PREEMPT_LAZY`) the loop runs, slice after
//! slice, while the walker is preempted in the window; on the voluntary
//! kernels (6.1, 6.12) it never is, and the case checks the same thing.

use std::{
    os::unix::process::CommandExt as _,
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use acelogic_common::user::Event;
use acelogic_domain::policy::Mode;
use acelogic_kernel::{Kernel, compat};
use anyhow::{Context as _, bail, ensure};

use crate::{
    fixtures::{SCOPE, TestCgroup, collect},
    harness::{Case, Need},
};

pub(crate) const CASES: &[Case] = &[Case {
    name: "exec_and_exit_recorded_beside_a_preempted_map_syscall",
    needs: &[Need::Tracepoints],
    run: exec_and_exit_recorded_beside_a_preempted_map_syscall,
}];

/// Execs of the governed loop.
const EXECS: usize = 300;
/// Buckets of the walked map (a power of two: the kernel rounds up).
const BUCKETS: u32 = 1 << 20;

fn exec_and_exit_recorded_beside_a_preempted_map_syscall() -> anyhow::Result<()> {
    let mut kernel = Kernel::load()?;
    for spec in &compat::LINEAGE {
        kernel.attach(spec)?;
    }
    let mut records = kernel.records()?;
    let governed = TestCgroup::new("recorders-gov")?;
    kernel.define_scope(SCOPE, Mode::Enforce)?;
    kernel.govern(&governed.path, SCOPE)?;
    let before = kernel.counters()?;

    let map = EmptyHash::create(BUCKETS)?;
    let stop = Arc::new(AtomicBool::new(false));
    let walks = Arc::new(AtomicU64::new(0));
    let walker = {
        let (stop, walks) = (Arc::clone(&stop), Arc::clone(&walks));
        std::thread::spawn(move || -> anyhow::Result<()> {
            on_cpu_zero().context("pinning the walker to CPU 0")?;
            while !stop.load(Ordering::Relaxed) {
                map.walk()?;
                walks.fetch_add(1, Ordering::Relaxed);
            }
            Ok(())
        })
    };
    // The walker is in its loop before the first exec.
    let deadline = Instant::now() + Duration::from_secs(30);
    while walks.load(Ordering::Relaxed) < 2 {
        ensure!(!walker.is_finished(), "the walker stopped before walking");
        ensure!(Instant::now() < deadline, "the walker made no walk in 30 s");
        std::thread::sleep(Duration::from_millis(10));
    }
    let script = format!("i=0; while [ $i -lt {EXECS} ]; do /bin/true; i=$((i+1)); done");
    let mut cmd = governed.command("/bin/sh", &["-c", &script])?;
    // SAFETY: the closure makes one async-signal-safe system call.
    unsafe { cmd.pre_exec(on_cpu_zero) };
    let t0 = Instant::now();
    let mut sh = cmd.spawn().context("starting the governed loop")?;
    let sh_pid = sh.id();
    // Drain while the loop runs: the ring never fills.
    let mut events = Vec::new();
    let status = loop {
        events.extend(collect(
            &mut records,
            Duration::from_millis(100),
            Duration::from_millis(500),
        )?);
        if let Some(status) = sh.try_wait()? {
            break status;
        }
    };
    let loop_secs = t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let walked = match walker.join() {
        Ok(r) => r.map(|()| walks.load(Ordering::Relaxed)),
        Err(_) => bail!("the walker panicked"),
    }?;
    ensure!(status.success(), "the governed loop ended {status}");
    events.extend(collect(
        &mut records,
        Duration::from_millis(500),
        Duration::from_secs(10),
    )?);
    let after = kernel.counters()?;
    let lost = after.lineage_lost - before.lineage_lost;
    let missed = after.lineage_missed - before.lineage_missed;

    let children = |e: &&Event| e.header().cgroup_id == governed.id && e.header().tgid != sh_pid;
    let execs = events
        .iter()
        .filter(children)
        .filter(|e| matches!(e, Event::ProcessExec(x) if x.filename() == b"/bin/true"))
        .count();
    let exits = events
        .iter()
        .filter(children)
        .filter(|e| matches!(e, Event::ProcessExit(_)))
        .count();
    println!(
        "    {EXECS} governed execs on CPU 0 in {loop_secs:.1} s beside {walked} walks of a \
         {BUCKETS}-bucket hash map on the same CPU: {execs} exec and {exits} exit records, \
         {lost} counted lost for want of ring space, {missed} skipped and counted by the kernel \
         (a recorder preempted mid-run, 7.0 on)"
    );
    ensure!(
        lost == 0,
        "the kernel counted {lost} lifecycle records lost (ring full?); the case needs none"
    );
    ensure!(
        walked >= 2,
        "the walker walked {walked} times while the loop ran: the window was not open"
    );
    // A skip the kernel counts (the recorder was already running on the
    // CPU) is a journaled loss; one it does not count is the defect.
    let missing = (2 * EXECS).saturating_sub(execs + exits) as u64;
    ensure!(
        execs <= EXECS && exits <= EXECS && missing <= missed,
        "{execs} exec and {exits} exit records of {EXECS} governed /bin/true runs, {missed} \
         counted skipped: the recorder was skipped uncounted"
    );
    Ok(())
}

/// Pins the calling thread to CPU 0.
fn on_cpu_zero() -> std::io::Result<()> {
    // SAFETY: an all-zero `cpu_set_t` is a valid empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: CPU 0 is inside the set's bounds.
    unsafe { libc::CPU_SET(0, &mut set) };
    // SAFETY: `set` is a valid set of the size given; pid 0 is the caller.
    if unsafe { libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &raw const set) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// An empty BPF hash map, made by a raw `bpf(2)` call (no program uses
/// it; aya offers no batched lookup).
struct EmptyHash {
    fd: std::os::fd::OwnedFd,
}

const BPF_MAP_CREATE: libc::c_long = 0;
const BPF_MAP_LOOKUP_BATCH: libc::c_long = 24;
const BPF_MAP_TYPE_HASH: u32 = 1;
const BPF_F_NO_PREALLOC: u32 = 1;
/// `union bpf_attr` is smaller than this on every kernel we run; the
/// rest stays zero.
const ATTR_BYTES: usize = 256;
const ATTR_LEN: libc::c_uint = 256;
const _: () = assert!(ATTR_BYTES == ATTR_LEN as usize);

fn bpf(cmd: libc::c_long, attr: &mut [u64; ATTR_BYTES / 8]) -> libc::c_long {
    // SAFETY: `attr` is a zero-padded `union bpf_attr` of the size passed.
    unsafe { libc::syscall(libc::SYS_bpf, cmd, attr.as_mut_ptr(), ATTR_LEN) }
}

impl EmptyHash {
    /// A hash map of `buckets` buckets, u32 keys and values, elements
    /// allocated on insert (so only the bucket array is allocated).
    fn create(buckets: u32) -> anyhow::Result<Self> {
        let mut attr = [0u64; ATTR_BYTES / 8];
        // map_type, key_size | value_size, max_entries | map_flags.
        attr[0] = u64::from(BPF_MAP_TYPE_HASH) | (4 << 32);
        attr[1] = 4 | (u64::from(buckets) << 32);
        attr[2] = u64::from(BPF_F_NO_PREALLOC);
        let fd = bpf(BPF_MAP_CREATE, &mut attr);
        if fd < 0 {
            bail!(
                "creating a {buckets}-bucket hash map: {}",
                std::io::Error::last_os_error()
            );
        }
        let fd = i32::try_from(fd).context("map fd")?;
        // SAFETY: the kernel just gave us this fd; nothing else owns it.
        let fd = unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) };
        Ok(Self { fd })
    }

    /// One batched lookup from the first bucket: the map is empty, so the
    /// kernel walks every bucket in this one call and answers `ENOENT`.
    fn walk(&self) -> anyhow::Result<()> {
        let (mut keys, mut values, mut out) = ([0u32; 8], [0u32; 8], 0u32);
        let mut attr = [0u64; ATTR_BYTES / 8];
        // in_batch (null: from the start), out_batch, keys, values,
        // count | map_fd, elem_flags, flags.
        attr[1] = (&raw mut out) as u64;
        attr[2] = keys.as_mut_ptr() as u64;
        attr[3] = values.as_mut_ptr() as u64;
        attr[4] = keys.len() as u64
            | (u64::from(std::os::fd::AsRawFd::as_raw_fd(&self.fd).cast_unsigned()) << 32);
        if bpf(BPF_MAP_LOOKUP_BATCH, &mut attr) == 0 {
            bail!("a batched lookup on the empty map found entries");
        }
        let e = std::io::Error::last_os_error();
        ensure!(
            e.raw_os_error() == Some(libc::ENOENT),
            "batched lookup: {e} (expected ENOENT: the whole empty map walked)"
        );
        Ok(())
    }
}
