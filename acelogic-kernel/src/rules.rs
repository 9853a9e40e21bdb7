//! Baselines and grants, as the kernel sees them: objects resolved to
//! identities (files to device and inode, destinations to an LPM key) in
//! the scope's maps.
//!
//! Grants from one artifact are installed together or not at all. A grant
//! expires in the kernel by `CLOCK_BOOTTIME`, so it dies on time even with
//! no daemon alive to remove it.

use std::{net::IpAddr, path::Path};

use acelogic_domain::grant::{
    GrantObject, GrantSpec, NetTarget, StatError, boot_ns_now, file_identity,
};

use acelogic_common::{
    names,
    rules::{
        FileKey, FileRule, Grant, NET_FIXED_PREFIX, NetKey, NetRule, Writer, family, grant_flags,
        rights,
    },
};
use aya::maps::{
    Array, HashMap, MapData, MapError,
    lpm_trie::{Key, LpmTrie},
};

use super::{Kernel, KernelError};

/// A rule or grant that was refused; nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    #[error(transparent)]
    Stat(#[from] StatError),
    #[error("rights {0:#x} are empty or include unknown bits (known: {all:#x})", all = rights::ALL)]
    Rights(u32),
    #[error("AF_UNIX destinations are baseline-only; a grant cannot carry unix-connect")]
    UnixGrant,
    #[error("prefix /{prefix} is longer than a {family} address")]
    Prefix { prefix: u8, family: &'static str },
    #[error("grant {grant_id}: {what} is already granted by grant {existing}")]
    Conflict {
        grant_id: u64,
        what: String,
        existing: u64,
    },
    #[error("grant {grant_id} expires at boot time {expires_ns} ns, which has passed")]
    Expired { grant_id: u64, expires_ns: u64 },
    #[error("grant id 0 is reserved (it means \"no grant\" in records)")]
    ZeroGrant,
    #[error("a grant must allow at least one use, or be unlimited")]
    NoUses,
}

/// The LPM key of `target` for scope `scope_id`, host bits masked off.
pub(super) fn net_key(target: &NetTarget, scope_id: u32) -> Result<Key<NetKey>, RuleError> {
    let (fam, bits, mut bytes, name) = match target.addr {
        IpAddr::V4(a) => {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&a.octets());
            (family::INET, 32u8, b, "IPv4")
        }
        IpAddr::V6(a) => (family::INET6, 128u8, a.octets(), "IPv6"),
    };
    if target.prefix > bits {
        return Err(RuleError::Prefix {
            prefix: target.prefix,
            family: name,
        });
    }
    for (i, byte) in bytes.iter_mut().enumerate() {
        let kept = usize::from(target.prefix).saturating_sub(i * 8).min(8);
        #[expect(clippy::cast_possible_truncation, reason = "kept <= 8")]
        let mask = if kept == 0 {
            0
        } else {
            0xffu8 << (8 - kept as u32)
        };
        *byte &= mask;
    }
    Ok(Key::new(
        NET_FIXED_PREFIX + u32::from(target.prefix),
        NetKey {
            scope_id_be: scope_id.to_be(),
            protocol: target.protocol.number(),
            family: fam,
            port_be: target.port.to_be(),
            addr: bytes,
        },
    ))
}

/// An installed grant, as read back from the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstalledGrant {
    pub scope_id: u32,
    pub target: GrantTarget,
    pub grant: Grant,
}

/// The kernel key of an installed grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantTarget {
    File { dev: u32, ino: u64 },
    Net { key: NetKey, prefix_len: u32 },
}

impl InstalledGrant {
    /// Uses left (`None`: unlimited).
    #[must_use]
    pub fn uses_left(&self) -> Option<u64> {
        (self.grant.flags & grant_flags::UNLIMITED_USES == 0)
            .then(|| u64::from(self.grant.max_uses).saturating_sub(self.grant.used))
    }
}

const fn check_rights(r: u32) -> Result<(), RuleError> {
    if r == 0 || r & !rights::ALL != 0 {
        Err(RuleError::Rights(r))
    } else {
        Ok(())
    }
}

/// A grant resolved to its kernel key, ready to insert.
enum Resolved {
    File(FileKey, Grant),
    Net(Key<NetKey>, Grant),
}

/// The kernel's memory of decided writes through open files (tests and
/// diagnostics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Writers {
    /// Entries in `WRITERS`: open files a scope's write was decided on.
    pub entries: u64,
    /// `WRITERS_HELD`, the count the programs keep of those entries.
    pub held: u64,
}

