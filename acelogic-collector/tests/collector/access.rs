//! Access control: every role against every query and page, refusals
//! with their reason codes, counted, and every query in the audit table.

use std::{collections::HashMap, time::Duration};

use acelogic_collector::pb;
use acelogic_lineage::sample;
use tokio_stream::StreamExt as _;

use crate::{pki::*, support::*};

const MIN: Duration = Duration::from_secs(60);
const HOUR: u64 = 3_600_000_000_000;

const QUERIES: [&str; 6] = [
    "Tree",
    "Artifact",
    "Denials",
    "Verify",
    "Checkpoints",
    "Export",
];

/// Asks `method` as the client; `Ok(())` or the refusal's reason code.
async fn ask(
    c: &mut pb::query_client::QueryClient<tonic::transport::Channel>,
    method: &str,
    exec_id: &str,
) -> Result<(), String> {
    let r = match method {
        "Tree" => c
            .tree(pb::TreeRequest {
                exec_id: exec_id.to_owned(),
            })
            .await
            .map(drop),
        "Artifact" => c
            .artifact(pb::ArtifactRequest {
                artifact_id: sample::ARTIFACT.to_owned(),
            })
            .await
            .map(drop),
        "Denials" => c
            .denials(pb::DenialsRequest {
                workload: "agent".to_owned(),
                ..Default::default()
            })
            .await
            .map(drop),
        "Verify" => c
            .verify(pb::VerifyRequest {
                node: "node-a".to_owned(),
                anchors: Vec::new(),
            })
            .await
            .map(|v| assert!(v.into_inner().ok)),
        "Checkpoints" => c
            .checkpoints(pb::CheckpointsRequest {
                node: "node-a".to_owned(),
            })
            .await
            .map(|r| assert!(!r.into_inner().notes.is_empty())),
        "Export" => match c.export(pb::ExportRequest::default()).await {
            Ok(s) => {
                let n = s.into_inner().collect::<Vec<_>>().await.len();
                assert!(n > 0, "an export with records");
                Ok(())
            }
            Err(s) => Err(s),
        },
        other => panic!("{other}"),
    };
    r.map_err(|s| {
        let code = reason(&s);
        let want = match code.as_str() {
            "unauthenticated-client" => tonic::Code::Unauthenticated,
            "role-forbids" => tonic::Code::PermissionDenied,
            other => panic!("{method}: unexpected refusal {other}: {s:?}"),
        };
        assert_eq!(s.code(), want, "{s:?}");
        code
    })
}

/// What each caller may do: `None` for allowed, else the reason code.
fn expected(caller: &str, method: &str) -> Option<&'static str> {
    let auditor_only = matches!(method, "Verify" | "Checkpoints" | "Export" | "/verify");
    match caller {
        "none" | "foreign" => Some("unauthenticated-client"),
        "node" => Some("role-forbids"),
        "reader" if auditor_only => Some("role-forbids"),
        "reader" | "auditor" => None,
        other => panic!("{other}"),
    }
}

fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.rsplit_once(' '))
        .map(|(k, v)| (k.to_owned(), v.parse().unwrap_or(f64::NAN)))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_role_against_every_query_and_page() {
    let dir = Dir::new("access");
    let pki = Pki::new(&dir);
    let mut args = pki.collector_args();
    args.extend(
        [
            "--accept-new-nodes",
            "--metrics-listen",
            "127.0.0.1:0",
            "--checkpoint-interval",
            "100ms",
        ]
        .map(str::to_owned),
    );
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let c = Collector::start(&dir, &refs);
    let url = https_url(&c);

    // Nodes ship as before: the signed Hello authenticates them, no
    // client certificate needed.
    let node = TestNode::new(&dir, "node-a");
    let (records, p) = sample::session("node-a", now() - HOUR);
    let n = records.len() as u64;
    node.append(&records);
    let mut shipper = node.ship(&url, Some(&pki.ca));
    shipper.acked(n, MIN).await;
    drop(shipper);
    eventually("a checkpoint", MIN, || {
        c.count("SELECT COUNT(*) FROM checkpoints") > 0
    })
    .await;

    let callers: [(&str, Option<&Cert>); 5] = [
        ("none", None),
        ("node", Some(&pki.node)),
        ("reader", Some(&pki.reader)),
        ("auditor", Some(&pki.auditor)),
        ("foreign", Some(&pki.foreign)),
    ];
    let mut refused: HashMap<&str, u32> = HashMap::new();
    let mut asked = 0;
    for (who, cert) in callers {
        let mut client = query_client(&url, &pki.ca, cert).await;
        for method in QUERIES {
            let got = ask(&mut client, method, p.shell.exec_id()).await.err();
            assert_eq!(
                got.as_deref(),
                expected(who, method),
                "{who} asking {method}"
            );
            if let Some(code) = expected(who, method) {
                *refused.entry(code).or_default() += 1;
            }
            asked += 1;
        }
    }

    // The web pages: the same roles, HTTP statuses, the reason in a header.
    let tree = format!("/tree?exec_id={}", p.shell.exec_id());
    let artifact = format!("/artifact?id={}", sample::ARTIFACT);
    let pages = [
        ("/", "/"),
        ("/tree", tree.as_str()),
        ("/artifact", artifact.as_str()),
        ("/denials", "/denials?workload=agent&since=3h"),
        ("/verify", "/verify"),
    ];
    for (who, cert) in callers {
        for (page, path) in pages {
            let (status, code, body) = https_get(&c.addr(), path, &pki.ca, cert).await;
            match expected(who, page) {
                None => {
                    assert_eq!(
                        (status, code.as_deref()),
                        (200, None),
                        "{who} {path}: {body}"
                    );
                }
                Some(want) => {
                    let status_want = if want == "role-forbids" { 403 } else { 401 };
                    assert_eq!(
                        (status, code.as_deref()),
                        (status_want, Some(want)),
                        "{who} {path}: {body}"
                    );
                    assert!(body.contains(want), "{body}");
                    assert!(
                        !body.contains("node-a</td>"),
                        "a refusal shows no data: {body}"
                    );
                    *refused.entry(want).or_default() += 1;
                }
            }
            asked += 1;
        }
    }
    let (_, _, body) = https_get(&c.addr(), "/verify", &pki.ca, Some(&pki.auditor)).await;
    assert!(
        body.contains("verify-ok") && body.contains("verified"),
        "{body}"
    );
    let (_, _, body) = https_get(&c.addr(), &tree, &pki.ca, Some(&pki.reader)).await;
    assert!(
        body.contains(p.git.exec_id()) && body.contains("rita (reader)"),
        "{body}"
    );

    // Counted by reason.
    let m = samples(&http_get(c.metrics.as_ref().unwrap()).1);
    for (code, n) in &refused {
        assert_eq!(
            m.get(&format!(
                "acelogic_collector_queries_refused_total{{reason=\"{code}\"}}"
            )),
            Some(&f64::from(*n)),
            "{code}: {m:?}"
        );
    }
    assert_eq!(
        m.get("acelogic_collector_queries_total{method=\"Verify\"}"),
        Some(&1.0),
        "{m:?}"
    );

    // Audited: one row per query and page view, answered or refused.
    let db = c.sql();
    let total: i64 = db
        .query_row("SELECT COUNT(*) FROM queries", [], |r| r.get(0))
        .unwrap();
    assert_eq!(total, asked + 2, "every query and page view is a row");
    let row = |sql: &str| -> (String, String, String, String, String) {
        db.query_row(sql, [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
    };
    let cols = "SELECT who, role, method, args, outcome FROM queries";
    let (who, role, _, args, outcome) = row(&format!(
        "{cols} WHERE method = 'Verify' AND outcome = 'ok'"
    ));
    assert_eq!(
        (who.as_str(), role.as_str(), outcome.as_str()),
        ("alice", "auditor", "ok")
    );
    assert!(args.contains("\"node\":\"node-a\""), "{args}");
    let (who, role, _, _, outcome) =
        row(&format!("{cols} WHERE method = 'Export' AND who = 'rita'"));
    assert_eq!(
        (who.as_str(), role.as_str(), outcome.as_str()),
        ("rita", "reader", "role-forbids")
    );
    let (_, role, _, _, outcome) = row(&format!("{cols} WHERE method = 'Tree' AND who = 'node-a'"));
    assert_eq!((role.as_str(), outcome.as_str()), ("node", "role-forbids"));
    let (_, role, _, _, outcome) = row(&format!(
        "{cols} WHERE method = 'Tree' AND who = 'anonymous'"
    ));
    assert_eq!(
        (role.as_str(), outcome.as_str()),
        ("none", "unauthenticated-client")
    );
    let (_, _, _, _, outcome) = row(&format!("{cols} WHERE method = 'Tree' AND who = 'mallory'"));
    assert_eq!(
        outcome, "unauthenticated-client",
        "a certificate of another CA"
    );
    let (_, role, _, args, outcome) = row(&format!(
        "{cols} WHERE method = 'web /tree' AND who = 'alice'"
    ));
    assert_eq!((role.as_str(), outcome.as_str()), ("auditor", "ok"));
    assert!(args.contains(p.shell.exec_id()), "{args}");
    let with_hash: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM queries WHERE who = 'alice' AND length(cert_sha256) = 64 AND peer LIKE '127.0.0.1:%'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(with_hash > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acelogicctl_certs_work_end_to_end_with_the_cli() {
    let dir = Dir::new("certs-cli");
    let pki = Pki::new(&dir);
    for c in [&pki.auditor, &pki.reader] {
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(&c.key).unwrap().permissions(),
        );
        assert_eq!(mode & 0o777, 0o600, "{}", c.key.display());
    }
    let (code, _, err) = ctl(&[
        "certs",
        "issue",
        "--ca-dir",
        dir.path("ca").to_str().unwrap(),
        "--name",
        "alice",
        "--role",
        "auditor",
        "--out-dir",
        dir.path("certs").to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("[key-file-exists]"),
        "never overwritten: {err}"
    );

    let args = pki.collector_args();
    let mut refs: Vec<&str> = args.iter().map(String::as_str).collect();
    refs.push("--accept-new-nodes");
    let c = Collector::start(&dir, &refs);
    let url = https_url(&c);
    let node = TestNode::new(&dir, "node-a");
    let (records, _) = sample::session("node-a", now());
    node.append(&records);
    let mut shipper = node.ship(&url, Some(&pki.ca));
    shipper.acked(records.len() as u64, MIN).await;

    let ca = pki.ca.to_str().unwrap();
    let base = ["lineage", "--collector", &url, "--collector-ca", ca];
    let with = |cert: &Cert, rest: &[&str]| {
        let mut v: Vec<String> = base.iter().map(|s| (*s).to_owned()).collect();
        v.extend(
            [
                "--collector-cert",
                cert.pem.to_str().unwrap(),
                "--collector-key",
                cert.key.to_str().unwrap(),
            ]
            .map(str::to_owned),
        );
        v.extend(rest.iter().map(|s| (*s).to_owned()));
        v
    };
    let run = |v: Vec<String>| async move {
        let refs: Vec<&str> = v.iter().map(String::as_str).collect();
        ctl_async(&refs).await
    };
    let (code, out, err) = run(with(&pki.auditor, &["verify", "--node", "node-a"])).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("verified"), "{out}");
    let (code, out, err) = run(with(
        &pki.reader,
        &["denials", "--workload", "agent", "--since", "1h"],
    ))
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("DENY"), "{out}");
    let (code, _, err) = run(with(&pki.reader, &["verify", "--node", "node-a"])).await;
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("[role-forbids]") && err.contains("auditor"),
        "{err}"
    );
    let mut plain: Vec<String> = base.iter().map(|s| (*s).to_owned()).collect();
    plain.extend(["verify", "--node", "node-a"].map(str::to_owned));
    let (code, _, err) = run(plain).await;
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("[unauthenticated-client]") && err.contains("--collector-cert"),
        "{err}"
    );
    assert_eq!(
        c.count("SELECT COUNT(*) FROM queries WHERE method = 'Verify'"),
        3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_client_ca_queries_are_open_audited_and_warned_about() {
    let dir = Dir::new("open");
    let c = Collector::start(&dir, &["--accept-new-nodes"]);
    let (code, _, err) = ctl_async(&["lineage", "--collector", &c.url, "tree", "ffff"]).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("[not-found]"), "{err}");
    let (who, role, outcome): (String, String, String) = c
        .sql()
        .query_row("SELECT who, role, outcome FROM queries", [], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })
        .unwrap();
    assert_eq!(
        (who.as_str(), role.as_str(), outcome.as_str()),
        ("anonymous", "open", "not-found")
    );
    assert!(c.log_text().contains("open to anyone"), "{}", c.log_text());
    let (status, body) = http_get(&format!("{}/", c.url));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("anonymous (open)"), "{body}");
    // --client-ca without TLS is refused at start.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_acelogic-collector"))
        .args(["--listen", "127.0.0.1:0", "--client-ca", "ca.pem"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
