//! How a stored record reads: one line for a person, or JSON.

use std::fmt::Write as _;

use prost::Message as _;

use crate::output::when_ns;
use acelogic_lineage::pb::{self as lpb, record::Body};
use acelogic_proto::collector::StoredRecord;

pub(super) fn decode(r: &StoredRecord) -> Option<lpb::Record> {
    lpb::Record::decode(r.entry.as_ref()?.record.as_slice()).ok()
}

/// The JSON form of a stored record.
#[must_use]
pub fn record_json(r: &StoredRecord) -> serde_json::Value {
    let e = r.entry.clone().unwrap_or_default();
    let record = decode(r).map_or(serde_json::Value::Null, |rec| {
        serde_json::to_value(rec).unwrap_or(serde_json::Value::Null)
    });
    serde_json::json!({
        "node": r.node,
        "journalId": hex::encode(&r.journal_id),
        "seq": e.seq,
        "hash": hex::encode(&e.hash),
        "prevHash": hex::encode(&e.prev_hash),
        "record": record,
    })
}

pub(super) fn seq(r: &StoredRecord) -> u64 {
    r.entry.as_ref().map_or(0, |e| e.seq)
}

fn verdict(verdict: &str, reason: &str) -> String {
    let v = if verdict == "deny" { "DENY" } else { verdict };
    if reason.is_empty() {
        v.to_owned()
    } else {
        format!("{v} ({reason})")
    }
}

/// One line about a record, without the process it is about.
#[must_use]
pub fn describe(r: &StoredRecord) -> String {
    let Some(rec) = decode(r) else {
        return format!("seq {}: undecodable record", seq(r));
    };
    let t = when_ns(rec.time_unix_nano);
    let body = match &rec.body {
        Some(Body::Decision(d)) => {
            let mut s = format!(
                "{} {} -> {}",
                d.hook,
                d.object,
                verdict(&d.verdict, &d.reason)
            );
            if !d.artifact_id.is_empty() {
                let _ = write!(s, " artifact {}", d.artifact_id);
            }
            s
        }
        Some(Body::Exec(e)) => {
            let mut s = format!("exec {}", e.filename);
            if !e.exe.is_empty() && e.exe != e.filename {
                let _ = write!(s, " exe {}", e.exe);
            }
            if !e.cwd.is_empty() {
                let _ = write!(s, " cwd {}", e.cwd);
            }
            if !e.argv.is_empty() {
                let _ = write!(
                    s,
                    " argv {:?}{}",
                    e.argv,
                    if e.argv_truncated { " (truncated)" } else { "" }
                );
            }
            if !e.enrichment.is_empty() {
                let _ = write!(s, " ({})", e.enrichment);
            }
            s
        }
        Some(Body::Fork(f)) => format!(
            "fork from {}",
            f.process.as_ref().map_or("", |p| p.parent_exec_id.as_str())
        ),
        Some(Body::Exit(x)) => format!("exit: {}", acelogic_lineage::wait_status(x.exit_code)),
        Some(Body::Authorization(a)) => {
            // A refusal before the artifact was read (a governed caller,
            // an unreadable envelope) has no artifact or workload.
            let mut s = format!("authorization {}", verdict(&a.outcome, &a.reason));
            if !a.artifact_id.is_empty() {
                let _ = write!(s, " artifact {}", a.artifact_id);
            }
            if !a.workload.is_empty() {
                let _ = write!(s, " for {}", a.workload);
            }
            if !a.issuer.is_empty() {
                let _ = write!(s, " issuer {}", a.issuer);
            }
            if !a.approvers.is_empty() {
                let _ = write!(s, " approvers {}", a.approvers.join(","));
            }
            s
        }
        Some(Body::Lifecycle(l)) => format!("daemon {} {}", l.event, l.detail),
        Some(Body::Loss(l)) => format!("LOSS {} x{} {}", l.what, l.count, l.detail),
        Some(Body::Issuance(i)) => issuance(i),
        None => "empty record".to_owned(),
    };
    format!("{t} {body}  [{} seq {}]", r.node, seq(r))
}

/// The authority's record of a request, in one line.
fn issuance(i: &lpb::Issuance) -> String {
    let mut s = format!("request {} {}", i.request_id, i.event.to_uppercase());
    if !i.code.is_empty() {
        let _ = write!(s, " [{}]", i.code);
    }
    match i.event.as_str() {
        "requested" => {
            let _ = write!(
                s,
                " by {} on {} (exec {}): {} for {:?}",
                i.workload,
                i.node,
                i.exec_id,
                i.capabilities.join("; "),
                i.reason
            );
            if !i.operation_key.is_empty() {
                let _ = write!(s, " operation {}", i.operation_key);
            }
            for e in &i.evidence {
                let _ = write!(s, " evidence {} sha256:{}", e.name, e.sha256);
            }
        }
        "approved" | "denied" if !i.approver.is_empty() => {
            let _ = write!(s, " by {} ({})", i.approver, i.approver_groups.join(","));
        }
        _ => {}
    }
    if !i.tier.is_empty() && matches!(i.event.as_str(), "queued" | "issued" | "refused") {
        let _ = write!(s, " tier {} rule {}", i.tier, i.rule);
    }
    if !i.artifact_id.is_empty() && i.event != "requested" {
        let _ = write!(s, " artifact {}", i.artifact_id);
    }
    if !i.approvers.is_empty() {
        let _ = write!(s, " approvers {}", i.approvers.join(","));
    }
    if !i.detail.is_empty() {
        let _ = write!(s, ": {}", i.detail);
    }
    s
}

pub(super) fn process_of(rec: &lpb::Record) -> Option<&lpb::Process> {
    match rec.body.as_ref()? {
        Body::Decision(d) => d.process.as_ref(),
        Body::Exec(e) => e.process.as_ref(),
        Body::Fork(f) => f.process.as_ref(),
        Body::Exit(x) => x.process.as_ref(),
        _ => None,
    }
}
