//! Reading kernel objects through the load-time offset table.
//!
//! Every member offset comes from `OFFSETS`, which the loader fills from
//! the running kernel's BTF; nothing here knows a struct layout. Reads go
//! through `bpf_probe_read_kernel`, so a bad pointer is an error, not a
//! crash, and an error is a deny for a governed task.

use acelogic_common::{event::FileId, offsets::KernelOffsets};
use aya_ebpf::helpers::{bpf_probe_read_kernel, bpf_probe_read_kernel_str_bytes};

use crate::verdict::Error;

/// Member offsets of the running kernel; written by the loader.
#[unsafe(no_mangle)]
static OFFSETS: KernelOffsets = KernelOffsets {
    binprm_file: 0,
    binprm_filename: 0,
    file_f_inode: 0,
    file_f_mode: 0,
    file_f_path_dentry: 0,
    inode_i_ino: 0,
    inode_i_sb: 0,
    super_block_s_dev: 0,
    dentry_d_parent: 0,
    dentry_d_inode: 0,
    dentry_d_name_name: 0,
    path_dentry: 0,
    vma_vm_file: 0,
    socket_type: 0,
    socket_sk: 0,
    sock_sk_protocol: 0,
    msghdr_msg_name: 0,
    msghdr_msg_namelen: 0,
    task_real_parent: 0,
    task_pid: 0,
    task_tgid: 0,
    task_group_leader: 0,
    task_start_boottime: 0,
    task_exit_code: 0,
    task_cgroups: 0,
    task_mm: 0,
    mm_exe_file: 0,
    css_set_dfl_cgrp: 0,
    cgroup_kn: 0,
    kernfs_node_id: 0,
    kernfs_node_parent: 0,
    unix_sock_path_dentry: 0,
    unix_sock_addr: 0,
    inode_i_mode: 0,
    super_block_s_flags: 0,
    vma_vm_flags: 0,
    task_cred: 0,
    task_real_cred: 0,
    task_flags: 0,
    file_f_path_mnt: 0,
    path_mnt: 0,
    vfsmount_mnt_root: 0,
    mount_mnt: 0,
    mount_mnt_parent: 0,
    mount_mnt_mountpoint: 0,
    task_fs: 0,
    fs_struct_pwd: 0,
    mm_arg_start: 0,
    mm_arg_end: 0,
};

/// The offset of one member, read so the compiler cannot fold the zero the
/// object was built with.
macro_rules! off {
    ($field:ident) => {
        // SAFETY: reading a global of the object; volatile so the value the
        // loader wrote is used.
        unsafe { core::ptr::read_volatile(&raw const OFFSETS.$field) }
    };
}

/// A kernel pointer as an address; only ever dereferenced by the probe
/// helpers.
pub(crate) type Kptr = *const u8;

/// Reads a `T` at `base + off`.
#[inline(always)]
fn read<T>(base: Kptr, off: u32) -> Result<T, Error> {
    if base.is_null() {
        return Err(Error::Read);
    }
    // SAFETY: the helper validates the address and fails cleanly.
    unsafe { bpf_probe_read_kernel(base.wrapping_add(off as usize).cast::<T>()) }
        .map_err(|_| Error::Read)
}

/// Reads a non-null pointer at `base + off`.
#[inline(always)]
fn read_ptr(base: Kptr, off: u32) -> Result<Kptr, Error> {
    let p: Kptr = read(base, off)?;
    if p.is_null() { Err(Error::Read) } else { Ok(p) }
}

/// (device, inode) of an inode.
#[inline(always)]
pub(crate) fn inode_id(inode: Kptr) -> Result<FileId, Error> {
    let ino: u64 = read(inode, off!(inode_i_ino))?;
    let sb = read_ptr(inode, off!(inode_i_sb))?;
    let dev: u32 = read(sb, off!(super_block_s_dev))?;
    Ok(FileId { dev, _pad: 0, ino })
}

