//! Kernel state outlives its loader: with programs, links and maps pinned,
//! a loader killed with SIGKILL leaves enforcement in place, a restarted
//! loader adopts it with no gap, and only an explicit uninstall ends it.

use std::{
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use acelogic_common::user::{Event, Hook, Reason, Verdict};
use acelogic_domain::policy::Mode;
use acelogic_kernel::{self as kernel, Kernel, LoadOptions};
use anyhow::{Context as _, bail, ensure};

use crate::{
    fixtures::{Exec, SCOPE, TestCgroup, collect, exec_in, render_all},
    harness::{Case, Need},
};

pub(crate) const CASES: &[Case] = &[
    Case {
        name: "enforcement_outlives_killed_loader",
        needs: &[Need::BpfLsm],
        run: enforcement_outlives_killed_loader,
    },
    Case {
        name: "failed_attach_leaves_the_node_as_it_was",
        needs: &[Need::BpfLsm],
        run: failed_attach_leaves_the_node_as_it_was,
    },
];

/// Loaded BPF programs called `name`.
fn loaded(name: &str) -> anyhow::Result<usize> {
    let mut n = 0;
    for p in aya::programs::loaded_programs() {
        if p?.name_as_str() == Some(name) {
            n += 1;
        }
    }
    Ok(n)
}

/// The link pins under `dir`.
fn link_pins(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir.join("links"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

/// An attach that fails midway (here: injected at the open gate, after the
/// recorders and the exec gate attached) removes what it attached and
/// pinned: on a fresh node nothing is left, and an adopted install keeps
/// every pin it had.
fn failed_attach_leaves_the_node_as_it_was() -> anyhow::Result<()> {
    let failing = acelogic_common::names::gate::OPEN.program;
    let first = acelogic_common::names::gate::EXEC.program;
    let before = loaded(first)?;
    let dir = PathBuf::from(format!(
        "/sys/fs/bpf/acelogic-test-{}-rollback",
        std::process::id()
    ));
    let mut k = Kernel::load_with(&LoadOptions {
        pin_dir: Some(dir.clone()),
        ..LoadOptions::default()
    })?;
    k.inject_attach_failure(failing);
    let err = k
        .attach_all()
        .expect_err("the injected failure stops the attach");
    ensure!(
        err.to_string().contains(failing),
        "the error names another program: {err}"
    );
    ensure!(
        !dir.exists(),
        "the failed fresh install left {} behind",
        dir.display()
    );
    drop(k);
    // Programs are freed once their last reference goes, after an RCU
    // grace period. Fewer than before is fine: an earlier case's programs
    // may go in the meantime (seen on 7.3).
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while loaded(first)? > before {
        ensure!(
            std::time::Instant::now() < deadline,
            "{first} is still loaded {} time(s) more than before the failed attach",
            loaded(first)?.saturating_sub(before)
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }

    // Over an adopted install: the failure changes nothing of it.
    let shared = std::env::var_os(crate::harness::SHARED_PIN_DIR)
        .map(PathBuf::from)
        .context("the suite's shared install")?;
    let pins = link_pins(&shared);
    ensure!(!pins.is_empty(), "the shared install has no links");
    let mut k = Kernel::load_with(&LoadOptions {
        pin_dir: Some(shared.clone()),
        ..LoadOptions::default()
    })?;
    k.inject_attach_failure(failing);
    ensure!(
        k.attach_all().is_err(),
        "the injected failure stops the attach"
    );
    drop(k);
    ensure!(
        link_pins(&shared) == pins,
        "the failed attach changed the adopted install"
    );
    Ok(())
}

/// The hidden `--hold` mode of the test binary: install pinned enforcement
/// on `cgroup`, say READY, and wait to be killed.
pub fn hold(pin_dir: &Path, cgroup: &Path) -> anyhow::Result<()> {
    let mut kernel = Kernel::load_with(&LoadOptions {
        pin_dir: Some(pin_dir.to_path_buf()),
        ..LoadOptions::default()
    })?;
    kernel.attach_all()?;
    kernel.define_scope(SCOPE, Mode::Enforce)?;
    kernel.govern(cgroup, SCOPE)?;
    println!("READY");
    loop {
        std::thread::park();
    }
}

fn exec_denials(events: &[Event]) -> usize {
    events
        .iter()
        .filter_map(Event::decision)
        .filter(|d| {
            d.hook == Hook::Exec && d.verdict == Verdict::Deny && d.reason == Reason::NoGrant
        })
        .count()
}

fn enforcement_outlives_killed_loader() -> anyhow::Result<()> {
    let dir = PathBuf::from(format!("/sys/fs/bpf/acelogic-test-{}", std::process::id()));
    let cg = TestCgroup::new("pinned")?;
    let result = outlives(&dir, &cg);
    // Whatever happened, leave no enforcement behind.
    let _ = kernel::uninstall(&dir);
    result
}

fn outlives(dir: &Path, cg: &TestCgroup) -> anyhow::Result<()> {
    let mut loader = Command::new(std::env::current_exe()?)
        .arg("--hold")
        .arg(dir)
        .arg(&cg.path)
        .args(["--env", "vm"])
        .stdout(Stdio::piped())
        .spawn()?;
    let mut line = String::new();
    BufReader::new(loader.stdout.take().context("loader stdout")?).read_line(&mut line)?;
    ensure!(line.trim() == "READY", "loader said {line:?}");

    let before = exec_in(cg, "/bin/sh", &["-c", "exit 7"])?;
    ensure!(
        before == Exec::Refused(libc::EPERM),
        "with the loader alive: {before:?}"
    );
    loader.kill()?;
    loader.wait()?;
    let orphaned = exec_in(cg, "/bin/sh", &["-c", "exit 7"])?;
    ensure!(
        orphaned == Exec::Refused(libc::EPERM),
        "after SIGKILL of the loader: {orphaned:?}; enforcement did not outlive it"
    );

    // A new loader adopts everything: nothing is attached twice, nothing
    // was ever detached, and the records made meanwhile are still there.
    let mut k = Kernel::load_with(&LoadOptions {
        pin_dir: Some(dir.to_path_buf()),
        ..LoadOptions::default()
    })?;
    let attached = k.attach_all()?;
    ensure!(
        attached.attached.is_empty() && attached.adopted.len() == k.programs().len(),
        "restart did not adopt every program: {attached:?}"
    );
    ensure!(
        k.governed()?.contains(&(cg.id, SCOPE)),
        "the governed cgroup is not in the adopted state"
    );
    let mut records = k.records()?;
    let again = exec_in(cg, "/bin/sh", &["-c", "exit 7"])?;
    ensure!(
        again == Exec::Refused(libc::EPERM),
        "after adoption: {again:?}"
    );
    let events = collect(
        &mut records,
        std::time::Duration::from_millis(300),
        std::time::Duration::from_secs(10),
    )?;
    ensure!(
        exec_denials(&events) == 3,
        "expected the 3 denials (alive, orphaned, adopted) in the pinned ring buffer, got {}",
        render_all(&events)
    );

    let expected_links = k.programs().len();
    let removed = kernel::uninstall(dir)?;
    ensure!(
        removed.links.len() == expected_links,
        "uninstall removed {removed:?}"
    );
    drop(records);
    drop(k);
    // The kernel releases the last link reference asynchronously on some
    // versions (6.12: after an RCU grace period); allow it a moment.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let after = exec_in(cg, "/bin/sh", &["-c", "exit 7"])?;
        if after == Exec::Ran(7) {
            return Ok(());
        }
        if std::time::Instant::now() > deadline {
            bail!("10 s after uninstall the cgroup is still enforced: {after:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
