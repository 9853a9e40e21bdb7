//! Rendering, probe logic and the HTTP routes, without a kernel.

use std::{
    io::{Read as _, Write as _},
    net::{SocketAddr, TcpStream},
    path::PathBuf,
};

use acelogic_authz::state::Outcome;
use acelogic_common::user::{Hook, Reason, Verdict};
use acelogic_domain::Reason as Code;

use acelogic_lineage::journal::{Journal, Shared};

use super::*;
use crate::JournalSink;

fn decision(hook: Hook, verdict: Verdict, reason: Reason) -> DecisionInfo {
    DecisionInfo {
        scope_id: 5,
        ppid: 1,
        hook,
        verdict,
        reason,
        grant_id: 0,
        comm: [0; acelogic_common::event::COMM_LEN],
    }
}

/// The value of the sample `series` (name and labels exactly), if any.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        let (name, value) = l.rsplit_once(' ')?;
        (name == series).then(|| value.parse().ok())?
    })
}

fn ready_snapshot() -> Snapshot {
    Snapshot {
        programs: Some(25),
        policy: Some(PolicyState {
            sha256: "ab".repeat(32),
            loaded: SystemTime::now() - Duration::from_secs(90),
        }),
        kernel: Some(Counters {
            denied: 7,
            allowed: 40,
            record_unavailable: 3,
            lineage_lost: 2,
            lineage_missed: 4,
            audited: 1,
        }),
        grant_entries: Some(2),
        live_artifacts: Some(1),
        journal: Some(JournalState {
            head_seq: 120,
            acked_seq: 100,
            pending_bytes: 4000,
            cap_bytes: 1 << 30,
            blocked: false,
        }),
        shipping: Some(ShippingState {
            connected: true,
            last_error: false,
        }),
        drain_longest_gap: Some(Duration::from_millis(12)),
        cluster: Some(ClusterState {
            up: true,
            pending: 0,
        }),
    }
}

#[test]
fn counters_and_the_snapshot_render_in_the_text_format() {
    let m = Metrics::new(Duration::from_secs(1));
    let deny = decision(Hook::Exec, Verdict::Deny, Reason::NoGrant);
    m.decision(&deny);
    m.decision(&deny);
    m.decision(&decision(
        Hook::SocketConnect,
        Verdict::Allow,
        Reason::Baseline,
    ));
    m.authorization("rejected", "digest-mismatch");
    m.reload_failed();
    m.update(|s| *s = ready_snapshot());
    let text = m.render();
    let want = [
        (
            r#"acelogic_agent_decisions_total{hook="exec",verdict="deny",reason="no-grant"}"#,
            2.0,
        ),
        (
            r#"acelogic_agent_decisions_total{hook="connect",verdict="allow",reason="baseline"}"#,
            1.0,
        ),
        (
            r#"acelogic_agent_authorizations_total{outcome="rejected",reason="digest-mismatch"}"#,
            1.0,
        ),
        ("acelogic_agent_policy_reload_failures_total", 1.0),
        ("acelogic_agent_kernel_denied_total", 7.0),
        ("acelogic_agent_kernel_allowed_total", 40.0),
        ("acelogic_agent_kernel_audited_total", 1.0),
        ("acelogic_agent_kernel_record_unavailable_total", 3.0),
        ("acelogic_agent_kernel_lineage_lost_total", 2.0),
        ("acelogic_agent_kernel_lineage_missed_total", 4.0),
        ("acelogic_agent_grants_live", 2.0),
        ("acelogic_agent_artifacts_live", 1.0),
        ("acelogic_agent_journal_head_seq", 120.0),
        ("acelogic_agent_journal_acked_seq", 100.0),
        ("acelogic_agent_journal_lag_entries", 20.0),
        ("acelogic_agent_journal_pending_bytes", 4000.0),
        ("acelogic_agent_journal_cap_bytes", 1_073_741_824.0),
        ("acelogic_agent_journal_blocked", 0.0),
        ("acelogic_agent_collector_connected", 1.0),
        ("acelogic_agent_collector_last_error", 0.0),
        ("acelogic_agent_ring_drain_longest_gap_seconds", 0.012),
        (
            &format!(
                r#"acelogic_agent_policy_info{{sha256="{}"}}"#,
                "ab".repeat(32)
            ),
            1.0,
        ),
    ];
    for (series, value) in want {
        assert_eq!(sample(&text, series), Some(value), "{series} in:\n{text}");
    }
    let age = sample(&text, "acelogic_agent_policy_load_age_seconds").unwrap();
    assert!((89.0..120.0).contains(&age), "policy age {age}");
    assert!(
        text.contains("# TYPE acelogic_agent_kernel_denied counter"),
        "{text}"
    );
    assert!(text.contains("# TYPE acelogic_agent_policy info"), "{text}");
    assert!(text.ends_with("# EOF\n"), "{text}");
}

