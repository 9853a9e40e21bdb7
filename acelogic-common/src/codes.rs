//! Numbered codes carried in records and counters.
//!
//! They cross the kernel boundary as integers. Userspace converts them with
//! `TryFrom` (under the `user` feature) so a code this build does not know
//! is reported, not guessed.

/// Which hook made a decision. Grouped by tens: exec, files, network,
/// self-protection.
pub mod hook {
    /// `bprm_check_security`: a process is about to execute a binary.
    pub const EXEC: u16 = 1;
    /// `mmap_file` with `PROT_EXEC`: a file is mapped executable.
    pub const MMAP_EXEC: u16 = 2;
    /// `file_mprotect` adding `PROT_EXEC` to a file mapping.
    pub const MPROTECT_EXEC: u16 = 3;
    /// `file_open` with write intent.
    pub const FILE_OPEN: u16 = 10;
    pub const PATH_UNLINK: u16 = 11;
    pub const PATH_MKDIR: u16 = 12;
    pub const PATH_RMDIR: u16 = 13;
    /// `path_mknod`, which also covers `open(O_CREAT)` of a new file.
    pub const PATH_MKNOD: u16 = 14;
    pub const PATH_TRUNCATE: u16 = 15;
    pub const PATH_SYMLINK: u16 = 16;
    pub const PATH_LINK: u16 = 17;
    pub const PATH_RENAME: u16 = 18;
    pub const PATH_CHMOD: u16 = 19;
    pub const PATH_CHOWN: u16 = 20;
    /// `file_permission` with write intent: a write through a descriptor
    /// whose write was not decided yet (inherited, passed, taken, or
    /// opened before governance).
    pub const FILE_WRITE: u16 = 21;
    /// `file_truncate` (Linux 6.2+): ftruncate, open with `O_TRUNC`.
    pub const FILE_TRUNCATE: u16 = 22;
    /// `mmap_file` with `PROT_WRITE` and `MAP_SHARED`: writes that no
    /// system call will see.
    pub const MMAP_WRITE: u16 = 23;
    /// `file_mprotect` adding `PROT_WRITE` to a shared file mapping.
    pub const MPROTECT_WRITE: u16 = 24;
    /// `inode_setattr` changing times alone (utimes, futimens, touch).
    pub const INODE_SETATTR_TIMES: u16 = 25;
    /// `inode_setxattr`: setting an extended attribute.
    pub const INODE_SETXATTR: u16 = 26;
    /// `inode_removexattr`: removing an extended attribute.
    pub const INODE_REMOVEXATTR: u16 = 27;
    /// `inode_set_acl` (Linux 6.2+): setting a POSIX ACL.
    pub const INODE_SET_ACL: u16 = 28;
    /// `inode_remove_acl` (Linux 6.2+): removing a POSIX ACL.
    pub const INODE_REMOVE_ACL: u16 = 29;
    /// `socket_connect`.
    pub const SOCKET_CONNECT: u16 = 30;
    /// `socket_sendmsg` with a destination address (`sendto`, TCP Fast Open).
    pub const SOCKET_SENDMSG: u16 = 31;
    /// `unix_stream_connect`: connect to a bound AF_UNIX stream socket.
    pub const UNIX_CONNECT: u16 = 32;
    /// `unix_may_send`: send on an AF_UNIX datagram socket.
    pub const UNIX_SEND: u16 = 33;
    /// `bpf`: the bpf(2) syscall.
    pub const BPF: u16 = 40;
    /// `task_kill`: a signal to another process.
    pub const TASK_KILL: u16 = 41;
    /// `ptrace_access_check`: ptrace, or `/proc/PID` access that needs it.
    pub const PTRACE: u16 = 42;
    /// `sb_mount`: mount(2), bind mounts included.
    pub const SB_MOUNT: u16 = 43;
    /// `move_mount`: attaching a mount made with the new mount API.
    pub const MOVE_MOUNT: u16 = 44;
    /// `task_alloc` with `CLONE_INTO_CGROUP`: a child born in another cgroup.
    pub const CLONE_INTO_CGROUP: u16 = 45;
    /// `uring_override_creds`: an io_uring request asking to run under a
    /// registered personality's credentials.
    pub const URING_PERSONALITY: u16 = 46;
}

/// The outcome of a decision.
pub mod verdict {
    pub const ALLOW: u16 = 1;
    pub const DENY: u16 = 2;
    /// Would have been denied, but the scope is not enforcing (audit mode):
    /// the action went ahead.
    pub const AUDIT: u16 = 3;
}

/// Why a decision came out the way it did. Below 16: reasons to allow;
/// from 16: reasons to deny.
pub mod reason {
    /// A baseline entry of the scope allows the action.
    pub const BASELINE: u16 = 1;
    /// A live grant allows the action (its id is in the record).
    pub const GRANT: u16 = 2;
    /// Mapping the task's own executable, which exec already decided.
    pub const OWN_EXECUTABLE: u16 = 3;
    /// The target process is in the same scope.
    pub const SAME_SCOPE: u16 = 4;
    /// An AF_UNIX peer with no address (a socketpair): it was reached
    /// without connecting by name.
    pub const UNNAMED_PEER: u16 = 5;
    /// Nothing (baseline or grant) allows the action.
    pub const NO_GRANT: u16 = 16;
    /// The scope is frozen: everything is denied, baseline included.
    pub const FROZEN: u16 = 17;
    /// A grant matched but it has expired.
    pub const GRANT_EXPIRED: u16 = 18;
    /// A grant matched but its uses are spent.
    pub const GRANT_USED_UP: u16 = 19;
    /// The file is deeper than the bounded ancestor walk reaches.
    pub const PATH_TOO_DEEP: u16 = 20;
    /// Reading a kernel object failed; the object is unknown, so deny.
    pub const READ_FAILED: u16 = 21;
    /// The cgroup is governed but its scope has no state (flags) entry.
    pub const SCOPE_STATE_MISSING: u16 = 22;
    /// The target process is outside the scope.
    pub const OUTSIDE_SCOPE: u16 = 23;
    /// Never allowed to a governed process (bpf, mounts, clone into
    /// another cgroup).
    pub const FORBIDDEN: u16 = 24;
    /// An address family the network gates do not govern by rule.
    pub const UNSUPPORTED_FAMILY: u16 = 25;
}

/// Indices into the per-CPU `COUNTERS` array.
pub mod counter {
    /// Governed actions denied.
    pub const DENIED: u32 = 0;
    /// Governed actions allowed.
    pub const ALLOWED: u32 = 1;
    /// Decisions whose record could not be reserved in the ring buffer;
    /// each such action was denied (no record, no allow).
    pub const RECORD_UNAVAILABLE: u32 = 2;
    /// Lifecycle records (not decisions) lost because the ring buffer was
    /// full or a read failed.
    pub const LINEAGE_LOST: u32 = 3;
    /// Actions a non-enforcing scope let through that would have been
    /// denied.
    pub const AUDITED: u32 = 4;
    /// Number of counters; size of the `COUNTERS` array.
    pub const COUNT: u32 = 5;
}
