//! `acelogicctl grants`: the live grants, with what the kernel says of
//! their uses.

use std::path::Path;

use crate::{
    CtlResult, connect,
    error::{Peer, from_status},
    output::when,
};
use acelogic_proto::agent as pb;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long, default_value = "")]
    workload: String,
    #[arg(long)]
    json: bool,
}

pub fn exec(args: &Args, socket: &Path) -> CtlResult<String> {
    connect::block(grants(socket, &args.workload, args.json))
}

pub async fn grants(socket: &Path, workload: &str, json: bool) -> CtlResult<String> {
    let mut c = connect::daemon(socket).await?;
    let r = c
        .list_grants(pb::ListGrantsRequest {
            workload: workload.to_owned(),
        })
        .await
        .map_err(|s| from_status(&s, Peer::Daemon))?
        .into_inner();
    if json {
        let rows: Vec<_> = r
            .grants
            .iter()
            .map(|g| {
                serde_json::json!({
                    "artifactId": g.artifact_id, "workload": g.workload, "grantId": g.grant_id,
                    "capabilities": g.capabilities, "expiresUnix": g.expires_unix,
                    "usesLeft": g.uses_left, "operationKey": g.operation_key,
                    "issuer": g.issuer, "approvers": g.approvers,
                })
            })
            .collect();
        return Ok(serde_json::Value::Array(rows).to_string());
    }
    if r.grants.is_empty() {
        return Ok("no live grants".to_owned());
    }
    let mut s = String::new();
    for g in &r.grants {
        s.push_str(&format!(
            "{} workload={} grant={} until {} uses_left={} op={} issuer={} approvers=[{}]\n",
            g.artifact_id,
            g.workload,
            g.grant_id,
            when(g.expires_unix),
            g.uses_left
                .map_or("unlimited".to_owned(), |n| n.to_string()),
            if g.operation_key.is_empty() {
                "-"
            } else {
                &g.operation_key
            },
            g.issuer,
            g.approvers.join(",")
        ));
        for c in &g.capabilities {
            s.push_str(&format!("    {c}\n"));
        }
    }
    Ok(s.trim_end().to_owned())
}
