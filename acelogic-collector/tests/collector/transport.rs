//! TLS, OTLP export and Prometheus metrics.

use std::{
    collections::{BTreeSet, HashMap},
    sync::{Arc, Mutex},
    time::Duration,
};

use acelogic_lineage::sample;
use opentelemetry_proto::tonic::{
    collector::logs::v1::{
        ExportLogsServiceRequest, ExportLogsServiceResponse,
        logs_service_server::{LogsService, LogsServiceServer},
    },
    common::v1::{KeyValue, any_value::Value},
};
use tokio_stream::wrappers::TcpListenerStream;

use crate::support::*;

const MIN: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_ship_over_tls_with_a_test_ca() {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let dir = Dir::new("tls");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let server_key = KeyPair::generate().unwrap();
    let server = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&server_key, &ca)
        .unwrap();
    let (ca_pem, cert, key) = (
        dir.path("ca.pem"),
        dir.path("server.pem"),
        dir.path("server.key"),
    );
    std::fs::write(&ca_pem, ca.pem()).unwrap();
    std::fs::write(&cert, server.pem()).unwrap();
    std::fs::write(&key, server_key.serialize_pem()).unwrap();

    let node = TestNode::new(&dir, "node-a");
    let c = Collector::start(
        &dir,
        &[
            "--accept-new-nodes",
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    assert!(c.url.starts_with("https://"), "{}", c.url);
    let url = format!("https://localhost:{}", c.addr().rsplit(':').next().unwrap());
    let (records, _) = sample::session("node-a", now());
    let n = records.len() as u64;
    node.append(&records);
    let mut shipper = node.ship(&url, Some(&ca_pem));
    shipper.acked(n, MIN).await;
    assert_eq!(
        c.count("SELECT COUNT(*) FROM records"),
        i64::try_from(n).unwrap()
    );

    // Queries over TLS too; without the CA the client cannot connect.
    let base = ["lineage", "--collector", &url];
    let (code, out, err) = ctl_async(
        &[
            &base[..],
            &[
                "--collector-ca",
                ca_pem.to_str().unwrap(),
                "verify",
                "--node",
                "node-a",
            ],
        ]
        .concat(),
    )
    .await;
    assert_eq!(code, 0, "{out}{err}");
    let (code, _, err) = ctl_async(&[&base[..], &["verify", "--node", "node-a"]].concat()).await;
    assert_eq!(code, 2, "{err}");
    // A plaintext client to the TLS listener gets nowhere.
    let plain = TestNode::new(&dir, "node-b");
    plain.append(&records[..1]);
    let mut s = plain.ship(&format!("http://{}", c.addr()), None);
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!s.status.borrow().connected && s.status.borrow().acked_seq == 0);
    assert!(s.status.borrow_and_update().last_error.is_some());
}

#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<ExportLogsServiceRequest>>>,
}

#[tonic::async_trait]
impl LogsService for Receiver {
    async fn export(
        &self,
        req: tonic::Request<ExportLogsServiceRequest>,
    ) -> Result<tonic::Response<ExportLogsServiceResponse>, tonic::Status> {
        self.got.lock().unwrap().push(req.into_inner());
        Ok(tonic::Response::new(ExportLogsServiceResponse::default()))
    }
}

fn attr<'a>(kvs: &'a [KeyValue], key: &str) -> Option<&'a Value> {
    kvs.iter()
        .find(|k| k.key == key)
        .and_then(|k| k.value.as_ref())
        .and_then(|v| v.value.as_ref())
}

