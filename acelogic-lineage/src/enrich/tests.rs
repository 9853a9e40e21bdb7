//! Identity from kernel records alone, and procfs only where it still
//! names the same process.

use std::{
    fs,
    path::{Path, PathBuf},
};

use acelogic_common::{
    codes::{hook, reason, verdict},
    event::{
        self, Decision, EventHeader, FileDecision, KPath, ProcessExec, ProcessExecV1,
        ProcessExecV2, ProcessExit, ProcessFork, path_flag, record_size,
    },
    user::Event,
};

use super::*;

fn bytes_of<T: Copy>(v: &T) -> Vec<u8> {
    // SAFETY: test-only view of a plain-integer repr(C) value as bytes.
    unsafe { std::slice::from_raw_parts(std::ptr::from_ref(v).cast::<u8>(), size_of::<T>()) }
        .to_vec()
}

/// A procfs tree with one process in it, removed when the `TempDir` is
/// dropped: keep it bound while the tree is read.
fn fake_proc(tag: &str, pid: u32, ppid: u32, start_ticks: u64) -> tempfile::TempDir {
    let root = tempfile::Builder::new()
        .prefix(&format!("acelogic-proc-{tag}-"))
        .tempdir()
        .unwrap();
    add_proc(root.path(), pid, ppid, start_ticks);
    root
}

/// Adds process `pid` to a fake procfs tree.
fn add_proc(root: &Path, pid: u32, ppid: u32, start_ticks: u64) {
    let dir = root.join(pid.to_string());
    fs::create_dir_all(&dir).unwrap();
    // comm with a space and a parenthesis, as procfs allows.
    let mut stat = format!("{pid} (a b) c) S {ppid}");
    for _ in 5..22 {
        stat.push_str(" 0");
    }
    stat.push_str(&format!(" {start_ticks} 0 0\n"));
    fs::write(dir.join("stat"), stat).unwrap();
    fs::write(dir.join("cmdline"), b"/bin/sh\0-c\0echo hi\0").unwrap();
    std::os::unix::fs::symlink("/bin/sh", dir.join("exe")).unwrap();
    std::os::unix::fs::symlink("/tmp", dir.join("cwd")).unwrap();
}

fn header(kind: u16, size: u16, tgid: u32, start_ns: u64) -> EventHeader {
    EventHeader {
        kind,
        size,
        pid: tgid,
        tgid,
        uid: 0,
        boot_ns: 1,
        cgroup_id: 12,
        start_ns,
    }
}

fn exec(tgid: u32, start_ns: u64) -> Event {
    exec_under(tgid, start_ns, 0, 0)
}

/// An exec record naming its parent (`parent_tgid`, started at
/// `parent_start_ns`; zeros: unknown).
fn exec_under(tgid: u32, start_ns: u64, parent_tgid: u32, parent_start_ns: u64) -> Event {
    let mut filename = [0u8; event::FILENAME_LEN];
    filename[..7].copy_from_slice(b"/bin/sh");
    // The layout of builds before the kernel read the identity: these
    // tests are about what procfs gives (`kernel_identity_*` below about
    // the kernel's).
    let raw = ProcessExecV2 {
        header: header(
            event::kind::PROCESS_EXEC,
            record_size::<ProcessExecV2>(),
            tgid,
            start_ns,
        ),
        parent_tgid,
        filename_len: 7,
        parent_start_ns,
        comm: *b"sh\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
        filename,
    };
    Event::decode(&bytes_of(&raw)).unwrap()
}

fn fork(parent: u32, parent_start_ns: u64, child: u32, child_start_ns: u64) -> Event {
    let raw = ProcessFork {
        header: header(
            event::kind::PROCESS_FORK,
            record_size::<ProcessFork>(),
            parent,
            parent_start_ns,
        ),
        child_tgid: child,
        _pad: 0,
        child_start_ns,
    };
    Event::decode(&bytes_of(&raw)).unwrap()
}

fn exit(tgid: u32, start_ns: u64) -> Event {
    let raw = ProcessExit {
        header: header(
            event::kind::PROCESS_EXIT,
            record_size::<ProcessExit>(),
            tgid,
            start_ns,
        ),
        exit_code: 0,
        _pad: 0,
    };
    Event::decode(&bytes_of(&raw)).unwrap()
}

