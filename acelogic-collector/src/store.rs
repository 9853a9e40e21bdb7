//! The collector's store: one SQLite file (WAL, `synchronous=FULL`, so a
//! batch is on disk when it is acknowledged). Only the writer thread
//! (`writer.rs`) writes; queries read through their own connections.
//!
//! The schema is stable and meant for plain SQL (`sqlite3 collector.db`):
//!
//! ```sql
//! nodes(name TEXT PRIMARY KEY,       -- node name as records carry it
//!       public_key BLOB,             -- its Ed25519 key (32 bytes)
//!       source TEXT,                 -- 'file' (--nodes) or 'tofu' (--accept-new-nodes)
//!       enrolled_unix_nano INTEGER)
//! chains(id INTEGER PRIMARY KEY,     -- one per node journal
//!        node TEXT, journal_id BLOB, -- UNIQUE(node, journal_id)
//!        head_seq INTEGER, head_hash BLOB,
//!        created_unix_nano INTEGER)
//! records(id INTEGER PRIMARY KEY,    -- storage order (the OTLP cursor)
//!         chain INTEGER,             -- chains.id; UNIQUE(chain, seq)
//!         node TEXT, seq INTEGER,
//!         hash BLOB, prev_hash BLOB, -- see lineage::chain::entry_hash
//!         time_unix_nano INTEGER,    -- when it happened on the node
//!         kind TEXT,                 -- decision exec fork exit authorization lifecycle loss
//!                                    -- issuance (the authority's) none
//!         process INTEGER,           -- processes.id: its exec and parent ids; NULL when it
//!                                    -- names neither
//!         pid INTEGER,
//!         workload TEXT,
//!         hook TEXT,                 -- decisions: exec, file-open, socket-connect, ...
//!         verdict TEXT,              -- decisions: allow deny audit; authorization: its outcome;
//!                                    -- issuance: its event (requested, queued, issued, ...)
//!         reason TEXT,               -- decision reason, authorization reason code; issuance:
//!                                    -- its code, or its tier
//!         artifact_id TEXT,
//!         object TEXT,               -- decision object, exec filename, lifecycle event, loss kind,
//!                                    -- issuance request id
//!         record BLOB)               -- the encoded lineage Record, exactly as hashed
//! processes(id INTEGER PRIMARY KEY,  -- one per (exec_id, parent_exec_id) pair records carry,
//!           exec_id TEXT,            -- in the order first stored
//!           parent_exec_id TEXT)     -- the process (authorization, issuance: the caller's)
//!                                    -- and its parent; UNIQUE(exec_id, parent_exec_id)
//! gaps(id INTEGER PRIMARY KEY, chain INTEGER, node TEXT,
//!      from_seq INTEGER, to_seq INTEGER,    -- seqs the node no longer had
//!      detected_unix_nano INTEGER)
//! alarms(id INTEGER PRIMARY KEY, time_unix_nano INTEGER, node TEXT,
//!        chain INTEGER,              -- NULL when not about one chain
//!        kind TEXT,                  -- gap, journal-reset, node-enrolled, tail-cut
//!        detail TEXT)
//! checkpoints(id INTEGER PRIMARY KEY, chain INTEGER, node TEXT,
//!             journal_id BLOB, seq INTEGER, head_hash BLOB,
//!             time_unix_nano INTEGER,
//!             key_id TEXT,           -- the collector key that signed
//!             signature BLOB,        -- over `note`'s text (v1 rows: checkpoint::message)
//!             log_index INTEGER,     -- 1, 2, ... per chain; NULL on v1 rows
//!             note TEXT)             -- the signed note (lineage::note); NULL on v1 rows
//! meta(key TEXT PRIMARY KEY, value)  -- otlp_cursor: last records.id exported
//! queries(id INTEGER PRIMARY KEY,    -- one row per query and web page view, answered or refused
//!         time_unix_nano INTEGER,    -- when the collector decided
//!         who TEXT,                  -- the client certificate's common name; 'anonymous'
//!         role TEXT,                 -- reader, auditor, node (its certificate's role); none;
//!                                    -- open (the collector runs without --client-ca)
//!         method TEXT,               -- Tree Artifact Denials Verify Checkpoints Export,
//!                                    -- or 'web /tree' ... for the web view
//!         args TEXT,                 -- the request's arguments as a JSON object
//!         outcome TEXT,              -- ok, or the reason code it ended with
//!                                    -- (unauthenticated-client, role-forbids, not-found, ...)
//!         peer TEXT,                 -- the client's address
//!         cert_sha256 TEXT)          -- SHA-256 of the certificate presented (DER), hex
//! ```
//!
//! Empty strings in records are stored as NULL. Columns other than
//! `record` (and the record's `processes` row) are derived from it at
//! ingest; `acelogicctl lineage verify` recomputes them and reports a row
//! whose columns no longer match.
//!
//! Exec ids are random, so an index on them takes a write to a random
//! page for every entry. `processes` holds each exec id once (a process
//! has a few to thousands of records) and `records` refers to it by
//! number, which grows with time and indexes cheaply. The record's JSON
//! is not stored: the OTLP export renders it from `record`.
//!
//! Examples: every denial of workload `agent` in the last hour, and every
//! record of one process:
//!
//! ```sql
//! SELECT node, seq, datetime(time_unix_nano / 1e9, 'unixepoch'), hook, object, reason
//!   FROM records WHERE verdict = 'deny' AND workload = 'agent'
//!    AND time_unix_nano > (strftime('%s','now') - 3600) * 1000000000;
//! SELECT r.seq, r.kind, r.hook, r.object, p.parent_exec_id
//!   FROM records r JOIN processes p ON p.id = r.process
//!  WHERE p.exec_id = '505d32fc9732b20160d999a2' ORDER BY r.id;
//! ```

