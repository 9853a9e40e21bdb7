//! Which cgroups a workload owns: paths relative to the cgroup2 mount,
//! written in absolute form (`/acelogic/coding-agent`), where a whole
//! component may be `*` (one level: `/kubepods.slice/*/agent`).
//!
//! Patterns are matched component by component, never as strings, so
//! `/a/*` cannot reach `/a/b/c` and `/a/b*` is refused rather than
//! guessed at.

use std::{
    fmt, fs,
    path::{Component, Path, PathBuf},
};

use acelogic_common::scope::MAX_SCOPE_LEVEL;

use super::Problem;
use crate::capability::MAX_PATH_BYTES;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum Part {
    Name(String),
    Any,
}

/// A cgroup path pattern from a policy.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CgroupPattern {
    text: PathBuf,
    parts: Vec<Part>,
}

impl CgroupPattern {
    /// Parses one pattern; the error names the rule it breaks
    /// (`bad-cgroup`, `cgroup-root` or `cgroup-wildcard`).
    pub fn parse(s: &str) -> Result<Self, Problem> {
        let bad = |why: String| Problem::BadCgroup {
            path: shorten(s),
            why,
        };
        if s == "/" {
            return Err(Problem::CgroupRoot);
        }
        if s.is_empty() {
            return Err(bad("empty; write a path such as /acelogic/my-agent".into()));
        }
        if s.len() > MAX_PATH_BYTES {
            return Err(bad(format!("longer than {MAX_PATH_BYTES} bytes")));
        }
        if s.contains('\0') {
            return Err(bad("contains a NUL byte".into()));
        }
        if !s.starts_with('/') {
            return Err(bad(
                "must be absolute, relative to the cgroup2 mount (start with /)".into(),
            ));
        }
        if s == "/sys/fs/cgroup" || s.starts_with("/sys/fs/cgroup/") {
            return Err(bad(
                "write the path relative to the cgroup2 mount, without /sys/fs/cgroup".into(),
            ));
        }
        if s.ends_with('/') {
            return Err(bad("must not end with /".into()));
        }
        let mut parts = Vec::new();
        for name in s[1..].split('/') {
            match name {
                "" => return Err(bad("has an empty component (//)".into())),
                "." | ".." => return Err(bad("must not contain . or .. components".into())),
                "*" => parts.push(Part::Any),
                n if n.contains('*') => {
                    return Err(Problem::CgroupWildcard { path: shorten(s) });
                }
                n => parts.push(Part::Name(n.to_owned())),
            }
        }
        if parts.len() > MAX_SCOPE_LEVEL as usize {
            return Err(bad(format!(
                "is {} levels deep; the kernel side walks ancestors only to level \
                 {MAX_SCOPE_LEVEL}",
                parts.len()
            )));
        }
        Ok(Self {
            text: PathBuf::from(s),
            parts,
        })
    }

    /// True when `cgroup` (relative to the cgroup2 mount, absolute form)
    /// is named by this pattern. Descendants are not matched here: the
    /// kernel governs them through their registered ancestor.
    #[must_use]
    pub fn matches(&self, cgroup: &Path) -> bool {
        let mut components = cgroup.components();
        if components.next() != Some(Component::RootDir) {
            return false;
        }
        let mut parts = self.parts.iter();
        loop {
            match (parts.next(), components.next()) {
                (None, None) => return true,
                (Some(Part::Any), Some(Component::Normal(_))) => {}
                (Some(Part::Name(n)), Some(Component::Normal(c))) if c == n.as_str() => {}
                _ => return false,
            }
        }
    }

    /// The path itself when the pattern has no `*`.
    #[must_use]
    pub fn literal(&self) -> Option<&Path> {
        self.parts
            .iter()
            .all(|p| matches!(p, Part::Name(_)))
            .then_some(self.text.as_path())
    }

    /// The existing cgroup directories (full paths below `cgroup2_mount`)
    /// this pattern names now, sorted. A `*` lists subdirectories;
    /// symbolic links are never followed, so nothing outside the mount
    /// can be reached.
    #[must_use]
    pub fn expand(&self, cgroup2_mount: &Path) -> Vec<PathBuf> {
        let mut found = vec![cgroup2_mount.to_path_buf()];
        for part in &self.parts {
            let mut next = Vec::new();
            for dir in &found {
                match part {
                    Part::Name(n) => {
                        let p = dir.join(n);
                        if fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
                            next.push(p);
                        }
                    }
                    Part::Any => {
                        let Ok(entries) = fs::read_dir(dir) else {
                            continue;
                        };
                        next.extend(
                            entries
                                .flatten()
                                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                                .map(|e| e.path()),
                        );
                    }
                }
            }
            next.sort();
            found = next;
        }
        found
    }

    /// True when some cgroup path matches both patterns: same depth and,
    /// at each level, the same name or a `*` on either side.
    #[must_use]
    pub fn overlaps(&self, other: &Self) -> bool {
        self.parts.len() == other.parts.len()
            && self.parts.iter().zip(&other.parts).all(|pair| match pair {
                (Part::Name(a), Part::Name(b)) => a == b,
                _ => true,
            })
    }

    #[must_use]
    pub fn as_path(&self) -> &Path {
        &self.text
    }
}

