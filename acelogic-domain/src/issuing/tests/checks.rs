//! Every error code of the issuing policy file, with the exact
//! `line:column` it points at.

use std::{path::Path, time::Duration};

use crate::issuing::{Approvals, DEFAULT_PENDING_TIMEOUT, Tier, load_file, parse_file};

/// Lines 1-7; the body starts on line 8.
const HEAD: &str = "apiVersion: acelogic.dev/v1\nkind: IssuingPolicy\nmetadata:\n  name: test\n\
                    spec:\n  issuer: release-authority\n  audience: prod\n";

/// Lines 8-13: one auto rule.
const ONE_RULE: &str = "  rules:\n    - name: r\n      workloads: [w]\n      exec: [/x]\n      \
                        tier: auto\n      maxTtl: 10m\n";

/// Lines 8-9: two approver groups.
const GROUPS: &str = "  approverGroups:\n    ops: [alice, bob]\n    sre: [carol]\n";

fn doc(body: &str) -> String {
    format!("{HEAD}{body}")
}

/// The errors `text` gets, as (code, line, column).
fn errors(text: &str) -> Vec<(&'static str, u64, u64)> {
    match parse_file(Path::new("i.yaml"), text) {
        Ok(p) => panic!("accepted: {p:?}"),
        Err(e) => e
            .iter()
            .map(|l| (l.code().as_str(), l.line, l.column))
            .collect(),
    }
}

/// An approve rule (lines after [`GROUPS`], 11 on) with `approvals` lines.
fn approve(approvals: &str) -> String {
    doc(&format!(
        "{GROUPS}  rules:\n    - name: a\n      workloads: [w]\n      exec: [/x]\n      \
         tier: approve\n      maxTtl: 10m\n      approvals:\n{approvals}"
    ))
}

#[test]
fn a_full_policy_parses_to_what_it_says() {
    let text = approve(
        "        count: 2\n        groups: [ops, sre]\n        distinctGroups: true\n      \
         pendingTimeout: 30m\n      maxUses: 3\n",
    );
    let p = parse_file(Path::new("i.yaml"), &text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        (p.name.as_str(), p.issuer.as_str(), p.audience.as_str()),
        ("test", "release-authority", "prod")
    );
    assert_eq!(p.groups["ops"], ["alice", "bob"]);
    let r = &p.rules[0];
    assert_eq!(
        r.tier,
        Tier::Approve(Approvals {
            count: 2,
            groups: vec!["ops".into(), "sre".into()],
            distinct_groups: true,
            pending_timeout: Duration::from_secs(1800),
        })
    );
    assert_eq!(r.tier.name(), "approve");
    assert_eq!(
        (r.max_ttl, r.max_uses),
        (Some(Duration::from_secs(600)), Some(3))
    );
    use sha2::Digest as _;
    assert_eq!(p.sha256, <[u8; 32]>::from(sha2::Sha256::digest(&text)));
    assert_eq!(p.source, Path::new("i.yaml"));

    // Defaults: pendingTimeout 1h, distinctGroups false; auto and never.
    let p = parse_file(
        Path::new("i.yaml"),
        &approve("        count: 1\n        groups: [ops]\n"),
    )
    .unwrap();
    let Tier::Approve(a) = &p.rules[0].tier else {
        panic!("{:?}", p.rules[0].tier)
    };
    assert_eq!(
        (a.pending_timeout, a.distinct_groups),
        (DEFAULT_PENDING_TIMEOUT, false)
    );
    let p = parse_file(Path::new("i.yaml"), &doc(ONE_RULE)).unwrap();
    assert_eq!(
        (p.rules[0].tier.name(), p.rules[0].max_uses),
        ("auto", None)
    );
    assert!(p.rates.is_empty() && p.groups.is_empty());
    let never = "  rules:\n    - name: n\n      workloads: [\"*\"]\n      write: [/etc/**]\n      \
                 tier: never\n";
    let p = parse_file(Path::new("i.yaml"), &doc(never)).unwrap();
    assert_eq!((&p.rules[0].tier, p.rules[0].max_ttl), (&Tier::Never, None));
}

