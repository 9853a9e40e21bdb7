//! The shipped example policies load cleanly, match the editor schema,
//! and admit what their comments say; the fuzz corpus replays without a
//! panic.

use std::{
    fs,
    path::{Path, PathBuf},
    time::Duration,
};

use serde_json::Value;

use crate::{
    capability::{Capability, Host, PathPattern},
    policy::{Mode, load_dir, parse_file},
};

fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(rel)
}

fn example_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = [
        "coding-agent.yaml",
        "deploy-agent.yaml",
        "scaling-agent.yaml",
    ]
    .iter()
    .map(|f| repo_path("policies").join(f))
    .collect();
    files.sort();
    files
}

#[test]
fn the_policies_directory_loads_with_the_expected_workloads() {
    let loaded = load_dir(&repo_path("policies")).unwrap_or_else(|e| panic!("{e}"));
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    // The trust store and the issuing policy live beside them, skipped.
    let skipped: Vec<_> = loaded
        .skipped
        .iter()
        .map(|s| s.file_name().unwrap().to_str().unwrap())
        .collect();
    assert_eq!(skipped, ["issuing.yaml", "trust.yaml"]);
    let set = &loaded.set;
    assert_eq!(
        set.workloads.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "coding-agent",
            "deploy-agent",
            "scaling-agent",
            "scaling-agent-canary"
        ]
    );
    for f in example_files() {
        assert!(set.files.contains(&f), "{} not loaded", f.display());
    }

    let coding = &set.workloads["coding-agent"];
    assert_eq!(coding.mode, Mode::Enforce);
    assert!(coding.grantable.is_empty());
    let repo: PathPattern = "/srv/agents/coding/repo/**".parse().unwrap();
    assert!(coding.baseline.write.contains(&repo));
    for bin in [
        "/usr/bin/git",
        "/usr/bin/python3",
        "/usr/local/cargo/bin/cargo",
    ] {
        assert!(
            coding.baseline.exec.iter().any(|p| p.to_string() == bin),
            "{bin}"
        );
    }
    assert!(
        coding
            .baseline
            .connect
            .iter()
            .any(|c| c.host.to_string() == "index.crates.io")
    );
    assert!(coding.never.write.contains(&"/etc/**".parse().unwrap()));

    let deploy = &set.workloads["deploy-agent"];
    let prod = deploy
        .grantable
        .iter()
        .find(|r| r.name == "kubectl-production")
        .unwrap();
    assert_eq!(
        (prod.approvals, prod.operation_key_required, prod.max_uses),
        (1, true, Some(1))
    );
    let staging = deploy
        .grantable
        .iter()
        .find(|r| r.name == "kubectl-staging")
        .unwrap();
    assert_eq!(
        (staging.approvals, staging.operation_key_required),
        (0, false)
    );

    let scaling = &set.workloads["scaling-agent"];
    assert!(scaling.grantable.iter().all(|r| r.operation_key_required));
    assert_eq!(set.workloads["scaling-agent-canary"].mode, Mode::Audit);
    assert_eq!(scaling.policy, "scaling-agent");
}

fn caps(json: &str) -> Vec<Capability> {
    serde_json::from_str(json).unwrap()
}

fn no_dns(_: &Host) -> Vec<std::net::IpAddr> {
    Vec::new()
}

