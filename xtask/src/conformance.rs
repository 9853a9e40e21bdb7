//! The conformance table: each bypass class from the public literature on
//! LSM enforcers, the privileged cases that try it, and their result on
//! every kernel of the VM matrix, as `cargo xtask test` measured them.
//! Written to `docs/conformance.md` by a run of the whole matrix (no
//! `--kernel`, no `--filter`), to `.acelogic/conformance.md` otherwise.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

/// A case's outcome on one kernel, as `acelogic-privtest` printed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Outcome {
    Pass,
    Fail,
    Skip,
}

/// One row: a bypass class, what the suite does about it, and the cases
/// that try it (empty: no case yet, said so in the table).
struct Class {
    class: &'static str,
    how: &'static str,
    cases: &'static [&'static str],
}

const CLASSES: &[Class] = &[
    Class {
        class: "writes through inherited, passed or taken descriptors",
        how: "`file_permission`, `file_truncate`, shared writable maps, per open file whoever opened it (tried inherited; SCM_RIGHTS and `pidfd_getfd` hand over the same open file)",
        cases: &[
            "writes_through_inherited_descriptors_decided",
            "frozen_scope_stops_writes_through_open_files",
            "pipes_devices_and_memfds_stay_writable",
        ],
    },
    Class {
        class: "writes through files opened before the policy narrowed or the grant ended",
        how: "a write remembered for an open file holds only while the rules that allowed it stand: a narrowed baseline or a removed grant (`RULES_GEN`) and an expired grant make the next write decided again",
        cases: &["open_files_decided_again_when_rules_narrow"],
    },
    Class {
        class: "truncation (O_TRUNC, ftruncate, truncate)",
        how: "`path_truncate`, and `file_truncate` on 6.2+",
        cases: &[
            "truncating_open_of_a_read_only_file_decided",
            "truncate_unlink_mkdir_chmod_checked",
        ],
    },
    Class {
        class: "metadata: mode, owner, times, xattrs, POSIX ACLs, through paths and descriptors",
        how: "`path_chmod`, `path_chown` (fchmod and fchown too), `inode_setattr` (times alone), `inode_setxattr`, `inode_removexattr`, `inode_set_acl` on 6.2+",
        cases: &["timestamps_xattrs_and_acls_decided"],
    },
    Class {
        class: "path aliasing through symlinks",
        how: "decisions by inode and its directories, not by name",
        cases: &["write_through_symlink_checks_target"],
    },
    Class {
        class: "path aliasing through `..`, `/proc/self/root` and `/proc/self/fd`",
        how: "same mechanism as symlinks (inode identity); a read-only descriptor reopened for writing is a new open",
        cases: &["path_aliases_decided_by_inode"],
    },
    Class {
        class: "hard links and renames across the writable boundary",
        how: "`path_link`, `path_rename`: both ends must be writable",
        cases: &["hardlink_and_rename_across_boundary_denied"],
    },
    Class {
        class: "bind mounts and new mounts",
        how: "`sb_mount`, `move_mount`",
        cases: &["mount_denied"],
    },
    Class {
        class: "overlayfs copy-up (container roots)",
        how: "decided on the merged view the process names (exec by inode, writes by the merged directories); overlayfs's own work on its layers under its mounter's credentials (copy-up, the upper file's open, write and attributes) is not decided again; the layers named directly are decided like any path",
        cases: &["overlayfs_container_root_decided_on_the_merged_view"],
    },
    Class {
        class: "fileless exec: memfd through `fexecve` and `/proc/self/fd`, a copy in `/dev/shm` (the temp dir where there is none)",
        how: "`bprm_check_security` by inode identity",
        cases: &["exec_from_memfd_denied"],
    },
    Class {
        class: "a never-automated binary under another name (hard link, copy)",
        how: "admission matches `never` exec entries by (device, inode) and sha256, again on the descriptor the grant is made from",
        cases: &["revocation_links_and_copies_of_never_binaries_refused"],
    },
    Class {
        class: "grants outliving a removed or rotated signing key",
        how: "every trust-store reload re-checks live artifacts against the keys that accepted them (`key-revoked`, kernel grants removed)",
        cases: &["revocation_removing_the_issuer_key_revokes_live_grants"],
    },
    Class {
        class: "exec of a replaced binary",
        how: "grants name (device, inode) and digest",
        cases: &["exec_replaced_binary_denied"],
    },
    Class {
        class: "the dynamic loader and executable mappings",
        how: "`mmap_file`, `file_mprotect` with `PROT_EXEC`",
        cases: &["exec_through_loader_denied"],
    },
    Class {
        class: "shebang interpreters",
        how: "`bprm_check_security` runs again for the `#!` interpreter: both must be allowed",
        cases: &["shebang_interpreter_checked"],
    },
    Class {
        class: "io_uring operations",
        how: "the ring's openat and write run through the same VFS hooks (`file_open`, `file_permission`), in the task or its io-wq workers; a request under a registered personality is refused (`uring_override_creds`)",
        cases: &[
            "io_uring_opens_and_writes_decided",
            "io_uring_personality_refused",
        ],
    },
    Class {
        class: "core dumps written under substituted credentials",
        how: "the core file's removal, creation and open are decided like any (`path_unlink`, `path_mknod`, `file_open`, which does not exempt a dumping task): a governed task's core lands only in its writable set",
        cases: &["core_dump_outside_the_writable_set_refused"],
    },
    Class {
        class: "syscall-argument TOCTOU",
        how: "LSM hooks decide on the object the kernel resolved, after the arguments were copied; tried by swapping a symlink during opens",
        cases: &["symlink_swapped_during_open_decided_on_the_object"],
    },
    Class {
        class: "datagram sends without connect",
        how: "`socket_sendmsg` with a destination",
        cases: &["udp_connect_and_sendto"],
    },
    Class {
        class: "ptrace, `/proc/PID/mem`, `process_vm_writev` outside the scope",
        how: "`ptrace_access_check`",
        cases: &["ptrace_outside_scope_denied"],
    },
    Class {
        class: "cgroup migration",
        how: "writes to `cgroup.procs`, `clone3(CLONE_INTO_CGROUP)`; children of a governed cgroup are governed",
        cases: &[
            "cgroup_procs_write_denied",
            "clone_into_cgroup_denied",
            "child_cgroup_created_after_registration_is_governed",
        ],
    },
    Class {
        class: "bpf() and bpffs tampering",
        how: "`bpf` denied to governed processes",
        cases: &["bpf_syscall_denied"],
    },
    Class {
        class: "killing the daemon",
        how: "`task_kill` outside the scope; pinned programs outlive the daemon",
        cases: &[
            "kill_outside_scope_denied",
            "enforcement_outlives_killed_loader",
        ],
    },
    Class {
        class: "event-stream exhaustion",
        how: "no record, no allow: a full ring denies and counts",
        cases: &[
            "full_ring_buffer_still_denies_and_counts",
            "journal_flood_every_action_recorded_or_denied",
            "journal_full_denies_then_catches_up",
            "burst_of_submits_never_stalls_the_drain",
        ],
    },
    Class {
        class: "a fail-open setup",
        how: "attach all or nothing; a failed start leaves the node as it was",
        cases: &["failed_attach_leaves_the_node_as_it_was"],
    },
    Class {
        class: "run an operation twice across nodes",
        how: "ids spent and keys leased in etcd before the kernel grant; completions kept; \
              the grant never outlives its lease; no answer, no acceptance",
        cases: &["cluster_two_nodes_share_one_etcd"],
    },
];

