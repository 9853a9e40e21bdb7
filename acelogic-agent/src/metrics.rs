//! The node daemon's health probes and Prometheus metrics, on their own
//! HTTP listener (`--metrics-listen ADDR`, off by default):
//! `/metrics` (OpenMetrics text format), `/healthz` (liveness) and
//! `/readyz` (readiness).
//!
//! | metric | type | labels | what |
//! |---|---|---|---|
//! | `acelogic_agent_decisions_total` | counter | hook, verdict, reason | kernel decision records journaled (counted after the journal's commit) |
//! | `acelogic_agent_authorizations_total` | counter | outcome, reason | authorization records journaled: `accepted`, `rejected` (reason = the refusal code), `revoked`, `expired`, `consumed`, `frozen`, `unfrozen`, `failed` |
//! | `acelogic_agent_policy_reload_failures_total` | counter | | reloads that kept the policy in force (did not parse, or did not apply) |
//! | `acelogic_agent_kernel_denied_total` | counter | | the kernel's own count of denials |
//! | `acelogic_agent_kernel_allowed_total` | counter | | the kernel's own count of allows |
//! | `acelogic_agent_kernel_audited_total` | counter | | would-be denials let through in audit scopes |
//! | `acelogic_agent_kernel_record_unavailable_total` | counter | | decisions denied because the ring buffer had no room for their record |
//! | `acelogic_agent_kernel_lineage_lost_total` | counter | | fork/exec/exit records the ring buffer had no room for |
//! | `acelogic_agent_kernel_lineage_missed_total` | counter | | fork/exec/exit records the kernel skipped: their recorder was already running on the CPU |
//! | `acelogic_agent_grants_live` | gauge | | grant entries installed in the kernel (one per granted object) |
//! | `acelogic_agent_artifacts_live` | gauge | | artifacts accepted and not yet ended |
//! | `acelogic_agent_journal_head_seq` | gauge | | seq of the journal's last entry |
//! | `acelogic_agent_journal_acked_seq` | gauge | | highest seq the collector acknowledged |
//! | `acelogic_agent_journal_lag_entries` | gauge | | head minus acked: entries the collector does not hold yet |
//! | `acelogic_agent_journal_pending_bytes` | gauge | | record bytes not yet acknowledged (what the cap bounds) |
//! | `acelogic_agent_journal_cap_bytes` | gauge | | `--journal-cap` |
//! | `acelogic_agent_journal_blocked` | gauge | | 1 while the journal is full and records wait in the ring buffer |
//! | `acelogic_agent_collector_connected` | gauge | | 1 while a shipping session is open (only with `--collector`) |
//! | `acelogic_agent_collector_last_error` | gauge | | 1 when the last session ended in an error and none has opened since (only with `--collector`) |
//! | `acelogic_agent_cluster_store_up` | gauge | | 1 while the cluster store answers (only with `--etcd-endpoints`) |
//! | `acelogic_agent_cluster_settlements_pending` | gauge | | settlements the cluster store has not confirmed yet (only with `--etcd-endpoints`) |
//! | `acelogic_agent_policy_info` | info | sha256 | the policy in force |
//! | `acelogic_agent_policy_load_age_seconds` | gauge | | seconds since the policy in force was loaded |
//!
//! When the numbers move:
//! - decisions are counted by the pump's [`Observer`] once the journal
//!   has committed their batch, so the counter never includes a record
//!   that was not made durable (one that waits in the ring buffer because
//!   the journal is full is counted when it is journaled);
//! - authorization outcomes are counted by [`CountedSink`] once the
//!   journal stored the record (the engine reports every outcome through
//!   [`RecordSink`]); a refusal the journal had no room to record is not
//!   counted, as it is not in the lineage either;
//! - everything else is a snapshot taken every `--tick` by the main loop
//!   ([`Metrics::refresh`]), so it is at most one tick old and a scrape
//!   never waits for the daemon's state lock.
//!
//! The `kernel_*` counters mirror the kernel's per-CPU counters, which
//! live in the pinned maps: they survive daemon restarts (a restarted
//! daemon goes on from the kernel's total, not from zero) and start
//! again from zero only when `acelogic-agent uninstall` removed the
//! pinned state, which Prometheus handles as a counter reset. The other
//! counters count what this process journaled and start at zero with it.
//!
//! Probes:
//! - `/healthz` (liveness): 200 when the main loop completed a tick within
//!   the last three ticks, else 503 with why. A loop wedged anywhere (a
//!   stuck `fsync`, a held lock) stops ticking, and only a restart helps.
//!   Until the first tick (setup: loading, verifying and attaching the
//!   programs) it is 503 `starting`: give the liveness probe a startup
//!   probe or an initial delay.
//! - `/readyz` (readiness): 200 when the programs are attached or adopted,
//!   the policy is loaded and the journal is not blocked, else 503 with
//!   one reason per line. A blocked journal is the moment governed
//!   actions start to be denied (once the ring buffer fills), which an
//!   operator must see, but a restart would not help (the collector must
//!   catch up), so it is readiness and not liveness. A failed policy
//!   reload keeps the last good policy enforced, so it does not make the
//!   daemon unready (it is counted instead); nor does a collector outage,
//!   which the journal rides out until it is full. A cluster store that
//!   does not answer makes it unready (degraded, not dead: `/healthz`
//!   stays 200): artifacts that need the store are refused meanwhile.
//!
//! The HTTP server runs on its own thread with its own runtime, so the
//! probes answer (503 with a reason) even when the main loop is blocked
//! in a synchronous call; that thread drops every capability before it
//! serves.

