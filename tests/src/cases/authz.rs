//! End to end: keys from `acelogicctl keygen`, artifacts from `acelogicctl
//! artifact sign`, the real daemon turning them into kernel grants, and a
//! governed process that can then do exactly what was granted.

use std::{fs, path::Path};

use anyhow::ensure;

use crate::{
    daemon::{Daemon, binary, sha256_of},
    fixtures::{Exec, TestCgroup, exec_in},
    harness::{Case, Need},
};

pub(crate) const CASES: &[Case] = &[
    Case {
        name: "authz_artifact_grants_exactly_what_it_names",
        needs: &[Need::BpfLsm],
        run: artifact_grants_exactly_what_it_names,
    },
    Case {
        name: "authz_operation_keys_approvals_and_expiry",
        needs: &[Need::BpfLsm],
        run: operation_keys_approvals_and_expiry,
    },
    Case {
        name: "authz_policy_reload_narrows_and_bad_reload_keeps",
        needs: &[Need::BpfLsm],
        run: policy_reload_narrows_and_bad_reload_keeps,
    },
    Case {
        name: "authz_a_used_up_artifact_makes_way_at_once",
        needs: &[Need::BpfLsm],
        run: used_up_artifact_makes_way_at_once,
    },
];

const EPERM: i32 = libc::EPERM;