#[test]
fn yaml_and_kind_errors_point_at_the_node() {
    assert_eq!(
        errors(&doc(&format!("{ONE_RULE}      bogus: 1\n"))),
        [("unknown-field", 14, 7)]
    );
    assert_eq!(
        errors(&doc(&format!("{ONE_RULE}  issuer: x\n"))),
        [("duplicate-field", 14, 3)]
    );
    assert_eq!(
        errors(&doc(&ONE_RULE.replace("tier: auto", "tier: maybe"))),
        [("bad-value", 12, 13)]
    );
    assert_eq!(
        errors(&doc(&ONE_RULE.replace("[/x]", "[x/y]"))),
        [("bad-value", 11, 14)]
    );
    assert_eq!(
        errors(&doc(&format!(
            "{GROUPS}{}",
            ONE_RULE.replace("tier: auto", "tier: approve")
        )))[0],
        ("missing-field", 12, 7)
    );
    assert_eq!(
        errors(&HEAD.replace("  audience: prod\n", ""))[0].0,
        "missing-field"
    );
    assert_eq!(errors("spec: [\n"), [("bad-yaml", 1, 7)]);
    // A capability policy, a trust store or another version is refused.
    for (from, to, at) in [
        ("kind: IssuingPolicy", "kind: CapabilityPolicy", (2, 7)),
        ("kind: IssuingPolicy", "kind: TrustStore", (2, 7)),
        ("acelogic.dev/v1", "acelogic.dev/v2", (1, 13)),
    ] {
        let text = doc(ONE_RULE).replace(from, to);
        assert_eq!(errors(&text), [("wrong-kind", at.0, at.1)], "{to}");
    }
    let big = format!(
        "{}#{}\n",
        doc(ONE_RULE),
        "x".repeat(crate::policy::MAX_POLICY_BYTES)
    );
    assert_eq!(errors(&big), [("too-large", 0, 0)]);
}

#[test]
fn names_rules_and_workload_lists_are_checked() {
    let text = doc(&format!(
        "{}  approverGroups:\n    Ops: [Alice]\n{ONE_RULE}    - name: r\n      workloads: []\n      \
         exec: [/y]\n      tier: auto\n      maxTtl: 1m\n    - name: Bad\n      \
         workloads: [\"*\", w]\n      tier: auto\n      maxTtl: 1m\n",
        ""
    ))
    .replace("issuer: release-authority", "issuer: Release")
    .replace("audience: prod", "audience: -prod")
    .replace("name: test", "name: Test");
    assert_eq!(
        errors(&text),
        [
            ("bad-name", 4, 9),  // metadata.name
            ("bad-name", 6, 11), // issuer
            ("bad-name", 7, 13), // audience
            ("bad-name", 9, 10), // group name, at its list
            ("bad-name", 9, 11), // approver
            ("duplicate-rule", 16, 13),
            ("no-workloads", 17, 18),
            ("rule-empty", 21, 7),
            ("bad-name", 21, 13),  // rule name
            ("bad-value", 22, 19), // "*" not alone
        ]
    );
    assert_eq!(errors(&doc("  rules: []\n")), [("no-rules", 8, 10)]);
    let bad_workload = ONE_RULE.replace("[w]", "[w, W]");
    assert_eq!(errors(&doc(&bad_workload)), [("bad-name", 10, 22)]);
}