use acelogic_domain::Reason;
use std::{collections::HashMap, path::Path};

use ed25519_dalek::VerifyingKey;
use rusqlite::{Connection, OptionalExtension as _, params};

use super::{
    audit_log::{self, QueryRow},
    refusal, to_i64, to_u64,
    verify::CheckedBatch,
};
use acelogic_domain::Refusal;
use acelogic_domain::artifact::SecretKey;
use acelogic_lineage::{
    chain::{GENESIS, Hash, JOURNAL_ID_LEN},
    note,
    pb::{self as lpb, record::Body},
};

/// The columns derived from a record (see the schema), its strings as
/// `T`: borrowed from a decoded record (`&str`), read from a row
/// (`String`), or kept as spans of a checked batch's text.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Columns<T> {
    pub time_unix_nano: u64,
    pub kind: &'static str,
    pub exec_id: Option<T>,
    pub parent_exec_id: Option<T>,
    pub pid: Option<u32>,
    pub workload: Option<T>,
    pub hook: Option<T>,
    pub verdict: Option<T>,
    pub reason: Option<T>,
    pub artifact_id: Option<T>,
    pub object: Option<T>,
}

fn some(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

impl<T> Columns<T> {
    /// The same columns with each string through `f`.
    pub fn map<'s, U>(&'s self, mut f: impl FnMut(&'s T) -> U) -> Columns<U> {
        let mut g = |s: &'s Option<T>| s.as_ref().map(&mut f);
        Columns {
            time_unix_nano: self.time_unix_nano,
            kind: self.kind,
            exec_id: g(&self.exec_id),
            parent_exec_id: g(&self.parent_exec_id),
            pid: self.pid,
            workload: g(&self.workload),
            hook: g(&self.hook),
            verdict: g(&self.verdict),
            reason: g(&self.reason),
            artifact_id: g(&self.artifact_id),
            object: g(&self.object),
        }
    }
}

impl<'a> Columns<&'a str> {
    /// The columns of `r`; empty strings are none.
    #[must_use]
    pub fn of(r: &'a lpb::Record) -> Self {
        let mut c = Self {
            time_unix_nano: r.time_unix_nano,
            kind: "none",
            ..Self::default()
        };
        let process = |c: &mut Self, p: Option<&'a lpb::Process>| {
            if let Some(p) = p {
                c.exec_id = some(&p.exec_id);
                c.parent_exec_id = some(&p.parent_exec_id);
                c.pid = Some(p.pid);
                c.workload = some(&p.workload);
            }
        };
        match &r.body {
            Some(Body::Decision(d)) => {
                c.kind = "decision";
                process(&mut c, d.process.as_ref());
                c.hook = some(&d.hook);
                c.verdict = some(&d.verdict);
                c.reason = some(&d.reason);
                c.artifact_id = some(&d.artifact_id);
                c.object = some(&d.object);
            }
            Some(Body::Exec(e)) => {
                c.kind = "exec";
                process(&mut c, e.process.as_ref());
                c.object = some(&e.filename);
            }
            Some(Body::Fork(f)) => {
                c.kind = "fork";
                process(&mut c, f.process.as_ref());
            }
            Some(Body::Exit(x)) => {
                c.kind = "exit";
                process(&mut c, x.process.as_ref());
            }
            Some(Body::Authorization(a)) => {
                c.kind = "authorization";
                c.exec_id = some(&a.peer_exec_id);
                c.pid = (a.peer_pid != 0).then_some(a.peer_pid);
                c.workload = some(&a.workload);
                c.verdict = some(&a.outcome);
                c.reason = some(&a.reason);
                c.artifact_id = some(&a.artifact_id);
            }
            Some(Body::Lifecycle(l)) => {
                c.kind = "lifecycle";
                c.object = some(&l.event);
            }
            Some(Body::Loss(l)) => {
                c.kind = "loss";
                c.object = some(&l.what);
            }
            Some(Body::Issuance(i)) => {
                c.kind = "issuance";
                c.exec_id = some(&i.exec_id);
                c.pid = (i.pid != 0).then_some(i.pid);
                c.workload = some(&i.workload);
                c.verdict = some(&i.event);
                c.reason = some(if i.code.is_empty() { &i.tier } else { &i.code });
                c.artifact_id = some(&i.artifact_id);
                c.object = some(&i.request_id);
            }
            None => {}
        }
        c
    }
}