/// One workload owning `cg`; two grantable rules: the CLI binaries with
/// the issuer alone, busybox only with one approver.
fn policy(cg: &TestCgroup, with_tools: bool) -> String {
    let pid = std::process::id();
    let rel = cg
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tools = if with_tools {
        "    - name: tools
      exec: [/usr/bin/acelogicctl, /usr/bin/acelogic-agent]
      issuers: [ci]
      maxTtl: 1h
"
    } else {
        ""
    };
    format!(
        "apiVersion: acelogic.dev/v1
kind: CapabilityPolicy
metadata:
  name: authz-test
spec:
  workloads:
    - name: agent-{pid}
      cgroups: [/{rel}]
  baseline:
    libraries: [/lib/**, /lib64/**]
  grantable:
{tools}    - name: busybox-approved
      exec: [/bin/busybox]
      issuers: [ci]
      maxTtl: 1h
      approvals: 1
  never:
    write: [/etc/**]
"
    )
}

fn request(exec: &str, extra: &str) -> String {
    let pid = std::process::id();
    format!(
        "issuer: ci
subject: {{workload: agent-{pid}}}
audience: test
ttl: 10m
capabilities:
  - exec: {{path: {exec}}}
reason: end-to-end test
{extra}"
    )
}

fn ctl_path() -> anyhow::Result<String> {
    Ok(binary("acelogicctl")?.display().to_string())
}

fn agent_path() -> anyhow::Result<String> {
    Ok(binary("acelogic-agent")?.display().to_string())
}

fn expect(got: Exec, want: Exec, what: &str) -> anyhow::Result<()> {
    ensure!(got == want, "{what}: {got:?}, expected {want:?}");
    Ok(())
}

/// Sign, submit, the granted binary runs and nothing else does; the grant
/// shows in the kernel's record; a replay is refused, also after a
/// restart; governed processes reach the API but not its admin calls.
fn artifact_grants_exactly_what_it_names() -> anyhow::Result<()> {
    let cg = TestCgroup::new("authz-exact")?;
    let mut d = Daemon::prepare("authz-exact", &policy(&cg, true))?;
    d.start()?;
    let ctl = ctl_path()?;
    let agent = agent_path()?;

    expect(
        exec_in(&cg, &ctl, &["--version"])?,
        Exec::Refused(EPERM),
        "before any artifact",
    )?;

    // A digest that does not match the binary is refused.
    let bad = d.sign(
        "bad-digest",
        &request(&ctl, "").replace(
            &format!("path: {ctl}}}"),
            &format!("path: {ctl}, sha256: {}}}", "ab".repeat(32)),
        ),
        false,
    )?;
    d.submit(&bad)?.refused("wrong digest", "digest-mismatch")?;

    let digest = sha256_of(Path::new(&ctl))?;
    let good = d.sign(
        "good",
        &request(&ctl, "").replace(
            &format!("path: {ctl}}}"),
            &format!("path: {ctl}, sha256: {digest}}}"),
        ),
        false,
    )?;
    let (id, grant) = d.accept(&good)?;
    d.wait_log(&["authz", "accepted [granted]", &format!("artifact={id}")])?;

    expect(
        exec_in(&cg, &ctl, &["--version"])?,
        Exec::Ran(0),
        "the granted binary",
    )?;
    d.wait_log(&[
        "hook=exec",
        "verdict=allow",
        "reason=grant",
        &format!("grant={grant}"),
    ])?;
    expect(
        exec_in(&cg, &agent, &["--version"])?,
        Exec::Refused(EPERM),
        "a binary the artifact does not name",
    )?;
    expect(
        exec_in(&cg, "/bin/busybox", &["true"])?,
        Exec::Refused(EPERM),
        "busybox",
    )?;

    // The socket is reachable from the governed workload (it may list its
    // grants), but administrative calls are not.
    let own = exec_in(
        &cg,
        &ctl,
        &["--socket", &d.socket.display().to_string(), "grants"],
    )?;
    expect(own, Exec::Ran(0), "governed `acelogicctl grants`")?;
    let unfreeze = exec_in(
        &cg,
        &ctl,
        &[
            "--socket",
            &d.socket.display().to_string(),
            "freeze",
            &format!("agent-{}", std::process::id()),
        ],
    )?;
    expect(unfreeze, Exec::Ran(1), "governed `acelogicctl freeze`")?;
    d.wait_log(&["refused [governed-caller]"])?;
    ensure!(
        d.status()?["workloads"][0]["frozen"] == serde_json::Value::Bool(false),
        "a governed caller froze its workload"
    );

    d.submit(&good)?.refused("replay", "replayed")?;
    d.stop()?;
    d.start()?;
    d.submit(&good)?
        .refused("replay after a restart", "replayed")?;
    expect(
        exec_in(&cg, &ctl, &["--version"])?,
        Exec::Ran(0),
        "the grant after a restart",
    )?;
    ensure!(
        d.status()?["epoch"] == 2,
        "the restart is epoch 2: {}",
        d.status()?
    );
    d.stop()
}

/// One live artifact per operation key; revoking frees it. A rule that
/// wants an approver refuses the issuer alone. Expiry ends a grant.
fn operation_keys_approvals_and_expiry() -> anyhow::Result<()> {
    let cg = TestCgroup::new("authz-keys")?;
    let mut d = Daemon::prepare("authz-keys", &policy(&cg, true))?;
    d.start()?;
    let ctl = ctl_path()?;
    let agent = agent_path()?;

    let key = "operationKey: scale/checkout\n";
    let up = d.sign("scale-up", &request(&ctl, key), false)?;
    let down = d.sign("scale-down", &request(&agent, key), false)?;
    let (up_id, _) = d.accept(&up)?;
    d.submit(&down)?
        .refused("second holder of the key", "operation-conflict")?;
    d.wait_log(&["refused [operation-conflict]"])?;
    expect(
        exec_in(&cg, &agent, &["--version"])?,
        Exec::Refused(EPERM),
        "the conflicting grant",
    )?;
    d.ctl(&["revoke", &up_id, "--reason", "test"])?
        .ok("revoke")?;
    d.wait_log(&["revoked [revoked]", &format!("artifact={up_id}")])?;
    expect(
        exec_in(&cg, &ctl, &["--version"])?,
        Exec::Refused(EPERM),
        "after revoke",
    )?;
    d.accept(&down)?;
    expect(
        exec_in(&cg, &agent, &["--version"])?,
        Exec::Ran(0),
        "the key's new holder",
    )?;

    let lone = d.sign("lone", &request("/bin/busybox", ""), false)?;
    d.submit(&lone)?
        .refused("no approver", "approval-missing")?;
    let approved = d.sign("approved", &request("/bin/busybox", ""), true)?;
    d.accept(&approved)?;
    expect(
        exec_in(&cg, "/bin/busybox", &["true"])?,
        Exec::Ran(0),
        "approved busybox",
    )?;

    let short = d.sign(
        "short",
        &request(&ctl, "").replace("ttl: 10m", "ttl: 3s"),
        false,
    )?;
    let (short_id, _) = d.accept(&short)?;
    expect(
        exec_in(&cg, &ctl, &["--version"])?,
        Exec::Ran(0),
        "before expiry",
    )?;
    d.wait_log(&["expired [expired]", &format!("artifact={short_id}")])?;
    expect(
        exec_in(&cg, &ctl, &["--version"])?,
        Exec::Refused(EPERM),
        "after expiry",
    )?;
    d.stop()
}

/// A reload that drops a grantable rule revokes the live artifacts it
/// covered; a malformed reload keeps the policy in force and says where.
fn policy_reload_narrows_and_bad_reload_keeps() -> anyhow::Result<()> {
    let cg = TestCgroup::new("authz-reload")?;
    let mut d = Daemon::prepare("authz-reload", &policy(&cg, true))?;
    d.start()?;
    let ctl = ctl_path()?;
    let (id, _) = d.accept(&d.sign("tool", &request(&ctl, ""), false)?)?;
    expect(exec_in(&cg, &ctl, &["--version"])?, Exec::Ran(0), "granted")?;
    let before = d.status()?["policySha256"].clone();

    fs::write(d.policies.join("policy.yaml"), policy(&cg, false))?;
    d.wait_log(&["revoked [policy-narrowed]", &format!("artifact={id}")])?;
    expect(
        exec_in(&cg, &ctl, &["--version"])?,
        Exec::Refused(EPERM),
        "after narrowing",
    )?;
    ensure!(d.grants()?.is_empty(), "grants left: {:?}", d.grants()?);
    let narrowed = d.status()?["policySha256"].clone();
    ensure!(narrowed != before, "the policy hash did not change");
    d.sign("tool2", &request(&ctl, ""), false)
        .and_then(|e| d.submit(&e))?
        .refused("no longer grantable", "not-grantable")?;

    fs::write(
        d.policies.join("policy.yaml"),
        policy(&cg, true).replace("maxTtl: 1h\n", "maxTtl: 1h\n      colour: blue\n"),
    )?;
    d.eventually("the reload error shows in status", || {
        Ok(d.status()?["policyError"]
            .as_str()
            .is_some_and(|e| e.contains("policy.yaml:")))
    })?;
    let s = d.status()?;
    ensure!(
        s["policySha256"] == narrowed,
        "a bad reload replaced the policy: {s}"
    );
    d.wait_log(&["policy-rejected [invalid-policy]"])?;
    d.stop()
}

/// A one-use artifact whose use is spent no longer holds its operation key
/// or its kernel entry: the next artifact for the same key and binary is
/// accepted at once, not only after the daemon's next tick retired the
/// first (the tick is an hour here, so only the submit can retire it).
fn used_up_artifact_makes_way_at_once() -> anyhow::Result<()> {
    let cg = TestCgroup::new("authz-used-up")?;
    let mut d = Daemon::prepare("authz-used-up", &policy(&cg, true))?;
    d.args.extend(["--tick".to_owned(), "1h".to_owned()]);
    d.start()?;
    let ctl = ctl_path()?;
    let once = "operationKey: deploy/once\nmaxUses: 1\n";
    let first = d.sign("first", &request(&ctl, once), false)?;
    let second = d.sign("second", &request(&ctl, once), false)?;
    let (first_id, _) = d.accept(&first)?;
    expect(
        exec_in(&cg, &ctl, &["--version"])?,
        Exec::Ran(0),
        "the first artifact's one use",
    )?;
    expect(
        exec_in(&cg, &ctl, &["--version"])?,
        Exec::Refused(EPERM),
        "a second use of the first artifact",
    )?;
    let (second_id, grant) = d.accept(&second)?;
    d.wait_log(&["consumed [consumed]", &format!("artifact={first_id}")])?;
    expect(
        exec_in(&cg, &ctl, &["--version"])?,
        Exec::Ran(0),
        "the second artifact's one use",
    )?;
    d.wait_log(&[
        "hook=exec",
        "verdict=allow",
        "reason=grant",
        &format!("grant={grant}"),
    ])?;
    ensure!(first_id != second_id, "two signings gave one id {first_id}");
    d.stop()
}
