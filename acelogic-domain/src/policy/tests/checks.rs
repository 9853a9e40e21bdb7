//! Every error and warning code, with the exact `line:column` it points at.

use std::{fs, path::Path};

use super::temp_dir;
use crate::policy::{PolicyErrors, load_dir, parse_file, scope_id};

/// Lines 1-5; `spec:` is line 5, so the spec body starts on line 6.
const HEAD: &str =
    "apiVersion: acelogic.dev/v1\nkind: CapabilityPolicy\nmetadata:\n  name: test\nspec:\n";
/// Lines 6-8 after [`HEAD`].
const ONE_WORKLOAD: &str = "  workloads:\n    - name: w\n      cgroups: [/acelogic/w]\n";

fn problems(e: &PolicyErrors) -> Vec<(&'static str, u64, u64)> {
    e.iter()
        .map(|l| (l.code().as_str(), l.line, l.column))
        .collect()
}

/// The errors `text` gets as one file.
fn errors(text: &str) -> Vec<(&'static str, u64, u64)> {
    match parse_file(Path::new("p.yaml"), text) {
        Ok(doc) => panic!("accepted: {doc:?}"),
        Err(e) => problems(&e),
    }
}

fn spec(body: &str) -> String {
    format!("{HEAD}{body}")
}

#[test]
fn a_minimal_policy_loads() {
    let doc = parse_file(Path::new("p.yaml"), &spec(ONE_WORKLOAD)).unwrap();
    assert_eq!(doc.name, "test");
    assert_eq!(doc.workloads.len(), 1);
    let w = &doc.workloads[0];
    assert_eq!((w.name.as_str(), w.policy.as_str()), ("w", "test"));
    assert_eq!(w.mode, crate::policy::Mode::Enforce);
    assert_eq!(w.scope_id, scope_id("w"));
    assert!(doc.warnings.is_empty());
}

