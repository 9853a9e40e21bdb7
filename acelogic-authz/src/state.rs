//! The daemon's durable authorization state, in SQLite: every accepted
//! artifact (the spent set), which of them hold an operation key (the
//! leases), frozen workloads, the daemon epoch, and one record per
//! authorization outcome.
//!
//! Order matters for safety: an artifact is written as `installing`, with
//! its lease, and committed (fsync'd) *before* its grants reach the kernel.
//! A crash after the commit leaves a spent id, never a grant the daemon
//! does not know about. At open, `installing` rows are settled against the
//! kernel by the caller ([`State::installing`]).
//!
//! Schema (plain SQL, documented for operators):
//!
//! | table | row |
//! |---|---|
//! | `meta` | `key`, `value`: `schema`, `epoch` (daemon starts), `next_grant_id` |
//! | `artifacts` | one per accepted artifact: `id` (hex, primary key = spent set), `workload`, `scope_id`, `issuer`, `approvers` (JSON), `operation_key`, `grant_id`, `capabilities` (JSON), `not_before`/`expires`/`accepted_at` (unix s), `state` (`installing`, `live`, `revoked`, `failed`, `expired`), `ended_at`, `end_reason`, `envelope_sha256`, `payload` (the signed JSON), `issuer_key` (the key id whose signature counted for the issuer), `approver_keys` (JSON: the key id of each counted approver, in the order of `approvers`); both `NULL` on rows accepted before schema 2; `cluster_token` (the fencing token of the operation key's lease in the cluster store; `NULL` without a cluster store or an operation key), `completed_retention` (seconds a completion is kept, from the rules' `completedRetention`; `NULL`: the default) |
//! | `cluster_outbox` | `seq`, `settle` (JSON): what the cluster store must still be told (a lease released, an operation completed, a claim whose answer never came undone); removed once the store confirmed it |
//! | `frozen` | `workload`, `since`, `reason` |
//! | `authz_records` | `seq`, `at` (unix ms), `outcome` ([`Outcome`]: `refused`, `accepted`, `expired`, `consumed`, `revoked`, `failed`, `frozen`, `unfrozen`, `daemon-start`, `daemon-stop`, `policy-loaded`, `policy-rejected`), `reason` (a [`Reason`] code), `detail`, `artifact_id`, `workload`, `issuer`, `peer_pid`, `peer_uid`, `peer_gid`, `envelope_sha256` |

use std::path::Path;

use acelogic_domain::Reason;
use rusqlite::{Connection, OptionalExtension as _, TransactionBehavior, params};

/// 2: `artifacts.issuer_key` and `artifacts.approver_keys` (the keys an
/// artifact was accepted with, so removing a key revokes what it signed).
/// 3: `artifacts.cluster_token` (the fencing token of an operation key
/// leased in the cluster store).
const SCHEMA_VERSION: i64 = 3;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) STRICT;
CREATE TABLE IF NOT EXISTS artifacts (
    id TEXT PRIMARY KEY,
    workload TEXT NOT NULL,
    scope_id INTEGER NOT NULL,
    issuer TEXT NOT NULL,
    approvers TEXT NOT NULL,
    operation_key TEXT,
    grant_id INTEGER NOT NULL UNIQUE,
    capabilities TEXT NOT NULL,
    not_before INTEGER NOT NULL,
    expires INTEGER NOT NULL,
    accepted_at INTEGER NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('installing', 'live', 'revoked', 'failed', 'expired')),
    ended_at INTEGER,
    end_reason TEXT,
    envelope_sha256 TEXT NOT NULL,
    payload TEXT NOT NULL,
    issuer_key TEXT,
    approver_keys TEXT,
    cluster_token INTEGER,
    completed_retention INTEGER
) STRICT;
-- Backstop for the lease check: one unexpired holder per operation key.
CREATE UNIQUE INDEX IF NOT EXISTS operation_lease ON artifacts (operation_key)
    WHERE operation_key IS NOT NULL AND state IN ('installing', 'live');
