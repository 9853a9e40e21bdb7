//! The pump against a ring buffer in memory that behaves like the kernel's
//! (records stay until committed) and a real journal.

use std::{collections::VecDeque, path::PathBuf};

use acelogic_common::{
    codes::{hook, reason, verdict},
    event::{
        self, Decision, EventHeader, FileDecision, FileId, ProcessExec, ProcessExit, ProcessFork,
        record_size,
    },
};

use super::*;
use crate::journal::Journal;

fn bytes_of<T: Copy>(v: &T) -> Vec<u8> {
    // SAFETY: test-only view of a plain-integer repr(C) value as bytes.
    unsafe { std::slice::from_raw_parts(std::ptr::from_ref(v).cast::<u8>(), size_of::<T>()) }
        .to_vec()
}

fn header(kind: u16, size: u16, tgid: u32) -> EventHeader {
    EventHeader {
        kind,
        size,
        pid: tgid,
        tgid,
        uid: 1000,
        boot_ns: 5_000_000_000,
        cgroup_id: 77,
        start_ns: 3_000_000_000 + u64::from(tgid),
    }
}

fn exec_denied(tgid: u32) -> Vec<u8> {
    let mut name = [0u8; event::NAME_LEN];
    name[..9].copy_from_slice(b"/bin/curl");
    bytes_of(&FileDecision {
        header: header(
            event::kind::FILE_DECISION,
            record_size::<FileDecision>(),
            tgid,
        ),
        decision: Decision {
            scope_id: 5,
            ppid: 1,
            hook: hook::EXEC,
            verdict: verdict::DENY,
            reason: reason::NO_GRANT,
            _pad: 0,
            grant_id: 0,
            comm: [0; event::COMM_LEN],
        },
        file: FileId {
            dev: 8 << 20,
            _pad: 0,
            ino: 99,
        },
        other: FileId::default(),
        detail: 0,
        name_len: 9,
        name,
        path: event::KPath::EMPTY,
    })
}

fn fork(parent: u32, child: u32) -> Vec<u8> {
    bytes_of(&ProcessFork {
        header: header(
            event::kind::PROCESS_FORK,
            record_size::<ProcessFork>(),
            parent,
        ),
        child_tgid: child,
        _pad: 0,
        child_start_ns: 3_000_000_000 + u64::from(child),
    })
}

/// Records stay until committed, like the kernel's ring buffer.
#[derive(Debug, Default)]
struct MemRing {
    id: u32,
    consumer: u64,
    records: VecDeque<RawRecord>,
    end: u64,
}

impl MemRing {
    fn push(&mut self, bytes: Vec<u8>) {
        self.end += 8 + bytes.len() as u64;
        self.records.push_back(RawRecord {
            bytes,
            end: self.end,
        });
    }
}

impl Ring for MemRing {
    fn ring_id(&self) -> u32 {
        self.id
    }
    fn consumer_pos(&self) -> u64 {
        self.consumer
    }
    fn peek(&mut self, max: usize) -> Vec<RawRecord> {
        self.records
            .iter()
            .filter(|r| r.end > self.consumer)
            .take(max)
            .cloned()
            .collect()
    }
    fn commit(&mut self, pos: u64) -> Result<(), PortError> {
        self.consumer = pos;
        self.records.retain(|r| r.end > pos);
        Ok(())
    }
}

/// A fresh directory and the journal path in it. The directory is removed
/// when the `TempDir` is dropped: keep it bound while the journal is used.
fn temp_db(tag: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::Builder::new()
        .prefix(&format!("acelogic-pump-{tag}-"))
        .tempdir()
        .unwrap();
    let path = dir.path().join("journal.db");
    (dir, path)
}

fn pump() -> Pump {
    let mut e = Enricher::with_proc("node-a", 3, [1; 16], PathBuf::from("/nonexistent"));
    e.set_workloads([(5, "agent".to_owned())]);
    Pump::new(e, 2)
}

fn bodies(journal: &Shared) -> Vec<Body> {
    use prost::Message as _;
    journal
        .lock()
        .read_after(0, 1000, usize::MAX)
        .unwrap()
        .iter()
        .map(|e| {
            pb::Record::decode(e.record.as_slice())
                .unwrap()
                .body
                .unwrap()
        })
        .collect()
}

