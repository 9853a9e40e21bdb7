//! Kernel into journal benchmark, natively on the host (tracepoints load
//! where LSM programs do not): `cargo xtask bench` runs it.
//!
//! The workload is process churn in a governed cgroup: a process that
//! forks children which exit at once, so the fork and exit tracepoints
//! write two records per child. Rows:
//! - **capacity**: the ring buffer is filled while nobody reads, then
//!   drained by the daemon's pump (decode, enrich, hash-chain, one SQLite
//!   transaction with `synchronous=FULL` per batch, then the ring's
//!   consumer position), against the baseline of draining the same kind of
//!   full ring with decode only, in the same run;
//! - **sustained**: the pump runs while the churn runs, for as long as the
//!   workload lasts; the rate is bounded by how fast this machine forks;
//! - **bytes per record**: the journal's file size over its records, and
//!   the mean encoded record.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use acelogic_agent::lineage::KernelRing;
use acelogic_domain::policy::Mode;
use acelogic_kernel::{Kernel, Records, compat};
use acelogic_lineage::{
    enrich::Enricher,
    journal::{Journal, Shared},
    pump::Pump,
};
use anyhow::{Context as _, ensure};

use crate::{
    fixtures::{Scratch, TestCgroup, reap, spawn_in_cgroup},
    summary::{Row, Target, Unit, rows_json},
};

const SCOPE: u32 = 0x5eed;
const BENCH: &str = "kernel into journal (native, host tracepoints)";

/// Forks `n` children in `cg` that exit at once; returns the churner's pid
/// (reap it with [`reap`]).
fn churn(cg: &TestCgroup, n: u32) -> anyhow::Result<libc::pid_t> {
    spawn_in_cgroup(cg, || {
        for _ in 0..n {
            // SAFETY: raw calls only; the grandchild exits at once.
            unsafe {
                let c = libc::fork();
                if c == 0 {
                    libc::_exit(0);
                }
                if c > 0 {
                    libc::waitpid(c, std::ptr::null_mut(), 0);
                }
            }
        }
        0
    })
}

/// Fills the ring buffer (nobody reads) with about `want` records.
fn fill(cg: &TestCgroup, records: &Records, want: usize) -> anyhow::Result<usize> {
    let pid = churn(cg, u32::try_from(want / 2)?)?;
    ensure!(reap(pid, cg)? == 0, "the churning child failed");
    Ok(records.peek(usize::MAX).len())
}

fn journal_bytes(dir: &Path) -> u64 {
    ["journal.db", "journal.db-wal"]
        .iter()
        .filter_map(|f| std::fs::metadata(dir.join(f)).ok())
        .map(|m| m.len())
        .sum()
}

fn rate(n: usize, d: Duration) -> f64 {
    n as f64 / d.as_secs_f64().max(1e-9)
}

