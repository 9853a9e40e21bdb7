//! The authority's durable state: one SQLite file (WAL,
//! `synchronous=FULL`: a request, an approval or an issue is on disk
//! before the call that made it answers). Schema (`sqlite3
//! authority.db` works):
//!
//! ```sql
//! requests(id TEXT PRIMARY KEY,        -- the node's request id
//!          node TEXT, workload TEXT, exec_id TEXT,
//!          request BLOB,               -- the encoded ArtifactRequest, as the node signed it
//!          state TEXT,                 -- pending issued denied expired refused
//!          tier TEXT, rule TEXT,       -- '' when refused before a tier
//!          code TEXT, detail TEXT,     -- refusal / denial / expiry
//!          payload BLOB,               -- the artifact payload approvers sign ('' when refused early)
//!          artifact_id TEXT,           -- UNIQUE when set
//!          envelope BLOB,              -- once issued
//!          approvals_needed INTEGER, groups TEXT, distinct_groups INTEGER,
//!          created_unix INTEGER, expires_unix INTEGER, settled_unix INTEGER,
//!          denied_by TEXT, delivered INTEGER)
//! approvals(request_id TEXT, approver TEXT,   -- PRIMARY KEY (request_id, approver)
//!           keyid TEXT, groups TEXT, signature BLOB, at_unix INTEGER)
//! ```

use std::path::Path;

use rusqlite::{Connection, OptionalExtension as _, params};

/// One request as stored.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Row {
    pub id: String,
    pub node: String,
    pub workload: String,
    pub exec_id: String,
    pub request: Vec<u8>,
    pub state: String,
    pub tier: String,
    pub rule: String,
    pub code: String,
    pub detail: String,
    pub payload: Vec<u8>,
    pub artifact_id: String,
    pub envelope: Vec<u8>,
    pub approvals_needed: u32,
    pub groups: Vec<String>,
    pub distinct_groups: bool,
    pub created_unix: i64,
    pub expires_unix: i64,
    pub settled_unix: i64,
    pub denied_by: String,
    pub delivered: bool,
}

/// One approver's signature on a pending request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalRow {
    pub approver: String,
    pub keyid: String,
    pub groups: Vec<String>,
    pub signature: Vec<u8>,
    pub at_unix: i64,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS requests (
    id TEXT PRIMARY KEY,
    node TEXT NOT NULL,
    workload TEXT NOT NULL,
    exec_id TEXT NOT NULL,
    request BLOB NOT NULL,
    state TEXT NOT NULL,
    tier TEXT NOT NULL,
    rule TEXT NOT NULL,
    code TEXT NOT NULL,
    detail TEXT NOT NULL,
    payload BLOB NOT NULL,
    artifact_id TEXT,
    envelope BLOB NOT NULL,
    approvals_needed INTEGER NOT NULL,
    groups TEXT NOT NULL,
    distinct_groups INTEGER NOT NULL,
    created_unix INTEGER NOT NULL,
    expires_unix INTEGER NOT NULL,
    settled_unix INTEGER NOT NULL,
    denied_by TEXT NOT NULL,
    delivered INTEGER NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS requests_artifact ON requests(artifact_id)
    WHERE artifact_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS requests_state ON requests(state, expires_unix);
CREATE INDEX IF NOT EXISTS requests_workload ON requests(workload, state, settled_unix);
CREATE TABLE IF NOT EXISTS approvals (
    request_id TEXT NOT NULL REFERENCES requests(id),
    approver TEXT NOT NULL,
    keyid TEXT NOT NULL,
    groups TEXT NOT NULL,
    signature BLOB NOT NULL,
    at_unix INTEGER NOT NULL,
    PRIMARY KEY (request_id, approver)
);
";

/// The open store.
#[derive(Debug)]
pub struct Store {
    db: Connection,
}

fn list_text(v: &[String]) -> String {
    serde_json::to_string(v).unwrap_or_else(|_| "[]".to_owned())
}

fn list_of(s: &str) -> Vec<String> {
    serde_json::from_str(s).unwrap_or_default()
}

const COLUMNS: &str = "id, node, workload, exec_id, request, state, tier, rule, code, detail, \
    payload, artifact_id, envelope, approvals_needed, groups, distinct_groups, created_unix, \
    expires_unix, settled_unix, denied_by, delivered";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok(Row {
        id: r.get(0)?,
        node: r.get(1)?,
        workload: r.get(2)?,
        exec_id: r.get(3)?,
        request: r.get(4)?,
        state: r.get(5)?,
        tier: r.get(6)?,
        rule: r.get(7)?,
        code: r.get(8)?,
        detail: r.get(9)?,
        payload: r.get(10)?,
        artifact_id: r.get::<_, Option<String>>(11)?.unwrap_or_default(),
        envelope: r.get(12)?,
        approvals_needed: r.get(13)?,
        groups: list_of(&r.get::<_, String>(14)?),
        distinct_groups: r.get::<_, i64>(15)? != 0,
        created_unix: r.get(16)?,
        expires_unix: r.get(17)?,
        settled_unix: r.get(18)?,
        denied_by: r.get(19)?,
        delivered: r.get::<_, i64>(20)? != 0,
    })
}

