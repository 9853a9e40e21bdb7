//! Can this node enforce? Checks of what ACELOGIC needs from the kernel,
//! each with the fix an operator should apply.

use std::{
    fmt, fs,
    path::{Path, PathBuf},
};

/// Where the kernel lists its active LSMs (needs securityfs mounted).
pub const LSM_LIST: &str = "/sys/kernel/security/lsm";
/// The running kernel's BTF.
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

/// One requirement and whether the node meets it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    /// What was found.
    pub found: String,
    /// What to do when not ok.
    pub fix: String,
}

/// All checks of a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeReport {
    pub checks: Vec<Check>,
}

impl NodeReport {
    /// Inspects the running kernel.
    #[must_use]
    pub fn inspect() -> Self {
        let lsm = fs::read_to_string(LSM_LIST);
        let bpf_lsm = match &lsm {
            Ok(list) => Check {
                name: "BPF LSM active",
                ok: lsm_list_has_bpf(list),
                found: format!("{LSM_LIST}: {}", list.trim()),
                fix: lsm_fix(list),
            },
            Err(e) => Check {
                name: "BPF LSM active",
                ok: false,
                found: format!("{LSM_LIST}: {e}"),
                fix: "mount securityfs (mount -t securityfs securityfs /sys/kernel/security) \
                      and check again; in a container, mount the host's /sys/kernel/security \
                      read-only at the same path"
                    .to_owned(),
            },
        };
        let btf = Check {
            name: "kernel BTF",
            ok: Path::new(VMLINUX_BTF).is_file(),
            found: VMLINUX_BTF.to_owned(),
            fix: "use a kernel built with CONFIG_DEBUG_INFO_BTF=y; in a container, mount the \
                  host's /sys/kernel/btf read-only at the same path"
                .to_owned(),
        };
        let cgroup2 = cgroup2_mount();
        let cgroup = Check {
            name: "cgroup v2 mounted",
            ok: cgroup2.is_some(),
            found: cgroup2.map_or_else(
                || "no cgroup2 mount".to_owned(),
                |p| p.display().to_string(),
            ),
            fix: "mount cgroup2 (mount -t cgroup2 none /sys/fs/cgroup) or boot with \
                  systemd.unified_cgroup_hierarchy=1"
                .to_owned(),
        };
        let bpffs = mount_of_type("bpf");
        let bpffs = Check {
            name: "bpffs mounted",
            ok: bpffs.is_some(),
            found: bpffs.map_or_else(|| "no bpf mount".to_owned(), |p| p.display().to_string()),
            fix: "mount -t bpf bpf /sys/fs/bpf; in a container, mount the host's /sys/fs/bpf \
                  at the same path (read-write: the programs are pinned there)"
                .to_owned(),
        };
        let probe = probe_lsm_load();
        Self {
            checks: vec![bpf_lsm, probe, btf, cgroup, bpffs],
        }
    }

    /// True when every check passed.
    #[must_use]
    pub fn ready(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }
}

impl fmt::Display for NodeReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in &self.checks {
            let mark = if c.ok { "ok  " } else { "FAIL" };
            writeln!(f, "{mark} {:<18} {}", c.name, c.found)?;
            if !c.ok {
                writeln!(f, "     fix: {}", c.fix)?;
            }
        }
        Ok(())
    }
}

/// Loads the exec gate without attaching it: the only reliable test that
/// the kernel accepts BPF LSM programs (a kernel may list `bpf` as active
/// and still refuse them with `EPERM`).
fn probe_lsm_load() -> Check {
    let name = "BPF LSM loads";
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Check {
            name,
            ok: false,
            found: "not checked: loading BPF needs root".to_owned(),
            fix: "run this check as root".to_owned(),
        };
    }
    let result =
        crate::kernel::Kernel::load().and_then(|mut k| k.probe(&crate::kernel::compat::EXEC_GATE));
    match result {
        Ok(()) => Check {
            name,
            ok: true,
            found: "exec gate loaded".to_owned(),
            fix: String::new(),
        },
        Err(e) => Check {
            name,
            ok: false,
            found: format!("{e:#}"),
            fix: "the kernel refused a BPF LSM program: check `bpf` is in the LSM list, \
                  that BPF trampolines are allowed (no lockdown=confidentiality, not a \
                  restricted sandbox or hypervisor), and the kernel log (dmesg)"
                .to_owned(),
        },
    }
}

