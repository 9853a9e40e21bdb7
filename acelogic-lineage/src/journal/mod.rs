//! The node journal: an append-only, hash-chained, durable sequence of
//! records, kept until the collector acknowledged them.
//!
//! Stored in SQLite (WAL, `synchronous=FULL`: a commit is on disk when
//! `append` returns). One transaction per batch keeps the cost of the
//! fsync off each record. Schema (stable; `sqlite3 journal.db` works):
//!
//! ```sql
//! meta(key TEXT PRIMARY KEY, value BLOB)   -- node, journal_id, acked,
//!                                          -- ring cursor, loss baselines
//! entries(seq INTEGER PRIMARY KEY,         -- 1, 2, 3, ... no gaps
//!         prev_hash BLOB, hash BLOB,       -- see chain::entry_hash
//!         record BLOB)                     -- an encoded pb::Record
//! ```
//!
//! Entries at or below the acknowledged seq are deleted, except the head,
//! which always stays so the chain continues across restarts. The cap
//! bounds the bytes of records not yet acknowledged: an append that would
//! pass it fails with [`JournalError::Full`] and stores nothing. Callers
//! turn that into denials (the kernel pump stops draining the ring buffer,
//! so the kernel denies governed actions whose record has no room), never
//! into dropped records.

use std::{
    ops::RangeInclusive,
    path::Path,
    sync::{Arc, Mutex, MutexGuard},
};

use prost::Message as _;
use rusqlite::{Connection, OptionalExtension as _, params};

use super::{
    chain::{self, GENESIS, Hash, JOURNAL_ID_LEN},
    pb,
};

/// Why the journal refused.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal storage: {0}")]
    Storage(#[from] rusqlite::Error),
    #[error(
        "journal full: {pending} bytes not yet acknowledged by the collector, cap {cap}; \
         governed actions are denied until the collector catches up"
    )]
    Full { pending: u64, cap: u64 },
    #[error("journal belongs to node {found:?}, not {expected:?}; use its own state directory")]
    WrongNode { found: String, expected: String },
    #[error("journal corrupt: {0}")]
    Corrupt(String),
    #[error("acknowledgement of seq {seq} is beyond the head {head}")]
    AckBeyondHead { seq: u64, head: u64 },
}

/// Where the kernel pump stopped reading the ring buffer, committed with
/// the entries read before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RingCursor {
    /// Kernel id of the ring buffer map (a new map starts at 0 again).
    pub ring_id: u32,
    /// Consumer position after the last journaled record.
    pub pos: u64,
}

/// The chain a journal writes: its node and its random id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub node: String,
    pub journal_id: [u8; JOURNAL_ID_LEN],
}