/// Every case a row names, for the check that the table names real cases.
#[cfg(test)]
fn named_cases() -> impl Iterator<Item = &'static str> {
    CLASSES.iter().flat_map(|c| c.cases.iter().copied())
}

/// One kernel's column: its label and each case's outcome.
pub(crate) struct Column<'a> {
    pub(crate) label: &'a str,
    pub(crate) cases: &'a [(String, Outcome)],
}

/// A row's cell for one kernel: `pass` when every case passed, otherwise
/// the cases that did not.
fn cell(cases: &[&str], column: &Column<'_>) -> String {
    if cases.is_empty() {
        return "–".to_owned();
    }
    let outcome = |case: &str| {
        column
            .cases
            .iter()
            .find(|(name, _)| name == case)
            .map(|(_, o)| *o)
    };
    let mut not_passed = Vec::new();
    for case in cases {
        match outcome(case) {
            Some(Outcome::Pass) => {}
            Some(Outcome::Fail) => not_passed.push(format!("FAIL `{case}`")),
            Some(Outcome::Skip) => not_passed.push(format!("skipped `{case}`")),
            None => not_passed.push(format!("not run `{case}`")),
        }
    }
    if not_passed.is_empty() {
        "pass".to_owned()
    } else {
        not_passed.join(", ")
    }
}

