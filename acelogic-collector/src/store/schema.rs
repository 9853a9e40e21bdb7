//! The store's tables, and bringing a store written by an older collector
//! up to them. The schema itself is described in [`super`].
//!
//! `PRAGMA user_version` holds the schema version. Version 0 is a store
//! from before issue 17 (or a new file). Its `records` rows carried their
//! exec and parent ids, each indexed per record, and a `json` rendering
//! of the record: the migration moves the ids into `processes` and
//! rebuilds `records` without them, in one transaction, when the
//! collector opens the store. A store of a newer version than this
//! collector writes is refused, not written to.

use rusqlite::Connection;

/// The schema version this collector writes.
pub(super) const VERSION: i64 = 2;

/// Every table but `records` and `processes`.
const TABLES: &str = "
CREATE TABLE IF NOT EXISTS nodes (
    name TEXT PRIMARY KEY,
    public_key BLOB NOT NULL,
    source TEXT NOT NULL,
    enrolled_unix_nano INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS chains (
    id INTEGER PRIMARY KEY,
    node TEXT NOT NULL,
    journal_id BLOB NOT NULL,
    head_seq INTEGER NOT NULL,
    head_hash BLOB NOT NULL,
    created_unix_nano INTEGER NOT NULL,
    UNIQUE (node, journal_id)
);
CREATE TABLE IF NOT EXISTS gaps (
    id INTEGER PRIMARY KEY,
    chain INTEGER NOT NULL REFERENCES chains(id),
    node TEXT NOT NULL,
    from_seq INTEGER NOT NULL,
    to_seq INTEGER NOT NULL,
    detected_unix_nano INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS alarms (
    id INTEGER PRIMARY KEY,
    time_unix_nano INTEGER NOT NULL,
    node TEXT NOT NULL,
    chain INTEGER,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS checkpoints (
    id INTEGER PRIMARY KEY,
    chain INTEGER NOT NULL REFERENCES chains(id),
    node TEXT NOT NULL,
    journal_id BLOB NOT NULL,
    seq INTEGER NOT NULL,
    head_hash BLOB NOT NULL,
    time_unix_nano INTEGER NOT NULL,
    key_id TEXT NOT NULL,
    signature BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS checkpoints_chain ON checkpoints(chain, seq);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value);
CREATE TABLE IF NOT EXISTS queries (
    id INTEGER PRIMARY KEY,
    time_unix_nano INTEGER NOT NULL,
    who TEXT NOT NULL,
    role TEXT NOT NULL,
    method TEXT NOT NULL,
    args TEXT NOT NULL,
    outcome TEXT NOT NULL,
    peer TEXT,
    cert_sha256 TEXT
);
";

/// One row per (exec id, parent exec id) pair that records carry: a
/// process is looked up and linked to its children here, once, instead
/// of through two indexes on every record.
const PROCESSES: &str = "
CREATE TABLE IF NOT EXISTS processes (
    id INTEGER PRIMARY KEY,
    exec_id TEXT,
    parent_exec_id TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS processes_exec ON processes(exec_id, parent_exec_id);
CREATE INDEX IF NOT EXISTS processes_parent ON processes(parent_exec_id)
    WHERE parent_exec_id IS NOT NULL;
";

/// The `records` table, named `{name}`.
fn records_table(name: &str) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {name} (
    id INTEGER PRIMARY KEY,
    chain INTEGER NOT NULL REFERENCES chains(id),
    node TEXT NOT NULL,
    seq INTEGER NOT NULL,
    hash BLOB NOT NULL,
    prev_hash BLOB NOT NULL,
    time_unix_nano INTEGER NOT NULL,
    kind TEXT NOT NULL,
    process INTEGER REFERENCES processes(id),
    pid INTEGER,
    workload TEXT,
    hook TEXT,
    verdict TEXT,
    reason TEXT,
    artifact_id TEXT,
    object TEXT,
    record BLOB NOT NULL,
    UNIQUE (chain, seq)
);"
    )
}

const RECORDS_INDEXES: &str = "
CREATE INDEX IF NOT EXISTS records_process ON records(process) WHERE process IS NOT NULL;
CREATE INDEX IF NOT EXISTS records_artifact ON records(artifact_id)
    WHERE artifact_id IS NOT NULL;
-- The authority's records of one request (its id is the object); only
-- the authority's chain has any.
CREATE INDEX IF NOT EXISTS records_request ON records(object) WHERE kind = 'issuance';
CREATE INDEX IF NOT EXISTS records_denials ON records(workload, time_unix_nano)
    WHERE verdict = 'deny';
";

fn has_column(db: &Connection, table: &str, column: &str) -> rusqlite::Result<bool> {
    db.query_row(
        "SELECT COUNT(*) FROM pragma_table_info(?1) WHERE name = ?2",
        [table, column],
        |r| r.get::<_, i64>(0),
    )
    .map(|n| n > 0)
}

/// Creates the tables of a new store, or migrates an older one, in one
/// transaction; refuses a store of a newer schema.
pub(super) fn create_or_migrate(db: &Connection) -> rusqlite::Result<()> {
    let version: i64 = db.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > VERSION {
        return Err(rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ERROR),
            Some(format!(
                "the store has schema version {version}, newer than this collector's \
                 ({VERSION}): it was written by a newer collector; run that version"
            )),
        ));
    }
    let tx = db.unchecked_transaction()?;
    tx.execute_batch(TABLES)?;
    tx.execute_batch(PROCESSES)?;
    if has_column(&tx, "records", "exec_id")? {
        rebuild_records(&tx)?;
    }
    tx.execute_batch(&records_table("records"))?;
    tx.execute_batch(RECORDS_INDEXES)?;
    // Checkpoints gained their log index and signed note (rows signed
    // before keep NULL there and are verified the old way).
    if !has_column(&tx, "checkpoints", "note")? {
        tx.execute_batch(
            "ALTER TABLE checkpoints ADD COLUMN log_index INTEGER;
             ALTER TABLE checkpoints ADD COLUMN note TEXT;",
        )?;
    }
    tx.execute_batch(
        "CREATE UNIQUE INDEX IF NOT EXISTS checkpoints_log ON checkpoints(chain, log_index)
             WHERE log_index IS NOT NULL;",
    )?;
    tx.pragma_update(None, "user_version", VERSION)?;
    tx.commit()
}

