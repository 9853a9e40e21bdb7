//! The kernel compatibility table: every program of the BPF object, how it
//! attaches, and what the running kernel must offer for it. Decisions about
//! which hook runs where live here, not in scattered `if`s.
//!
//! Each LSM gate reads the previous program's return value at the index
//! after the hook's last parameter, so the parameter count is part of the
//! program's contract with the kernel. It is checked against the running
//! kernel's BTF (`bpf_lsm_<hook>`) before loading: a kernel that changed a
//! prototype is refused with a precise error, never mis-read.

use acelogic_common::names::{self, Gate, gate};

/// What a program needs from the running kernel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requirement {
    /// BPF LSM active (`bpf` in `/sys/kernel/security/lsm`) and BPF
    /// trampolines usable; Linux 5.7 or newer with `CONFIG_BPF_LSM=y`.
    BpfLsm,
    /// BTF-enabled tracepoints (`tp_btf`, Linux 5.5+ with kernel BTF,
    /// which the loader needs anyway for its offsets). Unlike LSM programs
    /// these attach without BPF trampolines, so kernels that refuse
    /// trampolines still run them. No classic tracepoint: the kernel skips
    /// their programs while any BPF map syscall on the CPU is preempted
    /// (`bpf_prog_active`), and a recorder must not miss.
    Tracepoints,
}

/// How a program attaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attach {
    Lsm {
        hook: &'static str,
        /// Parameters of the hook on the kernels we support.
        params: usize,
    },
    /// A BTF-enabled tracepoint (`tp_btf/<name>`), typed by the kernel's
    /// `btf_trace_<name>`.
    BtfTracePoint { name: &'static str },
}

/// One row of the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProgramSpec {
    /// Program name in the object (`acelogic_common::names`).
    pub name: &'static str,
    pub attach: Attach,
    pub needs: Requirement,
    /// Required for enforcement: the agent refuses to enforce without it.
    pub enforcing: bool,
    /// Attached only where the running kernel has the hook; a kernel
    /// without it decides the same calls elsewhere (see the program).
    pub where_present: bool,
}

const fn gate(g: Gate, params: usize) -> ProgramSpec {
    ProgramSpec {
        name: g.program,
        attach: Attach::Lsm {
            hook: g.hook,
            params,
        },
        needs: Requirement::BpfLsm,
        enforcing: true,
        where_present: false,
    }
}

/// A gate on a hook that only newer kernels have.
const fn gate_where_present(g: Gate, params: usize) -> ProgramSpec {
    ProgramSpec {
        where_present: true,
        ..gate(g, params)
    }
}

/// The exec gate; also the program that probes for BPF LSM support.
pub const EXEC_GATE: ProgramSpec = gate(gate::EXEC, 1);

/// Process lineage: exec of a governed task.
pub const PROCESS_LINEAGE: ProgramSpec = ProgramSpec {
    name: names::PROG_PROC_EXEC,
    attach: Attach::BtfTracePoint {
        name: names::TP_PROC_EXEC,
    },
    needs: Requirement::Tracepoints,
    enforcing: false,
    where_present: false,
};

/// Process lineage: a governed task created a process.
pub const PROCESS_FORK: ProgramSpec = ProgramSpec {
    name: names::PROG_PROC_FORK,
    attach: Attach::BtfTracePoint {
        name: names::TP_PROC_FORK,
    },
    needs: Requirement::Tracepoints,
    enforcing: false,
    where_present: false,
};

/// Process lineage: a governed process exited.
pub const PROCESS_EXIT: ProgramSpec = ProgramSpec {
    name: names::PROG_PROC_EXIT,
    attach: Attach::BtfTracePoint {
        name: names::TP_PROC_EXIT,
    },
    needs: Requirement::Tracepoints,
    enforcing: false,
    where_present: false,
};

/// The recorders, attached before any gate (see [`select`]). Fork comes
/// first: a process that execs or exits after the recorders are up was
/// either created after that too (and has a fork record) or existed
/// before (and is found through procfs).
pub const LINEAGE: [ProgramSpec; 3] = [PROCESS_FORK, PROCESS_LINEAGE, PROCESS_EXIT];