#[test]
fn tier_fields_durations_and_uses_are_checked() {
    assert_eq!(
        errors(&doc(&ONE_RULE.replace("maxTtl: 10m", "maxTtl: 25h"))),
        [("bad-ttl", 13, 15)]
    );
    assert_eq!(
        errors(&doc(&ONE_RULE.replace("maxTtl: 10m", "maxTtl: soon"))),
        [("bad-ttl", 13, 15)]
    );
    assert_eq!(
        errors(&doc(&ONE_RULE.replace("maxTtl: 10m", "maxTtl: 0s"))),
        [("bad-ttl", 13, 15)]
    );
    assert_eq!(
        errors(&doc(&ONE_RULE.replace("      maxTtl: 10m\n", ""))),
        [("missing-field", 9, 7)]
    );
    assert_eq!(
        errors(&doc(&format!("{ONE_RULE}      maxUses: 0\n"))),
        [("bad-max-uses", 14, 16)]
    );
    // Fields the tier does not take.
    assert_eq!(
        errors(&doc(&format!(
            "{GROUPS}{ONE_RULE}      pendingTimeout: 1h\n      approvals: {{count: 1, groups: [ops]}}\n"
        ))),
        [("not-for-tier", 17, 23), ("not-for-tier", 18, 18)]
    );
    let never = ONE_RULE.replace("tier: auto", "tier: never");
    assert_eq!(
        errors(&doc(&format!("{never}      maxUses: 1\n"))),
        [("not-for-tier", 13, 15), ("not-for-tier", 14, 16)]
    );
    assert_eq!(
        errors(&approve(
            "        count: 1\n        groups: [ops]\n      pendingTimeout: 2d\n"
        )),
        [("bad-pending-timeout", 20, 23)]
    );
}

#[test]
fn approver_groups_and_approvals_are_checked() {
    let groups = "  approverGroups:\n    ops: [alice, bob, alice]\n    sre: []\n";
    let text = doc(&format!("{groups}{ONE_RULE}"));
    assert_eq!(
        errors(&text),
        [("duplicate-approver", 9, 23), ("empty-group", 10, 10)]
    );
    for (approvals, expected) in [
        (
            "        count: 0\n        groups: [ops]\n",
            ("bad-approvals", 18, 16),
        ),
        (
            "        count: 1\n        groups: []\n",
            ("bad-approvals", 19, 17),
        ),
        (
            "        count: 1\n        groups: [ops, ops]\n",
            ("bad-approvals", 19, 23),
        ),
        (
            "        count: 1\n        groups: [nope]\n",
            ("unknown-group", 19, 18),
        ),
        // Three approvers are needed, and ops and sre have three together...
        (
            "        count: 4\n        groups: [ops, sre]\n",
            ("bad-approvals", 18, 16),
        ),
        // ...but with distinctGroups, only two groups are listed.
        (
            "        count: 3\n        groups: [ops, sre]\n        distinctGroups: true\n",
            ("bad-approvals", 18, 16),
        ),
    ] {
        assert_eq!(errors(&approve(approvals)), [expected], "{approvals}");
    }
    assert!(
        parse_file(
            Path::new("i.yaml"),
            &approve("        count: 3\n        groups: [ops, sre]\n")
        )
        .is_ok()
    );
}

#[test]
fn rates_are_checked() {
    let rates = "  rates:\n    - workloads: [w]\n      issuedPerHour: 0\n    - workloads: []\n      \
                 issuedPerHour: 5\n";
    assert_eq!(
        errors(&doc(&format!("{ONE_RULE}{rates}"))),
        [("bad-rate", 16, 22), ("no-workloads", 17, 18)]
    );
}

#[test]
fn load_file_reads_and_refuses_like_parse_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("issuing.yaml");
    std::fs::write(&path, doc(ONE_RULE)).unwrap();
    assert_eq!(load_file(&path).unwrap().source, path);
    std::fs::write(&path, b"\xff\xfe").unwrap();
    assert_eq!(load_file(&path).unwrap_err().codes(), ["bad-yaml"]);
    let missing = dir.path().join("missing.yaml");
    assert_eq!(load_file(&missing).unwrap_err().codes(), ["io"]);
}
