//! `never` exec entries by identity, not only by name.
//!
//! A policy's `never` list names paths, but the kernel matches the binary
//! a path leads to by (device, inode). So a hard link to a never-automated
//! binary under another name, or a copy of it, inside a grantable
//! directory would pass a check on names alone. Here each never exec entry
//! is turned into the files it names on this node, now:
//!
//! - a literal path: the file it leads to (symlinks followed);
//! - a subtree (`/opt/admin/**`): the regular files below it (symlinks to
//!   files followed, directories not), at most [`MAX_FILES`] per entry
//!   and [`MAX_VISITS`] directory entries read; past a bound the rest is
//!   checked by name only and a warning says so.
//!
//! A requested binary meets `never` when it is the same (device, inode)
//! as one of them (`is a hard link to`) or has the same content (`is a
//! copy of`: same size, then same sha256). Only a requested binary with
//! the size of some never binary is hashed (a copy has the same size), and
//! a never binary's digest is computed only then, once per version of the
//! file: digests come from [`crate::digest`], which keeps them per file
//! version for the whole process, so a submit does not rehash unchanged
//! files.
//!
//! The engine checks at admission ([`crate::check::admit`], also on every
//! reload's re-check) on the path's identity, and again when the grant is
//! made ([`crate::resolve`]) on the opened descriptor's identity and
//! content, so the inode the kernel will match is the one that was
//! checked. The files are listed anew for each decision (stat only), so a
//! never binary replaced by a package upgrade is known by its new inode.

use std::{
    collections::HashSet,
    fs::{File, Metadata},
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
    sync::{LazyLock, Mutex},
};

use acelogic_domain::{
    Reason, Refusal,
    capability::{Capability, PathPattern},
    policy::Workload,
};

/// At most this many files are taken from one never subtree entry.
pub const MAX_FILES: usize = 4096;
/// At most this many directory entries are read for one subtree entry.
pub const MAX_VISITS: usize = 65_536;

/// What identifies one version of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Stamp {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Stamp {
    #[must_use]
    pub fn of(m: &Metadata) -> Self {
        Self {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }
}

/// One file a never exec entry names on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NeverBinary {
    /// The entry as the policy writes it (`/usr/bin/nsenter`,
    /// `/opt/admin/**`).
    pub entry: String,
    /// The file: the entry itself when literal, else the file below it.
    pub path: PathBuf,
    pub stamp: Stamp,
}

/// The never binaries of one workload, listed for one decision.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Guard {
    pub workload: String,
    pub binaries: Vec<NeverBinary>,
    /// Entries only partly listed (a bound was hit).
    pub warnings: Vec<String>,
}

static WARNED: LazyLock<Mutex<HashSet<String>>> = LazyLock::new(|| Mutex::new(HashSet::new()));

/// The files below `dir`, bounded; the warning when a bound was hit.
fn walk(entry: &str, dir: &Path, out: &mut Vec<NeverBinary>) -> Option<String> {
    let mut stack = vec![dir.to_path_buf()];
    let (mut files, mut visits) = (0usize, 0usize);
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd.flatten() {
            visits += 1;
            if visits > MAX_VISITS {
                return Some(format!(
                    "never exec {entry}: more than {MAX_VISITS} directory entries below {}; \
                     {files} files are matched by identity, the rest by name only (name the \
                     binaries, or a smaller directory)",
                    dir.display()
                ));
            }
            let Ok(t) = e.file_type() else { continue };
            let path = e.path();
            if t.is_dir() {
                stack.push(path);
                continue;
            }
            // A symlink to a file: executing it runs that file's inode.
            let Ok(m) = std::fs::metadata(&path) else {
                continue;
            };
            if !m.is_file() {
                continue;
            }
            if files == MAX_FILES {
                return Some(format!(
                    "never exec {entry}: more than {MAX_FILES} files below {}; the first \
                     {MAX_FILES} are matched by identity, the rest by name only (name the \
                     binaries, or a smaller directory)",
                    dir.display()
                ));
            }
            files += 1;
            out.push(NeverBinary {
                entry: entry.to_owned(),
                path,
                stamp: Stamp::of(&m),
            });
        }
    }
    None
}

