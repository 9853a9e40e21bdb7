use std::time::Duration;

use prost::Message as _;

use super::*;
use crate::{
    audit, pb,
    verify::{self, Limits},
};
use acelogic_domain::artifact::Role;
use acelogic_lineage::chain;

/// A fresh directory and the store path in it. The directory is removed
/// when the `TempDir` is dropped: keep it bound while the store is used.
fn temp_db(tag: &str) -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix(&format!("acelogic-cstore-{tag}-"))
        .tempdir()
        .unwrap();
    let path = dir.path().join("collector.db");
    (dir, path)
}

struct Node {
    key: SecretKey,
    jid: [u8; 16],
    entries: Vec<lpb::Entry>,
}

impl Node {
    fn new(jid: u8) -> Self {
        Self {
            key: SecretKey::from_seed("node-a", Role::Lineage, [1; 32]).unwrap(),
            jid: [jid; 16],
            entries: Vec::new(),
        }
    }

    fn append(&mut self, n: u64) {
        for _ in 0..n {
            let (seq, prev) = self.entries.last().map_or((1, GENESIS), |e| {
                (e.seq + 1, e.hash.as_slice().try_into().unwrap())
            });
            let record = lpb::Record {
                node: "node-a".into(),
                time_unix_nano: 1_000 + seq,
                epoch: 1,
                body: Some(Body::Decision(lpb::Decision {
                    process: Some(lpb::Process {
                        exec_id: format!("e{seq}"),
                        workload: "agent".into(),
                        ..Default::default()
                    }),
                    hook: "exec".into(),
                    verdict: "deny".into(),
                    reason: "no-grant".into(),
                    ..Default::default()
                })),
            }
            .encode_to_vec();
            let hash = chain::entry_hash("node-a", &self.jid, seq, &prev, &record);
            self.entries.push(lpb::Entry {
                seq,
                prev_hash: prev.to_vec(),
                hash: hash.to_vec(),
                record,
            });
        }
    }

    fn batch(&self, from: u64, to: u64) -> CheckedBatch {
        let (from, to) = (usize::try_from(from).unwrap(), usize::try_from(to).unwrap());
        let es: Vec<lpb::Entry> = self.entries[from - 1..to].to_vec();
        let hello = verify::check_hello(
            &acelogic_lineage::wire::make_hello(&self.key, "node-a", &self.jid, 1),
            1,
            Duration::from_secs(1),
        )
        .unwrap();
        verify::check_batch(
            &hello,
            pb::Batch {
                signature: acelogic_lineage::wire::sign_batch(&self.key, "node-a", &self.jid, &es),
                entries: es,
            },
            Limits::default(),
        )
        .unwrap()
    }
}

fn commit(store: &mut Store, b: &CheckedBatch, continues: bool) -> Result<Committed, Refusal> {
    store.commit_group(&[(b, continues)], 7).unwrap().remove(0)
}

fn count(store: &Store, sql: &str) -> i64 {
    store.conn().query_row(sql, [], |r| r.get(0)).unwrap()
}

#[test]
fn batches_chain_duplicates_skip_and_conflicts_refuse() {
    let (_dir, path) = temp_db("chain");
    let mut store = Store::open(&path).unwrap();
    let mut node = Node::new(1);
    node.append(10);
    let c = commit(&mut store, &node.batch(1, 4), false).unwrap();
    assert_eq!((c.last_seq, c.stored, c.skipped, c.gap), (4, 4, 0, None));
    // A resend overlapping what is stored: the known part is skipped.
    let c = commit(&mut store, &node.batch(3, 6), false).unwrap();
    assert_eq!((c.stored, c.skipped), (2, 2));
    assert_eq!(count(&store, "SELECT COUNT(*) FROM records"), 6);
    // Same seqs, other content (a second chain under the same id).
    let mut fork = Node::new(1);
    fork.append(6);
    // Field 3 (epoch) again: still a valid Record, other bytes.
    fork.entries[5].record.extend_from_slice(&[0x18, 0x05]);
    let mut forged = fork.entries[..6].to_vec();
    forged[5].hash = chain::entry_hash(
        "node-a",
        &fork.jid,
        6,
        &forged[4].hash.as_slice().try_into().unwrap(),
        &forged[5].record,
    )
    .to_vec();
    fork.entries = forged;
    let e = commit(&mut store, &fork.batch(5, 6), false).unwrap_err();
    assert_eq!(e.code, "altered", "{e}");
    // A batch after a refused one of the same session is not a gap.
    let e = commit(&mut store, &node.batch(8, 10), true).unwrap_err();
    assert_eq!(e.code, "broken-chain", "{e}");
    assert_eq!(count(&store, "SELECT COUNT(*) FROM gaps"), 0);
    assert_eq!(count(&store, "SELECT COUNT(*) FROM records"), 6);
}

