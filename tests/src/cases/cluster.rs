//! Two nodes in one guest: two daemons with their own pinned programs,
//! state, sockets and node names share one etcd. A process governed by
//! one is not governed by the other's programs (each governs its own
//! cgroup), so each node's kernel enforces what its daemon decided, and
//! the cluster store decides what either may accept.

use std::{path::PathBuf, process::Command, time::Duration};

use anyhow::{Context as _, ensure};

use crate::{
    daemon::{Daemon, binary},
    etcd::Etcd,
    fixtures::{Exec, Scratch, TestCgroup, exec_in},
    harness::{Case, Need},
};

pub(crate) const CASES: &[Case] = &[Case {
    name: "cluster_two_nodes_share_one_etcd",
    needs: &[Need::BpfLsm],
    run: two_nodes_share_one_etcd,
}];

const EPERM: i32 = libc::EPERM;

/// One workload owning `cg`: busybox by baseline, acelogicctl by artifact.
fn policy(cg: &TestCgroup) -> String {
    let pid = std::process::id();
    let rel = cg
        .path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!(
        "apiVersion: acelogic.dev/v1
kind: CapabilityPolicy
metadata:
  name: cluster-test
spec:
  workloads:
    - name: agent-{pid}
      cgroups: [/{rel}]
  baseline:
    exec: [/bin/busybox]
    libraries: [/lib/**, /lib64/**]
  grantable:
    - name: ctl
      exec: [/usr/bin/acelogicctl]
      issuers: [ci]
      maxTtl: 1h
"
    )
}

fn request(ttl: &str, extra: &str) -> String {
    let pid = std::process::id();
    format!(
        "issuer: ci
subject: {{workload: agent-{pid}}}
audience: test
ttl: {ttl}
capabilities:
  - exec: {{path: /usr/bin/acelogicctl}}
reason: two-node test
{extra}"
    )
}

/// Removes a node's private pins when the case ends.
struct Pins(PathBuf);

impl Drop for Pins {
    fn drop(&mut self) {
        if let Ok(agent) = binary("acelogic-agent") {
            let _ = Command::new(agent)
                .arg("uninstall")
                .arg("--pin-dir")
                .arg(&self.0)
                .output();
        }
    }
}

struct Node {
    d: Daemon,
    cg: TestCgroup,
    _pins: Pins,
}

fn node(name: &str, etcd: &Etcd, trust_from: Option<&Daemon>) -> anyhow::Result<Node> {
    let cg = TestCgroup::new(&format!("cl-{name}"))?;
    let mut d = Daemon::prepare(&format!("cluster-{name}"), &policy(&cg))?;
    if let Some(a) = trust_from {
        // Both nodes trust the same issuer.
        std::fs::copy(a.policies.join("trust.yaml"), d.policies.join("trust.yaml"))?;
    }
    let pins = PathBuf::from(format!(
        "/sys/fs/bpf/acelogic-test-{}-{name}",
        std::process::id()
    ));
    d.pin_dir = Some(pins.clone());
    d.node_name = name.to_owned();
    d.args = vec![
        "--etcd-endpoints".to_owned(),
        etcd.url.clone(),
        "--etcd-timeout".to_owned(),
        "1s".to_owned(),
    ];
    d.start()?;
    Ok(Node {
        d,
        cg,
        _pins: Pins(pins),
    })
}

fn ctl_runs(n: &Node) -> anyhow::Result<Exec> {
    exec_in(
        &n.cg,
        &binary("acelogicctl")?.display().to_string(),
        &["--version"],
    )
}

fn expect(got: Exec, want: Exec, what: &str) -> anyhow::Result<()> {
    ensure!(got == want, "{what}: {got:?}, expected {want:?}");
    Ok(())
}

fn token(submit_json: &str) -> anyhow::Result<u64> {
    let v: serde_json::Value = serde_json::from_str(submit_json.trim())
        .with_context(|| format!("submit output: {submit_json}"))?;
    v["fencingToken"]
        .as_u64()
        .with_context(|| format!("no fencing token in {submit_json}"))
}

fn two_nodes_share_one_etcd() -> anyhow::Result<()> {
    let scratch = Scratch::new("cluster-etcd")?;
    let mut etcd = Etcd::start(&scratch.join("etcd"))?;
    let mut a = node("node-a", &etcd, None)?;
    let b = node("node-b", &etcd, Some(&a.d))?;
    let ctl = binary("acelogicctl")?;
    ensure!(
        Command::new(&ctl).arg("--version").status()?.success(),
        "the ungoverned twin runs acelogicctl"
    );
    expect(
        ctl_runs(&a)?,
        Exec::Refused(EPERM),
        "node A before any artifact",
    )?;
    expect(
        ctl_runs(&b)?,
        Exec::Refused(EPERM),
        "node B before any artifact",
    )?;

    // One artifact presented on both nodes runs once, on the first.
    let once = a.d.sign("once", &request("10m", "maxUses: 1\n"), false)?;
    let (once_id, _) = a.d.accept(&once)?;
    let refused =
        b.d.submit(&once)?
            .refused("the same artifact on node B", "replayed")?;
    ensure!(
        refused.stderr.contains("on node node-a"),
        "the refusal names node A: {}",
        refused.stderr
    );
    b.d.wait_log(&["refused [replayed]", &once_id])?;
    expect(
        ctl_runs(&b)?,
        Exec::Refused(EPERM),
        "node B after its refusal",
    )?;
    expect(ctl_runs(&a)?, Exec::Ran(0), "node A's one use")?;
    expect(
        ctl_runs(&a)?,
        Exec::Refused(EPERM),
        "node A after its one use",
    )?;

    // An operation key is held by one node at a time.
    let held =
        a.d.sign("held", &request("10m", "operationKey: deploy/a\n"), false)?;
    let t1 = token(&a.d.submit(&held)?.ok("node A takes deploy/a")?.stdout)?;
    let second =
        a.d.sign("second", &request("10m", "operationKey: deploy/a\n"), false)?;
    let conflict =
        b.d.submit(&second)?
            .refused("deploy/a on node B", "operation-conflict")?;
    ensure!(
        conflict.stderr.contains("node node-a"),
        "the conflict names node A: {}",
        conflict.stderr
    );
    expect(ctl_runs(&a)?, Exec::Ran(0), "node A holds deploy/a")?;
    let shown =
        b.d.ctl(&["operations", "show", "deploy/a"])?
            .ok("operations show")?;
    ensure!(
        shown.stdout.contains(&format!("fencing token {t1}")) && shown.stdout.contains("node-a"),
        "operations show: {}",
        shown.stdout
    );

    // An administrator's release (from node B) ends node A's grant at once.
    b.d.ctl(&["operations", "release", "deploy/a", "--reason", "test"])?
        .ok("release deploy/a")?;
    a.d.wait_log(&["revoked [lease-ended]"])?;
    a.d.eventually("node A's grant is gone", || {
        Ok(ctl_runs(&a)? == Exec::Refused(EPERM))
    })?;
    let took = b.d.submit(&second)?.ok("node B takes deploy/a")?.stdout;
    let t2 = token(&took)?;
    ensure!(t2 > t1, "token {t2} after {t1}");
    expect(ctl_runs(&b)?, Exec::Ran(0), "node B holds deploy/a")?;
    // One grant per object and node: B lets deploy/a go for what follows.
    let second_id = serde_json::from_str::<serde_json::Value>(took.trim())?["artifactId"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    b.d.ctl(&["revoke", &second_id])?
        .ok("node B revokes deploy/a")?;

    // Completed on A: a fresh artifact for the key is refused on B unless
    // it continues the completed one.
    let done = a.d.sign(
        "done",
        &request("10m", "operationKey: deploy/b\nmaxUses: 1\n"),
        false,
    )?;
    let (done_id, _) = a.d.accept(&done)?;
    expect(ctl_runs(&a)?, Exec::Ran(0), "node A runs deploy/b")?;
    b.d.eventually("deploy/b is completed in the store", || {
        Ok(b.d
            .ctl(&["operations", "show", "deploy/b"])?
            .stdout
            .contains("deploy/b completed"))
    })?;
    let fresh = a.d.sign(
        "fresh",
        &request("10m", "operationKey: deploy/b\nmaxUses: 1\n"),
        false,
    )?;
    let r =
        b.d.submit(&fresh)?
            .refused("a replacement on node B", "operation-completed")?;
    ensure!(
        r.stderr.contains(&done_id) && r.stderr.contains("node node-a"),
        "the refusal names the completion: {}",
        r.stderr
    );
    let cont = a.d.sign(
        "continuation",
        &request(
            "10m",
            &format!("operationKey: deploy/b\nmaxUses: 1\nparent: {done_id}\n"),
        ),
        false,
    )?;
    b.d.accept(&cont)?;
    expect(ctl_runs(&b)?, Exec::Ran(0), "node B runs the continuation")?;

    // Node A's daemon dies holding a key: node B is refused until the
    // lease ends with the artifact.
    let short =
        a.d.sign("short", &request("20s", "operationKey: deploy/c\n"), false)?;
    a.d.accept(&short)?;
    a.d.signal(libc::SIGKILL)?;
    let wait =
        a.d.sign("wait", &request("10m", "operationKey: deploy/c\n"), false)?;
    b.d.submit(&wait)?
        .refused("deploy/c while node A is down", "operation-conflict")?;
    std::thread::sleep(Duration::from_secs(22));
    let (wait_id, _) = b.d.accept(&wait)?;
    a.d.start()?;

    // The store is down: what needs it is refused, the baseline and the
    // grants already installed keep working; back, it is accepted.
    etcd.kill();
    let later =
        a.d.sign("later", &request("10m", "operationKey: deploy/d\n"), false)?;
    b.d.submit(&later)?
        .refused("etcd down", "cluster-store-unavailable")?;
    expect(
        exec_in(&b.cg, "/bin/busybox", &["true"])?,
        Exec::Ran(0),
        "node B's baseline while etcd is down",
    )?;
    expect(
        ctl_runs(&b)?,
        Exec::Ran(0),
        "node B's installed grant while etcd is down",
    )?;
    b.d.eventually("status says the store does not answer", || {
        Ok(b.d.status()?["cluster"]["connected"] == serde_json::json!(false))
    })?;
    // Revoked while the store is down: the grant goes now, the release
    // waits in the outbox.
    b.d.ctl(&["revoke", &wait_id])?
        .ok("node B revokes deploy/c")?;
    expect(
        ctl_runs(&b)?,
        Exec::Refused(EPERM),
        "node B after the revoke",
    )?;
    b.d.eventually("the release waits in the outbox", || {
        Ok(b.d.status()?["cluster"]["pendingSettlements"].as_u64() >= Some(1))
    })?;
    etcd.restart()?;
    b.d.eventually("the store answers and the outbox drained", || {
        let s = b.d.status()?;
        Ok(s["cluster"]["connected"] == serde_json::json!(true)
            && s["cluster"]["pendingSettlements"] == serde_json::json!(0))
    })?;
    let free =
        b.d.ctl(&["operations", "show", "deploy/c"])?
            .ok("operations show")?;
    ensure!(
        free.stdout.contains("deploy/c free"),
        "deploy/c released: {}",
        free.stdout
    );
    b.d.accept(&later)?;
    b.d.wait_log(&["cluster-store-available"])?;
    Ok(())
}
