use std::path::PathBuf;

use rusqlite::Connection;

use super::*;

/// A fresh directory and the journal path in it. The directory is removed
/// when the `TempDir` is dropped: keep it bound while the journal is used.
fn temp_db(tag: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix(&format!("acelogic-journal-{tag}-"))
        .tempdir()
        .unwrap();
    let path = dir.path().join("journal.db");
    (dir, path)
}

fn record(i: u64) -> pb::Record {
    pb::Record {
        node: "node-a".into(),
        time_unix_nano: 1_700_000_000_000_000_000 + i,
        epoch: 1,
        body: Some(pb::record::Body::Loss(pb::Loss {
            what: "test".into(),
            count: i,
            detail: String::new(),
        })),
    }
}

fn records(range: std::ops::Range<u64>) -> Vec<pb::Record> {
    range.map(record).collect()
}

#[test]
fn appends_chain_from_genesis_and_survive_reopening() {
    let (_dir, path) = temp_db("chain");
    let mut j = Journal::open(&path, "node-a", 1 << 20).unwrap();
    assert_eq!(j.head(), (0, GENESIS));
    assert_eq!(j.append(&records(0..3)).unwrap(), Some(1..=3));
    assert_eq!(j.append(&[]).unwrap(), None);
    let id = j.identity().clone();
    let entries = j.read_after(0, 100, usize::MAX).unwrap();
    assert_eq!(entries.len(), 3);
    assert_eq!(entries[0].prev_hash, GENESIS);
    for pair in entries.windows(2) {
        assert_eq!(pair[1].prev_hash, pair[0].hash);
        assert_eq!(pair[1].seq, pair[0].seq + 1);
    }
    for e in &entries {
        let prev: Hash = e.prev_hash.as_slice().try_into().unwrap();
        assert_eq!(
            e.hash,
            chain::entry_hash("node-a", &id.journal_id, e.seq, &prev, &e.record)
        );
    }
    let head = j.head();
    drop(j);

    let mut j = Journal::open(&path, "node-a", 1 << 20).unwrap();
    assert_eq!(j.identity(), &id, "the journal id is kept");
    assert_eq!(j.head(), head);
    assert_eq!(j.append(&records(3..4)).unwrap(), Some(4..=4));
    assert_eq!(
        j.read_after(3, 10, usize::MAX).unwrap()[0].prev_hash,
        head.1
    );
    j.verify().unwrap();
}

#[test]
fn acknowledged_entries_are_deleted_but_the_head_stays() {
    let (_dir, path) = temp_db("ack");
    let mut j = Journal::open(&path, "node-a", 1 << 20).unwrap();
    j.append(&records(0..5)).unwrap();
    let full = j.pending_bytes();
    j.acknowledge(3).unwrap();
    assert_eq!(j.first_stored().unwrap(), 4);
    assert!(j.pending_bytes() < full);
    j.acknowledge(2).unwrap(); // going back is a no-op
    assert_eq!(j.acked(), 3);
    j.acknowledge(5).unwrap();
    assert_eq!(j.pending_bytes(), 0);
    assert_eq!(j.first_stored().unwrap(), 5, "the head stays");
    assert!(matches!(
        j.acknowledge(6),
        Err(JournalError::AckBeyondHead { seq: 6, head: 5 })
    ));
    drop(j);
    let mut j = Journal::open(&path, "node-a", 1 << 20).unwrap();
    assert_eq!((j.acked(), j.pending_bytes(), j.head().0), (5, 0, 5));
    assert_eq!(j.append(&records(0..1)).unwrap(), Some(6..=6));
    j.verify().unwrap();
}

#[test]
fn a_full_journal_refuses_the_whole_batch_and_frees_on_ack() {
    let (_dir, path) = temp_db("full");
    let one = prost::Message::encoded_len(&record(1)) as u64;
    let mut j = Journal::open(&path, "node-a", one * 3).unwrap();
    j.append(&records(1..3)).unwrap();
    let head = j.head();
    let err = j.append(&records(3..5)).unwrap_err();
    assert!(matches!(err, JournalError::Full { .. }), "{err}");
    assert_eq!(j.head(), head, "nothing of the refused batch was stored");
    assert_eq!(j.read_after(0, 100, usize::MAX).unwrap().len(), 2);
    j.acknowledge(2).unwrap();
    assert_eq!(j.append(&records(3..5)).unwrap(), Some(3..=4));
}

#[test]
fn another_nodes_journal_is_refused() {
    let (_dir, path) = temp_db("node");
    drop(Journal::open(&path, "node-a", 1 << 20).unwrap());
    let err = Journal::open(&path, "node-b", 1 << 20).unwrap_err();
    assert!(matches!(err, JournalError::WrongNode { .. }), "{err}");
}

#[test]
fn the_ring_cursor_commits_with_its_entries() {
    let (_dir, path) = temp_db("cursor");
    let mut j = Journal::open(&path, "node-a", 1 << 20).unwrap();
    assert_eq!(j.ring_cursor().unwrap(), None);
    let c = RingCursor {
        ring_id: 9,
        pos: 4096,
    };
    j.append_with_cursor(&records(0..2), Some(c)).unwrap();
    drop(j);
    let j = Journal::open(&path, "node-a", 1 << 20).unwrap();
    assert_eq!(j.ring_cursor().unwrap(), Some(c));
}

#[test]
fn verify_finds_an_altered_or_removed_entry() {
    let (_dir, path) = temp_db("tamper");
    let mut j = Journal::open(&path, "node-a", 1 << 20).unwrap();
    j.append(&records(0..5)).unwrap();
    j.verify().unwrap();
    let db = Connection::open(&path).unwrap();
    let mut altered = prost::Message::encode_to_vec(&record(99));
    altered.push(0);
    db.execute("UPDATE entries SET record = ?1 WHERE seq = 3", [&altered])
        .unwrap();
    let err = j.verify().unwrap_err().to_string();
    assert!(err.contains("seq 3: hash mismatch"), "{err}");
    let (_gap_dir, gap) = temp_db("gap");
    let mut j2 = Journal::open(&gap, "node-a", 1 << 20).unwrap();
    j2.append(&records(0..5)).unwrap();
    j2.db
        .execute("DELETE FROM entries WHERE seq = 2", [])
        .unwrap();
    let err = j2.verify().unwrap_err().to_string();
    assert!(err.contains("seq 3 does not follow seq 1"), "{err}");
}

#[test]
fn the_shared_journal_announces_each_new_head() {
    let (_dir, path) = temp_db("shared");
    let shared = Shared::new(Journal::open(&path, "node-a", 1 << 20).unwrap());
    let mut rx = shared.subscribe();
    assert_eq!(*rx.borrow_and_update(), 0);
    shared.append(&records(0..4)).unwrap();
    assert!(rx.has_changed().unwrap());
    assert_eq!(*rx.borrow_and_update(), 4);
}