-- Settlements for the cluster store not yet carried out (schema 3).
CREATE TABLE IF NOT EXISTS cluster_outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    settle TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS frozen (
    workload TEXT PRIMARY KEY,
    since INTEGER NOT NULL,
    reason TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS authz_records (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    at INTEGER NOT NULL,
    outcome TEXT NOT NULL,
    reason TEXT NOT NULL,
    detail TEXT NOT NULL,
    artifact_id TEXT,
    workload TEXT,
    issuer TEXT,
    peer_pid INTEGER,
    peer_uid INTEGER,
    peer_gid INTEGER,
    envelope_sha256 TEXT
) STRICT;
";

/// The state store failed; the daemon refuses (fails closed) rather than
/// act on state it could not persist.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error("authorization state database: {0}")]
    Sql(#[from] rusqlite::Error),
    /// The lineage journal refused the record (full or failing).
    #[error("lineage journal: {0}")]
    Journal(#[source] crate::PortError),
    #[error(
        "authorization state schema {found} is newer than this daemon's {SCHEMA_VERSION}; \
         run the newer daemon or move the state directory aside"
    )]
    Schema { found: i64 },
}

/// An accepted artifact, as persisted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArtifactRow {
    pub id: String,
    pub workload: String,
    pub scope_id: u32,
    pub issuer: String,
    pub approvers: Vec<String>,
    pub operation_key: Option<String>,
    pub grant_id: u64,
    pub capabilities: Vec<String>,
    pub not_before: i64,
    pub expires: i64,
    pub accepted_at: i64,
    pub state: String,
    pub envelope_sha256: String,
    /// The signed payload JSON, re-checked against each new policy.
    pub payload: String,
    /// The key id whose signature counted for the issuer; `None` on rows
    /// accepted before the state recorded keys (schema 1).
    pub issuer_key: Option<String>,
    /// The key id of each counted approver, in the order of `approvers`;
    /// `None` on rows from before schema 2.
    pub approver_keys: Option<Vec<String>>,
    /// The fencing token of its operation key's lease in the cluster
    /// store (`None`: no cluster store, or no operation key).
    pub cluster_token: Option<u64>,
    /// Seconds the cluster store keeps its operation completed, from the
    /// matched rules' `completedRetention` (`None`: the default).
    pub completed_retention_s: Option<i64>,
}

/// Why an artifact could not be claimed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Claimed: spent and (if keyed) leased, with this kernel grant id.
    Claimed { grant_id: u64 },
    /// This id was accepted before (at unix seconds).
    Replayed { accepted_at: i64, state: String },
    /// The operation key is held by another live artifact.
    Conflict { holder: String, until: i64 },
}

/// What an authorization record says happened. A closed set: its text is
/// what `authz_records.outcome` and the journal hold, unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// A submission or call was refused (lineage says `rejected`).
    Refused,
    /// An artifact was accepted and its grants installed.
    Accepted,
    /// An artifact's time ran out.
    Expired,
    /// Every use of an artifact was consumed (its row ends `expired`).
    Consumed,
    /// An artifact's grants were removed before its end, or a grant no
    /// artifact accounts for was.
    Revoked,
    /// An artifact ended because its kernel entries were lost.
    Failed,
    /// An operator froze a workload.
    Frozen,
    /// An operator lifted a freeze.
    Unfrozen,
    /// The daemon started (a lifecycle record, about no artifact).
    DaemonStart,
    /// The daemon stopped.
    DaemonStop,
    /// A policy was loaded and applied.
    PolicyLoaded,
    /// A changed policy did not load; the one in force stays.
    PolicyRejected,
    /// The cluster store stopped or started answering (a lifecycle record).
    ClusterStore,
    /// The cluster store confirmed a completed operation.
    OperationCompleted,
    /// An administrator released an operation key in the cluster store.
    OperationReleased,
}

impl Outcome {
    /// The outcome as the state store and the journal spell it.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Refused => "refused",
            Self::Accepted => "accepted",
            Self::Expired => "expired",
            Self::Consumed => "consumed",
            Self::Revoked => "revoked",
            Self::Failed => "failed",
            Self::Frozen => "frozen",
            Self::Unfrozen => "unfrozen",
            Self::DaemonStart => "daemon-start",
            Self::DaemonStop => "daemon-stop",
            Self::PolicyLoaded => "policy-loaded",
            Self::PolicyRejected => "policy-rejected",
            Self::ClusterStore => "cluster-store",
            Self::OperationCompleted => "operation-completed",
            Self::OperationReleased => "operation-released",
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One authorization outcome to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record<'a> {
    pub outcome: Outcome,
    pub reason: Reason,
    pub detail: &'a str,
    pub artifact_id: Option<&'a str>,
    pub workload: Option<&'a str>,
    pub issuer: Option<&'a str>,
    pub peer: Option<Peer>,
    pub envelope_sha256: Option<&'a str>,
    /// For lineage (not kept in `authz_records`): who approved, the
    /// operation key, what was granted and under which kernel grant id.
    pub approvers: &'a [String],
    pub operation_key: Option<&'a str>,
    pub capabilities: &'a [String],
    pub grant_id: Option<u64>,
    /// Policy in force, for daemon lifecycle records.
    pub policy_sha256: Option<&'a str>,
}

