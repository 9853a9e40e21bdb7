//! `acelogicctl lineage ...`: questions to the collector's `Query`
//! service, answered readably (an indented process tree, one line per
//! decision with its verdict and reason) or as JSON (`--json`; `export`
//! prints JSON lines).
//!
//! A record in JSON: `{"node", "journalId", "seq", "hash", "prevHash",
//! "record": {...}}`, `record` being the lineage Record with camelCase
//! fields (the same rendering the collector stores in `records.json`).

use std::{
    collections::HashMap,
    fmt::Write as _,
    io::Write as _,
    path::{Path, PathBuf},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use prost::Message as _;
use tonic::transport::Channel;

use acelogic_domain::Reason;

use super::{CtlError, CtlResult, Peer, from_status};
use acelogic_lineage::{
    chain,
    enrich::proc_stat,
    note,
    pb::{self as lpb, record::Body},
    ship,
};
use acelogic_proto::collector::{self as pb, StoredRecord, query_client::QueryClient};

/// Where the collector is.
#[derive(Debug, Clone)]
pub struct Target {
    pub url: String,
    /// CA certificate for an `https://` collector.
    pub ca: Option<PathBuf>,
}

/// Default collector URL.
pub const DEFAULT_COLLECTOR: &str = "http://127.0.0.1:7400";

async fn connect(t: &Target) -> CtlResult<QueryClient<Channel>> {
    let ep = ship::endpoint(&t.url, t.ca.as_deref()).map_err(CtlError::input)?;
    let channel = ep.connect().await.map_err(|e| CtlError {
        exit: CtlError::UNREACHABLE,
        message: format!(
            "cannot reach the collector at {}: {e} (is acelogic-collector running? --collector)",
            t.url
        ),
    })?;
    Ok(QueryClient::new(channel).max_decoding_message_size(256 << 20))
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

fn when(ns: u64) -> String {
    humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_nanos(ns)).to_string()
}

fn decode(r: &StoredRecord) -> Option<lpb::Record> {
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

fn seq(r: &StoredRecord) -> u64 {
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
    let t = when(rec.time_unix_nano);
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
            if !e.argv.is_empty() {
                let _ = write!(s, " argv {:?}", e.argv);
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
        Some(Body::Exit(x)) => format!("exit status {:#x}", x.exit_code),
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
        None => "empty record".to_owned(),
    };
    format!("{t} {body}  [{} seq {}]", r.node, seq(r))
}

fn process_of(rec: &lpb::Record) -> Option<&lpb::Process> {
    match rec.body.as_ref()? {
        Body::Decision(d) => d.process.as_ref(),
        Body::Exec(e) => e.process.as_ref(),
        Body::Fork(f) => f.process.as_ref(),
        Body::Exit(x) => x.process.as_ref(),
        _ => None,
    }
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

/// The exec id the daemon gives the live process `pid` of this boot: the
/// same formula over the boot id and the process's start time, so it can
/// be asked for while the process runs and looked up once it is gone.
pub fn exec_id_of(pid: u32) -> CtlResult<String> {
    let boot = chain::boot_id().map_err(|e| CtlError::internal(format!("the boot id: {e}")))?;
    let stat = proc_stat(Path::new("/proc"), pid).ok_or_else(|| {
        CtlError::input(format!("no process {pid} (/proc/{pid}/stat unreadable)"))
    })?;
    Ok(chain::exec_id(&boot, stat.start_ticks, pid))
}

pub async fn tree(t: &Target, exec_id: &str, json: bool) -> CtlResult<String> {
    let mut c = connect(t).await?;
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

pub async fn artifact(t: &Target, id: &str, json: bool) -> CtlResult<String> {
    let mut c = connect(t).await?;
    let r = c
        .artifact(pb::ArtifactRequest {
            artifact_id: id.to_owned(),
        })
        .await
        .map_err(|s| from_status(&s, Peer::Collector))?
        .into_inner();
    if json {
        return Ok(serde_json::json!({
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

pub async fn denials(
    t: &Target,
    workload: &str,
    since: u64,
    until: u64,
    json: bool,
) -> CtlResult<String> {
    let mut c = connect(t).await?;
    let r = c
        .denials(pb::DenialsRequest {
            workload: workload.to_owned(),
            since_unix_nano: since,
            until_unix_nano: until,
            limit: 0,
        })
        .await
        .map_err(|s| from_status(&s, Peer::Collector))?
        .into_inner();
    if json {
        return Ok(serde_json::json!({
            "records": r.records.iter().map(record_json).collect::<Vec<_>>(),
            "truncated": r.truncated,
        })
        .to_string());
    }
    let mut out = format!(
        "{} denial(s) of workload {workload} since {}\n",
        r.records.len(),
        when(since)
    );
    for d in &r.records {
        let who = decode(d)
            .and_then(|rec| {
                process_of(&rec).map(|p| format!("{} pid {} {} ", p.exec_id, p.pid, p.comm))
            })
            .unwrap_or_default();
        let _ = writeln!(out, "  {who}{}", describe(d));
    }
    if r.truncated {
        out.push_str("(truncated: narrow the time range)\n");
    }
    Ok(out)
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
                when(g.detected_unix_nano)
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

/// The node's signed acknowledged head, as its shipper keeps it.
pub fn head(state_dir: &Path) -> CtlResult<String> {
    let path = state_dir.join(ship::ACKED_HEAD_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        CtlError::input(format!(
            "{}: {e} (the daemon writes it once the collector acknowledged a batch)",
            path.display()
        ))
    })?;
    note::peek(&text).map_err(|e| CtlError::input(format!("{}: {e}", path.display())))?;
    Ok(text)
}

/// The newest signed checkpoint of each of a node's chains.
pub async fn checkpoints(t: &Target, node: &str) -> CtlResult<String> {
    let mut c = connect(t).await?;
    let r = c
        .checkpoints(pb::CheckpointsRequest {
            node: node.to_owned(),
        })
        .await
        .map_err(|s| from_status(&s, Peer::Collector))?
        .into_inner();
    Ok(r.notes.concat())
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
    let mut c = connect(t).await?;
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

/// Streams records as JSON lines to stdout; returns how many.
pub async fn export(t: &Target, node: &str, since: u64) -> CtlResult<u64> {
    let mut c = connect(t).await?;
    let mut stream = c
        .export(pb::ExportRequest {
            node: node.to_owned(),
            since_unix_nano: since,
        })
        .await
        .map_err(|s| from_status(&s, Peer::Collector))?
        .into_inner();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut n = 0;
    while let Some(r) = stream
        .message()
        .await
        .map_err(|s| from_status(&s, Peer::Collector))?
    {
        writeln!(out, "{}", record_json(&r)).map_err(CtlError::internal)?;
        n += 1;
    }
    out.flush().map_err(CtlError::internal)?;
    Ok(n)
}