/// `file->f_inode`.
#[inline(always)]
pub(crate) fn file_inode(file: Kptr) -> Result<Kptr, Error> {
    read_ptr(file, off!(file_f_inode))
}

/// `file->f_mode`.
#[inline(always)]
pub(crate) fn file_mode(file: Kptr) -> Result<u32, Error> {
    read(file, off!(file_f_mode))
}

/// `inode->i_mode`: file type and permission bits.
#[inline(always)]
pub(crate) fn inode_mode(inode: Kptr) -> Result<u16, Error> {
    read(inode, off!(inode_i_mode))
}

/// `inode->i_sb->s_flags`.
#[inline(always)]
pub(crate) fn inode_sb_flags(inode: Kptr) -> Result<u64, Error> {
    read(
        read_ptr(inode, off!(inode_i_sb))?,
        off!(super_block_s_flags),
    )
}

/// `vma->vm_flags`.
#[inline(always)]
pub(crate) fn vma_flags(vma: Kptr) -> Result<u64, Error> {
    read(vma, off!(vma_vm_flags))
}

/// `file->f_path.dentry`.
#[inline(always)]
pub(crate) fn file_dentry(file: Kptr) -> Result<Kptr, Error> {
    read_ptr(file, off!(file_f_path_dentry))
}

/// `bprm->file`.
#[inline(always)]
pub(crate) fn binprm_file(bprm: Kptr) -> Result<Kptr, Error> {
    read_ptr(bprm, off!(binprm_file))
}

/// Copies `bprm->filename` (the path given to exec) into `dst`; returns the
/// bytes used, 0 when unreadable.
#[inline(always)]
pub(crate) fn binprm_filename(bprm: Kptr, dst: &mut [u8]) -> u32 {
    let Ok(name) = read_ptr(bprm, off!(binprm_filename)) else {
        return 0;
    };
    copy_str(name, dst)
}

/// `vma->vm_file`, null for anonymous memory.
#[inline(always)]
pub(crate) fn vma_file(vma: Kptr) -> Result<Kptr, Error> {
    read(vma, off!(vma_vm_file))
}

/// `path->dentry`.
#[inline(always)]
pub(crate) fn path_dentry(path: Kptr) -> Result<Kptr, Error> {
    read_ptr(path, off!(path_dentry))
}

/// `dentry->d_inode`, null for a negative dentry (a name not yet created).
#[inline(always)]
pub(crate) fn dentry_inode(dentry: Kptr) -> Result<Kptr, Error> {
    read(dentry, off!(dentry_d_inode))
}

/// `dentry->d_parent`; equal to `dentry` at the root of a filesystem.
#[inline(always)]
pub(crate) fn dentry_parent(dentry: Kptr) -> Result<Kptr, Error> {
    read_ptr(dentry, off!(dentry_d_parent))
}

/// Copies the dentry's own name (last path component) into `dst`.
#[inline(always)]
pub(crate) fn dentry_name(dentry: Kptr, dst: &mut [u8]) -> u32 {
    let Ok(name) = read_ptr(dentry, off!(dentry_d_name_name)) else {
        return 0;
    };
    copy_str(name, dst)
}

/// The bound file of an AF_UNIX socket: `unix_sk(sk)->path.dentry`; null
/// for abstract and unbound sockets.
#[inline(always)]
pub(crate) fn unix_sock_dentry(sk: Kptr) -> Result<Kptr, Error> {
    read(sk, off!(unix_sock_path_dentry))
}

/// Whether an AF_UNIX socket has an address (`unix_sk(sk)->addr`): a
/// socket with an address but no bound file is abstract.
#[inline(always)]
pub(crate) fn unix_sock_named(sk: Kptr) -> Result<bool, Error> {
    let addr: Kptr = read(sk, off!(unix_sock_addr))?;
    Ok(!addr.is_null())
}

