//! Admission: every refusal code, the least strict rule per capability,
//! the strictest terms per artifact, DNS names through a fake resolver.

use std::{cell::Cell, net::IpAddr, path::Path, time::Duration};

use crate::{
    capability::{Capability, Host},
    policy::{Refusal, Terms, Workload, parse_file},
};

const POLICY: &str = r#"
apiVersion: acelogic.dev/v1
kind: CapabilityPolicy
metadata: {name: deploy}
spec:
  workloads:
    - {name: deploy-agent, cgroups: [/acelogic/deploy]}
  grantable:
    - name: kubectl-short
      exec: [/usr/local/bin/kubectl]
      issuers: [release-authority]
      maxTtl: 1m
    - name: kubectl-staging
      exec: [/usr/local/bin/kubectl]
      connect: [{host: 10.20.0.0/16, ports: "6443", protocol: tcp}]
      issuers: [release-authority, ci]
      maxTtl: 15m
    - name: kubectl-prod
      exec: [/usr/local/bin/kubectl]
      connect: [{host: 10.30.0.0/16, ports: "6443", protocol: tcp}]
      issuers: [release-authority]
      maxTtl: 5m
      maxUses: 1
      approvals: 1
      operationKeyRequired: true
    - name: deploy-dir
      write: [/srv/deploy/**, /srv/state.json]
      issuers: [release-authority]
      maxTtl: 1h
      maxUses: 10
    - name: registry
      connect:
        - {host: registry.example.com, ports: "443", protocol: tcp}
        - {host: 203.0.113.0/24, ports: 443-444, protocol: tcp}
      issuers: [ci]
      maxTtl: 30m
  never:
    exec: [/usr/bin/nsenter]
    write: [/srv/deploy/secrets/**]
    connect:
      - {host: 169.254.169.254, ports: "*", protocol: tcp}
      - {host: metadata.internal, ports: "*", protocol: tcp}
"#;

fn workload() -> Workload {
    let doc = parse_file(Path::new("deploy.yaml"), POLICY).unwrap();
    assert!(doc.warnings.is_empty(), "{:?}", doc.warnings);
    doc.workloads.into_iter().next().unwrap()
}

fn caps(json: &str) -> Vec<Capability> {
    serde_json::from_str(json).unwrap()
}

fn exec(path: &str) -> String {
    format!(r#"{{"exec":{{"path":"{path}"}}}}"#)
}

fn write(path: &str) -> String {
    format!(r#"{{"write":{{"path":"{path}"}}}}"#)
}

fn connect(host: &str, ports: &str, protocol: &str) -> String {
    format!(r#"{{"connect":{{"host":"{host}","ports":"{ports}","protocol":"{protocol}"}}}}"#)
}

/// A resolver that knows a few names.
fn dns(host: &Host) -> Vec<IpAddr> {
    let addrs: &[&str] = match host.to_string().as_str() {
        "registry.example.com" => &["198.51.100.7"],
        "cdn.example.com" => &["203.0.113.5", "203.0.113.6"],
        "mixed.example.com" => &["203.0.113.5", "198.51.100.1"],
        "sneaky.example.com" => &["203.0.113.9", "169.254.169.254"],
        "metadata.internal" => &["10.0.0.5"],
        _ => &[],
    };
    addrs.iter().map(|a| a.parse().unwrap()).collect()
}

fn admit(issuer: &str, list: &[String]) -> Result<Terms, Refusal> {
    workload().admit(issuer, &caps(&format!("[{}]", list.join(","))), &dns)
}

fn refusal(issuer: &str, list: &[String]) -> (usize, &'static str) {
    let r = admit(issuer, list).unwrap_err();
    (r.index, r.code().as_str())
}

#[test]
fn least_strict_rule_per_capability() {
    // kubectl-short (1m), kubectl-staging (15m, 0 approvals), kubectl-prod
    // (1 approval): staging wins on approvals, then on TTL.
    let t = admit("release-authority", &[exec("/usr/local/bin/kubectl")]).unwrap();
    assert_eq!(
        t,
        Terms {
            max_ttl: Duration::from_secs(15 * 60),
            max_uses: None,
            approvals: 0,
            operation_key_required: false,
            completed_retention: None,
            rules: vec!["kubectl-staging".into()],
        }
    );
}

#[test]
fn strictest_terms_over_the_artifact() {
    let t = admit(
        "release-authority",
        &[
            exec("/usr/local/bin/kubectl"),
            connect("10.30.1.5", "6443", "tcp"),
            write("/srv/deploy/app"),
        ],
    )
    .unwrap();
    assert_eq!(
        t,
        Terms {
            max_ttl: Duration::from_secs(5 * 60),
            max_uses: Some(1),
            approvals: 1,
            operation_key_required: true,
            completed_retention: None,
            rules: vec![
                "kubectl-staging".into(),
                "kubectl-prod".into(),
                "deploy-dir".into()
            ],
        }
    );
    let t = admit(
        "release-authority",
        &[write("/srv/state.json"), write("/srv/deploy/releases")],
    )
    .unwrap();
    assert_eq!(
        (t.max_uses, t.max_ttl),
        (Some(10), Duration::from_secs(3600))
    );
}

#[test]
fn never_wins_over_any_rule() {
    let r = admit("release-authority", &[exec("/usr/bin/nsenter")]).unwrap_err();
    assert_eq!((r.index, r.code().as_str()), (0, "never"));
    assert!(r.why.contains("exec /usr/bin/nsenter"), "{}", r.why);
    // A write below the never subtree or one that contains it.
    assert_eq!(
        refusal("release-authority", &[write("/srv/deploy/secrets/k")]),
        (0, "never")
    );
    assert_eq!(refusal("release-authority", &[write("/srv")]), (0, "never"));
    // The rule's own directory holds the never subtree: granting it whole
    // would reach it.
    assert_eq!(
        refusal("release-authority", &[write("/srv/deploy")]),
        (0, "never")
    );
    // Connect: an address in never, a name in never, an address a never
    // name resolves to, a name resolving into a never prefix.
    assert_eq!(
        refusal("ci", &[connect("169.254.169.254", "80", "tcp")]),
        (0, "never")
    );
    assert_eq!(
        refusal("ci", &[connect("metadata.internal", "443", "tcp")]),
        (0, "never")
    );
    assert_eq!(
        refusal("ci", &[connect("10.0.0.0/24", "443", "tcp")]),
        (0, "never")
    );
    assert_eq!(
        refusal("ci", &[connect("sneaky.example.com", "443", "tcp")]),
        (0, "never")
    );
    // Other protocol: never does not apply, and nothing grants it either.
    assert_eq!(
        refusal("ci", &[connect("169.254.169.254", "80", "udp")]),
        (0, "not-grantable")
    );
}

#[test]
fn writes_must_be_covered_as_a_subtree() {
    assert!(admit("release-authority", &[write("/srv/deploy/a/b")]).is_ok());
    assert_eq!(
        refusal("release-authority", &[write("/srv/state.json.bak")]),
        (0, "not-grantable")
    );
    assert_eq!(
        refusal("release-authority", &[write("/srv/other")]),
        (0, "not-grantable")
    );
}

#[test]
fn not_grantable_says_what_and_what_was_close() {
    let r = admit(
        "release-authority",
        &[exec("/usr/local/bin/kubectl"), exec("/usr/bin/curl")],
    )
    .unwrap_err();
    assert_eq!((r.index, r.code().as_str()), (1, "not-grantable"));
    assert!(
        r.why.starts_with(
            "no grantable rule of workload deploy-agent covers exec /usr/bin/curl for issuer \
             release-authority; rules with exec entries: kubectl-short (/usr/local/bin/kubectl)"
        ),
        "{}",
        r.why
    );
    assert_eq!(r.to_string(), format!("capability 1: {}", r.why));
}

#[test]
fn issuer_must_be_listed_by_a_covering_rule() {
    assert!(admit("ci", &[exec("/usr/local/bin/kubectl")]).is_ok());
    let r = admit("ci", &[connect("10.30.0.1", "6443", "tcp")]).unwrap_err();
    assert_eq!((r.index, r.code().as_str()), (0, "issuer-not-allowed"));
    assert!(
        r.why.contains("kubectl-prod (issuers release-authority)"),
        "{}",
        r.why
    );
    assert_eq!(
        refusal("someone-else", &[exec("/usr/local/bin/kubectl")]),
        (0, "issuer-not-allowed")
    );
}

#[test]
fn dns_names_are_checked_by_name_or_by_every_address() {
    // Same name as the rule.
    assert!(admit("ci", &[connect("registry.example.com", "443", "tcp")]).is_ok());
    assert!(admit("ci", &[connect("REGISTRY.example.com", "443", "tcp")]).is_ok());
    // Every address inside the rule's prefix.
    let t = admit("ci", &[connect("cdn.example.com", "444", "tcp")]).unwrap();
    assert_eq!(t.rules, ["registry"]);
    // One address outside: not covered.
    assert_eq!(
        refusal("ci", &[connect("mixed.example.com", "443", "tcp")]),
        (0, "not-grantable")
    );
    assert_eq!(
        refusal("ci", &[connect("cdn.example.com", "445", "tcp")]),
        (0, "not-grantable")
    );
    assert_eq!(
        refusal("ci", &[connect("cdn.example.com", "443-445", "tcp")]),
        (0, "not-grantable")
    );
    assert_eq!(
        refusal("ci", &[connect("nowhere.example.com", "443", "tcp")]),
        (0, "unresolvable")
    );
    // An address is not covered by a rule that names a host.
    assert_eq!(
        refusal("ci", &[connect("198.51.100.7", "443", "tcp")]),
        (0, "not-grantable")
    );
}

#[test]
fn each_name_is_resolved_once_per_admission() {
    let calls = Cell::new(0);
    let counting = |h: &Host| {
        calls.set(calls.get() + 1);
        dns(h)
    };
    let list = caps(&format!(
        "[{},{},{}]",
        connect("cdn.example.com", "443", "tcp"),
        connect("cdn.example.com", "444", "tcp"),
        connect("203.0.113.5", "443", "tcp")
    ));
    workload().admit("ci", &list, &counting).unwrap();
    // cdn.example.com once, and the never name (metadata.internal) once,
    // for the address.
    assert_eq!(calls.get(), 2);
}

#[test]
fn an_artifact_with_no_capabilities_is_refused() {
    let r = workload().admit("ci", &[], &dns).unwrap_err();
    assert_eq!((r.index, r.code().as_str()), (0, "no-capabilities"));
}
