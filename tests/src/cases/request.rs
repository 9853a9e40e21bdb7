//! Agents propose, humans authorize, in the kernel: a governed process
//! asks its daemon for a capability, the daemon attests it and relays
//! the request to a real `acelogic-authority` over TLS, and what comes
//! back is installed before `acelogicctl request --wait` returns.

use std::{
    process::Stdio,
    time::{Duration, Instant},
};

use anyhow::{Context as _, ensure};

use crate::{
    authority::{Authority, node_key},
    daemon::{Ctl, Daemon, binary},
    fixtures::{Exec, TestCgroup, exec_in},
    harness::{Case, Need},
};

pub(crate) const CASES: &[Case] = &[
    Case {
        name: "request_issued_grant_is_live_when_the_command_returns",
        needs: &[Need::BpfLsm],
        run: grant_is_live_when_the_command_returns,
    },
    Case {
        name: "request_as_another_workload_refused",
        needs: &[Need::BpfLsm],
        run: request_as_another_workload_refused,
    },
    Case {
        name: "request_approved_from_outside_the_governed_cgroups",
        needs: &[Need::BpfLsm],
        run: approved_from_outside,
    },
];

const EPERM: i32 = libc::EPERM;

/// Workloads `req-a-PID` and `req-b-PID`, owning `a` and `b`: acelogicctl
/// by baseline; busybox by artifact, with `approvals` approver signatures.
fn policy(a: &TestCgroup, b: &TestCgroup, approvals: u32) -> String {
    let pid = std::process::id();
    format!(
        "apiVersion: acelogic.dev/v1
kind: CapabilityPolicy
metadata:
  name: request-test
spec:
  workloads:
    - name: req-a-{pid}
      cgroups: [/{a}]
    - name: req-b-{pid}
      cgroups: [/{b}]
  baseline:
    exec: [/usr/bin/acelogicctl]
    libraries: [/lib/**, /lib64/**, /usr/lib/**]
  grantable:
    - name: busybox
      exec: [/bin/busybox]
      issuers: [ci]
      maxTtl: 1h
      approvals: {approvals}
",
        a = a.name(),
        b = b.name()
    )
}

/// Busybox for every workload, in `tier` (auto, or approve by alice).
fn issuing(tier: &str) -> String {
    let approve = if tier == "approve" {
        "      approvals: {count: 1, groups: [approvers]}\n"
    } else {
        ""
    };
    format!(
        "apiVersion: acelogic.dev/v1
kind: IssuingPolicy
metadata: {{name: request-test}}
spec:
  issuer: ci
  audience: test
  approverGroups:
    approvers: [alice]
  rules:
    - name: busybox
      workloads: [\"*\"]
      exec: [/bin/busybox]
      tier: {tier}
{approve}      maxTtl: 10m
"
    )
}

/// A daemon relaying to an authority with `tier`; the two cgroups.
fn setup(name: &str, tier: &str) -> anyhow::Result<(Daemon, Authority, TestCgroup, TestCgroup)> {
    let a = TestCgroup::new(&format!("{name}-a"))?;
    let b = TestCgroup::new(&format!("{name}-b"))?;
    let approvals = u32::from(tier == "approve");
    let mut d = Daemon::prepare(name, &policy(&a, &b, approvals))?;
    let entry = node_key(&d)?;
    let auth = Authority::start(&d, &issuing(tier), &entry)?;
    d.args.extend(auth.daemon_args());
    d.start()?;
    Ok((d, auth, a, b))
}

/// `acelogicctl --socket S request ARGS` run inside `cg`.
fn request_in(d: &Daemon, cg: &TestCgroup, args: &[&str]) -> anyhow::Result<Ctl> {
    let socket = d.socket.display().to_string();
    let mut all = vec!["--socket", socket.as_str(), "request"];
    all.extend_from_slice(args);
    let out = cg
        .command(&binary("acelogicctl")?.display().to_string(), &all)?
        .stdin(Stdio::null())
        .output()?;
    Ok(Ctl::of(&out))
}

fn expect(got: Exec, want: Exec, what: &str) -> anyhow::Result<()> {
    ensure!(got == want, "{what}: {got:?}, expected {want:?}");
    Ok(())
}

/// Denied before; `request --wait` from inside the cgroup returns with the
/// grant installed, so the very next exec runs; the request is the
/// authority's lineage and the acceptance the node's, with the caller.
fn grant_is_live_when_the_command_returns() -> anyhow::Result<()> {
    let (d, auth, a, _b) = setup("req-live", "auto")?;
    expect(
        exec_in(&a, "/bin/busybox", &["true"])?,
        Exec::Refused(EPERM),
        "before the request",
    )?;
    let t = Instant::now();
    let r = request_in(
        &d,
        &a,
        &[
            "--exec",
            "/bin/busybox",
            "--reason",
            "run busybox",
            "--wait",
            "30s",
        ],
    )?
    .ok("request --wait")?;
    let returned = t.elapsed();
    expect(
        exec_in(&a, "/bin/busybox", &["true"])?,
        Exec::Ran(0),
        "right after request --wait",
    )?;
    ensure!(
        r.stdout.contains("auto tier")
            && r.stdout.contains("issued artifact")
            && r.stdout.contains("live until"),
        "request printed: {}",
        r.stdout
    );
    let artifact = r
        .stdout
        .split_whitespace()
        .skip_while(|w| *w != "artifact")
        .nth(1)
        .context("no artifact id printed")?
        .to_owned();
    // The node accepted it for the caller's workload, recording the caller.
    let pid = std::process::id();
    let line = d.wait_log(&["authz", "accepted", &artifact])?;
    ensure!(line.contains(&format!("req-a-{pid}")), "acceptance: {line}");
    // The other workload got nothing.
    expect(
        exec_in(&_b, "/bin/busybox", &["true"])?,
        Exec::Refused(EPERM),
        "the other workload",
    )?;
    let issued = auth.approvals(&["list", "--state", "issued"])?.ok("list")?;
    ensure!(
        issued.stdout.contains(&format!("req-a-{pid} on vm")),
        "{}",
        issued.stdout
    );
    println!("request to grant live: {} ms", returned.as_millis());
    Ok(())
}

/// A governed process naming another workload is refused and recorded,
/// and nothing reaches the authority; an operator outside the governed
/// cgroups may name it.
fn request_as_another_workload_refused() -> anyhow::Result<()> {
    let (d, auth, a, b) = setup("req-forge", "auto")?;
    let pid = std::process::id();
    let other = format!("req-b-{pid}");
    let r = request_in(
        &d,
        &a,
        &[
            "--workload",
            &other,
            "--exec",
            "/bin/busybox",
            "--reason",
            "as b",
        ],
    )?;
    r.refused(
        "governed caller naming another workload",
        "identity-mismatch",
    )?;
    d.wait_log(&["authz", "refused [identity-mismatch]"])?;
    let all = auth.approvals(&["list", "--state", "all"])?.ok("list")?;
    ensure!(
        all.stdout.trim() == "no requests",
        "the authority heard of it: {}",
        all.stdout
    );
    expect(
        exec_in(&b, "/bin/busybox", &["true"])?,
        Exec::Refused(EPERM),
        "b after the forged request",
    )?;

    // The ungoverned twin: an operator asks for b, by name.
    d.ctl(&[
        "request",
        "--workload",
        &other,
        "--exec",
        "/bin/busybox",
        "--reason",
        "operator",
        "--wait",
        "30s",
    ])?
    .ok("operator request for b")?;
    expect(
        exec_in(&b, "/bin/busybox", &["true"])?,
        Exec::Ran(0),
        "b after the operator's request",
    )?;
    expect(
        exec_in(&a, "/bin/busybox", &["true"])?,
        Exec::Refused(EPERM),
        "a is still not granted",
    )?;
    Ok(())
}

/// The request waits in the queue while the governed caller waits; the
/// caller cannot reach the authority itself; an approver outside the
/// governed cgroups approves and the caller's command returns granted.
fn approved_from_outside() -> anyhow::Result<()> {
    let (d, auth, a, _b) = setup("req-approve", "approve")?;
    let socket = d.socket.display().to_string();
    let waiting = a
        .command(
            &binary("acelogicctl")?.display().to_string(),
            &[
                "--socket",
                &socket,
                "request",
                "--exec",
                "/bin/busybox",
                "--reason",
                "needs a human",
                "--wait",
                "60s",
            ],
        )?
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let deadline = Instant::now() + Duration::from_secs(20);
    let id = loop {
        let list = auth.approvals(&["list", "--json"])?.ok("list")?;
        let v: serde_json::Value = serde_json::from_str(list.stdout.trim())?;
        if let Some(id) = v.get(0).and_then(|r| r["requestId"].as_str()) {
            break id.to_owned();
        }
        ensure!(
            Instant::now() < deadline,
            "no pending request: {}",
            list.stdout
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    expect(
        exec_in(&a, "/bin/busybox", &["true"])?,
        Exec::Refused(EPERM),
        "while pending",
    )?;
    // The agent cannot approve for itself: it has no path to the authority.
    let own = a
        .command(
            &binary("acelogicctl")?.display().to_string(),
            &[
                "approvals",
                "--authority",
                &auth.url,
                "--authority-ca",
                &auth.ca.display().to_string(),
                "list",
            ],
        )?
        .stdin(Stdio::null())
        .output()?;
    ensure!(
        own.status.code() == Some(3),
        "a governed approvals call: {own:?}"
    );
    let alice = auth.keys.join("alice.key").display().to_string();
    let ok = auth
        .approvals(&["approve", &id, "--key", &alice])?
        .ok("approve")?;
    ensure!(ok.stdout.contains("issued artifact"), "{}", ok.stdout);
    let out = waiting.wait_with_output()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success()
            && stdout.contains("approved by alice")
            && stdout.contains("live until"),
        "the waiting request: {:?} {stdout} {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    expect(
        exec_in(&a, "/bin/busybox", &["true"])?,
        Exec::Ran(0),
        "after the approval",
    )?;
    Ok(())
}