/// In one transaction, a refused batch stores nothing and the batches
/// around it are stored.
#[test]
fn a_refused_batch_in_a_group_leaves_the_others_stored() {
    let (_dir, path) = temp_db("group");
    let mut store = Store::open(&path).unwrap();
    let mut node = Node::new(1);
    node.append(8);
    let mut other = Node::new(1);
    other.append(4);
    // Same chain, other content from seq 3 on (epoch field again).
    other.entries[2].record.extend_from_slice(&[0x18, 0x05]);
    for i in 2..4 {
        let prev: Hash = other.entries[i - 1].hash.as_slice().try_into().unwrap();
        let e = &mut other.entries[i];
        e.prev_hash = prev.to_vec();
        e.hash = chain::entry_hash("node-a", &other.jid, e.seq, &prev, &e.record).to_vec();
    }
    let (a, b, c) = (node.batch(1, 4), node.batch(5, 8), other.batch(3, 4));
    let results = store
        .commit_group(&[(&a, false), (&c, false), (&b, true)], 7)
        .unwrap();
    assert_eq!(results[0].as_ref().unwrap().stored, 4);
    assert_eq!(results[1].as_ref().unwrap_err().code, "altered");
    assert_eq!(results[2].as_ref().unwrap().stored, 4);
    assert_eq!(count(&store, "SELECT COUNT(*) FROM records"), 8);
    assert_eq!(count(&store, "SELECT head_seq FROM chains"), 8);
}

#[test]
fn a_late_start_is_a_gap_with_an_alarm_and_a_new_journal_alarms() {
    let (_dir, path) = temp_db("gap");
    let mut store = Store::open(&path).unwrap();
    let mut node = Node::new(1);
    node.append(20);
    commit(&mut store, &node.batch(1, 5), false).unwrap();
    let c = commit(&mut store, &node.batch(11, 20), false).unwrap();
    assert_eq!(c.gap, Some((6, 10)));
    assert_eq!(
        count(
            &store,
            "SELECT COUNT(*) FROM gaps WHERE from_seq = 6 AND to_seq = 10"
        ),
        1
    );
    assert_eq!(
        count(&store, "SELECT COUNT(*) FROM alarms WHERE kind = 'gap'"),
        1
    );
    let mut reset = Node::new(2);
    reset.append(3);
    let c = commit(&mut store, &reset.batch(1, 3), false).unwrap();
    assert!(c.journal_reset);
    assert_eq!(
        count(
            &store,
            "SELECT COUNT(*) FROM alarms WHERE kind = 'journal-reset'"
        ),
        1
    );
    let key = SecretKey::from_seed("collector", Role::Lineage, [9; 32]).unwrap();
    assert_eq!(store.checkpoint(&key, 99).unwrap(), 2);
    assert_eq!(store.checkpoint(&key, 100).unwrap(), 0, "no head moved");
    let db = open_read(&path).unwrap();
    let v = audit::verify_node(&db, "node-a", &key.public(), "k", &[]).unwrap();
    assert!(v.ok, "{v:?}");
    assert_eq!(v.chains.len(), 2);
    assert_eq!(v.chains[0].gaps.len(), 1);
    assert_eq!((v.chains[0].records, v.chains[0].checkpoints), (15, 1));
}

