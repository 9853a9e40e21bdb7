//! The pages, rendered from the `Query` service's answers. Every string
//! that comes from a record passes through [`esc`] (or [`href`] for
//! links); only the markup written here is not escaped.

use std::{collections::HashMap, fmt::Write as _};

use acelogic_lineage::pb::{self as lpb, record::Body};
use prost::Message as _;

use super::html::{esc, href};
use crate::pb;

/// A stored record, decoded, with what the pages show of it.
struct Shown {
    node: String,
    seq: u64,
    time_unix_nano: u64,
    exec_id: String,
    kind: &'static str,
    text: String,
    verdict: Option<String>,
    artifact_id: Option<String>,
}

fn nonempty(s: &str) -> Option<String> {
    (!s.is_empty()).then(|| s.to_owned())
}

fn show(r: &pb::StoredRecord) -> Shown {
    let entry = r.entry.clone().unwrap_or_default();
    let mut s = Shown {
        node: r.node.clone(),
        seq: entry.seq,
        time_unix_nano: 0,
        exec_id: String::new(),
        kind: "undecodable",
        text: "(the stored bytes do not decode as a lineage record)".to_owned(),
        verdict: None,
        artifact_id: None,
    };
    let Ok(rec) = lpb::Record::decode(entry.record.as_slice()) else {
        return s;
    };
    s.time_unix_nano = rec.time_unix_nano;
    let exec = |p: Option<&lpb::Process>| p.map(|p| p.exec_id.clone()).unwrap_or_default();
    let (kind, text) = match rec.body {
        Some(Body::Decision(d)) => {
            s.exec_id = exec(d.process.as_ref());
            s.verdict = nonempty(&d.verdict);
            s.artifact_id = nonempty(&d.artifact_id);
            (
                "decision",
                format!(
                    "{} {} -> {} ({})",
                    d.hook,
                    d.object,
                    d.verdict.to_uppercase(),
                    d.reason
                ),
            )
        }
        Some(Body::Exec(e)) => {
            s.exec_id = exec(e.process.as_ref());
            (
                "exec",
                format!("exec {} [{}] in {}", e.filename, e.argv.join(" "), e.cwd),
            )
        }
        Some(Body::Fork(f)) => {
            let pid = f.process.as_ref().map_or(0, |p| p.pid);
            s.exec_id = exec(f.process.as_ref());
            ("fork", format!("fork: pid {pid}"))
        }
        Some(Body::Exit(x)) => {
            s.exec_id = exec(x.process.as_ref());
            ("exit", format!("exit: status {}", x.exit_code))
        }
        Some(Body::Authorization(a)) => {
            s.exec_id.clone_from(&a.peer_exec_id);
            s.artifact_id = nonempty(&a.artifact_id);
            let mut t = format!("authorization {}", a.outcome);
            if !a.reason.is_empty() {
                let _ = write!(t, " ({})", a.reason);
            }
            if !a.issuer.is_empty() {
                let _ = write!(t, ", issuer {}", a.issuer);
            }
            if !a.approvers.is_empty() {
                let _ = write!(t, ", approvers {}", a.approvers.join(", "));
            }
            if !a.capabilities.is_empty() {
                let _ = write!(t, ", capabilities {}", a.capabilities.join("; "));
            }
            ("authorization", t)
        }
        Some(Body::Lifecycle(l)) => ("lifecycle", format!("{} {}", l.event, l.detail)),
        Some(Body::Loss(l)) => (
            "loss",
            format!("lost {} {} ({})", l.count, l.what, l.detail),
        ),
        Some(Body::Issuance(i)) => {
            s.exec_id.clone_from(&i.exec_id);
            s.artifact_id = nonempty(&i.artifact_id);
            let mut t = format!("{} request {}", i.event, i.request_id);
            for (label, v) in [
                ("workload", &i.workload),
                ("node", &i.node),
                ("tier", &i.tier),
                ("rule", &i.rule),
                ("approver", &i.approver),
                ("code", &i.code),
                ("reason", &i.reason),
                ("detail", &i.detail),
            ] {
                if !v.is_empty() {
                    let _ = write!(t, ", {label} {v}");
                }
            }
            if !i.capabilities.is_empty() {
                let _ = write!(t, ", capabilities {}", i.capabilities.join("; "));
            }
            if !i.approvers.is_empty() {
                let _ = write!(t, ", approvers {}", i.approvers.join(", "));
            }
            ("issuance", t)
        }
        None => ("none", String::new()),
    };
    s.kind = kind;
    s.text = text;
    s
}

