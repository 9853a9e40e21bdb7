//! `acelogicctl lineage ...`: questions to the collector's `Query`
//! service, answered readably (an indented process tree, one line per
//! decision with its verdict and reason) or as JSON (`--json`; `export`
//! prints JSON lines).
//!
//! A record in JSON: `{"node", "journalId", "seq", "hash", "prevHash",
//! "record": {...}}`, `record` being the lineage Record with camelCase
//! fields (the same rendering the collector stores in `records.json`).
//!
//! One module per subcommand, as one level up.

use std::{
    path::PathBuf,
    time::{SystemTime, UNIX_EPOCH},
};

use clap::Subcommand;

pub use crate::connect::{DEFAULT_COLLECTOR, Target};
use crate::{CtlError, CtlResult};

pub mod artifact;
pub mod checkpoints;
pub mod denials;
pub mod exec_id;
pub mod export;
pub mod head;
pub mod record;
pub mod tree;
pub mod verify;

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The collector (http:// or https://).
    #[arg(long, global = true, value_name = "URL", default_value = DEFAULT_COLLECTOR)]
    collector: String,
    /// CA certificate (PEM) of an https collector.
    #[arg(long, global = true, value_name = "FILE")]
    collector_ca: Option<PathBuf>,
    /// Client certificate (PEM) to present to an https collector that
    /// requires one (--client-ca); see `acelogicctl certs issue`.
    #[arg(long, global = true, value_name = "FILE", requires = "collector_key")]
    collector_cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, global = true, value_name = "FILE", requires = "collector_cert")]
    collector_key: Option<PathBuf>,
    /// JSON output (export always prints JSON lines).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The process tree around EXEC_ID: ancestors, descendants, and every
    /// exec, fork, exit and decision of each.
    Tree(tree::Args),
    /// The exec id of a live process on this node (from procfs; asks no
    /// collector): what `tree` takes.
    ExecId(exec_id::Args),
    /// An artifact: issuer, approvers, its authorization records and every
    /// decision that used it.
    Artifact(artifact::Args),
    /// Denied decisions of a workload.
    Denials(denials::Args),
    /// Recompute a node's chains and check the collector's checkpoints;
    /// exit 1 when a record was altered or removed.
    Verify(verify::Args),
    /// On the node: the newest head the collector acknowledged, signed by
    /// the node key (asks no collector). Keep it; `verify --anchors` takes it.
    Head(head::Args),
    /// The newest signed checkpoint of each of a node's chains, for an
    /// auditor to keep outside the collector (append it to a file).
    Checkpoints(checkpoints::Args),
    /// Stored records as JSON lines.
    Export(export::Args),
}

pub fn exec(args: &Args) -> CtlResult<String> {
    let t = Target {
        url: args.collector.clone(),
        ca: args.collector_ca.clone(),
        identity: args.collector_cert.clone().zip(args.collector_key.clone()),
    };
    let json = args.json;
    match &args.command {
        Command::Tree(a) => tree::exec(a, &t, json),
        Command::ExecId(a) => exec_id::exec(a),
        Command::Artifact(a) => artifact::exec(a, &t, json),
        Command::Denials(a) => denials::exec(a, &t, json),
        Command::Verify(a) => verify::exec(a, &t, json),
        Command::Head(a) => head::exec(a),
        Command::Checkpoints(a) => checkpoints::exec(a, &t),
        Command::Export(a) => export::exec(a, &t),
    }
}

/// Parses `--since`: an RFC 3339 time, or a duration meaning that long
/// ago (`1h`, `30m`, `2days`). Returns ns since the Unix epoch.
pub fn parse_since(s: &str) -> CtlResult<u64> {
    let t = humantime::parse_rfc3339_weak(s)
        .or_else(|_| {
            humantime::parse_duration(s).map(|d| SystemTime::now().checked_sub(d).unwrap_or(UNIX_EPOCH))
        })
        .map_err(|_| {
            CtlError::input(format!(
                "--since {s:?} is neither an RFC 3339 time (2026-01-02T03:04:05Z) nor a duration (1h, 30m)"
            ))
        })?;
    Ok(t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)))
}