/// The exact kernel command line parameter that activates BPF LSM next to
/// the LSMs active now (their order is kept: it is the order the kernel
/// calls them in), and where to put it.
fn lsm_fix(active: &str) -> String {
    let mut names: Vec<&str> = active
        .trim()
        .split(',')
        .filter(|n| !n.is_empty() && *n != "bpf")
        .collect();
    names.push("bpf");
    let param = format!("lsm={}", names.join(","));
    format!(
        "boot with the kernel parameter `{param}` (Debian/Ubuntu: append it to \
         GRUB_CMDLINE_LINUX in /etc/default/grub, run update-grub, reboot); the kernel must be \
         built with CONFIG_BPF_LSM=y (check /boot/config-$(uname -r))"
    )
}

/// Does a `/sys/kernel/security/lsm` list name `bpf`?
#[must_use]
pub fn lsm_list_has_bpf(list: &str) -> bool {
    list.trim().split(',').any(|name| name == "bpf")
}

/// Where cgroup v2 is mounted (`/sys/fs/cgroup` on unified hosts,
/// `/sys/fs/cgroup/unified` on hybrid ones).
#[must_use]
pub fn cgroup2_mount() -> Option<PathBuf> {
    mount_of_type("cgroup2")
}

/// Why a directory cannot be the cgroup v2 root the daemon governs under.
#[derive(Debug, thiserror::Error)]
pub enum CgroupRootError {
    #[error("no cgroup2 mount in /proc/self/mounts; mount cgroup2 or pass --cgroup-root")]
    NoMount,
    #[error("{path}: {source}")]
    Stat {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a cgroup v2 filesystem; pass the directory where cgroup2 is mounted")]
    NotCgroup2 { path: PathBuf },
    #[error(
        "{path} is a cgroup below the hierarchy's root (it has cgroup.type), as in a container's \
         private cgroup namespace; mount the host's cgroup2 root (e.g. a hostPath of \
         /sys/fs/cgroup at /host/sys/fs/cgroup) and pass --cgroup-root with that path"
    )]
    NotRoot { path: PathBuf },
}

/// The cgroup v2 root the daemon creates and governs workloads' cgroups
/// under: `configured` (`--cgroup-root`) or else the first cgroup2 mount.
///
/// It must be the hierarchy's real root. In a container with a private
/// cgroup namespace (containerd's default on cgroup v2) the runtime's
/// `/sys/fs/cgroup` is the container's own cgroup: policies'
/// `/acelogic/...` cgroups would be made inside the pod, the level check
/// against the kernel's walk would be off, and the host's workloads would
/// never be governed. Only the root has no `cgroup.type`.
pub fn cgroup_root(configured: Option<&Path>) -> Result<PathBuf, CgroupRootError> {
    let dir = match configured {
        Some(dir) => dir.to_path_buf(),
        None => cgroup2_mount().ok_or(CgroupRootError::NoMount)?,
    };
    let fs_type = |path: &Path| -> Result<libc::__fsword_t, CgroupRootError> {
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).map_err(|e| {
            CgroupRootError::Stat {
                path: path.to_path_buf(),
                source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
            }
        })?;
        // SAFETY: `c` is a valid NUL-terminated path and `buf` a zeroed
        // statfs the call fills in.
        let mut buf: libc::statfs = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        if unsafe { libc::statfs(c.as_ptr(), &raw mut buf) } != 0 {
            return Err(CgroupRootError::Stat {
                path: path.to_path_buf(),
                source: std::io::Error::last_os_error(),
            });
        }
        Ok(buf.f_type)
    };
    if fs_type(&dir)? != libc::CGROUP2_SUPER_MAGIC {
        return Err(CgroupRootError::NotCgroup2 { path: dir });
    }
    if dir.join("cgroup.type").exists() {
        return Err(CgroupRootError::NotRoot { path: dir });
    }
    Ok(dir)
}

fn mount_of_type(fstype: &str) -> Option<PathBuf> {
    let mounts = fs::read_to_string("/proc/self/mounts").ok()?;
    mount_of_type_in(&mounts, fstype)
}