#[test]
fn what_is_not_known_is_not_rendered() {
    let m = Metrics::new(Duration::from_secs(1));
    m.update(|s| {
        *s = ready_snapshot();
        s.shipping = None;
        s.kernel = None;
    });
    let text = m.render();
    assert!(
        !text.contains("acelogic_agent_collector_"),
        "no collector configured:\n{text}"
    );
    assert!(!text.contains("acelogic_agent_kernel_"), "{text}");
    assert_eq!(
        sample(&text, "acelogic_agent_journal_lag_entries"),
        Some(20.0)
    );
}

#[test]
fn readiness_names_every_reason() {
    let none = Snapshot::default().unready();
    assert_eq!(none.len(), 3, "{none:?}");
    assert!(none[0].starts_with("programs:"), "{none:?}");
    assert!(none[1].starts_with("policy:"), "{none:?}");
    assert!(none[2].starts_with("journal:"), "{none:?}");

    assert!(ready_snapshot().unready().is_empty());

    let mut full = ready_snapshot();
    if let Some(j) = full.journal.as_mut() {
        j.blocked = true;
        j.pending_bytes = 65_000;
        j.cap_bytes = 65_536;
    }
    let why = full.unready();
    assert_eq!(why.len(), 1, "{why:?}");
    assert!(
        why[0].starts_with("journal: full (65000 of 65536 bytes"),
        "{why:?}"
    );

    let mut lost = ready_snapshot();
    lost.shipping = Some(ShippingState {
        connected: false,
        last_error: true,
    });
    assert!(
        lost.unready().is_empty(),
        "a collector outage is not unreadiness"
    );

    let mut down = ready_snapshot();
    down.cluster = Some(ClusterState {
        up: false,
        pending: 2,
    });
    let why = down.unready();
    assert_eq!(why.len(), 1, "{why:?}");
    assert!(
        why[0].starts_with("cluster store: not answering (degraded"),
        "{why:?}"
    );
    let text = {
        let m = Metrics::new(Duration::from_secs(1));
        m.update(|s| *s = down.clone());
        m.render()
    };
    assert_eq!(sample(&text, "acelogic_agent_cluster_store_up"), Some(0.0));
    assert_eq!(
        sample(&text, "acelogic_agent_cluster_settlements_pending"),
        Some(2.0)
    );
}

#[test]
fn liveness_allows_three_ticks() {
    let tick = Duration::from_millis(200);
    let t0 = Instant::now();
    assert!(
        liveness(None, t0, tick)
            .unwrap_err()
            .starts_with("starting")
    );
    assert_eq!(
        liveness(Some(t0), t0 + Duration::from_millis(600), tick),
        Ok(())
    );
    let late = liveness(Some(t0), t0 + Duration::from_millis(601), tick).unwrap_err();
    assert_eq!(
        late,
        "the main loop last ticked 0.6 s ago (limit: 3 ticks, 0.6 s)"
    );
    assert!(!late.contains('\n'), "one line");
}

