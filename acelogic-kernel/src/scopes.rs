//! Scopes: which cgroups are governed, and in which mode.
//!
//! A scope (a workload) is defined first, with its mode; then cgroups are
//! registered to it. Every cgroup below a registered one is governed too,
//! including cgroups created later. After each change to the registered
//! set the generation in `SCOPE_GEN` is bumped so the kernel's per-cgroup
//! cache forgets stale answers.

use std::path::{Path, PathBuf};

use acelogic_common::{
    names,
    scope::{CachedScope, MAX_SCOPE_LEVEL, ScopeEntry, ScopeState, flags},
};
use aya::maps::{Array, HashMap, MapData};

use super::{Kernel, KernelError, cgroup_id};
use acelogic_domain::{cgroupfs, policy::Mode};

/// A scope change that was refused; nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum ScopeError {
    #[error("scope id 0 is reserved; use 1 or above")]
    ZeroId,
    #[error("scope {0} is not defined; define it (with its mode) before using it")]
    Undefined(u32),
    #[error("{path} is the root cgroup; governing it would govern the node itself")]
    Root { path: PathBuf },
    #[error(
        "{path} is at cgroup level {level}; the kernel side walks ancestors only to level \
         {max}, so it could not be governed reliably"
    )]
    TooDeep {
        path: PathBuf,
        level: usize,
        max: u32,
    },
    #[error("{path} is not below the cgroup v2 mount {mount}")]
    OutsideHierarchy { path: PathBuf, mount: PathBuf },
    #[error("cgroup {path} is already registered to scope {current}")]
    Taken { path: PathBuf, current: u32 },
    #[error("cgroup v2 is not mounted")]
    NoCgroup2,
}

impl Kernel {
    fn scope_state_map(&mut self) -> Result<HashMap<&mut MapData, u32, ScopeState>, KernelError> {
        HashMap::try_from(self.map_mut(names::MAP_SCOPE_STATE)?)
            .map_err(KernelError::on_map(names::MAP_SCOPE_STATE))
    }

    fn scopes_map(&mut self) -> Result<HashMap<&mut MapData, u64, ScopeEntry>, KernelError> {
        HashMap::try_from(self.map_mut(names::MAP_SCOPES)?)
            .map_err(KernelError::on_map(names::MAP_SCOPES))
    }

    /// The state of scope `scope_id`, `None` when it is not defined.
    pub fn scope_state(&mut self, scope_id: u32) -> Result<Option<ScopeState>, KernelError> {
        match self.scope_state_map()?.get(&scope_id, 0) {
            Ok(s) => Ok(Some(s)),
            Err(aya::maps::MapError::KeyNotFound) => Ok(None),
            Err(e) => Err(KernelError::on_map(names::MAP_SCOPE_STATE)(e)),
        }
    }

    fn set_scope_state(&mut self, scope_id: u32, state: ScopeState) -> Result<(), KernelError> {
        self.scope_state_map()?
            .insert(scope_id, state, 0)
            .map_err(KernelError::on_map(names::MAP_SCOPE_STATE))
    }

    /// Defines scope `scope_id` (or changes its mode), keeping its frozen
    /// flag.
    pub fn define_scope(&mut self, scope_id: u32, mode: Mode) -> Result<(), KernelError> {
        if scope_id == 0 {
            return Err(ScopeError::ZeroId.into());
        }
        let frozen = self
            .scope_state(scope_id)?
            .map_or(0, |s| s.flags & flags::FROZEN);
        let enforcing = match mode {
            Mode::Enforce => flags::ENFORCING,
            Mode::Audit => 0,
        };
        self.set_scope_state(scope_id, ScopeState::new(frozen | enforcing))?;
        tracing::info!(scope_id, ?mode, "scope defined");
        Ok(())
    }

    /// Freezes (kill switch: everything denied, baseline included) or
    /// unfreezes scope `scope_id`. Takes effect on the next hook call.
    pub fn set_frozen(&mut self, scope_id: u32, frozen: bool) -> Result<(), KernelError> {
        let state = self
            .scope_state(scope_id)?
            .ok_or(ScopeError::Undefined(scope_id))?;
        let flags = if frozen {
            state.flags | flags::FROZEN
        } else {
            state.flags & !flags::FROZEN
        };
        self.set_scope_state(scope_id, ScopeState::new(flags))?;
        tracing::info!(scope_id, frozen, "scope frozen flag set");
        Ok(())
    }

