//! One file per hook. LSM gates decide; tracepoints record lifecycle.
//! Each gate is a thin adapter from its kernel prototype to `gate::run`.
#![expect(
    clippy::needless_pass_by_value,
    reason = "aya's #[lsm] and #[btf_tracepoint] call each program with its context by value"
)]

mod bpf;
mod chmod;
mod chown;
mod clone;
mod connect;
mod exec;
mod file_free;
mod ftruncate;
mod kill;
mod link;
mod mkdir;
mod mknod;
mod mmap;
mod mount;
mod move_mount;
mod mprotect;
mod open;
mod proc_exec;
mod proc_exit;
mod proc_fork;
mod ptrace;
mod remove_acl;
mod removexattr;
mod rename;
mod rmdir;
mod sendmsg;
mod set_acl;
mod setattr;
mod setxattr;
mod symlink;
mod truncate;
mod unix_connect;
mod unix_send;
mod unlink;
mod uring;
mod write;
