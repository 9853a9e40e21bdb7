//! Forensic queries and verification through `acelogicctl lineage`.

use std::time::Duration;

use acelogic_lineage::{
    chain,
    pb::record::Body,
    sample::{self, Builder, Proc},
};
use prost::Message as _;
use serde_json::Value;

use crate::support::*;

const MIN: Duration = Duration::from_secs(60);
const HOUR: u64 = 3_600_000_000_000;

fn json(out: &str) -> Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_answer_tree_artifact_denials_and_export() {
    let dir = Dir::new("query");
    let node = TestNode::new(&dir, "node-a");
    let c = Collector::start(&dir, &["--accept-new-nodes"]);
    let (mut records, p) = sample::session("node-a", now() - 2 * HOUR);
    // A later denial of the same workload by another process.
    let mut b = Builder::new("node-a", now() - 600_000_000_000);
    let late = Proc::new(300, 9_000, Some(&p.runner), "agent", "nc");
    records.push(b.fork(&late));
    records.push(b.decision(
        &late,
        "socket-connect",
        "192.0.2.1:25/tcp",
        "deny",
        "no-grant",
        None,
    ));
    let n = records.len() as u64;
    node.append(&records);
    let mut shipper = node.ship(&c.url, None);
    shipper.acked(n, MIN).await;
    let url = c.url.as_str();
    let q = |args: &[&str]| {
        let mut all = vec!["lineage", "--collector", url];
        all.extend_from_slice(args);
        all.into_iter().map(str::to_owned).collect::<Vec<_>>()
    };
    let run = |args: Vec<String>| async move {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        ctl_async(&refs).await
    };

    // Tree around the shell: the runner above it, git and the second
    // shell below it, each with its records.
    let (code, out, err) = run(q(&["tree", p.shell.exec_id(), "--json"])).await;
    assert_eq!(code, 0, "{err}");
    let t = json(&out);
    let procs = t["processes"].as_array().unwrap();
    let ids: Vec<(&str, i64)> = procs
        .iter()
        .map(|p| (p["execId"].as_str().unwrap(), p["depth"].as_i64().unwrap()))
        .collect();
    assert_eq!(ids[0], (p.runner.exec_id(), -1), "{ids:?}");
    assert_eq!(ids[1], (p.shell.exec_id(), 0));
    assert!(ids.contains(&(p.git.exec_id(), 1)) && ids.contains(&(p.curl_shell.exec_id(), 1)));
    assert!(
        !ids.iter().any(|(id, _)| *id == late.exec_id()),
        "a sibling is not a descendant"
    );
    assert_eq!(ids.len(), 4, "{ids:?}");
    let git = procs
        .iter()
        .find(|x| x["execId"] == p.git.exec_id())
        .unwrap();
    let kinds: Vec<String> = git["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r["record"].as_object().unwrap()["body"]
                .as_object()
                .unwrap()
                .keys()
                .next()
                .unwrap()
                .clone()
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "fork", "decision", "exec", "decision", "decision", "decision", "exit"
        ],
        "{kinds:?}"
    );
    let exec = &git["records"][2]["record"]["body"]["exec"];
    assert_eq!(exec["filename"], "/usr/bin/git");
    assert_eq!(
        exec["argv"],
        serde_json::json!(["git", "push", "origin", "main"])
    );
    let denied = &git["records"][5]["record"]["body"]["decision"];
    assert_eq!(
        (denied["verdict"].as_str(), denied["reason"].as_str()),
        (Some("deny"), Some("no-grant"))
    );
    assert_eq!(denied["object"], "10.0.0.5:5432/tcp");
    // The readable tree: indented, verdict and reason per decision.
    let (code, out, _) = run(q(&["tree", p.git.exec_id()])).await;
    assert_eq!(code, 0);
    let line_of = |needle: &str| {
        out.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("{needle}: {out}"))
    };
    assert!(
        line_of("10.0.0.5:5432/tcp").contains("DENY (no-grant)"),
        "{out}"
    );
    assert!(
        line_of("<== asked").starts_with("        "),
        "git sits two levels down: {out}"
    );
    assert!(
        line_of(p.runner.exec_id()).starts_with(p.runner.exec_id()),
        "{out}"
    );
    let (code, _, err) = run(q(&["tree", "ffffffffffffffffffffffff"])).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("[not-found]"), "{err}");

    // The artifact: issuer, approvers, its authorization records and the
    // decisions it allowed.
    let (code, out, err) = run(q(&["artifact", sample::ARTIFACT, "--json"])).await;
    assert_eq!(code, 0, "{err}");
    let a = json(&out);
    let outcomes: Vec<&str> = a["authorizations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r["record"]["body"]["authorization"]["outcome"]
                .as_str()
                .unwrap()
        })
        .collect();
    assert_eq!(outcomes, ["accepted", "consumed"]);
    let accepted = &a["authorizations"][0]["record"]["body"]["authorization"];
    assert_eq!(accepted["issuer"], "ci");
    assert_eq!(accepted["approvers"], serde_json::json!(["alice", "bob"]));
    let used: Vec<(&str, &str)> = a["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let d = &r["record"]["body"]["decision"];
            (
                d["object"].as_str().unwrap(),
                d["verdict"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        used,
        [("/usr/bin/git", "allow"), ("140.82.112.3:443/tcp", "allow")]
    );
    let (_, out, _) = run(q(&["artifact", sample::ARTIFACT])).await;
    assert!(out.contains("issuer ci, approvers alice, bob"), "{out}");
    assert!(out.contains("decisions that used it (2)"), "{out}");

    // Denials by workload and time.
    let count = |out: &str| json(out)["records"].as_array().unwrap().len();
    let (code, out, err) = run(q(&[
        "denials",
        "--workload",
        "agent",
        "--since",
        "3h",
        "--json",
    ]))
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(count(&out), 4, "{out}");
    for r in json(&out)["records"].as_array().unwrap() {
        let d = &r["record"]["body"]["decision"];
        assert_eq!(
            (d["verdict"].as_str(), d["process"]["workload"].as_str()),
            (Some("deny"), Some("agent"))
        );
    }
    let (_, out, _) = run(q(&[
        "denials",
        "--workload",
        "agent",
        "--since",
        "30m",
        "--json",
    ]))
    .await;
    assert_eq!(count(&out), 1, "only the late denial: {out}");
    let (_, out, _) = run(q(&[
        "denials",
        "--workload",
        "batch",
        "--since",
        "3h",
        "--json",
    ]))
    .await;
    assert_eq!(count(&out), 1, "{out}");
    let (_, out, _) = run(q(&["denials", "--workload", "agent", "--since", "30m"])).await;
    assert!(out.contains("192.0.2.1:25/tcp -> DENY (no-grant)"), "{out}");

    // Export: JSON lines, every record once, in chain order.
    let (code, out, err) = run(q(&["export"])).await;
    assert_eq!(code, 0, "{err}");
    let lines: Vec<Value> = out.lines().map(json).collect();
    assert_eq!(lines.len() as u64, n);
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(l["seq"].as_u64(), Some(i as u64 + 1));
        assert_eq!(l["node"], "node-a");
        assert_eq!(l["record"]["node"], "node-a");
    }
    let (_, out, _) = run(q(&["export", "--node", "node-b"])).await;
    assert!(out.is_empty(), "{out}");
    let (_, out, _) = run(q(&["export", "--since", "30m"])).await;
    assert_eq!(out.lines().count(), 2, "{out}");
}

