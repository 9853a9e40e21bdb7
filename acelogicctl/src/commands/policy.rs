//! `acelogicctl policy check`: load a policy directory as the daemon
//! would, so a broken one is found before a reload keeps the old.

use std::path::{Path, PathBuf};

use clap::Subcommand;

use crate::{CtlError, CtlResult};
use acelogic_domain::policy;

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load a policy directory as the daemon would; exit 1 with
    /// file:line:column errors when it is invalid.
    Check {
        dir: PathBuf,
        /// [default: DIR/trust.yaml]
        #[arg(long)]
        trust: Option<PathBuf>,
    },
}

pub fn exec(cmd: &Command) -> CtlResult<String> {
    match cmd {
        Command::Check { dir, trust } => policy_check(dir, trust.as_deref()),
    }
}

/// Loads a policy directory and its trust store as the daemon would.
pub fn policy_check(dir: &Path, trust: Option<&Path>) -> CtlResult<String> {
    let trust = trust.map_or_else(|| dir.join("trust.yaml"), Path::to_path_buf);
    let (loaded, store) = policy::load_inputs(dir, &trust).map_err(|why| CtlError {
        exit: CtlError::REFUSED,
        message: format!("invalid policy; a daemon would keep its current one:\n{why}"),
    })?;
    let mut s = String::new();
    for w in &loaded.warnings {
        s.push_str(&format!("warning: {w}\n"));
    }
    for w in loaded.set.workloads.values() {
        s.push_str(&format!(
            "workload {} (scope {:#010x}, {:?}) from {}: {} cgroup pattern(s), {} grantable rule(s)\n",
            w.name,
            w.scope_id,
            w.mode,
            w.source.display(),
            w.cgroups.len(),
            w.grantable.len()
        ));
    }
    s.push_str(&format!(
        "ok: {} workload(s) in {} file(s), {} trusted key(s); policy sha256 {}\n",
        loaded.set.workloads.len(),
        loaded.set.files.len(),
        store.keys().count(),
        hex::encode(loaded.set.sha256)
    ));
    Ok(s)
}
