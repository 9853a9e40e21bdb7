//! Kernel struct member offsets the BPF programs read through.
//!
//! No offset is frozen from one kernel's headers: the loader resolves each
//! from the running kernel's BTF (`/sys/kernel/btf/vmlinux`) and hands the
//! whole table to the programs as one read-only global before loading.

use core::mem::size_of;

/// Byte offsets of the kernel struct members the gates read. Field names
/// are `<struct>_<member path>`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelOffsets {
    pub binprm_file: u32,
    pub binprm_filename: u32,
    pub file_f_inode: u32,
    pub file_f_mode: u32,
    pub file_f_path_dentry: u32,
    pub inode_i_ino: u32,
    pub inode_i_sb: u32,
    pub super_block_s_dev: u32,
    pub dentry_d_parent: u32,
    pub dentry_d_inode: u32,
    pub dentry_d_name_name: u32,
    pub path_dentry: u32,
    pub vma_vm_file: u32,
    pub socket_type: u32,
    pub socket_sk: u32,
    /// A `u16` member (checked by the loader).
    pub sock_sk_protocol: u32,
    pub msghdr_msg_name: u32,
    pub msghdr_msg_namelen: u32,
    pub task_real_parent: u32,
    pub task_pid: u32,
    pub task_tgid: u32,
    pub task_group_leader: u32,
    /// `start_boottime` (`real_start_time` before Linux 5.5), a `u64`.
    pub task_start_boottime: u32,
    /// `exit_code`, an `int`.
    pub task_exit_code: u32,
    pub task_cgroups: u32,
    pub task_mm: u32,
    pub mm_exe_file: u32,
    pub css_set_dfl_cgrp: u32,
    pub cgroup_kn: u32,
    pub kernfs_node_id: u32,
    pub kernfs_node_parent: u32,
    pub unix_sock_path_dentry: u32,
    pub unix_sock_addr: u32,
    /// `i_mode`, a `umode_t` (`u16`).
    pub inode_i_mode: u32,
    /// `s_flags`, an `unsigned long`.
    pub super_block_s_flags: u32,
    /// `vm_flags`, a `vm_flags_t` (`unsigned long`; in an anonymous union
    /// since Linux 6.3).
    pub vma_vm_flags: u32,
    /// `cred`: the credentials the task acts with, which `override_creds`
    /// replaces for a while (overlayfs on its layers, a core dump).
    pub task_cred: u32,
    /// `real_cred`: the task's own credentials.
    pub task_real_cred: u32,
    /// `flags` (`PF_*`), an `unsigned int`.
    pub task_flags: u32,
    /// Path walks: `file->f_path.mnt`, `path->mnt`, `vfsmount->mnt_root`,
    /// and in `struct mount` (which embeds the `vfsmount` as `mnt`):
    /// `mnt`, `mnt_parent`, `mnt_mountpoint`.
    pub file_f_path_mnt: u32,
    pub path_mnt: u32,
    pub vfsmount_mnt_root: u32,
    pub mount_mnt: u32,
    pub mount_mnt_parent: u32,
    pub mount_mnt_mountpoint: u32,
    /// The working directory: `task->fs`, `fs_struct->pwd` (a `struct path`).
    pub task_fs: u32,
    pub fs_struct_pwd: u32,
    /// The argument area of the process's memory: `mm->arg_start`,
    /// `mm->arg_end` (`unsigned long`).
    pub mm_arg_start: u32,
    pub mm_arg_end: u32,
}

const _: () = assert!(size_of::<KernelOffsets>() == 196);
