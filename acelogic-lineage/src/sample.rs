//! Realistic synthetic lineage, for tests, benchmarks and demos that need
//! records without a kernel: an agent session (a runner, the shell it
//! spawns, the tools the shell runs, decisions allowed by baseline or by
//! an artifact and denied for lack of one, the artifact's authorization
//! records) and a bulk mix of decisions, execs, forks and exits.
//!
//! Process ids come from [`chain::exec_id`] over a made-up boot id, as the
//! daemon computes them, so trees link the way real ones do.

use super::{
    chain,
    pb::{
        Authorization, Decision, FileObject, Lifecycle, NetObject, Process, ProcessExec,
        ProcessExit, ProcessFork, Record, record::Body,
    },
};

/// Boot id of the made-up node.
pub const BOOT_ID: [u8; 16] = *b"acelogic-sample!";

/// A process of the sample.
#[derive(Debug, Clone)]
pub struct Proc {
    pub process: Process,
}

impl Proc {
    /// A process with `pid`, started at `ticks`, child of `parent`.
    #[must_use]
    pub fn new(pid: u32, ticks: u64, parent: Option<&Self>, workload: &str, comm: &str) -> Self {
        Self {
            process: Process {
                exec_id: chain::exec_id(&BOOT_ID, ticks, pid),
                parent_exec_id: parent.map_or_else(String::new, |p| p.process.exec_id.clone()),
                pid,
                tid: pid,
                ppid: parent.map_or(1, |p| p.process.pid),
                uid: 1000,
                cgroup_id: 4242,
                scope_id: 7,
                workload: workload.to_owned(),
                comm: comm.to_owned(),
                start_ticks: ticks,
            },
        }
    }

    #[must_use]
    pub fn exec_id(&self) -> &str {
        &self.process.exec_id
    }
}

/// Builds records for one node, one step of time apart.
#[derive(Debug, Clone)]
pub struct Builder {
    pub node: String,
    pub time_unix_nano: u64,
    pub step_nanos: u64,
    pub epoch: u64,
}

impl Builder {
    #[must_use]
    pub fn new(node: &str, start_unix_nano: u64) -> Self {
        Self {
            node: node.to_owned(),
            time_unix_nano: start_unix_nano,
            step_nanos: 1_000_000,
            epoch: 1,
        }
    }

    /// A record with `body`, at the next step of time.
    pub fn record(&mut self, body: Body) -> Record {
        self.time_unix_nano += self.step_nanos;
        Record {
            node: self.node.clone(),
            time_unix_nano: self.time_unix_nano,
            epoch: self.epoch,
            body: Some(body),
        }
    }

    pub fn exec(&mut self, p: &Proc, filename: &str, argv: &[&str]) -> Record {
        self.record(Body::Exec(ProcessExec {
            process: Some(p.process.clone()),
            filename: filename.to_owned(),
            argv: argv.iter().map(|s| (*s).to_owned()).collect(),
            exe: filename.to_owned(),
            cwd: "/work/repo".to_owned(),
            ..ProcessExec::default()
        }))
    }

    pub fn fork(&mut self, child: &Proc) -> Record {
        self.record(Body::Fork(ProcessFork {
            process: Some(child.process.clone()),
        }))
    }

    pub fn exit(&mut self, p: &Proc, code: u32) -> Record {
        self.record(Body::Exit(ProcessExit {
            process: Some(p.process.clone()),
            exit_code: code << 8,
        }))
    }

