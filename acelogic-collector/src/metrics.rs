//! Prometheus metrics (`/metrics`, OpenMetrics text format) and a health
//! check (`/healthz`) on their own HTTP listener (`--metrics-listen`).
//!
//! | metric | labels | what |
//! |---|---|---|
//! | `acelogic_collector_records_ingested_total` | node | records stored |
//! | `acelogic_collector_records_duplicate_total` | node | records received again and skipped |
//! | `acelogic_collector_batches_rejected_total` | reason | batches (and sessions) refused |
//! | `acelogic_collector_gaps_total` | node | gaps recorded (seqs a node no longer had) |
//! | `acelogic_collector_gap_records_total` | node | seqs inside those gaps |
//! | `acelogic_collector_alarms_total` | kind | alarm rows written (gap, journal-reset, node-enrolled) |
//! | `acelogic_collector_ingest_lag_seconds` | node | now minus the newest stored record's time |
//! | `acelogic_collector_sessions` | | shipping sessions open |
//! | `acelogic_collector_checkpoints_total` | | checkpoints signed |
//! | `acelogic_collector_otlp_exported_total` | | records exported as OTLP logs |
//! | `acelogic_collector_otlp_failures_total` | | failed OTLP export attempts |
//! | `acelogic_collector_queries_total` | method | queries and web page views admitted |
//! | `acelogic_collector_queries_refused_total` | reason | queries and web page views refused by access control (`unauthenticated-client`, `role-forbids`) |

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, atomic::AtomicU64},
};

use axum::{Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};
use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};