#[test]
fn records_leave_the_ring_only_once_journaled_in_order() {
    let (_dir, path) = temp_db("order");
    let journal = Shared::new(Journal::open(&path, "node-a", 1 << 20).unwrap());
    let mut ring = MemRing {
        id: 4,
        ..MemRing::default()
    };
    ring.push(fork(100, 101));
    ring.push(exec_denied(101));
    ring.push(exec_denied(102));
    let mut p = pump();
    assert_eq!(
        p.step(&journal, &mut ring).unwrap().journaled,
        2,
        "one batch"
    );
    assert_eq!(ring.records.len(), 1);
    assert_eq!(p.step(&journal, &mut ring).unwrap().journaled, 1);
    assert_eq!(p.step(&journal, &mut ring).unwrap(), Step::default());
    let b = bodies(&journal);
    let Body::Fork(f) = &b[0] else {
        panic!("{b:?}")
    };
    let child = f.process.as_ref().unwrap();
    assert_eq!(child.pid, 101);
    assert_eq!(child.ppid, 100);
    let Body::Decision(d) = &b[1] else {
        panic!("{b:?}")
    };
    let p101 = d.process.as_ref().unwrap();
    assert_eq!(
        (d.hook.as_str(), d.verdict.as_str(), d.reason.as_str()),
        ("exec", "deny", "no-grant")
    );
    assert_eq!(
        p101.exec_id, child.exec_id,
        "the fork's child is the decider"
    );
    assert_eq!(
        p101.parent_exec_id, child.parent_exec_id,
        "parent learned from the fork"
    );
    assert!(!p101.parent_exec_id.is_empty());
    assert_eq!(p101.workload, "agent");
    assert!(d.object.starts_with("/bin/curl"), "{}", d.object);
    assert_eq!(
        journal.lock().ring_cursor().unwrap(),
        Some(RingCursor {
            ring_id: 4,
            pos: ring.end
        })
    );
}

#[test]
fn a_full_journal_leaves_records_in_the_ring() {
    let (_dir, path) = temp_db("full");
    let journal = Shared::new(Journal::open(&path, "node-a", 1).unwrap());
    let mut ring = MemRing::default();
    ring.push(exec_denied(7));
    let mut p = pump();
    let step = p.step(&journal, &mut ring).unwrap();
    assert_eq!(
        step,
        Step {
            journaled: 0,
            blocked: true
        }
    );
    assert_eq!(ring.records.len(), 1, "not consumed");
    assert_eq!(ring.consumer, 0);
    assert_eq!(journal.lock().head().0, 0);
}

/// A daemon killed after the journal's commit and before the ring's.
#[derive(Debug)]
struct CrashBeforeCommit<'a>(&'a mut MemRing);

impl Ring for CrashBeforeCommit<'_> {
    fn ring_id(&self) -> u32 {
        self.0.ring_id()
    }
    fn consumer_pos(&self) -> u64 {
        self.0.consumer_pos()
    }
    fn peek(&mut self, max: usize) -> Vec<RawRecord> {
        self.0.peek(max)
    }
    fn commit(&mut self, _pos: u64) -> Result<(), PortError> {
        Ok(())
    }
}

#[test]
fn a_restart_skips_what_was_journaled_before_the_crash() {
    let (_dir, path) = temp_db("resume");
    let journal = Shared::new(Journal::open(&path, "node-a", 1 << 20).unwrap());
    let mut ring = MemRing {
        id: 9,
        ..MemRing::default()
    };
    for pid in 1..=3 {
        ring.push(exec_denied(pid));
    }
    let mut p = pump();
    let step = p.step(&journal, &mut CrashBeforeCommit(&mut ring)).unwrap();
    assert_eq!(step.journaled, 2);
    assert_eq!(ring.consumer, 0, "the crash left both records in the ring");
    drop(journal);

    let journal = Shared::new(Journal::open(&path, "node-a", 1 << 20).unwrap());
    let mut p = pump();
    let after_two = ring.records[1].end;
    assert_eq!(p.resume(&journal, &mut ring).unwrap(), after_two);
    while p.step(&journal, &mut ring).unwrap().journaled > 0 {}
    assert_eq!(
        journal.lock().head().0,
        3,
        "each record journaled exactly once"
    );
    // Another ring (a new BPF object) starts at 0: nothing is skipped.
    let mut other = MemRing {
        id: 10,
        ..MemRing::default()
    };
    other.push(exec_denied(4));
    assert_eq!(p.resume(&journal, &mut other).unwrap(), 0);
}

