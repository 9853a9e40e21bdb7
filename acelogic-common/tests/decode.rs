//! Decoding of ring-buffer records: every kind round-trips, and malformed or
//! unknown input is an error that says what was wrong.

use core::mem::size_of;

use acelogic_common::{
    codes::{hook, reason, verdict},
    event::{
        self, Decision, EventHeader, FileDecision, FileId, NetDecision, ProcessExec, ProcessExit,
        ProcessFork, SystemDecision, TaskDecision, record_size,
    },
    user::{DecodeError, Event, Hook, Reason, UnknownCode, Verdict},
};

fn bytes_of<T: Copy>(v: &T) -> Vec<u8> {
    // SAFETY: test-only view of a plain-integer repr(C) value as bytes.
    unsafe { std::slice::from_raw_parts((v as *const T).cast::<u8>(), size_of::<T>()) }.to_vec()
}

fn header(kind: u16, size: u16) -> EventHeader {
    EventHeader {
        kind,
        size,
        pid: 41,
        tgid: 40,
        uid: 1000,
        boot_ns: 123_456_789,
        cgroup_id: 9876,
        start_ns: 4_321_000_000_007,
    }
}

fn decision(hook: u16, verdict: u16, reason: u16) -> Decision {
    let mut comm = [0u8; event::COMM_LEN];
    comm[..4].copy_from_slice(b"bash");
    Decision {
        scope_id: 7,
        ppid: 39,
        hook,
        verdict,
        reason,
        _pad: 0,
        grant_id: 11,
        comm,
    }
}

fn exec_decision(verdict: u16, reason: u16) -> FileDecision {
    let mut name = [0u8; event::NAME_LEN];
    name[..7].copy_from_slice(b"/bin/sh");
    FileDecision {
        header: header(event::kind::FILE_DECISION, record_size::<FileDecision>()),
        decision: decision(hook::EXEC, verdict, reason),
        file: FileId {
            dev: (8 << 20) | 1,
            _pad: 0,
            ino: 1234,
        },
        other: FileId::default(),
        detail: 0,
        name_len: 7,
        name,
        path: event::KPath::EMPTY,
    }
}

#[test]
fn file_decision_round_trips() {
    let rec = exec_decision(verdict::DENY, reason::NO_GRANT);
    let Event::File(e) = Event::decode(&bytes_of(&rec)).unwrap() else {
        panic!("wrong kind");
    };
    assert_eq!(e.header, rec.header);
    assert_eq!(e.decision.scope_id, 7);
    assert_eq!(e.decision.ppid, 39);
    assert_eq!(e.decision.hook, Hook::Exec);
    assert_eq!(e.decision.verdict, Verdict::Deny);
    assert_eq!(e.decision.reason, Reason::NoGrant);
    assert_eq!(e.decision.grant_id, 11);
    assert_eq!(e.file.ino, 1234);
    assert_eq!(e.name(), b"/bin/sh");
    assert_eq!(
        acelogic_common::user::c_str_bytes(&e.decision.comm),
        b"bash"
    );
}

#[test]
fn net_task_and_system_decisions_round_trip() {
    let mut addr = [0u8; 16];
    addr[..4].copy_from_slice(&[127, 0, 0, 1]);
    let net = NetDecision {
        header: header(event::kind::NET_DECISION, record_size::<NetDecision>()),
        decision: decision(hook::SOCKET_CONNECT, verdict::ALLOW, reason::GRANT),
        family: 2,
        protocol: 6,
        port: 443,
        _pad: 0,
        addr,
        unix: FileId::default(),
    };
    let Event::Net(n) = Event::decode(&bytes_of(&net)).unwrap() else {
        panic!("wrong kind");
    };
    assert_eq!(n.ip(), Some(std::net::Ipv4Addr::LOCALHOST.into()));
    assert_eq!((n.port, n.decision.reason), (443, Reason::Grant));

    let task = TaskDecision {
        header: header(event::kind::TASK_DECISION, record_size::<TaskDecision>()),
        decision: decision(hook::TASK_KILL, verdict::DENY, reason::OUTSIDE_SCOPE),
        target_tgid: 1,
        target_scope_id: 0,
        target_cgroup_id: 1,
        detail: 15,
        _pad: 0,
    };
    let Event::Task(t) = Event::decode(&bytes_of(&task)).unwrap() else {
        panic!("wrong kind");
    };
    assert_eq!((t.target_tgid, t.detail), (1, 15));
    assert_eq!(t.decision.hook, Hook::TaskKill);

    let sys = SystemDecision {
        header: header(
            event::kind::SYSTEM_DECISION,
            record_size::<SystemDecision>(),
        ),
        decision: decision(hook::BPF, verdict::AUDIT, reason::FORBIDDEN),
        detail: 5,
    };
    let Event::System(y) = Event::decode(&bytes_of(&sys)).unwrap() else {
        panic!("wrong kind");
    };
    assert_eq!((y.detail, y.decision.verdict), (5, Verdict::Audit));
}

/// Every code constant converts to its enum and back to the same number,
/// and nothing else converts: no code is silently mapped.
#[test]
fn every_code_is_known_exactly_once() {
    let count = |f: fn(u16) -> bool| (0..=u16::MAX).filter(|&c| f(c)).count();
    assert_eq!(count(|c| Hook::try_from(c).is_ok()), 34);
    assert_eq!(count(|c| Verdict::try_from(c).is_ok()), 3);
    assert_eq!(count(|c| Reason::try_from(c).is_ok()), 15);
    let mut hooks: Vec<_> = acelogic_common::names::ALL_GATES
        .iter()
        .map(|g| g.hook)
        .collect();
    hooks.sort_unstable();
    hooks.dedup();
    // One code per deciding hook, but `file_free_security` decides
    // nothing and `mmap_file`, `file_mprotect` decide both exec and write.
    assert_eq!(hooks.len(), 33);
    assert_eq!(hooks.len() - 1 + 2, 34, "one hook code per decision kind");
}

