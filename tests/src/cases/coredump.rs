//! A core dump is written by the kernel under credentials it substitutes
//! for the dumping task's (`override_creds`), as overlayfs does on its
//! layers; unlike overlayfs, the task chose what is written (its memory)
//! and, through its working directory and `core_pattern`, where. The core
//! file's removal, creation and open are decided like any other (the file
//! gates do not exempt a dumping task): a governed task's core lands only
//! inside its writable set.
//!
//! The core file exists beforehand; the kernel removes it and creates the
//! core anew (`O_EXCL`), so the unlink, the creation or the open may be
//! the step refused. The ungoverned twin dumps over it.

use std::{fs, path::Path};

use acelogic_common::user::Hook;
use anyhow::{Context as _, ensure};

use crate::{
    cases::{descriptors::expect_denial, exec_gate::allow_shell, files::Tree},
    fixtures::TestCgroup,
    harness::{Case, Need},
};

pub(crate) const CASES: &[Case] = &[Case {
    name: "core_dump_outside_the_writable_set_refused",
    needs: &[Need::BpfLsm],
    run: core_dump_outside_the_writable_set_refused,
}];

const PATTERN: &str = "/proc/sys/kernel/core_pattern";
const ORIGINAL: &[u8] = b"original";

/// Restores `core_pattern` on drop.
struct Pattern(String);

impl Pattern {
    fn set(pattern: &Path) -> anyhow::Result<Self> {
        let old = fs::read_to_string(PATTERN).context("reading core_pattern")?;
        fs::write(PATTERN, pattern.as_os_str().as_encoded_bytes())
            .context("setting core_pattern")?;
        Ok(Self(old.trim_end().to_owned()))
    }
}

impl Drop for Pattern {
    fn drop(&mut self) {
        let _ = fs::write(PATTERN, &self.0);
    }
}

/// A shell that allows itself core dumps and crashes; how it ended.
fn crash(cg: &TestCgroup) -> anyhow::Result<std::process::ExitStatus> {
    Ok(cg
        .command("/bin/sh", &["-c", "ulimit -c unlimited; kill -SEGV $$"])?
        .status()?)
}

fn core_dump_outside_the_writable_set_refused() -> anyhow::Result<()> {
    let mut t = Tree::new("coredump")?;
    allow_shell(&mut t.s)?;
    let core = t.p("outside/core");
    let _pattern = Pattern::set(&core)?;
    let size = || fs::metadata(&core).map(|m| m.len()).unwrap_or(0);

    fs::write(&core, ORIGINAL)?;
    let free = crash(&t.s.free)?;
    ensure!(
        size() > ORIGINAL.len() as u64,
        "the ungoverned crash ({free:?}) dumped no core over {}; the case proves nothing",
        core.display()
    );
    fs::write(&core, ORIGINAL)?;
    let governed = crash(&t.s.governed)?;
    ensure!(
        fs::read(&core)? == ORIGINAL,
        "the governed crash ({governed:?}) wrote its core outside the writable set ({} bytes)",
        size()
    );
    let events = t.s.decisions()?;
    expect_denial(
        &events,
        &[Hook::PathUnlink, Hook::PathMknod, Hook::FileOpen],
        "core",
        "the core file",
    )?;
    Ok(())
}