#[test]
fn yaml_level_errors_point_at_the_offending_node() {
    // Field names and values.
    assert_eq!(
        errors(&spec(&format!("{ONE_WORKLOAD}      bogus: 1\n"))),
        [("unknown-field", 9, 7)]
    );
    assert_eq!(
        errors(&spec("  workloads:\n    - name: w\n")),
        [("missing-field", 7, 7)]
    );
    assert_eq!(
        errors(&spec(&format!("{ONE_WORKLOAD}  workloads: []\n"))),
        [("duplicate-field", 9, 3)]
    );
    assert_eq!(
        errors(&spec(&format!("{ONE_WORKLOAD}      mode: strict\n"))),
        [("bad-value", 9, 13)]
    );
    for (body, at) in [
        ("  baseline:\n    exec: [usr/bin/git]\n", (10, 12)),
        ("  baseline:\n    write: [/srv/*/x]\n", (10, 13)),
        (
            "  never:\n    connect: [{host: 10.0.0.1/8, ports: \"443\", protocol: tcp}]\n",
            (10, 22),
        ),
        (
            "  never:\n    connect: [{host: 10.0.0.1, ports: \"0\", protocol: tcp}]\n",
            (10, 39),
        ),
        (
            "  never:\n    connect: [{host: 10.0.0.1, ports: \"443\", protocol: icmp}]\n",
            (10, 56),
        ),
        (
            "  grantable:\n    - name: r\n      exec: [/x]\n      issuers: [a]\n      maxTtl: 1m\n      \
             operationKeyRequired: yes\n",
            (14, 29),
        ),
    ] {
        let text = spec(&format!("{ONE_WORKLOAD}{body}"));
        assert_eq!(errors(&text), [("bad-value", at.0, at.1)], "{body}");
    }
    // A bad value met through an alias is reported where it is used.
    let text = spec(
        "  workloads:\n    - name: w\n      cgroups: [/a]\n      mode: &m enforce\n  baseline:\n    \
         exec: [*m]\n",
    );
    assert_eq!(errors(&text), [("bad-value", 11, 12)]);
    // Not YAML, or not one mapping.
    assert_eq!(errors("spec: [\n"), [("bad-yaml", 1, 7)]);
    assert_eq!(
        errors(&format!(
            "{}---\n{}",
            spec(ONE_WORKLOAD),
            spec(ONE_WORKLOAD)
        ))[0]
            .0,
        "bad-yaml"
    );
    assert_eq!(errors("- a\n- b\n")[0].0, "bad-yaml");
    // Alias expansion beyond the budget.
    let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x]\n");
    for i in 1..8 {
        let p = i - 1;
        bomb.push_str(&format!(
            "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    let e = parse_file(Path::new("p.yaml"), &bomb).unwrap_err();
    assert_eq!(e.codes(), ["too-large"], "{e}");
    // A file over the size limit is refused before parsing.
    let big = format!(
        "{}#{}\n",
        spec(ONE_WORKLOAD),
        "x".repeat(crate::policy::MAX_POLICY_BYTES)
    );
    assert_eq!(errors(&big), [("too-large", 0, 0)]);
}

#[test]
fn kind_and_api_version_are_checked_first() {
    assert_eq!(
        errors("apiVersion: acelogic.dev/v2\nkind: Policy\nspec: 1\n"),
        [("wrong-kind", 1, 13), ("wrong-kind", 2, 7)]
    );
    let trust = "apiVersion: acelogic.dev/v1\nkind: TrustStore\nkeys: []\n";
    assert_eq!(
        errors(trust),
        [("wrong-kind", 2, 7)],
        "parse_file refuses a trust store"
    );
}

#[test]
fn names_follow_the_artifact_charset() {
    let text = "apiVersion: acelogic.dev/v1\nkind: CapabilityPolicy\nmetadata:\n  name: Test\nspec:\n  \
                workloads:\n    - name: w_\n      cgroups: [/a]\n  grantable:\n    - name: -r\n      \
                exec: [/x]\n      issuers: [ok, \"bad issuer\"]\n      maxTtl: 1m\n";
    assert_eq!(
        errors(text),
        [
            ("bad-name", 4, 9),
            ("bad-name", 7, 13),
            ("bad-name", 10, 13),
            ("bad-name", 12, 21)
        ]
    );
}

#[test]
fn workload_and_cgroup_checks() {
    assert_eq!(
        errors(&spec("  workloads: []\n")),
        [("no-workloads", 6, 14)]
    );
    assert_eq!(
        errors(&spec("  workloads:\n    - name: w\n      cgroups: []\n")),
        [("no-cgroups", 7, 13)]
    );
    assert_eq!(
        errors(&spec(
            "  workloads:\n    - name: w\n      cgroups:\n        - /\n        - /a/b*\n        - a/b\n"
        )),
        [
            ("cgroup-root", 9, 11),
            ("cgroup-wildcard", 10, 11),
            ("bad-cgroup", 11, 11)
        ]
    );
    assert_eq!(
        errors(&spec(
            "  workloads:\n    - name: w\n      cgroups: [/a]\n    - name: w\n      cgroups: [/b]\n"
        )),
        [("duplicate-workload", 9, 13)]
    );
    assert_eq!(
        errors(&spec(
            "  workloads:\n    - name: v\n      cgroups: [/a/*]\n    - name: w\n      cgroups: [/x, /a/b]\n"
        )),
        [("cgroup-conflict", 10, 21)]
    );
    // One workload may list overlapping patterns of its own.
    assert!(
        parse_file(
            Path::new("p.yaml"),
            &spec("  workloads:\n    - name: w\n      cgroups: [/a/*, /a/b, /a/b]\n")
        )
        .is_ok()
    );
}

/// Two names whose scope ids collide, found by search (31 bits: a
/// collision turns up after some 60 000 names).
fn colliding_names() -> (String, String) {
    let mut seen = std::collections::HashMap::new();
    for i in 0u32.. {
        let name = format!("w{i}");
        if let Some(other) = seen.insert(scope_id(&name), name.clone()) {
            return (other, name);
        }
    }
    unreachable!()
}

#[test]
fn scope_ids_are_stable_and_collisions_are_errors() {
    // Fixed values: a change here changes every node's scope ids.
    assert_eq!(scope_id("coding-agent"), scope_id("coding-agent"));
    assert_ne!(scope_id("coding-agent"), scope_id("deploy-agent"));
    for name in ["a", "coding-agent", "deploy-agent", "w0"] {
        assert!(scope_id(name) & 0x8000_0000 != 0, "{name}");
    }
    assert_eq!(
        scope_id("coding-agent"),
        0x8000_0000 | sha_prefix("coding-agent")
    );

    let (a, b) = colliding_names();
    assert_eq!(scope_id(&a), scope_id(&b));
    let text = spec(&format!(
        "  workloads:\n    - name: {a}\n      cgroups: [/a]\n    - name: {b}\n      cgroups: [/b]\n"
    ));
    assert_eq!(errors(&text), [("scope-collision", 9, 13)]);
}

fn sha_prefix(name: &str) -> u32 {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(format!("acelogic-scope:{name}").as_bytes());
    u32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

#[test]
fn baseline_must_not_contradict_never() {
    let body = format!(
        "{ONE_WORKLOAD}  baseline:\n    exec: [/usr/bin/git, /usr/bin/nsenter]\n    write: [/srv/**, \
         /etc/hosts]\n    libraries: [/usr/**]\n    connect:\n      - {{host: 10.0.0.0/8, ports: \"443\", \
         protocol: tcp}}\n      - {{host: 169.254.0.0/16, ports: \"80\", protocol: udp}}\n  never:\n    \
         exec: [/usr/bin/nsenter]\n    write: [/etc/**, /srv/secret/**]\n    connect: [{{host: \
         10.1.0.0/16, ports: \"*\", protocol: tcp}}]\n"
    );
    assert_eq!(
        errors(&spec(&body)),
        [
            ("baseline-in-never", 10, 26),
            ("baseline-in-never", 11, 13),
            ("baseline-in-never", 11, 22),
            ("baseline-in-never", 14, 9),
        ]
    );
}

#[test]
fn grantable_rule_checks() {
    let rule = |fields: &str| {
        spec(&format!(
            "{ONE_WORKLOAD}  grantable:\n    - name: r\n{fields}"
        ))
    };
    // The rule starts at line 10, column 7 (its `name` key).
    assert_eq!(
        errors(&rule("      exec: [/x]\n      maxTtl: 1m\n")),
        [("rule-no-issuers", 10, 7)]
    );
    assert_eq!(
        errors(&rule("      issuers: [a]\n      maxTtl: 1m\n")),
        [("rule-empty", 10, 7)]
    );
    for ttl in ["0s", "25h", "soon", "\"\""] {
        assert_eq!(
            errors(&rule(&format!(
                "      exec: [/x]\n      issuers: [a]\n      maxTtl: {ttl}\n"
            ))),
            [("bad-ttl", 13, 15)],
            "{ttl}"
        );
    }
    assert_eq!(
        errors(&rule(
            "      exec: [/x]\n      issuers: [a]\n      maxTtl: 1m\n      maxUses: 0\n"
        )),
        [("bad-max-uses", 14, 16)]
    );
    for keep in ["0s", "31d", "forever"] {
        assert_eq!(
            errors(&rule(&format!(
                "      exec: [/x]\n      issuers: [a]\n      maxTtl: 1m\n      completedRetention: {keep}\n"
            ))),
            [("bad-retention", 14, 27)],
            "{keep}"
        );
    }
    let kept = parse_file(
        Path::new("p.yaml"),
        &rule("      exec: [/x]\n      issuers: [a]\n      maxTtl: 1m\n      completedRetention: 7d\n"),
    )
    .unwrap();
    assert_eq!(
        kept.workloads[0].grantable[0].completed_retention,
        Some(std::time::Duration::from_secs(7 * 86_400))
    );
    assert_eq!(
        errors(&rule(
            "      exec: [/x]\n      issuers: [a]\n      maxTtl: 1m\n    - name: r\n      exec: [/y]\n      \
             issuers: [a]\n      maxTtl: 1m\n"
        )),
        [("duplicate-rule", 14, 13)]
    );
    let ok = parse_file(
        Path::new("p.yaml"),
        &rule("      exec: [/x]\n      issuers: [a]\n      maxTtl: 24h\n      maxUses: 1\n"),
    )
    .unwrap();
    let r = &ok.workloads[0].grantable[0];
    assert_eq!(r.max_ttl, std::time::Duration::from_secs(86_400));
    assert_eq!(
        (r.max_uses, r.approvals, r.operation_key_required),
        (Some(1), 0, false)
    );
}

#[test]
fn grants_inside_never_are_warnings() {
    let body = format!(
        "{ONE_WORKLOAD}  grantable:\n    - name: r\n      exec: [/usr/bin/nsenter, /usr/bin/git]\n      \
         write: [/etc/app/**, /etc]\n      connect: [{{host: 169.254.169.254, ports: \"80\", protocol: \
         tcp}}]\n      issuers: [a]\n      maxTtl: 1m\n  never:\n    exec: [/usr/bin/nsenter]\n    write: \
         [/etc/**]\n    connect: [{{host: 169.254.0.0/16, ports: \"*\", protocol: tcp}}]\n"
    );
    let doc = parse_file(Path::new("p.yaml"), &spec(&body)).unwrap();
    let warnings: Vec<_> = doc
        .warnings
        .iter()
        .map(|w| (w.code().as_str(), w.line, w.column))
        .collect();
    assert_eq!(
        warnings,
        [
            ("grant-in-never", 11, 14),
            ("grant-in-never", 12, 15),
            ("grant-in-never", 12, 28),
            ("grant-in-never", 13, 17),
        ]
    );
    assert!(doc.warnings.iter().all(crate::policy::Located::is_warning));
}

fn write(dir: &Path, name: &str, text: &str) {
    fs::write(dir.join(name), text).unwrap();
}

fn policy(name: &str, workload: &str, cgroup: &str) -> String {
    format!(
        "apiVersion: acelogic.dev/v1\nkind: CapabilityPolicy\nmetadata:\n  name: {name}\nspec:\n  \
         workloads:\n    - name: {workload}\n      cgroups: [{cgroup}]\n"
    )
}

#[test]
fn a_directory_is_checked_as_one_set() {
    let dir_tmp = temp_dir("set");
    let dir = dir_tmp.path().to_path_buf();
    write(&dir, "a.yaml", &policy("p1", "w1", "/a"));
    write(&dir, "b.yml", &policy("p1", "w1", "/a"));
    write(&dir, "c.yaml", &policy("p3", "w3", "/c/*"));
    write(&dir, "d.yaml", &policy("p4", "w4", "/c/d"));
    write(&dir, "e.yaml", "kind: [\n");
    let e = load_dir(&dir).unwrap_err();
    let got: Vec<_> = e
        .iter()
        .map(|l| {
            (
                l.file.file_name().unwrap().to_str().unwrap(),
                l.code().as_str(),
                l.line,
                l.column,
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("b.yml", "duplicate-policy", 4, 9),
            ("b.yml", "duplicate-workload", 7, 13),
            ("d.yaml", "cgroup-conflict", 8, 17),
            ("e.yaml", "bad-yaml", 1, 7),
        ]
    );
    let text = e.to_string();
    let first = format!(
        "{}:4:9: policy \"p1\" is also defined at {}:4:9",
        dir.join("b.yml").display(),
        dir.join("a.yaml").display()
    );
    assert!(text.starts_with(&first), "{text}");
    assert!(
        text.lines().next().unwrap().ends_with("[duplicate-policy]"),
        "{text}"
    );
    assert_eq!(text.lines().count(), 4);
    assert_eq!(e.code(), "duplicate-policy");
}

#[test]
fn directory_contents_and_hash() {
    let dir_tmp = temp_dir("contents");
    let dir = dir_tmp.path().to_path_buf();
    write(&dir, "a.yaml", &policy("p1", "w1", "/a"));
    write(&dir, "notes.txt", "not a policy");
    write(&dir, ".hidden.yaml", "not: [valid");
    fs::create_dir(dir.join("sub.yaml")).unwrap();
    write(
        &dir,
        "trust.yaml",
        "apiVersion: acelogic.dev/v1\nkind: TrustStore\nkeys: []\n",
    );
    let target_tmp = temp_dir("contents-target");
    let target = target_tmp.path().to_path_buf();
    write(&target, "linked.yaml", &policy("p2", "w2", "/b"));
    std::os::unix::fs::symlink(target.join("linked.yaml"), dir.join("b.yaml")).unwrap();

    let loaded = load_dir(&dir).unwrap();
    assert_eq!(
        loaded.set.workloads.keys().collect::<Vec<_>>(),
        ["w1", "w2"]
    );
    assert_eq!(loaded.set.files, [dir.join("a.yaml"), dir.join("b.yaml")]);
    assert_eq!(loaded.skipped, [dir.join("trust.yaml")]);
    assert!(loaded.warnings.is_empty());
    let w2 = &loaded.set.workloads["w2"];
    assert_eq!(
        (w2.policy.as_str(), w2.source.as_path()),
        ("p2", dir.join("b.yaml").as_path())
    );
    assert_eq!(
        loaded
            .set
            .owner_of(Path::new("/b"))
            .map(|w| w.name.as_str()),
        Some("w2")
    );
    assert_eq!(
        loaded.set.by_scope(scope_id("w1")).map(|w| w.name.as_str()),
        Some("w1")
    );

    // The hash covers policy files only, by name and content.
    let hash = loaded.set.sha256;
    write(
        &dir,
        "trust.yaml",
        "apiVersion: acelogic.dev/v1\nkind: TrustStore\nkeys: [1]\n",
    );
    assert_eq!(load_dir(&dir).unwrap().set.sha256, hash);
    write(
        &dir,
        "a.yaml",
        &format!("{}# edited\n", policy("p1", "w1", "/a")),
    );
    assert_ne!(load_dir(&dir).unwrap().set.sha256, hash);

    // A dangling link is an error; an empty directory loads with a warning.
    std::os::unix::fs::symlink(dir.join("gone"), dir.join("c.yaml")).unwrap();
    assert_eq!(load_dir(&dir).unwrap_err().codes(), ["io"]);
    let empty_tmp = temp_dir("empty");
    let empty = empty_tmp.path().to_path_buf();
    let loaded = load_dir(&empty).unwrap();
    assert!(loaded.set.workloads.is_empty());
    assert_eq!(
        loaded
            .warnings
            .iter()
            .map(|w| w.code().as_str())
            .collect::<Vec<_>>(),
        ["no-policies"]
    );
    assert_eq!(
        load_dir(&empty.join("missing")).unwrap_err().codes(),
        ["io"]
    );
    write(&empty, "bin.yaml", "");
    fs::write(empty.join("bin.yaml"), [0xff, 0xfe, b'\n']).unwrap();
    assert_eq!(load_dir(&empty).unwrap_err().codes(), ["bad-yaml"]);
}

#[test]
fn errors_print_file_line_column_what_why_code() {
    let text = spec(&format!(
        "{ONE_WORKLOAD}  grantable:\n    - name: r\n      exec: [/x]\n      issuers: [a]\n      maxTtl: 48h\n"
    ));
    let e = parse_file(Path::new("policies/deploy-agent.yaml"), &text).unwrap_err();
    assert_eq!(
        e.to_string(),
        "policies/deploy-agent.yaml:13:15: maxTtl \"48h\": is over 24h, the longest an artifact \
         may live [bad-ttl]"
    );
}