    /// A decision on `p`'s action on `object` ("allow"/"deny", reason).
    pub fn decision(
        &mut self,
        p: &Proc,
        hook: &str,
        object: &str,
        verdict: &str,
        reason: &str,
        artifact: Option<(&str, u64)>,
    ) -> Record {
        let (file, net) = if hook == "socket-connect" {
            let (addr, port) = object
                .split_once('/')
                .map_or(object, |(a, _)| a)
                .rsplit_once(':')
                .unwrap_or((object, "0"));
            (
                None,
                Some(NetObject {
                    family: 2,
                    protocol: 6,
                    addr: addr.to_owned(),
                    port: port.parse().unwrap_or(0),
                    ..NetObject::default()
                }),
            )
        } else {
            (
                Some(FileObject {
                    dev: 0x0803,
                    ino: 131_072 + u64::from(p.process.pid),
                    name: object.rsplit('/').next().unwrap_or(object).to_owned(),
                    ..FileObject::default()
                }),
                None,
            )
        };
        self.record(Body::Decision(Decision {
            process: Some(p.process.clone()),
            hook: hook.to_owned(),
            verdict: verdict.to_owned(),
            reason: reason.to_owned(),
            grant_id: artifact.map_or(0, |a| a.1),
            artifact_id: artifact.map_or_else(String::new, |a| a.0.to_owned()),
            object: object.to_owned(),
            file,
            net,
            task: None,
            detail: 0,
        }))
    }

    pub fn authorization(
        &mut self,
        outcome: &str,
        reason: &str,
        artifact_id: &str,
        workload: &str,
        caller: Option<&Proc>,
    ) -> Record {
        self.record(Body::Authorization(Authorization {
            outcome: outcome.to_owned(),
            reason: reason.to_owned(),
            artifact_id: artifact_id.to_owned(),
            workload: workload.to_owned(),
            issuer: "ci".to_owned(),
            approvers: vec!["alice".to_owned(), "bob".to_owned()],
            operation_key: "deploy-main".to_owned(),
            capabilities: vec!["exec /usr/bin/git".to_owned()],
            grant_ids: vec![17],
            detail: String::new(),
            peer_pid: caller.map_or(0, |c| c.process.pid),
            peer_uid: 1000,
            envelope_sha256: "5e".repeat(32),
            peer_exec_id: caller.map_or_else(String::new, |c| c.process.exec_id.clone()),
        }))
    }

    pub fn lifecycle(&mut self, event: &str) -> Record {
        self.record(Body::Lifecycle(Lifecycle {
            event: event.to_owned(),
            policy_sha256: "ab".repeat(32),
            detail: String::new(),
        }))
    }
}

/// The artifact the sample session uses.
pub const ARTIFACT: &str = "0123456789abcdef0123456789abcdef";

/// The processes of [`session`], for assertions.
#[derive(Debug, Clone)]
pub struct SessionProcs {
    pub runner: Proc,
    pub shell: Proc,
    pub git: Proc,
    pub curl_shell: Proc,
    pub batch: Proc,
}

/// An agent session on `node`: workload `agent` runs a shell that pushes
/// with git under artifact [`ARTIFACT`] (issuer ci, approvers alice and
/// bob), is denied a database connection and a curl; workload `batch` is
/// denied a write.
#[must_use]
pub fn session(node: &str, start_unix_nano: u64) -> (Vec<Record>, SessionProcs) {
    let mut b = Builder::new(node, start_unix_nano);
    let runner = Proc::new(100, 5_000, None, "agent", "python3");
    let shell = Proc::new(101, 5_010, Some(&runner), "agent", "bash");
    let git = Proc::new(102, 5_020, Some(&shell), "agent", "git");
    let curl_shell = Proc::new(103, 5_030, Some(&shell), "agent", "bash");
    let batch = Proc::new(200, 6_000, None, "batch", "sh");
    let art = Some((ARTIFACT, 17));
    let records = vec![
        b.lifecycle("daemon-start"),
        b.exec(
            &runner,
            "/usr/bin/python3",
            &["python3", "agent.py", "--task", "release"],
        ),
        b.fork(&shell),
        b.exec(&shell, "/bin/bash", &["bash", "-c", "git push origin main"]),
        b.decision(&shell, "exec", "/usr/bin/git", "deny", "no-grant", None),
        b.authorization("accepted", "", ARTIFACT, "agent", Some(&runner)),
        b.fork(&git),
        b.decision(&git, "exec", "/usr/bin/git", "allow", "grant", art),
        b.exec(&git, "/usr/bin/git", &["git", "push", "origin", "main"]),
        b.decision(
            &git,
            "file-open",
            "/work/repo/.git/index",
            "allow",
            "baseline",
            None,
        ),
        b.decision(
            &git,
            "socket-connect",
            "140.82.112.3:443/tcp",
            "allow",
            "grant",
            art,
        ),
        b.decision(
            &git,
            "socket-connect",
            "10.0.0.5:5432/tcp",
            "deny",
            "no-grant",
            None,
        ),
        b.exit(&git, 0),
        b.authorization("consumed", "", ARTIFACT, "agent", None),
        b.fork(&curl_shell),
        b.decision(
            &curl_shell,
            "exec",
            "/usr/bin/curl",
            "deny",
            "no-grant",
            None,
        ),
        b.exit(&curl_shell, 126),
        b.exit(&shell, 0),
        b.exec(&batch, "/bin/sh", &["sh", "nightly.sh"]),
        b.decision(&batch, "file-open", "/etc/passwd", "deny", "no-grant", None),
        b.exit(&batch, 1),
    ];
    (
        records,
        SessionProcs {
            runner,
            shell,
            git,
            curl_shell,
            batch,
        },
    )
}