/// The open journal.
#[derive(Debug)]
pub struct Journal {
    db: Connection,
    id: Identity,
    head_seq: u64,
    head_hash: Hash,
    acked: u64,
    pending_bytes: u64,
    cap_bytes: u64,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS entries (
    seq INTEGER PRIMARY KEY,
    prev_hash BLOB NOT NULL,
    hash BLOB NOT NULL,
    record BLOB NOT NULL
);
";

fn to_i64(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

fn to_u64(v: i64) -> u64 {
    u64::try_from(v).unwrap_or(0)
}

fn hash_of(bytes: &[u8], what: &str) -> Result<Hash, JournalError> {
    bytes
        .try_into()
        .map_err(|_| JournalError::Corrupt(format!("{what} is {} bytes, not 32", bytes.len())))
}

impl Journal {
    /// Opens (or creates) the journal at `path` for `node`. A journal made
    /// for another node is refused.
    pub fn open(path: &Path, node: &str, cap_bytes: u64) -> Result<Self, JournalError> {
        let db = Connection::open(path)?;
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.pragma_update(None, "synchronous", "FULL")?;
        db.busy_timeout(std::time::Duration::from_secs(5))?;
        db.execute_batch(SCHEMA)?;
        let mut journal = Self {
            db,
            id: Identity {
                node: node.to_owned(),
                journal_id: [0; JOURNAL_ID_LEN],
            },
            head_seq: 0,
            head_hash: GENESIS,
            acked: 0,
            pending_bytes: 0,
            cap_bytes,
        };
        match journal.meta_blob("node")? {
            Some(found) => {
                let found = String::from_utf8_lossy(&found).into_owned();
                if found != node {
                    return Err(JournalError::WrongNode {
                        found,
                        expected: node.to_owned(),
                    });
                }
                let id = journal
                    .meta_blob("journal_id")?
                    .ok_or_else(|| JournalError::Corrupt("no journal_id".into()))?;
                journal.id.journal_id = id.as_slice().try_into().map_err(|_| {
                    JournalError::Corrupt(format!("journal_id is {} bytes", id.len()))
                })?;
            }
            None => {
                getrandom::fill(&mut journal.id.journal_id)
                    .map_err(|e| JournalError::Corrupt(format!("no randomness: {e}")))?;
                let tx = journal.db.transaction()?;
                tx.execute(
                    "INSERT INTO meta(key, value) VALUES ('node', ?1), ('journal_id', ?2)",
                    params![node.as_bytes(), journal.id.journal_id.as_slice()],
                )?;
                tx.commit()?;
            }
        }
        let head: Option<(i64, Vec<u8>)> = journal
            .db
            .query_row(
                "SELECT seq, hash FROM entries ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        if let Some((seq, hash)) = head {
            journal.head_seq = to_u64(seq);
            journal.head_hash = hash_of(&hash, "head hash")?;
        }
        journal.acked = journal.meta_u64("acked")?.unwrap_or(0);
        let pending: i64 = journal.db.query_row(
            "SELECT COALESCE(SUM(LENGTH(record)), 0) FROM entries WHERE seq > ?1",
            [to_i64(journal.acked)],
            |r| r.get(0),
        )?;
        journal.pending_bytes = to_u64(pending);
        Ok(journal)
    }

    #[must_use]
    pub fn identity(&self) -> &Identity {
        &self.id
    }

    /// Seq and hash of the last entry (0 and the genesis hash when empty).
    #[must_use]
    pub fn head(&self) -> (u64, Hash) {
        (self.head_seq, self.head_hash)
    }

    /// Highest seq the collector acknowledged.
    #[must_use]
    pub fn acked(&self) -> u64 {
        self.acked
    }

    /// Bytes of records not yet acknowledged.
    #[must_use]
    pub fn pending_bytes(&self) -> u64 {
        self.pending_bytes
    }

    #[must_use]
    pub fn cap_bytes(&self) -> u64 {
        self.cap_bytes
    }

    /// Appends `records` as one durable batch; returns their seqs. All or
    /// nothing: on error nothing was stored.
    pub fn append(
        &mut self,
        records: &[pb::Record],
    ) -> Result<Option<RangeInclusive<u64>>, JournalError> {
        self.append_with_cursor(records, None)
    }

    /// As [`Self::append`], and stores `cursor` in the same transaction,
    /// so a restart knows exactly which ring-buffer records are journaled.
    pub fn append_with_cursor(
        &mut self,
        records: &[pb::Record],
        cursor: Option<RingCursor>,
    ) -> Result<Option<RangeInclusive<u64>>, JournalError> {
        self.append_with(records, cursor, &[])
    }

    /// As [`Self::append_with_cursor`], and sets `meta` numbers in the same
    /// transaction (loss-counter baselines move with their loss records).
    pub fn append_with(
        &mut self,
        records: &[pb::Record],
        cursor: Option<RingCursor>,
        meta: &[(&str, u64)],
    ) -> Result<Option<RangeInclusive<u64>>, JournalError> {
        let encoded: Vec<Vec<u8>> = records.iter().map(prost::Message::encode_to_vec).collect();
        let bytes: u64 = encoded.iter().map(|e| e.len() as u64).sum();
        if !encoded.is_empty() && self.pending_bytes.saturating_add(bytes) > self.cap_bytes {
            return Err(JournalError::Full {
                pending: self.pending_bytes,
                cap: self.cap_bytes,
            });
        }
        let (mut seq, mut prev) = (self.head_seq, self.head_hash);
        let tx = self.db.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO entries(seq, prev_hash, hash, record) VALUES (?1, ?2, ?3, ?4)",
            )?;
            for record in &encoded {
                seq += 1;
                let hash =
                    chain::entry_hash(&self.id.node, &self.id.journal_id, seq, &prev, record);
                insert.execute(params![
                    to_i64(seq),
                    prev.as_slice(),
                    hash.as_slice(),
                    record
                ])?;
                prev = hash;
            }
        }
        {
            let mut set = tx.prepare_cached(
                "INSERT INTO meta(key, value) VALUES (?1, ?2) \
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            )?;
            if let Some(c) = cursor {
                set.execute(params!["ring_id", i64::from(c.ring_id)])?;
                set.execute(params!["ring_pos", to_i64(c.pos)])?;
            }
            for (key, value) in meta {
                set.execute(params![key, to_i64(*value)])?;
            }
        }
        tx.commit()?;
        if encoded.is_empty() {
            return Ok(None);
        }
        let first = self.head_seq + 1;
        self.head_seq = seq;
        self.head_hash = prev;
        self.pending_bytes += bytes;
        Ok(Some(first..=seq))
    }

    /// The ring cursor stored with the last kernel batch.
    pub fn ring_cursor(&self) -> Result<Option<RingCursor>, JournalError> {
        let (Some(id), Some(pos)) = (self.meta_u64("ring_id")?, self.meta_u64("ring_pos")?) else {
            return Ok(None);
        };
        Ok(Some(RingCursor {
            ring_id: u32::try_from(id).map_err(|_| JournalError::Corrupt("ring_id".into()))?,
            pos,
        }))
    }

    /// Entries with seq greater than `after`, oldest first, at most
    /// `max_entries` and about `max_bytes` (always at least one).
    pub fn read_after(
        &self,
        after: u64,
        max_entries: usize,
        max_bytes: usize,
    ) -> Result<Vec<pb::Entry>, JournalError> {
        let mut stmt = self.db.prepare_cached(
            "SELECT seq, prev_hash, hash, record FROM entries WHERE seq > ?1 ORDER BY seq LIMIT ?2",
        )?;
        let limit = i64::try_from(max_entries).unwrap_or(i64::MAX);
        let mut rows = stmt.query(params![to_i64(after), limit])?;
        let mut out = Vec::new();
        let mut size = 0usize;
        while let Some(row) = rows.next()? {
            let entry = pb::Entry {
                seq: to_u64(row.get(0)?),
                prev_hash: row.get(1)?,
                hash: row.get(2)?,
                record: row.get(3)?,
            };
            size += entry.record.len() + 80;
            out.push(entry);
            if size >= max_bytes {
                break;
            }
        }
        Ok(out)
    }

    /// Lowest seq still stored (0 when empty).
    pub fn first_stored(&self) -> Result<u64, JournalError> {
        let first: Option<i64> = self
            .db
            .query_row("SELECT MIN(seq) FROM entries", [], |r| r.get(0))?;
        Ok(first.map_or(0, to_u64))
    }

    /// The collector stored everything up to `seq`: remember it and delete
    /// those entries (the head stays). Acknowledging less than before is a
    /// no-op.
    pub fn acknowledge(&mut self, seq: u64) -> Result<(), JournalError> {
        if seq > self.head_seq {
            return Err(JournalError::AckBeyondHead {
                seq,
                head: self.head_seq,
            });
        }
        if seq <= self.acked {
            return Ok(());
        }
        let tx = self.db.transaction()?;
        let freed: i64 = tx.query_row(
            "SELECT COALESCE(SUM(LENGTH(record)), 0) FROM entries WHERE seq > ?1 AND seq <= ?2",
            params![to_i64(self.acked), to_i64(seq)],
            |r| r.get(0),
        )?;
        tx.execute(
            "DELETE FROM entries WHERE seq <= ?1 AND seq < ?2",
            params![to_i64(seq), to_i64(self.head_seq)],
        )?;
        tx.execute(
            "INSERT INTO meta(key, value) VALUES ('acked', ?1) \
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [to_i64(seq)],
        )?;
        tx.commit()?;
        self.acked = seq;
        self.pending_bytes = self.pending_bytes.saturating_sub(to_u64(freed));
        Ok(())
    }

    /// A number kept beside the entries (loss-counter baselines).
    pub fn meta_u64(&self, key: &str) -> Result<Option<u64>, JournalError> {
        let v: Option<i64> = self
            .db
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?;
        Ok(v.map(to_u64))
    }

    pub fn set_meta_u64(&mut self, key: &str, value: u64) -> Result<(), JournalError> {
        self.db.execute(
            "INSERT INTO meta(key, value) VALUES (?1, ?2) \
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            params![key, to_i64(value)],
        )?;
        Ok(())
    }

    fn meta_blob(&self, key: &str) -> Result<Option<Vec<u8>>, JournalError> {
        Ok(self
            .db
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?)
    }

    /// Recomputes the chain over the stored entries; the first broken seq
    /// and why. For `acelogicctl` and tests; the collector does the same on
    /// ingest.
    pub fn verify(&self) -> Result<(), JournalError> {
        let mut stmt = self
            .db
            .prepare("SELECT seq, prev_hash, hash, record FROM entries ORDER BY seq")?;
        let mut rows = stmt.query([])?;
        let mut expected: Option<(u64, Hash)> = None;
        while let Some(row) = rows.next()? {
            let seq = to_u64(row.get(0)?);
            let prev = hash_of(&row.get::<_, Vec<u8>>(1)?, "prev_hash")?;
            let hash = hash_of(&row.get::<_, Vec<u8>>(2)?, "hash")?;
            let record: Vec<u8> = row.get(3)?;
            if let Some((s, h)) = expected
                && (seq != s + 1 || prev != h)
            {
                return Err(JournalError::Corrupt(format!(
                    "seq {seq} does not follow seq {s}"
                )));
            }
            if seq == 1 && prev != GENESIS {
                return Err(JournalError::Corrupt("seq 1 is not the genesis".into()));
            }
            let again = chain::entry_hash(&self.id.node, &self.id.journal_id, seq, &prev, &record);
            if again != hash {
                return Err(JournalError::Corrupt(format!("seq {seq}: hash mismatch")));
            }
            if pb::Record::decode(record.as_slice()).is_err() {
                return Err(JournalError::Corrupt(format!(
                    "seq {seq}: undecodable record"
                )));
            }
            expected = Some((seq, hash));
        }
        Ok(())
    }
}

/// The journal shared by the daemon's writers (kernel pump, authorization
/// records) and the shipper, with a notification of each new head.
#[derive(Debug)]
pub struct Shared {
    journal: Mutex<Journal>,
    head: tokio::sync::watch::Sender<u64>,
}

impl Shared {
    #[must_use]
    pub fn new(journal: Journal) -> Arc<Self> {
        let (head, _) = tokio::sync::watch::channel(journal.head().0);
        Arc::new(Self {
            journal: Mutex::new(journal),
            head,
        })
    }

    /// The journal, locked. A poisoned lock is taken over: the journal's
    /// state is in SQLite, not in half-updated memory.
    pub fn lock(&self) -> MutexGuard<'_, Journal> {
        self.journal
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Appends and wakes the shipper.
    pub fn append_with(
        &self,
        records: &[pb::Record],
        cursor: Option<RingCursor>,
        meta: &[(&str, u64)],
    ) -> Result<Option<RangeInclusive<u64>>, JournalError> {
        let range = self.lock().append_with(records, cursor, meta)?;
        if let Some(r) = &range {
            self.head.send_replace(*r.end());
        }
        Ok(range)
    }

    pub fn append(
        &self,
        records: &[pb::Record],
    ) -> Result<Option<RangeInclusive<u64>>, JournalError> {
        self.append_with(records, None, &[])
    }

    /// Changes whenever the head seq moves.
    #[must_use]
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.head.subscribe()
    }
}

#[cfg(test)]
mod tests;