#[test]
fn process_exec_filename_is_bounded_by_len_and_nul() {
    let mut filename = [0u8; event::FILENAME_LEN];
    filename[..8].copy_from_slice(b"/bin/sh\0");
    let rec = ProcessExec {
        header: header(event::kind::PROCESS_EXEC, record_size::<ProcessExec>()),
        parent_tgid: 0,
        filename_len: 7,
        parent_start_ns: 0,
        comm: [0; event::COMM_LEN],
        filename,
        argv_len: 0,
        argv_flags: 0,
        _pad: 0,
        argv: [0; event::ARGV_LEN],
        exe: event::KPath::EMPTY,
        cwd: event::KPath::EMPTY,
    };
    let Event::ProcessExec(e) = Event::decode(&bytes_of(&rec)).unwrap() else {
        panic!("wrong kind");
    };
    assert_eq!(e.filename(), b"/bin/sh");

    // A length past the buffer is clamped, not trusted.
    let mut lying = rec;
    lying.filename_len = u32::MAX;
    let Event::ProcessExec(e) = Event::decode(&bytes_of(&lying)).unwrap() else {
        panic!("wrong kind");
    };
    assert_eq!(e.filename(), b"/bin/sh");
}

#[test]
fn header_fields_sit_where_the_kernel_writes_them() {
    // The BPF side writes the same `repr(C)` struct; pin the layout so a
    // reordering shows up here and not as garbage in the journal.
    let h = header(event::kind::PROCESS_EXEC, 0);
    let b = bytes_of(&h);
    assert_eq!(b.len(), 40);
    assert_eq!(&b[32..40], &4_321_000_000_007u64.to_ne_bytes());
    assert_eq!(&b[24..32], &9876u64.to_ne_bytes());
    assert_eq!(h.start_ticks(), Some(432_100));
    let mut unknown = h;
    unknown.start_ns = 0;
    assert_eq!(unknown.start_ticks(), None, "0 means unread, not boot");
}

#[test]
fn process_fork_and_exit_round_trip() {
    let fork = ProcessFork {
        header: header(event::kind::PROCESS_FORK, record_size::<ProcessFork>()),
        child_tgid: 77,
        _pad: 0,
        child_start_ns: 5_000_000_123,
    };
    let Event::ProcessFork(f) = Event::decode(&bytes_of(&fork)).unwrap() else {
        panic!("wrong kind");
    };
    assert_eq!((f.parent_tgid(), f.child_tgid), (40, 77));
    assert_eq!(f.child_start_ticks(), Some(500));
    assert_eq!(f.header, fork.header);
    assert!(Event::ProcessFork(f).decision().is_none());

    let exit = |exit_code| ProcessExit {
        header: header(event::kind::PROCESS_EXIT, record_size::<ProcessExit>()),
        exit_code,
        _pad: 0,
    };
    let decode = |code| {
        let Event::ProcessExit(e) = Event::decode(&bytes_of(&exit(code))).unwrap() else {
            panic!("wrong kind");
        };
        e
    };
    let normal = decode(7 << 8);
    assert_eq!((normal.exited(), normal.signal()), (Some(7), None));
    let killed = decode(9);
    assert_eq!((killed.exited(), killed.signal()), (None, Some(9)));
    assert!(!killed.core_dumped());
    let dumped = decode(0x80 | 11);
    assert_eq!(dumped.signal(), Some(11));
    assert!(dumped.core_dumped());

    let full = bytes_of(&fork);
    assert_eq!(
        Event::decode(&full[..50]),
        Err(DecodeError::Size {
            kind: event::kind::PROCESS_FORK,
            need: 56,
            got: 50
        })
    );
}

#[test]
fn short_and_truncated_records_are_rejected() {
    assert_eq!(
        Event::decode(&[0u8; 5]),
        Err(DecodeError::ShortHeader { len: 5, header: 40 })
    );
    let full = bytes_of(&exec_decision(verdict::ALLOW, reason::NO_GRANT));
    assert_eq!(
        Event::decode(&full[..48]),
        Err(DecodeError::Size {
            kind: event::kind::FILE_DECISION,
            need: size_of::<FileDecision>(),
            got: 48
        })
    );
}

#[test]
fn unknown_kind_and_codes_are_errors_not_defaults() {
    let mut rec = exec_decision(verdict::DENY, reason::NO_GRANT);
    rec.header.kind = 0x7777;
    assert_eq!(
        Event::decode(&bytes_of(&rec)),
        Err(DecodeError::UnknownKind(0x7777))
    );

    let rec = exec_decision(99, reason::NO_GRANT);
    assert_eq!(
        Event::decode(&bytes_of(&rec)),
        Err(DecodeError::Code(UnknownCode {
            what: "verdict",
            code: 99
        }))
    );
    let rec = exec_decision(verdict::DENY, 0);
    assert!(matches!(
        Event::decode(&bytes_of(&rec)),
        Err(DecodeError::Code(UnknownCode { what: "reason", .. }))
    ));
}

#[test]
fn garbage_never_panics() {
    // Cheap deterministic sweep standing in for a fuzzer until the parser
    // fuzz targets land: every prefix of a few patterns decodes or errors.
    let full = bytes_of(&exec_decision(verdict::DENY, reason::NO_GRANT));
    for pattern in [0x00u8, 0xff, 0x01, 0x5a] {
        for len in 0..400 {
            let mut buf = vec![pattern; len];
            let n = len.min(full.len());
            buf[..n].copy_from_slice(&full[..n]);
            let _ = Event::decode(&buf);
        }
    }
}
