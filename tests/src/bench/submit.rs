//! Submit-to-enforced latency: the real `acelogic-agent` in this kernel,
//! a policy whose grantable rule allows exec of one binary, and a governed
//! process that may run it only once a signed one-use artifact was
//! submitted. Timed from the start of the `SubmitArtifact` call until a
//! governed exec of the binary has succeeded.
//!
//! The artifacts are signed before timing starts (signing is the
//! authority's work, not the node's). The client is the library's own
//! (`acelogic_proto::client`, gRPC on the Unix socket, one
//! connection kept open), so process start-up of `acelogicctl` is not
//! counted either. The daemon installs the grants before it answers, so
//! the first exec after the answer is the first that can succeed; denied
//! attempts are retried at once and counted (expected: none).
//!
//! Between iterations, untimed, the bench waits until the daemon has
//! retired the used-up grant: the kernel keeps one grant per object, and
//! an artifact for a binary whose spent grant is still installed is
//! refused `install-failed` until the daemon's next tick removes it.
//!
//! Baselines of the same run, interleaved with the measured iterations:
//! a `Status` round trip on the same connection, and one governed exec
//! allowed by baseline (the same program at its baseline path).
//!
//! Then request to grant live, the same way: a real `acelogic-authority`
//! in the guest (TLS on loopback, the auto tier), and `RequestArtifact`
//! with a wait, timed from the start of the call until the granted exec
//! ran: the node's relay and signature, the authority's checks, its
//! journal and SQLite commits, the issue, and the same install as above.

use std::{
    ffi::CStr,
    path::{Path, PathBuf},
    time::{Duration, Instant, SystemTime},
};

use acelogic_domain::{
    artifact::{self, Artifact, ArtifactId, SecretKey, Subject},
    capability::{Capability, ExecCap},
};
use acelogic_proto::{agent as pb, client};
use anyhow::{Context as _, bail, ensure};

use super::workload::EXEC_FAILED;
use crate::{
    authority::{Authority, node_key},
    daemon::{Daemon, sha256_of},
    fixtures::{Scratch, TestCgroup, c_path, reap, spawn_in_cgroup},
    summary::{Row, Unit, quantile},
};

const WORKLOAD: &str = "bench-submit";
const BENCHMARK: &str = "submit to enforced (VM, real daemon)";