fn alter(c: &Collector, seq: i64) -> Vec<u8> {
    let db = c.sql();
    let original: Vec<u8> = db
        .query_row("SELECT record FROM records WHERE seq = ?1", [seq], |r| {
            r.get(0)
        })
        .unwrap();
    let mut r = decode(&original);
    match &mut r.body {
        Some(Body::Decision(d)) => {
            d.verdict = if d.verdict == "allow" {
                "deny"
            } else {
                "allow"
            }
            .into();
        }
        Some(Body::Exec(e)) => e.filename = "/bin/true".into(),
        _ => r.epoch += 1,
    }
    db.execute(
        "UPDATE records SET record = ?2 WHERE seq = ?1",
        rusqlite::params![seq, r.encode_to_vec()],
    )
    .unwrap();
    original
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_names_an_altered_seq_and_catches_checkpoint_tampering() {
    let dir = Dir::new("verify");
    let node = TestNode::new(&dir, "node-a");
    let c = Collector::start(
        &dir,
        &["--accept-new-nodes", "--checkpoint-interval", "100ms"],
    );
    let (records, _) = sample::session("node-a", now());
    let n = i64::try_from(records.len()).unwrap();
    node.append(&records);
    let mut shipper = node.ship(&c.url, None);
    shipper.acked(records.len() as u64, MIN).await;
    drop(shipper);
    eventually("a checkpoint of the head", MIN, || {
        c.count(&format!("SELECT COUNT(*) FROM checkpoints WHERE seq = {n}")) == 1
    })
    .await;
    let args = [
        "lineage",
        "--collector",
        &c.url,
        "verify",
        "--node",
        "node-a",
    ];
    let (code, out, err) = ctl_async(&args).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains("1 checkpoint(s)") && out.contains("verified"),
        "{out}"
    );

    // A record's bytes edited with SQL.
    let original = alter(&c, 7);
    let (code, out, err) = ctl_async(&args).await;
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("first altered seq: 7"), "{out}");
    assert!(
        err.contains("[verify-failed]") && err.contains("first altered seq 7"),
        "{err}"
    );
    c.sql()
        .execute("UPDATE records SET record = ?1 WHERE seq = 7", [&original])
        .unwrap();
    assert_eq!(ctl_async(&args).await.0, 0);

    // A derived column edited (the bytes left alone).
    c.sql()
        .execute("UPDATE records SET verdict = 'allow' WHERE seq = 5", [])
        .unwrap();
    let (code, out, _) = ctl_async(&args).await;
    assert_eq!(code, 1);
    assert!(out.contains("first altered seq: 5"), "{out}");
    c.sql()
        .execute("UPDATE records SET verdict = 'deny' WHERE seq = 5", [])
        .unwrap();

    // A checkpoint edited.
    c.sql()
        .execute("UPDATE checkpoints SET head_hash = zeroblob(32)", [])
        .unwrap();
    let (code, out, _) = ctl_async(&args).await;
    assert_eq!(code, 1);
    assert!(out.contains("[bad-checkpoint]"), "{out}");
    c.sql()
        .execute(
            "UPDATE checkpoints SET head_hash = (SELECT hash FROM records WHERE seq = checkpoints.seq)",
            [],
        )
        .unwrap();
    assert_eq!(ctl_async(&args).await.0, 0, "restored");

    // The chain rewritten consistently from seq 10 (hashes recomputed, the
    // head moved along): only the checkpoint can tell.
    let db = c.sql();
    let jid: Vec<u8> = db
        .query_row("SELECT journal_id FROM chains", [], |r| r.get(0))
        .unwrap();
    let jid: [u8; 16] = jid.try_into().unwrap();
    let mut prev: Vec<u8> = db
        .query_row("SELECT hash FROM records WHERE seq = 9", [], |r| r.get(0))
        .unwrap();
    alter(&c, 10);
    for seq in 10..=n {
        let record: Vec<u8> = db
            .query_row("SELECT record FROM records WHERE seq = ?1", [seq], |r| {
                r.get(0)
            })
            .unwrap();
        let hash = chain::entry_hash(
            "node-a",
            &jid,
            u64::try_from(seq).unwrap(),
            &prev.as_slice().try_into().unwrap(),
            &record,
        );
        let verdict = match decode(&record).body {
            Some(Body::Decision(d)) => Some(d.verdict),
            Some(Body::Authorization(a)) => Some(a.outcome),
            _ => None,
        };
        db.execute(
            "UPDATE records SET prev_hash = ?2, hash = ?3, verdict = ?4 WHERE seq = ?1",
            rusqlite::params![seq, prev, hash.as_slice(), verdict],
        )
        .unwrap();
        prev = hash.to_vec();
    }
    db.execute("UPDATE chains SET head_hash = ?1", [&prev])
        .unwrap();
    let (code, out, _) = ctl_async(&args).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("[checkpoint-mismatch]"), "{out}");
    assert!(
        !out.contains("[altered]") && !out.contains("[broken-chain]"),
        "a consistent rewrite: {out}"
    );
}

/// `lineage exec-id PID` answers the id the daemon gives that process (the
/// chain formula over this boot and the process's start time), for a
/// process that is not this one, and refuses a pid with no process.
#[test]
fn exec_id_names_a_live_process_as_the_daemon_does() {
    let mut child = std::process::Command::new("sleep")
        .arg("30")
        .spawn()
        .expect("sleep");
    let pid = child.id();
    let stat = acelogic_lineage::enrich::proc_stat(std::path::Path::new("/proc"), pid)
        .expect("the child's stat");
    let boot = chain::boot_id().expect("boot id");
    let want = chain::exec_id(&boot, stat.start_ticks, pid);
    let (code, out, err) = ctl(&["lineage", "exec-id", &pid.to_string()]);
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim(), want);
    assert_ne!(
        want,
        chain::exec_id(&boot, stat.start_ticks, std::process::id()),
        "the id depends on the pid"
    );
    let (code, _, err) = ctl(&["lineage", "exec-id", "4194304"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("no process 4194304"), "{err}");
}
