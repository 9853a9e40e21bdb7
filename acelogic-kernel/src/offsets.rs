//! The offset table the BPF programs read kernel objects through, resolved
//! from the running kernel's BTF at load time (no layout is frozen from one
//! kernel's headers).

use acelogic_common::offsets::KernelOffsets;

use super::btf::{Btf, BtfError};

/// A member the table needs could not be resolved.
#[derive(Debug, thiserror::Error)]
pub enum OffsetError {
    #[error("kernel BTF: resolving {strukt}.{member}: {source}")]
    Btf {
        strukt: &'static str,
        member: &'static str,
        #[source]
        source: BtfError,
    },
    #[error("kernel BTF: {strukt}.{member} is {got} bytes on this kernel; this build reads {want}")]
    Size {
        strukt: &'static str,
        member: &'static str,
        want: u32,
        got: u32,
    },
}

/// `struct.member` of the given size in bytes (`None`: any size), trying
/// alternative member names in order (members renamed between kernels).
fn member(
    btf: &Btf,
    strukt: &'static str,
    members: &[&'static str],
    size: Option<u32>,
) -> Result<u32, OffsetError> {
    let mut last = None;
    for &m in members {
        match btf.member(strukt, m) {
            Ok(found) => {
                if let Some(want) = size
                    && found.size != want
                {
                    return Err(OffsetError::Size {
                        strukt,
                        member: m,
                        want,
                        got: found.size,
                    });
                }
                return Ok(found.offset);
            }
            Err(e) => last = Some((m, e)),
        }
    }
    let (m, source) = last.expect("at least one member name");
    Err(OffsetError::Btf {
        strukt,
        member: m,
        source,
    })
}

/// Resolves every offset of [`KernelOffsets`] from `btf`.
pub fn resolve(btf: &Btf) -> Result<KernelOffsets, OffsetError> {
    const PTR: Option<u32> = Some(8);
    Ok(KernelOffsets {
        binprm_file: member(btf, "linux_binprm", &["file"], PTR)?,
        binprm_filename: member(btf, "linux_binprm", &["filename"], PTR)?,
        file_f_inode: member(btf, "file", &["f_inode"], PTR)?,
        file_f_mode: member(btf, "file", &["f_mode"], Some(4))?,
        file_f_path_dentry: member(btf, "file", &["f_path.dentry"], PTR)?,
        inode_i_ino: member(btf, "inode", &["i_ino"], Some(8))?,
        inode_i_sb: member(btf, "inode", &["i_sb"], PTR)?,
        super_block_s_dev: member(btf, "super_block", &["s_dev"], Some(4))?,
        dentry_d_parent: member(btf, "dentry", &["d_parent"], PTR)?,
        dentry_d_inode: member(btf, "dentry", &["d_inode"], PTR)?,
        dentry_d_name_name: member(btf, "dentry", &["d_name.name"], PTR)?,
        path_dentry: member(btf, "path", &["dentry"], PTR)?,
        vma_vm_file: member(btf, "vm_area_struct", &["vm_file"], PTR)?,
        socket_type: member(btf, "socket", &["type"], Some(2))?,
        socket_sk: member(btf, "socket", &["sk"], PTR)?,
        sock_sk_protocol: member(btf, "sock", &["sk_protocol"], Some(2))?,
        msghdr_msg_name: member(btf, "msghdr", &["msg_name"], PTR)?,
        msghdr_msg_namelen: member(btf, "msghdr", &["msg_namelen"], Some(4))?,
        task_real_parent: member(btf, "task_struct", &["real_parent"], PTR)?,
        task_pid: member(btf, "task_struct", &["pid"], Some(4))?,
        task_tgid: member(btf, "task_struct", &["tgid"], Some(4))?,
        task_group_leader: member(btf, "task_struct", &["group_leader"], PTR)?,
        // Called `real_start_time` before Linux 5.5, same meaning.
        task_start_boottime: member(
            btf,
            "task_struct",
            &["start_boottime", "real_start_time"],
            Some(8),
        )?,
        task_exit_code: member(btf, "task_struct", &["exit_code"], Some(4))?,
        task_cgroups: member(btf, "task_struct", &["cgroups"], PTR)?,
        task_mm: member(btf, "task_struct", &["mm"], PTR)?,
        mm_exe_file: member(btf, "mm_struct", &["exe_file"], PTR)?,
        css_set_dfl_cgrp: member(btf, "css_set", &["dfl_cgrp"], PTR)?,
        cgroup_kn: member(btf, "cgroup", &["kn"], PTR)?,
        kernfs_node_id: member(btf, "kernfs_node", &["id"], Some(8))?,
        // Renamed `__parent` in Linux 6.15 (RCU-protected since).
        kernfs_node_parent: member(btf, "kernfs_node", &["parent", "__parent"], PTR)?,
        unix_sock_path_dentry: member(btf, "unix_sock", &["path.dentry"], PTR)?,
        unix_sock_addr: member(btf, "unix_sock", &["addr"], PTR)?,
        inode_i_mode: member(btf, "inode", &["i_mode"], Some(2))?,
        super_block_s_flags: member(btf, "super_block", &["s_flags"], PTR)?,
        vma_vm_flags: member(btf, "vm_area_struct", &["vm_flags"], PTR)?,
        task_cred: member(btf, "task_struct", &["cred"], PTR)?,
        task_real_cred: member(btf, "task_struct", &["real_cred"], PTR)?,
        task_flags: member(btf, "task_struct", &["flags"], Some(4))?,
        file_f_path_mnt: member(btf, "file", &["f_path.mnt"], PTR)?,
        path_mnt: member(btf, "path", &["mnt"], PTR)?,
        vfsmount_mnt_root: member(btf, "vfsmount", &["mnt_root"], PTR)?,
        // `struct mount` is private to fs/ but described in the BTF.
        mount_mnt: member(btf, "mount", &["mnt"], None)?,
        mount_mnt_parent: member(btf, "mount", &["mnt_parent"], PTR)?,
        mount_mnt_mountpoint: member(btf, "mount", &["mnt_mountpoint"], PTR)?,
        task_fs: member(btf, "task_struct", &["fs"], PTR)?,
        fs_struct_pwd: member(btf, "fs_struct", &["pwd"], Some(16))?,
        mm_arg_start: member(btf, "mm_struct", &["arg_start"], Some(8))?,
        mm_arg_end: member(btf, "mm_struct", &["arg_end"], Some(8))?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every offset resolves on the machine running the tests, and the few
    /// that are fixed by ABI have their known values.
    #[test]
    fn resolves_on_this_kernel() {
        let Ok(btf) = Btf::from_sys_fs() else {
            eprintln!("no readable /sys/kernel/btf/vmlinux here; the VM matrix covers it");
            return;
        };
        let o = resolve(&btf).expect("every offset resolves");
        assert_eq!(o.path_dentry, 8, "struct path is {{ mnt, dentry }}");
        assert_ne!(o.file_f_inode, o.file_f_mode);
        assert!(o.task_real_parent > 0 && o.task_tgid > 0);
        assert_ne!(o.task_pid, o.task_tgid);
        assert!(o.task_group_leader > 0 && o.task_start_boottime > 0 && o.task_exit_code > 0);
        assert_ne!(o.task_cred, o.task_real_cred);
        assert_eq!(o.path_mnt, 0, "struct path is {{ mnt, dentry }}");
        assert!(o.mount_mnt > 0 && o.mount_mnt_parent > 0 && o.mount_mnt_mountpoint > 0);
        assert_eq!(o.mm_arg_end, o.mm_arg_start + 8);
        assert_eq!(o.file_f_path_mnt + 8, o.file_f_path_dentry);
    }
}
