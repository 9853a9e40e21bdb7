//! `acelogicctl freeze`: deny every action of a workload, its baseline
//! included (`unfreeze` lifts it through the same call).

use std::path::Path;

use crate::{
    CtlResult, connect,
    error::{Peer, from_status},
};
use acelogic_proto::agent as pb;

#[derive(Debug, clap::Args)]
pub struct Args {
    pub(super) workload: String,
    #[arg(long, default_value = "")]
    pub(super) reason: String,
}

pub fn exec(args: &Args, socket: &Path) -> CtlResult<String> {
    connect::block(freeze(socket, &args.workload, &args.reason, true))
}

/// Freezes (`frozen`) or unfreezes a workload.
pub async fn freeze(
    socket: &Path,
    workload: &str,
    reason: &str,
    frozen: bool,
) -> CtlResult<String> {
    let mut c = connect::daemon(socket).await?;
    let req = pb::FreezeRequest {
        workload: workload.to_owned(),
        reason: reason.to_owned(),
    };
    let r = if frozen {
        c.freeze(req).await
    } else {
        c.unfreeze(req).await
    };
    r.map_err(|s| from_status(&s, Peer::Daemon))?;
    Ok(format!(
        "workload {workload} {}",
        if frozen {
            "frozen: every action is denied"
        } else {
            "unfrozen"
        }
    ))
}
