//! The exec gate, end to end: a governed process cannot exec; the denial is
//! a record; an ungoverned process is unaffected.

use std::time::Duration;

use acelogic_agent::kernel::{Kernel, LoadOptions, compat};
use acelogic_common::user::{Event, Hook, Reason, Verdict, c_str_bytes};
use anyhow::{Context as _, bail, ensure};

use crate::{
    fixtures::{TestCgroup, collect, exit_code, own_comm},
    harness::{Case, Need},
};

pub(crate) const CASES: &[Case] = &[
    Case {
        name: "exec_denied_in_governed_cgroup",
        needs: &[Need::BpfLsm],
        run: exec_denied_in_governed_cgroup,
    },
    Case {
        name: "full_ring_buffer_still_denies_and_counts",
        needs: &[Need::BpfLsm],
        run: full_ring_buffer_still_denies_and_counts,
    },
];

const SCOPE: u32 = 7;

fn exec_denied_in_governed_cgroup() -> anyhow::Result<()> {
    let mut kernel = Kernel::load()?;
    kernel.attach(&compat::EXEC_GATE)?;
    let mut records = kernel.records()?;
    let governed = TestCgroup::new("exec-governed")?;
    let free = TestCgroup::new("exec-free")?;
    kernel.govern(&governed.path, SCOPE)?;

    // Governed: the exec itself must fail with EPERM.
    match governed.command("/bin/sh", &["-c", "exit 7"])?.spawn() {
        Ok(child) => {
            let code = exit_code(child)?;
            bail!("governed exec of /bin/sh was allowed (it exited {code}); expected EPERM");
        }
        Err(e) => ensure!(
            e.raw_os_error() == Some(libc::EPERM),
            "governed exec failed with {e} ({:?}), expected EPERM",
            e.raw_os_error()
        ),
    }

    // Ungoverned, same binary: runs normally.
    let code = exit_code(free.command("/bin/sh", &["-c", "exit 7"])?.spawn()?)?;
    ensure!(code == 7, "ungoverned /bin/sh exited {code}, expected 7");

    // Exactly one record: the denial, naming the governed cgroup.
    let events = collect(
        &mut records,
        Duration::from_millis(500),
        Duration::from_secs(10),
    )?;
    let [Event::Exec(d)] = events.as_slice() else {
        bail!("expected exactly one exec decision record, got {events:#?}");
    };
    ensure!(d.verdict == Verdict::Deny, "verdict {}", d.verdict);
    ensure!(d.reason == Reason::NoGrant, "reason {}", d.reason);
    ensure!(d.hook == Hook::Exec, "hook {}", d.hook);
    ensure!(d.scope_id == SCOPE, "scope {}", d.scope_id);
    ensure!(
        d.header.cgroup_id == governed.id,
        "record names cgroup {}, governed is {}",
        d.header.cgroup_id,
        governed.id
    );
    ensure!(
        d.header.tgid != std::process::id(),
        "record names the test process, not the child"
    );
    // The child is a fork of this process that had not exec'd yet.
    let comm = own_comm()?;
    ensure!(
        c_str_bytes(&d.comm) == comm.as_bytes(),
        "record comm {:?}, expected {comm:?}",
        String::from_utf8_lossy(c_str_bytes(&d.comm))
    );

    let c = kernel.counters()?;
    ensure!(c.denied == 1, "denied counter {}, expected 1", c.denied);
    ensure!(
        c.record_unavailable == 0,
        "record_unavailable {}",
        c.record_unavailable
    );
    kernel.release(governed.id).context("releasing the scope")?;
    Ok(())
}

/// No record, no allow: with the ring buffer full and nobody draining it,
/// every governed exec is still denied, and each one is accounted for,
/// either as a record or in the `record_unavailable` counter.
fn full_ring_buffer_still_denies_and_counts() -> anyhow::Result<()> {
    // One page holds about 50 exec records; make twice as many attempts.
    const ATTEMPTS: u64 = 100;
    let mut kernel = Kernel::load_with(&LoadOptions {
        ring_bytes: Some(4096),
    })?;
    kernel.attach(&compat::EXEC_GATE)?;
    let mut records = kernel.records()?;
    let governed = TestCgroup::new("exec-flood")?;
    kernel.govern(&governed.path, SCOPE)?;

    for i in 0..ATTEMPTS {
        match governed.command("/bin/sh", &["-c", "exit 7"])?.spawn() {
            Ok(child) => bail!(
                "attempt {i}: governed exec allowed (exit {})",
                exit_code(child)?
            ),
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => {}
            Err(e) => bail!("attempt {i}: governed exec failed with {e}, expected EPERM"),
        }
    }

    let c = kernel.counters()?;
    let recorded = u64::try_from(records.drain().len())?;
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
