//! Every query is an audit record: the [`Gate`] admits or refuses a caller
//! ([`crate::access`]), and records who asked what and how it ended in the
//! store's `queries` table (schema in [`crate::store`]), for answered and
//! refused queries alike.
//!
//! The row goes through the writer thread, the store's one writer
//! (`Writer::record_queries`), not a second write connection: a second
//! writer would contend for SQLite's write lock with ingest and could make
//! a batch's deferred transaction fail with `SQLITE_BUSY_SNAPSHOT`, which
//! the busy timeout does not retry. The writer stores the rows that queue
//! up together in one small transaction, so a burst of page views costs
//! ingest one commit, not one per view.
//!
//! An answer waits for its row: when the row cannot be stored the caller
//! gets `store-failed` instead of the answer, so nobody reads the store
//! without leaving a trace.

use std::{net::SocketAddr, sync::Arc};

use acelogic_domain::{Reason, Refusal};
use rusqlite::{Connection, params};
use tokio_rustls::rustls::pki_types::CertificateDer;

use super::{
    access::{Access, Caller, Method},
    metrics::Metrics,
    now_unix_nano, refusal, to_i64,
    writer::Writer,
};

/// One row of `queries`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryRow {
    pub time_unix_nano: u64,
    pub who: String,
    pub role: String,
    pub method: &'static str,
    /// The arguments, as a JSON object.
    pub args: String,
    /// `ok`, or the reason code the query ended with.
    pub outcome: String,
    pub peer: Option<String>,
    pub cert_sha256: Option<String>,
}

/// Inserts `rows` (the caller holds the transaction).
pub(crate) fn insert(db: &Connection, rows: &[QueryRow]) -> rusqlite::Result<()> {
    let mut stmt = db.prepare_cached(
        "INSERT INTO queries(time_unix_nano, who, role, method, args, outcome, peer, cert_sha256) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for r in rows {
        stmt.execute(params![
            to_i64(r.time_unix_nano),
            r.who,
            r.role,
            r.method,
            r.args,
            r.outcome,
            r.peer,
            r.cert_sha256
        ])?;
    }
    Ok(())
}

/// Admission and audit for the `Query` service and the web view.
#[derive(Debug, Clone)]
pub struct Gate {
    pub access: Arc<Access>,
    writer: Writer,
    metrics: Arc<Metrics>,
}

impl Gate {
    #[must_use]
    pub fn new(access: Access, writer: Writer, metrics: Arc<Metrics>) -> Self {
        Self {
            access: Arc::new(access),
            writer,
            metrics,
        }
    }

    /// Admits the caller, or counts, records and returns the refusal.
    pub async fn admit(
        &self,
        certs: Option<&[CertificateDer<'static>]>,
        peer: Option<SocketAddr>,
        method: Method,
        args: &str,
    ) -> Result<Caller, Refusal> {
        match self.access.admit(certs, peer, method) {
            Ok(caller) => {
                self.metrics.query(method.as_str());
                Ok(caller)
            }
            Err(refused) => {
                let (caller, r) = *refused;
                self.metrics.query_refused(r.code.as_str());
                tracing::warn!(
                    who = %caller.who, role = %caller.role, peer = ?caller.peer,
                    method = method.as_str(), reason = %r.code, why = %r.why,
                    "query refused"
                );
                if let Err(e) = self.record(&caller, method, args, r.code.as_str()).await {
                    tracing::error!(error = %e.why, "the refused query could not be audited");
                }
                Err(r)
            }
        }
    }

    /// Stores the audit row of an admitted query; `outcome` is `ok` or the
    /// reason code it ended with.
    pub async fn record(
        &self,
        caller: &Caller,
        method: Method,
        args: &str,
        outcome: &str,
    ) -> Result<(), Refusal> {
        let row = QueryRow {
            time_unix_nano: now_unix_nano(),
            who: caller.who.clone(),
            role: caller.role.clone(),
            method: method.as_str(),
            args: args.to_owned(),
            outcome: outcome.to_owned(),
            peer: caller.peer.map(|p| p.to_string()),
            cert_sha256: caller.cert_sha256.clone(),
        };
        self.writer.record_queries(vec![row]).await.map_err(|e| {
            tracing::error!(error = %e, "storing a query's audit record failed");
            refusal(
                Reason::StoreFailed,
                format!("the query could not be audited ({e}); nothing is answered without it"),
            )
        })
    }
}
