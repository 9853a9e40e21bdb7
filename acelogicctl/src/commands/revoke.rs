//! `acelogicctl revoke`: remove a live artifact's grants now.

use std::path::Path;

use crate::{
    CtlResult, connect,
    error::{Peer, from_status},
};
use acelogic_proto::agent as pb;

#[derive(Debug, clap::Args)]
pub struct Args {
    artifact_id: String,
    #[arg(long, default_value = "")]
    reason: String,
}

pub fn exec(args: &Args, socket: &Path) -> CtlResult<String> {
    connect::block(revoke(socket, &args.artifact_id, &args.reason))
}

pub async fn revoke(socket: &Path, id: &str, reason: &str) -> CtlResult<String> {
    let mut c = connect::daemon(socket).await?;
    let r = c
        .revoke_artifact(pb::RevokeArtifactRequest {
            artifact_id: id.to_owned(),
            reason: reason.to_owned(),
        })
        .await
        .map_err(|s| from_status(&s, Peer::Daemon))?
        .into_inner();
    Ok(format!(
        "revoked artifact {id}: {} kernel entries removed",
        r.removed
    ))
}
