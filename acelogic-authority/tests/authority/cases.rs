//! Each claim of the approval plane, tried against the real processes.

use std::time::{Duration, Instant};

use acelogic_domain::artifact::{self, PAYLOAD_TYPE, Role, SecretKey};
use acelogic_proto::{
    authority as pb, authority::authority_client::AuthorityClient, reason_of, relay,
};

use crate::support::*;

fn code(s: &tonic::Status) -> String {
    reason_of(s).unwrap_or_else(|| format!("{:?} {}", s.code(), s.message()))
}

/// The approver names whose signatures an issued envelope carries.
fn approvers(s: &Setup, state: &pb::RequestState) -> Vec<String> {
    let v = artifact::verify(&state.envelope, &s.trust).expect("the issued envelope verifies");
    v.approvers.into_iter().map(|a| a.name).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_tier_is_issued_at_once_and_answers_again_the_same() {
    let s = Setup::new("auto");
    let a = Authority::start(&s, &[]);
    let req = request("scaler", &["/usr/local/bin/scale"], "scale checkout to 6");
    let st = ask(&a, &s.ca, &s.node_key, &req, 0).await.unwrap();
    assert_eq!(
        (st.state.as_str(), st.tier.as_str(), st.rule.as_str()),
        ("issued", "auto", "scale"),
        "{st:?}"
    );
    let v = artifact::verify(&st.envelope, &s.trust).unwrap();
    assert_eq!(v.artifact.id.to_string(), st.artifact_id);
    assert_eq!(v.artifact.subject.workload.as_str(), "scaler");
    assert_eq!(
        v.artifact.subject.node.as_ref().map(|n| n.as_str()),
        Some("node-1")
    );
    assert_eq!(v.artifact.audience.as_str(), "test-cluster");
    assert_eq!(v.artifact.max_uses.map(std::num::NonZeroU32::get), Some(1));
    assert!(v.approvers.is_empty());
    let window = v
        .artifact
        .expires
        .duration_since(v.artifact.not_before)
        .unwrap();
    assert_eq!(window, Duration::from_secs(600), "the rule's maxTtl");

    // The same signed request again: the same answer, nothing new issued.
    let again = ask(&a, &s.ca, &s.node_key, &req, 0).await.unwrap();
    assert_eq!(again.artifact_id, st.artifact_id);
    assert_eq!(again.envelope, st.envelope);
    // The same id for something else is refused.
    let mut other = req.clone();
    other.reason = "something else".into();
    let e = ask(&a, &s.ca, &s.node_key, &other, 0).await.unwrap_err();
    assert_eq!(code(&e), "bad-request", "{e:?}");
    // A TTL over the rule's is refused, a shorter one is honoured.
    let mut long = request("scaler", &["/usr/local/bin/scale"], "longer");
    long.ttl_seconds = 3600;
    let st = ask(&a, &s.ca, &s.node_key, &long, 0).await.unwrap();
    assert_eq!(
        (st.state.as_str(), st.code.as_str()),
        ("refused", "ttl-exceeded"),
        "{st:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_approvals_from_distinct_approvers_issue_it() {
    let s = Setup::new("approve");
    let a = Authority::start(&s, &[]);
    let req = request(
        "deployer",
        &["/usr/local/bin/kubectl"],
        "deploy v2 to production",
    );
    let st = ask(&a, &s.ca, &s.node_key, &req, 0).await.unwrap();
    assert_eq!(
        (st.state.as_str(), st.tier.as_str(), st.approvals_needed),
        ("pending", "approve", 2),
        "{st:?}"
    );
    assert!(
        st.envelope.is_empty(),
        "nothing is issued before the approvals"
    );
    let id = st.request_id.clone();

    let (rc, out, err) = approvals(&a, &s.ca, &["list"]).await;
    assert_eq!(rc, 0, "{err}");
    assert!(out.contains(&id) && out.contains("deployer"), "{out}");
    let (rc, out, err) = approvals(&a, &s.ca, &["show", &id]).await;
    assert_eq!(rc, 0, "{err}");
    assert!(
        out.contains("exec /usr/local/bin/kubectl") && out.contains("0 of 2"),
        "{out}"
    );

    let alice = s.dir.s("alice.key");
    let (rc, out, err) = approvals(&a, &s.ca, &["approve", &id, "--key", &alice]).await;
    assert_eq!(rc, 0, "{err}");
    assert!(out.contains("pending, 1 of 2"), "{out}");
    // A second signature by the same approver does not count.
    let (rc, _, err) = approvals(&a, &s.ca, &["approve", &id, "--key", &alice]).await;
    assert_eq!(rc, 1, "{err}");
    assert!(err.contains("[already-approved]"), "{err}");
    // An approver key in no group of the rule does not count either.
    let (rc, _, err) = approvals(
        &a,
        &s.ca,
        &["approve", &id, "--key", &s.dir.s("mallory.key")],
    )
    .await;
    assert_eq!(rc, 1, "{err}");
    assert!(err.contains("[not-approver]"), "{err}");
    let st = ask(&a, &s.ca, &s.node_key, &req, 0).await.unwrap();
    assert_eq!(
        (st.state.as_str(), st.approvals.len()),
        ("pending", 1),
        "{st:?}"
    );

    // A node waiting on it hears as soon as the second approver signs.
    let waiter = wait_in_background(&a, &s, &req);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (rc, out, err) =
        approvals(&a, &s.ca, &["approve", &id, "--key", &s.dir.s("carol.key")]).await;
    assert_eq!(rc, 0, "{err}");
    assert!(out.contains("issued artifact"), "{out}");
    let (st, waited) = waiter.await.unwrap();
    assert_eq!(st.state, "issued", "{st:?}");
    assert!(
        waited < Duration::from_secs(20),
        "the waiter heard late: {waited:?}"
    );
    let mut names = approvers(&s, &st);
    names.sort();
    assert_eq!(names, ["alice", "carol"]);
    let (rc, _, err) = approvals(&a, &s.ca, &["approve", &id, "--key", &s.dir.s("bob.key")]).await;
    assert_eq!(rc, 1);
    assert!(err.contains("[not-pending]"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_denial_reaches_the_requester_with_its_reason() {
    let s = Setup::new("deny");
    let a = Authority::start(&s, &[]);
    let req = request(
        "deployer",
        &["/usr/local/bin/kubectl"],
        "deploy on a Friday",
    );
    let st = ask(&a, &s.ca, &s.node_key, &req, 0).await.unwrap();
    assert_eq!(st.state, "pending");
    let waiter = wait_in_background(&a, &s, &req);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (rc, out, err) = approvals(
        &a,
        &s.ca,
        &[
            "deny",
            &st.request_id,
            "--key",
            &s.dir.s("bob.key"),
            "--reason",
            "no change ticket",
        ],
    )
    .await;
    assert_eq!(rc, 0, "{err}");
    assert!(out.contains("denied"), "{out}");
    let (st, _) = waiter.await.unwrap();
    assert_eq!(
        (
            st.state.as_str(),
            st.code.as_str(),
            st.detail.as_str(),
            st.denied_by.as_str()
        ),
        ("denied", "request-denied", "no change ticket", "bob")
    );
    assert!(st.envelope.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_requests_expire() {
    let s = Setup::new("expire");
    let a = Authority::start(&s, &[]);
    let req = request("deployer", &["/usr/local/bin/helm"], "helm upgrade");
    let st = ask(&a, &s.ca, &s.node_key, &req, 0).await.unwrap();
    assert_eq!((st.state.as_str(), st.rule.as_str()), ("pending", "quick"));
    let t = Instant::now();
    let st = ask(&a, &s.ca, &s.node_key, &req, 15_000).await.unwrap();
    assert_eq!(
        (st.state.as_str(), st.code.as_str()),
        ("expired", "request-expired"),
        "{st:?}"
    );
    assert!(
        t.elapsed() < Duration::from_secs(10),
        "expired late: {:?}",
        t.elapsed()
    );
    let (rc, _, err) = approvals(
        &a,
        &s.ca,
        &["approve", &st.request_id, "--key", &s.dir.s("alice.key")],
    )
    .await;
    assert_eq!(rc, 1);
    assert!(err.contains("[not-pending]"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_and_ungrantable_are_refused_before_anyone_is_asked() {
    let s = Setup::new("never");
    let a = Authority::start(&s, &[]);
    let cases = [
        (
            "scaler",
            vec!["/usr/bin/nsenter"],
            "never-automated",
            "never",
        ),
        // A never capability beside an auto one: the whole request.
        (
            "scaler",
            vec!["/usr/local/bin/scale", "/usr/bin/nsenter"],
            "never-automated",
            "never",
        ),
        // Issuable by the issuing policy, but no node could grant it.
        (
            "scaler",
            vec!["/usr/local/bin/scale-all"],
            "not-grantable",
            "auto",
        ),
        // No issuing rule for it at all.
        ("deployer", vec!["/usr/local/bin/scale"], "not-issuable", ""),
    ];
    for (workload, caps, want, tier) in cases {
        let st = ask(&a, &s.ca, &s.node_key, &request(workload, &caps, "try"), 0)
            .await
            .unwrap();
        assert_eq!(
            (st.state.as_str(), st.code.as_str(), st.tier.as_str()),
            ("refused", want, tier),
            "{caps:?}: {st:?}"
        );
        assert!(st.envelope.is_empty());
    }
    let (rc, out, err) = approvals(&a, &s.ca, &["list"]).await;
    assert_eq!(rc, 0, "{err}");
    assert_eq!(
        out.trim(),
        "no pending requests",
        "nothing reached the queue"
    );
    let (_, out, _) = approvals(&a, &s.ca, &["list", "--state", "refused"]).await;
    assert_eq!(out.lines().count(), 4, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_envelope_holds() {
    let s = Setup::new("rate");
    let a = Authority::start(&s, &[]);
    for i in 0..3 {
        let st = ask(
            &a,
            &s.ca,
            &s.node_key,
            &request("scaler", &["/usr/local/bin/scale"], "scale"),
            0,
        )
        .await
        .unwrap();
        assert_eq!(st.state, "issued", "request {i}: {st:?}");
    }
    let st = ask(
        &a,
        &s.ca,
        &s.node_key,
        &request("scaler", &["/usr/local/bin/scale"], "scale"),
        0,
    )
    .await
    .unwrap();
    assert_eq!(
        (st.state.as_str(), st.code.as_str()),
        ("refused", "rate-limited"),
        "{st:?}"
    );
    // Another workload's envelope is its own.
    let st = ask(
        &a,
        &s.ca,
        &s.node_key,
        &request("deployer", &["/usr/local/bin/kubectl"], "deploy"),
        0,
    )
    .await
    .unwrap();
    assert_eq!(st.state, "pending");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_authority_loses_nothing_and_issues_nothing_twice() {
    let s = Setup::new("kill");
    let a = Authority::start(&s, &[]);
    let auto = request("scaler", &["/usr/local/bin/scale"], "scale");
    let issued = ask(&a, &s.ca, &s.node_key, &auto, 0).await.unwrap();
    assert_eq!(issued.state, "issued");
    let pending_req = request("deployer", &["/usr/local/bin/kubectl"], "deploy");
    let pending = ask(&a, &s.ca, &s.node_key, &pending_req, 0).await.unwrap();
    let (rc, _, err) = approvals(
        &a,
        &s.ca,
        &[
            "approve",
            &pending.request_id,
            "--key",
            &s.dir.s("alice.key"),
        ],
    )
    .await;
    assert_eq!(rc, 0, "{err}");
    a.kill();

    let a = Authority::start(&s, &[]);
    let again = ask(&a, &s.ca, &s.node_key, &auto, 0).await.unwrap();
    assert_eq!(
        (again.state.as_str(), again.artifact_id.as_str()),
        ("issued", issued.artifact_id.as_str())
    );
    assert_eq!(
        again.envelope, issued.envelope,
        "the same envelope, not a second artifact"
    );
    let st = ask(&a, &s.ca, &s.node_key, &pending_req, 0).await.unwrap();
    assert_eq!(
        (st.state.as_str(), st.approvals.len()),
        ("pending", 1),
        "{st:?}"
    );
    assert_eq!(
        st.payload, pending.payload,
        "the payload approvers signed is kept"
    );
    let (rc, out, err) = approvals(
        &a,
        &s.ca,
        &[
            "approve",
            &pending.request_id,
            "--key",
            &s.dir.s("carol.key"),
        ],
    )
    .await;
    assert_eq!(rc, 0, "{err}");
    assert!(out.contains("issued"), "{out}");
    let st = ask(&a, &s.ca, &s.node_key, &pending_req, 0).await.unwrap();
    assert_eq!(st.artifact_id, pending.artifact_id);
    let (_, out, _) = approvals(&a, &s.ca, &["list", "--state", "issued"]).await;
    assert_eq!(out.lines().count(), 2, "two issued, each once: {out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_signatures_are_refused() {
    let s = Setup::new("forged");
    let a = Authority::start(&s, &[]);
    let req = request("deployer", &["/usr/local/bin/kubectl"], "deploy");
    let st = ask(&a, &s.ca, &s.node_key, &req, 0).await.unwrap();
    let alice = SecretKey::read(&s.dir.path("alice.key")).unwrap();
    let ep = acelogic_lineage::ship::endpoint(&a.url, Some(&s.ca)).unwrap();
    let mut c = AuthorityClient::new(ep.connect().await.unwrap());

    // Alice's signature over an altered payload.
    let mut altered = st.payload.clone();
    let i = altered.iter().position(|b| *b == b'6').unwrap_or(10);
    altered[i] ^= 1;
    let approve = |sig: Vec<u8>, keyid: String| pb::ApproveRequest {
        request_id: st.request_id.clone(),
        keyid,
        signature: sig,
    };
    let cases = [
        (
            alice
                .sign_bytes(&artifact::pae(PAYLOAD_TYPE, &altered))
                .to_vec(),
            alice.key_id().to_string(),
            "bad-signature",
        ),
        (vec![7; 64], alice.key_id().to_string(), "bad-signature"),
        (vec![7; 12], alice.key_id().to_string(), "bad-signature"),
        (
            alice
                .sign_bytes(&artifact::pae(PAYLOAD_TYPE, &st.payload))
                .to_vec(),
            "ed25519:0000000000000000".into(),
            "not-approver",
        ),
        (
            s.node_key
                .sign_bytes(&artifact::pae(PAYLOAD_TYPE, &st.payload))
                .to_vec(),
            s.node_key.key_id().to_string(),
            "not-approver",
        ),
    ];
    for (sig, keyid, want) in cases {
        let e = c.approve(approve(sig, keyid.clone())).await.unwrap_err();
        assert_eq!(code(&e), want, "{keyid}: {e:?}");
    }
    let e = c
        .deny(pb::DenyRequest {
            request_id: st.request_id.clone(),
            keyid: alice.key_id().to_string(),
            reason: "no".into(),
            signature: alice
                .sign_bytes(&relay::deny_message(&st.request_id, "yes"))
                .to_vec(),
        })
        .await
        .unwrap_err();
    assert_eq!(code(&e), "bad-signature");
    let st2 = ask(&a, &s.ca, &s.node_key, &req, 0).await.unwrap();
    assert_eq!(
        (st2.state.as_str(), st2.approvals.len()),
        ("pending", 0),
        "nothing counted"
    );

    // A request signed by a key that is not the node's, or from a node
    // nobody enrolled.
    let stranger = SecretKey::generate("node-1", Role::Lineage).unwrap();
    let e = ask(
        &a,
        &s.ca,
        &stranger,
        &request("scaler", &["/usr/local/bin/scale"], "x"),
        0,
    )
    .await
    .unwrap_err();
    assert_eq!(code(&e), "bad-node-signature");
    let mut unknown = request("scaler", &["/usr/local/bin/scale"], "x");
    unknown.node = "node-9".into();
    let e = ask(&a, &s.ca, &s.node_key, &unknown, 0).await.unwrap_err();
    assert_eq!(code(&e), "unknown-node");
    // A stale request (signed long ago) is refused as new.
    let mut stale = request("scaler", &["/usr/local/bin/scale"], "x");
    stale.time_unix_nano -= 3_600_000_000_000;
    let e = ask(&a, &s.ca, &s.node_key, &stale, 0).await.unwrap_err();
    assert_eq!(code(&e), "bad-request");
    // Malformed capability and evidence.
    let mut bad = request("scaler", &["relative/path"], "x");
    let e = ask(&a, &s.ca, &s.node_key, &bad, 0).await.unwrap_err();
    assert_eq!(code(&e), "bad-value", "{e:?}");
    bad = request("scaler", &["/usr/local/bin/scale"], "x");
    bad.evidence.push(pb::Evidence {
        name: "plan".into(),
        sha256: "00".repeat(32),
        content: b"the plan".to_vec(),
        size: 8,
        ..pb::Evidence::default()
    });
    let e = ask(&a, &s.ca, &s.node_key, &bad, 0).await.unwrap_err();
    assert_eq!(code(&e), "digest-mismatch");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_collector_verifies_the_authoritys_chain() {
    let s = Setup::new("lineage");
    let collector = acelogic_collector::server::start(acelogic_collector::server::Config {
        listen: "127.0.0.1:0".parse().unwrap(),
        db: s.dir.path("collector.db"),
        key: s.dir.path("collector.key"),
        nodes: None,
        accept_new_nodes: true,
        tls: None,
        checkpoint_interval: Duration::from_secs(1),
        otlp_endpoint: None,
        otlp_ca: None,
        metrics_listen: None,
        limits: acelogic_collector::verify::Limits {
            max_entries: 4096,
            max_bytes: 4 << 20,
        },
        clock_skew: Duration::from_secs(300),
    })
    .await
    .unwrap();
    let curl = format!("http://{}", collector.addr);
    let a = Authority::start(&s, &["--collector", &curl]);
    let mut req = request("deployer", &["/usr/local/bin/kubectl"], "deploy v2");
    req.evidence.push(pb::Evidence {
        name: "plan.txt".into(),
        sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b"the plan")),
        content: b"the plan".to_vec(),
        size: 8,
        ..pb::Evidence::default()
    });
    let st = ask(&a, &s.ca, &s.node_key, &req, 0).await.unwrap();
    approvals(
        &a,
        &s.ca,
        &["approve", &st.request_id, "--key", &s.dir.s("alice.key")],
    )
    .await;
    let (rc, _, err) = approvals(
        &a,
        &s.ca,
        &["approve", &st.request_id, "--key", &s.dir.s("carol.key")],
    )
    .await;
    assert_eq!(rc, 0, "{err}");
    let st = ask(&a, &s.ca, &s.node_key, &req, 0).await.unwrap();
    assert_eq!(st.state, "issued");

    // The story reaches the collector: request, queue, both approvals,
    // issue, delivery, in order.
    let deadline = Instant::now() + Duration::from_secs(30);
    let out = loop {
        let (rc, out, err) = ctl(vec![
            "lineage".into(),
            "--collector".into(),
            curl.clone(),
            "artifact".into(),
            st.artifact_id.clone(),
        ])
        .await;
        if rc == 0 && out.contains("DELIVERED") {
            break out;
        }
        assert!(
            Instant::now() < deadline,
            "the authority's records did not arrive: {rc} {out} {err}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    let order = [
        "REQUESTED",
        "QUEUED",
        "APPROVED [",
        "APPROVED",
        "ISSUED",
        "DELIVERED",
    ];
    let mut at = 0;
    for word in order {
        let i = out[at..]
            .find(word.trim_end_matches(" ["))
            .unwrap_or_else(|| panic!("{word} missing after {at}: {out}"));
        at += i + 1;
    }
    assert!(out.contains("evidence plan.txt sha256:"), "{out}");
    assert!(
        out.contains("by alice") && out.contains("by carol"),
        "{out}"
    );
    assert!(
        out.contains("approvers alice,carol") || out.contains("approvers carol,alice"),
        "{out}"
    );

    let (rc, out, err) = ctl(vec![
        "lineage".into(),
        "--collector".into(),
        curl.clone(),
        "verify".into(),
        "--node".into(),
        "authority".into(),
    ])
    .await;
    assert_eq!(rc, 0, "{out}{err}");
    drop(a);
    collector.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_issuing_policy_applies_and_a_bad_one_keeps_the_last_good() {
    let s = Setup::new("reload");
    let a = Authority::start(&s, &[]);
    let scale = || request("scaler", &["/usr/local/bin/scale"], "scale");
    assert_eq!(
        ask(&a, &s.ca, &s.node_key, &scale(), 0)
            .await
            .unwrap()
            .state,
        "issued"
    );

    // Scaling moves to the never tier.
    let never = ISSUING.replace(
        "    - name: scale\n      workloads: [scaler]\n      exec: [/usr/local/bin/**]\n      tier: auto\n      maxTtl: 10m\n      maxUses: 1\n",
        "    - name: scale\n      workloads: [scaler]\n      exec: [/usr/local/bin/**]\n      tier: never\n",
    );
    assert_ne!(never, ISSUING);
    std::fs::write(s.dir.path("issuing.yaml"), &never).unwrap();
    let refused = |st: &pb::RequestState| st.state == "refused" && st.code == "never-automated";
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let st = ask(&a, &s.ca, &s.node_key, &scale(), 0).await.unwrap();
        if refused(&st) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new policy did not apply: {st:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // A broken file is refused; the policy in force stays.
    std::fs::write(
        s.dir.path("issuing.yaml"),
        "apiVersion: acelogic.dev/v1\nkind: IssuingPolicy\nspec: [",
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let st = ask(&a, &s.ca, &s.node_key, &scale(), 0).await.unwrap();
    assert!(refused(&st), "the last good policy is not in force: {st:?}");
    let st = ask(
        &a,
        &s.ca,
        &s.node_key,
        &request("deployer", &["/usr/local/bin/kubectl"], "deploy"),
        0,
    )
    .await
    .unwrap();
    assert_eq!(st.state, "pending", "{st:?}");
}