fn time(ns: u64) -> String {
    humantime::format_rfc3339_millis(std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns))
        .to_string()
}

/// `verdict-allow`, `verdict-deny`, ... (the verdict is hostile text:
/// only known values become classes).
fn verdict_class(v: Option<&str>) -> &'static str {
    match v {
        Some("allow") => " verdict-allow",
        Some("deny") => " verdict-deny",
        Some("audit") => " verdict-audit",
        _ => "",
    }
}

fn record_li(s: &Shown) -> String {
    let mut li = format!(
        "<li class=\"rec kind-{}{}\" data-seq=\"{}\"><span class=\"mono\">{}</span> {}",
        s.kind,
        verdict_class(s.verdict.as_deref()),
        s.seq,
        esc(&time(s.time_unix_nano)),
        esc(&s.text)
    );
    if let Some(a) = &s.artifact_id {
        let _ = write!(
            li,
            " <a class=\"artifact\" href=\"{}\">artifact {}</a>",
            href("/artifact", "id", a),
            esc(a)
        );
    }
    li.push_str("</li>");
    li
}

/// The tree around `asked`: nested processes, then every record on one
/// timeline.
#[must_use]
pub fn tree(t: &pb::TreeResponse, asked: &str) -> String {
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
    let mut out = format!(
        "<h1>Process tree of <code>{}</code></h1><ul class=\"tree\">",
        esc(asked)
    );
    // Iterative, so a deep tree cannot exhaust the stack: Open renders a
    // process and pushes its children, Close ends its element.
    enum Step<'a> {
        Open(&'a pb::TreeProcess),
        Close,
    }
    let mut stack: Vec<Step<'_>> = roots.into_iter().rev().map(Step::Open).collect();
    let mut seen = std::collections::HashSet::new();
    while let Some(step) = stack.pop() {
        let p = match step {
            Step::Close => {
                out.push_str("</ul></li>");
                continue;
            }
            Step::Open(p) => p,
        };
        if !seen.insert(p.exec_id.as_str()) {
            continue;
        }
        let shown: Vec<Shown> = p.records.iter().map(show).collect();
        let first = p
            .records
            .iter()
            .filter_map(|r| r.entry.as_ref())
            .filter_map(|e| lpb::Record::decode(e.record.as_slice()).ok())
            .find_map(|r| match r.body {
                Some(Body::Decision(d)) => d.process,
                Some(Body::Exec(e)) => e.process,
                Some(Body::Fork(f)) => f.process,
                Some(Body::Exit(x)) => x.process,
                _ => None,
            });
        let _ = write!(
            out,
            "<li class=\"proc\" data-exec-id=\"{id}\"><div class=\"proc-head{asked}\">\
             <a class=\"mono\" href=\"{link}\">{id}</a>",
            id = esc(&p.exec_id),
            link = href("/tree", "exec_id", &p.exec_id),
            asked = if p.exec_id == asked { " asked" } else { "" },
        );
        if let Some(pr) = first {
            let _ = write!(
                out,
                " pid {} <span class=\"comm\">{}</span>",
                pr.pid,
                esc(&pr.comm)
            );
            if !pr.workload.is_empty() {
                let _ = write!(out, " workload {}", esc(&pr.workload));
            }
        }
        out.push_str("</div><ul class=\"records\">");
        for s in &shown {
            out.push_str(&record_li(s));
        }
        out.push_str("</ul><ul class=\"children\">");
        stack.push(Step::Close);
        if let Some(kids) = children.get_mut(p.exec_id.as_str()) {
            kids.sort_by_key(|k| {
                k.records
                    .iter()
                    .filter_map(|r| r.entry.as_ref().map(|e| e.seq))
                    .min()
                    .unwrap_or(u64::MAX)
            });
            for k in kids.iter().rev() {
                stack.push(Step::Open(k));
            }
        }
    }
    out.push_str("</ul>");
    if t.truncated {
        out.push_str("<p>(truncated: more descendants than one answer holds)</p>");
    }
    let mut all: Vec<Shown> = t
        .processes
        .iter()
        .flat_map(|p| p.records.iter().map(show))
        .collect();
    all.sort_by(|a, b| (a.time_unix_nano, &a.node, a.seq).cmp(&(b.time_unix_nano, &b.node, b.seq)));
    out.push_str("<h2>Timeline</h2>");
    out.push_str(&table(&all));
    out
}

