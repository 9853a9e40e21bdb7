//! The central lineage collector: nodes ship their hash-chained journals
//! to it over gRPC (`proto/acelogic/collector/v1/collector.proto`); it
//! verifies every batch, stores records in SQLite (see [`store`] for the
//! schema), signs checkpoints of each chain's head, answers forensic
//! queries and serves them as web pages (behind client certificates and
//! roles, every query audited), serves Prometheus metrics and exports
//! records as OTLP logs.
//!
//! One file per responsibility:
//!
//! | file | does |
//! |---|---|
//! | `ingest.rs` | the `Ingest` service: one shipping session per stream |
//! | `verify.rs` | Hello proofs and the checks of a batch that need no store |
//! | `store.rs` | the schema; storing batches against the stored heads (duplicates, gaps, alarms) |
//! | `writer.rs` | the one thread that writes, with group commit |
//! | `audit.rs` | recomputing stored chains and checkpoints (`Verify`) |
//! | `anchor.rs` | the store against signed heads kept outside it (`Verify` anchors) |
//! | `checkpoint.rs` | signed checkpoints of chain heads |
//! | `query.rs` | the `Query` service (tree, artifact, denials, verify, checkpoints, export) |
//! | `access.rs` | client certificates and roles: who may ask what |
//! | `audit_log.rs` | admission and the audit record of every query (`queries`) |
//! | `web/` | the web view: HTML pages beside gRPC, behind the same access control |
//! | `tls.rs` | the TLS acceptor (HTTP/2 and HTTP/1.1, client certificates) |
//! | `metrics.rs` | `/metrics` and `/healthz` |
//! | `otlp.rs` | OTLP logs export from a persisted cursor |
//! | `server.rs` | wiring: listeners, TLS, tasks, shutdown |
//!
//! Refusals end a call with a gRPC error whose message reads
//! `"<code>: <why>"` and whose `acelogic-reason` metadata holds the code,
//! as the node daemon's API does.

pub mod access;
pub mod anchor;
pub mod audit;
pub mod audit_log;
pub mod checkpoint;
pub mod ingest;
pub mod metrics;
/// The enrollment file of node keys (shared with the authority).
pub use acelogic_lineage::enrollment as nodes;
pub mod otlp;
pub mod query;
pub mod server;
pub mod store;
pub mod tls;
pub mod verify;
pub mod web;
pub mod writer;

pub use server::{Config, Running, run, start, start_with_client_ca};

pub use acelogic_lineage::wire::now_unix_nano;
/// The collector's API (`proto/acelogic/collector/v1/collector.proto`).
pub use acelogic_proto::collector as pb;
/// Refusals as gRPC statuses, as the node daemon's API sends them.
pub use acelogic_proto::status_of;

use acelogic_domain::{Reason, Refusal};

/// Where the collector listens by default.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7400";

/// A refusal with its code and why.
pub(crate) fn refusal(code: Reason, why: impl Into<String>) -> Refusal {
    Refusal::new(code, why)
}

pub(crate) fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

pub(crate) fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}
