//! Names of maps, programs and globals in the BPF object.
//!
//! The kernel truncates object names to 15 bytes silently, so every name is
//! checked against that bound at compile time. BPF statics must carry the
//! same identifiers (the `#[map]`/`#[lsm]` macros name objects after the
//! static or function); a userspace test parses the built object and checks
//! that each name below is present, and that each gate sits on its hook.

/// Registered cgroups: `cgroup id -> ScopeEntry`.
pub const MAP_SCOPES: &str = "SCOPES";
/// Per-scope flags: `scope id -> ScopeState`.
pub const MAP_SCOPE_STATE: &str = "SCOPE_STATE";
/// Result of the ancestor walk per cgroup: `cgroup id -> CachedScope`.
pub const MAP_SCOPE_CACHE: &str = "SCOPE_CACHE";
/// One-slot array: the generation of `SCOPES` (bumped on every change).
pub const MAP_SCOPE_GEN: &str = "SCOPE_GEN";
/// Files a scope may use with no artifact: `FileKey -> FileRule`.
pub const MAP_FILE_BASELINE: &str = "FILE_BASELINE";
/// Files granted by artifacts: `FileKey -> Grant`.
pub const MAP_FILE_GRANTS: &str = "FILE_GRANTS";
/// Network destinations allowed with no artifact (LPM trie of `NetKey`).
pub const MAP_NET_BASELINE: &str = "NET_BASELINE";
/// Network destinations granted by artifacts (LPM trie of `NetKey`).
pub const MAP_NET_GRANTS: &str = "NET_GRANTS";
/// Ring buffer carrying every record (decisions and lifecycle) to userspace.
pub const MAP_EVENTS: &str = "EVENTS";
/// Per-CPU counters indexed by [`crate::codes::counter`].
pub const MAP_COUNTERS: &str = "COUNTERS";
/// Open files a scope's write was decided on: file address -> `Writer`.
pub const MAP_WRITERS: &str = "WRITERS";
/// Slot 0: how many entries [`MAP_WRITERS`] holds (`file_free` reads
/// nothing else while it is 0).
pub const MAP_WRITERS_HELD: &str = "WRITERS_HELD";
/// Slot 0: generation of the file rules (baselines and grants), bumped by
/// the agent after each change; a remembered write of an older
/// generation is decided again.
pub const MAP_RULES_GEN: &str = "RULES_GEN";
/// Per-CPU scratch of the kernel's path walks (see `kpath.rs`): never
/// read by userspace.
pub const MAP_PATH_WALK: &str = "PATH_WALK";
/// Per CPU: the last cgroup found ungoverned (`scope::LastUngoverned`).
pub const MAP_SCOPE_LAST: &str = "SCOPE_LAST";

/// Every map name, for checks, pinning and uninstall.
pub const ALL_MAPS: [&str; 15] = [
    MAP_SCOPES,
    MAP_SCOPE_STATE,
    MAP_SCOPE_CACHE,
    MAP_SCOPE_GEN,
    MAP_FILE_BASELINE,
    MAP_FILE_GRANTS,
    MAP_NET_BASELINE,
    MAP_NET_GRANTS,
    MAP_EVENTS,
    MAP_COUNTERS,
    MAP_WRITERS,
    MAP_WRITERS_HELD,
    MAP_RULES_GEN,
    MAP_PATH_WALK,
    MAP_SCOPE_LAST,
];

/// An LSM program and the hook it attaches to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gate {
    /// Program name in the object.
    pub program: &'static str,
    /// LSM hook name (without the `bpf_lsm_` prefix).
    pub hook: &'static str,
}

