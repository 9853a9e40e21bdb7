//! The daemon's `/metrics`, `/healthz` and `/readyz`, scraped over HTTP
//! from the real daemon while a governed process is allowed and denied,
//! artifacts are refused, accepted and revoked, the journal ships to a
//! real collector, and a capped journal fills up.

use std::{collections::BTreeMap, net::SocketAddr, path::Path};

use anyhow::{Context as _, ensure};

use super::journal::{self, Flooder};
use crate::{
    daemon::{Collector, Daemon, binary, sha256_of},
    fixtures::{Exec, TestCgroup, exec_in},
    harness::{Case, Need},
    http,
};

pub(crate) const CASES: &[Case] = &[
    Case {
        name: "metrics_count_decisions_and_answer_probes",
        needs: &[Need::BpfLsm],
        run: count_decisions_and_answer_probes,
    },
    Case {
        name: "metrics_readyz_fails_while_the_journal_is_full",
        needs: &[Need::BpfLsm],
        run: readyz_fails_while_the_journal_is_full,
    },
];

const EXEC_DENY: &str =
    r#"acelogic_agent_decisions_total{hook="exec",verdict="deny",reason="no-grant"}"#;
const EXEC_BASELINE: &str =
    r#"acelogic_agent_decisions_total{hook="exec",verdict="allow",reason="baseline"}"#;
const EXEC_GRANT: &str =
    r#"acelogic_agent_decisions_total{hook="exec",verdict="allow",reason="grant"}"#;
const CONNECT_BASELINE: &str =
    r#"acelogic_agent_decisions_total{hook="connect",verdict="allow",reason="baseline"}"#;
const REJECTED_DIGEST: &str =
    r#"acelogic_agent_authorizations_total{outcome="rejected",reason="digest-mismatch"}"#;
const ACCEPTED: &str =
    r#"acelogic_agent_authorizations_total{outcome="accepted",reason="granted"}"#;
const REVOKED: &str = r#"acelogic_agent_authorizations_total{outcome="revoked",reason="revoked"}"#;

