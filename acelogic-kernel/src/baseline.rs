//! Brings a scope's baseline in the kernel to a wanted state, whatever it
//! held before: the daemon calls this at start (adopting pinned maps from
//! an earlier run) and after every policy reload.
//!
//! New and changed entries are written before stale ones are removed, so a
//! reload never opens a window in which something both the old and the new
//! policy allow is denied.

use std::collections::{BTreeMap, HashSet};

use acelogic_common::{
    names,
    rules::{FileKey, FileRule, NetKey, NetRule},
};
use aya::maps::lpm_trie::Key;

use acelogic_domain::grant::NetTarget;

use super::{Kernel, KernelError};

/// A scope's wanted baseline, with objects already resolved.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Wanted {
    /// (kernel dev, inode) -> rights bits.
    pub files: BTreeMap<(u32, u64), u32>,
    pub nets: Vec<NetTarget>,
}

/// What a sync changed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Synced {
    pub written: usize,
    pub removed: usize,
}

impl Kernel {
    /// Makes scope `scope_id`'s baseline exactly `wanted`.
    pub fn sync_baseline(&mut self, scope_id: u32, wanted: &Wanted) -> Result<Synced, KernelError> {
        let mut done = Synced::default();
        let mut files = self.file_baseline()?;
        let mut have = BTreeMap::new();
        for item in files.iter() {
            let (k, rule) = item.map_err(KernelError::on_map(names::MAP_FILE_BASELINE))?;
            if k.scope_id == scope_id {
                have.insert((k.dev, k.ino), rule.rights);
            }
        }
        for (&(dev, ino), &rights) in &wanted.files {
            if have.get(&(dev, ino)) != Some(&rights) {
                files
                    .insert(
                        FileKey { scope_id, dev, ino },
                        FileRule {
                            rights,
                            _reserved: 0,
                        },
                        0,
                    )
                    .map_err(KernelError::on_map(names::MAP_FILE_BASELINE))?;
                done.written += 1;
            }
        }
        for (dev, ino) in have.keys() {
            if !wanted.files.contains_key(&(*dev, *ino)) {
                files
                    .remove(&FileKey {
                        scope_id,
                        dev: *dev,
                        ino: *ino,
                    })
                    .map_err(KernelError::on_map(names::MAP_FILE_BASELINE))?;
                done.removed += 1;
            }
        }

        let mut want_nets = HashSet::new();
        for t in &wanted.nets {
            let k = super::rules::net_key(t, scope_id)?;
            want_nets.insert((k.prefix_len(), k.data()));
        }
        let mut nets = self.net_baseline()?;
        let mut have_nets = HashSet::new();
        for item in nets.keys() {
            let k = item.map_err(KernelError::on_map(names::MAP_NET_BASELINE))?;
            if u32::from_be(k.data().scope_id_be) == scope_id {
                have_nets.insert((k.prefix_len(), k.data()));
            }
        }
        for (len, key) in &want_nets {
            if !have_nets.contains(&(*len, *key)) {
                nets.insert(&Key::new(*len, *key), NetRule { _reserved: 0 }, 0)
                    .map_err(KernelError::on_map(names::MAP_NET_BASELINE))?;
                done.written += 1;
            }
        }
        for (len, key) in have_nets.difference(&want_nets) {
            nets.remove(&Key::<NetKey>::new(*len, *key))
                .map_err(KernelError::on_map(names::MAP_NET_BASELINE))?;
            done.removed += 1;
        }
        // A changed rule may have narrowed: writes remembered under the
        // old rules are decided again.
        if done.written + done.removed > 0 {
            self.bump_generation(names::MAP_RULES_GEN)?;
        }
        Ok(done)
    }
}
