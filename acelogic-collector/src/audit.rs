//! `Verify`: recompute a node's stored chains from the raw record bytes
//! and check the collector's signed checkpoints against them.
//!
//! Per chain, in seq order: each entry's hash is recomputed from
//! (node, journal id, seq, prev_hash, record); each prev_hash must be the
//! previous entry's hash; a jump in seq must be exactly a recorded gap;
//! each record must decode, name the node, and still match the columns
//! derived from it, its `processes` row included (a row edited with SQL
//! is found even when its bytes were left alone). The chain's head row must be its last entry. Each
//! checkpoint must carry a valid signature of the collector's key, and
//! the stored entry at its seq must still hash to the head it signed: a
//! chain rewritten consistently after an edit, or cut short, fails there.

use ed25519_dalek::{Signature, VerifyingKey};
use prost::Message as _;
use rusqlite::{Connection, params};

use super::{
    checkpoint,
    pb::{ChainReport, Gap, Problem, VerifyResponse},
    store::Columns,
    to_u64,
};
use acelogic_lineage::{
    chain::{self, GENESIS, Hash, JOURNAL_ID_LEN},
    note, pb as lpb,
};

fn hash_of(b: &[u8]) -> Option<Hash> {
    b.try_into().ok()
}

struct Row {
    seq: u64,
    prev_hash: Vec<u8>,
    hash: Vec<u8>,
    record: Vec<u8>,
    columns: Columns<String>,
}

fn problem(report: &mut ChainReport, seq: u64, kind: &str, detail: String) {
    // Keep reports bounded: a chain rewritten from seq 1 is one finding.
    if report.problems.len() < 100 {
        report.problems.push(Problem {
            seq,
            kind: kind.to_owned(),
            detail,
        });
    }
}

fn altered(report: &mut ChainReport, seq: u64) {
    if report.first_altered_seq == 0 || seq < report.first_altered_seq {
        report.first_altered_seq = seq;
    }
}

fn stored_columns(r: &rusqlite::Row<'_>) -> rusqlite::Result<Columns<String>> {
    Ok(Columns {
        time_unix_nano: to_u64(r.get(5)?),
        kind: "",
        exec_id: r.get(7)?,
        parent_exec_id: r.get(8)?,
        pid: r.get(9)?,
        workload: r.get(10)?,
        hook: r.get(11)?,
        verdict: r.get(12)?,
        reason: r.get(13)?,
        artifact_id: r.get(14)?,
        object: r.get(15)?,
    })
}

