//! `acelogicctl lineage artifact ID`: the request it was issued for (the
//! authority's records: evidence, tier, approvers), who issued and
//! approved it, its authorization records on nodes and the decisions that
//! used it.

use std::fmt::Write as _;

use super::{
    Target,
    record::{decode, describe, process_of, record_json},
};
use crate::{
    CtlResult, connect,
    error::{Peer, from_status},
};
use acelogic_lineage::pb::record::Body;
use acelogic_proto::collector as pb;

#[derive(Debug, clap::Args)]
pub struct Args {
    id: String,
}

pub fn exec(args: &Args, t: &Target, json: bool) -> CtlResult<String> {
    connect::block(artifact(t, &args.id, json))
}

/// An artifact's authorization records and the decisions that used it.
pub async fn artifact(t: &Target, id: &str, json: bool) -> CtlResult<String> {
    let mut c = connect::collector(t).await?;
    let r = c
        .artifact(pb::ArtifactRequest {
            artifact_id: id.to_owned(),
        })
        .await
        .map_err(|s| from_status(&s, Peer::Collector))?
        .into_inner();
    if json {
        return Ok(serde_json::json!({
            "issuances": r.issuances.iter().map(record_json).collect::<Vec<_>>(),
            "authorizations": r.authorizations.iter().map(record_json).collect::<Vec<_>>(),
            "decisions": r.decisions.iter().map(record_json).collect::<Vec<_>>(),
            "truncated": r.truncated,
        })
        .to_string());
    }
    let mut out = format!("artifact {id}\n");
    let accepted = r
        .authorizations
        .iter()
        .filter_map(decode)
        .find_map(|rec| match rec.body {
            Some(Body::Authorization(a)) if a.outcome == "accepted" => Some(a),
            _ => None,
        });
    if let Some(a) = accepted {
        let _ = writeln!(
            out,
            "  workload {}, issuer {}, approvers {}",
            a.workload,
            a.issuer,
            if a.approvers.is_empty() {
                "(none)".to_owned()
            } else {
                a.approvers.join(", ")
            }
        );
        for cap in &a.capabilities {
            let _ = writeln!(out, "  grants {cap}");
        }
    }
    if !r.issuances.is_empty() {
        let _ = writeln!(out, "request at the authority ({}):", r.issuances.len());
        for i in &r.issuances {
            let _ = writeln!(out, "  {}", describe(i));
        }
    }
    let _ = writeln!(out, "authorization records ({}):", r.authorizations.len());
    for a in &r.authorizations {
        let _ = writeln!(out, "  {}", describe(a));
    }
    let _ = writeln!(out, "decisions that used it ({}):", r.decisions.len());
    for d in &r.decisions {
        let who = decode(d)
            .and_then(|rec| process_of(&rec).map(|p| format!("{} pid {} ", p.exec_id, p.pid)))
            .unwrap_or_default();
        let _ = writeln!(out, "  {who}{}", describe(d));
    }
    if r.truncated {
        out.push_str("(truncated)\n");
    }
    Ok(out)
}