#[test]
fn the_examples_admit_what_they_describe() {
    let set = load_dir(&repo_path("policies")).unwrap().set;
    let deploy = &set.workloads["deploy-agent"];
    let staging = caps(
        r#"[{"exec":{"path":"/usr/local/bin/kubectl"}},
            {"connect":{"host":"10.20.0.7","ports":"6443","protocol":"tcp"}}]"#,
    );
    let t = deploy
        .admit("release-authority", &staging, &no_dns)
        .unwrap();
    assert_eq!((t.approvals, t.operation_key_required), (0, false));
    let prod = caps(
        r#"[{"exec":{"path":"/usr/local/bin/kubectl"}},
            {"connect":{"host":"10.30.0.7","ports":"6443","protocol":"tcp"}}]"#,
    );
    let t = deploy.admit("release-authority", &prod, &no_dns).unwrap();
    assert_eq!(
        (t.approvals, t.operation_key_required, t.max_uses, t.max_ttl),
        (1, true, Some(1), Duration::from_secs(600))
    );
    let metadata =
        caps(r#"[{"connect":{"host":"169.254.169.254","ports":"80","protocol":"tcp"}}]"#);
    assert_eq!(
        deploy
            .admit("release-authority", &metadata, &no_dns)
            .unwrap_err()
            .code,
        "never"
    );

    let scale = caps(r#"[{"exec":{"path":"/usr/local/bin/scale"}}]"#);
    let t = set.workloads["scaling-agent"]
        .admit("release-authority", &scale, &no_dns)
        .unwrap();
    assert!(t.operation_key_required);
    let kubectl = caps(r#"[{"exec":{"path":"/usr/local/bin/kubectl"}}]"#);
    let r = set.workloads["scaling-agent"].admit("release-authority", &kubectl, &no_dns);
    assert_eq!(r.unwrap_err().code, "never");
}

fn schema() -> jsonschema::Validator {
    let text =
        fs::read_to_string(repo_path("policies/schema/capability-policy.schema.json")).unwrap();
    let schema: Value = serde_json::from_str(&text).unwrap();
    jsonschema::draft202012::new(&schema).unwrap_or_else(|e| panic!("schema: {e}"))
}

fn yaml_value(text: &str) -> Value {
    serde_saphyr::from_str(text).unwrap()
}

#[test]
fn the_examples_match_the_schema_and_it_is_strict() {
    let schema = schema();
    for f in example_files() {
        let v = yaml_value(&fs::read_to_string(&f).unwrap());
        let errors: Vec<String> = schema.iter_errors(&v).map(|e| e.to_string()).collect();
        assert!(errors.is_empty(), "{}: {errors:?}", f.display());
    }
    let base = yaml_value(&fs::read_to_string(repo_path("policies/deploy-agent.yaml")).unwrap());
    type Edit = (&'static str, fn(&mut Value));
    let edits: [Edit; 7] = [
        ("unknown top-level field", |v| {
            v["extra"] = Value::Bool(true);
        }),
        ("unknown spec field", |v| {
            v["spec"]["allow"] = Value::Array(vec![]);
        }),
        ("unknown workload field", |v| {
            v["spec"]["workloads"][0]["group"] = "x".into();
        }),
        ("unknown rule field", |v| {
            v["spec"]["grantable"][0]["ttl"] = "1m".into();
        }),
        ("unknown connect field", |v| {
            v["spec"]["never"]["connect"][0]["port"] = 80.into();
        }),
        ("wrong kind", |v| {
            v["kind"] = "TrustStore".into();
        }),
        ("root cgroup", |v| {
            v["spec"]["workloads"][0]["cgroups"][0] = "/".into();
        }),
    ];
    for (what, edit) in edits {
        let mut v = base.clone();
        edit(&mut v);
        assert!(!schema.is_valid(&v), "the schema accepts: {what}");
        // The loader refuses the same documents.
        let yaml = serde_json::to_string(&v).unwrap();
        assert!(
            parse_file(Path::new("edited.yaml"), &yaml).is_err(),
            "the loader accepts: {what}"
        );
    }
}

/// Every seed of the `policy_yaml` fuzz target (and whatever crashes were
/// minimized into it) goes through the parser without a panic.
#[test]
fn the_fuzz_corpus_replays_without_panic() {
    let dir = repo_path("fuzz/corpus/policy_yaml");
    let entries = fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut count = 0;
    for entry in entries {
        let path = entry.unwrap().path();
        let bytes = fs::read(&path).unwrap();
        if let Ok(text) = std::str::from_utf8(&bytes) {
            let _ = parse_file(&path, text);
        }
        count += 1;
    }
    assert!(count >= 3, "the corpus holds the example policies at least");
}

fn issuing_schema() -> jsonschema::Validator {
    let text = fs::read_to_string(repo_path("policies/schema/issuing-policy.schema.json")).unwrap();
    let schema: Value = serde_json::from_str(&text).unwrap();
    jsonschema::draft202012::new(&schema).unwrap_or_else(|e| panic!("schema: {e}"))
}

/// The example issuing policy parses, names workloads the capability
/// policies define and the issuer and approver the trust store holds, and
/// places the demo's requests where its comments say.
#[test]
fn the_example_issuing_policy_places_the_demo_requests() {
    use crate::issuing::{Tier, load_file};
    let path = repo_path("policies/issuing.yaml");
    let p = load_file(&path).unwrap_or_else(|e| panic!("{e}"));
    let set = load_dir(&repo_path("policies")).unwrap().set;
    for rule in &p.rules {
        for w in &rule.workloads {
            assert!(w == "*" || set.workloads.contains_key(w), "{w}");
        }
    }
    let trust = fs::read_to_string(repo_path("policies/trust.yaml")).unwrap();
    assert!(trust.contains(&format!("name: {}", p.issuer)));
    for members in p.groups.values() {
        for m in members {
            assert!(trust.contains(&format!("name: {m}")), "{m}");
        }
    }

    let scale = caps(r#"[{"exec":{"path":"/usr/local/bin/scale"}}]"#);
    let placed = p.place("scaling-agent", &scale, &no_dns).unwrap();
    assert_eq!(
        (placed.tier.name(), placed.max_uses, placed.max_ttl),
        ("auto", Some(1), Some(Duration::from_secs(600)))
    );
    let prod = caps(
        r#"[{"exec":{"path":"/usr/local/bin/kubectl"}},
            {"connect":{"host":"10.30.0.7","ports":"6443","protocol":"tcp"}}]"#,
    );
    let placed = p.place("deploy-agent", &prod, &no_dns).unwrap();
    let Tier::Approve(a) = &placed.tier else {
        panic!("{placed:?}")
    };
    assert_eq!(a.count, 1);
    assert_eq!(p.groups_of(a, "change-approver"), ["change-approvers"]);
    let nsenter = caps(r#"[{"exec":{"path":"/usr/bin/nsenter"}}]"#);
    for w in ["scaling-agent", "deploy-agent", "coding-agent"] {
        assert_eq!(p.place(w, &nsenter, &no_dns).unwrap().tier, Tier::Never);
    }
    // The scaling agent gets no kubectl from the authority either.
    let kubectl = caps(r#"[{"exec":{"path":"/usr/local/bin/kubectl"}}]"#);
    let e = p.place("scaling-agent", &kubectl, &no_dns).unwrap_err();
    assert_eq!(e.code, "not-issuable");
    assert_eq!(p.rate_for("scaling-agent"), Some(20));
    assert_eq!(p.rate_for("deploy-agent"), None);
}

#[test]
fn the_issuing_example_matches_its_schema_and_both_refuse_bad_documents() {
    let schema = issuing_schema();
    let text = fs::read_to_string(repo_path("policies/issuing.yaml")).unwrap();
    let base = yaml_value(&text);
    let errors: Vec<String> = schema.iter_errors(&base).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}");
    type Edit = (&'static str, fn(&mut Value));
    let edits: [Edit; 10] = [
        ("unknown spec field", |v| {
            v["spec"]["tiers"] = Value::Array(vec![]);
        }),
        ("capability policy kind", |v| {
            v["kind"] = "CapabilityPolicy".into();
        }),
        ("no rules", |v| {
            v["spec"]["rules"] = Value::Array(vec![]);
        }),
        ("unknown tier", |v| {
            v["spec"]["rules"][1]["tier"] = "sometimes".into();
        }),
        ("maxTtl on never", |v| {
            v["spec"]["rules"][0]["maxTtl"] = "1m".into();
        }),
        ("auto without maxTtl", |v| {
            v["spec"]["rules"][1]
                .as_object_mut()
                .unwrap()
                .remove("maxTtl");
        }),
        ("approve without approvals", |v| {
            v["spec"]["rules"][2]
                .as_object_mut()
                .unwrap()
                .remove("approvals");
        }),
        ("approvals count 0", |v| {
            v["spec"]["rules"][2]["approvals"]["count"] = 0.into();
        }),
        ("empty approver group", |v| {
            v["spec"]["approverGroups"]["change-approvers"] = Value::Array(vec![]);
        }),
        ("* with a workload", |v| {
            v["spec"]["rules"][0]["workloads"] = serde_json::json!(["*", "deploy-agent"]);
        }),
    ];
    for (what, edit) in edits {
        let mut v = base.clone();
        edit(&mut v);
        assert!(!schema.is_valid(&v), "the schema accepts: {what}");
        let yaml = serde_json::to_string(&v).unwrap();
        assert!(
            crate::issuing::parse_file(Path::new("edited.yaml"), &yaml).is_err(),
            "the parser accepts: {what}"
        );
    }
}

/// Every seed of the `issuing_policy` fuzz target goes through the parser
/// without a panic.
#[test]
fn the_issuing_fuzz_corpus_replays_without_panic() {
    let dir = repo_path("fuzz/corpus/issuing_policy");
    let entries = fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    let mut count = 0;
    for entry in entries {
        let path = entry.unwrap().path();
        let bytes = fs::read(&path).unwrap();
        if let Ok(text) = std::str::from_utf8(&bytes) {
            let _ = crate::issuing::parse_file(&path, text);
        }
        count += 1;
    }
    assert!(count >= 3, "the corpus holds the example at least");
}
