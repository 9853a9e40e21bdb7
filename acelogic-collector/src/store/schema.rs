//! The store's tables, and bringing a store written by an older collector
//! up to them. The schema itself is described in [`super`].
//!
//! `PRAGMA user_version` holds the schema version. Version 0 is a store
//! from before issue 17 (or a new file): its `records` rows carried a
//! `json` column beside the record bytes, which is dropped in place. A
//! store of a newer version than this collector writes is refused, not
//! written to.

use rusqlite::Connection;

/// The schema version this collector writes.
pub(super) const VERSION: i64 = 2;

const SCHEMA: &str = "
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
CREATE TABLE IF NOT EXISTS records (
    id INTEGER PRIMARY KEY,
    chain INTEGER NOT NULL REFERENCES chains(id),
    node TEXT NOT NULL,
    seq INTEGER NOT NULL,
    hash BLOB NOT NULL,
    prev_hash BLOB NOT NULL,
    time_unix_nano INTEGER NOT NULL,
    kind TEXT NOT NULL,
    exec_id TEXT,
    parent_exec_id TEXT,
    pid INTEGER,
    workload TEXT,
    hook TEXT,
    verdict TEXT,
    reason TEXT,
    artifact_id TEXT,
    object TEXT,
    record BLOB NOT NULL,
    UNIQUE (chain, seq)
);
CREATE INDEX IF NOT EXISTS records_exec ON records(exec_id) WHERE exec_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS records_parent ON records(parent_exec_id)
    WHERE parent_exec_id IS NOT NULL;
CREATE INDEX IF NOT EXISTS records_artifact ON records(artifact_id)
    WHERE artifact_id IS NOT NULL;
-- The authority's records of one request (its id is the object); only
-- the authority's chain has any.
CREATE INDEX IF NOT EXISTS records_request ON records(object) WHERE kind = 'issuance';
CREATE INDEX IF NOT EXISTS records_denials ON records(workload, time_unix_nano)
    WHERE verdict = 'deny';
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
    // Before version 2 every record was also stored as JSON (418 of its
    // 919 bytes per record); it is rendered from the record when needed.
    if has_column(&tx, "records", "json")? {
        tracing::info!("migrating the store to schema version {VERSION}: dropping records.json");
        tx.execute_batch("ALTER TABLE records DROP COLUMN json;")?;
    }
    tx.execute_batch(SCHEMA)?;
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