/// Every LSM gate with its hook's parameter count. A hook listed twice has
/// one program per prototype; [`select`] keeps the one that matches.
pub const GATES: [ProgramSpec; 36] = [
    EXEC_GATE,
    gate(gate::MMAP, 4),
    gate(gate::MPROTECT, 3),
    gate(gate::OPEN, 1),
    gate(gate::UNLINK, 2),
    gate(gate::MKDIR, 3),
    gate(gate::RMDIR, 2),
    gate(gate::MKNOD, 4),
    gate(gate::TRUNCATE, 1),
    gate(gate::SYMLINK, 3),
    gate(gate::LINK, 3),
    gate(gate::RENAME, 5),
    gate(gate::RENAME_4, 4),
    gate(gate::CHMOD, 2),
    gate(gate::CHOWN, 3),
    gate(gate::WRITE, 2),
    // Linux 6.2+; before, `path_truncate` decides ftruncate and O_TRUNC.
    gate_where_present(gate::FILE_TRUNCATE, 1),
    gate(gate::FILE_FREE, 1),
    gate(gate::SETATTR, 3),
    gate(gate::SETATTR_2, 2),
    gate(gate::SETXATTR, 6),
    gate(gate::REMOVEXATTR, 3),
    // Linux 6.2+; before, the xattr gates decide POSIX ACLs.
    gate_where_present(gate::SET_ACL, 4),
    gate_where_present(gate::REMOVE_ACL, 3),
    gate(gate::CONNECT, 3),
    gate(gate::SENDMSG, 3),
    gate(gate::UNIX_CONNECT, 3),
    gate(gate::UNIX_SEND, 2),
    gate(gate::BPF, 3),
    gate(gate::BPF_K, 4),
    gate(gate::KILL, 4),
    gate(gate::PTRACE, 2),
    gate(gate::MOUNT, 5),
    gate(gate::MOVE_MOUNT, 2),
    gate(gate::CLONE, 2),
    // Kernels built with io_uring.
    gate_where_present(gate::URING_CREDS, 1),
];

/// Every program of the object, variants included.
#[must_use]
pub fn programs() -> Vec<ProgramSpec> {
    let mut all = LINEAGE.to_vec();
    all.extend_from_slice(&GATES);
    all
}

/// A hook whose prototype on the running kernel no program was built for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "LSM hook `{hook}` takes {found} parameters on this kernel; this build has programs for \
     {expected:?}, so this kernel is not supported by this build"
)]
pub struct HookChanged {
    pub hook: &'static str,
    pub expected: Vec<usize>,
    pub found: usize,
}