macro_rules! gates {
    ($($(#[$m:meta])* $name:ident = $program:literal on $hook:literal;)+) => {
        /// Every LSM gate.
        pub mod gate {
            use super::Gate;
            $($(#[$m])* pub const $name: Gate = Gate { program: $program, hook: $hook };)+
        }
        /// Every gate of the object. Some hooks have one program per kernel
        /// prototype; the loader attaches the one that matches.
        pub const ALL_GATES: &[Gate] = &[$(gate::$name),+];
    };
}

gates! {
    EXEC = "exec_gate" on "bprm_check_security";
    MMAP = "mmap_gate" on "mmap_file";
    MPROTECT = "mprotect_gate" on "file_mprotect";
    OPEN = "open_gate" on "file_open";
    UNLINK = "unlink_gate" on "path_unlink";
    MKDIR = "mkdir_gate" on "path_mkdir";
    RMDIR = "rmdir_gate" on "path_rmdir";
    MKNOD = "mknod_gate" on "path_mknod";
    TRUNCATE = "truncate_gate" on "path_truncate";
    SYMLINK = "symlink_gate" on "path_symlink";
    LINK = "link_gate" on "path_link";
    RENAME = "rename_gate" on "path_rename";
    /// The rename gate for kernels before 5.19, whose hook has no `flags`
    /// (an exchange calls it twice, once each way).
    RENAME_4 = "rename_gate_4" on "path_rename";
    CHMOD = "chmod_gate" on "path_chmod";
    CHOWN = "chown_gate" on "path_chown";
    /// Writes through any descriptor (write, pwrite, writev, fallocate,
    /// copy_file_range, splice, sendfile, io_uring).
    WRITE = "write_gate" on "file_permission";
    /// ftruncate and open(O_TRUNC), Linux 6.2+ (before, `path_truncate`).
    FILE_TRUNCATE = "ftruncate_gate" on "file_truncate";
    /// Timestamps alone (utimes, futimens); other attribute changes are
    /// decided where they start.
    SETATTR = "setattr_gate" on "inode_setattr";
    /// The setattr gate for kernels whose hook has no `idmap` (6.1).
    SETATTR_2 = "setattr_gate_2" on "inode_setattr";
    SETXATTR = "setxattr_gate" on "inode_setxattr";
    REMOVEXATTR = "rmxattr_gate" on "inode_removexattr";
    /// POSIX ACLs, Linux 6.2+ (before, the xattr gates decide them).
    SET_ACL = "set_acl_gate" on "inode_set_acl";
    REMOVE_ACL = "rm_acl_gate" on "inode_remove_acl";
    /// Not a gate: forgets a closed file's decided writes (`WRITERS`).
    FILE_FREE = "file_free" on "file_free_security";
    CONNECT = "connect_gate" on "socket_connect";
    SENDMSG = "sendmsg_gate" on "socket_sendmsg";
    UNIX_CONNECT = "unix_conn_gate" on "unix_stream_connect";
    UNIX_SEND = "unix_send_gate" on "unix_may_send";
    BPF = "bpf_gate" on "bpf";
    /// The bpf gate for Linux 6.14+, whose hook gained a parameter.
    BPF_K = "bpf_gate_k" on "bpf";
    KILL = "kill_gate" on "task_kill";
    PTRACE = "ptrace_gate" on "ptrace_access_check";
    MOUNT = "mount_gate" on "sb_mount";
    MOVE_MOUNT = "move_mount_gate" on "move_mount";
    CLONE = "clone_gate" on "task_alloc";
    /// io_uring personalities: a request under other credentials.
    URING_CREDS = "uring_gate" on "uring_override_creds";
}

/// BTF tracepoint program on `sched_process_exec`: process lineage.
pub const PROG_PROC_EXEC: &str = "proc_exec";
/// BTF tracepoint of [`PROG_PROC_EXEC`].
pub const TP_PROC_EXEC: &str = "sched_process_exec";
/// BTF tracepoint program on `sched_process_fork`: a governed task created
/// a process.
pub const PROG_PROC_FORK: &str = "proc_fork";
/// BTF tracepoint of [`PROG_PROC_FORK`] (the kernel's `btf_trace_<name>`).
pub const TP_PROC_FORK: &str = "sched_process_fork";
/// BTF tracepoint program on `sched_process_exit`: a governed process
/// exited.
pub const PROG_PROC_EXIT: &str = "proc_exit";
/// BTF tracepoint of [`PROG_PROC_EXIT`].
pub const TP_PROC_EXIT: &str = "sched_process_exit";
/// Every lineage (recording, non-deciding) program.
pub const ALL_LINEAGE: [&str; 3] = [PROG_PROC_EXEC, PROG_PROC_FORK, PROG_PROC_EXIT];

/// Every program and its floor: a program on the same hook that returns
/// at once (the previous verdict; 0 for tracepoints), which the benchmark
/// attaches in place of the real one to measure what calling a BPF
/// program costs by itself. The daemon never attaches a floor.
pub const FLOORS: [(&str, &str); 39] = [
    (gate::EXEC.program, "f_exec"),
    (gate::MMAP.program, "f_mmap"),
    (gate::MPROTECT.program, "f_mprotect"),
    (gate::OPEN.program, "f_open"),
    (gate::UNLINK.program, "f_unlink"),
    (gate::MKDIR.program, "f_mkdir"),
    (gate::RMDIR.program, "f_rmdir"),
    (gate::MKNOD.program, "f_mknod"),
    (gate::TRUNCATE.program, "f_truncate"),
    (gate::SYMLINK.program, "f_symlink"),
    (gate::LINK.program, "f_link"),
    (gate::RENAME.program, "f_rename"),
    (gate::RENAME_4.program, "f_rename_4"),
    (gate::CHMOD.program, "f_chmod"),
    (gate::CHOWN.program, "f_chown"),
    (gate::WRITE.program, "f_write"),
    (gate::FILE_TRUNCATE.program, "f_ftruncate"),
    (gate::FILE_FREE.program, "f_file_free"),
    (gate::SETATTR.program, "f_setattr"),
    (gate::SETATTR_2.program, "f_setattr_2"),
    (gate::SETXATTR.program, "f_setxattr"),
    (gate::REMOVEXATTR.program, "f_rmxattr"),
    (gate::SET_ACL.program, "f_set_acl"),
    (gate::REMOVE_ACL.program, "f_rm_acl"),
    (gate::CONNECT.program, "f_connect"),
    (gate::SENDMSG.program, "f_sendmsg"),
    (gate::UNIX_CONNECT.program, "f_unix_conn"),
    (gate::UNIX_SEND.program, "f_unix_send"),
    (gate::BPF.program, "f_bpf"),
    (gate::BPF_K.program, "f_bpf_k"),
    (gate::KILL.program, "f_kill"),
    (gate::PTRACE.program, "f_ptrace"),
    (gate::MOUNT.program, "f_mount"),
    (gate::MOVE_MOUNT.program, "f_move_mount"),
    (gate::CLONE.program, "f_clone"),
    (gate::URING_CREDS.program, "f_uring"),
    (PROG_PROC_EXEC, "f_proc_exec"),
    (PROG_PROC_FORK, "f_proc_fork"),
    (PROG_PROC_EXIT, "f_proc_exit"),
];

/// The floor of `program` ([`FLOORS`]).
#[must_use]
pub fn floor(program: &str) -> Option<&'static str> {
    FLOORS.iter().find(|(p, _)| *p == program).map(|(_, f)| *f)
}

/// Global set at load time: the [`crate::offsets::KernelOffsets`] table.
pub const GLOBAL_OFFSETS: &str = "OFFSETS";

/// The kernel keeps 15 bytes of an object name plus the terminating NUL.
pub const MAX_OBJ_NAME: usize = 15;

const _: () = {
    let mut i = 0;
    while i < ALL_MAPS.len() {
        assert!(ALL_MAPS[i].len() <= MAX_OBJ_NAME);
        i += 1;
    }
    let mut i = 0;
    while i < ALL_GATES.len() {
        assert!(ALL_GATES[i].program.len() <= MAX_OBJ_NAME);
        i += 1;
    }
    let mut i = 0;
    while i < ALL_LINEAGE.len() {
        assert!(ALL_LINEAGE[i].len() <= MAX_OBJ_NAME);
        i += 1;
    }
    let mut i = 0;
    while i < FLOORS.len() {
        assert!(FLOORS[i].1.len() <= MAX_OBJ_NAME);
        i += 1;
    }
};
