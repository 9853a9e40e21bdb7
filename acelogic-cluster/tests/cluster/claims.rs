//! Each promise across nodes, with real engines against a real etcd.

use std::time::Duration;

use acelogic_cluster::{ClusterAnswer, ClusterClaim, EtcdStore, Lost, Settle, watch_lost};
use acelogic_domain::Reason;

use crate::common::{Etcd, Node, artifact, artifact_to};

const HOUR: Duration = Duration::from_secs(3600);

async fn two_nodes(etcd: &Etcd, prefix: &str) -> (Node, Node) {
    let config = etcd.config(prefix);
    (
        Node::new("node-a", &config).await,
        Node::new("node-b", &config).await,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_artifact_presented_on_two_nodes_is_accepted_once() {
    let etcd = Etcd::start();
    let (mut a, mut b) = two_nodes(&etcd, "/t1/").await;
    let s = artifact(443, None, Some(1), None, HOUR);
    let ok = a.submit(&s.envelope).await.0.unwrap();
    assert_eq!(ok.fencing_token, None, "no operation key, no token");
    let (refused, answer) = b.submit(&s.envelope).await;
    let r = refused.unwrap_err();
    assert_eq!(r.code, Reason::Replayed, "{r}");
    assert!(r.why.contains("on node node-a"), "{r}");
    assert!(matches!(answer, Some(ClusterAnswer::Replayed { node, .. }) if node == "node-a"));
    assert!(b.table.grants.is_empty(), "node B installed nothing");
    let spent = a.store.spent(&s.id).await.unwrap().unwrap();
    assert_eq!(spent.node, "node-a");
    // The same node again: refused by the cluster too.
    assert_eq!(
        a.submit(&s.envelope).await.0.unwrap_err().code,
        Reason::Replayed
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operation_key_has_one_holder_across_nodes_and_its_token_increases() {
    let etcd = Etcd::start();
    let (mut a, mut b) = two_nodes(&etcd, "/t2/").await;
    let first = artifact(443, Some("deploy/checkout"), None, None, HOUR);
    let t1 = a
        .submit(&first.envelope)
        .await
        .0
        .unwrap()
        .fencing_token
        .unwrap();
    let second = artifact(443, Some("deploy/checkout"), None, None, HOUR);
    let r = b.submit(&second.envelope).await.0.unwrap_err();
    assert_eq!(r.code, Reason::OperationConflict, "{r}");
    assert!(
        r.why.contains(&first.id) && r.why.contains("node node-a"),
        "names the holder: {r}"
    );
    // The refused artifact spent nothing: once the key is free it is
    // accepted as it is.
    a.revoke(&first.id).await.unwrap();
    let t2 = b
        .submit(&second.envelope)
        .await
        .0
        .unwrap()
        .fencing_token
        .unwrap();
    assert!(t2 > t1, "token {t2} after {t1}");
    assert!(b.store.holds("deploy/checkout", t2).await.unwrap());
    assert!(!b.store.holds("deploy/checkout", t1).await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completed_operation_is_refused_to_a_replacement_unless_it_continues_it() {
    let etcd = Etcd::start();
    let (mut a, mut b) = two_nodes(&etcd, "/t3/").await;
    let done = artifact(443, Some("deploy/v2"), Some(1), None, HOUR);
    let ok = a.submit(&done.envelope).await.0.unwrap();
    let token = ok.fencing_token.unwrap();
    a.use_up(ok.grant_id).await;
    let op = a.store.operation("deploy/v2").await.unwrap();
    assert_eq!(op.state(), "completed", "{op:?}");
    assert_eq!(op.completed.as_ref().unwrap().token, token);

    let replacement = artifact(443, Some("deploy/v2"), Some(1), None, HOUR);
    let r = b.submit(&replacement.envelope).await.0.unwrap_err();
    assert_eq!(r.code, Reason::OperationCompleted, "{r}");
    for part in [
        done.id.as_str(),
        "node node-a",
        &format!("fencing token {token}"),
    ] {
        assert!(r.why.contains(part), "{part:?} in {r}");
    }
    let unrelated = artifact(443, Some("deploy/v2"), Some(1), Some(&replacement.id), HOUR);
    assert_eq!(
        b.submit(&unrelated.envelope).await.0.unwrap_err().code,
        Reason::OperationCompleted,
        "a parent that is not the completion does not continue it"
    );
    let next = artifact(443, Some("deploy/v2"), Some(1), Some(&done.id), HOUR);
    let cont = b.submit(&next.envelope).await.0.unwrap();
    assert!(cont.fencing_token.unwrap() > token);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_use_holder_that_never_reports_leaves_the_operation_unsettled() {
    let etcd = Etcd::start();
    let (mut a, mut b) = two_nodes(&etcd, "/t4/").await;
    let lost = artifact(
        443,
        Some("migrate/db"),
        Some(1),
        None,
        Duration::from_secs(3),
    );
    a.submit(&lost.envelope).await.0.unwrap();
    drop(a); // the node fails: nothing is reported
    // Past the lease (3 s TTL, rounded up) the key is not held, but the
    // use may have happened.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let op = b.store.operation("migrate/db").await.unwrap();
    assert_eq!(op.state(), "unsettled", "{op:?}");
    let again = artifact(443, Some("migrate/db"), Some(1), None, HOUR);
    let r = b.submit(&again.envelope).await.0.unwrap_err();
    assert_eq!(r.code, Reason::OperationUnsettled, "{r}");
    assert!(r.why.contains("node-a") && r.why.contains(&lost.id), "{r}");
    // An administrator who knows releases it.
    let released = b.store.release("migrate/db").await.unwrap();
    assert_eq!(released.intent.unwrap().0.artifact, lost.id);
    b.submit(&again.envelope).await.0.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unused_one_use_artifact_frees_its_key_when_it_expires_or_is_revoked() {
    let etcd = Etcd::start();
    let (mut a, mut b) = two_nodes(&etcd, "/t5/").await;
    let short = artifact(443, Some("k"), Some(1), None, Duration::from_secs(2));
    a.submit(&short.envelope).await.0.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    a.authz.retire(&mut a.table, std::time::SystemTime::now());
    assert_eq!(a.flush().await, 0);
    assert_eq!(a.store.operation("k").await.unwrap().state(), "free");
    let next = artifact(443, Some("k"), Some(1), None, HOUR);
    b.submit(&next.envelope).await.0.unwrap();
    b.revoke(&next.id).await.unwrap();
    assert_eq!(b.store.operation("k").await.unwrap().state(), "free");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_answer_refuses_and_the_claim_is_undone_once_the_store_is_back() {
    let etcd = Etcd::start();
    let (mut a, mut b) = two_nodes(&etcd, "/t6/").await;
    let s = artifact(443, Some("k"), Some(1), None, HOUR);
    etcd.pause();
    let (r, answer) = a.submit(&s.envelope).await;
    let r = r.unwrap_err();
    assert_eq!(r.code, Reason::ClusterStoreUnavailable, "{r}");
    assert!(matches!(answer, Some(ClusterAnswer::Unavailable { .. })));
    assert!(
        a.table.grants.is_empty(),
        "nothing granted without an answer"
    );
    etcd.resume();
    assert_eq!(a.flush().await, 0, "the cancel was carried out");
    // The refused artifact is still whole: accepted on the other node.
    b.submit(&s.envelope).await.0.unwrap();
}

/// A paused member answers queued requests in any order when it resumes:
/// the undo of a claim whose answer never came may reach the store before
/// the claim. The claim then cannot apply (its tombstone is there), the
/// key stays free, and the artifact is still whole for a new attempt.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_that_arrives_after_its_undo_does_not_apply() {
    let etcd = Etcd::start();
    let config = etcd.config("/t9/");
    let store = EtcdStore::connect(&config).await.unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let now = i64::try_from(now).unwrap();
    let claim = ClusterClaim {
        artifact_id: "late".into(),
        node: "node-a".into(),
        workload: "w".into(),
        operation_key: Some("k".into()),
        parent: None,
        expires_unix: now + 3600,
        completes: true,
        completed_retention_s: 60,
        at_unix: now,
        attempt: 7,
    };
    store
        .settle(&Settle::Cancel {
            claim: claim.clone(),
        })
        .await
        .unwrap();
    let late = store.claim(&claim).await;
    assert!(
        !matches!(late, ClusterAnswer::Claimed { .. }),
        "the claim applied after its undo: {late:?}"
    );
    assert_eq!(store.operation("k").await.unwrap().state(), "free");
    assert_eq!(store.spent("late").await.unwrap(), None);
    // Another attempt of the same artifact, by the same node in the same
    // second, is a new claim.
    let again = ClusterClaim {
        attempt: 8,
        ..claim
    };
    assert!(matches!(
        store.claim(&again).await,
        ClusterAnswer::Claimed { token: Some(_) }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_holder_hears_at_once_when_an_administrator_releases_its_key() {
    let etcd = Etcd::start();
    let config = etcd.config("/t7/");
    let mut a = Node::new("node-a", &config).await;
    let mut heard = watch_lost(a.store.clone(), "node-a".to_owned());
    assert_eq!(heard.recv().await, Some(Lost::Resync));
    let s = artifact(443, Some("k"), None, None, HOUR);
    let token = a
        .submit(&s.envelope)
        .await
        .0
        .unwrap()
        .fencing_token
        .unwrap();
    let admin = EtcdStore::connect(&config).await.unwrap();
    admin.release("k").await.unwrap();
    let lost = tokio::time::timeout(Duration::from_secs(5), heard.recv())
        .await
        .unwrap();
    assert_eq!(
        lost,
        Some(Lost::Holder {
            key: "k".to_owned(),
            artifact: s.id.clone(),
            token
        })
    );
    // Another node's release of its own key is not heard here.
    let mut b = Node::new("node-b", &config).await;
    let other = artifact(443, Some("k2"), None, None, HOUR);
    b.submit(&other.envelope).await.0.unwrap();
    b.revoke(&other.id).await.unwrap();
    assert!(
        tokio::time::timeout(Duration::from_millis(500), heard.recv())
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_completion_is_kept_for_the_rules_retention() {
    let etcd = Etcd::start();
    let (mut a, mut b) = two_nodes(&etcd, "/t8/").await;
    let done = artifact_to("127.0.0.2", 443, Some("short"), Some(1), None, HOUR);
    let ok = a.submit(&done.envelope).await.0.unwrap();
    a.use_up(ok.grant_id).await;
    let again = artifact_to("127.0.0.2", 443, Some("short"), Some(1), None, HOUR);
    assert_eq!(
        b.submit(&again.envelope).await.0.unwrap_err().code,
        Reason::OperationCompleted
    );
    // completedRetention: 3s (a lease of whole seconds, rounded up).
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(b.store.operation("short").await.unwrap().state(), "free");
    b.submit(&again.envelope).await.0.unwrap();
}

/// A CA, and a certificate it signed for `names` (PEM files in `dir`).
fn issue(dir: &std::path::Path, tag: &str, names: &[&str]) -> [std::path::PathBuf; 3] {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
    let cert = CertificateParams::new(names)
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    let paths = [
        dir.join(format!("{tag}.pem")),
        dir.join(format!("{tag}.key")),
        dir.join(format!("{tag}-ca.pem")),
    ];
    std::fs::write(&paths[0], cert.pem()).unwrap();
    std::fs::write(&paths[1], key.serialize_pem()).unwrap();
    std::fs::write(&paths[2], ca.pem()).unwrap();
    paths
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn over_tls_only_a_client_certificate_from_the_ca_is_answered() {
    let dir = tempfile::tempdir().unwrap();
    // One CA for the member and its clients, as a dedicated etcd for
    // ACELOGIC would use.
    let [server_cert, server_key, ca] = issue(dir.path(), "server", &["localhost", "127.0.0.1"]);
    let etcd = Etcd::start_tls(server_cert.clone(), server_key.clone(), ca.clone());
    let mut config = etcd.config("/tls/");
    let s = artifact(443, Some("k"), None, None, HOUR);

    // The server's own key pair is a certificate the CA signed: a client
    // presenting it is let in.
    config.tls = Some(acelogic_cluster::TlsFiles {
        ca: ca.clone(),
        cert: server_cert,
        key: server_key,
    });
    let mut a = Node::new("node-a", &config).await;
    let ok = a.submit(&s.envelope).await.0.unwrap();
    assert!(ok.fencing_token.is_some());

    // A certificate from another CA: no answer, refused, nothing granted.
    let [other_cert, other_key, _] = issue(dir.path(), "other", &["node-b"]);
    config.tls = Some(acelogic_cluster::TlsFiles {
        ca,
        cert: other_cert,
        key: other_key,
    });
    let mut b = Node::new("node-b", &config).await;
    let again = artifact(443, None, None, None, HOUR);
    let r = b.submit(&again.envelope).await.0.unwrap_err();
    assert_eq!(r.code, Reason::ClusterStoreUnavailable, "{r}");
    assert!(b.table.grants.is_empty());

    // Plain text to a TLS member: no answer either.
    config.tls = None;
    let mut c = Node::new("node-c", &config).await;
    assert_eq!(
        c.submit(&again.envelope).await.0.unwrap_err().code,
        Reason::ClusterStoreUnavailable
    );
}