mod http;

use std::{
    sync::{Arc, Mutex, PoisonError},
    time::{Duration, Instant, SystemTime},
};

use acelogic_common::user::{DecisionInfo, Event};
use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric as _, text::encode},
    metrics::{
        MetricType,
        counter::{ConstCounter, Counter},
        family::Family,
        gauge::ConstGauge,
    },
    registry::Registry,
};

use acelogic_authz::{RecordSink, state::Record};
use acelogic_domain::PortError;
use acelogic_kernel::Counters;
use acelogic_lineage::pump::Observer;

use crate::{lineage::Lineage, node::Node};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DecisionLabels {
    hook: &'static str,
    verdict: &'static str,
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: String,
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PolicyLabels {
    sha256: String,
}

/// The journal as the last tick saw it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct JournalState {
    pub head_seq: u64,
    pub acked_seq: u64,
    pub pending_bytes: u64,
    pub cap_bytes: u64,
    /// The pump's last batch did not fit.
    pub blocked: bool,
}

/// The shipper as the last tick saw it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ShippingState {
    pub connected: bool,
    pub last_error: bool,
}

/// The cluster store as the settlement task last saw it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ClusterState {
    pub up: bool,
    /// Settlements waiting in the outbox.
    pub pending: u64,
}

/// The policy in force.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyState {
    pub sha256: String,
    pub loaded: SystemTime,
}

/// The daemon's state as of the last tick; `None` where it is not known
/// yet (not rendered, and not ready).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    /// Programs attached or adopted.
    pub programs: Option<usize>,
    pub policy: Option<PolicyState>,
    pub kernel: Option<Counters>,
    pub grant_entries: Option<u64>,
    pub live_artifacts: Option<u64>,
    pub journal: Option<JournalState>,
    /// `None` also when no collector is configured.
    pub shipping: Option<ShippingState>,
    /// The longest gap between two drains of the ring buffer while
    /// records kept coming (see [`DrainGaps`]).
    pub drain_longest_gap: Option<Duration>,
    /// `None` also when no cluster store is configured.
    pub cluster: Option<ClusterState>,
}

/// How long the loop that drains the ring buffer went without draining
/// while records kept arriving: the time governed processes had to fill
/// the ring (and be denied `record-unavailable` once it was full). Only a
/// gap between two drains that both moved records counts, so an idle
/// ring's quiet time is not a pause.
#[derive(Debug, Clone, Copy, Default)]
pub struct DrainGaps {
    last: Option<Instant>,
    last_moved: bool,
    longest: Duration,
}

impl DrainGaps {
    /// The loop drained `moved` records just now.
    pub fn drained(&mut self, moved: usize) {
        self.drained_at(moved, Instant::now());
    }

    fn drained_at(&mut self, moved: usize, now: Instant) {
        if moved > 0
            && self.last_moved
            && let Some(last) = self.last
        {
            self.longest = self.longest.max(now.saturating_duration_since(last));
        }
        self.last = Some(now);
        self.last_moved = moved > 0;
    }