impl Kernel {
    /// [`Writers`], read now. Not atomic: taken while no governed write is
    /// being decided, `entries == held`.
    pub fn writers(&self) -> Result<Writers, KernelError> {
        let err = KernelError::on_map(names::MAP_WRITERS);
        let map: HashMap<&MapData, u64, Writer> =
            HashMap::try_from(self.map(names::MAP_WRITERS)?).map_err(&err)?;
        let mut entries = 0;
        for key in map.keys() {
            key.map_err(&err)?;
            entries += 1;
        }
        let err = KernelError::on_map(names::MAP_WRITERS_HELD);
        let held: Array<&MapData, u64> =
            Array::try_from(self.map(names::MAP_WRITERS_HELD)?).map_err(&err)?;
        Ok(Writers {
            entries,
            held: held.get(&0, 0).map_err(&err)?,
        })
    }

    pub(super) fn file_baseline(
        &mut self,
    ) -> Result<HashMap<&mut MapData, FileKey, FileRule>, KernelError> {
        HashMap::try_from(self.map_mut(names::MAP_FILE_BASELINE)?)
            .map_err(KernelError::on_map(names::MAP_FILE_BASELINE))
    }

    fn file_grants(&mut self) -> Result<HashMap<&mut MapData, FileKey, Grant>, KernelError> {
        HashMap::try_from(self.map_mut(names::MAP_FILE_GRANTS)?)
            .map_err(KernelError::on_map(names::MAP_FILE_GRANTS))
    }

    pub(super) fn net_baseline(
        &mut self,
    ) -> Result<LpmTrie<&mut MapData, NetKey, NetRule>, KernelError> {
        LpmTrie::try_from(self.map_mut(names::MAP_NET_BASELINE)?)
            .map_err(KernelError::on_map(names::MAP_NET_BASELINE))
    }

    fn net_grants(&mut self) -> Result<LpmTrie<&mut MapData, NetKey, Grant>, KernelError> {
        LpmTrie::try_from(self.map_mut(names::MAP_NET_GRANTS)?)
            .map_err(KernelError::on_map(names::MAP_NET_GRANTS))
    }

    /// Adds `rights` on the file or directory at `path` to scope
    /// `scope_id`'s baseline (merged with rights it already has).
    pub fn allow_file(&mut self, scope_id: u32, path: &Path, r: u32) -> Result<(), KernelError> {
        check_rights(r)?;
        let (dev, ino) = file_identity(path).map_err(RuleError::from)?;
        let key = FileKey { scope_id, dev, ino };
        let mut map = self.file_baseline()?;
        let have = match map.get(&key, 0) {
            Ok(rule) => rule.rights,
            Err(MapError::KeyNotFound) => 0,
            Err(e) => return Err(KernelError::on_map(names::MAP_FILE_BASELINE)(e)),
        };
        map.insert(
            key,
            FileRule {
                rights: have | r,
                _reserved: 0,
            },
            0,
        )
        .map_err(KernelError::on_map(names::MAP_FILE_BASELINE))
    }

    /// Removes the baseline entry for the file at `path` from scope
    /// `scope_id`.
    pub fn remove_file(&mut self, scope_id: u32, path: &Path) -> Result<(), KernelError> {
        let (dev, ino) = file_identity(path).map_err(RuleError::from)?;
        self.file_baseline()?
            .remove(&FileKey { scope_id, dev, ino })
            .map_err(KernelError::on_map(names::MAP_FILE_BASELINE))?;
        self.bump_generation(names::MAP_RULES_GEN)
    }

    /// Adds a network destination to scope `scope_id`'s baseline.
    pub fn allow_net(&mut self, scope_id: u32, target: &NetTarget) -> Result<(), KernelError> {
        let key = net_key(target, scope_id)?;
        self.net_baseline()?
            .insert(&key, NetRule { _reserved: 0 }, 0)
            .map_err(KernelError::on_map(names::MAP_NET_BASELINE))
    }

    /// Removes a network destination from scope `scope_id`'s baseline.
    pub fn remove_net(&mut self, scope_id: u32, target: &NetTarget) -> Result<(), KernelError> {
        let key = net_key(target, scope_id)?;
        self.net_baseline()?
            .remove(&key)
            .map_err(KernelError::on_map(names::MAP_NET_BASELINE))
    }