impl Record<'_> {
    /// A record of `outcome` for `reason`, about nothing yet: the fields
    /// to fill come before it in struct update syntax.
    #[must_use]
    pub const fn new(outcome: Outcome, reason: Reason) -> Self {
        Self {
            outcome,
            reason,
            detail: "",
            artifact_id: None,
            workload: None,
            issuer: None,
            peer: None,
            envelope_sha256: None,
            approvers: &[],
            operation_key: None,
            capabilities: &[],
            grant_id: None,
            policy_sha256: None,
        }
    }
}

/// Who called the daemon (from `SO_PEERCRED`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Peer {
    pub pid: Option<i32>,
    pub uid: u32,
    pub gid: u32,
}

/// A stored authorization record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    pub seq: i64,
    pub at_ms: i64,
    pub outcome: String,
    pub reason: String,
    pub detail: String,
    pub artifact_id: Option<String>,
    pub workload: Option<String>,
    pub peer_pid: Option<i64>,
    pub peer_uid: Option<i64>,
}

/// The open store.
#[derive(Debug)]
pub struct State {
    db: Connection,
}

fn now_ms() -> i64 {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn to_json(list: &[String]) -> String {
    serde_json::to_string(list).unwrap_or_else(|_| "[]".to_owned())
}

fn from_json(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}

const ROW_COLUMNS: &str = "id, workload, scope_id, issuer, approvers, operation_key, grant_id, \
    capabilities, not_before, expires, accepted_at, state, envelope_sha256, payload, issuer_key, \
    approver_keys, cluster_token, completed_retention";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<ArtifactRow> {
    Ok(ArtifactRow {
        id: r.get(0)?,
        workload: r.get(1)?,
        scope_id: r.get(2)?,
        issuer: r.get(3)?,
        approvers: from_json(&r.get::<_, String>(4)?),
        operation_key: r.get(5)?,
        grant_id: r.get::<_, i64>(6)?.cast_unsigned(),
        capabilities: from_json(&r.get::<_, String>(7)?),
        not_before: r.get(8)?,
        expires: r.get(9)?,
        accepted_at: r.get(10)?,
        state: r.get(11)?,
        envelope_sha256: r.get(12)?,
        payload: r.get(13)?,
        issuer_key: r.get(14)?,
        approver_keys: r.get::<_, Option<String>>(15)?.map(|t| from_json(&t)),
        cluster_token: r.get::<_, Option<i64>>(16)?.map(i64::cast_unsigned),
        completed_retention_s: r.get(17)?,
    })
}

impl State {
    /// Opens (creating) `path`. Writes are durable when a call returns
    /// (WAL, `synchronous=FULL`).
    pub fn open(path: &Path) -> Result<Self, StateError> {
        let mut db = Connection::open(path)?;
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.pragma_update(None, "synchronous", "FULL")?;
        db.busy_timeout(std::time::Duration::from_secs(5))?;
        db.execute_batch(SCHEMA)?;
        let found: Option<i64> = db
            .query_row("SELECT value FROM meta WHERE key = 'schema'", [], |r| {
                r.get(0)
            })
            .optional()?;
        match found {
            Some(v) if v > SCHEMA_VERSION => return Err(StateError::Schema { found: v }),
            Some(1) => {
                // Schema 1 to 2: the keys each artifact was accepted with.
                // Rows already there get NULL (not known); the engine's
                // re-check revokes them (fail closed, see `recheck`).
                let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
                tx.execute_batch(
                    "ALTER TABLE artifacts ADD COLUMN issuer_key TEXT;
                     ALTER TABLE artifacts ADD COLUMN approver_keys TEXT;
                     ALTER TABLE artifacts ADD COLUMN cluster_token INTEGER;
                     ALTER TABLE artifacts ADD COLUMN completed_retention INTEGER;
                     UPDATE meta SET value = 3 WHERE key = 'schema';",
                )?;
                tx.commit()?;
            }
            Some(2) => {
                // Schema 2 to 3: no row was leased in a cluster store.
                let tx = db.transaction_with_behavior(TransactionBehavior::Immediate)?;
                tx.execute_batch(
                    "ALTER TABLE artifacts ADD COLUMN cluster_token INTEGER;
                     UPDATE meta SET value = 3 WHERE key = 'schema';",
                )?;
                tx.commit()?;
            }
            Some(_) => {}
            None => {
                // Grant ids start at the creation time in milliseconds, so
                // a state database created anew (lost, moved aside) never
                // reuses the id of a grant still pinned in the kernel.
                db.execute(
                    "INSERT INTO meta (key, value) VALUES ('schema', ?1), ('epoch', 0), \
                     ('next_grant_id', ?2)",
                    [SCHEMA_VERSION, now_ms().max(1)],
                )?;
            }
        }
        Ok(Self { db })
    }

    /// Counts one more daemon start and returns its epoch (1, 2, ...).
    pub fn next_epoch(&mut self) -> Result<u64, StateError> {
        let tx = self
            .db
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute("UPDATE meta SET value = value + 1 WHERE key = 'epoch'", [])?;
        let epoch: i64 = tx.query_row("SELECT value FROM meta WHERE key = 'epoch'", [], |r| {
            r.get(0)
        })?;
        tx.commit()?;
        Ok(epoch.cast_unsigned())
    }

    /// Marks live or installing artifacts whose expiry has passed as
    /// expired (their leases end with them); returns them.
    pub fn expire(&mut self, now: i64) -> Result<Vec<ArtifactRow>, StateError> {
        let tx = self
            .db
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let rows = {
            let mut q = tx.prepare(&format!(
                "SELECT {ROW_COLUMNS} FROM artifacts \
                 WHERE state IN ('live', 'installing') AND expires <= ?1"
            ))?;
            q.query_map([now], row)?.collect::<Result<Vec<_>, _>>()?
        };
        tx.execute(
            "UPDATE artifacts SET state = 'expired', ended_at = ?1, end_reason = 'expired' \
             WHERE state IN ('live', 'installing') AND expires <= ?1",
            [now],
        )?;
        tx.commit()?;
        Ok(rows)
    }

    /// Atomically: refuses a spent id and a held operation key, else spends
    /// the id, takes the lease and allocates a kernel grant id. Durable on
    /// return, before any grant is installed.
    pub fn claim(&mut self, a: &ArtifactRow, now: i64) -> Result<Claim, StateError> {
        let tx = self
            .db
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        let spent: Option<(i64, String)> = tx
            .query_row(
                "SELECT accepted_at, state FROM artifacts WHERE id = ?1",
                [&a.id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        if let Some((accepted_at, state)) = spent {
            return Ok(Claim::Replayed { accepted_at, state });
        }
        tx.execute(
            "UPDATE artifacts SET state = 'expired', ended_at = ?1, end_reason = 'expired' \
             WHERE state IN ('live', 'installing') AND expires <= ?1",
            [now],
        )?;
        if let Some(key) = &a.operation_key {
            let holder: Option<(String, i64)> = tx
                .query_row(
                    "SELECT id, expires FROM artifacts WHERE operation_key = ?1 \
                     AND state IN ('installing', 'live')",
                    [key],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            if let Some((holder, until)) = holder {
                return Ok(Claim::Conflict { holder, until });
            }
        }
        let grant_id: i64 = tx.query_row(
            "SELECT value FROM meta WHERE key = 'next_grant_id'",
            [],
            |r| r.get(0),
        )?;
        tx.execute(
            "UPDATE meta SET value = value + 1 WHERE key = 'next_grant_id'",
            [],
        )?;
        tx.execute(
            &format!(
                "INSERT INTO artifacts ({ROW_COLUMNS}) VALUES \
                 (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, 'installing', ?12, ?13, ?14, ?15, ?16, ?17)"
            ),
            params![
                a.id,
                a.workload,
                a.scope_id,
                a.issuer,
                to_json(&a.approvers),
                a.operation_key,
                grant_id,
                to_json(&a.capabilities),
                a.not_before,
                a.expires,
                now,
                a.envelope_sha256,
                a.payload,
                a.issuer_key,
                a.approver_keys.as_deref().map(to_json),
                a.cluster_token.map(u64::cast_signed),
                a.completed_retention_s,
            ],
        )?;
        tx.commit()?;
        Ok(Claim::Claimed {
            grant_id: grant_id.cast_unsigned(),
        })
    }

    /// Queues a settlement for the cluster store, durably.
    pub fn queue_settle(&mut self, s: &crate::cluster::Settle) -> Result<i64, StateError> {
        let text = serde_json::to_string(s).unwrap_or_default();
        self.db
            .execute("INSERT INTO cluster_outbox (settle) VALUES (?1)", [text])?;
        Ok(self.db.last_insert_rowid())
    }

    /// Settlements not yet confirmed, oldest first. A row that does not
    /// parse (written by hand) is reported and left.
    pub fn outbox(&self) -> Result<Vec<(i64, crate::cluster::Settle)>, StateError> {
        let mut q = self
            .db
            .prepare("SELECT seq, settle FROM cluster_outbox ORDER BY seq")?;
        let rows = q
            .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows
            .into_iter()
            .filter_map(|(seq, text)| match serde_json::from_str(&text) {
                Ok(s) => Some((seq, s)),
                Err(e) => {
                    tracing::error!(seq, error = %e, "cluster_outbox row does not parse; left in place");
                    None
                }
            })
            .collect())
    }

    /// The cluster store confirmed settlement `seq`.
    pub fn settled(&mut self, seq: i64) -> Result<(), StateError> {
        self.db
            .execute("DELETE FROM cluster_outbox WHERE seq = ?1", [seq])?;
        Ok(())
    }

    /// The grants are in the kernel.
    pub fn mark_live(&mut self, id: &str) -> Result<(), StateError> {
        self.db.execute(
            "UPDATE artifacts SET state = 'live' WHERE id = ?1 AND state = 'installing'",
            [id],
        )?;
        Ok(())
    }

    /// Ends an artifact (`failed`, `revoked`): its id stays spent, its
    /// lease is released. Returns false when it was not live or installing.
    pub fn end(&mut self, id: &str, state: &str, why: &str, now: i64) -> Result<bool, StateError> {
        let n = self.db.execute(
            "UPDATE artifacts SET state = ?2, ended_at = ?3, end_reason = ?4 \
             WHERE id = ?1 AND state IN ('installing', 'live')",
            params![id, state, now, why],
        )?;
        Ok(n == 1)
    }

    /// One artifact by id.
    pub fn artifact(&self, id: &str) -> Result<Option<ArtifactRow>, StateError> {
        Ok(self
            .db
            .query_row(
                &format!("SELECT {ROW_COLUMNS} FROM artifacts WHERE id = ?1"),
                [id],
                row,
            )
            .optional()?)
    }

    /// Artifacts in `installing` or `live` state.
    pub fn active(&self) -> Result<Vec<ArtifactRow>, StateError> {
        let mut q = self.db.prepare(&format!(
            "SELECT {ROW_COLUMNS} FROM artifacts WHERE state IN ('installing', 'live') \
             ORDER BY accepted_at, id"
        ))?;
        Ok(q.query_map([], row)?.collect::<Result<Vec<_>, _>>()?)
    }

    /// Artifacts a crash left between claim and install.
    pub fn installing(&self) -> Result<Vec<ArtifactRow>, StateError> {
        Ok(self
            .active()?
            .into_iter()
            .filter(|a| a.state == "installing")
            .collect())
    }

    pub fn set_frozen(
        &mut self,
        workload: &str,
        frozen: bool,
        why: &str,
    ) -> Result<(), StateError> {
        if frozen {
            self.db.execute(
                "INSERT INTO frozen (workload, since, reason) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (workload) DO UPDATE SET reason = excluded.reason",
                params![workload, now_ms() / 1000, why],
            )?;
        } else {
            self.db
                .execute("DELETE FROM frozen WHERE workload = ?1", [workload])?;
        }
        Ok(())
    }

    pub fn frozen(&self) -> Result<Vec<String>, StateError> {
        let mut q = self
            .db
            .prepare("SELECT workload FROM frozen ORDER BY workload")?;
        Ok(q.query_map([], |r| r.get(0))?
            .collect::<Result<Vec<_>, _>>()?)
    }

    /// Appends one authorization record; returns its sequence number.
    pub fn record(&mut self, r: &Record<'_>) -> Result<i64, StateError> {
        self.db.execute(
            "INSERT INTO authz_records (at, outcome, reason, detail, artifact_id, workload, \
             issuer, peer_pid, peer_uid, peer_gid, envelope_sha256) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
            params![
                now_ms(),
                r.outcome.as_str(),
                r.reason.as_str(),
                r.detail,
                r.artifact_id,
                r.workload,
                r.issuer,
                r.peer.and_then(|p| p.pid),
                r.peer.map(|p| p.uid),
                r.peer.map(|p| p.gid),
                r.envelope_sha256,
            ],
        )?;
        Ok(self.db.last_insert_rowid())
    }

    /// Records after `seq`, oldest first.
    pub fn records_after(&self, seq: i64) -> Result<Vec<StoredRecord>, StateError> {
        let mut q = self.db.prepare(
            "SELECT seq, at, outcome, reason, detail, artifact_id, workload, peer_pid, peer_uid \
             FROM authz_records WHERE seq > ?1 ORDER BY seq",
        )?;
        Ok(q.query_map([seq], |r| {
            Ok(StoredRecord {
                seq: r.get(0)?,
                at_ms: r.get(1)?,
                outcome: r.get(2)?,
                reason: r.get(3)?,
                detail: r.get(4)?,
                artifact_id: r.get(5)?,
                workload: r.get(6)?,
                peer_pid: r.get(7)?,
                peer_uid: r.get(8)?,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn artifact(id: &str, key: Option<&str>, expires: i64) -> ArtifactRow {
        ArtifactRow {
            id: id.to_owned(),
            workload: "w".to_owned(),
            scope_id: 7,
            issuer: "i".to_owned(),
            approvers: vec!["a".to_owned()],
            operation_key: key.map(str::to_owned),
            grant_id: 0,
            capabilities: vec!["exec /bin/true".to_owned()],
            not_before: 0,
            expires,
            accepted_at: 0,
            state: String::new(),
            envelope_sha256: "00".to_owned(),
            payload: "{}".to_owned(),
            issuer_key: Some("ed25519:0101010101010101".to_owned()),
            approver_keys: Some(vec!["ed25519:0202020202020202".to_owned()]),
            cluster_token: key.map(|_| 41),
            completed_retention_s: None,
        }
    }

    #[test]
    fn spent_ids_and_leases_survive_reopening() {
        let dir = tempdir();
        let path = dir.path().join("state.db");
        let mut s = State::open(&path).unwrap();
        assert_eq!(s.next_epoch().unwrap(), 1);
        let Claim::Claimed { grant_id: g } =
            s.claim(&artifact("a1", Some("scale/x"), 100), 10).unwrap()
        else {
            panic!("not claimed")
        };
        assert!(
            g > 1_700_000_000_000,
            "grant ids start at the creation time: {g}"
        );
        s.mark_live("a1").unwrap();
        drop(s);

        let mut s = State::open(&path).unwrap();
        assert_eq!(s.next_epoch().unwrap(), 2);
        assert!(matches!(
            s.claim(&artifact("a1", None, 100), 11).unwrap(),
            Claim::Replayed {
                accepted_at: 10,
                ..
            }
        ));
        assert_eq!(
            s.claim(&artifact("a2", Some("scale/x"), 100), 11).unwrap(),
            Claim::Conflict {
                holder: "a1".to_owned(),
                until: 100
            }
        );
        // A different key is free; grant ids keep counting.
        assert_eq!(
            s.claim(&artifact("a3", Some("scale/y"), 100), 11).unwrap(),
            Claim::Claimed { grant_id: g + 1 }
        );
        // After expiry the key is free again, the id still spent.
        assert_eq!(
            s.claim(&artifact("a2", Some("scale/x"), 300), 100).unwrap(),
            Claim::Claimed { grant_id: g + 2 }
        );
        assert_eq!(s.artifact("a1").unwrap().unwrap().state, "expired");
    }

    #[test]
    fn revoking_releases_the_lease_but_not_the_id() {
        let dir = tempdir();
        let mut s = State::open(&dir.path().join("s.db")).unwrap();
        s.claim(&artifact("a1", Some("k"), 100), 1).unwrap();
        assert!(s.end("a1", "revoked", "operator", 2).unwrap());
        assert!(!s.end("a1", "revoked", "again", 3).unwrap());
        assert!(matches!(
            s.claim(&artifact("a2", Some("k"), 100), 3).unwrap(),
            Claim::Claimed { .. }
        ));
        assert!(matches!(
            s.claim(&artifact("a1", Some("k2"), 100), 3).unwrap(),
            Claim::Replayed { .. }
        ));
        assert_eq!(s.installing().unwrap().len(), 1, "a2 is still installing");
    }

    #[test]
    fn records_and_frozen_workloads_persist() {
        let dir = tempdir();
        let path = dir.path().join("s.db");
        let mut s = State::open(&path).unwrap();
        let seq = s
            .record(&Record {
                detail: "id a1 was accepted before",
                artifact_id: Some("a1"),
                peer: Some(Peer {
                    pid: Some(42),
                    uid: 0,
                    gid: 0,
                }),
                ..Record::new(Outcome::Refused, Reason::Replayed)
            })
            .unwrap();
        s.set_frozen("w", true, "incident").unwrap();
        drop(s);
        let s = State::open(&path).unwrap();
        let recs = s.records_after(seq - 1).unwrap();
        assert_eq!(recs.len(), 1);
        assert_eq!(
            (
                recs[0].outcome.as_str(),
                recs[0].reason.as_str(),
                recs[0].peer_pid
            ),
            ("refused", "replayed", Some(42))
        );
        assert_eq!(s.frozen().unwrap(), vec!["w".to_owned()]);
    }

    #[test]
    fn a_newer_schema_is_refused() {
        let dir = tempdir();
        let path = dir.path().join("s.db");
        drop(State::open(&path).unwrap());
        let db = Connection::open(&path).unwrap();
        db.execute("UPDATE meta SET value = 99 WHERE key = 'schema'", [])
            .unwrap();
        drop(db);
        assert!(matches!(
            State::open(&path),
            Err(StateError::Schema { found: 99 })
        ));
    }

    /// A database written by a schema-1 daemon opens, gains the key
    /// columns (NULL on its rows) and keeps working; a schema-2 daemon's
    /// rows keep their keys across reopening.
    #[test]
    fn a_schema_1_database_is_migrated() {
        let dir = tempdir();
        let path = dir.path().join("s.db");
        let v1 = SCHEMA.replace(
            ",\n    issuer_key TEXT,\n    approver_keys TEXT,\n    cluster_token INTEGER,\n    completed_retention INTEGER\n",
            "\n",
        );
        assert!(!v1.contains("issuer_key"), "the schema-1 text: {v1}");
        let db = Connection::open(&path).unwrap();
        db.execute_batch(&v1).unwrap();
        db.execute(
            "INSERT INTO meta (key, value) VALUES ('schema', 1), ('epoch', 3), \
             ('next_grant_id', 1000)",
            [],
        )
        .unwrap();
        db.execute(
            "INSERT INTO artifacts (id, workload, scope_id, issuer, approvers, operation_key, \
             grant_id, capabilities, not_before, expires, accepted_at, state, envelope_sha256, \
             payload) VALUES ('old', 'w', 7, 'i', '[\"a\"]', 'k', 999, '[]', 0, 100, 1, 'live', \
             '00', '{}')",
            [],
        )
        .unwrap();
        drop(db);

        let mut s = State::open(&path).unwrap();
        assert_eq!(s.next_epoch().unwrap(), 4, "the epoch was kept");
        let old = s.artifact("old").unwrap().unwrap();
        assert_eq!((old.issuer_key, old.approver_keys), (None, None));
        assert_eq!(old.cluster_token, None);
        assert_eq!(old.approvers, vec!["a".to_owned()]);
        // The lease of the old row still holds; new rows record their keys.
        assert!(matches!(
            s.claim(&artifact("new", Some("k"), 100), 2).unwrap(),
            Claim::Conflict { .. }
        ));
        assert_eq!(
            s.claim(&artifact("new", None, 100), 2).unwrap(),
            Claim::Claimed { grant_id: 1000 }
        );
        drop(s);
        let s = State::open(&path).unwrap();
        let new = s.artifact("new").unwrap().unwrap();
        assert_eq!(new.issuer_key, artifact("x", None, 0).issuer_key);
        assert_eq!(new.approver_keys, artifact("x", None, 0).approver_keys);
        let version: i64 =
            s.db.query_row("SELECT value FROM meta WHERE key = 'schema'", [], |r| {
                r.get(0)
            })
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
    }

    /// A fresh directory, removed when the value is dropped: bind it for
    /// as long as the test uses paths in it.
    fn tempdir() -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix("acelogic-state-")
            .tempdir()
            .unwrap()
    }
}