/// An allowed exec decision of `tgid` whose kernel ppid is `ppid`.
fn exec_decision(tgid: u32, start_ns: u64, ppid: u32) -> Event {
    let raw = FileDecision {
        header: header(
            event::kind::FILE_DECISION,
            record_size::<FileDecision>(),
            tgid,
            start_ns,
        ),
        decision: Decision {
            scope_id: 5,
            ppid,
            hook: hook::EXEC,
            verdict: verdict::ALLOW,
            reason: reason::BASELINE,
            _pad: 0,
            grant_id: 0,
            comm: [0; event::COMM_LEN],
        },
        file: FileId::default(),
        other: FileId::default(),
        detail: 0,
        name_len: 0,
        name: [0; event::NAME_LEN],
        path: KPath::EMPTY,
    };
    Event::decode(&bytes_of(&raw)).unwrap()
}

/// A kernel path of `components` (root first), stored leaf first.
fn kpath(components: &[&str], flags: u16) -> KPath {
    let mut p = KPath::EMPTY;
    let mut pos = 0;
    for c in components.iter().rev() {
        p.bytes[pos..pos + c.len()].copy_from_slice(c.as_bytes());
        pos += c.len() + 1;
    }
    p.len = u16::try_from(pos).unwrap();
    p.depth = u16::try_from(components.len()).unwrap();
    p.flags = flags;
    p
}

#[test]
fn kernel_paths_read_root_first() {
    use acelogic_common::user::KernelPath;
    let p = |c: &[&str], f| KernelPath::of(kpath(c, f));
    let full = p(&["srv", "a", "b", "c", "file"], 0).unwrap();
    assert_eq!(path_text(&full), ("/srv/a/b/c/file".to_owned(), false, ""));
    let cut = p(&["c", "file"], path_flag::TRUNCATED).unwrap();
    assert_eq!(path_text(&cut), (".../c/file".to_owned(), true, ""));
    let fs = p(&["x"], path_flag::NO_MOUNT).unwrap();
    assert_eq!(
        path_text(&fs),
        ("/x".to_owned(), false, "filesystem-relative")
    );
    assert!(p(&[], 0).is_none(), "an empty walk is no path");
    let root = p(&[], path_flag::UNLINKED).unwrap();
    assert_eq!(path_text(&root), ("...".to_owned(), true, "unlinked"));
}

#[test]
fn kernel_identity_is_used_without_procfs() {
    // procfs says something else: the record must not be read from it.
    let start_ns = 555 * 10_000_000;
    let tree = fake_proc("ident", 77, 1, 555);
    let mut e = Enricher::with_proc("n", 1, [3; 16], tree.path().to_path_buf());
    let mut argv = [0u8; event::ARGV_LEN];
    argv[..17].copy_from_slice(b"true\0alpha\0beta\0\0");
    let mut filename = [0u8; event::FILENAME_LEN];
    filename[..9].copy_from_slice(b"/tmp/tool");
    let raw = ProcessExec {
        header: header(
            event::kind::PROCESS_EXEC,
            record_size::<ProcessExec>(),
            77,
            start_ns,
        ),
        parent_tgid: 0,
        filename_len: 9,
        parent_start_ns: 0,
        comm: [0; event::COMM_LEN],
        filename,
        argv_len: 16,
        argv_flags: path_flag::TRUNCATED,
        _pad: 0,
        argv,
        exe: kpath(&["usr", "bin", "busybox"], 0),
        cwd: KPath::EMPTY,
    };
    let r = e.record(&Event::decode(&bytes_of(&raw)).unwrap());
    let Some(Body::Exec(x)) = r.body else {
        panic!("{r:?}")
    };
    assert_eq!(x.argv, ["true", "alpha", "beta"]);
    assert!(x.argv_truncated);
    assert_eq!(x.exe, "/usr/bin/busybox");
    assert_eq!(x.filename, "/tmp/tool");
    assert_eq!(
        (x.cwd.as_str(), x.enrichment.as_str()),
        ("", "cwd-unreadable")
    );
}

/// The process a record is about.
fn process_of(r: &pb::Record) -> pb::Process {
    match r.body.clone() {
        Some(Body::Exec(x)) => x.process,
        Some(Body::Exit(x)) => x.process,
        Some(Body::Fork(x)) => x.process,
        Some(Body::Decision(d)) => d.process,
        other => panic!("{other:?}"),
    }
    .unwrap()
}

#[test]
fn proc_stat_reads_past_a_tricky_comm() {
    let tree = fake_proc("stat", 4242, 17, 987_654);
    let root = tree.path().to_path_buf();
    assert_eq!(
        proc_stat(&root, 4242),
        Some(ProcStat {
            ppid: 17,
            start_ticks: 987_654
        })
    );
    assert_eq!(proc_stat(&root, 4243), None);
}