/// Verifies every chain of `node`, and the store against `anchors`
/// (signed heads kept elsewhere, see [`super::anchor`]); `key` is the
/// collector's checkpoint key.
pub fn verify_node(
    db: &Connection,
    node: &str,
    key: &VerifyingKey,
    key_id: &str,
    anchors: &[String],
) -> rusqlite::Result<VerifyResponse> {
    let chains: Vec<(i64, Vec<u8>, i64, Vec<u8>)> = db
        .prepare(
            "SELECT id, journal_id, head_seq, head_hash FROM chains WHERE node = ?1 ORDER BY id",
        )?
        .query_map([node], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut out = VerifyResponse {
        node: node.to_owned(),
        chains: Vec::with_capacity(chains.len()),
        ok: true,
        checkpoint_key_id: key_id.to_owned(),
    };
    let mut cuts = db.prepare(
        "SELECT time_unix_nano, detail FROM alarms WHERE chain = ?1 AND kind = 'tail-cut' ORDER BY id",
    )?;
    for (id, journal_id, head_seq, head_hash) in chains {
        let mut report =
            verify_chain(db, node, id, &journal_id, to_u64(head_seq), &head_hash, key)?;
        // What the node itself reported when it came back.
        for cut in cuts.query_map([id], |r| Ok((to_u64(r.get(0)?), r.get::<_, String>(1)?)))? {
            let (at, detail) = cut?;
            problem(
                &mut report,
                0,
                "tail-cut",
                format!(
                    "alarm of {}: {detail}",
                    humantime::format_rfc3339_seconds(
                        std::time::UNIX_EPOCH + std::time::Duration::from_nanos(at)
                    )
                ),
            );
        }
        out.chains.push(report);
    }
    drop(cuts);
    super::anchor::check(db, node, anchors, key, &mut out.chains)?;
    for c in &mut out.chains {
        c.problems.sort_by_key(|p| p.seq);
        out.ok &= c.problems.is_empty();
    }
    Ok(out)
}

fn verify_chain(
    db: &Connection,
    node: &str,
    chain_id: i64,
    journal_id: &[u8],
    head_seq: u64,
    head_hash: &[u8],
    key: &VerifyingKey,
) -> rusqlite::Result<ChainReport> {
    let mut report = ChainReport {
        journal_id: journal_id.to_vec(),
        head_seq,
        head_hash: head_hash.to_vec(),
        ..ChainReport::default()
    };
    let Ok(jid) = <[u8; JOURNAL_ID_LEN]>::try_from(journal_id) else {
        problem(
            &mut report,
            0,
            "altered",
            format!("journal_id is {} bytes", journal_id.len()),
        );
        return Ok(report);
    };
    report.gaps = db
        .prepare("SELECT from_seq, to_seq, detected_unix_nano FROM gaps WHERE chain = ?1 ORDER BY from_seq")?
        .query_map([chain_id], |r| {
            Ok(Gap {
                from_seq: to_u64(r.get(0)?),
                to_seq: to_u64(r.get(1)?),
                detected_unix_nano: to_u64(r.get(2)?),
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    let gaps = report.gaps.clone();
    let is_gap = |from: u64, to: u64| gaps.iter().any(|g| g.from_seq == from && g.to_seq == to);
    let mut missing = Vec::new();

    let mut stmt = db.prepare(
        "SELECT r.seq, r.prev_hash, r.hash, r.record, r.kind, r.time_unix_nano, r.node, p.exec_id, \
         p.parent_exec_id, r.pid, r.workload, r.hook, r.verdict, r.reason, r.artifact_id, r.object \
         FROM records r LEFT JOIN processes p ON p.id = r.process WHERE r.chain = ?1 ORDER BY r.seq",
    )?;
    let mut rows = stmt.query([chain_id])?;
    let mut before: Option<(u64, Vec<u8>)> = None;
    let mut pending: Vec<(u64, &'static str, String)> = Vec::new();
    while let Some(r) = rows.next()? {
        let kind: String = r.get(4)?;
        let row_node: String = r.get(6)?;
        let row = Row {
            seq: to_u64(r.get(0)?),
            prev_hash: r.get(1)?,
            hash: r.get(2)?,
            record: r.get(3)?,
            columns: stored_columns(r)?,
        };
        report.records += 1;
        if report.first_seq == 0 {
            report.first_seq = row.seq;
        }
        let seq = row.seq;
        // Link to what came before.
        let expected = before.as_ref().map_or(1, |(s, _)| s + 1);
        if seq > expected {
            if !is_gap(expected, seq - 1) {
                missing.push((expected, seq - 1));
            }
        } else if seq == 1 {
            if row.prev_hash != GENESIS {
                pending.push((
                    seq,
                    "broken-chain",
                    "seq 1 does not start from the genesis hash".into(),
                ));
            }
        } else if let Some((s, h)) = &before
            && &row.prev_hash != h
        {
            pending.push((
                seq,
                "broken-chain",
                format!(
                    "prev_hash is not the stored hash of seq {s} (seq {s} or {seq} was altered)"
                ),
            ));
            altered(&mut report, *s);
        }
        // The entry itself.
        match (hash_of(&row.prev_hash), hash_of(&row.hash)) {
            (Some(prev), Some(hash))
                if chain::entry_hash(node, &jid, seq, &prev, &row.record) == hash => {}
            _ => {
                pending.push((
                    seq,
                    "altered",
                    "the stored record no longer hashes to the entry's hash".into(),
                ));
                altered(&mut report, seq);
            }
        }
        match lpb::Record::decode(row.record.as_slice()) {
            Err(e) => {
                pending.push((
                    seq,
                    "undecodable",
                    format!("the stored record does not decode: {e}"),
                ));
                altered(&mut report, seq);
            }
            Ok(record) => {
                if record.node != node || row_node != node {
                    pending.push((
                        seq,
                        "wrong-node",
                        format!("the record names node {:?}", record.node),
                    ));
                    altered(&mut report, seq);
                }
                let mut derived = Columns::of(&record);
                let derived_kind = derived.kind;
                derived.kind = "";
                if derived != row.columns.map(String::as_str) || derived_kind != kind {
                    pending.push((
                        seq,
                        "altered",
                        "the row's columns no longer match its record (edited with SQL)".into(),
                    ));
                    altered(&mut report, seq);
                }
            }
        }
        before = Some((seq, row.hash));
    }
    drop(rows);
    for (from, to) in missing {
        problem(
            &mut report,
            from,
            "missing",
            format!("seq {from}..={to} are not stored and no gap was recorded for them (deleted)"),
        );
        altered(&mut report, from);
    }
    for (seq, kind, detail) in pending {
        problem(&mut report, seq, kind, detail);
    }
    match &before {
        Some((s, h)) if *s == head_seq && h.as_slice() == head_hash => {}
        Some((s, _)) => problem(
            &mut report,
            *s,
            "head-mismatch",
            format!("the chain's head says seq {head_seq}, its last stored entry is seq {s}"),
        ),
        None if head_seq == 0 => {}
        None => problem(
            &mut report,
            0,
            "head-mismatch",
            format!("the chain's head says seq {head_seq} but no entry is stored"),
        ),
    }
    check_checkpoints(db, node, chain_id, &jid, key, &mut report)?;
    report.problems.sort_by_key(|p| p.seq);
    Ok(report)
}

/// A stored checkpoint row.
struct Checkpoint {
    id: i64,
    seq: i64,
    signed_hash: Vec<u8>,
    time: i64,
    signature: Vec<u8>,
    node: String,
    journal_id: Vec<u8>,
    log_index: Option<i64>,
    note: Option<String>,
}

impl Checkpoint {
    /// Whether the row is signed by `key` and says what its note says.
    fn valid(&self, node: &str, jid: &[u8; JOURNAL_ID_LEN], key: &VerifyingKey) -> bool {
        let seq = to_u64(self.seq);
        let Some(h) = hash_of(&self.signed_hash) else {
            return false;
        };
        if self.node != node || self.journal_id != jid {
            return false;
        }
        match (&self.note, self.log_index) {
            // Signed before checkpoints formed a log.
            (None, None) => Signature::from_slice(&self.signature).is_ok_and(|sig| {
                key.verify_strict(
                    &checkpoint::message(node, jid, seq, &h, to_u64(self.time)),
                    &sig,
                )
                .is_ok()
            }),
            (Some(text), Some(index)) => note::open(text, key).is_ok_and(|n| {
                n == note::Head {
                    node: node.to_owned(),
                    journal_id: *jid,
                    seq,
                    hash: h,
                    time_unix_nano: to_u64(self.time),
                    log: n.log.filter(|l| l.index == to_u64(index)),
                } && n.log.is_some()
            }),
            _ => false,
        }
    }
}

/// The chain's checkpoint log: indexes 1, 2, ... with no hole, each
/// linked to the text of the one before, seqs never going back. A
/// checkpoint removed from the middle (or the start) breaks it; the
/// newest ones removed need an anchor kept elsewhere.
fn check_log(cps: &[Checkpoint], report: &mut ChainReport) {
    let mut logged: Vec<(u64, note::Head)> = cps
        .iter()
        .filter_map(|c| Some((to_u64(c.log_index?), note::peek(c.note.as_deref()?).ok()?)))
        .collect();
    logged.sort_by_key(|(i, _)| *i);
    let mut before: Option<&(u64, note::Head)> = None;
    for entry in &logged {
        let (index, head) = entry;
        let link = head.log.unwrap_or(note::LogLink {
            index: 0,
            prev: [0; 32],
        });
        let expected = before.map_or(1, |(i, _)| i + 1);
        if *index > expected {
            problem(
                report,
                head.seq,
                "checkpoint-missing",
                format!(
                    "checkpoint(s) {expected}..={} of this chain's log are not stored (deleted): \
                     checkpoint {index} (seq {}) follows {}",
                    index - 1,
                    head.seq,
                    before.map_or_else(|| "nothing".to_owned(), |(i, _)| format!("checkpoint {i}"))
                ),
            );
        } else if let Some((i, prev)) = before
            && link.prev != note::text_hash(&prev.text())
        {
            problem(
                report,
                head.seq,
                "checkpoint-missing",
                format!("checkpoint {index} does not link to the stored checkpoint {i} (replaced)"),
            );
        }
        if let Some((i, prev)) = before
            && head.seq < prev.seq
        {
            problem(
                report,
                head.seq,
                "checkpoint-mismatch",
                format!(
                    "checkpoint {index} signed seq {}, before checkpoint {i}'s seq {}",
                    head.seq, prev.seq
                ),
            );
        }
        before = Some(entry);
    }
}

fn check_checkpoints(
    db: &Connection,
    node: &str,
    chain_id: i64,
    jid: &[u8; JOURNAL_ID_LEN],
    key: &VerifyingKey,
    report: &mut ChainReport,
) -> rusqlite::Result<()> {
    let cps: Vec<Checkpoint> = db
        .prepare(
            "SELECT id, seq, head_hash, time_unix_nano, signature, node, journal_id, log_index, note \
             FROM checkpoints WHERE chain = ?1 ORDER BY seq",
        )?
        .query_map([chain_id], |r| {
            Ok(Checkpoint {
                id: r.get(0)?,
                seq: r.get(1)?,
                signed_hash: r.get(2)?,
                time: r.get(3)?,
                signature: r.get(4)?,
                node: r.get(5)?,
                journal_id: r.get(6)?,
                log_index: r.get(7)?,
                note: r.get(8)?,
            })
        })?
        .collect::<rusqlite::Result<_>>()?;
    check_log(&cps, report);
    let mut at_seq =
        db.prepare("SELECT prev_hash, hash, record FROM records WHERE chain = ?1 AND seq = ?2")?;
    for cp in cps {
        report.checkpoints += 1;
        let valid = cp.valid(node, jid, key);
        let Checkpoint {
            id,
            seq,
            signed_hash,
            ..
        } = cp;
        let seq = to_u64(seq);
        if !valid {
            problem(
                report,
                seq,
                "bad-checkpoint",
                format!(
                    "checkpoint {id} at seq {seq} is not signed by the collector's key (altered)"
                ),
            );
            continue;
        }
        let stored: Option<(Vec<u8>, Vec<u8>, Vec<u8>)> = at_seq
            .query_row(params![chain_id, super::to_i64(seq)], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .ok();
        match stored {
            None => problem(
                report,
                seq,
                "checkpoint-beyond-head",
                format!(
                    "checkpoint {id} signed seq {seq}, which is no longer stored (the chain was cut)"
                ),
            ),
            Some((prev, hash, record)) => {
                let recomputed =
                    hash_of(&prev).map(|p| chain::entry_hash(node, jid, seq, &p, &record));
                if hash != signed_hash || recomputed.is_none_or(|h| h.as_slice() != signed_hash) {
                    problem(
                        report,
                        seq,
                        "checkpoint-mismatch",
                        format!(
                            "checkpoint {id} signed hash {} at seq {seq}; the stored chain now hashes to {}",
                            hex::encode(&signed_hash),
                            hex::encode(recomputed.unwrap_or_default())
                        ),
                    );
                }
            }
        }
    }
    Ok(())
}
