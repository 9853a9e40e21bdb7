//! Decoding of ring-buffer records: every kind round-trips, and malformed or
//! unknown input is an error that says what was wrong.

use core::mem::size_of;

use acelogic_common::{
    codes::{hook, reason, verdict},
    event::{self, Decision, EventHeader, ExecDecision, ProcessExec, record_size},
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
    }
}

fn exec_decision(verdict: u16, reason: u16) -> ExecDecision {
    let mut comm = [0u8; event::COMM_LEN];
    comm[..4].copy_from_slice(b"bash");
    ExecDecision {
        header: header(event::kind::EXEC_DECISION, record_size::<ExecDecision>()),
        decision: Decision {
            scope_id: 7,
            hook: hook::EXEC,
            verdict,
            reason,
            _pad: [0; 6],
            grant_id: 0,
        },
        comm,
    }
}

#[test]
fn exec_decision_round_trips() {
    let rec = exec_decision(verdict::DENY, reason::NO_GRANT);
    let Event::Exec(e) = Event::decode(&bytes_of(&rec)).unwrap() else {
        panic!("wrong kind");
    };
    assert_eq!(e.header, rec.header);
    assert_eq!(e.scope_id, 7);
    assert_eq!(e.hook, Hook::Exec);
    assert_eq!(e.verdict, Verdict::Deny);
    assert_eq!(e.reason, Reason::NoGrant);
    assert_eq!(acelogic_common::user::c_str_bytes(&e.comm), b"bash");
}

#[test]
fn process_exec_filename_is_bounded_by_len_and_nul() {
    let mut filename = [0u8; event::FILENAME_LEN];
    filename[..8].copy_from_slice(b"/bin/sh\0");
    let rec = ProcessExec {
        header: header(event::kind::PROCESS_EXEC, record_size::<ProcessExec>()),
        _pad: 0,
        filename_len: 7,
        comm: [0; event::COMM_LEN],
        filename,
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
fn short_and_truncated_records_are_rejected() {
    assert_eq!(
        Event::decode(&[0u8; 5]),
        Err(DecodeError::ShortHeader { len: 5, header: 32 })
    );
    let full = bytes_of(&exec_decision(verdict::ALLOW, reason::NO_GRANT));
    assert_eq!(
        Event::decode(&full[..40]),
        Err(DecodeError::Size {
            kind: event::kind::EXEC_DECISION,
            need: size_of::<ExecDecision>(),
            got: 40
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