impl Guard {
    /// Lists the never exec binaries of `w` as they are now. Warnings
    /// (a bound hit) are logged once per entry and kept in the guard.
    #[must_use]
    pub fn of(w: &Workload) -> Self {
        let mut binaries = Vec::new();
        let mut warnings = Vec::new();
        for p in &w.never.exec {
            let entry = p.to_string();
            match p {
                PathPattern::Exact(path) => {
                    if let Ok(m) = std::fs::metadata(path.as_path())
                        && m.is_file()
                    {
                        binaries.push(NeverBinary {
                            entry,
                            path: path.as_path().to_path_buf(),
                            stamp: Stamp::of(&m),
                        });
                    }
                }
                PathPattern::Under(dir) => {
                    if let Some(w) = walk(&entry, dir.as_path(), &mut binaries) {
                        warnings.push(w);
                    }
                }
            }
        }
        for warning in &warnings {
            let key = format!("{}\0{warning}", w.name);
            if WARNED.lock().is_ok_and(|mut s| s.insert(key)) {
                tracing::warn!(workload = %w.name, %warning, "never exec entry only partly matched by identity");
            }
        }
        Self {
            workload: w.name.clone(),
            binaries,
            warnings,
        }
    }

    /// The guard of `w` when `caps` grant any exec, else an empty one.
    #[must_use]
    pub fn for_caps(w: &Workload, caps: &[Capability]) -> Self {
        if caps.iter().any(|c| matches!(c, Capability::Exec(_))) {
            Self::of(w)
        } else {
            Self {
                workload: w.name.clone(),
                ..Self::default()
            }
        }
    }

    /// True when a copy of some never binary could have `size`.
    #[must_use]
    pub fn same_size(&self, stamp: &Stamp) -> bool {
        self.binaries.iter().any(|b| {
            b.stamp.size == stamp.size && (b.stamp.dev, b.stamp.ino) != (stamp.dev, stamp.ino)
        })
    }

    /// Refuses `never` when `stamp` is the inode of a never binary;
    /// `path` is the requested binary.
    pub fn check_link(&self, path: &Path, stamp: &Stamp) -> Result<(), Refusal> {
        let Some(b) = self
            .binaries
            .iter()
            .find(|b| (b.stamp.dev, b.stamp.ino) == (stamp.dev, stamp.ino))
        else {
            return Ok(());
        };
        let canonical = |p: &Path| std::fs::canonicalize(p).ok();
        let how = if canonical(path).is_some_and(|c| Some(c) == canonical(&b.path)) {
            "leads through symlinks to"
        } else {
            "is a hard link to"
        };
        Err(Refusal::new(
            Reason::Never,
            format!(
                "{} {how} never-automated {} (the same device and inode {}; never exec {} of \
                 workload {}): no name, link or copy of it can be granted",
                path.display(),
                b.path.display(),
                stamp.ino,
                b.entry,
                self.workload
            ),
        ))
    }

    /// Refuses `never` when content `digest` (of a file of `stamp`'s size)
    /// is that of a never binary of the same size. A never binary of that
    /// size whose content cannot be read is refused too (fail closed).
    pub fn check_copy(&self, path: &Path, stamp: &Stamp, digest: &[u8; 32]) -> Result<(), Refusal> {
        let shown = path.display();
        for b in self.binaries.iter().filter(|b| {
            b.stamp.size == stamp.size && (b.stamp.dev, b.stamp.ino) != (stamp.dev, stamp.ino)
        }) {
            let never = match digest_of(b) {
                Ok(Some(d)) => d,
                // Gone since it was listed: nothing to copy from.
                Ok(None) => continue,
                Err(e) => {
                    return Err(Refusal::new(
                        Reason::Never,
                        format!(
                            "{shown} has the size of never-automated {} (never exec {} of \
                             workload {}), whose content cannot be read to tell them apart: \
                             {e}",
                            b.path.display(),
                            b.entry,
                            self.workload
                        ),
                    ));
                }
            };
            if &never == digest {
                return Err(Refusal::new(
                    Reason::Never,
                    format!(
                        "{shown} is a copy of never-automated {} (the same sha256 {}; never \
                         exec {} of workload {}): no name, link or copy of it can be granted",
                        b.path.display(),
                        hex::encode(digest),
                        b.entry,
                        self.workload
                    ),
                ));
            }
        }
        Ok(())
    }