    #[must_use]
    pub fn longest(&self) -> Duration {
        self.longest
    }
}

impl Snapshot {
    /// Why the daemon is not ready, one reason per entry; empty when it
    /// is.
    #[must_use]
    pub fn unready(&self) -> Vec<String> {
        let mut why = Vec::new();
        if self.programs.is_none_or(|n| n == 0) {
            why.push("programs: not attached or adopted yet".to_owned());
        }
        if self.policy.is_none() {
            why.push("policy: not loaded yet".to_owned());
        }
        match &self.journal {
            None => why.push("journal: not open yet".to_owned()),
            Some(j) if j.blocked => why.push(format!(
                "journal: full ({} of {} bytes await the collector); records wait in the ring \
                 buffer and governed actions are denied once it fills",
                j.pending_bytes, j.cap_bytes
            )),
            Some(_) => {}
        }
        if let Some(c) = self.cluster
            && !c.up
        {
            why.push(
                "cluster store: not answering (degraded: artifacts that need it are refused; \
                 installed grants and baselines keep working)"
                    .to_owned(),
            );
        }
        why
    }
}

/// Liveness: `Ok` when the main loop last ticked within three ticks of
/// `now`, else why not.
pub fn liveness(last_tick: Option<Instant>, now: Instant, tick: Duration) -> Result<(), String> {
    let limit = tick.saturating_mul(3);
    match last_tick {
        None => Err("starting: the main loop has not ticked yet".to_owned()),
        Some(t) => {
            let since = now.saturating_duration_since(t);
            if since <= limit {
                Ok(())
            } else {
                Err(format!(
                    "the main loop last ticked {:.1} s ago (limit: 3 ticks, {:.1} s)",
                    since.as_secs_f64(),
                    limit.as_secs_f64()
                ))
            }
        }
    }
}

/// Renders the snapshot's metrics at each scrape.
#[derive(Debug)]
struct SnapshotCollector(Arc<Mutex<Snapshot>>);

fn counter(enc: &mut DescriptorEncoder, name: &str, help: &str, v: u64) -> std::fmt::Result {
    let c = ConstCounter::new(v);
    c.encode(enc.encode_descriptor(name, help, None, c.metric_type())?)
}

fn gauge<N>(enc: &mut DescriptorEncoder, name: &str, help: &str, v: N) -> std::fmt::Result
where
    ConstGauge<N>: prometheus_client::encoding::EncodeMetric,
{
    let g = ConstGauge::new(v);
    g.encode(enc.encode_descriptor(name, help, None, g.metric_type())?)
}