impl fmt::Display for CgroupPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.text.display())
    }
}

/// Keeps messages readable when a value is huge.
pub(crate) fn shorten(s: &str) -> String {
    let mut out = s.to_owned();
    if out.len() > 80 {
        let mut cut = 80;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pat(s: &str) -> CgroupPattern {
        CgroupPattern::parse(s).unwrap()
    }

    #[test]
    fn parse_refuses_what_cannot_be_governed() {
        for (input, code) in [
            ("/", "cgroup-root"),
            ("", "bad-cgroup"),
            ("acelogic/a", "bad-cgroup"),
            ("/a/", "bad-cgroup"),
            ("/a//b", "bad-cgroup"),
            ("/a/../b", "bad-cgroup"),
            ("/a/./b", "bad-cgroup"),
            ("/sys/fs/cgroup/a", "bad-cgroup"),
            ("/a\0", "bad-cgroup"),
            ("/a/b*", "cgroup-wildcard"),
            ("/**", "cgroup-wildcard"),
            ("/a/*x/c", "cgroup-wildcard"),
        ] {
            let err = CgroupPattern::parse(input).expect_err(input);
            assert_eq!(err.code(), code, "{input:?}: {err}");
        }
        let deep = "/a".repeat(MAX_SCOPE_LEVEL as usize + 1);
        assert_eq!(
            CgroupPattern::parse(&deep).unwrap_err().code(),
            "bad-cgroup"
        );
        let deepest = "/a".repeat(MAX_SCOPE_LEVEL as usize);
        assert!(CgroupPattern::parse(&deepest).is_ok());
    }

    #[test]
    fn matching_is_per_component() {
        let p = pat("/kubepods.slice/*/agent");
        assert!(p.matches(Path::new("/kubepods.slice/pod1/agent")));
        assert!(!p.matches(Path::new("/kubepods.slice/pod1/agent/child")));
        assert!(!p.matches(Path::new("/kubepods.slice/agent")));
        assert!(!p.matches(Path::new("/kubepods.slice/a/b/agent")));
        assert!(!p.matches(Path::new("kubepods.slice/pod1/agent")));
        assert!(!p.matches(Path::new("/kubepods.slice/../agent")));
        assert_eq!(p.literal(), None);
        let l = pat("/acelogic/coding");
        assert!(l.matches(Path::new("/acelogic/coding")));
        assert!(!l.matches(Path::new("/acelogic/codin")));
        assert!(!l.matches(Path::new("/acelogic")));
        assert_eq!(l.literal(), Some(Path::new("/acelogic/coding")));
        assert_eq!(l.to_string(), "/acelogic/coding");
    }

    #[test]
    fn overlap_is_any_shared_path() {
        assert!(pat("/a/*").overlaps(&pat("/a/b")));
        assert!(pat("/a/b").overlaps(&pat("/a/b")));
        assert!(pat("/*/b").overlaps(&pat("/a/*")));
        assert!(!pat("/a/*").overlaps(&pat("/a/b/c")));
        assert!(!pat("/a/c").overlaps(&pat("/a/b")));
        assert!(
            !pat("/a").overlaps(&pat("/a/b")),
            "nesting is not the same cgroup"
        );
    }

    #[test]
    fn expand_lists_existing_directories_without_following_links() {
        let root_dir = super::super::tests::temp_dir("cgroup-expand");
        let root = root_dir.path().to_path_buf();
        for d in [
            "kubepods.slice/p1/agent",
            "kubepods.slice/p2/agent",
            "kubepods.slice/p3/other",
        ] {
            fs::create_dir_all(root.join(d)).unwrap();
        }
        fs::write(root.join("kubepods.slice/file"), "").unwrap();
        let outside_dir = super::super::tests::temp_dir("cgroup-outside");
        let outside = outside_dir.path().to_path_buf();
        fs::create_dir_all(outside.join("agent")).unwrap();
        std::os::unix::fs::symlink(&outside, root.join("kubepods.slice/link")).unwrap();

        assert_eq!(
            pat("/kubepods.slice/*/agent").expand(&root),
            vec![
                root.join("kubepods.slice/p1/agent"),
                root.join("kubepods.slice/p2/agent")
            ]
        );
        assert_eq!(
            pat("/kubepods.slice/*").expand(&root),
            ["p1", "p2", "p3"]
                .map(|p| root.join("kubepods.slice").join(p))
                .to_vec()
        );
        assert_eq!(
            pat("/kubepods.slice/p3/other").expand(&root),
            vec![root.join("kubepods.slice/p3/other")]
        );
        assert!(pat("/kubepods.slice/link/agent").expand(&root).is_empty());
        assert!(pat("/missing/*").expand(&root).is_empty());
        assert!(pat("/kubepods.slice/file").expand(&root).is_empty());
    }
}