fn temp_journal(tag: &str, cap: u64) -> Arc<Shared> {
    let dir: PathBuf =
        std::env::temp_dir().join(format!("acelogic-metrics-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    Shared::new(Journal::open(&dir.join("journal.db"), "node-a", cap).unwrap())
}

#[test]
fn authorization_outcomes_are_counted_once_journaled() {
    let m = Arc::new(Metrics::new(Duration::from_secs(1)));
    let journal = temp_journal("authz", 1 << 20);
    let sink = JournalSink::new(journal, "node-a", 1, [1; 16], Default::default());
    let mut counted = CountedSink::new(sink, Arc::clone(&m));
    for (outcome, reason) in [
        (Outcome::Refused, Code::Replayed),
        (Outcome::Accepted, Code::Granted),
        (Outcome::Consumed, Code::Consumed),
        (Outcome::DaemonStart, Code::Start),
        (Outcome::PolicyLoaded, Code::Loaded),
    ] {
        counted.write(&Record::new(outcome, reason)).unwrap();
    }
    let text = m.render();
    for series in [
        r#"acelogic_agent_authorizations_total{outcome="rejected",reason="replayed"}"#,
        r#"acelogic_agent_authorizations_total{outcome="accepted",reason="granted"}"#,
        r#"acelogic_agent_authorizations_total{outcome="consumed",reason="consumed"}"#,
    ] {
        assert_eq!(sample(&text, series), Some(1.0), "{series} in:\n{text}");
    }
    assert!(!text.contains("refused"), "lineage says rejected:\n{text}");
    assert!(
        !text.contains("daemon-start") && !text.contains("policy-loaded"),
        "{text}"
    );
}

#[test]
fn an_authorization_the_journal_refused_is_not_counted() {
    let m = Arc::new(Metrics::new(Duration::from_secs(1)));
    let sink = JournalSink::new(
        temp_journal("full", 1),
        "node-a",
        1,
        [1; 16],
        Default::default(),
    );
    let mut counted = CountedSink::new(sink, Arc::clone(&m));
    let r = Record::new(Outcome::Accepted, Code::Granted);
    assert!(counted.write(&r).is_err(), "a 1-byte journal is full");
    assert!(!m.render().contains("acelogic_agent_authorizations_total{"));
}

/// `GET path` over HTTP/1.1; the status code and the body.
fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let code = head.split(' ').nth(1).unwrap().parse().unwrap();
    (code, body.to_owned())
}

#[test]
fn the_routes_answer_from_their_own_thread() {
    let m = Arc::new(Metrics::new(Duration::from_millis(100)));
    let server = Server::start("127.0.0.1:0".parse().unwrap(), Arc::clone(&m)).unwrap();
    let (code, body) = get(server.addr, "/healthz");
    assert_eq!(
        (code, body.as_str()),
        (503, "starting: the main loop has not ticked yet\n")
    );
    let (code, body) = get(server.addr, "/readyz");
    assert_eq!(code, 503);
    assert_eq!(body.lines().count(), 3, "{body}");

    m.ticked();
    m.update(|s| *s = ready_snapshot());
    assert_eq!(get(server.addr, "/healthz"), (200, "ok\n".to_owned()));
    assert_eq!(get(server.addr, "/readyz"), (200, "ready\n".to_owned()));
    let (code, body) = get(server.addr, "/metrics");
    assert_eq!(code, 200);
    assert_eq!(
        sample(&body, "acelogic_agent_journal_lag_entries"),
        Some(20.0),
        "{body}"
    );

    // A loop that stops ticking fails liveness; readiness is about state.
    std::thread::sleep(Duration::from_millis(350));
    let (code, body) = get(server.addr, "/healthz");
    assert_eq!(code, 503);
    assert!(body.starts_with("the main loop last ticked"), "{body}");
    assert_eq!(get(server.addr, "/readyz").0, 200);
    let addr = server.addr;
    server.stop();
    assert!(TcpStream::connect(addr).is_err(), "stopped serving");
}

#[test]
fn drain_gaps_count_only_pauses_while_records_kept_coming() {
    let t0 = Instant::now();
    let mut g = DrainGaps::default();
    // An idle ring: long quiet gaps, nothing moved, no pause.
    g.drained_at(0, t0);
    g.drained_at(0, t0 + Duration::from_secs(5));
    // The first drain after the quiet time does not count either.
    g.drained_at(10, t0 + Duration::from_secs(6));
    assert_eq!(g.longest(), Duration::ZERO);
    // A flood: drains 20 ms, then 300 ms apart.
    g.drained_at(10, t0 + Duration::from_millis(6_020));
    g.drained_at(10, t0 + Duration::from_millis(6_320));
    assert_eq!(g.longest(), Duration::from_millis(300));
    // A drain that found nothing ends the run.
    g.drained_at(0, t0 + Duration::from_secs(8));
    g.drained_at(10, t0 + Duration::from_secs(20));
    assert_eq!(g.longest(), Duration::from_millis(300));
}