impl Collector for SnapshotCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let s = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        if let Some(k) = s.kernel {
            counter(
                &mut enc,
                "kernel_denied",
                "Denials the kernel counted (pinned: survives daemon restarts)",
                k.denied,
            )?;
            counter(
                &mut enc,
                "kernel_allowed",
                "Allows the kernel counted (pinned: survives daemon restarts)",
                k.allowed,
            )?;
            counter(
                &mut enc,
                "kernel_audited",
                "Would-be denials let through in audit scopes (pinned)",
                k.audited,
            )?;
            counter(
                &mut enc,
                "kernel_record_unavailable",
                "Decisions denied because the ring buffer had no room for their record (pinned)",
                k.record_unavailable,
            )?;
            counter(
                &mut enc,
                "kernel_lineage_lost",
                "Process lifecycle records the ring buffer had no room for (pinned)",
                k.lineage_lost,
            )?;
            counter(
                &mut enc,
                "kernel_lineage_missed",
                "Process lifecycle records the kernel skipped because their recorder was already \
                 running on the CPU (the recorders' recursion misses)",
                k.lineage_missed,
            )?;
        }
        if let Some(n) = s.grant_entries {
            gauge(
                &mut enc,
                "grants_live",
                "Grant entries installed in the kernel",
                n,
            )?;
        }
        if let Some(n) = s.live_artifacts {
            gauge(
                &mut enc,
                "artifacts_live",
                "Artifacts accepted and not yet ended",
                n,
            )?;
        }
        if let Some(j) = s.journal {
            gauge(
                &mut enc,
                "journal_head_seq",
                "Seq of the journal's last entry",
                j.head_seq,
            )?;
            gauge(
                &mut enc,
                "journal_acked_seq",
                "Highest seq the collector acknowledged",
                j.acked_seq,
            )?;
            gauge(
                &mut enc,
                "journal_lag_entries",
                "Journal entries the collector has not acknowledged (head minus acked)",
                j.head_seq.saturating_sub(j.acked_seq),
            )?;
            gauge(
                &mut enc,
                "journal_pending_bytes",
                "Record bytes not yet acknowledged",
                j.pending_bytes,
            )?;
            gauge(
                &mut enc,
                "journal_cap_bytes",
                "Bytes of unacknowledged records allowed (--journal-cap)",
                j.cap_bytes,
            )?;
            gauge(
                &mut enc,
                "journal_blocked",
                "1 while the journal is full and records wait in the ring buffer",
                u64::from(j.blocked),
            )?;
        }
        if let Some(c) = s.shipping {
            gauge(
                &mut enc,
                "collector_connected",
                "1 while a shipping session is open",
                u64::from(c.connected),
            )?;
            gauge(
                &mut enc,
                "collector_last_error",
                "1 when the last shipping session ended in an error and none opened since",
                u64::from(c.last_error),
            )?;
        }
        if let Some(c) = s.cluster {
            gauge(
                &mut enc,
                "cluster_store_up",
                "1 while the cluster store answers",
                u64::from(c.up),
            )?;
            gauge(
                &mut enc,
                "cluster_settlements_pending",
                "Settlements (lease releases, completions, undone claims) the cluster store has not confirmed",
                c.pending,
            )?;
        }
        if let Some(gap) = s.drain_longest_gap {
            gauge(
                &mut enc,
                "ring_drain_longest_gap_seconds",
                "Longest time between two drains of the ring buffer while records kept coming",
                gap.as_secs_f64(),
            )?;
        }
        if let Some(p) = &s.policy {
            let mut m =
                enc.encode_descriptor("policy", "The policy in force", None, MetricType::Info)?;
            m.encode_info(&PolicyLabels {
                sha256: p.sha256.clone(),
            })?;
            let age = SystemTime::now()
                .duration_since(p.loaded)
                .unwrap_or(Duration::ZERO)
                .as_secs_f64();
            gauge(
                &mut enc,
                "policy_load_age_seconds",
                "Seconds since the policy in force was loaded",
                age,
            )?;
        }
        Ok(())
    }
}

/// The daemon's metrics and probe state.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    decisions: Family<DecisionLabels, Counter>,
    authorizations: Family<OutcomeLabels, Counter>,
    reload_failures: Counter,
    snapshot: Arc<Mutex<Snapshot>>,
    tick: Duration,
    last_tick: Mutex<Option<Instant>>,
}

impl Metrics {
    /// Metrics of a daemon whose main loop ticks every `tick`.
    #[must_use]
    pub fn new(tick: Duration) -> Self {
        let mut registry = Registry::with_prefix("acelogic_agent");
        let decisions = Family::<DecisionLabels, Counter>::default();
        let authorizations = Family::<OutcomeLabels, Counter>::default();
        let reload_failures = Counter::default();
        let snapshot = Arc::new(Mutex::new(Snapshot::default()));
        registry.register(
            "decisions",
            "Kernel decision records journaled, by hook, verdict and reason",
            decisions.clone(),
        );
        registry.register(
            "authorizations",
            "Authorization records journaled, by outcome and reason",
            authorizations.clone(),
        );
        registry.register(
            "policy_reload_failures",
            "Policy reloads that kept the policy in force",
            reload_failures.clone(),
        );
        registry.register_collector(Box::new(SnapshotCollector(Arc::clone(&snapshot))));
        Self {
            registry,
            decisions,
            authorizations,
            reload_failures,
            snapshot,
            tick,
            last_tick: Mutex::new(None),
        }
    }

    /// A kernel decision record was journaled.
    pub fn decision(&self, d: &DecisionInfo) {
        self.decisions
            .get_or_create(&DecisionLabels {
                hook: d.hook.as_str(),
                verdict: d.verdict.as_str(),
                reason: d.reason.as_str(),
            })
            .inc();
    }