/// The programs to attach on a kernel, in attach order (the recorders
/// first, so no gate decides while lineage is not yet recorded):
/// `params(hook)` is the hook's parameter count on that kernel, from BTF.
/// For each hook the one program built for that count is chosen.
pub fn select(
    mut params: impl FnMut(&'static str) -> Option<usize>,
) -> Result<Vec<ProgramSpec>, HookChanged> {
    let mut chosen = LINEAGE.to_vec();
    let mut seen: Vec<&'static str> = Vec::new();
    for spec in GATES {
        let Attach::Lsm { hook, .. } = spec.attach else {
            continue;
        };
        if seen.contains(&hook) {
            continue;
        }
        seen.push(hook);
        let variants: Vec<&ProgramSpec> = GATES
            .iter()
            .filter(|g| matches!(g.attach, Attach::Lsm { hook: h, .. } if h == hook))
            .collect();
        let Some(found) = params(hook) else {
            if variants.iter().all(|g| g.where_present) {
                continue;
            }
            return Err(HookChanged {
                hook,
                expected: expected(&variants),
                found: 0,
            });
        };
        let pick = variants
            .iter()
            .find(|g| matches!(g.attach, Attach::Lsm { params: p, .. } if p == found));
        match pick {
            Some(p) => chosen.push(**p),
            None => {
                return Err(HookChanged {
                    hook,
                    expected: expected(&variants),
                    found,
                });
            }
        }
    }
    Ok(chosen)
}

/// The parameter counts programs were built for.
fn expected(variants: &[&ProgramSpec]) -> Vec<usize> {
    variants
        .iter()
        .filter_map(|g| match g.attach {
            Attach::Lsm { params, .. } => Some(params),
            Attach::BtfTracePoint { .. } => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn select_picks_the_variant_matching_the_prototype() {
        let old = select_with("bpf", 3).unwrap();
        let new = select_with("bpf", 4).unwrap();
        assert!(
            old.iter().any(|p| p.name == "bpf_gate") && !old.iter().any(|p| p.name == "bpf_gate_k")
        );
        assert!(
            new.iter().any(|p| p.name == "bpf_gate_k") && !new.iter().any(|p| p.name == "bpf_gate")
        );
        assert_eq!(old.len(), 36, "the recorders and one program per hook");
        assert_eq!(old[..3], LINEAGE, "the recorders attach first");
        let err = select_with("path_rename", 6).unwrap_err();
        assert_eq!(
            (err.hook, err.found, err.expected),
            ("path_rename", 6, vec![5, 4])
        );
        let before_5_19 = select_with("path_rename", 4).unwrap();
        assert!(before_5_19.iter().any(|p| p.name == "rename_gate_4"));
        assert!(!before_5_19.iter().any(|p| p.name == "rename_gate"));
        let no_idmap = select_with("inode_setattr", 2).unwrap();
        assert!(no_idmap.iter().any(|p| p.name == "setattr_gate_2"));
        assert!(!no_idmap.iter().any(|p| p.name == "setattr_gate"));
    }

    #[test]
    fn a_hook_only_newer_kernels_have_is_attached_where_present() {
        let new_in_6_2 = ["file_truncate", "inode_set_acl", "inode_remove_acl"];
        let before_6_2 =
            select(|hook| (!new_in_6_2.contains(&hook)).then(|| param_count(hook))).unwrap();
        let since_6_2 = select(|hook| Some(param_count(hook))).unwrap();
        assert!(!before_6_2.iter().any(|p| p.name == "ftruncate_gate"));
        assert!(since_6_2.iter().any(|p| p.name == "ftruncate_gate"));
        // Both keep the gate that decides truncation by name.
        assert!(before_6_2.iter().all(|p| p.name != "ftruncate_gate"));
        assert!(before_6_2.iter().any(|p| p.name == "truncate_gate"));
        assert!(!before_6_2.iter().any(|p| p.name == "set_acl_gate"));
        assert!(since_6_2.iter().any(|p| p.name == "set_acl_gate"));
        // A hook every kernel must have is never skipped.
        let err =
            select(|hook| (hook != "file_permission").then(|| param_count(hook))).unwrap_err();
        assert_eq!((err.hook, err.found), ("file_permission", 0));
    }

    /// [`select`] on a kernel where `changed` takes `params` parameters
    /// and every other hook what its first program was built for.
    fn select_with(changed: &str, params: usize) -> Result<Vec<ProgramSpec>, HookChanged> {
        select(|hook| {
            Some(if hook == changed {
                params
            } else {
                param_count(hook)
            })
        })
    }

    /// The parameter count the first program of `hook` was built for.
    fn param_count(hook: &str) -> usize {
        GATES
            .iter()
            .find_map(|g| match g.attach {
                Attach::Lsm { hook: h, params } if h == hook => Some(params),
                _ => None,
            })
            .unwrap()
    }

    #[test]
    fn table_covers_every_program_of_the_object() {
        let mut in_table: Vec<_> = programs().iter().map(|p| p.name).collect();
        let mut named: Vec<_> = names::ALL_GATES.iter().map(|g| g.program).collect();
        named.extend(names::ALL_LINEAGE);
        in_table.sort_unstable();
        named.sort_unstable();
        assert_eq!(in_table, named);
    }
}