    /// Installs every grant of `set`, or none: each is validated and
    /// resolved first, and an object already held by a live grant is a
    /// conflict. If the kernel refuses an insert midway, the grants already
    /// inserted are removed again before the error is returned.
    pub fn install_grants(&mut self, set: &[GrantSpec]) -> Result<(), KernelError> {
        let now = boot_ns_now();
        let mut resolved = Vec::with_capacity(set.len());
        for spec in set {
            resolved.push(self.resolve_grant(spec, now)?);
        }
        // Duplicates within the set are conflicts too.
        for (i, a) in resolved.iter().enumerate() {
            for b in &resolved[..i] {
                if let Some(what) = same_target(a, b) {
                    let (ga, gb) = (grant_of(a), grant_of(b));
                    return Err(RuleError::Conflict {
                        grant_id: ga.grant_id,
                        what,
                        existing: gb.grant_id,
                    }
                    .into());
                }
            }
        }
        let mut done = 0;
        let mut failure = None;
        for r in &resolved {
            let inserted = match r {
                Resolved::File(k, g) => self
                    .file_grants()?
                    .insert(k, g, 0)
                    .map_err(KernelError::on_map(names::MAP_FILE_GRANTS)),
                Resolved::Net(k, g) => self
                    .net_grants()?
                    .insert(k, g, 0)
                    .map_err(KernelError::on_map(names::MAP_NET_GRANTS)),
            };
            if let Err(e) = inserted {
                failure = Some(e);
                break;
            }
            done += 1;
        }
        let Some(e) = failure else {
            return Ok(());
        };
        for r in &resolved[..done] {
            // Best effort: the insert just succeeded, so the key exists.
            let _ = match r {
                Resolved::File(k, _) => self.file_grants()?.remove(k),
                Resolved::Net(k, _) => self.net_grants()?.remove(k),
            };
        }
        Err(e)
    }

    fn resolve_grant(&mut self, spec: &GrantSpec, now: u64) -> Result<Resolved, KernelError> {
        if spec.grant_id == 0 {
            return Err(RuleError::ZeroGrant.into());
        }
        if spec.expires_boot_ns <= now {
            return Err(RuleError::Expired {
                grant_id: spec.grant_id,
                expires_ns: spec.expires_boot_ns,
            }
            .into());
        }
        if spec.max_uses == Some(0) {
            return Err(RuleError::NoUses.into());
        }
        let grant = |r: u32| Grant {
            grant_id: spec.grant_id,
            expires_boot_ns: spec.expires_boot_ns,
            used: 0,
            max_uses: spec.max_uses.unwrap_or(0),
            rights: r,
            flags: if spec.max_uses.is_none() {
                grant_flags::UNLIMITED_USES
            } else {
                0
            },
            _reserved: 0,
        };
        let object = match &spec.object {
            GrantObject::File { path, rights: r } => {
                let (dev, ino) = file_identity(path).map_err(RuleError::from)?;
                Object::File(dev, ino, *r, path.display().to_string())
            }
            GrantObject::FileId {
                dev,
                ino,
                rights: r,
            } => Object::File(*dev, *ino, *r, format!("file dev {dev} inode {ino}")),
            GrantObject::Net(target) => Object::Net(target),
        };
        match object {
            Object::File(dev, ino, r, what) => {
                check_rights(r)?;
                if r & rights::UNIX_CONNECT != 0 {
                    return Err(RuleError::UnixGrant.into());
                }
                let key = FileKey {
                    scope_id: spec.scope_id,
                    dev,
                    ino,
                };
                match self.file_grants()?.get(&key, 0) {
                    Ok(existing) if existing.expires_boot_ns > now => {
                        return Err(RuleError::Conflict {
                            grant_id: spec.grant_id,
                            what,
                            existing: existing.grant_id,
                        }
                        .into());
                    }
                    // A dead grant on the same object is replaced.
                    Ok(_) | Err(MapError::KeyNotFound) => {}
                    Err(e) => return Err(KernelError::on_map(names::MAP_FILE_GRANTS)(e)),
                }
                Ok(Resolved::File(key, grant(r)))
            }
            Object::Net(target) => {
                let key = net_key(target, spec.scope_id)?;
                if let Some(existing) = self.net_grant_exact(&key)?
                    && existing.expires_boot_ns > now
                {
                    return Err(RuleError::Conflict {
                        grant_id: spec.grant_id,
                        what: format!("{target:?}"),
                        existing: existing.grant_id,
                    }
                    .into());
                }
                Ok(Resolved::Net(key, grant(0)))
            }
        }
    }