/// Migrates `records` from before version 2: one `processes` row per
/// (exec id, parent exec id) pair, numbered in the order the pairs were
/// first stored, and `records` copied with the row's number instead of
/// the ids and without the JSON. Record ids (the OTLP cursor), seqs and
/// bytes are kept.
fn rebuild_records(tx: &Connection) -> rusqlite::Result<()> {
    let rows: i64 = tx.query_row("SELECT COUNT(*) FROM records", [], |r| r.get(0))?;
    tracing::info!(
        records = rows,
        "migrating the store to schema version {VERSION}: exec ids move to processes, \
         the JSON column goes (VACUUM afterwards returns the space)"
    );
    tx.execute_batch(&format!(
        "INSERT INTO processes(exec_id, parent_exec_id)
             SELECT exec_id, parent_exec_id FROM records
              WHERE exec_id IS NOT NULL OR parent_exec_id IS NOT NULL
              GROUP BY exec_id, parent_exec_id ORDER BY MIN(id);
         {}
         INSERT INTO records_v2(id, chain, node, seq, hash, prev_hash, time_unix_nano, kind,
                                process, pid, workload, hook, verdict, reason, artifact_id,
                                object, record)
             SELECT r.id, r.chain, r.node, r.seq, r.hash, r.prev_hash, r.time_unix_nano, r.kind,
                    p.id, r.pid, r.workload, r.hook, r.verdict, r.reason, r.artifact_id,
                    r.object, r.record
               FROM records r LEFT JOIN processes p
                 ON p.exec_id IS r.exec_id AND p.parent_exec_id IS r.parent_exec_id
                AND (r.exec_id IS NOT NULL OR r.parent_exec_id IS NOT NULL)
              ORDER BY r.id;
         DROP TABLE records;
         ALTER TABLE records_v2 RENAME TO records;",
        records_table("records_v2")
    ))
}