    /// Governs the cgroup at `path` (and every cgroup below it, present or
    /// future) as part of scope `scope_id`. Returns its cgroup id.
    pub fn govern(&mut self, path: &Path, scope_id: u32) -> Result<u64, KernelError> {
        if self.scope_state(scope_id)?.is_none() {
            return Err(ScopeError::Undefined(scope_id).into());
        }
        let id = cgroup_id(path)?;
        check_level(path, self.cgroup_root.as_deref())?;
        let mut scopes = self.scopes_map()?;
        match scopes.get(&id, 0) {
            Ok(e) if e.scope_id == scope_id => return Ok(id),
            Ok(e) => {
                return Err(ScopeError::Taken {
                    path: path.to_path_buf(),
                    current: e.scope_id,
                }
                .into());
            }
            Err(aya::maps::MapError::KeyNotFound) => {}
            Err(e) => return Err(KernelError::on_map(names::MAP_SCOPES)(e)),
        }
        scopes
            .insert(id, ScopeEntry::new(scope_id), 0)
            .map_err(KernelError::on_map(names::MAP_SCOPES))?;
        self.bump_generation(names::MAP_SCOPE_GEN)?;
        tracing::info!(cgroup = %path.display(), cgroup_id = id, scope_id, "governed");
        Ok(id)
    }

    /// Stops governing cgroup `id` (cgroups below it stay governed only if
    /// they are registered themselves or have another registered ancestor).
    pub fn release(&mut self, id: u64) -> Result<(), KernelError> {
        self.scopes_map()?
            .remove(&id)
            .map_err(KernelError::on_map(names::MAP_SCOPES))?;
        self.bump_generation(names::MAP_SCOPE_GEN)
    }

    /// Every registered cgroup id with its scope.
    pub fn governed(&mut self) -> Result<Vec<(u64, u32)>, KernelError> {
        let scopes = self.scopes_map()?;
        scopes
            .iter()
            .map(|r| {
                r.map(|(id, e)| (id, e.scope_id))
                    .map_err(KernelError::on_map(names::MAP_SCOPES))
            })
            .collect()
    }

    /// Invalidates every cached ancestor walk in the kernel.
    /// Adds one to the generation in slot 0 of `map` (`SCOPE_GEN`,
    /// `RULES_GEN`), which tells the programs that what they cached or
    /// remembered from before may no longer hold.
    pub(crate) fn bump_generation(&mut self, map: &'static str) -> Result<(), KernelError> {
        let err = KernelError::on_map(map);
        let mut generation: Array<&mut MapData, u64> =
            Array::try_from(self.map_mut(map)?).map_err(&err)?;
        let now = generation.get(&0, 0).map_err(&err)?;
        generation.set(0, now.wrapping_add(1), 0).map_err(&err)
    }

    /// The kernel's cached answer for cgroup `id` (tests and diagnostics).
    pub fn cached_scope(&mut self, id: u64) -> Result<Option<CachedScope>, KernelError> {
        let map: HashMap<&mut MapData, u64, CachedScope> =
            HashMap::try_from(self.map_mut(names::MAP_SCOPE_CACHE)?)
                .map_err(KernelError::on_map(names::MAP_SCOPE_CACHE))?;
        match map.get(&id, 0) {
            Ok(c) => Ok(Some(c)),
            Err(aya::maps::MapError::KeyNotFound) => Ok(None),
            Err(e) => Err(KernelError::on_map(names::MAP_SCOPE_CACHE)(e)),
        }
    }
}

/// Refuses the root cgroup and cgroups deeper than the kernel walk, the
/// level counted from `root` (the daemon's `--cgroup-root`) or else from
/// the first cgroup2 mount.
fn check_level(path: &Path, root: Option<&Path>) -> Result<(), ScopeError> {
    let mount = match root {
        Some(root) => root.to_path_buf(),
        None => cgroupfs::cgroup2_mount().ok_or(ScopeError::NoCgroup2)?,
    };
    let canon = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    let (full, root) = (canon(path), canon(&mount));
    let rel = full
        .strip_prefix(&root)
        .map_err(|_| ScopeError::OutsideHierarchy {
            path: path.to_path_buf(),
            mount: mount.clone(),
        })?;
    let level = rel.components().count();
    if level == 0 {
        return Err(ScopeError::Root {
            path: path.to_path_buf(),
        });
    }
    if level > MAX_SCOPE_LEVEL as usize {
        return Err(ScopeError::TooDeep {
            path: path.to_path_buf(),
            level,
            max: MAX_SCOPE_LEVEL,
        });
    }
    Ok(())
}