/// A stored chain's head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChainHead {
    pub id: i64,
    pub head_seq: u64,
    pub head_hash: Hash,
}

/// What a committed batch did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Committed {
    /// The batch's last seq: everything up to it is stored.
    pub last_seq: u64,
    /// Entries newly stored (the rest were already stored, identical).
    pub stored: u64,
    pub skipped: u64,
    /// Seqs the node no longer had, recorded as a gap.
    pub gap: Option<(u64, u64)>,
    /// The batch started a chain the node already had another of.
    pub journal_reset: bool,
    /// Newest record time in the batch.
    pub newest_unix_nano: u64,
}

/// How a node's key is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enrollment {
    Known,
    /// Enrolled just now, trust on first use.
    New,
}

/// Why a write failed: a refusal the peer is told about, or the store.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("{0}")]
    Refused(Refusal),
    #[error("collector store: {0}")]
    Storage(#[from] rusqlite::Error),
}

/// A chain whose head has no checkpoint yet.
struct Due {
    chain: i64,
    node: String,
    journal_id: Vec<u8>,
    seq: i64,
    head_hash: Vec<u8>,
}

/// The writer's connection.
#[derive(Debug)]
pub struct Store {
    db: Connection,
}

fn hash_of(bytes: &[u8]) -> Hash {
    bytes.try_into().unwrap_or([0xff; 32])
}

/// Opens a connection for reading (queries, verify, export).
pub fn open_read(path: &Path) -> rusqlite::Result<Connection> {
    let db = Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    db.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(db)
}