#[test]
fn verify_names_the_altered_seq_and_a_bad_checkpoint() {
    let (_dir, path) = temp_db("audit");
    let mut store = Store::open(&path).unwrap();
    let mut node = Node::new(1);
    node.append(8);
    commit(&mut store, &node.batch(1, 8), false).unwrap();
    let key = SecretKey::from_seed("collector", Role::Lineage, [9; 32]).unwrap();
    store.checkpoint(&key, 5).unwrap();
    let verify = || {
        let db = open_read(&path).unwrap();
        audit::verify_node(&db, "node-a", &key.public(), "k", &[]).unwrap()
    };
    assert!(verify().ok);
    store
        .conn()
        .execute("UPDATE records SET verdict = 'allow' WHERE seq = 5", [])
        .unwrap();
    let v = verify();
    assert!(!v.ok);
    assert_eq!(v.chains[0].first_altered_seq, 5, "{v:?}");
    store
        .conn()
        .execute("UPDATE records SET verdict = 'deny' WHERE seq = 5", [])
        .unwrap();
    assert!(verify().ok);
    store
        .conn()
        .execute("DELETE FROM records WHERE seq = 3", [])
        .unwrap();
    let v = verify();
    assert_eq!(v.chains[0].problems[0].kind, "missing", "{v:?}");
    assert_eq!(v.chains[0].first_altered_seq, 3);
    store
        .conn()
        .execute(
            "UPDATE checkpoints SET time_unix_nano = time_unix_nano + 1",
            [],
        )
        .unwrap();
    let v = verify();
    assert!(
        v.chains[0]
            .problems
            .iter()
            .any(|p| p.kind == "bad-checkpoint"),
        "{v:?}"
    );
}

/// A record's exec id lives in `processes`: editing it there is found on
/// the records that refer to it, as editing a column of the record is.
#[test]
fn verify_finds_an_edited_process_row() {
    let (_dir, path) = temp_db("process");
    let mut store = Store::open(&path).unwrap();
    let mut node = Node::new(1);
    node.append(8);
    commit(&mut store, &node.batch(1, 8), false).unwrap();
    let key = SecretKey::from_seed("collector", Role::Lineage, [9; 32]).unwrap();
    let verify = || {
        let db = open_read(&path).unwrap();
        audit::verify_node(&db, "node-a", &key.public(), "k", &[]).unwrap()
    };
    assert!(verify().ok);
    assert_eq!(count(&store, "SELECT COUNT(*) FROM processes"), 8);
    store
        .conn()
        .execute(
            "UPDATE processes SET parent_exec_id = 'e1' WHERE exec_id = 'e6'",
            [],
        )
        .unwrap();
    let v = verify();
    assert_eq!(v.chains[0].first_altered_seq, 6, "{v:?}");
    store
        .conn()
        .execute(
            "UPDATE processes SET parent_exec_id = NULL WHERE exec_id = 'e6'",
            [],
        )
        .unwrap();
    assert!(verify().ok);
}

#[test]
fn enrollment_file_first_use_and_wrong_keys() {
    let (_dir, path) = temp_db("nodes");
    let mut store = Store::open(&path).unwrap();
    let a = SecretKey::from_seed("a", Role::Lineage, [1; 32])
        .unwrap()
        .public();
    let b = SecretKey::from_seed("b", Role::Lineage, [2; 32])
        .unwrap()
        .public();
    store.enroll_file(&[("node-a".into(), a)], 1).unwrap();
    assert_eq!(
        store.identify("node-a", &a, false, 2).unwrap(),
        Enrollment::Known
    );
    let e = |r: Result<Enrollment, WriteError>| match r {
        Err(WriteError::Refused(r)) => r.code,
        other => panic!("{other:?}"),
    };
    assert_eq!(e(store.identify("node-a", &b, true, 2)), "wrong-node-key");
    assert_eq!(e(store.identify("node-b", &b, false, 2)), "unknown-node");
    assert_eq!(
        store.identify("node-b", &b, true, 2).unwrap(),
        Enrollment::New
    );
    assert_eq!(
        store.identify("node-b", &b, false, 3).unwrap(),
        Enrollment::Known
    );
    assert_eq!(
        count(
            &store,
            "SELECT COUNT(*) FROM alarms WHERE kind = 'node-enrolled'"
        ),
        1
    );
}