/// `socket->sk`.
#[inline(always)]
pub(crate) fn socket_sk(sock: Kptr) -> Result<Kptr, Error> {
    read_ptr(sock, off!(socket_sk))
}

/// `sock->sk_protocol`.
#[inline(always)]
pub(crate) fn sock_protocol(sk: Kptr) -> Result<u16, Error> {
    read(sk, off!(sock_sk_protocol))
}

/// `msg->msg_name` and `msg->msg_namelen`.
#[inline(always)]
pub(crate) fn msghdr_name(msg: Kptr) -> Result<(Kptr, i32), Error> {
    Ok((
        read(msg, off!(msghdr_msg_name))?,
        read(msg, off!(msghdr_msg_namelen))?,
    ))
}

/// `task->tgid`.
#[inline(always)]
pub(crate) fn task_tgid(task: Kptr) -> Result<u32, Error> {
    read(task, off!(task_tgid))
}

/// `task->pid` (the kernel thread id).
#[inline(always)]
pub(crate) fn task_pid(task: Kptr) -> Result<u32, Error> {
    read(task, off!(task_pid))
}

/// `task->start_boottime`: when the task was created, in ns since boot.
#[inline(always)]
pub(crate) fn task_start_ns(task: Kptr) -> Result<u64, Error> {
    read(task, off!(task_start_boottime))
}

/// `task->group_leader->start_boottime`: when the task's process was
/// created (what `/proc/PID/stat` reports as `starttime`).
#[inline(always)]
pub(crate) fn process_start_ns(task: Kptr) -> Result<u64, Error> {
    task_start_ns(read_ptr(task, off!(task_group_leader))?)
}

/// `task->exit_code`, in wait-status form.
#[inline(always)]
pub(crate) fn task_exit_code(task: Kptr) -> Result<u32, Error> {
    read(task, off!(task_exit_code))
}

/// `task->real_parent->tgid`.
#[inline(always)]
pub(crate) fn task_ppid(task: Kptr) -> Result<u32, Error> {
    task_tgid(task_real_parent(task)?)
}

/// `task->real_parent`: the process that will be told of the task's exit
/// (its creator, or the reaper it was handed to when the creator exited).
#[inline(always)]
pub(crate) fn task_real_parent(task: Kptr) -> Result<Kptr, Error> {
    read_ptr(task, off!(task_real_parent))
}

/// `task->cred`, `task->real_cred` and `task->flags`.
#[inline(always)]
pub(crate) fn task_creds_and_flags(task: Kptr) -> Result<(Kptr, Kptr, u32), Error> {
    Ok((
        read_ptr(task, off!(task_cred))?,
        read_ptr(task, off!(task_real_cred))?,
        read(task, off!(task_flags))?,
    ))
}

/// `task->mm->exe_file->f_inode`: the inode of the task's executable.
#[inline(always)]
pub(crate) fn task_exe_inode(task: Kptr) -> Result<Kptr, Error> {
    let mm = read_ptr(task, off!(task_mm))?;
    file_inode(read_ptr(mm, off!(mm_exe_file))?)
}

/// The kernfs node of the task's cgroup v2:
/// `task->cgroups->dfl_cgrp->kn`.
#[inline(always)]
pub(crate) fn task_cgroup_kn(task: Kptr) -> Result<Kptr, Error> {
    let cset = read_ptr(task, off!(task_cgroups))?;
    let cgrp = read_ptr(cset, off!(css_set_dfl_cgrp))?;
    read_ptr(cgrp, off!(cgroup_kn))
}

/// `kn->id`: the cgroup id of a cgroup's kernfs node.
#[inline(always)]
pub(crate) fn kernfs_id(kn: Kptr) -> Result<u64, Error> {
    read(kn, off!(kernfs_node_id))
}

/// `kn->parent`, null at the root.
#[inline(always)]
pub(crate) fn kernfs_parent(kn: Kptr) -> Result<Kptr, Error> {
    read(kn, off!(kernfs_node_parent))
}

