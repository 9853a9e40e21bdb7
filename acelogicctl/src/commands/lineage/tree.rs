//! `acelogicctl lineage tree EXEC_ID`: the process tree around an exec,
//! indented, each process with its records.

use std::{collections::HashMap, fmt::Write as _};

use super::{
    Target,
    record::{decode, describe, process_of, record_json, seq},
};
use crate::{
    CtlResult, connect,
    error::{Peer, from_status},
};
use acelogic_proto::collector as pb;

#[derive(Debug, clap::Args)]
pub struct Args {
    exec_id: String,
}

pub fn exec(args: &Args, t: &Target, json: bool) -> CtlResult<String> {
    connect::block(tree(t, &args.exec_id, json))
}

fn render_tree(t: &pb::TreeResponse, asked: &str) -> String {
    let by_id: HashMap<&str, &pb::TreeProcess> = t
        .processes
        .iter()
        .map(|p| (p.exec_id.as_str(), p))
        .collect();
    let mut children: HashMap<&str, Vec<&pb::TreeProcess>> = HashMap::new();
    let mut roots = Vec::new();
    for p in &t.processes {
        if by_id.contains_key(p.parent_exec_id.as_str()) && p.parent_exec_id != p.exec_id {
            children
                .entry(p.parent_exec_id.as_str())
                .or_default()
                .push(p);
        } else {
            roots.push(p);
        }
    }
    let mut out = String::new();
    let mut stack: Vec<(&pb::TreeProcess, usize)> =
        roots.into_iter().rev().map(|p| (p, 0)).collect();
    while let Some((p, level)) = stack.pop() {
        let pad = "    ".repeat(level);
        let first = p
            .records
            .iter()
            .filter_map(decode)
            .find_map(|r| process_of(&r).cloned());
        let _ = write!(out, "{pad}{}", p.exec_id);
        if let Some(pr) = first {
            let _ = write!(out, " pid {} {}", pr.pid, pr.comm);
            if !pr.workload.is_empty() {
                let _ = write!(out, " workload {}", pr.workload);
            }
        }
        if p.exec_id == asked {
            out.push_str("   <== asked");
        }
        out.push('\n');
        for r in &p.records {
            let _ = writeln!(out, "{pad}  | {}", describe(r));
        }
        if let Some(kids) = children.get_mut(p.exec_id.as_str()) {
            // Children in the order they appeared (their first record).
            kids.sort_by_key(|k| k.records.iter().map(seq).min().unwrap_or(u64::MAX));
            for k in kids.iter().rev() {
                stack.push((k, level + 1));
            }
        }
    }
    if t.truncated {
        out.push_str("(truncated: more descendants than one answer holds)\n");
    }
    out
}

pub async fn tree(t: &Target, exec_id: &str, json: bool) -> CtlResult<String> {
    let mut c = connect::collector(t).await?;
    let r = c
        .tree(pb::TreeRequest {
            exec_id: exec_id.to_owned(),
        })
        .await
        .map_err(|s| from_status(&s, Peer::Collector))?
        .into_inner();
    if json {
        let processes: Vec<serde_json::Value> = r
            .processes
            .iter()
            .map(|p| {
                serde_json::json!({
                    "execId": p.exec_id, "parentExecId": p.parent_exec_id, "depth": p.depth,
                    "records": p.records.iter().map(record_json).collect::<Vec<_>>(),
                })
            })
            .collect();
        return Ok(
            serde_json::json!({"processes": processes, "truncated": r.truncated}).to_string(),
        );
    }
    Ok(render_tree(&r, exec_id))
}
