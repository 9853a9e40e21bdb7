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

/// Signal names by number (x86-64 numbering), for exit statuses.
const SIGNALS: [&str; 32] = [
    "0",
    "SIGHUP",
    "SIGINT",
    "SIGQUIT",
    "SIGILL",
    "SIGTRAP",
    "SIGABRT",
    "SIGBUS",
    "SIGFPE",
    "SIGKILL",
    "SIGUSR1",
    "SIGSEGV",
    "SIGUSR2",
    "SIGPIPE",
    "SIGALRM",
    "SIGTERM",
    "SIGSTKFLT",
    "SIGCHLD",
    "SIGCONT",
    "SIGSTOP",
    "SIGTSTP",
    "SIGTTIN",
    "SIGTTOU",
    "SIGURG",
    "SIGXCPU",
    "SIGXFSZ",
    "SIGVTALRM",
    "SIGPROF",
    "SIGWINCH",
    "SIGIO",
    "SIGPWR",
    "SIGSYS",
];

/// A raw wait status (`task->exit_code`) in words: `exited N`, `killed by
/// SIGKILL`, `killed by SIGSEGV (core dumped)`. The raw value stays in
/// the record (and in JSON).
#[must_use]
pub fn wait_status(raw: u32) -> String {
    let signal = raw & 0x7f;
    if signal == 0 {
        return format!("exited {}", (raw >> 8) & 0xff);
    }
    let name = SIGNALS
        .get(signal as usize)
        .map_or_else(|| format!("signal {signal}"), |n| (*n).to_owned());
    if raw & 0x80 != 0 {
        format!("killed by {name} (core dumped)")
    } else {
        format!("killed by {name}")
    }
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn decision(line: &mut String, d: &DecisionInfo) {
    let _ = write!(
        line,
        "decision hook={} verdict={} reason={} scope={}",
        d.hook,
        d.verdict,
        d.reason,
        acelogic_domain::policy::scope_text(d.scope_id)
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
            if let Some(p) = &e.path {
                let _ = write!(line, " path={:?}", enrich::path_text(p).0);
            }
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
                e.target_tgid,
                acelogic_domain::policy::scope_text(e.target_scope_id),
                e.target_cgroup_id,
                e.detail
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
            if let Some(id) = &p.identity {
                if let Some(exe) = &id.exe {
                    let _ = write!(line, " exe={:?}", enrich::path_text(exe).0);
                }
                let argv: Vec<String> = id.argv().map(lossy).collect();
                let _ = write!(line, " argv={argv:?}");
            }
        }
        Event::ProcessFork(f) => {
            let _ = write!(
                line,
                "process-fork child={} child_start_ns={}",
                f.child_tgid, f.child_start_ns
            );
        }
        Event::ProcessExit(x) => {
            let _ = write!(
                line,
                "process-exit status={:?} exit_code={:#x}",
                wait_status(x.exit_code),
                x.exit_code
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

#[cfg(test)]
mod text_tests {
    use super::wait_status;

    #[test]
    fn wait_statuses_read_as_words() {
        assert_eq!(wait_status(0), "exited 0");
        assert_eq!(wait_status(126 << 8), "exited 126");
        assert_eq!(wait_status(9), "killed by SIGKILL");
        assert_eq!(wait_status(11 | 0x80), "killed by SIGSEGV (core dumped)");
        assert_eq!(wait_status(15), "killed by SIGTERM");
        assert_eq!(wait_status(0x7e), "killed by signal 126");
    }
}
