//! Can this node enforce? Checks of what ACELOGIC needs from the kernel,
//! each with the fix an operator should apply.

use std::{fmt, fs, path::Path};

use acelogic_domain::cgroupfs::{cgroup2_mount, mount_of_type};

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

    /// [`NodeReport::inspect`], and then every program this build would
    /// attach on this kernel is loaded (verified, not attached), each
    /// failure reported with the verifier's first line: `check-node`
    /// says ready only when the daemon's attach would succeed.
    #[must_use]
    pub fn inspect_every_program() -> Self {
        let mut report = Self::inspect();
        if report.ready() {
            report.checks.push(probe_every_program());
        }
        report
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
    let result = crate::Kernel::load().and_then(|mut k| k.probe(&crate::compat::EXEC_GATE));
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

/// Loads every program chosen for this kernel, without attaching.
fn probe_every_program() -> Check {
    let name = "every program loads";
    let mut kernel = match crate::Kernel::load() {
        Ok(k) => k,
        Err(e) => {
            return Check {
                name,
                ok: false,
                found: format!("{e:#}"),
                fix: "this build does not support this kernel; see the README's tested kernels"
                    .to_owned(),
            };
        }
    };
    let programs = kernel.programs().to_vec();
    let mut refused = Vec::new();
    for spec in &programs {
        if let Err(e) = kernel.probe(spec) {
            let first = format!("{e:#}");
            refused.push(first.lines().next().unwrap_or_default().to_owned());
        }
    }
    if refused.is_empty() {
        Check {
            name,
            ok: true,
            found: format!("{} programs verified by this kernel", programs.len()),
            fix: String::new(),
        }
    } else {
        Check {
            name,
            ok: false,
            found: refused.join("\n  "),
            fix: "the kernel's verifier refused these programs, so the daemon would refuse \
                  to start; report the kernel version and this output"
                .to_owned(),
        }
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
}