fn mount_of_type_in(mounts: &str, fstype: &str) -> Option<PathBuf> {
    mounts.lines().find_map(|line| {
        let mut f = line.split_whitespace();
        let (_src, dir, ty) = (f.next()?, f.next()?, f.next()?);
        (ty == fstype).then(|| PathBuf::from(unescape_mount_path(dir)))
    })
}

/// `/proc/self/mounts` escapes space, tab, newline and backslash as octal.
fn unescape_mount_path(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let code = rest
            .get(i + 1..i + 4)
            .and_then(|o| u8::from_str_radix(o, 8).ok());
        match code {
            Some(b) => {
                out.push(char::from(b));
                rest = &rest[i + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsm_list_parsing_needs_the_exact_name() {
        assert!(lsm_list_has_bpf(
            "lockdown,capability,landlock,yama,apparmor,bpf\n"
        ));
        assert!(lsm_list_has_bpf("bpf"));
        assert!(!lsm_list_has_bpf("lockdown,capability,apparmor"));
        assert!(!lsm_list_has_bpf("bpfx,xbpf"));
        assert!(!lsm_list_has_bpf(""));
    }

    #[test]
    fn lsm_fix_names_the_exact_parameter() {
        let fix = lsm_fix("capability,lockdown,landlock,yama,apparmor\n");
        assert!(
            fix.contains("`lsm=capability,lockdown,landlock,yama,apparmor,bpf`"),
            "{fix}"
        );
        assert!(fix.contains("GRUB_CMDLINE_LINUX"), "{fix}");
        // Never listed twice, and an empty list still gives a usable value.
        assert!(lsm_fix("bpf,yama").contains("`lsm=yama,bpf`"));
        assert!(lsm_fix("").contains("`lsm=bpf`"));
    }

    #[test]
    fn cgroup_root_refuses_what_is_not_a_cgroup2_root() {
        let dir = std::env::temp_dir().join(format!("acelogic-cgroot-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let err = cgroup_root(Some(&dir)).unwrap_err();
        assert!(
            matches!(&err, CgroupRootError::NotCgroup2 { path } if *path == dir),
            "{err}"
        );
        fs::remove_dir(&dir).unwrap();
        let err = cgroup_root(Some(&dir)).unwrap_err();
        assert!(matches!(err, CgroupRootError::Stat { .. }), "{err}");
        assert!(err.to_string().contains("No such file"), "{err}");
        // The first cgroup2 mount of a host (not a container) is the root,
        // and naming it explicitly gives the same answer.
        if let Some(mount) = cgroup2_mount()
            && !mount.join("cgroup.type").exists()
        {
            assert_eq!(cgroup_root(None).unwrap(), mount);
            assert_eq!(cgroup_root(Some(&mount)).unwrap(), mount);
            // A cgroup below it is refused, as a container's namespaced
            // /sys/fs/cgroup would be.
            let child = fs::read_dir(&mount)
                .unwrap()
                .flatten()
                .map(|e| e.path())
                .find(|p| p.join("cgroup.type").exists());
            if let Some(child) = child {
                let err = cgroup_root(Some(&child)).unwrap_err();
                assert!(matches!(err, CgroupRootError::NotRoot { .. }), "{err}");
                assert!(err.to_string().contains("--cgroup-root"), "{err}");
            }
        }
    }

    #[test]
    fn finds_hybrid_and_unified_cgroup2_mounts() {
        let hybrid = "sysfs /sys sysfs rw 0 0\n\
                      tmpfs /sys/fs/cgroup tmpfs ro 0 0\n\
                      cgroup2 /sys/fs/cgroup/unified cgroup2 rw 0 0\n\
                      cgroup /sys/fs/cgroup/cpu cgroup rw,cpu 0 0\n";
        assert_eq!(
            mount_of_type_in(hybrid, "cgroup2"),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        assert_eq!(mount_of_type_in(hybrid, "bpf"), None);
        let escaped = "none /mnt/with\\040space cgroup2 rw 0 0\n";
        assert_eq!(
            mount_of_type_in(escaped, "cgroup2"),
            Some(PathBuf::from("/mnt/with space"))
        );
    }
}
