//! `acelogicctl operations`: operation keys in the cluster store, asked of
//! the node daemon (which must run with `--etcd-endpoints`).

use std::path::Path;

use crate::{
    CtlResult, connect,
    error::{Peer, from_status},
    output::when,
};
use acelogic_proto::agent as pb;

#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Every operation key the store holds anything for.
    List {
        #[arg(long)]
        json: bool,
    },
    /// One key: its holder and fencing token, intent, completion. A
    /// governed agent may ask, to learn its own token.
    Show {
        key: String,
        #[arg(long)]
        json: bool,
    },
    /// Release a key: its holder, intent and completion go, and the
    /// holder's node removes the kernel grant at once. For an operation
    /// that is unsettled (its node failed before reporting) or that must
    /// run again. Refused to governed callers; recorded.
    Release {
        key: String,
        /// Why (recorded in lineage).
        #[arg(long)]
        reason: String,
    },
}

pub fn exec(cmd: &Command, socket: &Path) -> CtlResult<String> {
    connect::block(async {
        match cmd {
            Command::List { json } => Ok(render(&list(socket, "").await?, *json)),
            Command::Show { key, json } => Ok(render(&list(socket, key).await?, *json)),
            Command::Release { key, reason } => release(socket, key, reason).await,
        }
    })
}

async fn list(socket: &Path, key: &str) -> CtlResult<Vec<pb::Operation>> {
    let mut c = connect::daemon(socket).await?;
    Ok(c.operations(pb::OperationsRequest {
        key: key.to_owned(),
    })
    .await
    .map_err(|s| from_status(&s, Peer::Daemon))?
    .into_inner()
    .operations)
}

async fn release(socket: &Path, key: &str, reason: &str) -> CtlResult<String> {
    let mut c = connect::daemon(socket).await?;
    let r = c
        .release_operation(pb::ReleaseOperationRequest {
            key: key.to_owned(),
            reason: reason.to_owned(),
        })
        .await
        .map_err(|s| from_status(&s, Peer::Daemon))?
        .into_inner();
    let was = r.released.as_ref().map_or_else(|| "free".to_owned(), line);
    Ok(format!("released operation key {key:?}; it was: {was}"))
}

fn json(o: &pb::Operation) -> serde_json::Value {
    serde_json::json!({
        "key": o.key, "state": o.state,
        "holder": (!o.holder_artifact.is_empty()).then(|| serde_json::json!({
            "artifactId": o.holder_artifact, "node": o.holder_node,
            "workload": o.holder_workload, "untilUnix": o.holder_until_unix,
            "fencingToken": o.token})),
        "intent": (!o.intent_artifact.is_empty()).then(|| serde_json::json!({
            "artifactId": o.intent_artifact, "node": o.intent_node,
            "sinceUnix": o.intent_since_unix})),
        "completed": (!o.completed_artifact.is_empty()).then(|| serde_json::json!({
            "artifactId": o.completed_artifact, "node": o.completed_node,
            "atUnix": o.completed_at_unix, "fencingToken": o.completed_token})),
    })
}

/// One key on one line.
fn line(o: &pb::Operation) -> String {
    let mut out = format!("{} {}", o.key, o.state);
    if !o.holder_artifact.is_empty() {
        out.push_str(&format!(
            " by artifact {} on node {} (workload {}) until {}, fencing token {}",
            o.holder_artifact,
            o.holder_node,
            o.holder_workload,
            when(o.holder_until_unix),
            o.token
        ));
    } else if !o.intent_artifact.is_empty() {
        out.push_str(&format!(
            ": one-use artifact {} on node {} since {} never reported its use",
            o.intent_artifact,
            o.intent_node,
            when(o.intent_since_unix)
        ));
    }
    if !o.completed_artifact.is_empty() {
        out.push_str(&format!(
            "; completed by artifact {} on node {} at {} (fencing token {})",
            o.completed_artifact,
            o.completed_node,
            when(o.completed_at_unix),
            o.completed_token
        ));
    }
    out
}

fn render(ops: &[pb::Operation], as_json: bool) -> String {
    if as_json {
        return serde_json::Value::Array(ops.iter().map(json).collect()).to_string();
    }
    if ops.is_empty() {
        return "no operation keys in the cluster store".to_owned();
    }
    ops.iter().map(line).collect::<Vec<_>>().join("\n")
}