    /// Admission's check of each exec capability, on the paths as they are
    /// now: the identity of the file each path leads to, and its content
    /// only when its size is that of a never binary. A path that does not
    /// lead to a regular file is left to [`crate::resolve`].
    pub fn check_caps(&self, caps: &[Capability]) -> Result<(), Refusal> {
        if self.binaries.is_empty() {
            return Ok(());
        }
        for (i, cap) in caps.iter().enumerate() {
            let Capability::Exec(e) = cap else { continue };
            let at = |r: Refusal| Refusal {
                code: r.code,
                why: format!("capabilities[{i}] ({cap}): {}", r.why),
            };
            let path = e.path.as_path();
            let Ok(meta) = std::fs::metadata(path) else {
                continue;
            };
            if !meta.is_file() {
                continue;
            }
            let stamp = Stamp::of(&meta);
            self.check_link(path, &stamp).map_err(at)?;
            if !self.same_size(&stamp) {
                continue;
            }
            // The content, from one descriptor whose identity is the one
            // checked; a file replaced meanwhile is checked at install.
            let Ok(file) = File::open(path) else {
                continue;
            };
            let Ok(now) = file.metadata() else { continue };
            let stamp = Stamp::of(&now);
            self.check_link(path, &stamp).map_err(at)?;
            let Ok(digest) = crate::digest::sha256(&file) else {
                continue;
            };
            self.check_copy(path, &stamp, &digest).map_err(at)?;
        }
        Ok(())
    }
}

/// The digest of never binary `b` (cached per file version); `None` when
/// the file is gone.
fn digest_of(b: &NeverBinary) -> std::io::Result<Option<[u8; 32]>> {
    let file = match File::open(&b.path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    crate::digest::sha256(&file).map(Some)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn workload(dir: &Path, never: &[String]) -> Workload {
        let text = format!(
            "apiVersion: acelogic.dev/v1
kind: CapabilityPolicy
metadata: {{name: t}}
spec:
  workloads:
    - {{name: w, cgroups: [/t]}}
  grantable:
    - {{name: r, exec: [{0}/**], issuers: [ci], maxTtl: 1h}}
  never:
    exec: [{1}]
",
            dir.display(),
            never.join(", ")
        );
        let pd = dir.join("policies");
        std::fs::create_dir_all(&pd).unwrap();
        std::fs::write(pd.join("p.yaml"), text).unwrap();
        acelogic_domain::policy::load_dir(&pd)
            .unwrap()
            .set
            .workloads
            .remove("w")
            .unwrap()
    }

    fn tool(path: &Path, content: &[u8]) {
        std::fs::write(path, content).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    fn exec(path: &Path) -> Vec<Capability> {
        serde_json::from_str(&format!(r#"[{{"exec":{{"path":"{}"}}}}]"#, path.display())).unwrap()
    }

    #[test]
    fn links_and_copies_of_listed_files_are_refused_and_others_pass() {
        let dir = tempfile::Builder::new()
            .prefix("acelogic-never-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("admin/sub")).unwrap();
        std::fs::create_dir_all(d.join("tools")).unwrap();
        tool(&d.join("nsenter"), b"#!/bin/sh\necho nsenter\n");
        tool(&d.join("admin/sub/reboot"), b"#!/bin/sh\necho reboot\n");
        let w = workload(
            d,
            &[
                d.join("nsenter").display().to_string(),
                format!("{}/**", d.join("admin").display()),
            ],
        );
        let g = Guard::of(&w);
        assert_eq!(g.binaries.len(), 2, "{g:?}");
        assert!(g.warnings.is_empty());

        std::fs::hard_link(d.join("nsenter"), d.join("tools/ns")).unwrap();
        let r = g.check_caps(&exec(&d.join("tools/ns"))).unwrap_err();
        assert_eq!(r.code, "never");
        assert!(r.why.contains("is a hard link to never-automated"), "{r}");

        std::fs::copy(d.join("admin/sub/reboot"), d.join("tools/rb")).unwrap();
        let r = g.check_caps(&exec(&d.join("tools/rb"))).unwrap_err();
        assert_eq!(r.code, "never");
        assert!(r.why.contains("is a copy of never-automated"), "{r}");

        // Same size, other content: allowed.
        tool(&d.join("tools/same-size"), b"#!/bin/sh\necho rebooo\n");
        g.check_caps(&exec(&d.join("tools/same-size"))).unwrap();
        tool(&d.join("tools/other"), b"#!/bin/sh\necho hello world\n");
        g.check_caps(&exec(&d.join("tools/other"))).unwrap();
        // Missing paths are left to resolve.
        g.check_caps(&exec(&d.join("tools/missing"))).unwrap();
    }

    #[test]
    fn a_subtree_past_the_bound_warns() {
        let dir = tempfile::Builder::new()
            .prefix("acelogic-never-bound-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("many")).unwrap();
        for i in 0..=MAX_FILES {
            std::fs::write(d.join(format!("many/f{i}")), b"x").unwrap();
        }
        let w = workload(d, &[format!("{}/**", d.join("many").display())]);
        let g = Guard::of(&w);
        assert_eq!(g.binaries.len(), MAX_FILES);
        assert_eq!(g.warnings.len(), 1);
        assert!(
            g.warnings[0].contains("more than 4096 files"),
            "{:?}",
            g.warnings
        );
    }
}