use super::{now_unix_nano, writer::Writer};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NodeLabel {
    node: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabel {
    method: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabel {
    kind: String,
}

/// The collector's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    ingested: Family<NodeLabel, Counter>,
    duplicate: Family<NodeLabel, Counter>,
    rejected: Family<ReasonLabel, Counter>,
    gaps: Family<NodeLabel, Counter>,
    gap_records: Family<NodeLabel, Counter>,
    alarms: Family<KindLabel, Counter>,
    lag: Family<NodeLabel, Gauge<f64, AtomicU64>>,
    sessions: Gauge,
    checkpoints: Counter,
    otlp_exported: Counter,
    otlp_failures: Counter,
    queries: Family<MethodLabel, Counter>,
    queries_refused: Family<ReasonLabel, Counter>,
    newest: Mutex<HashMap<String, u64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    #[must_use]
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("acelogic_collector");
        let m = Self {
            ingested: Family::default(),
            duplicate: Family::default(),
            rejected: Family::default(),
            gaps: Family::default(),
            gap_records: Family::default(),
            alarms: Family::default(),
            lag: Family::default(),
            sessions: Gauge::default(),
            checkpoints: Counter::default(),
            otlp_exported: Counter::default(),
            otlp_failures: Counter::default(),
            queries: Family::default(),
            queries_refused: Family::default(),
            newest: Mutex::new(HashMap::new()),
            registry: Registry::default(),
        };
        registry.register("records_ingested", "Records stored", m.ingested.clone());
        registry.register(
            "records_duplicate",
            "Records received again and skipped (identical hash)",
            m.duplicate.clone(),
        );
        registry.register(
            "batches_rejected",
            "Batches and sessions refused, by reason code",
            m.rejected.clone(),
        );
        registry.register("gaps", "Gaps recorded in node chains", m.gaps.clone());
        registry.register(
            "gap_records",
            "Seqs inside recorded gaps (records the node no longer had)",
            m.gap_records.clone(),
        );
        registry.register("alarms", "Alarm rows written, by kind", m.alarms.clone());
        registry.register(
            "ingest_lag_seconds",
            "Now minus the time of the newest stored record, by node",
            m.lag.clone(),
        );
        registry.register("sessions", "Shipping sessions open", m.sessions.clone());
        registry.register("checkpoints", "Checkpoints signed", m.checkpoints.clone());
        registry.register(
            "otlp_exported",
            "Records exported as OTLP logs",
            m.otlp_exported.clone(),
        );
        registry.register(
            "otlp_failures",
            "Failed OTLP export attempts",
            m.otlp_failures.clone(),
        );
        registry.register(
            "queries",
            "Queries and web page views admitted, by method",
            m.queries.clone(),
        );
        registry.register(
            "queries_refused",
            "Queries and web page views refused by access control, by reason code",
            m.queries_refused.clone(),
        );
        Self { registry, ..m }
    }

    fn node(node: &str) -> NodeLabel {
        NodeLabel {
            node: node.to_owned(),
        }
    }

    /// A committed batch.
    pub fn committed(&self, node: &str, stored: u64, skipped: u64, newest_unix_nano: u64) {
        self.ingested
            .get_or_create(&Self::node(node))
            .inc_by(stored);
        if skipped > 0 {
            self.duplicate
                .get_or_create(&Self::node(node))
                .inc_by(skipped);
        }
        if stored > 0 {
            let mut newest = self
                .newest
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let n = newest.entry(node.to_owned()).or_default();
            *n = (*n).max(newest_unix_nano);
        }
    }

    pub fn rejected(&self, reason: &str) {
        self.rejected
            .get_or_create(&ReasonLabel {
                reason: reason.to_owned(),
            })
            .inc();
    }

    pub fn gap(&self, node: &str, from: u64, to: u64) {
        self.gaps.get_or_create(&Self::node(node)).inc();
        self.gap_records
            .get_or_create(&Self::node(node))
            .inc_by(to.saturating_sub(from) + 1);
        self.alarm("gap");
    }

    pub fn alarm(&self, kind: &str) {
        self.alarms
            .get_or_create(&KindLabel {
                kind: kind.to_owned(),
            })
            .inc();
    }

    pub fn session_opened(&self) {
        self.sessions.inc();
    }

    pub fn session_closed(&self) {
        self.sessions.dec();
    }

    pub fn checkpoints(&self, n: u64) {
        self.checkpoints.inc_by(n);
    }

    pub fn otlp_exported(&self, n: u64) {
        self.otlp_exported.inc_by(n);
    }

    pub fn query(&self, method: &str) {
        self.queries
            .get_or_create(&MethodLabel {
                method: method.to_owned(),
            })
            .inc();
    }

    pub fn query_refused(&self, reason: &str) {
        self.queries_refused
            .get_or_create(&ReasonLabel {
                reason: reason.to_owned(),
            })
            .inc();
    }

    pub fn otlp_failed(&self) {
        self.otlp_failures.inc();
    }

    /// The text exposition, lag gauges computed now.
    #[must_use]
    pub fn render(&self) -> String {
        let now = now_unix_nano();
        {
            let newest = self
                .newest
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for (node, t) in newest.iter() {
                #[expect(clippy::cast_precision_loss, reason = "seconds for a gauge")]
                let lag = now.saturating_sub(*t) as f64 / 1e9;
                self.lag.get_or_create(&Self::node(node)).set(lag);
            }
        }
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[derive(Clone)]
struct Http {
    metrics: Arc<Metrics>,
    writer: Writer,
}

async fn metrics(State(s): State<Http>) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.render(),
    )
}

async fn healthz(State(s): State<Http>) -> impl IntoResponse {
    if s.writer.alive() {
        (StatusCode::OK, "ok\n")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "the store writer has stopped\n",
        )
    }
}

/// Serves `/metrics` and `/healthz` on `listener` until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    writer: Writer,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = Router::new()
        .route("/metrics", get(self::metrics))
        .route("/healthz", get(healthz))
        .with_state(Http { metrics, writer });
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_render_in_the_text_format() {
        let m = Metrics::new();
        m.committed("node-a", 5, 1, now_unix_nano());
        m.rejected("altered");
        m.gap("node-a", 4, 9);
        let text = m.render();
        assert!(
            text.contains("acelogic_collector_records_ingested_total{node=\"node-a\"} 5"),
            "{text}"
        );
        assert!(text.contains("acelogic_collector_batches_rejected_total{reason=\"altered\"} 1"));
        assert!(text.contains("acelogic_collector_gap_records_total{node=\"node-a\"} 6"));
        assert!(text.contains("acelogic_collector_alarms_total{kind=\"gap\"} 1"));
        assert!(text.contains("acelogic_collector_ingest_lag_seconds{node=\"node-a\"}"));
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