/// Runs the benchmark with `rounds` fill-and-drain rounds per row.
pub fn run(rounds: u32) -> anyhow::Result<serde_json::Value> {
    let mut kernel = Kernel::load()?;
    for spec in compat::LINEAGE {
        kernel.attach(&spec)?;
    }
    let mut ring = kernel.records()?;
    let cg = TestCgroup::new("journal-bench")?;
    kernel.define_scope(SCOPE, Mode::Enforce)?;
    kernel.govern(&cg.path, SCOPE)?;
    let scratch = Scratch::new("journal-bench")?;
    let journal = Shared::new(Journal::open(
        &scratch.join("journal.db"),
        "bench",
        u64::MAX,
    )?);
    let mut pump = Pump::new(Enricher::new("bench", 1)?, 4096);
    pump.enricher().set_workloads([(SCOPE, "bench".to_owned())]);
    // Records of 1 MiB of ring (a fork record takes 64 bytes, an
    // exit record 56).
    let per_fill = (1usize << 20) / 64;

    let (mut fill_n, mut fill_t) = (0usize, Duration::ZERO);
    let (mut base_n, mut base_t) = (0usize, Duration::ZERO);
    let (mut pump_n, mut pump_t) = (0usize, Duration::ZERO);
    for _ in 0..rounds {
        // Baseline: decode only, then consume.
        let t = Instant::now();
        fill_n += fill(&cg, &ring, per_fill)?;
        fill_t += t.elapsed();
        let t = Instant::now();
        loop {
            let batch = ring.peek(4096);
            if batch.is_empty() {
                break;
            }
            for r in batch.records() {
                std::hint::black_box(r.decode().ok());
            }
            base_n += batch.len();
            ring.commit(batch.end())?;
        }
        base_t += t.elapsed();

        // The pump: decode, enrich, chain, durable journal, then consume.
        fill(&cg, &ring, per_fill)?;
        let t = Instant::now();
        loop {
            let step = pump.step(&journal, &mut KernelRing(&mut ring))?;
            ensure!(!step.blocked, "the benchmark journal has no cap");
            if step.journaled == 0 {
                break;
            }
            pump_n += step.journaled;
        }
        pump_t += t.elapsed();
    }
    ensure!(ring.peek(1).is_empty(), "records left behind");

    // Sustained: the pump keeps up with the churn as it happens.
    let lost_before = kernel.counters()?.lineage_unrecorded();
    let children = 20_000u32;
    let (mut live_n, t) = (0usize, Instant::now());
    let pid = churn(&cg, children)?;
    loop {
        let step = pump.step(&journal, &mut KernelRing(&mut ring))?;
        live_n += step.journaled;
        if step.journaled == 0 {
            let mut status = 0;
            // SAFETY: our own child, valid out-pointer, no hang.
            let done = unsafe { libc::waitpid(pid, &raw mut status, libc::WNOHANG) };
            if done == pid {
                while pump.step(&journal, &mut KernelRing(&mut ring))?.journaled > 0 {}
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }
    let live_t = t.elapsed();
    let lost = kernel.counters()?.lineage_unrecorded() - lost_before;

    let (records, _) = journal.lock().head();
    journal
        .lock()
        .verify()
        .context("the benchmark journal's chain")?;
    let entries = journal.lock().read_after(0, usize::MAX, usize::MAX)?;
    let encoded: usize = entries.iter().map(|e| e.record.len()).sum();
    let file = journal_bytes(&scratch.path);
    let capacity = rate(pump_n, pump_t);
    let baseline = rate(base_n, base_t);
    let sustained = rate(live_n, live_t);
    let per_record = file as f64 / records as f64;
    let workload = rate(fill_n, fill_t);
    let encoded_mean = encoded as f64 / entries.len().max(1) as f64;

    println!("| kernel -> journal (host, process churn) | records/s | vs baseline |");
    println!("|---|---|---|");
    println!("| drain a full ring, decode only (baseline) | {baseline:.0} | 1.00x |");
    println!(
        "| drain a full ring into the journal (capacity) | {capacity:.0} | {:.2}x |",
        capacity / baseline
    );
    println!(
        "| journal while the churn runs (sustained; bound by fork rate) | {sustained:.0} | {:.2}x |",
        sustained / baseline
    );
    println!(
        "| the churn alone, nobody reading (what the workload can produce) | {workload:.0} | {:.2}x |",
        workload / baseline
    );
    println!(
        "journal: {per_record:.0} bytes per record on disk (SQLite, WAL, hashes included); \
         {encoded_mean:.0} bytes per encoded record; {lost} lifecycle records lost during the \
         sustained run (counted by the kernel); target >= 100000 records/s: {}",
        if capacity >= 100_000.0 {
            "met"
        } else {
            "NOT met"
        }
    );
    Ok(serde_json::json!({
        "baseline_decode_records_per_s": baseline,
        "capacity_records_per_s": capacity,
        "capacity_ratio": capacity / baseline,
        "sustained_records_per_s": sustained,
        "sustained_lost": lost,
        "workload_records_per_s": workload,
        "records": records,
        "journal_bytes_per_record": per_record,
        "encoded_bytes_per_record": encoded_mean,
        "rounds": rounds,
        "summary": rows_json(&[
            Row::new(BENCH, "drain a full ring into the journal (capacity)", capacity, Unit::PerSecond)
                .against("drain a full ring, decode only", baseline)
                .target(Target::AtLeast(100_000.0)),
            Row::new(BENCH, "journal while the churn runs (sustained)", sustained, Unit::PerSecond)
                .against("drain a full ring, decode only", baseline),
        ]),
    }))
}