/// Records as a table: time, node and seq, process, what.
fn table(rows: &[Shown]) -> String {
    if rows.is_empty() {
        return "<p>None.</p>".to_owned();
    }
    let mut out = String::from(
        "<table class=\"timeline\"><tr><th>time</th><th>node</th><th>seq</th>\
         <th>process</th><th>kind</th><th>what</th></tr>",
    );
    for s in rows {
        let process = if s.exec_id.is_empty() {
            String::new()
        } else {
            format!(
                "<a class=\"mono\" href=\"{}\">{}</a>",
                href("/tree", "exec_id", &s.exec_id),
                esc(&s.exec_id)
            )
        };
        let artifact = s.artifact_id.as_ref().map_or_else(String::new, |a| {
            format!(
                " <a class=\"artifact\" href=\"{}\">artifact {}</a>",
                href("/artifact", "id", a),
                esc(a)
            )
        });
        let _ = write!(
            out,
            "<tr class=\"rec kind-{kind}{class}\"><td class=\"mono\">{t}</td><td>{node}</td>\
             <td>{seq}</td><td>{process}</td><td>{kind}</td><td>{text}{artifact}</td></tr>",
            kind = s.kind,
            class = verdict_class(s.verdict.as_deref()),
            t = esc(&time(s.time_unix_nano)),
            node = esc(&s.node),
            seq = s.seq,
            text = esc(&s.text),
        );
    }
    out.push_str("</table>");
    out
}

/// An artifact: how it was requested and issued, its authorization
/// records, the decisions it allowed.
#[must_use]
pub fn artifact(a: &pb::ArtifactResponse, id: &str) -> String {
    let shown = |rs: &[pb::StoredRecord]| rs.iter().map(show).collect::<Vec<_>>();
    let mut out = format!("<h1>Artifact <code>{}</code></h1>", esc(id));
    out.push_str("<h2>Authority request records</h2>");
    if a.issuances.is_empty() {
        out.push_str("<p>No request records: the authority did not issue it, or its chain is not shipped here.</p>");
    } else {
        out.push_str(&table(&shown(&a.issuances)));
    }
    out.push_str("<h2>Authorization records</h2>");
    out.push_str(&table(&shown(&a.authorizations)));
    let _ = write!(
        out,
        "<h2>Decisions it allowed ({}{})</h2>",
        a.decisions.len(),
        if a.truncated { ", truncated" } else { "" }
    );
    out.push_str(&table(&shown(&a.decisions)));
    out
}

/// Denials of a workload in a time range.
#[must_use]
pub fn denials(d: &pb::DenialsResponse, workload: &str, since: &str, until: &str) -> String {
    let rows: Vec<Shown> = d.records.iter().map(show).collect();
    format!(
        "<h1>Denials of workload <code>{w}</code></h1>{form}<p>{n} denial(s){t}.</p>{table}",
        w = esc(workload),
        form = denials_form(workload, since, until),
        n = rows.len(),
        t = if d.truncated { ", truncated" } else { "" },
        table = table(&rows),
    )
}

