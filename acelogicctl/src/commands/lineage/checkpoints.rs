//! `acelogicctl lineage checkpoints --node N`: the newest signed
//! checkpoint of each of a node's chains, for an auditor to keep.

use super::Target;
use crate::{
    CtlResult, connect,
    error::{Peer, from_status},
};
use acelogic_proto::collector as pb;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long)]
    node: String,
}

pub fn exec(args: &Args, t: &Target) -> CtlResult<String> {
    connect::block(checkpoints(t, &args.node))
}

/// The newest signed checkpoint of each of a node's chains.
pub async fn checkpoints(t: &Target, node: &str) -> CtlResult<String> {
    let mut c = connect::collector(t).await?;
    let r = c
        .checkpoints(pb::CheckpointsRequest {
            node: node.to_owned(),
        })
        .await
        .map_err(|s| from_status(&s, Peer::Collector))?
        .into_inner();
    Ok(r.notes.concat())
}