fn insert_alarm(
    tx: &Connection,
    now: u64,
    node: &str,
    chain: Option<i64>,
    kind: &str,
    detail: &str,
) -> rusqlite::Result<()> {
    tx.prepare_cached(
        "INSERT INTO alarms(time_unix_nano, node, chain, kind, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![to_i64(now), node, chain, kind, detail])?;
    Ok(())
}

/// The head of `node`'s chain `journal_id`, if stored.
pub fn chain_head(
    db: &Connection,
    node: &str,
    journal_id: &[u8; JOURNAL_ID_LEN],
) -> rusqlite::Result<Option<ChainHead>> {
    db.prepare_cached(
        "SELECT id, head_seq, head_hash FROM chains WHERE node = ?1 AND journal_id = ?2",
    )?
    .query_row(params![node, journal_id.as_slice()], |r| {
        Ok(ChainHead {
            id: r.get(0)?,
            head_seq: to_u64(r.get(1)?),
            head_hash: hash_of(&r.get::<_, Vec<u8>>(2)?),
        })
    })
    .optional()
}

impl Store {
    /// Opens (or creates) the store at `path`.
    pub fn open(path: &Path) -> rusqlite::Result<Self> {
        let db = Connection::open(path)?;
        // Larger pages: fewer WAL frames per commit, shallower trees. Only
        // takes effect when the file is created.
        db.pragma_update(None, "page_size", 16384)?;
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.pragma_update(None, "synchronous", "FULL")?;
        // 64 MiB of page cache: the index pages ingest touches stay in
        // memory; checkpoints every 64 MiB of WAL rather than every 4 MiB.
        db.pragma_update(None, "cache_size", -65536)?;
        db.pragma_update(None, "wal_autocheckpoint", 4096)?;
        db.busy_timeout(std::time::Duration::from_secs(5))?;
        schema::create_or_migrate(&db)?;
        Ok(Self { db })
    }

    /// The connection, for reads on the writer thread.
    #[must_use]
    pub fn conn(&self) -> &Connection {
        &self.db
    }

    /// Records the keys of the enrollment file (they override keys learned
    /// on first use).
    pub fn enroll_file(
        &mut self,
        nodes: &[(String, VerifyingKey)],
        now: u64,
    ) -> rusqlite::Result<()> {
        let tx = self.db.transaction()?;
        for (name, key) in nodes {
            let old: Option<(Vec<u8>, String)> = tx
                .query_row(
                    "SELECT public_key, source FROM nodes WHERE name = ?1",
                    [name],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            if old
                .as_ref()
                .is_some_and(|(k, s)| k == key.as_bytes() && s == "file")
            {
                continue;
            }
            if let Some((k, source)) = &old
                && k != key.as_bytes()
            {
                tracing::warn!(node = %name, old_source = %source, "the enrollment file replaces the node's stored key");
            }
            tx.execute(
                "INSERT INTO nodes(name, public_key, source, enrolled_unix_nano) VALUES (?1, ?2, 'file', ?3) \
                 ON CONFLICT(name) DO UPDATE SET public_key = excluded.public_key, source = 'file', \
                 enrolled_unix_nano = excluded.enrolled_unix_nano",
                params![name, key.as_bytes().as_slice(), to_i64(now)],
            )?;
        }
        tx.commit()
    }

    /// Checks a node's key against its enrollment; with `accept_new`, an
    /// unknown node is enrolled (trust on first use, with an alarm row).
    pub fn identify(
        &mut self,
        node: &str,
        key: &VerifyingKey,
        accept_new: bool,
        now: u64,
    ) -> Result<Enrollment, WriteError> {
        let known: Option<Vec<u8>> = self
            .db
            .query_row(
                "SELECT public_key FROM nodes WHERE name = ?1",
                [node],
                |r| r.get(0),
            )
            .optional()?;
        match known {
            Some(k) if k == key.as_bytes() => Ok(Enrollment::Known),
            Some(_) => Err(WriteError::Refused(refusal(
                Reason::WrongNodeKey,
                format!(
                    "node {node:?} is enrolled with another key; if the node's key was replaced \
                     deliberately, update the enrollment file (--nodes)"
                ),
            ))),
            None if accept_new => {
                let tx = self.db.transaction()?;
                tx.execute(
                    "INSERT INTO nodes(name, public_key, source, enrolled_unix_nano) VALUES (?1, ?2, 'tofu', ?3)",
                    params![node, key.as_bytes().as_slice(), to_i64(now)],
                )?;
                insert_alarm(
                    &tx,
                    now,
                    node,
                    None,
                    "node-enrolled",
                    &format!(
                        "enrolled on first use with key {}",
                        hex::encode(key.as_bytes())
                    ),
                )?;
                tx.commit()?;
                Ok(Enrollment::New)
            }
            None => Err(WriteError::Refused(refusal(
                Reason::UnknownNode,
                format!(
                    "node {node:?} is not enrolled; add its key to the enrollment file (--nodes) \
                     or run the collector with --accept-new-nodes"
                ),
            ))),
        }
    }

    /// Compares the head a node says this collector acknowledged (its
    /// signed note, already verified) with the stored chain `head`: when
    /// the store holds less, or another hash at that seq, it stores a
    /// `tail-cut` alarm (which verify reports) and says why.
    pub fn check_acked(
        &mut self,
        acked: &note::Head,
        head: Option<ChainHead>,
        now: u64,
    ) -> Result<Option<String>, WriteError> {
        let stored: Option<Vec<u8>> = match head {
            Some(h) => self
                .db
                .query_row(
                    "SELECT hash FROM records WHERE chain = ?1 AND seq = ?2",
                    params![h.id, to_i64(acked.seq)],
                    |r| r.get(0),
                )
                .optional()?,
            None => None,
        };
        let held = head.map_or(0, |h| h.head_seq);
        let why = match stored {
            Some(h) if h == acked.hash => return Ok(None),
            _ if acked.seq == 0 => return Ok(None),
            Some(_) => format!(
                "the node signed seq {} as acknowledged with another hash than the store holds \
                 there (rewritten after it was stored)",
                acked.seq
            ),
            None if acked.seq > held => format!(
                "the node had seq {} acknowledged (its signed head of {}); the store holds seq \
                 {held}: seq {}..={} were removed after they were stored",
                acked.seq,
                humantime::format_rfc3339_seconds(
                    std::time::UNIX_EPOCH + std::time::Duration::from_nanos(acked.time_unix_nano)
                ),
                held + 1,
                acked.seq
            ),
            None => format!(
                "the node had seq {} acknowledged; the store does not hold it (removed)",
                acked.seq
            ),
        };
        insert_alarm(
            &self.db,
            now,
            &acked.node,
            head.map(|h| h.id),
            "tail-cut",
            &why,
        )?;
        Ok(Some(why))
    }

    /// Stores verified batches in one transaction: a refused batch stores
    /// nothing and the others stand. Every refusal is decided by
    /// [`check`], which only reads, before the batch writes anything, so
    /// no savepoint is needed (one per batch copied every page it touched
    /// a second time). `continues` says a batch follows an earlier one of
    /// the same session, which must be stored (so a batch after a refused
    /// one is refused, never taken for a gap).
    pub fn commit_group(
        &mut self,
        batches: &[(&CheckedBatch, bool)],
        now: u64,
    ) -> rusqlite::Result<Vec<Result<Committed, Refusal>>> {
        let tx = self.db.transaction()?;
        let mut out = Vec::with_capacity(batches.len());
        let mut processes = Processes::default();
        for (batch, continues) in batches {
            match check(&tx, batch, *continues) {
                Ok(plan) => out.push(Ok(write(&tx, &mut processes, batch, plan, now)?)),
                Err(WriteError::Refused(r)) => out.push(Err(r)),
                Err(WriteError::Storage(e)) => return Err(e),
            }
        }
        tx.commit()?;
        Ok(out)
    }

    /// Signs and stores a checkpoint for each chain whose head moved since
    /// its last one; returns how many.
    pub fn checkpoint(&mut self, key: &SecretKey, now: u64) -> rusqlite::Result<usize> {
        let tx = self.db.transaction()?;
        let due: Vec<Due> = {
            let mut stmt = tx.prepare(
                "SELECT c.id, c.node, c.journal_id, c.head_seq, c.head_hash FROM chains c \
                 WHERE c.head_seq > COALESCE((SELECT MAX(seq) FROM checkpoints k WHERE k.chain = c.id), 0)",
            )?;
            stmt.query_map([], |r| {
                Ok(Due {
                    chain: r.get(0)?,
                    node: r.get(1)?,
                    journal_id: r.get(2)?,
                    seq: r.get(3)?,
                    head_hash: r.get(4)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?
        };
        let key_id = key.key_id().to_string();
        for Due {
            chain,
            node,
            journal_id,
            seq,
            head_hash,
        } in &due
        {
            let jid: [u8; JOURNAL_ID_LEN] = journal_id.as_slice().try_into().unwrap_or_default();
            // The chain's checkpoint log: the next index, linked to the
            // text of the one before.
            let last: Option<(i64, String)> = tx
                .query_row(
                    "SELECT log_index, note FROM checkpoints WHERE chain = ?1 AND log_index IS NOT NULL \
                     ORDER BY log_index DESC LIMIT 1",
                    [chain],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            let link = match &last {
                Some((index, note)) => note::LogLink {
                    index: to_u64(*index) + 1,
                    prev: note::peek(note).map_or([0; 32], |h| note::text_hash(&h.text())),
                },
                None => note::LogLink {
                    index: 1,
                    prev: [0; 32],
                },
            };
            let head = note::Head {
                node: node.clone(),
                journal_id: jid,
                seq: to_u64(*seq),
                hash: hash_of(head_hash),
                time_unix_nano: now,
                log: Some(link),
            };
            let signed = head.sign(key);
            let sig = key.sign_bytes(head.text().as_bytes());
            tx.execute(
                "INSERT INTO checkpoints(chain, node, journal_id, seq, head_hash, time_unix_nano, key_id, \
                 signature, log_index, note) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                params![
                    chain,
                    node,
                    journal_id,
                    seq,
                    head_hash,
                    to_i64(now),
                    key_id,
                    sig.as_slice(),
                    to_i64(link.index),
                    signed
                ],
            )?;
        }
        tx.commit()?;
        Ok(due.len())
    }

    /// Stores audit rows of queries in one transaction.
    pub fn record_queries(&mut self, rows: &[QueryRow]) -> rusqlite::Result<()> {
        let tx = self.db.transaction()?;
        audit_log::insert(&tx, rows)?;
        tx.commit()
    }

    pub fn set_meta(&mut self, key: &str, value: i64) -> rusqlite::Result<()> {
        self.db.execute(
            "INSERT INTO meta(key, value) VALUES (?1, ?2) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }
}

/// A number kept in `meta`.
pub fn meta_i64(db: &Connection, key: &str) -> rusqlite::Result<Option<i64>> {
    db.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()
}

/// The `processes` rows one transaction looked up or added, by exec and
/// parent id. It lives no longer than the transaction, so it never names
/// a row that a rollback removed.
#[derive(Debug, Default)]
struct Processes {
    ids: HashMap<String, i64>,
    /// The key being looked up, reused: both ids, each with its presence
    /// and the first with its length (ids are node-supplied strings).
    key: String,
}

impl Processes {
    /// The row of (`exec_id`, `parent_exec_id`), added if new; none when
    /// the record names neither.
    fn id(
        &mut self,
        tx: &Connection,
        exec_id: Option<&str>,
        parent_exec_id: Option<&str>,
    ) -> rusqlite::Result<Option<i64>> {
        use std::fmt::Write as _;
        if exec_id.is_none() && parent_exec_id.is_none() {
            return Ok(None);
        }
        self.key.clear();
        for id in [exec_id, parent_exec_id] {
            match id {
                Some(s) => {
                    let _ = write!(self.key, "{}:{s}", s.len());
                }
                None => self.key.push('-'),
            }
        }
        if let Some(id) = self.ids.get(self.key.as_str()) {
            return Ok(Some(*id));
        }
        let found: Option<i64> = tx
            .prepare_cached(
                "SELECT id FROM processes WHERE exec_id IS ?1 AND parent_exec_id IS ?2",
            )?
            .query_row(params![exec_id, parent_exec_id], |r| r.get(0))
            .optional()?;
        let id = match found {
            Some(id) => id,
            None => {
                tx.prepare_cached(
                    "INSERT INTO processes(exec_id, parent_exec_id) VALUES (?1, ?2)",
                )?
                .execute(params![exec_id, parent_exec_id])?;
                tx.last_insert_rowid()
            }
        };
        self.ids.insert(self.key.clone(), id);
        Ok(Some(id))
    }
}

/// What storing a batch will do, decided before anything is written.
struct Plan {
    /// The stored chain, if any.
    head: Option<ChainHead>,
    /// Entries already stored, identical: skipped.
    skip: usize,
    committed: Committed,
}

/// Checks `batch` against what is stored; every refusal is decided here,
/// and nothing is written.
fn check(tx: &Connection, batch: &CheckedBatch, continues: bool) -> Result<Plan, WriteError> {
    let refused = |code, why: String| WriteError::Refused(refusal(code, why));
    let head = chain_head(tx, &batch.node, &batch.journal_id)?;
    let (head_seq, head_hash) = head.map_or((0, GENESIS), |h| (h.head_seq, h.head_hash));
    let mut committed = Committed {
        last_seq: batch.last_seq(),
        ..Committed::default()
    };
    // Entries the collector already has: identical ones are skipped.
    let mut skip = 0;
    if let Some(h) = head {
        let mut stored =
            tx.prepare_cached("SELECT hash FROM records WHERE chain = ?1 AND seq = ?2")?;
        while let Some(e) = batch.entries.get(skip).filter(|e| e.seq <= head_seq) {
            let have: Option<Vec<u8>> = stored
                .query_row(params![h.id, to_i64(e.seq)], |r| r.get(0))
                .optional()?;
            match have {
                Some(hash) if hash == e.hash => committed.skipped += 1,
                Some(_) => {
                    return Err(refused(
                        Reason::Altered,
                        format!(
                            "seq {} differs from the entry the collector stored for it",
                            e.seq
                        ),
                    ));
                }
                None => {
                    return Err(refused(
                        Reason::BrokenChain,
                        format!(
                            "seq {} is inside a recorded gap before the stored head {head_seq}; \
                             a chain is never rewritten",
                            e.seq
                        ),
                    ));
                }
            }
            skip += 1;
        }
    }
    if let Some(first) = batch.entries.get(skip) {
        let expected = head_seq + 1;
        if first.seq == expected {
            if first.prev_hash != head_hash {
                return Err(refused(
                    Reason::BrokenChain,
                    format!(
                        "seq {}: prev_hash is not the hash of the stored seq {head_seq}",
                        first.seq
                    ),
                ));
            }
        } else if continues {
            return Err(refused(
                Reason::BrokenChain,
                format!(
                    "the batch starts at seq {} but the collector holds up to seq {head_seq}: \
                     an earlier batch of this session was not stored",
                    first.seq
                ),
            ));
        } else {
            committed.gap = Some((expected, first.seq - 1));
        }
    }
    Ok(Plan {
        head,
        skip,
        committed,
    })
}

/// Stores what [`check`] accepted: the chain (new ones with an alarm
/// when the node had another), the gap, the records, the head.
fn write(
    tx: &Connection,
    processes: &mut Processes,
    batch: &CheckedBatch,
    plan: Plan,
    now: u64,
) -> rusqlite::Result<Committed> {
    let Plan {
        head,
        skip,
        mut committed,
    } = plan;
    let new = &batch.entries[skip..];
    if new.is_empty() {
        return Ok(committed);
    }
    let node = batch.node.as_str();
    let chain = match head {
        Some(h) => h.id,
        None => {
            let others: i64 =
                tx.query_row("SELECT COUNT(*) FROM chains WHERE node = ?1", [node], |r| {
                    r.get(0)
                })?;
            tx.execute(
                "INSERT INTO chains(node, journal_id, head_seq, head_hash, created_unix_nano) \
                 VALUES (?1, ?2, 0, ?3, ?4)",
                params![
                    node,
                    batch.journal_id.as_slice(),
                    GENESIS.as_slice(),
                    to_i64(now)
                ],
            )?;
            let id = tx.last_insert_rowid();
            if others > 0 {
                committed.journal_reset = true;
                insert_alarm(
                    tx,
                    now,
                    node,
                    Some(id),
                    "journal-reset",
                    &format!(
                        "node started a new journal {} (it had {others} other chain(s)); \
                         the node's journal was recreated",
                        hex::encode(batch.journal_id)
                    ),
                )?;
            }
            id
        }
    };
    if let Some((from, to)) = committed.gap {
        tx.prepare_cached(
            "INSERT INTO gaps(chain, node, from_seq, to_seq, detected_unix_nano) VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![chain, node, to_i64(from), to_i64(to), to_i64(now)])?;
        insert_alarm(
            tx,
            now,
            node,
            Some(chain),
            "gap",
            &format!("seq {from}..={to} never reached the collector: the node no longer had them"),
        )?;
    }
    let mut insert = tx.prepare_cached(
        "INSERT INTO records(chain, node, seq, hash, prev_hash, time_unix_nano, kind, process, \
         pid, workload, hook, verdict, reason, artifact_id, object, record) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
    )?;
    for e in new {
        let c = batch.columns(e);
        let process = processes.id(tx, c.exec_id, c.parent_exec_id)?;
        insert.execute(params![
            chain,
            node,
            to_i64(e.seq),
            e.hash.as_slice(),
            e.prev_hash.as_slice(),
            to_i64(c.time_unix_nano),
            c.kind,
            process,
            c.pid,
            c.workload,
            c.hook,
            c.verdict,
            c.reason,
            c.artifact_id,
            c.object,
            e.record,
        ])?;
        committed.newest_unix_nano = committed.newest_unix_nano.max(c.time_unix_nano);
        committed.stored += 1;
    }
    let last = &new[new.len() - 1];
    tx.prepare_cached("UPDATE chains SET head_seq = ?2, head_hash = ?3 WHERE id = ?1")?
        .execute(params![chain, to_i64(last.seq), last.hash.as_slice()])?;
    Ok(committed)
}

mod schema;
#[cfg(test)]
mod tests;