#[test]
fn undecodable_records_and_kernel_losses_become_loss_records_once() {
    let (_dir, path) = temp_db("loss");
    let journal = Shared::new(Journal::open(&path, "node-a", 1 << 20).unwrap());
    let mut ring = MemRing::default();
    ring.push(vec![1, 2, 3]);
    let mut p = pump();
    p.step(&journal, &mut ring).unwrap();
    let losses = KernelLosses {
        lineage_lost: 5,
        lineage_missed: 3,
        record_unavailable: 2,
    };
    assert_eq!(p.losses(&journal, losses).unwrap(), 10);
    assert_eq!(p.losses(&journal, losses).unwrap(), 0, "counted once");
    let more = KernelLosses {
        lineage_lost: 6,
        ..losses
    };
    assert_eq!(p.losses(&journal, more).unwrap(), 1);
    // The recorders were loaded anew: their misses count from zero, and
    // the ring's count goes on from its own baseline.
    let reloaded = KernelLosses {
        lineage_missed: 1,
        ..more
    };
    assert_eq!(p.losses(&journal, reloaded).unwrap(), 1);
    let b = bodies(&journal);
    let losses: Vec<(String, u64)> = b
        .iter()
        .map(|b| match b {
            Body::Loss(l) => (l.what.clone(), l.count),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(
        losses,
        [
            ("undecodable".into(), 1),
            ("kernel-lineage".into(), 5),
            ("kernel-lineage".into(), 3),
            ("record-unavailable".into(), 2),
            ("kernel-lineage".into(), 1),
            ("kernel-lineage".into(), 1)
        ]
    );
}

/// Remembers the pids of the records it was told about.
#[derive(Debug, Default)]
struct Seen(std::sync::Mutex<Vec<u32>>);

impl Observer for Seen {
    fn journaled(&self, event: &Event) {
        self.0.lock().unwrap().push(event.header().tgid);
    }
}

#[test]
fn the_observer_sees_only_what_the_journal_committed() {
    // Room for one record (~100 bytes encoded), not two.
    let (_dir, path) = temp_db("observe");
    let journal = Shared::new(Journal::open(&path, "node-a", 150).unwrap());
    let mut ring = MemRing::default();
    ring.push(exec_denied(11));
    ring.push(exec_denied(12));
    ring.push(vec![1, 2, 3]);
    let seen = Arc::new(Seen::default());
    let mut p = pump();
    p.set_observer(Arc::clone(&seen) as Arc<dyn Observer>);
    let step = p.step(&journal, &mut ring).unwrap();
    assert_eq!(step.journaled, 1, "half the batch fit");
    assert_eq!(*seen.0.lock().unwrap(), [11]);
    let step = p.step(&journal, &mut ring).unwrap();
    assert!(step.blocked, "{step:?}");
    assert_eq!(
        *seen.0.lock().unwrap(),
        [11],
        "nothing new while the journal is full"
    );
}

fn exec_record(tgid: u32) -> Vec<u8> {
    bytes_of(&ProcessExec {
        header: header(
            event::kind::PROCESS_EXEC,
            record_size::<ProcessExec>(),
            tgid,
        ),
        // Unknown: only what the enricher learned can name the parent.
        parent_tgid: 0,
        filename_len: 0,
        parent_start_ns: 0,
        comm: [0; event::COMM_LEN],
        filename: [0; event::FILENAME_LEN],
        argv_len: 0,
        argv_flags: 0,
        _pad: 0,
        argv: [0; event::ARGV_LEN],
        exe: event::KPath::EMPTY,
        cwd: event::KPath::EMPTY,
    })
}

fn exit_record(tgid: u32) -> Vec<u8> {
    bytes_of(&ProcessExit {
        header: header(
            event::kind::PROCESS_EXIT,
            record_size::<ProcessExit>(),
            tgid,
        ),
        exit_code: 0,
        _pad: 0,
    })
}

fn parent_of(body: &Body) -> String {
    let p = match body {
        Body::Fork(f) => f.process.as_ref(),
        Body::Exec(x) => x.process.as_ref(),
        Body::Exit(x) => x.process.as_ref(),
        other => panic!("{other:?}"),
    };
    p.unwrap().parent_exec_id.clone()
}

#[test]
fn records_the_journal_had_no_room_for_are_journaled_as_first_enriched() {
    // A journal with room for the fork record only: the exec and the exit
    // wait in the ring, after the enricher saw the exit (and forgot the
    // process's parent).
    let (_dir, path) = temp_db("held");
    let mut ring = MemRing::default();
    ring.push(fork(100, 101));
    ring.push(exec_record(101));
    ring.push(exit_record(101));
    let mut p = pump();
    p.batch = 8;
    {
        let small = Shared::new(Journal::open(&path, "node-a", 150).unwrap());
        let step = p.step(&small, &mut ring).unwrap();
        assert_eq!(step.journaled, 1, "only the fork fit");
    }
    // Room again (a bigger cap here; the collector's acknowledgement in
    // the daemon).
    let journal = Shared::new(Journal::open(&path, "node-a", 1 << 20).unwrap());
    while p.step(&journal, &mut ring).unwrap().journaled > 0 {}
    assert!(ring.records.is_empty());
    let b = bodies(&journal);
    assert_eq!(b.len(), 3, "each record once");
    let parent = parent_of(&b[0]);
    assert!(!parent.is_empty());
    assert_eq!(parent_of(&b[1]), parent, "the exec keeps the fork's parent");
    assert_eq!(parent_of(&b[2]), parent, "so does the exit");
}
