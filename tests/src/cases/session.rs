//! End to end lineage: a governed shell session on a node whose daemon
//! ships to a real collector, read back with `acelogicctl lineage tree`
//! and checked with `lineage verify`.

use std::{
    io::Write as _,
    path::Path,
    process::Stdio,
    time::{Duration, Instant},
};

use acelogic_lineage::{chain, enrich::proc_stat};
use anyhow::{Context as _, bail, ensure};
use serde_json::Value;

use crate::{
    daemon::{Collector, Daemon},
    fixtures::TestCgroup,
    harness::{Case, Need},
};

pub(crate) const CASES: &[Case] = &[Case {
    name: "lineage_tree_of_a_governed_session",
    needs: &[Need::BpfLsm],
    run: tree_of_a_governed_session,
}];

fn policy(cg: &TestCgroup) -> String {
    let rel = cg.name();
    format!(
        "apiVersion: acelogic.dev/v1
kind: CapabilityPolicy
metadata:
  name: session-test
spec:
  workloads:
    - name: session-{pid}
      cgroups: [/{rel}]
  baseline:
    exec: [/bin/busybox, /usr/bin/acelogicctl]
    libraries: [/lib/**, /lib64/**, /usr/lib/**]
",
        pid = std::process::id()
    )
}

/// The processes of a tree answer with `depth`.
fn at_depth(tree: &Value, depth: i64) -> Vec<&Value> {
    tree["processes"]
        .as_array()
        .map(|ps| {
            ps.iter()
                .filter(|p| p["depth"].as_i64() == Some(depth))
                .collect()
        })
        .unwrap_or_default()
}

/// The bodies of one process's records of `kind` (`exec`, `fork`, `exit`,
/// `decision`).
fn bodies<'a>(process: &'a Value, kind: &str) -> Vec<&'a Value> {
    process["records"]
        .as_array()
        .map(|rs| {
            rs.iter()
                .filter_map(|r| r["record"]["body"].get(kind))
                .collect()
        })
        .unwrap_or_default()
}

fn exit_code(process: &Value) -> Option<u64> {
    let exits = bodies(process, "exit");
    // An exit code of 0 is a default field, left out of the JSON.
    exits.first().map(|e| e["exitCode"].as_u64().unwrap_or(0))
}

fn exec_decision(process: &Value) -> Option<&Value> {
    bodies(process, "decision")
        .into_iter()
        .find(|d| d["hook"] == "exec")
}

fn tree_of_a_governed_session() -> anyhow::Result<()> {
    let cg = TestCgroup::new("session")?;
    let mut d = Daemon::prepare("session", &policy(&cg))?;
    let collector = Collector::start(&d.dir)?;
    d.args = vec!["--collector".into(), collector.url.clone()];
    d.start()?;

    // A binary the policy does not name: a copy of busybox (another inode).
    let denied = d.dir.join("denied-tool");
    std::fs::copy("/bin/busybox", &denied)?;
    let script = format!(
        "read go; /usr/bin/acelogicctl --version; {} true; exit 3",
        denied.display()
    );
    let mut sh = cg
        .command("/bin/sh", &["-c", &script])?
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let pid = sh.id();
    let st = proc_stat(Path::new("/proc"), pid).context("the shell's /proc/PID/stat")?;
    let sh_id = chain::exec_id(&chain::boot_id()?, st.start_ticks, pid);
    sh.stdin.take().context("stdin")?.write_all(b"go\n")?;
    let out = sh.wait_with_output()?;
    ensure!(
        out.status.code() == Some(3),
        "the session ended {:?}: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );

    // The collector has the session once the shell's exit arrived.
    let deadline = Instant::now() + Duration::from_secs(30);
    let tree = loop {
        let ctl = collector.lineage(&["tree", &sh_id, "--json"])?;
        if ctl.code == 0 {
            let tree: Value = serde_json::from_str(ctl.stdout.trim())?;
            let done = at_depth(&tree, 0)
                .first()
                .is_some_and(|p| exit_code(p).is_some())
                && at_depth(&tree, 1).iter().all(|c| exit_code(c).is_some())
                && at_depth(&tree, 1).len() >= 2;
            if done {
                break tree;
            }
        }
        if Instant::now() > deadline {
            bail!(
                "the session's tree did not reach the collector in 30 s: {}{}\ndaemon:\n{}\ncollector:\n{}",
                ctl.stdout,
                ctl.stderr,
                d.log_tail(),
                collector.log_tail()
            );
        }
        std::thread::sleep(Duration::from_millis(300));
    };

    let [shell] = at_depth(&tree, 0)[..] else {
        bail!("one process at depth 0: {tree:#}");
    };
    ensure!(
        shell["execId"] == sh_id.as_str(),
        "the root is the shell: {shell:#}"
    );
    let images: Vec<&str> = bodies(shell, "exec")
        .iter()
        .filter_map(|e| e["filename"].as_str())
        .collect();
    ensure!(images == ["/bin/sh"], "the shell's image: {images:?}");
    ensure!(
        exit_code(shell) == Some(3 << 8),
        "the shell's exit status: {:?}",
        exit_code(shell)
    );
    let children = at_depth(&tree, 1);
    ensure!(
        children.len() == 2,
        "two children (acelogicctl, the denied tool): {tree:#}"
    );
    for c in &children {
        ensure!(
            c["parentExecId"] == sh_id.as_str(),
            "a child of the shell: {c:#}"
        );
        ensure!(
            bodies(c, "fork").len() == 1,
            "each child has its fork record: {c:#}"
        );
    }
    let find = |path: &str| {
        children.iter().copied().find(|c| {
            exec_decision(c)
                .and_then(|d| d["object"].as_str())
                .is_some_and(|o| o.starts_with(path))
        })
    };
    let allowed = find("/usr/bin/acelogicctl").context("the acelogicctl child")?;
    let d1 = exec_decision(allowed).context("its exec decision")?;
    ensure!(
        d1["verdict"] == "allow" && d1["reason"] == "baseline",
        "acelogicctl was allowed by baseline: {d1:#}"
    );
    ensure!(
        bodies(allowed, "exec")
            .iter()
            .any(|e| e["filename"] == "/usr/bin/acelogicctl"),
        "its exec record: {allowed:#}"
    );
    ensure!(exit_code(allowed) == Some(0), "acelogicctl exited 0");
    let refused = find(&denied.display().to_string()).context("the denied child")?;
    let d2 = exec_decision(refused).context("its exec decision")?;
    ensure!(
        d2["verdict"] == "deny" && d2["reason"] == "no-grant",
        "the unnamed tool was denied: {d2:#}"
    );
    ensure!(
        bodies(refused, "exec").is_empty(),
        "a denied exec has no exec record: {refused:#}"
    );
    ensure!(
        exit_code(refused) == Some(126 << 8),
        "the shell reports 126 for the denied exec: {:?}",
        exit_code(refused)
    );
    let process = &d1["process"];
    ensure!(
        process["workload"]
            .as_str()
            .is_some_and(|w| w.starts_with("session-")),
        "decisions carry the workload: {process:#}"
    );

    let human = collector.lineage(&["tree", &sh_id])?.ok("lineage tree")?;
    ensure!(
        human.stdout.contains("DENY") && human.stdout.contains("no-grant"),
        "the terminal tree shows the denial:\n{}",
        human.stdout
    );
    collector
        .lineage(&["verify", "--node", "vm"])?
        .ok("lineage verify")?;
    // The head the daemon's shipper signed and kept, checked against the
    // collector's store as an anchor.
    let state = d.dir.join("state").display().to_string();
    // The Ack of the batch the queries read may still be on its way.
    d.eventually("the shipper keeps the acknowledged head", || {
        Ok(d.dir.join("state/acked-head.note").exists())
    })?;
    let head = collector
        .lineage(&["head", "--state-dir", &state])?
        .ok("lineage head")?;
    ensure!(
        head.stdout.starts_with("acelogic.dev/lineage/")
            && head.stdout.contains("\n\n\u{2014} acelogic-node "),
        "the node's signed head: {}",
        head.stdout
    );
    let anchor = d.dir.join("node-head.note");
    std::fs::write(&anchor, &head.stdout)?;
    let verified = collector
        .lineage(&[
            "verify",
            "--node",
            "vm",
            "--anchors",
            &anchor.display().to_string(),
        ])?
        .ok("lineage verify --anchors")?;
    ensure!(
        verified.stdout.contains("1 anchor(s)"),
        "the anchor was checked: {}",
        verified.stdout
    );
    d.stop()?;
    Ok(())
}
