//! Identity from kernel records alone, and procfs only where it still
//! names the same process.

use std::{fs, path::PathBuf};

use acelogic_common::{
    event::{self, EventHeader, ProcessExec, ProcessExit, record_size},
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
    let dir = root.path().join(pid.to_string());
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
    root
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
    let mut filename = [0u8; event::FILENAME_LEN];
    filename[..7].copy_from_slice(b"/bin/sh");
    let raw = ProcessExec {
        header: header(
            event::kind::PROCESS_EXEC,
            record_size::<ProcessExec>(),
            tgid,
            start_ns,
        ),
        _pad: 0,
        filename_len: 7,
        comm: *b"sh\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
        filename,
    };
    Event::decode(&bytes_of(&raw)).unwrap()
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
    e.remember(child.clone(), "parent".into());
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
