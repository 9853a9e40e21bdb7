-- The collector store as written before schema version 2 (issue 17):
-- every record also kept as JSON, exec and parent ids indexed per record.
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
    json TEXT NOT NULL,
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