#[test]
fn an_exec_is_enriched_from_procfs_only_when_the_pid_is_still_that_process() {
    let start_ns = 987_654 * 10_000_000 + 5;
    let tree = fake_proc("exec", 4242, 17, 987_654);
    let root = tree.path().to_path_buf();
    let boot = [3; 16];
    let mut e = Enricher::with_proc("n", 1, boot, root.clone());
    let r = e.record(&exec(4242, start_ns));
    let Some(Body::Exec(x)) = r.body else {
        panic!("{r:?}")
    };
    let p = x.process.unwrap();
    assert_eq!(p.exec_id, exec_id(&boot, 987_654, 4242));
    assert_eq!(p.start_ticks, 987_654);
    assert_eq!(p.ppid, 17, "ppid from procfs, the process being the same");
    assert_eq!(x.argv, ["/bin/sh", "-c", "echo hi"]);
    assert_eq!((x.exe.as_str(), x.cwd.as_str()), ("/bin/sh", "/tmp"));
    assert_eq!(x.enrichment, "");

    // The same pid, started at another time: someone else's now.
    let mut e = Enricher::with_proc("n", 1, boot, root);
    let r = e.record(&exec(4242, start_ns + 50_000_000));
    let Some(Body::Exec(x)) = r.body else {
        panic!("{r:?}")
    };
    assert_eq!(x.enrichment, "pid-reused");
    assert!(x.argv.is_empty());
    let p = x.process.unwrap();
    assert_eq!(
        p.exec_id,
        exec_id(&boot, 987_659, 4242),
        "identity from the kernel"
    );
    assert_eq!(p.parent_exec_id, "", "no parent guessed from a reused pid");
}

#[test]
fn a_gone_process_keeps_its_kernel_identity() {
    let mut e = Enricher::with_proc("n", 1, [3; 16], PathBuf::from("/nonexistent"));
    let r = e.record(&exec(9, 20_000_000));
    let Some(Body::Exec(x)) = r.body else {
        panic!("{r:?}")
    };
    assert_eq!(x.enrichment, "process-exited");
    assert_eq!(x.process.unwrap().exec_id, exec_id(&[3; 16], 2, 9));
}

#[test]
fn exit_forgets_the_parent_and_reports_the_status() {
    let mut e = Enricher::with_proc("n", 1, [3; 16], PathBuf::from("/nonexistent"));
    let child = exec_id(&[3; 16], 2, 9);
    e.remember(
        child.clone(),
        Link {
            exec_id: "parent".into(),
            pid: 1,
            exact: true,
        },
    );
    let raw = ProcessExit {
        header: header(
            event::kind::PROCESS_EXIT,
            record_size::<ProcessExit>(),
            9,
            20_000_000,
        ),
        exit_code: 7 << 8,
        _pad: 0,
    };
    let r = e.record(&Event::decode(&bytes_of(&raw)).unwrap());
    let Some(Body::Exit(x)) = r.body else {
        panic!("{r:?}")
    };
    assert_eq!(x.exit_code, 7 << 8);
    let p = x.process.unwrap();
    assert_eq!(
        (p.exec_id.as_str(), p.parent_exec_id.as_str()),
        (child.as_str(), "parent")
    );
    assert!(!e.parents.contains_key(&child));
}

/// Ticks as ns, a little past the tick (the kernel's value is exact).
const fn ns(ticks: u64) -> u64 {
    ticks * 10_000_000 + 4_321
}

#[test]
fn the_parent_comes_from_the_exec_record() {
    // procfs knows nothing: the child and its parent are long gone, as
    // when a restarted daemon catches up on what the killed one left.
    let boot = [3; 16];
    let mut e = Enricher::with_proc("n", 1, boot, PathBuf::from("/nonexistent"));
    let r = e.record(&exec_under(4242, ns(900), 17, ns(500)));
    let p = process_of(&r);
    let sh = exec_id(&boot, 500, 17);
    assert_eq!(p.parent_exec_id, sh, "the parent named by the record");
    assert_eq!(p.ppid, 17);
    // Remembered for the process's later records.
    let p = process_of(&e.record(&exit(4242, ns(900))));
    assert_eq!((p.parent_exec_id.as_str(), p.ppid), (sh.as_str(), 17));
    assert!(e.parents.is_empty(), "forgotten at exit");

    // A parent the kernel could not read is no parent, not a guess.
    let p = process_of(&e.record(&exec_under(4243, ns(901), 17, 0)));
    assert_eq!((p.parent_exec_id.as_str(), p.ppid), ("", 0));
}

