//! The daemon's state has one owner and the ring's drain never waits for
//! an API call: while a governed process floods the ring with records, 20
//! artifacts are submitted (each a sha256 of a binary and a durable
//! claim), and no governed action is denied for want of a record. With
//! the state behind one lock on the event loop, every submit was a pause
//! of its own length and the flood's connects were denied
//! `record-unavailable`. The drain's longest pause is printed beside the
//! submit latency for the reader; it is a timing, so no pass depends on
//! it (under TCG on a loaded machine one scheduling hiccup of the guest
//! is as long as a submit).

use std::{
    path::Path,
    time::{Duration, Instant},
};

use acelogic_domain::artifact::SecretKey;
use acelogic_proto::{agent as pb, client};
use anyhow::{Context as _, ensure};

use crate::{
    bench::submit::sign_all,
    cases::{
        journal::{Flooder, PORT},
        metrics::scrape,
    },
    daemon::Daemon,
    fixtures::TestCgroup,
    harness::{Case, Need},
};

pub(crate) const CASES: &[Case] = &[Case {
    name: "burst_of_submits_never_stalls_the_drain",
    needs: &[Need::BpfLsm],
    run: burst_of_submits_never_stalls_the_drain,
}];

const SUBMITS: usize = 20;

/// How long one API call may take before the daemon counts as stalled
/// (a submit takes about 125 ms in the VM).
const CALL_TIMEOUT: Duration = Duration::from_secs(20);

fn policy(cg: &TestCgroup, workload: &str, granted: &Path) -> String {
    format!(
        "apiVersion: acelogic.dev/v1
kind: CapabilityPolicy
metadata:
  name: burst-test
spec:
  workloads:
    - name: {workload}
      cgroups: [/{cg}]
  baseline:
    connect:
      - {{host: 127.0.0.1, ports: \"{PORT}\", protocol: tcp}}
  grantable:
    - name: granted
      exec: [{granted}]
      issuers: [ci]
      maxTtl: 1h
",
        cg = cg.name(),
        granted = granted.display(),
    )
}

fn burst_of_submits_never_stalls_the_drain() -> anyhow::Result<()> {
    let began = Instant::now();
    // Phases to stderr: the harness shows them when the case fails.
    let phase = |what: &str| eprintln!("burst: {what} at {:.1} s", began.elapsed().as_secs_f64());
    let cg = TestCgroup::new("burst")?;
    let workload = format!("burst-{}", std::process::id());
    // The binary each artifact grants: this test binary, several MB, so
    // every submit hashes it.
    let granted = std::env::current_exe()?;
    let mut d = Daemon::prepare("burst", &policy(&cg, &workload, &granted))?;
    d.args = vec!["--metrics-listen".into(), "127.0.0.1:0".into()];
    d.start()?;
    let key = SecretKey::read(&d.dir.join("keys/ci.key"))?;
    let envelopes = sign_all(SUBMITS, &key, &granted, &workload)?;
    // The first tick publishes the kernel's counters.
    let deadline = Instant::now() + Duration::from_secs(10);
    let addr = d.metrics_addr()?;
    let before = loop {
        let v = scrape(addr)?
            .get("acelogic_agent_kernel_record_unavailable_total")
            .copied();
        if v.is_some() || Instant::now() > deadline {
            break v;
        }
        std::thread::sleep(Duration::from_millis(100));
    };

    phase("daemon up, artifacts signed");
    let flood = Flooder::start(&cg, 1_000_000)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let mut api = rt.block_on(client::connect(&d.socket))?;
    let mut latencies = Vec::with_capacity(SUBMITS);
    // A stalled daemon fails here, with its log, not at the case timeout.
    let answer = |what: &str, i: usize, d: &Daemon| {
        format!(
            "{what} {i} of {SUBMITS} got no answer in {} s while the ring was flooded; the \
             daemon's log:\n{}",
            CALL_TIMEOUT.as_secs(),
            d.log_tail()
        )
    };
    for (i, envelope) in envelopes.into_iter().enumerate() {
        let t = Instant::now();
        let a = rt
            .block_on(async {
                tokio::time::timeout(
                    CALL_TIMEOUT,
                    api.submit_artifact(pb::SubmitArtifactRequest { envelope }),
                )
                .await
            })
            .map_err(|_| anyhow::anyhow!(answer("SubmitArtifact", i, &d)))?
            .map_err(|s| anyhow::anyhow!("SubmitArtifact refused: {}", s.message()))?
            .into_inner();
        latencies.push(t.elapsed());
        // The kernel holds one grant per object: make room for the next.
        rt.block_on(async {
            tokio::time::timeout(
                CALL_TIMEOUT,
                api.revoke_artifact(pb::RevokeArtifactRequest {
                    artifact_id: a.artifact_id,
                    reason: "burst test".into(),
                }),
            )
            .await
        })
        .map_err(|_| anyhow::anyhow!(answer("RevokeArtifact", i, &d)))?
        .map_err(|s| anyhow::anyhow!("RevokeArtifact refused: {}", s.message()))?;
    }
    phase("submits done");
    // Stop the flood now (it would run for minutes) and let it report.
    flood.interrupt();
    let outcome = flood.wait(&cg)?;
    // A tick publishes the loop's measure; wait for one after the flood.
    std::thread::sleep(Duration::from_secs(1));
    let samples = scrape(addr)?;
    phase("flood stopped, scraped");
    // With `api` still connected: an idle client does not hold the stop.
    d.stop()?;

    latencies.sort();
    let p50 = latencies[SUBMITS / 2];
    let gap = samples
        .get("acelogic_agent_ring_drain_longest_gap_seconds")
        .copied()
        .context("no ring_drain_longest_gap_seconds in /metrics")?;
    let after = samples
        .get("acelogic_agent_kernel_record_unavailable_total")
        .copied();
    println!(
        "burst: {} connects ({} refused, {} EPERM) while {SUBMITS} submits ran; submit p50 {:.1} ms, \
         max {:.1} ms; longest drain gap {:.1} ms",
        outcome.refused + outcome.eperm + outcome.other,
        outcome.refused,
        outcome.eperm,
        p50.as_secs_f64() * 1e3,
        latencies[SUBMITS - 1].as_secs_f64() * 1e3,
        gap * 1e3
    );
    ensure!(
        outcome.refused > 0,
        "the flood made no allowed connect: {outcome:?}"
    );
    ensure!(
        outcome.eperm == 0 && outcome.other == 0,
        "governed connects were denied during the burst: {outcome:?}"
    );
    ensure!(
        before.is_some() && before == after,
        "record_unavailable moved from {before:?} to {after:?} during the burst"
    );
    Ok(())
}
