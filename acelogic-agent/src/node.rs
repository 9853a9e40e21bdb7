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
    pub fix: &'static str,
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
                fix: "add `bpf` to the kernel's LSM list: boot with lsm=<current list>,bpf \
                      (e.g. in GRUB_CMDLINE_LINUX) on a kernel built with CONFIG_BPF_LSM=y",
            },
            Err(e) => Check {
                name: "BPF LSM active",
                ok: false,
                found: format!("{LSM_LIST}: {e}"),
                fix: "mount securityfs (mount -t securityfs securityfs /sys/kernel/security) \
                      and check again",
            },
        };
        let btf = Check {
            name: "kernel BTF",
            ok: Path::new(VMLINUX_BTF).is_file(),
            found: VMLINUX_BTF.to_owned(),
            fix: "use a kernel built with CONFIG_DEBUG_INFO_BTF=y",
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
                  systemd.unified_cgroup_hierarchy=1",
        };
        let bpffs = mount_of_type("bpf");
        let bpffs = Check {
            name: "bpffs mounted",
            ok: bpffs.is_some(),
            found: bpffs.map_or_else(|| "no bpf mount".to_owned(), |p| p.display().to_string()),
            fix: "mount -t bpf bpf /sys/fs/bpf",
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
            fix: "run this check as root",
        };
    }
    let result =
        crate::kernel::Kernel::load().and_then(|mut k| k.probe(&crate::kernel::compat::EXEC_GATE));
    match result {
        Ok(()) => Check {
            name,
            ok: true,
            found: "exec gate loaded".to_owned(),
            fix: "",
        },
        Err(e) => Check {
            name,
            ok: false,
            found: format!("{e:#}"),
            fix: "the kernel refused a BPF LSM program: check `bpf` is in the LSM list, \
                  that BPF trampolines are allowed (no lockdown=confidentiality, not a \
                  restricted sandbox or hypervisor), and the kernel log (dmesg)",
        },
    }
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