/// `file->f_path.mnt`.
#[inline(always)]
pub(crate) fn file_mnt(file: Kptr) -> Result<Kptr, Error> {
    read_ptr(file, off!(file_f_path_mnt))
}

/// `path->mnt`.
#[inline(always)]
pub(crate) fn path_mnt(path: Kptr) -> Result<Kptr, Error> {
    read_ptr(path, off!(path_mnt))
}

/// `vfsmount->mnt_root`.
#[inline(always)]
pub(crate) fn vfsmount_root(mnt: Kptr) -> Result<Kptr, Error> {
    read_ptr(mnt, off!(vfsmount_mnt_root))
}

/// The `struct mount` that embeds `mnt` (the kernel's `real_mount`).
#[inline(always)]
pub(crate) fn real_mount(mnt: Kptr) -> Kptr {
    mnt.wrapping_sub(off!(mount_mnt) as usize)
}

/// The `vfsmount` embedded in `mount`.
#[inline(always)]
pub(crate) fn mount_vfsmount(mount: Kptr) -> Kptr {
    mount.wrapping_add(off!(mount_mnt) as usize)
}

/// `mount->mnt_parent`: itself at the root of the mount tree.
#[inline(always)]
pub(crate) fn mount_parent(mount: Kptr) -> Result<Kptr, Error> {
    read_ptr(mount, off!(mount_mnt_parent))
}

/// `mount->mnt_mountpoint`: the dentry it is mounted on, in its parent.
#[inline(always)]
pub(crate) fn mount_mountpoint(mount: Kptr) -> Result<Kptr, Error> {
    read_ptr(mount, off!(mount_mnt_mountpoint))
}

/// The task's working directory: (`fs->pwd.mnt`, `fs->pwd.dentry`).
#[inline(always)]
pub(crate) fn task_pwd(task: Kptr) -> Result<(Kptr, Kptr), Error> {
    let fs = read_ptr(task, off!(task_fs))?;
    let pwd = fs.wrapping_add(off!(fs_struct_pwd) as usize);
    Ok((path_mnt(pwd)?, path_dentry(pwd)?))
}

/// The task's executable: (`mm->exe_file->f_path.mnt`, its dentry).
#[inline(always)]
pub(crate) fn task_exe_path(task: Kptr) -> Result<(Kptr, Kptr), Error> {
    let mm = read_ptr(task, off!(task_mm))?;
    let file = read_ptr(mm, off!(mm_exe_file))?;
    Ok((file_mnt(file)?, file_dentry(file)?))
}

/// The task's argument area: (`mm->arg_start`, `mm->arg_end`), user
/// addresses.
#[inline(always)]
pub(crate) fn task_args(task: Kptr) -> Result<(u64, u64), Error> {
    let mm = read_ptr(task, off!(task_mm))?;
    Ok((read(mm, off!(mm_arg_start))?, read(mm, off!(mm_arg_end))?))
}

/// The address of `dentry->d_name.name`, or null.
#[inline(always)]
pub(crate) fn dentry_name_ptr(dentry: Kptr) -> Kptr {
    read(dentry, off!(dentry_d_name_name)).unwrap_or(core::ptr::null())
}

/// Reads a `T` from a kernel buffer the hook received (a socket address).
#[inline(always)]
pub(crate) fn read_at<T>(base: Kptr, off: u32) -> Result<T, Error> {
    read(base, off)
}

#[inline(always)]
fn copy_str(src: Kptr, dst: &mut [u8]) -> u32 {
    // SAFETY: the helper bounds the copy by `dst` and faults safely.
    match unsafe { bpf_probe_read_kernel_str_bytes(src, dst) } {
        #[expect(clippy::cast_possible_truncation, reason = "bounded by dst")]
        Ok(s) => s.len() as u32,
        Err(_) => 0,
    }
}
