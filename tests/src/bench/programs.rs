//! Where a configuration's cost goes: each attached program's own run
//! time per operation, from the kernel's per-program counts
//! (`BPF_ENABLE_STATS`), in one pass after the counted rounds. With the
//! counting on every program run pays for two clock reads, so the ratios
//! are never measured with it. Under the instruction-counting guest clock
//! a run time is instructions; the trampoline around each program and
//! the ring's consumer are outside it. The floor's programs (which return
//! at once) are measured the same way: their run time is what the
//! counting itself adds to every run, to be read off the others.

use acelogic_common::names;
use acelogic_kernel::{Kernel, ProgramStats, RunTimeStats};
use anyhow::Context as _;

use super::workload::{Bench, Confine, Workload, measure};
use crate::fixtures::TestCgroup;

/// One program's share of one workload in one configuration.
#[derive(Debug, Clone)]
pub(super) struct Cost {
    pub(super) workload: &'static str,
    pub(super) config: &'static str,
    pub(super) program: &'static str,
    /// Runs per operation of the workload.
    pub(super) runs_per_op: f64,
    /// Run time (instructions under the icount clock) per run.
    pub(super) per_run: f64,
}

impl Cost {
    pub(super) fn per_op(&self) -> f64 {
        self.runs_per_op * self.per_run
    }
}

/// Runs every workload once per configuration in `configs` with `kernel`'s
/// programs attached and the counting on; the programs that ran, with
/// what they cost, a floor program under the name of the program it
/// stands in for.
pub(super) fn measure_all(
    kernel: &mut Kernel,
    b: &Bench,
    configs: &[(&'static str, &TestCgroup)],
) -> anyhow::Result<Vec<Cost>> {
    let names: Vec<&'static str> = kernel.programs().iter().map(|s| s.name).collect();
    let snapshot = |k: &Kernel| -> anyhow::Result<Vec<ProgramStats>> {
        names
            .iter()
            .map(|n| k.program_stats(n).map_err(Into::into))
            .collect()
    };
    kernel.attach_all()?;
    let stats = RunTimeStats::enable().context("BPF_ENABLE_STATS")?;
    let mut costs = Vec::new();
    let result = (|| -> anyhow::Result<()> {
        for w in Workload::ALL {
            for (config, cg) in configs {
                let before = snapshot(kernel)?;
                measure(b, cg, w, Confine::Nothing)?;
                let after = snapshot(kernel)?;
                let ops = f64::from(w.iterations());
                for ((name, a), z) in names.iter().zip(&before).zip(&after) {
                    let runs = z.run_count.saturating_sub(a.run_count);
                    if runs == 0 {
                        continue;
                    }
                    #[expect(clippy::cast_precision_loss, reason = "counts far below 2^52")]
                    costs.push(Cost {
                        workload: w.name(),
                        config,
                        program: names::FLOORS
                            .iter()
                            .find(|(_, floor)| floor == name)
                            .map_or(*name, |(program, _)| *program),
                        runs_per_op: runs as f64 / ops,
                        per_run: z.run_time_ns.saturating_sub(a.run_time_ns) as f64 / runs as f64,
                    });
                }
            }
        }
        Ok(())
    })();
    drop(stats);
    kernel.detach_all()?;
    result?;
    Ok(costs)
}

/// The costs as a markdown table and as JSON: by workload, then program,
/// then configuration in the order of `configs`.
pub(super) fn report(costs: &[Cost], configs: &[&str]) -> serde_json::Value {
    let mut costs = costs.to_vec();
    let workload = |c: &Cost| Workload::ALL.iter().position(|w| w.name() == c.workload);
    let config = |c: &Cost| configs.iter().position(|n| *n == c.config);
    costs.sort_by(|a, b| {
        (workload(a), a.program, config(a)).cmp(&(workload(b), b.program, config(b)))
    });
    println!();
    println!("### Per program (one pass, kernel run-time counts on)");
    println!();
    println!("| workload | configuration | program | runs per op | per run | per op |");
    println!("|---|---|---|---|---|---|");
    for c in &costs {
        println!(
            "| {} | {} | {} | {:.2} | {:.0} | {:.0} |",
            c.workload,
            c.config,
            c.program,
            c.runs_per_op,
            c.per_run,
            c.per_op()
        );
    }
    serde_json::Value::Array(
        costs
            .iter()
            .map(|c| {
                serde_json::json!({
                    "workload": c.workload,
                    "configuration": c.config,
                    "program": c.program,
                    "runs_per_op": c.runs_per_op,
                    "per_run": c.per_run,
                })
            })
            .collect(),
    )
}
