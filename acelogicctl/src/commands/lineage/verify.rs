//! `acelogicctl lineage verify --node N`: recompute a node's chains on the
//! collector and check them against its checkpoints and the auditor's
//! anchors; exit 1 when a record was altered or removed.

use std::{fmt::Write as _, path::PathBuf};

use super::Target;
use crate::{
    CtlError, CtlResult, connect,
    error::{Peer, from_status},
    output::when_ns,
};
use acelogic_domain::Reason;
use acelogic_lineage::note;
use acelogic_proto::collector as pb;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long)]
    node: String,
    /// Also exit 1 when the chain has recorded gaps.
    #[arg(long)]
    strict: bool,
    /// Signed heads kept outside the collector's store (files of notes
    /// from `lineage head` on the node and `lineage checkpoints`): the
    /// store must still hold each, so removing the newest records or
    /// checkpoints is found.
    #[arg(long = "anchors", value_name = "FILE")]
    anchors: Vec<PathBuf>,
}

pub fn exec(args: &Args, t: &Target, json: bool) -> CtlResult<String> {
    let anchors = read_anchors(&args.anchors)?;
    connect::block(verify(t, &args.node, anchors, json, args.strict))
}

fn render_verify(v: &pb::VerifyResponse) -> String {
    let mut out = format!(
        "node {}: {} chain(s); checkpoints checked against {}\n",
        v.node,
        v.chains.len(),
        v.checkpoint_key_id
    );
    for c in &v.chains {
        let _ = writeln!(
            out,
            "chain {}: seq {}..={}, {} record(s), {} checkpoint(s), {} anchor(s)",
            hex::encode(&c.journal_id),
            c.first_seq,
            c.head_seq,
            c.records,
            c.checkpoints,
            c.anchors
        );
        for g in &c.gaps {
            let _ = writeln!(
                out,
                "  gap: seq {}..={} never reached the collector (recorded {})",
                g.from_seq,
                g.to_seq,
                when_ns(g.detected_unix_nano)
            );
        }
        for p in &c.problems {
            let _ = writeln!(out, "  PROBLEM seq {} [{}]: {}", p.seq, p.kind, p.detail);
        }
        if c.first_altered_seq != 0 {
            let _ = writeln!(out, "  first altered seq: {}", c.first_altered_seq);
        }
    }
    out.push_str(if v.ok {
        "verified: every chain recomputes from the stored bytes and matches its checkpoints and anchors\n"
    } else {
        "verification FAILED\n"
    });
    out
}

/// The signed head notes in anchor files, each checked to be one (not
/// yet its signature: the collector checks that against the keys).
pub fn read_anchors(files: &[PathBuf]) -> CtlResult<Vec<String>> {
    let mut out = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(f)
            .map_err(|e| CtlError::input(format!("anchor file {}: {e}", f.display())))?;
        let notes = note::split(&text);
        if notes.is_empty() {
            return Err(CtlError::input(format!(
                "anchor file {} holds no signed note",
                f.display()
            )));
        }
        for (i, n) in notes.into_iter().enumerate() {
            note::peek(&n).map_err(|e| {
                CtlError::input(format!("anchor file {}: note {}: {e}", f.display(), i + 1))
            })?;
            out.push(n);
        }
    }
    Ok(out)
}

/// Verifies a node's chains, and the store against `anchors`; exit 1
/// when a problem is found (or, with `strict`, a gap).
pub async fn verify(
    t: &Target,
    node: &str,
    anchors: Vec<String>,
    json: bool,
    strict: bool,
) -> CtlResult<String> {
    let mut c = connect::collector(t).await?;
    let v = c
        .verify(pb::VerifyRequest {
            node: node.to_owned(),
            anchors,
        })
        .await
        .map_err(|s| from_status(&s, Peer::Collector))?
        .into_inner();
    let text = if json {
        serde_json::json!({
            "node": v.node, "ok": v.ok, "checkpointKeyId": v.checkpoint_key_id,
            "chains": v.chains.iter().map(|c| serde_json::json!({
                "journalId": hex::encode(&c.journal_id), "firstSeq": c.first_seq, "headSeq": c.head_seq,
                "headHash": hex::encode(&c.head_hash), "records": c.records, "checkpoints": c.checkpoints,
                "anchors": c.anchors,
                "firstAlteredSeq": c.first_altered_seq,
                "gaps": c.gaps.iter().map(|g| serde_json::json!({"fromSeq": g.from_seq, "toSeq": g.to_seq,
                    "detectedUnixNano": g.detected_unix_nano})).collect::<Vec<_>>(),
                "problems": c.problems.iter().map(|p| serde_json::json!({"seq": p.seq, "kind": p.kind,
                    "detail": p.detail})).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        })
        .to_string()
    } else {
        render_verify(&v)
    };
    let gaps = v.chains.iter().map(|c| c.gaps.len()).sum::<usize>();
    if !v.ok || (strict && gaps > 0) {
        println!("{}", text.trim_end());
        let first = v
            .chains
            .iter()
            .map(|c| c.first_altered_seq)
            .filter(|s| *s != 0)
            .min();
        return Err(CtlError::refused(
            if v.ok {
                Reason::Gap
            } else {
                Reason::VerifyFailed
            },
            match first {
                Some(s) => format!("node {node}: first altered seq {s}"),
                None if v.ok => format!("node {node}: {gaps} recorded gap(s) (--strict)"),
                None => format!("node {node}: see the problems above"),
            },
        ));
    }
    Ok(text)
}