    /// The grant stored under exactly `key` (not a longest-prefix match).
    fn net_grant_exact(&mut self, key: &Key<NetKey>) -> Result<Option<Grant>, KernelError> {
        let map = self.net_grants()?;
        for item in map.iter() {
            let (k, g) = item.map_err(KernelError::on_map(names::MAP_NET_GRANTS))?;
            if k.prefix_len() == key.prefix_len() && k.data() == key.data() {
                return Ok(Some(g));
            }
        }
        Ok(None)
    }

    /// Removes every kernel entry of grant `grant_id`; returns how many.
    pub fn remove_grant(&mut self, grant_id: u64) -> Result<usize, KernelError> {
        let mut removed = 0;
        for g in self.grants()? {
            if g.grant.grant_id != grant_id {
                continue;
            }
            match g.target {
                GrantTarget::File { dev, ino } => self
                    .file_grants()?
                    .remove(&FileKey {
                        scope_id: g.scope_id,
                        dev,
                        ino,
                    })
                    .map_err(KernelError::on_map(names::MAP_FILE_GRANTS))?,
                GrantTarget::Net { key, prefix_len } => self
                    .net_grants()?
                    .remove(&Key::new(prefix_len, key))
                    .map_err(KernelError::on_map(names::MAP_NET_GRANTS))?,
            }
            removed += 1;
        }
        // Writes remembered under the grant are decided again.
        if removed > 0 {
            self.bump_generation(names::MAP_RULES_GEN)?;
        }
        Ok(removed)
    }

    /// Every grant entry in the kernel, live or dead.
    pub fn grants(&mut self) -> Result<Vec<InstalledGrant>, KernelError> {
        let mut out = Vec::new();
        for item in self.file_grants()?.iter() {
            let (k, grant) = item.map_err(KernelError::on_map(names::MAP_FILE_GRANTS))?;
            out.push(InstalledGrant {
                scope_id: k.scope_id,
                target: GrantTarget::File {
                    dev: k.dev,
                    ino: k.ino,
                },
                grant,
            });
        }
        for item in self.net_grants()?.iter() {
            let (k, grant) = item.map_err(KernelError::on_map(names::MAP_NET_GRANTS))?;
            out.push(InstalledGrant {
                scope_id: u32::from_be(k.data().scope_id_be),
                target: GrantTarget::Net {
                    key: k.data(),
                    prefix_len: k.prefix_len(),
                },
                grant,
            });
        }
        Ok(out)
    }
}

/// A grant's object with files resolved to (dev, inode, rights, name).
enum Object<'a> {
    File(u32, u64, u32, String),
    Net(&'a NetTarget),
}

const fn grant_of(r: &Resolved) -> &Grant {
    match r {
        Resolved::File(_, g) | Resolved::Net(_, g) => g,
    }
}

fn same_target(a: &Resolved, b: &Resolved) -> Option<String> {
    match (a, b) {
        (Resolved::File(x, _), Resolved::File(y, _)) if x == y => {
            Some(format!("file dev {} inode {}", x.dev, x.ino))
        }
        (Resolved::Net(x, _), Resolved::Net(y, _))
            if x.prefix_len() == y.prefix_len() && x.data() == y.data() =>
        {
            Some("the same destination".to_owned())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use acelogic_domain::capability::Protocol;

    use super::*;

    #[test]
    fn net_keys_mask_host_bits_and_cover_the_fixed_part() {
        let t = NetTarget {
            protocol: Protocol::Tcp,
            addr: IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3)),
            prefix: 20,
            port: 443,
        };
        let k = net_key(&t, 5).unwrap();
        assert_eq!(k.prefix_len(), NET_FIXED_PREFIX + 20);
        let d = k.data();
        assert_eq!(&d.addr[..4], &[10, 1, 0, 0]);
        assert_eq!(u32::from_be(d.scope_id_be), 5);
        assert_eq!(u16::from_be(d.port_be), 443);
        assert_eq!((d.protocol, d.family), (6, family::INET));
    }

    #[test]
    fn prefix_longer_than_the_address_is_refused() {
        let t = NetTarget {
            protocol: Protocol::Udp,
            addr: IpAddr::V4(Ipv4Addr::LOCALHOST),
            prefix: 33,
            port: 53,
        };
        assert!(matches!(
            net_key(&t, 1),
            Err(RuleError::Prefix { prefix: 33, .. })
        ));
    }

    #[test]
    fn rights_must_be_known_and_non_empty() {
        assert!(check_rights(0).is_err());
        assert!(check_rights(rights::ALL + 1).is_err());
        assert!(check_rights(rights::WRITE).is_ok());
    }
}