/// `n` records of a busy node: per process about one exec, one fork, one
/// exit and six decisions (a mix of allows and denials over files and
/// connections), processes nested a few levels deep. Deterministic.
#[must_use]
pub fn bulk(node: &str, start_unix_nano: u64, n: usize) -> Vec<Record> {
    let mut b = Builder::new(node, start_unix_nano);
    b.step_nanos = 10_000;
    let mut out = Vec::with_capacity(n);
    let mut procs: Vec<Proc> = vec![Proc::new(1000, 1, None, "agent", "runner")];
    let mut pid = 1000u32;
    let mut i = 0usize;
    while out.len() < n {
        i += 1;
        let parent = procs[i % procs.len()].clone();
        pid = pid.wrapping_add(1).max(1000);
        let child = Proc::new(pid, 10 + i as u64, Some(&parent), "agent", "tool");
        let file = format!("/work/repo/src/module_{}/file_{}.rs", i % 97, i % 13);
        let addr = format!("10.{}.{}.{}:443/tcp", i % 7, i % 11, i % 251);
        let steps: [Record; 9] = [
            b.fork(&child),
            b.exec(
                &child,
                "/usr/bin/cargo",
                &["cargo", "build", "--release", "-p", "crate"],
            ),
            b.decision(&child, "file-open", &file, "allow", "baseline", None),
            b.decision(&child, "file-open", &file, "allow", "baseline", None),
            b.decision(
                &child,
                "socket-connect",
                &addr,
                "allow",
                "grant",
                Some((ARTIFACT, 17)),
            ),
            b.decision(&child, "socket-connect", &addr, "deny", "no-grant", None),
            b.decision(&child, "exec", "/usr/bin/rustc", "allow", "baseline", None),
            b.decision(&child, "file-open", "/etc/shadow", "deny", "no-grant", None),
            b.exit(&child, 0),
        ];
        for r in steps {
            if out.len() < n {
                out.push(r);
            }
        }
        if procs.len() < 64 {
            procs.push(child);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;

    #[test]
    fn session_links_its_tree_and_bulk_is_sized() {
        let (records, p) = session("node-a", 1);
        assert_eq!(p.git.process.parent_exec_id, p.shell.exec_id());
        assert_eq!(p.shell.process.parent_exec_id, p.runner.exec_id());
        assert!(records.iter().all(|r| r.node == "node-a"));
        assert!(
            records
                .windows(2)
                .all(|w| w[0].time_unix_nano < w[1].time_unix_nano)
        );
        let bulk = bulk("node-a", 1, 1000);
        assert_eq!(bulk.len(), 1000);
        let bytes: usize = bulk.iter().map(Message::encoded_len).sum();
        let avg = bytes / bulk.len();
        assert!((100..400).contains(&avg), "average record {avg} bytes");
    }
}
