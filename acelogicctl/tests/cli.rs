//! `acelogicctl` as a script calls it: exit codes and the `[code]` it
//! prints, for the commands that need no daemon. (Building this test also
//! makes `cargo test --workspace` build the binary, which the collector's
//! end-to-end tests run.)

use std::{path::PathBuf, process::Command};

use acelogic_domain::Reason;

fn ctl(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_acelogicctl"))
        .args(args)
        .output()
        .expect("acelogicctl runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn usage_errors_exit_2_and_check_node_moved_to_the_daemon() {
    let (code, _, err) = ctl(&["no-such-command"]);
    assert_eq!(code, 2, "{err}");
    // check-node loads BPF: it is `acelogic-agent check-node` now, so this
    // binary builds without the BPF toolchain.
    let (code, _, err) = ctl(&["check-node"]);
    assert_eq!(code, 2, "{err}");
}

#[test]
fn a_malformed_artifact_is_refused_with_its_reason_code() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("a.json");
    std::fs::write(&bad, b"{not json").unwrap();
    let trust = repo().join("policies/trust.yaml");
    let (code, out, err) = ctl(&[
        "artifact",
        "inspect",
        bad.to_str().unwrap(),
        "--trust",
        trust.to_str().unwrap(),
    ]);
    assert_eq!(i32::from(Reason::BadJson.exit_code()), 1);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("refused [bad-json]"), "{err}");
}

#[test]
fn an_unreadable_input_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.json");
    let trust = repo().join("policies/trust.yaml");
    let (code, out, err) = ctl(&[
        "artifact",
        "inspect",
        missing.to_str().unwrap(),
        "--trust",
        trust.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{out}{err}");
}

#[test]
fn the_example_policies_pass_policy_check() {
    let dir = repo().join("policies");
    let (code, out, err) = ctl(&["policy", "check", dir.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    let (code, out, err) = ctl(&["policy", "check", "/nonexistent-acelogic-policies"]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(err.contains("[io]"), "{err}");
}