/// acelogicctl by baseline; acelogic-agent grantable by `ci`.
fn policy(cg: &TestCgroup, ctl: &str, agent: &str) -> String {
    format!(
        "apiVersion: acelogic.dev/v1
kind: CapabilityPolicy
metadata:
  name: metrics-test
spec:
  workloads:
    - name: metrics-{pid}
      cgroups: [/{rel}]
  baseline:
    exec: [{ctl}]
    libraries: [/lib/**, /lib64/**, /usr/lib/**]
  grantable:
    - name: agent
      exec: [{agent}]
      issuers: [ci]
      maxTtl: 1h
",
        pid = std::process::id(),
        rel = cg.name()
    )
}

fn request(exec: &str, sha256: &str) -> String {
    format!(
        "issuer: ci
subject: {{workload: metrics-{pid}}}
audience: test
ttl: 10m
capabilities:
  - exec: {{path: {exec}, sha256: {sha256}}}
reason: metrics test
",
        pid = std::process::id()
    )
}

pub(crate) type Samples = BTreeMap<String, f64>;

/// `/metrics`, checked for the OpenMetrics terminator and parsed.
pub(crate) fn scrape(addr: SocketAddr) -> anyhow::Result<Samples> {
    let r = http::get(addr, "/metrics")?;
    ensure!(
        r.status == 200,
        "/metrics answered {}: {}",
        r.status,
        r.body
    );
    ensure!(
        r.body.ends_with("# EOF\n"),
        "/metrics is cut short:\n{}",
        r.body
    );
    Ok(http::samples(&r.body))
}

/// The value of `series`; 0 when it has no sample (a counter never
/// incremented).
fn value(m: &Samples, series: &str) -> f64 {
    m.get(series).copied().unwrap_or(0.0)
}

/// The value of a series that must be there.
fn must(m: &Samples, series: &str) -> anyhow::Result<f64> {
    m.get(series)
        .copied()
        .with_context(|| format!("no {series} in {m:#?}"))
}

fn delta(after: &Samples, before: &Samples, series: &str) -> f64 {
    value(after, series) - value(before, series)
}

/// Scrapes until `done` holds (10 s); returns that scrape.
fn scrape_until(
    d: &Daemon,
    addr: SocketAddr,
    what: &str,
    done: impl Fn(&Samples) -> bool,
) -> anyhow::Result<Samples> {
    let mut last = Samples::new();
    d.eventually(what, || {
        last = scrape(addr)?;
        Ok(done(&last))
    })
    .with_context(|| format!("the last scrape: {last:#?}"))?;
    Ok(last)
}

fn expect(got: Exec, want: Exec, what: &str) -> anyhow::Result<()> {
    ensure!(got == want, "{what}: {got:?}, expected {want:?}");
    Ok(())
}

/// The journal gauges agree with each other.
fn check_journal_gauges(m: &Samples) -> anyhow::Result<()> {
    let head = must(m, "acelogic_agent_journal_head_seq")?;
    let acked = must(m, "acelogic_agent_journal_acked_seq")?;
    let lag = must(m, "acelogic_agent_journal_lag_entries")?;
    ensure!(head > 0.0, "the journal has records: head {head}");
    ensure!(
        lag == head - acked,
        "lag {lag} is head {head} - acked {acked}"
    );
    Ok(())
}

fn count_decisions_and_answer_probes() -> anyhow::Result<()> {
    let cg = TestCgroup::new("metrics")?;
    let ctl = binary("acelogicctl")?.display().to_string();
    let agent = binary("acelogic-agent")?.display().to_string();
    let mut d = Daemon::prepare("metrics", &policy(&cg, &ctl, &agent))?;
    let collector = Collector::start(&d.dir)?;
    d.args = [
        "--collector",
        collector.url.as_str(),
        "--metrics-listen",
        "127.0.0.1:0",
    ]
    .map(String::from)
    .to_vec();
    d.start()?;
    let addr = d.metrics_addr()?;
    d.eventually("/readyz answers 200", || {
        Ok(http::get(addr, "/readyz")?.status == 200)
    })?;
    ensure!(http::get(addr, "/readyz")?.body == "ready\n");
    let live = http::get(addr, "/healthz")?;
    ensure!(
        (live.status, live.body.as_str()) == (200, "ok\n"),
        "/healthz: {live:?}"
    );

    // One exec allowed by baseline, one denied: each counted exactly once.
    let before = scrape(addr)?;
    expect(
        exec_in(&cg, &ctl, &["--version"])?,
        Exec::Ran(0),
        "acelogicctl by baseline",
    )?;
    expect(
        exec_in(&cg, &agent, &["--version"])?,
        Exec::Refused(libc::EPERM),
        "acelogic-agent without a grant",
    )?;
    let denied_kernel = "acelogic_agent_kernel_denied_total";
    let allowed_kernel = "acelogic_agent_kernel_allowed_total";
    let after = scrape_until(&d, addr, "both exec decisions counted", |m| {
        delta(m, &before, EXEC_DENY) >= 1.0
            && delta(m, &before, EXEC_BASELINE) >= 1.0
            && delta(m, &before, denied_kernel) >= 1.0
    })?;
    ensure!(
        delta(&after, &before, EXEC_DENY) == 1.0,
        "{EXEC_DENY} moved by {}",
        delta(&after, &before, EXEC_DENY)
    );
    ensure!(
        delta(&after, &before, EXEC_BASELINE) == 1.0,
        "{EXEC_BASELINE} moved by {}",
        delta(&after, &before, EXEC_BASELINE)
    );
    ensure!(
        delta(&after, &before, allowed_kernel) >= 1.0,
        "kernel allows counted"
    );
    check_journal_gauges(&after)?;

    // Authorization outcomes, and the live gauges.
    let bad = d.sign("bad-digest", &request(&agent, &"ab".repeat(32)), false)?;
    d.submit(&bad)?.refused("wrong digest", "digest-mismatch")?;
    let good = d.sign(
        "good",
        &request(&agent, &sha256_of(Path::new(&agent))?),
        false,
    )?;
    let grants = "acelogic_agent_grants_live";
    let artifacts = "acelogic_agent_artifacts_live";
    let (id, _) = d.accept(&good)?;
    let granted = scrape_until(&d, addr, "the live artifact is shown", |m| {
        value(m, artifacts) == 1.0
    })?;
    ensure!(
        value(&granted, REJECTED_DIGEST) == 1.0,
        "{REJECTED_DIGEST}: {granted:#?}"
    );
    ensure!(value(&granted, ACCEPTED) == 1.0, "{ACCEPTED}: {granted:#?}");
    ensure!(
        delta(&granted, &after, grants) == 1.0,
        "one kernel grant entry more: {} -> {}",
        value(&after, grants),
        value(&granted, grants)
    );
    expect(
        exec_in(&cg, &agent, &["--version"])?,
        Exec::Ran(0),
        "acelogic-agent with its grant",
    )?;
    let used = scrape_until(&d, addr, "the granted exec counted", |m| {
        value(m, EXEC_GRANT) >= 1.0
    })?;
    ensure!(value(&used, EXEC_GRANT) == 1.0, "{EXEC_GRANT}: {used:#?}");
    d.ctl(&["revoke", &id, "--reason", "test"])?.ok("revoke")?;
    let revoked = scrape_until(&d, addr, "the revoked artifact is gone", |m| {
        value(m, artifacts) == 0.0
    })?;
    ensure!(value(&revoked, REVOKED) == 1.0, "{REVOKED}: {revoked:#?}");
    ensure!(
        value(&revoked, grants) == value(&after, grants),
        "its kernel entry is gone"
    );

    // Shipping: the collector catches up with the journal.
    let shipped = scrape_until(&d, addr, "the collector acknowledged the journal", |m| {
        value(m, "acelogic_agent_collector_connected") == 1.0
            && value(m, "acelogic_agent_journal_lag_entries") == 0.0
            && value(m, "acelogic_agent_journal_head_seq") > 0.0
    })?;
    check_journal_gauges(&shipped)?;
    ensure!(must(&shipped, "acelogic_agent_collector_last_error")? == 0.0);
    ensure!(must(&shipped, "acelogic_agent_journal_pending_bytes")? == 0.0);
    ensure!(must(&shipped, "acelogic_agent_journal_cap_bytes")? == f64::from(1u32 << 30));
    ensure!(must(&shipped, "acelogic_agent_journal_blocked")? == 0.0);

    // Policy: the hash in force, and a failed reload that keeps it.
    let sha = d.status()?["policySha256"]
        .as_str()
        .context("status has the policy hash")?
        .to_owned();
    let info = format!(r#"acelogic_agent_policy_info{{sha256="{sha}"}}"#);
    ensure!(must(&shipped, &info)? == 1.0, "{info}: {shipped:#?}");
    ensure!(must(&shipped, "acelogic_agent_policy_load_age_seconds")? >= 0.0);
    std::fs::write(d.policies.join("broken.yaml"), "kind: [unclosed\n")?;
    let broken = scrape_until(&d, addr, "the failed reload counted", |m| {
        value(m, "acelogic_agent_policy_reload_failures_total") >= 1.0
    })?;
    ensure!(
        must(&broken, &info)? == 1.0,
        "the policy in force stays: {broken:#?}"
    );
    let ready = http::get(addr, "/readyz")?;
    ensure!(
        ready.status == 200,
        "a failed reload keeps the daemon ready: {ready:?}"
    );
    std::fs::remove_file(d.policies.join("broken.yaml"))?;
    d.eventually("/healthz answers 200", || {
        Ok(http::get(addr, "/healthz")?.status == 200)
    })?;
    d.stop()?;
    println!(
        "    exec deny/baseline/grant counted once each; {} journal entries acknowledged",
        value(&shipped, "acelogic_agent_journal_head_seq")
    );
    Ok(())
}

fn readyz_fails_while_the_journal_is_full() -> anyhow::Result<()> {
    let cg = TestCgroup::new("metrics-full")?;
    let mut d = Daemon::prepare("metrics-full", &journal::policy(&cg))?;
    // Room for the daemon's own records and a few dozen decisions.
    const CAP: u32 = 16_384;
    let cap = CAP.to_string();
    d.args = [
        "--journal-cap",
        cap.as_str(),
        "--metrics-listen",
        "127.0.0.1:0",
    ]
    .map(String::from)
    .to_vec();
    d.start()?;
    let addr = d.metrics_addr()?;
    d.eventually("/readyz answers 200 while the journal has room", || {
        Ok(http::get(addr, "/readyz")?.status == 200)
    })?;

    // Far more allowed connects than the cap holds; the ring buffer (4 MiB)
    // keeps what the journal cannot take.
    let flood = Flooder::start(&cg, 1000)?.wait(&cg)?;
    ensure!(
        flood.other == 0 && flood.refused > 0,
        "the flood: {flood:?}"
    );
    let mut not_ready = http::Response {
        status: 0,
        body: String::new(),
    };
    d.eventually("/readyz answers 503", || {
        not_ready = http::get(addr, "/readyz")?;
        Ok(not_ready.status == 503)
    })?;
    let lines: Vec<&str> = not_ready.body.lines().collect();
    ensure!(
        lines.len() == 1 && lines[0].starts_with("journal: full ("),
        "one reason, the full journal: {not_ready:?}"
    );
    let live = http::get(addr, "/healthz")?;
    ensure!(
        live.status == 200,
        "the loop still ticks: liveness holds while readiness fails: {live:?}"
    );
    let full = scrape_until(&d, addr, "the journal shows blocked", |m| {
        value(m, "acelogic_agent_journal_blocked") == 1.0
    })?;
    check_journal_gauges(&full)?;
    ensure!(
        must(&full, "acelogic_agent_journal_acked_seq")? == 0.0,
        "no collector"
    );
    ensure!(must(&full, "acelogic_agent_journal_cap_bytes")? == f64::from(CAP));
    ensure!(must(&full, "acelogic_agent_journal_pending_bytes")? <= f64::from(CAP));
    ensure!(
        !full
            .keys()
            .any(|k| k.starts_with("acelogic_agent_collector_")),
        "no collector metrics without --collector"
    );
    // Counted are exactly the decisions the journal holds.
    let counted_first = value(&full, CONNECT_BASELINE);
    let held = journal::allowed_connects(&journal::journal(&d)?)?;
    ensure!(
        counted_first == held as f64 && held < flood.refused as usize,
        "{CONNECT_BASELINE} = {counted_first}, the journal holds {held} of {}",
        flood.refused
    );

    // Raise the cap: what waited in the pinned ring buffer is journaled,
    // counted, and the daemon is ready again.
    d.stop()?;
    d.args = ["--metrics-listen", "127.0.0.1:0"]
        .map(String::from)
        .to_vec();
    d.start()?;
    let addr = d.metrics_addr()?;
    let rest = f64::from(flood.refused) - counted_first;
    let drained = scrape_until(&d, addr, "the waiting records journaled", |m| {
        value(m, CONNECT_BASELINE) >= rest && value(m, "acelogic_agent_journal_blocked") == 0.0
    })?;
    ensure!(
        value(&drained, CONNECT_BASELINE) == rest,
        "the restarted daemon counted {} of the {rest} waiting connects",
        value(&drained, CONNECT_BASELINE)
    );
    d.eventually("/readyz answers 200 again", || {
        Ok(http::get(addr, "/readyz")?.status == 200)
    })?;
    d.stop()?;
    println!(
        "    readyz 503 at the cap with {held} connects journaled; the other {rest} counted after \
         the restart"
    );
    Ok(())
}