/// The form of the denials page.
#[must_use]
pub fn denials_form(workload: &str, since: &str, until: &str) -> String {
    format!(
        "<form action=\"/denials\" method=\"get\">workload <input name=\"workload\" value=\"{}\" required> \
         since <input name=\"since\" value=\"{}\" placeholder=\"24h or RFC 3339\"> \
         until <input name=\"until\" value=\"{}\" placeholder=\"now\"> <button>show</button></form>",
        esc(workload),
        esc(since),
        esc(until)
    )
}

/// The verify status of each node's chains.
#[must_use]
pub fn verify(reports: &[(String, Result<pb::VerifyResponse, String>)]) -> String {
    let mut out = String::from(
        "<h1>Verify: every node's chains</h1><p>Recomputed from the stored bytes now, with \
         the collector's checkpoints (as <code>acelogicctl lineage verify</code> does).</p>\
         <table class=\"verify\"><tr><th>node</th><th>status</th><th>chain</th><th>records</th>\
         <th>head seq</th><th>checkpoints</th><th>gaps</th><th>problems</th></tr>",
    );
    if reports.is_empty() {
        out.push_str("<tr><td colspan=\"8\">No node has shipped records yet.</td></tr>");
    }
    for (node, report) in reports {
        match report {
            Err(why) => {
                let _ = write!(
                    out,
                    "<tr data-node=\"{n}\"><td>{n}</td><td class=\"verify-failed\">error</td>\
                     <td colspan=\"6\">{}</td></tr>",
                    esc(why),
                    n = esc(node)
                );
            }
            Ok(v) => {
                for c in &v.chains {
                    let problems: Vec<String> = c
                        .problems
                        .iter()
                        .map(|p| format!("[{}] seq {}: {}", p.kind, p.seq, p.detail))
                        .collect();
                    let ok = c.problems.is_empty();
                    let _ = write!(
                        out,
                        "<tr data-node=\"{n}\"><td>{n}</td><td class=\"{class}\">{status}</td>\
                         <td class=\"mono\">{jid}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>\
                         <td>{}</td></tr>",
                        c.records,
                        c.head_seq,
                        c.checkpoints,
                        c.gaps.len(),
                        esc(&problems.join("\n")),
                        n = esc(node),
                        class = if ok { "verify-ok" } else { "verify-failed" },
                        status = if ok { "verified" } else { "FAILED" },
                        jid = hex::encode(&c.journal_id),
                    );
                }
            }
        }
    }
    out.push_str("</table>");
    out
}

/// The index: a form for each question and the nodes known.
#[must_use]
pub fn index(nodes: &[String]) -> String {
    let mut out = String::from(
        "<h1>Lineage</h1>\
         <h2>Process tree</h2><form action=\"/tree\" method=\"get\">exec id \
         <input name=\"exec_id\" size=\"30\" required> <button>show</button></form>\
         <h2>Artifact</h2><form action=\"/artifact\" method=\"get\">artifact id \
         <input name=\"id\" size=\"34\" required> <button>show</button></form>\
         <h2>Denials</h2>",
    );
    out.push_str(&denials_form("", "24h", ""));
    out.push_str("<h2>Nodes</h2><p><a href=\"/verify\">Verify every node's chains</a></p><ul>");
    for n in nodes {
        let _ = write!(out, "<li>{}</li>", esc(n));
    }
    out.push_str("</ul>");
    out
}

/// A refusal or an error, with its reason code.
#[must_use]
pub fn refused(code: &str, why: &str) -> String {
    format!(
        "<h1>Refused</h1><div class=\"refused\"><p>[<code class=\"reason\">{}</code>] {}</p></div>",
        esc(code),
        esc(why)
    )
}