/// The table as Markdown.
pub(crate) fn render(columns: &[Column<'_>], date: &str) -> String {
    let mut out = String::new();
    out.push_str(
        "# Conformance: bypass classes and the tests that try them\n\n\
         Generated by `cargo xtask test` from the privileged suite's results on every kernel \
         of the VM matrix; do not edit by hand. Each case checks the errno, the effect and the \
         record of an attempt by a governed process, with its ungoverned twin succeeding \
         ([testing.md](testing.md)). A row without a case is a class the suite does not try \
         yet.\n\n",
    );
    let _ = writeln!(out, "Last run: {date}.\n");
    out.push_str("| class | decided by | cases |");
    for c in columns {
        let _ = write!(out, " {} |", c.label);
    }
    out.push_str("\n| --- | --- | --- |");
    for _ in columns {
        out.push_str(" --- |");
    }
    out.push('\n');
    for row in CLASSES {
        let cases = if row.cases.is_empty() {
            "no case yet".to_owned()
        } else {
            row.cases
                .iter()
                .map(|c| format!("`{c}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let how = if row.how.is_empty() { "–" } else { row.how };
        let _ = write!(out, "| {} | {how} | {cases} |", row.class);
        for c in columns {
            let _ = write!(out, " {} |", cell(row.cases, c));
        }
        out.push('\n');
    }
    out
}

/// Writes the table: into `docs/` when the run covered the whole matrix
/// and every case, into `.acelogic/` otherwise. Returns the path.
pub(crate) fn write(root: &Path, columns: &[Column<'_>], whole: bool) -> Result<PathBuf> {
    let date = crate::util::capture(
        std::process::Command::new("date").args(["-u", "+%Y-%m-%d %H:%M UTC"]),
        "",
    )
    .map(|d| d.trim().to_owned())
    .unwrap_or_else(|_| "unknown".to_owned());
    let path = if whole {
        root.join("docs/conformance.md")
    } else {
        root.join(".acelogic/conformance.md")
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    std::fs::write(&path, render(columns, &date))
        .with_context(|| format!("writing {}", path.display()))?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A row naming a case the suite does not have would say `not run`
    /// forever; the table names only cases that exist.
    #[test]
    fn every_named_case_exists() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/src/cases");
        let mut sources = String::new();
        for e in std::fs::read_dir(&dir).unwrap() {
            sources.push_str(&std::fs::read_to_string(e.unwrap().path()).unwrap());
        }
        for case in named_cases() {
            assert!(
                sources.contains(&format!("\"{case}\"")),
                "{case} is not a case in tests/src/cases"
            );
        }
    }

    #[test]
    fn cells_say_what_did_not_pass() {
        let cases = [
            ("a".to_owned(), Outcome::Pass),
            ("b".to_owned(), Outcome::Fail),
        ];
        let col = Column {
            label: "6.1",
            cases: &cases,
        };
        assert_eq!(cell(&["a"], &col), "pass");
        assert_eq!(cell(&["a", "b"], &col), "FAIL `b`");
        assert_eq!(cell(&["c"], &col), "not run `c`");
        assert_eq!(cell(&[], &col), "–");
        let md = render(&[col], "today");
        // A class whose case did not run in this column says so.
        assert!(md.contains("| not run `overlayfs_container_root_decided_on_the_merged_view` |"));
    }
}
