//! Execution lineage. At this stage: rendering kernel records for people.
//! The journal, shipping and the collector arrive with issue 5.

use std::fmt::Write as _;

use acelogic_common::user::{Event, c_str_bytes};

/// One human-readable line for a record.
#[must_use]
pub fn render(event: &Event) -> String {
    let h = event.header();
    let mut line = String::new();
    match event {
        Event::Exec(d) => {
            let _ = write!(
                line,
                "decision hook={} verdict={} reason={} scope={} grant={}",
                d.hook, d.verdict, d.reason, d.scope_id, d.grant_id
            );
            let _ = write!(
                line,
                " comm={:?}",
                String::from_utf8_lossy(c_str_bytes(&d.comm))
            );
        }
        Event::ProcessExec(p) => {
            let _ = write!(
                line,
                "process-exec file={:?} comm={:?}",
                String::from_utf8_lossy(p.filename()),
                String::from_utf8_lossy(c_str_bytes(&p.comm))
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
