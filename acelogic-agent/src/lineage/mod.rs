//! Execution lineage. At this stage: rendering kernel records for people.
//! The journal, shipping and the collector arrive with issue 5.

use std::fmt::Write as _;

use acelogic_common::{
    event::FileId,
    user::{DecisionInfo, Event, c_str_bytes},
};

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn decision(line: &mut String, d: &DecisionInfo) {
    let _ = write!(
        line,
        "decision hook={} verdict={} reason={} scope={}",
        d.hook, d.verdict, d.reason, d.scope_id
    );
    if d.grant_id != 0 {
        let _ = write!(line, " grant={}", d.grant_id);
    }
    let _ = write!(
        line,
        " comm={:?} ppid={}",
        lossy(c_str_bytes(&d.comm)),
        d.ppid
    );
}

fn file(line: &mut String, what: &str, f: &FileId) {
    if f.ino != 0 {
        let _ = write!(
            line,
            " {what}={}:{}:{}",
            f.dev >> 20,
            f.dev & 0xfffff,
            f.ino
        );
    }
}

/// One human-readable line for a record.
#[must_use]
pub fn render(event: &Event) -> String {
    let h = event.header();
    let mut line = String::new();
    match event {
        Event::File(e) => {
            decision(&mut line, &e.decision);
            file(&mut line, "file", &e.file);
            file(&mut line, "to", &e.other);
            let _ = write!(line, " name={:?}", lossy(e.name()));
            if e.detail != 0 {
                let _ = write!(line, " detail={:#x}", e.detail);
            }
        }
        Event::Net(e) => {
            decision(&mut line, &e.decision);
            match e.ip() {
                Some(ip) => {
                    let _ = write!(line, " dest={ip} port={} proto={}", e.port, e.protocol);
                }
                None => {
                    let _ = write!(line, " family={}", e.family);
                    file(&mut line, "unix", &e.unix);
                }
            }
        }
        Event::Task(e) => {
            decision(&mut line, &e.decision);
            let _ = write!(
                line,
                " target_pid={} target_scope={} target_cgroup={} detail={}",
                e.target_tgid, e.target_scope_id, e.target_cgroup_id, e.detail
            );
        }
        Event::System(e) => {
            decision(&mut line, &e.decision);
            let _ = write!(line, " detail={:#x}", e.detail);
        }
        Event::ProcessExec(p) => {
            let _ = write!(
                line,
                "process-exec file={:?} comm={:?}",
                lossy(p.filename()),
                lossy(c_str_bytes(&p.comm))
            );
        }
    }
    let _ = write!(
        line,
        " pid={} tgid={} uid={} cgroup={} boot_ns={}",
        h.pid, h.tgid, h.uid, h.cgroup_id, h.boot_ns
    );
    line
}
