//! Anchors: signed chain heads kept outside the store, checked against
//! it by `Verify`.
//!
//! Someone with write access to the store can delete a chain's newest
//! records, move its head back and delete the checkpoints above: what is
//! left recomputes and its checkpoints verify. What they cannot do is
//! make the store agree with a head signed and kept elsewhere:
//!
//! - a **node head** ([`note::Signer::Node`]): the newest head the
//!   collector acknowledged, signed by the node key and kept on the node;
//! - a **checkpoint** an auditor kept ([`note::Signer::Collector`]).
//!
//! For each anchor of the node asked about: its signature must verify
//! with the node's enrolled key (a node head) or the collector's key (a
//! checkpoint); the store must hold its chain, an entry at its seq
//! hashing to its hash, and, for a checkpoint, the same checkpoint at the
//! same index of the chain's log. Anything else is a problem that fails
//! the verification and says what is missing.

use ed25519_dalek::VerifyingKey;
use rusqlite::{Connection, OptionalExtension as _, params};

use super::{
    pb::{ChainReport, Problem},
    to_i64, to_u64,
};
use acelogic_lineage::note::{self, Head, Signer};

/// At most this many anchors per request.
pub const MAX_ANCHORS: usize = 10_000;

fn problem(report: &mut ChainReport, seq: u64, kind: &str, detail: String) {
    report.problems.push(Problem {
        seq,
        kind: kind.to_owned(),
        detail,
    });
}

fn when(ns: u64) -> String {
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns))
        .to_string()
}

fn what(h: &Head) -> String {
    match (h.signer(), h.log) {
        (Signer::Collector, Some(l)) => format!(
            "the collector's checkpoint {} (seq {}, signed {})",
            l.index,
            h.seq,
            when(h.time_unix_nano)
        ),
        _ => format!(
            "the node's acknowledged head (seq {}, signed {})",
            h.seq,
            when(h.time_unix_nano)
        ),
    }
}

/// Checks `anchors` (signed notes) of `node` against the store; problems
/// land in the report of the chain they name, and a chain the store does
/// not hold at all gets a report of its own in `reports`.
pub fn check(
    db: &Connection,
    node: &str,
    anchors: &[String],
    collector_key: &VerifyingKey,
    reports: &mut Vec<ChainReport>,
) -> rusqlite::Result<()> {
    let node_key: Option<VerifyingKey> = db
        .query_row(
            "SELECT public_key FROM nodes WHERE name = ?1",
            [node],
            |r| r.get::<_, Vec<u8>>(0),
        )
        .optional()?
        .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok())
        .and_then(|b| VerifyingKey::from_bytes(&b).ok());
    for (i, text) in anchors.iter().enumerate() {
        let Ok(claimed) = note::peek(text) else {
            // acelogicctl refuses unparsable anchors before asking; a raw
            // client gets it named here.
            let r = report_for(reports, &[0; 16]);
            problem(
                r,
                0,
                "bad-anchor",
                format!("anchor {i} is not a lineage head note"),
            );
            continue;
        };
        if claimed.node != node {
            continue;
        }
        let r = report_for(reports, &claimed.journal_id);
        r.anchors += 1;
        let key = match claimed.signer() {
            Signer::Collector => Some(*collector_key),
            Signer::Node => node_key,
        };
        let opened = key.map(|k| note::open(text, &k));
        let head = match opened {
            Some(Ok(h)) => h,
            Some(Err(e)) => {
                problem(
                    r,
                    claimed.seq,
                    "bad-anchor",
                    format!(
                        "anchor {i}, {}: {e} (forged, or the key on record was replaced)",
                        what(&claimed)
                    ),
                );
                continue;
            }
            None => {
                problem(
                    r,
                    claimed.seq,
                    "bad-anchor",
                    format!(
                        "anchor {i}, {}: the store holds no usable key of node {node:?}",
                        what(&claimed)
                    ),
                );
                continue;
            }
        };
        check_one(db, &head, r)?;
    }
    Ok(())
}

/// The report of chain `journal_id`, made when the store holds no such
/// chain.
fn report_for<'a>(reports: &'a mut Vec<ChainReport>, journal_id: &[u8; 16]) -> &'a mut ChainReport {
    let at = match reports.iter().position(|r| r.journal_id == journal_id) {
        Some(at) => at,
        None => {
            reports.push(ChainReport {
                journal_id: journal_id.to_vec(),
                ..ChainReport::default()
            });
            reports.len() - 1
        }
    };
    &mut reports[at]
}

fn check_one(db: &Connection, head: &Head, r: &mut ChainReport) -> rusqlite::Result<()> {
    let chain: Option<(i64, i64)> = db
        .query_row(
            "SELECT id, head_seq FROM chains WHERE node = ?1 AND journal_id = ?2",
            params![head.node, head.journal_id.as_slice()],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    let Some((chain, head_seq)) = chain else {
        problem(
            r,
            head.seq,
            "tail-cut",
            format!(
                "{} vouches for this chain up to seq {}; the store holds no such chain \
                 (seq 1..={} removed)",
                what(head),
                head.seq,
                head.seq
            ),
        );
        return Ok(());
    };
    let stored: Option<Vec<u8>> = db
        .query_row(
            "SELECT hash FROM records WHERE chain = ?1 AND seq = ?2",
            params![chain, to_i64(head.seq)],
            |row| row.get(0),
        )
        .optional()?;
    let head_seq = to_u64(head_seq);
    match stored {
        Some(h) if h == head.hash => {}
        Some(h) => problem(
            r,
            head.seq,
            "anchor-mismatch",
            format!(
                "{} signed hash {} at seq {}; the store holds {} there (rewritten)",
                what(head),
                hex::encode(head.hash),
                head.seq,
                hex::encode(h)
            ),
        ),
        None if head.seq > head_seq => problem(
            r,
            head_seq + 1,
            "tail-cut",
            format!(
                "{} vouches for seq {}; the store ends at seq {head_seq}: seq {}..={} were \
                 removed after they were stored",
                what(head),
                head.seq,
                head_seq + 1,
                head.seq
            ),
        ),
        None if head.seq == 0 => {}
        None => problem(
            r,
            head.seq,
            "tail-cut",
            format!(
                "{} vouches for seq {}, which the store does not hold (removed)",
                what(head),
                head.seq
            ),
        ),
    }
    if let Some(link) = head.log {
        let kept: Option<String> = db
            .query_row(
                "SELECT note FROM checkpoints WHERE chain = ?1 AND log_index = ?2",
                params![chain, to_i64(link.index)],
                |row| row.get(0),
            )
            .optional()?
            .flatten();
        let same = kept
            .as_deref()
            .and_then(|k| note::peek(k).ok())
            .is_some_and(|k| k == *head);
        if !same {
            problem(
                r,
                head.seq,
                "checkpoint-missing",
                format!(
                    "{} is {} in the store",
                    what(head),
                    if kept.is_some() {
                        "replaced by another"
                    } else {
                        "not"
                    }
                ),
            );
        }
    }
    Ok(())
}
