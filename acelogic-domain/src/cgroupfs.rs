//! The host's cgroup v2 hierarchy: where it is mounted and which
//! directory is its real root. The daemon, `acelogicctl run` and the
//! kernel adapter all need it; it reads `/proc/self/mounts` and statfs,
//! nothing else.

use std::{
    fs,
    path::{Path, PathBuf},
};

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

/// Where the first filesystem of type `fstype` is mounted.
#[must_use]
pub fn mount_of_type(fstype: &str) -> Option<PathBuf> {
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
    fn cgroup_root_refuses_what_is_not_a_cgroup2_root() {
        // A directory in a TempDir: the test removes it to see a missing
        // path refused, and the TempDir cleans up either way.
        let scratch = tempfile::Builder::new()
            .prefix("acelogic-cgroot-")
            .tempdir()
            .unwrap();
        let dir = scratch.path().join("root");
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
