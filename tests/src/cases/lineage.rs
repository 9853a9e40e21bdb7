//! Process lineage: an exec in a governed cgroup is recorded with the new
//! image's file name; one outside is not.

use std::time::Duration;

use acelogic_agent::kernel::{Kernel, compat, scopes::Mode};
use acelogic_common::user::Event;
use anyhow::{bail, ensure};

use crate::{
    fixtures::{TestCgroup, collect, exit_code},
    harness::{Case, Need},
};

pub(crate) const CASES: &[Case] = &[Case {
    name: "process_exec_recorded_for_governed_only",
    needs: &[Need::Tracepoints],
    run: process_exec_recorded_for_governed_only,
}];

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
    let execs: Vec<_> = events
        .iter()
        .filter_map(|e| match e {
            Event::ProcessExec(p) => Some(p),
            _ => None,
        })
        .collect();
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
        "record file name {:?} (offset from tracefs wrong?)",
        String::from_utf8_lossy(rec.filename())
    );
    ensure!(
        events.iter().all(|e| e.header().tgid != outside_pid),
        "the ungoverned process was recorded"
    );
    Ok(())
}