/// The daemon's policy: `shell` by baseline, `granted` grantable by the
/// issuer `ci`.
fn policy(cg: &TestCgroup, shell: &Path, granted: &Path) -> String {
    format!(
        "apiVersion: acelogic.dev/v1
kind: CapabilityPolicy
metadata:
  name: bench-submit
spec:
  workloads:
    - name: {WORKLOAD}
      cgroups: [/{cg}]
  baseline:
    exec: [{shell}]
    libraries: [/lib/**, /lib64/**]
  grantable:
    - name: granted
      exec: [{granted}]
      issuers: [ci]
      maxTtl: 1h
",
        cg = cg.name(),
        shell = shell.display(),
        granted = granted.display(),
    )
}

/// The authority issues exec of `granted` at once (one use).
fn issuing(granted: &Path) -> String {
    format!(
        "apiVersion: acelogic.dev/v1
kind: IssuingPolicy
metadata: {{name: bench-submit}}
spec:
  issuer: ci
  audience: test
  rules:
    - name: granted
      workloads: [{WORKLOAD}]
      exec: [{granted}]
      tier: auto
      maxTtl: 30m
      maxUses: 1
",
        granted = granted.display()
    )
}

/// `n` distinct one-use artifacts for `workload` granting exec of
/// `granted` (with its digest, as the demo signs them), signed by `key`
/// as issuer `ci` for audience `test` (what [`Daemon`] runs with).
pub(crate) fn sign_all(
    n: usize,
    key: &SecretKey,
    granted: &Path,
    workload: &str,
) -> anyhow::Result<Vec<Vec<u8>>> {
    let digest = sha256_of(granted)?
        .parse()
        .map_err(|e| anyhow::anyhow!("sha256 of {}: {e}", granted.display()))?;
    let path = granted
        .display()
        .to_string()
        .parse()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let name = |s: &str| s.parse().map_err(|e: String| anyhow::anyhow!(e));
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)?
        .as_secs();
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
    (0..n)
        .map(|_| {
            let a = Artifact {
                version: 1,
                id: ArtifactId::generate()?,
                issuer: name("ci")?,
                subject: Subject {
                    workload: name(workload)?,
                    node: None,
                    cgroup: None,
                },
                audience: name("test")?,
                not_before: now - Duration::from_secs(5),
                expires: now + Duration::from_secs(1800),
                capabilities: vec![Capability::Exec(ExecCap {
                    path: Clone::clone(&path),
                    sha256: Some(digest),
                })],
                max_uses: std::num::NonZeroU32::new(1),
                operation_key: None,
                approval_ref: None,
                reason: "a test or benchmark of submit latency".to_owned(),
                parent: None,
            };
            Ok(artifact::sign(&a.to_json()?, &[key]).to_json())
        })
        .collect()
}

/// Runs the granted program until the first exec succeeds (started at
/// `t`, given up after 10 s); returns the attempts refused before it.
fn run_granted(d: &Daemon, cg: &TestCgroup, granted: &CStr, t: Instant) -> anyhow::Result<u64> {
    let refused = EXEC_FAILED + libc::EPERM;
    let mut denied = 0;
    loop {
        match exec_in(cg, granted)? {
            0 => return Ok(denied),
            c if c == refused => denied += 1,
            c => bail!("the granted exec failed: exit {c}"),
        }
        ensure!(
            t.elapsed() < Duration::from_secs(10),
            "the granted exec was still refused 10 s after the call:\n{}",
            d.log_tail()
        );
    }
}

/// Untimed: waits until the daemon has retired the used-up grant. The
/// kernel holds one grant per object, so the next artifact for the same
/// binary installs only once this one is gone (on the daemon's next tick).
fn retired(
    rt: &tokio::runtime::Runtime,
    api: &mut pb::agent_client::AgentClient<tonic::transport::Channel>,
    d: &Daemon,
) -> anyhow::Result<()> {
    let t = Instant::now();
    while !rt
        .block_on(api.list_grants(pb::ListGrantsRequest {
            workload: WORKLOAD.to_owned(),
        }))
        .context("ListGrants")?
        .into_inner()
        .grants
        .is_empty()
    {
        ensure!(
            t.elapsed() < Duration::from_secs(10),
            "the used-up grant was not retired within 10 s:\n{}",
            d.log_tail()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

/// Execs `program` as `sh -c 'exit 0'` in a child that joined `cg`; its
/// exit code (`EXEC_FAILED + errno` when the exec was refused).
fn exec_in(cg: &TestCgroup, program: &CStr) -> anyhow::Result<i32> {
    let pid = spawn_in_cgroup(cg, || {
        let argv = [
            c"sh".as_ptr(),
            c"-c".as_ptr(),
            c"exit 0".as_ptr(),
            std::ptr::null(),
        ];
        let envp = [std::ptr::null()];
        // SAFETY: valid NUL-terminated arrays; raw call in the child.
        unsafe { libc::execve(program.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
        EXEC_FAILED + super::workload::last_errno().clamp(0, 49)
    })?;
    reap(pid, cg)
}

fn nanos(d: Duration) -> f64 {
    d.as_secs_f64() * 1e9
}

/// The `q` quantile of `v` (sorted in place).
fn quantile_sorted(v: &mut [f64], q: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    quantile(v, q).unwrap_or(f64::NAN)
}

/// Median and p95 of `v` (sorted in place).
fn stats(v: &mut [f64]) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    (
        quantile(v, 0.5).unwrap_or(f64::NAN),
        quantile(v, 0.95).unwrap_or(f64::NAN),
    )
}

/// Runs `iterations` submit-to-enforced rounds; returns the JSON document
/// (with its `summary` rows) and prints a markdown table.
pub(super) fn run(iterations: usize, shell: &Path) -> anyhow::Result<serde_json::Value> {
    let cg = TestCgroup::new("bench-submit")?;
    let bin = Scratch::new("bench-submit-bin")?;
    let granted = bin.join("granted-sh");
    std::fs::copy(shell, &granted)
        .with_context(|| format!("copying {} to {}", shell.display(), granted.display()))?;
    let mut d = Daemon::prepare("bench-submit", &policy(&cg, shell, &granted))?;
    let pin_dir = PathBuf::from(format!("/sys/fs/bpf/acelogic-bench-{}", std::process::id()));
    d.pin_dir = Some(pin_dir.clone());
    let entry = node_key(&d)?;
    let authority = Authority::start(&d, &issuing(&granted), &entry)?;
    d.args.extend(authority.daemon_args());
    d.start()?;
    let result = measure(iterations, &d, &cg, shell, &granted);
    let stopped = d.stop();
    let uninstalled = acelogic_kernel::uninstall(&pin_dir)
        .with_context(|| format!("removing the daemon's pins in {}", pin_dir.display()));
    let doc = result?;
    stopped?;
    uninstalled?;
    Ok(doc)
}

fn measure(
    iterations: usize,
    d: &Daemon,
    cg: &TestCgroup,
    shell: &Path,
    granted: &Path,
) -> anyhow::Result<serde_json::Value> {
    let key = SecretKey::read(&d.dir.join("keys/ci.key"))?;
    let envelopes = sign_all(iterations, &key, granted, WORKLOAD)?;
    let (shell_c, granted_c) = (c_path(shell), c_path(granted));
    let refused = EXEC_FAILED + libc::EPERM;

    let code = exec_in(cg, &granted_c)?;
    ensure!(
        code == refused,
        "before any artifact the governed exec of {} must be refused EPERM, got exit {code}",
        granted.display()
    );
    let code = exec_in(cg, &shell_c)?;
    ensure!(
        code == 0,
        "the governed exec of {} (baseline) failed: exit {code}",
        shell.display()
    );

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut api = rt
        .block_on(client::connect(&d.socket))
        .with_context(|| format!("connecting to {}", d.socket.display()))?;
    let (mut status, mut base_exec, mut submit, mut enforced) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut denied = 0u64;
    for envelope in envelopes {
        let t = Instant::now();
        rt.block_on(api.status(pb::StatusRequest {}))
            .context("Status")?;
        status.push(nanos(t.elapsed()));

        let t = Instant::now();
        let code = exec_in(cg, &shell_c)?;
        base_exec.push(nanos(t.elapsed()));
        ensure!(code == 0, "the baseline exec failed: exit {code}");

        let t = Instant::now();
        rt.block_on(api.submit_artifact(pb::SubmitArtifactRequest { envelope }))
            .map_err(|s| anyhow::anyhow!("SubmitArtifact refused: {}", s.message()))?;
        submit.push(nanos(t.elapsed()));
        denied += run_granted(d, cg, &granted_c, t)?;
        enforced.push(nanos(t.elapsed()));
        retired(&rt, &mut api, d)?;
    }
    let code = exec_in(cg, &granted_c)?;
    ensure!(
        code == refused,
        "after the last one-use grant was spent the exec must be refused EPERM, got exit {code}"
    );

    // Request to grant live: the same rounds through the authority.
    let capability =
        serde_json::json!({"exec": {"path": granted.display().to_string()}}).to_string();
    let (mut request, mut live) = (Vec::new(), Vec::new());
    for _ in 0..iterations {
        let t = Instant::now();
        let r = rt
            .block_on(api.request_artifact(pb::RequestArtifactRequest {
                capabilities: vec![capability.clone()],
                reason: "a benchmark of request latency".to_owned(),
                workload: WORKLOAD.to_owned(),
                wait_seconds: 30,
                ..pb::RequestArtifactRequest::default()
            }))
            .map_err(|s| anyhow::anyhow!("RequestArtifact refused: {}", s.message()))?
            .into_inner();
        request.push(nanos(t.elapsed()));
        ensure!(
            r.grant.is_some(),
            "the request was not issued and installed: {:?} {}",
            r.request,
            r.install_error
        );
        denied += run_granted(d, cg, &granted_c, t)?;
        live.push(nanos(t.elapsed()));
        retired(&rt, &mut api, d)?;
    }
    let p99 = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        quantile(v, 0.99).unwrap_or(f64::NAN)
    };
    let enf_p99 = p99(&mut enforced.clone());
    let (request_p50, request_p99) = (quantile_sorted(&mut request, 0.5), p99(&mut request));
    let (live_p50, live_p99) = (quantile_sorted(&mut live, 0.5), p99(&mut live));

    let (status_p50, status_p95) = stats(&mut status);
    let (exec_p50, exec_p95) = stats(&mut base_exec);
    let (submit_p50, submit_p95) = stats(&mut submit);
    let (enf_p50, enf_p95) = stats(&mut enforced);
    let both = "Status RPC + governed exec by baseline";
    let rows = vec![
        Row::new(
            BENCHMARK,
            "Status RPC round trip, p50 (baseline)",
            status_p50,
            Unit::Nanos,
        ),
        Row::new(
            BENCHMARK,
            "governed exec allowed by baseline, p50 (baseline)",
            exec_p50,
            Unit::Nanos,
        ),
        Row::new(
            BENCHMARK,
            "SubmitArtifact RPC, p50",
            submit_p50,
            Unit::Nanos,
        )
        .against("Status RPC", status_p50),
        Row::new(
            BENCHMARK,
            "SubmitArtifact RPC, p95",
            submit_p95,
            Unit::Nanos,
        )
        .against("Status RPC", status_p95),
        Row::new(
            BENCHMARK,
            "submit to enforced exec, p50",
            enf_p50,
            Unit::Nanos,
        )
        .against(both, status_p50 + exec_p50),
        Row::new(
            BENCHMARK,
            "submit to enforced exec, p95",
            enf_p95,
            Unit::Nanos,
        )
        .against(both, status_p95 + exec_p95),
        Row::new(
            BENCHMARK,
            "request to grant live (auto tier), p50",
            live_p50,
            Unit::Nanos,
        )
        .against("submit to enforced", enf_p50),
        Row::new(
            BENCHMARK,
            "request to grant live (auto tier), p99",
            live_p99,
            Unit::Nanos,
        )
        .against("submit to enforced", enf_p99),
    ];
    let ms = |v: f64| format!("{:.2} ms", v / 1e6);
    println!("| submit to enforced ({iterations} one-use artifacts) | p50 | p95 |");
    println!("|---|---|---|");
    for (name, p50, p95) in [
        ("Status RPC round trip (baseline)", status_p50, status_p95),
        (
            "governed exec allowed by baseline (baseline)",
            exec_p50,
            exec_p95,
        ),
        (
            "SubmitArtifact RPC (verify, digest, durable claim, grant)",
            submit_p50,
            submit_p95,
        ),
        (
            "submit to enforced: RPC start until the granted exec ran",
            enf_p50,
            enf_p95,
        ),
    ] {
        println!("| {name} | {} | {} |", ms(p50), ms(p95));
    }
    println!("| request to grant live ({iterations} auto-tier requests) | p50 | p99 |");
    println!("|---|---|---|");
    println!(
        "| RequestArtifact RPC (relay, authority, issue, install) | {} | {} |",
        ms(request_p50),
        ms(request_p99)
    );
    println!(
        "| request to grant live: RPC start until the granted exec ran | {} | {} |",
        ms(live_p50),
        ms(live_p99)
    );
    println!(
        "| submit to enforced, same run | {} | {} |",
        ms(enf_p50),
        ms(enf_p99)
    );
    println!(
        "submit to enforced: {denied} exec attempts refused before the grant was in place; \
         p50 {:.2}x Status RPC + baseline exec",
        enf_p50 / (status_p50 + exec_p50)
    );
    Ok(serde_json::json!({
        "iterations": iterations,
        "denied_attempts": denied,
        "status_rpc_ns": {"p50": status_p50, "p95": status_p95},
        "baseline_exec_ns": {"p50": exec_p50, "p95": exec_p95},
        "submit_rpc_ns": {"p50": submit_p50, "p95": submit_p95},
        "submit_to_enforced_ns": {"p50": enf_p50, "p95": enf_p95, "p99": enf_p99},
        "request_rpc_ns": {"p50": request_p50, "p99": request_p99},
        "request_to_live_ns": {"p50": live_p50, "p99": live_p99},
        "summary": crate::summary::rows_json(&rows),
    }))
}
