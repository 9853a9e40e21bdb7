//! Where requests land: tiers, never first, first covering rule, mixed
//! approve rules, `*` workloads, terms across rules; rates and groups.

use std::{net::IpAddr, path::Path, time::Duration};

use crate::{
    capability::{Capability, Host},
    issuing::{IssuingPolicy, Tier, parse_file},
};

const POLICY: &str = r#"apiVersion: acelogic.dev/v1
kind: IssuingPolicy
metadata:
  name: prod-eu
spec:
  issuer: release-authority
  audience: prod-eu
  approverGroups:
    change-approvers: [alice, bob]
    sre: [carol, alice]
  rules:
    - name: scale
      workloads: [scaling-agent]
      exec: [/usr/local/bin/scale]
      tier: auto
      maxTtl: 10m
      maxUses: 1
    - name: metrics
      workloads: [scaling-agent, deploy-agent]
      connect: [{host: 10.40.0.0/24, ports: "9090", protocol: tcp}]
      write: [/srv/reports/**]
      tier: auto
      maxTtl: 30m
      maxUses: 5
    - name: prod-deploy
      workloads: [deploy-agent]
      exec: [/usr/local/bin/kubectl]
      tier: approve
      approvals:
        count: 1
        groups: [change-approvers]
      maxTtl: 20m
    - name: prod-db
      workloads: [deploy-agent]
      connect: [{host: 10.50.0.0/24, ports: "5432", protocol: tcp}]
      tier: approve
      approvals:
        count: 2
        groups: [change-approvers, sre]
        distinctGroups: true
      pendingTimeout: 15m
      maxTtl: 5m
    - name: anyone-scale
      workloads: ["*"]
      exec: [/usr/local/bin/scale, /usr/local/bin/kubectl]
      tier: approve
      approvals: {count: 1, groups: [sre]}
      maxTtl: 1h
    - name: no-namespace-escape
      workloads: ["*"]
      exec: [/usr/bin/nsenter]
      write: [/etc/**]
      connect: [{host: 169.254.169.254, ports: "*", protocol: tcp}]
      tier: never
  rates:
    - workloads: [scaling-agent]
      issuedPerHour: 20
    - workloads: ["*"]
      issuedPerHour: 100
"#;

fn policy() -> IssuingPolicy {
    parse_file(Path::new("issuing.yaml"), POLICY).unwrap_or_else(|e| panic!("{e}"))
}

fn caps(json: &str) -> Vec<Capability> {
    serde_json::from_str(json).unwrap()
}

fn exec(path: &str) -> String {
    format!(r#"{{"exec":{{"path":"{path}"}}}}"#)
}

fn connect(host: &str, port: u16) -> String {
    format!(r#"{{"connect":{{"host":"{host}","ports":"{port}","protocol":"tcp"}}}}"#)
}

fn no_dns(_: &Host) -> Vec<IpAddr> {
    Vec::new()
}

fn metadata_dns(h: &Host) -> Vec<IpAddr> {
    match h.to_string().as_str() {
        "metadata.internal" => vec!["169.254.169.254".parse().unwrap()],
        "prom.internal" => vec!["10.40.0.9".parse().unwrap()],
        _ => Vec::new(),
    }
}

fn place(
    workload: &str,
    list: &[String],
) -> Result<crate::issuing::Placement, crate::issuing::IssueRefusal> {
    let caps = caps(&format!("[{}]", list.join(",")));
    policy().place(workload, &caps, &metadata_dns)
}

#[test]
fn an_auto_rule_places_at_once_with_its_terms() {
    let p = place("scaling-agent", &[exec("/usr/local/bin/scale")]).unwrap();
    assert_eq!(
        (p.rule.as_str(), p.tier.name(), p.max_ttl, p.max_uses),
        ("scale", "auto", Some(Duration::from_secs(600)), Some(1))
    );
    assert_eq!(p.rules, ["scale"]);
}

#[test]
fn an_approve_rule_carries_its_approvals() {
    let p = place("deploy-agent", &[exec("/usr/local/bin/kubectl")]).unwrap();
    assert_eq!(p.rule, "prod-deploy");
    let Tier::Approve(a) = &p.tier else {
        panic!("{:?}", p.tier)
    };
    assert_eq!(
        (a.count, a.groups.as_slice()),
        (1, ["change-approvers".to_owned()].as_slice())
    );
    assert_eq!(
        (p.max_ttl, p.max_uses),
        (Some(Duration::from_secs(1200)), None)
    );
}

#[test]
fn the_strictest_tier_and_terms_win_across_rules() {
    // kubectl (approve, 20m, no uses limit) with a metrics connect (auto,
    // 30m, 5 uses): approve, 20m, 5 uses.
    let p = place(
        "deploy-agent",
        &[connect("10.40.0.7", 9090), exec("/usr/local/bin/kubectl")],
    )
    .unwrap();
    assert_eq!(p.rule, "prod-deploy");
    assert_eq!(p.tier.name(), "approve");
    assert_eq!(
        (p.max_ttl, p.max_uses),
        (Some(Duration::from_secs(1200)), Some(5))
    );
    assert_eq!(p.rules, ["metrics", "prod-deploy"]);
    // All auto: the shortest TTL and the fewest uses of both rules; the
    // first capability's rule decides.
    let p = place(
        "scaling-agent",
        &[
            r#"{"write":{"path":"/srv/reports/today"}}"#.to_owned(),
            exec("/usr/local/bin/scale"),
        ],
    )
    .unwrap();
    assert_eq!((p.rule.as_str(), p.tier.name()), ("metrics", "auto"));
    assert_eq!(
        (p.max_ttl, p.max_uses),
        (Some(Duration::from_secs(600)), Some(1))
    );
    // A DNS name is covered when all its addresses are.
    let p = place("scaling-agent", &[connect("prom.internal", 9090)]).unwrap();
    assert_eq!(p.rule, "metrics");
}

#[test]
fn never_wins_over_any_other_rule_and_meets_by_overlap() {
    let p = place(
        "scaling-agent",
        &[exec("/usr/local/bin/scale"), exec("/usr/bin/nsenter")],
    )
    .unwrap();
    assert_eq!(
        (p.rule.as_str(), &p.tier, p.max_ttl, p.max_uses),
        ("no-namespace-escape", &Tier::Never, None, None)
    );
    assert!(p.rules.is_empty());
    // Never is checked before coverage: an uncovered capability beside a
    // never one is still never, not a refusal.
    let p = place("w", &[exec("/bin/sh"), exec("/usr/bin/nsenter")]).unwrap();
    assert_eq!(p.tier, Tier::Never);
    // Meets: a write of a parent of /etc reaches /etc; a name resolving
    // into the never prefix meets it.
    let p = place("w", &[r#"{"write":{"path":"/"}}"#.to_owned()]).unwrap();
    assert_eq!(p.tier, Tier::Never);
    let p = place("w", &[connect("metadata.internal", 80)]).unwrap();
    assert_eq!(p.tier, Tier::Never);
}

#[test]
fn the_first_covering_rule_for_the_workload_places_it() {
    // scale: the auto rule for scaling-agent comes first; any other
    // workload falls to the "*" approve rule.
    assert_eq!(
        place("scaling-agent", &[exec("/usr/local/bin/scale")])
            .unwrap()
            .rule,
        "scale"
    );
    let p = place("batch-agent", &[exec("/usr/local/bin/scale")]).unwrap();
    assert_eq!(
        (p.rule.as_str(), p.tier.name()),
        ("anyone-scale", "approve")
    );
    // kubectl for deploy-agent: prod-deploy comes before anyone-scale.
    assert_eq!(
        place("deploy-agent", &[exec("/usr/local/bin/kubectl")])
            .unwrap()
            .rule,
        "prod-deploy"
    );
}

#[test]
fn uncovered_capabilities_are_not_issuable() {
    let e = place(
        "scaling-agent",
        &[exec("/usr/local/bin/scale"), exec("/bin/sh")],
    )
    .unwrap_err();
    assert_eq!((e.index, e.code.as_str()), (1, "not-issuable"));
    assert!(e.why.contains("exec /bin/sh"), "{e}");
    assert!(e.to_string().starts_with("capability 1: "), "{e}");
    // Metrics is not a rule for batch-agent; a wider port is not covered.
    let e = place("batch-agent", &[connect("10.40.0.7", 9090)]).unwrap_err();
    assert_eq!(e.code, "not-issuable");
    let e = place("scaling-agent", &[connect("10.40.0.7", 9091)]).unwrap_err();
    assert_eq!(e.code, "not-issuable");
    let e = place("scaling-agent", &[connect("nowhere.internal", 9090)]).unwrap_err();
    assert_eq!(e.code, "unresolvable");
    let e = policy().place("scaling-agent", &[], &no_dns).unwrap_err();
    assert_eq!(e.code, "no-capabilities");
}

#[test]
fn two_approve_rules_in_one_request_are_refused() {
    let e = place(
        "deploy-agent",
        &[exec("/usr/local/bin/kubectl"), connect("10.50.0.3", 5432)],
    )
    .unwrap_err();
    assert_eq!((e.index, e.code.as_str()), (1, "mixed-approval-rules"));
    assert!(
        e.why.contains("prod-db") && e.why.contains("prod-deploy"),
        "{e}"
    );
    // Two capabilities under the same approve rule are fine.
    let p = place(
        "batch-agent",
        &[exec("/usr/local/bin/scale"), exec("/usr/local/bin/kubectl")],
    )
    .unwrap();
    assert_eq!(p.rule, "anyone-scale");
}

#[test]
fn rates_take_the_smallest_that_applies() {
    let p = policy();
    assert_eq!(p.rate_for("scaling-agent"), Some(20));
    assert_eq!(p.rate_for("deploy-agent"), Some(100));
    let mut p = p;
    p.rates.remove(1);
    assert_eq!(p.rate_for("deploy-agent"), None);
}

#[test]
fn groups_of_names_the_rules_groups_that_list_an_approver() {
    let p = policy();
    let Tier::Approve(db) = &p.rule("prod-db").unwrap().tier else {
        panic!()
    };
    assert_eq!(db.pending_timeout, Duration::from_secs(900));
    assert_eq!(p.groups_of(db, "alice"), ["change-approvers", "sre"]);
    assert_eq!(p.groups_of(db, "carol"), ["sre"]);
    assert!(p.groups_of(db, "mallory").is_empty());
    let Tier::Approve(deploy) = &p.rule("prod-deploy").unwrap().tier else {
        panic!()
    };
    // carol is an approver, but not of a group this rule names.
    assert!(p.groups_of(deploy, "carol").is_empty());
    assert_eq!(p.groups_of(deploy, "bob"), ["change-approvers"]);
}