#[test]
fn the_exec_record_beats_procfs_and_the_fork_record_beats_both() {
    let boot = [3; 16];
    // procfs: the child (still running) and, under the parent's pid, a
    // stranger that started after it.
    let tree = fake_proc("exact", 4242, 17, 900);
    add_proc(tree.path(), 17, 1, 950);
    let mut e = Enricher::with_proc("n", 1, boot, tree.path().to_path_buf());
    let p = process_of(&e.record(&exec_under(4242, ns(900), 17, ns(500))));
    assert_eq!(p.parent_exec_id, exec_id(&boot, 500, 17));

    // The creator exited before the exec, which then names the reaper
    // (real_parent): the fork record named the creator, and it stays.
    let mut e = Enricher::with_proc("n", 1, boot, PathBuf::from("/nonexistent"));
    let creator = exec_id(&boot, 800, 30);
    let f = process_of(&e.record(&fork(30, ns(800), 31, ns(850))));
    assert_eq!(f.parent_exec_id, creator);
    let p = process_of(&e.record(&exec_under(31, ns(850), 1, ns(1))));
    assert_eq!((p.parent_exec_id.as_str(), p.ppid), (creator.as_str(), 30));
}

#[test]
fn a_reused_parent_pid_in_procfs_is_never_the_parent() {
    let boot = [3; 16];
    // Child 4242 started at tick 900 under parent 17, which has exited;
    // pid 17 now belongs to a process started at tick 950, after the
    // child: it cannot be the parent.
    let tree = fake_proc("reused", 4242, 17, 900);
    add_proc(tree.path(), 17, 1, 950);
    let root = tree.path().to_path_buf();

    // A decision carries the kernel's ppid only.
    let mut e = Enricher::with_proc("n", 1, boot, root);
    let p = process_of(&e.record(&exec_decision(4242, ns(900), 17)));
    assert_eq!(p.parent_exec_id, "", "no link to the pid's new owner");
    assert_eq!(p.ppid, 17, "the kernel's ppid is still reported");
    assert!(e.parents.is_empty(), "nothing remembered");
    // An exec record from a build without parent fields; procfs says the
    // running child's ppid is 17.
    let mut filename = [0u8; event::FILENAME_LEN];
    filename[..9].copy_from_slice(b"/bin/true");
    let old = ProcessExecV1 {
        header: header(
            event::kind::PROCESS_EXEC,
            record_size::<ProcessExecV1>(),
            4242,
            ns(900),
        ),
        _pad: 0,
        filename_len: 9,
        comm: [0; event::COMM_LEN],
        filename,
    };
    let p = process_of(&e.record(&Event::decode(&bytes_of(&old)).unwrap()));
    assert_eq!(p.parent_exec_id, "", "no link to the pid's new owner");
    // Nor for the child's exit.
    let p = process_of(&e.record(&exit(4242, ns(900))));
    assert_eq!(p.parent_exec_id, "");

    // The same tree, but pid 17 started before the child (at tick 500, or
    // in the child's own tick): it may be the parent, and is linked.
    for parent_ticks in [500, 900] {
        let tree = fake_proc("alive", 4242, 17, 900);
        add_proc(tree.path(), 17, 1, parent_ticks);
        let mut e = Enricher::with_proc("n", 1, boot, tree.path().to_path_buf());
        let p = process_of(&e.record(&exec_decision(4242, ns(900), 17)));
        assert_eq!(p.parent_exec_id, exec_id(&boot, parent_ticks, 17));
    }
}

#[test]
fn a_restarted_enricher_links_the_exec_it_did_not_see_fork() {
    // The killed daemon journaled the fork and the exec decision; the new
    // one, with nothing in memory, gets the exec and the exit. The loop
    // shell has exited and its pid went to a stranger since.
    let boot = [3; 16];
    let tree = tempfile::tempdir().unwrap();
    add_proc(tree.path(), 100, 1, 2_000);
    let mut old = Enricher::with_proc("n", 1, boot, tree.path().to_path_buf());
    let sh = exec_id(&boot, 1_000, 100);
    old.record(&fork(100, ns(1_000), 101, ns(1_500)));
    let d = process_of(&old.record(&exec_decision(101, ns(1_500), 100)));
    assert_eq!(d.parent_exec_id, sh);
    let mut new = Enricher::with_proc("n", 2, boot, tree.path().to_path_buf());
    let x = process_of(&new.record(&exec_under(101, ns(1_500), 100, ns(1_000))));
    assert_eq!(x.parent_exec_id, sh);
    let x = process_of(&new.record(&exit(101, ns(1_500))));
    assert_eq!(x.parent_exec_id, sh);
}