/// (node, seq, attributes) of every log record received.
fn received(r: &Receiver) -> Vec<(String, i64, Vec<KeyValue>)> {
    let mut out = Vec::new();
    for req in r.got.lock().unwrap().iter() {
        for rl in &req.resource_logs {
            let node = match attr(&rl.resource.as_ref().unwrap().attributes, "acelogic.node") {
                Some(Value::StringValue(s)) => s.clone(),
                other => panic!("no node attribute: {other:?}"),
            };
            for sl in &rl.scope_logs {
                for l in &sl.log_records {
                    let Some(Value::IntValue(seq)) = attr(&l.attributes, "acelogic.seq") else {
                        panic!("no seq: {l:?}");
                    };
                    out.push((node.clone(), *seq, l.attributes.clone()));
                }
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_reach_an_otlp_receiver_after_it_comes_up_and_resume_after_restart() {
    let dir = Dir::new("otlp");
    // The receiver's port is chosen now, but it listens only later.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let endpoint = format!("http://127.0.0.1:{port}");
    let args = [
        "--accept-new-nodes",
        "--otlp-endpoint",
        endpoint.as_str(),
        "--metrics-listen",
        "127.0.0.1:0",
    ];
    let mut c = Collector::start(&dir, &args);
    let node = TestNode::new(&dir, "node-a");
    let (records, p) = sample::session("node-a", now());
    let n = records.len();
    node.append(&records);
    let mut shipper = node.ship(&c.url, None);
    shipper.acked(n as u64, MIN).await;
    let metrics = c.metrics.clone().unwrap();
    eventually("an OTLP export attempt failing", MIN, || {
        samples(&http_get(&metrics).1)
            .get("acelogic_collector_otlp_failures_total")
            .is_some_and(|v| *v >= 1.0)
    })
    .await;

    let receiver = Receiver::default();
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(LogsServiceServer::new(receiver.clone()))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    eventually("every record exported", MIN, || {
        received(&receiver).len() >= n
    })
    .await;
    let got = received(&receiver);
    assert_eq!(got.len(), n);
    let seqs: BTreeSet<i64> = got.iter().map(|g| g.1).collect();
    assert_eq!(seqs, (1..=i64::try_from(n).unwrap()).collect());
    assert!(got.iter().all(|g| g.0 == "node-a"));
    // The git connection denial, with its attributes.
    let (_, _, kvs) = got
        .iter()
        .find(|g| matches!(attr(&g.2, "acelogic.reason"), Some(Value::StringValue(r)) if r == "no-grant")
            && matches!(attr(&g.2, "acelogic.exec_id"), Some(Value::StringValue(e)) if e == p.git.exec_id()))
        .expect("the denied connection");
    let s = |k: &str| match attr(kvs, k) {
        Some(Value::StringValue(v)) => v.clone(),
        other => panic!("{k}: {other:?}"),
    };
    assert_eq!(
        (
            s("acelogic.verdict"),
            s("acelogic.workload"),
            s("acelogic.hook")
        ),
        ("deny".into(), "agent".into(), "socket-connect".into())
    );
    let granted = got
        .iter()
        .find(|g| matches!(attr(&g.2, "acelogic.artifact_id"), Some(Value::StringValue(a)) if a == sample::ARTIFACT))
        .expect("a decision under the artifact");
    assert!(attr(&granted.2, "acelogic.seq").is_some());

    // Restart: the cursor was persisted, only new records go out.
    assert!(c.term().success(), "{}", c.log_text());
    let more = sample::bulk("node-a", now(), 40);
    node.append(&more);
    let c = Collector::start_on(&dir, &c.addr(), &args);
    shipper.acked((n + 40) as u64, MIN).await;
    eventually("the new records exported", MIN, || {
        received(&receiver).len() >= n + 40
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = received(&receiver);
    assert_eq!(got.len(), n + 40, "nothing sent twice, nothing skipped");
    let seqs: BTreeSet<i64> = got.iter().map(|g| g.1).collect();
    assert_eq!(seqs.len(), n + 40);
    drop(c);
    server.abort();
}

/// Parses the text exposition: every sample line is `series value`.
fn samples(text: &str) -> HashMap<String, f64> {
    assert!(text.ends_with("# EOF\n"), "{text}");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l
                .rsplit_once(' ')
                .unwrap_or_else(|| panic!("bad line {l:?}"));
            (
                series.to_owned(),
                value
                    .parse()
                    .unwrap_or_else(|_| panic!("bad value in {l:?}")),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_parse_and_move() {
    let dir = Dir::new("metrics");
    let c = Collector::start(
        &dir,
        &["--accept-new-nodes", "--metrics-listen", "127.0.0.1:0"],
    );
    let metrics = c.metrics.clone().unwrap();
    let (code, body) = http_get(&metrics.replace("/metrics", "/healthz"));
    assert_eq!((code, body.as_str()), (200, "ok\n"));
    let before = samples(&http_get(&metrics).1);
    assert!(!before.keys().any(|k| k.contains("node-a")), "{before:?}");

    let node = TestNode::new(&dir, "node-a");
    let (records, _) = sample::session("node-a", now() - 5_000_000_000);
    let n = records.len();
    node.append(&records);
    let mut shipper = node.ship(&c.url, None);
    shipper.acked(n as u64, MIN).await;
    drop(shipper);
    // An altered batch is refused and counted.
    let jid = node.journal_id();
    let mut es = node
        .journal
        .lock()
        .read_after(n as u64 - 1, 1, usize::MAX)
        .unwrap();
    es[0].record.push(0);
    let sig = acelogic_lineage::wire::sign_batch(&node.key, "node-a", &jid, &es);
    let (_, status) = raw_session(
        &c.url,
        vec![
            hello_msg(acelogic_lineage::wire::make_hello(
                &node.key,
                "node-a",
                &jid,
                now(),
            )),
            batch_msg(es, sig),
        ],
    )
    .await;
    assert_eq!(reason(&status.unwrap()), "altered");

    let after = samples(&http_get(&metrics).1);
    let get = |k: &str| *after.get(k).unwrap_or_else(|| panic!("no {k}: {after:?}"));
    assert_eq!(
        get("acelogic_collector_records_ingested_total{node=\"node-a\"}"),
        n as f64
    );
    assert_eq!(
        get("acelogic_collector_batches_rejected_total{reason=\"altered\"}"),
        1.0
    );
    assert_eq!(
        get("acelogic_collector_alarms_total{kind=\"node-enrolled\"}"),
        1.0
    );
    let lag = get("acelogic_collector_ingest_lag_seconds{node=\"node-a\"}");
    assert!((4.0..600.0).contains(&lag), "lag {lag}");
    assert_eq!(get("acelogic_collector_sessions"), 0.0);
}

#[test]
fn bad_flags_and_files_are_refused_with_a_reason() {
    let dir = Dir::new("flags");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_acelogic-collector"))
            .args(["--listen", "127.0.0.1:0", "--db"])
            .arg(dir.path("c.db"))
            .arg("--key")
            .arg(dir.path("c.key"))
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let missing = dir.path("missing.yaml");
    let (code, err) = run(&["--nodes", missing.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("missing.yaml") && err.contains("No such file"),
        "{err}"
    );
    let bad = dir.path("nodes.yaml");
    std::fs::write(&bad, "apiVersion: acelogic.dev/v1\nkind: NodeEnrollment\nnodes:\n  - name: a\n    publicKey: nope\n").unwrap();
    let (code, err) = run(&["--nodes", bad.to_str().unwrap()]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("nodes.yaml:5:"), "{err}");
    let (code, err) = run(&["--checkpoint-interval", "0s"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("--checkpoint-interval"), "{err}");
    let (code, err) = run(&["--tls-cert", "x.pem"]);
    assert_eq!(code, Some(2), "{err}");
    let (code, err) = run(&["--otlp-endpoint", "ftp://x"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("--otlp-endpoint"), "{err}");
    let (code, err) = run(&["--max-batch-entries", "0"]);
    assert_eq!(code, Some(2), "{err}");
}