    /// An authorization record was journaled (`outcome` as lineage names
    /// it).
    pub fn authorization(&self, outcome: &str, reason: &str) {
        self.authorizations
            .get_or_create(&OutcomeLabels {
                outcome: outcome.to_owned(),
                reason: reason.to_owned(),
            })
            .inc();
    }

    /// A policy reload failed; the policy in force stays.
    pub fn reload_failed(&self) {
        self.reload_failures.inc();
    }

    /// `n` programs are attached or adopted.
    pub fn attached(&self, n: usize) {
        self.update(|s| s.programs = Some(n));
    }

    /// Changes the snapshot.
    pub fn update(&self, f: impl FnOnce(&mut Snapshot)) {
        f(&mut self.snapshot.lock().unwrap_or_else(PoisonError::into_inner));
    }

    /// The snapshot as it is now.
    #[must_use]
    pub fn snapshot(&self) -> Snapshot {
        self.snapshot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Takes the node's part of the snapshot (the state's owner calls it
    /// every tick). `counters` are the kernel counters the tick already
    /// read, if it could. A part that cannot be read keeps its last value,
    /// and the error is logged.
    pub fn refresh_node(&self, node: &mut Node, counters: Option<Counters>) {
        let grants = match node.kernel.grants() {
            Ok(g) => Some(g.len() as u64),
            Err(e) => {
                tracing::warn!(error = %e, "metrics: reading the kernel's grants");
                None
            }
        };
        let artifacts = match node.authz.state().active() {
            Ok(a) => Some(a.len() as u64),
            Err(e) => {
                tracing::warn!(error = %e, "metrics: reading the live artifacts");
                None
            }
        };
        let shipping = node.shipping.as_ref().map(|(_, status)| {
            let s = status.borrow();
            ShippingState {
                connected: s.connected,
                last_error: s.last_error.is_some(),
            }
        });
        let policy = PolicyState {
            sha256: hex::encode(node.policy.sha256),
            loaded: node.policy_loaded,
        };
        self.update(|s| {
            s.kernel = counters.or(s.kernel);
            s.grant_entries = grants.or(s.grant_entries);
            s.live_artifacts = artifacts.or(s.live_artifacts);
            s.shipping = shipping;
            s.policy = Some(policy);
        });
    }

    /// Takes the lineage part of the snapshot (the loop that drains the
    /// ring calls it every tick).
    pub fn refresh_lineage(&self, lineage: &Lineage, gaps: &DrainGaps) {
        let journal = {
            let j = lineage.journal.lock();
            JournalState {
                head_seq: j.head().0,
                acked_seq: j.acked(),
                pending_bytes: j.pending_bytes(),
                cap_bytes: j.cap_bytes(),
                blocked: lineage.blocked,
            }
        };
        self.update(|s| {
            s.journal = Some(journal);
            s.drain_longest_gap = Some(gaps.longest());
        });
    }

    /// The main loop completed a tick.
    pub fn ticked(&self) {
        *self
            .last_tick
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
    }

    /// Liveness now.
    pub fn live(&self) -> Result<(), String> {
        let last = *self
            .last_tick
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        liveness(last, Instant::now(), self.tick)
    }

    /// The text exposition.
    #[must_use]
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) = encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "encoding metrics");
            out.clear();
        }
        out
    }
}

impl Observer for Metrics {
    fn journaled(&self, event: &Event) {
        if let Some(d) = event.decision() {
            self.decision(d);
        }
    }
}

/// A [`RecordSink`] that counts each authorization record once the sink
/// it wraps (the journal) has stored it.
#[derive(Debug)]
pub struct CountedSink<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S> CountedSink<S> {
    pub fn new(inner: S, metrics: Arc<Metrics>) -> Self {
        Self { inner, metrics }
    }
}

impl<S: RecordSink> RecordSink for CountedSink<S> {
    fn write(&mut self, r: &Record<'_>) -> Result<i64, PortError> {
        let seq = self.inner.write(r)?;
        if let Some(outcome) = crate::authorization_outcome(r.outcome) {
            self.metrics.authorization(outcome, r.reason.as_str());
        }
        Ok(seq)
    }
}

pub use http::Server;

#[cfg(test)]
mod tests;