/// A store written by a collector from before the checkpoint log opens in
/// place: its v1 checkpoints still verify the old way and the log starts
/// at index 1 with the next checkpoint.
#[test]
fn a_store_from_before_the_checkpoint_log_is_migrated() {
    let (_dir, path) = temp_db("migrate");
    let mut store = Store::open(&path).unwrap();
    let mut node = Node::new(1);
    node.append(8);
    commit(&mut store, &node.batch(1, 4), false).unwrap();
    let key = SecretKey::from_seed("collector", Role::Lineage, [9; 32]).unwrap();
    // What the old collector stored: a v1 checkpoint, no log columns.
    let (jid, hash): (Vec<u8>, Vec<u8>) = store
        .conn()
        .query_row("SELECT journal_id, head_hash FROM chains", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    let sig = key.sign_bytes(&crate::checkpoint::message(
        "node-a",
        &jid.clone().try_into().unwrap(),
        4,
        &hash.clone().try_into().unwrap(),
        7,
    ));
    store
        .conn()
        .execute_batch("DROP INDEX checkpoints_log; ALTER TABLE checkpoints DROP COLUMN log_index; ALTER TABLE checkpoints DROP COLUMN note;")
        .unwrap();
    store
        .conn()
        .execute(
            "INSERT INTO checkpoints(chain, node, journal_id, seq, head_hash, time_unix_nano, key_id, signature) \
             VALUES (1, 'node-a', ?1, 4, ?2, 7, 'k', ?3)",
            params![jid, hash, sig.as_slice()],
        )
        .unwrap();
    drop(store);
    let mut store = Store::open(&path).unwrap();
    commit(&mut store, &node.batch(5, 8), true).unwrap();
    assert_eq!(store.checkpoint(&key, 9).unwrap(), 1);
    let index: i64 = store
        .conn()
        .query_row("SELECT log_index FROM checkpoints WHERE seq = 8", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(index, 1);
    let db = open_read(&path).unwrap();
    let v = audit::verify_node(&db, "node-a", &key.public(), "k", &[]).unwrap();
    assert!(v.ok, "{v:?}");
    assert_eq!(v.chains[0].checkpoints, 2);
}

/// `records` of an agent session, chained and checked as one batch.
fn session_batch(
    key: &SecretKey,
    jid: [u8; 16],
) -> (CheckedBatch, acelogic_lineage::sample::SessionProcs) {
    let (records, procs) = acelogic_lineage::sample::session("node-a", 1_000);
    let mut prev = GENESIS;
    let entries: Vec<lpb::Entry> = records
        .iter()
        .zip(1u64..)
        .map(|(r, seq)| {
            let record = r.encode_to_vec();
            let hash = chain::entry_hash("node-a", &jid, seq, &prev, &record);
            let e = lpb::Entry {
                seq,
                prev_hash: prev.to_vec(),
                hash: hash.to_vec(),
                record,
            };
            prev = hash;
            e
        })
        .collect();
    let hello = verify::check_hello(
        &acelogic_lineage::wire::make_hello(key, "node-a", &jid, 1),
        1,
        Duration::from_secs(1),
    )
    .unwrap();
    let batch = verify::check_batch(
        &hello,
        pb::Batch {
            signature: acelogic_lineage::wire::sign_batch(key, "node-a", &jid, &entries),
            entries,
        },
        Limits::default(),
    )
    .unwrap();
    (batch, procs)
}

/// Writes `batch` as a collector from before schema version 2 did: the
/// old tables, every record with its JSON.
fn write_v0_store(path: &Path, batch: &CheckedBatch) {
    let db = Connection::open(path).unwrap();
    db.execute_batch(include_str!("testdata/schema-v0.sql"))
        .unwrap();
    let last = batch.entries.last().unwrap();
    db.execute(
        "INSERT INTO chains(node, journal_id, head_seq, head_hash, created_unix_nano) \
         VALUES ('node-a', ?1, ?2, ?3, 1)",
        params![
            batch.journal_id.as_slice(),
            to_i64(last.seq),
            last.hash.as_slice()
        ],
    )
    .unwrap();
    for e in &batch.entries {
        let record = lpb::Record::decode(e.record.as_slice()).unwrap();
        let c = Columns::of(&record);
        db.execute(
            "INSERT INTO records(chain, node, seq, hash, prev_hash, time_unix_nano, kind, exec_id, \
             parent_exec_id, pid, workload, hook, verdict, reason, artifact_id, object, record, json) \
             VALUES (1, 'node-a', ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16)",
            params![
                to_i64(e.seq),
                e.hash.as_slice(),
                e.prev_hash.as_slice(),
                to_i64(c.time_unix_nano),
                c.kind,
                c.exec_id,
                c.parent_exec_id,
                c.pid,
                c.workload,
                c.hook,
                c.verdict,
                c.reason,
                c.artifact_id,
                c.object,
                e.record,
                serde_json::to_string(&record).unwrap(),
            ],
        )
        .unwrap();
    }
}

/// A store written before schema version 2 opens in place: exec ids moved
/// to `processes`, the JSON column gone, record ids kept; the store
/// verifies, answers as a store written by this collector does, and
/// takes the chain's next records.
#[test]
fn a_store_from_before_schema_version_2_is_migrated() {
    let key = SecretKey::from_seed("node-a", Role::Lineage, [1; 32]).unwrap();
    let collector = SecretKey::from_seed("collector", Role::Lineage, [9; 32]).unwrap();
    let jid = [5; 16];
    let (batch, procs) = session_batch(&key, jid);
    let (_old_dir, old) = temp_db("v0");
    write_v0_store(&old, &batch);
    let (_new_dir, new) = temp_db("v2");
    let mut fresh = Store::open(&new).unwrap();
    commit(&mut fresh, &batch, false).unwrap();
    drop(fresh);

    let ids = |path: &Path| -> String {
        open_read(path)
            .unwrap()
            .query_row(
                "SELECT group_concat(id || ':' || seq) FROM records ORDER BY id",
                [],
                |r| r.get(0),
            )
            .unwrap()
    };
    let before = ids(&old);
    let mut migrated = Store::open(&old).unwrap();
    assert_eq!(ids(&old), before, "record ids (the OTLP cursor) are kept");
    assert!(!schema_has_column(migrated.conn(), "records", "json"));
    assert!(!schema_has_column(migrated.conn(), "records", "exec_id"));
    let version: i64 = migrated
        .conn()
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, 2);
    migrated.checkpoint(&collector, 9).unwrap();
    let v = audit::verify_node(
        &open_read(&old).unwrap(),
        "node-a",
        &collector.public(),
        "k",
        &[],
    )
    .unwrap();
    assert!(v.ok, "{v:?}");
    assert_eq!(v.chains[0].records, batch.entries.len() as u64);
    for exec_id in [
        procs.runner.exec_id(),
        procs.shell.exec_id(),
        procs.git.exec_id(),
    ] {
        assert_eq!(
            crate::query::tree(&open_read(&old).unwrap(), exec_id).unwrap(),
            crate::query::tree(&open_read(&new).unwrap(), exec_id).unwrap(),
            "tree of {exec_id}"
        );
    }
    // The migrated store goes on: a duplicate is skipped, as it would be.
    let c = commit(&mut migrated, &batch, false).unwrap();
    assert_eq!(c.skipped, batch.entries.len() as u64);
}

/// A store of a newer schema than this collector's is refused, saying so.
#[test]
fn a_store_of_a_newer_schema_is_refused() {
    let (_dir, path) = temp_db("newer");
    drop(Store::open(&path).unwrap());
    Connection::open(&path)
        .unwrap()
        .pragma_update(None, "user_version", 3)
        .unwrap();
    let e = Store::open(&path).unwrap_err().to_string();
    assert!(
        e.contains("schema version 3, newer than this collector's (2)"),
        "{e}"
    );
}

fn schema_has_column(db: &Connection, table: &str, column: &str) -> bool {
    db.query_row(
        "SELECT COUNT(*) FROM pragma_table_info(?1) WHERE name = ?2",
        [table, column],
        |r| r.get::<_, i64>(0),
    )
    .unwrap()
        > 0
}
