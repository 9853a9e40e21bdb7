//! Pinned state: how enforcement outlives the process that loaded it.
//!
//! Layout under the pin directory (a bpffs directory,
//! [`DEFAULT_PIN_DIR`] in production):
//!
//! ```text
//! maps/<MAP NAME>     every map; a restarted loader reuses them
//! links/<PROGRAM>     every attached program's link; while it is pinned
//!                     the program stays attached, with or without a loader
//! ```
//!
//! A loader that finds a pinned link adopts it: the program keeps running
//! untouched, so there is no moment without enforcement. Only
//! [`uninstall`] removes the pins, which detaches the programs.

use std::{
    fs, io,
    path::{Path, PathBuf},
};

use acelogic_common::names;
use aya::{
    maps::MapInfo,
    programs::links::{FdLink, PinnedLink},
};

use super::{KernelError, object::BPF_OBJECT, statfs_type};

/// Where the node daemon pins its state.
pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/acelogic";

/// `BPF_FS_MAGIC` from `linux/magic.h`.
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

fn maps_dir(dir: &Path) -> PathBuf {
    dir.join("maps")
}

fn links_dir(dir: &Path) -> PathBuf {
    dir.join("links")
}

fn pinned_err(path: &Path, why: impl Into<String>) -> KernelError {
    KernelError::Pinned {
        path: path.to_path_buf(),
        why: why.into(),
    }
}

/// Makes the pin directory (on bpffs), checks that maps already pinned
/// there have this build's layout, and returns the pin path of each map.
pub(super) fn prepare(dir: &Path) -> Result<Vec<(&'static str, PathBuf)>, KernelError> {
    for d in [dir.to_path_buf(), maps_dir(dir), links_dir(dir)] {
        fs::create_dir_all(&d).map_err(|e| pinned_err(&d, format!("creating it: {e}")))?;
    }
    let fs_type = statfs_type(dir).map_err(|e| pinned_err(dir, format!("statfs: {e}")))?;
    if fs_type != BPF_FS_MAGIC {
        return Err(pinned_err(
            dir,
            "not on a bpf filesystem; mount one with `mount -t bpf bpf /sys/fs/bpf`",
        ));
    }
    let object = aya_obj::Object::parse(BPF_OBJECT)
        .map_err(|e| pinned_err(dir, format!("parsing the embedded object: {e}")))?;
    let mut out = Vec::new();
    for name in names::ALL_MAPS {
        let path = maps_dir(dir).join(name);
        if path.exists() {
            let want = object
                .maps
                .get(name)
                .ok_or(KernelError::missing_map(name))?;
            let have = MapInfo::from_pin(&path).map_err(KernelError::on_map(name))?;
            let layout = |t, k, v| format!("type {t}, key {k} bytes, value {v} bytes");
            let (w, h) = (
                layout(want.map_type(), want.key_size(), want.value_size()),
                layout(
                    have.map_type().map_or(u32::MAX, |t| t as u32),
                    have.key_size(),
                    have.value_size(),
                ),
            );
            if w != h {
                return Err(pinned_err(
                    &path,
                    format!(
                        "pinned by an incompatible build ({h}; this build needs {w}); \
                         run `acelogic-agent uninstall` first"
                    ),
                ));
            }
        }
        out.push((name, path));
    }
    Ok(out)
}

/// Whether `program`'s link is pinned (the program is attached).
pub(super) fn link_pinned(dir: &Path, program: &str) -> bool {
    link_path(dir, program).is_some()
}

/// Where `program`'s link is pinned, when it is (the program is attached).
pub(super) fn link_path(dir: &Path, program: &str) -> Option<PathBuf> {
    let path = links_dir(dir).join(program);
    path.exists().then_some(path)
}

/// Removes `program`'s link pin (the program detaches once no process
/// holds the link).
pub(super) fn unpin_link(dir: &Path, program: &str) -> Result<(), KernelError> {
    let path = links_dir(dir).join(program);
    match fs::remove_file(&path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(pinned_err(&path, format!("unpinning: {e}"))),
    }
}

/// Pins an attached program's link so it outlives this process.
pub(super) fn pin_link(
    dir: &Path,
    program: &'static str,
    link: FdLink,
) -> Result<PinnedLink, KernelError> {
    let path = links_dir(dir).join(program);
    link.pin(&path).map_err(|source| KernelError::Pin {
        name: program,
        path,
        source,
    })
}

/// What [`uninstall`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Uninstalled {
    pub links: Vec<String>,
    pub maps: Vec<String>,
}

/// Removes the pinned state under `dir`: links first (their programs
/// detach once no process holds them), then maps, then the directories.
/// Enforcement on this node ends. Unknown files are left and reported.
pub fn uninstall(dir: &Path) -> Result<Uninstalled, KernelError> {
    let mut done = Uninstalled::default();
    for (sub, list) in [
        (links_dir(dir), &mut done.links),
        (maps_dir(dir), &mut done.maps),
    ] {
        let entries = match fs::read_dir(&sub) {
            Ok(e) => e,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(pinned_err(&sub, e.to_string())),
        };
        for entry in entries {
            let path = entry.map_err(|e| pinned_err(&sub, e.to_string()))?.path();
            fs::remove_file(&path).map_err(|e| pinned_err(&path, format!("unpinning: {e}")))?;
            list.push(
                path.file_name()
                    .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
            );
        }
        fs::remove_dir(&sub).map_err(|e| pinned_err(&sub, e.to_string()))?;
    }
    match fs::remove_dir(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(pinned_err(dir, e.to_string())),
    }
    Ok(done)
}
