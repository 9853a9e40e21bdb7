//! `acelogicctl lineage exec-id PID`: the exec id of a live process, from
//! procfs, without asking the collector.

use std::path::Path;

use crate::{CtlError, CtlResult};
use acelogic_lineage::{chain, enrich::proc_stat};

#[derive(Debug, clap::Args)]
pub struct Args {
    pid: u32,
}

pub fn exec(args: &Args) -> CtlResult<String> {
    exec_id_of(args.pid)
}

/// The exec id the daemon gives the live process `pid` of this boot: the
/// same formula over the boot id and the process's start time, so it can
/// be asked for while the process runs and looked up once it is gone.
pub fn exec_id_of(pid: u32) -> CtlResult<String> {
    let boot = chain::boot_id().map_err(|e| CtlError::internal(format!("the boot id: {e}")))?;
    let stat = proc_stat(Path::new("/proc"), pid).ok_or_else(|| {
        CtlError::input(format!("no process {pid} (/proc/{pid}/stat unreadable)"))
    })?;
    Ok(chain::exec_id(&boot, stat.start_ticks, pid))
}
