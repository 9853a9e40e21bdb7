//! Execution lineage: the record format (`pb`, from
//! `proto/acelogic/lineage/v1/lineage.proto`), the hash chain and process
//! identity (`chain`), kernel records made lineage records (`enrich`), the
//! node journal (`journal`) and what fills it (`pump` from the kernel's
//! ring, through the [`pump::Ring`] port), what both ends of shipping sign
//! (`wire`), shipping it to the collector (`ship`), and kernel records
//! rendered for people (`render`). Nothing here loads BPF: the node
//! daemon plugs the kernel's ring in, and the collector and
//! `acelogicctl` use the format and the chain without it.

pub mod chain;
pub mod enrich;
pub mod enrollment;
pub mod journal;
pub mod note;
pub mod pump;
pub mod sample;
pub mod ship;
pub mod wire;

/// The record format (`proto/acelogic/lineage/v1/lineage.proto`).
pub use acelogic_proto::lineage as pb;

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
        Event::ProcessFork(f) => {
            let _ = write!(
                line,
                "process-fork child={} child_start_ns={}",
                f.child_tgid, f.child_start_ns
            );
        }
        Event::ProcessExit(x) => {
            let _ = write!(line, "process-exit exit_code={:#x}", x.exit_code);
        }
    }
    let _ = write!(
        line,
        " pid={} tgid={} uid={} cgroup={} boot_ns={}",
        h.pid, h.tgid, h.uid, h.cgroup_id, h.boot_ns
    );
    line
}