impl Store {
    pub fn open(path: &Path) -> rusqlite::Result<Self> {
        let db = Connection::open(path)?;
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.pragma_update(None, "synchronous", "FULL")?;
        db.pragma_update(None, "foreign_keys", "ON")?;
        db.busy_timeout(std::time::Duration::from_secs(5))?;
        db.execute_batch(SCHEMA)?;
        Ok(Self { db })
    }

    pub fn get(&self, id: &str) -> rusqlite::Result<Option<Row>> {
        self.db
            .prepare_cached(&format!("SELECT {COLUMNS} FROM requests WHERE id = ?1"))?
            .query_row([id], row)
            .optional()
    }

    /// Requests in `state` (`None`: any), newest first.
    pub fn list(&self, state: Option<&str>, limit: u32) -> rusqlite::Result<Vec<Row>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM requests WHERE ?1 IS NULL OR state = ?1 \
             ORDER BY created_unix DESC, id LIMIT ?2"
        );
        self.db
            .prepare_cached(&sql)?
            .query_map(params![state, limit], row)?
            .collect()
    }

    pub fn approvals(&self, id: &str) -> rusqlite::Result<Vec<ApprovalRow>> {
        self.db
            .prepare_cached(
                "SELECT approver, keyid, groups, signature, at_unix FROM approvals \
                 WHERE request_id = ?1 ORDER BY at_unix, rowid",
            )?
            .query_map([id], |r| {
                Ok(ApprovalRow {
                    approver: r.get(0)?,
                    keyid: r.get(1)?,
                    groups: list_of(&r.get::<_, String>(2)?),
                    signature: r.get(3)?,
                    at_unix: r.get(4)?,
                })
            })?
            .collect()
    }

    /// Requests of `workload` issued since `since_unix` or still pending:
    /// what its rate envelope counts.
    pub fn issued_or_pending(&self, workload: &str, since_unix: i64) -> rusqlite::Result<u64> {
        self.db
            .prepare_cached(
                "SELECT count(*) FROM requests WHERE workload = ?1 AND \
                 (state = 'pending' OR (state = 'issued' AND settled_unix >= ?2))",
            )?
            .query_row(params![workload, since_unix], |r| r.get::<_, i64>(0))
            .map(|n| u64::try_from(n).unwrap_or(0))
    }

    /// Pending requests whose time ran out at `now_unix`.
    pub fn expired(&self, now_unix: i64) -> rusqlite::Result<Vec<Row>> {
        self.db
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM requests WHERE state = 'pending' AND expires_unix <= ?1"
            ))?
            .query_map([now_unix], row)?
            .collect()
    }

    /// Inserts a new request.
    pub fn insert(&mut self, r: &Row) -> rusqlite::Result<()> {
        self.db
            .prepare_cached(&format!(
                "INSERT INTO requests ({COLUMNS}) VALUES \
                 (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, \
                  ?18, ?19, ?20, ?21)"
            ))?
            .execute(params![
                r.id,
                r.node,
                r.workload,
                r.exec_id,
                r.request,
                r.state,
                r.tier,
                r.rule,
                r.code,
                r.detail,
                r.payload,
                (!r.artifact_id.is_empty()).then_some(&r.artifact_id),
                r.envelope,
                r.approvals_needed,
                list_text(&r.groups),
                i64::from(r.distinct_groups),
                r.created_unix,
                r.expires_unix,
                r.settled_unix,
                r.denied_by,
                i64::from(r.delivered),
            ])?;
        Ok(())
    }

    /// Settles a pending request (issued, denied or expired), with an
    /// approval to add first when there is one, in one transaction. Does
    /// nothing and returns false when the request is no longer pending.
    pub fn settle(
        &mut self,
        id: &str,
        approval: Option<&ApprovalRow>,
        to: Option<Settle<'_>>,
    ) -> rusqlite::Result<bool> {
        let tx = self.db.transaction()?;
        let pending: bool = tx
            .query_row(
                "SELECT state = 'pending' FROM requests WHERE id = ?1",
                [id],
                |r| r.get(0),
            )
            .optional()?
            .unwrap_or(false);
        if !pending {
            return Ok(false);
        }
        if let Some(a) = approval {
            tx.execute(
                "INSERT INTO approvals (request_id, approver, keyid, groups, signature, at_unix) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    id,
                    a.approver,
                    a.keyid,
                    list_text(&a.groups),
                    a.signature,
                    a.at_unix
                ],
            )?;
        }
        if let Some(s) = to {
            tx.execute(
                "UPDATE requests SET state = ?2, code = ?3, detail = ?4, envelope = ?5, \
                 settled_unix = ?6, denied_by = ?7 WHERE id = ?1",
                params![
                    id,
                    s.state,
                    s.code,
                    s.detail,
                    s.envelope,
                    s.at_unix,
                    s.denied_by
                ],
            )?;
        }
        tx.commit()?;
        Ok(true)
    }

    /// Marks an issued request's envelope as handed to its node; true the
    /// first time.
    pub fn delivered(&mut self, id: &str) -> rusqlite::Result<bool> {
        Ok(self.db.execute(
            "UPDATE requests SET delivered = 1 WHERE id = ?1 AND state = 'issued' AND delivered = 0",
            [id],
        )? == 1)
    }
}

/// What a pending request becomes.
#[derive(Debug, Clone, Copy)]
pub struct Settle<'a> {
    pub state: &'a str,
    pub code: &'a str,
    pub detail: &'a str,
    pub envelope: &'a [u8],
    pub at_unix: i64,
    pub denied_by: &'a str,
}
