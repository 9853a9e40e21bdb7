//! The daemon's Linux capabilities: checked at start (naming any that are
//! missing) and, once the programs are loaded and the socket bound,
//! reduced to what running needs.
//!
//! Kept after setup, and why:
//! - `CAP_BPF`: every map operation is a `bpf()` call, and kernels before
//!   6.4 check `bpf_capable()` on every command when unprivileged BPF is
//!   disabled (Debian's default);
//! - `CAP_DAC_READ_SEARCH`: hashing a binary an artifact names, whatever
//!   its mode.
//!
//! Everything else (`CAP_SYS_ADMIN`, `CAP_PERFMON`, `CAP_NET_ADMIN`, ...)
//! is dropped from the effective, permitted, inheritable, ambient and
//! bounding sets.
//!
//! Capability sets belong to a thread. The metrics thread, started before
//! setup so its probes answer meanwhile, needs none and drops them all
//! itself ([`drop_all`]).

use caps::{CapSet, Capability, CapsHashSet};

/// Needed to load, attach and pin the LSM programs and create cgroups.
pub const NEEDED_AT_START: &[Capability] = &[
    Capability::CAP_BPF,
    Capability::CAP_PERFMON,
    Capability::CAP_SYS_ADMIN,
    Capability::CAP_DAC_READ_SEARCH,
];

/// Kept for the daemon's lifetime.
pub const KEPT: &[Capability] = &[Capability::CAP_BPF, Capability::CAP_DAC_READ_SEARCH];

/// Capability set changes failed.
#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    #[error(
        "missing capabilities: {missing}; run as root, or grant them (Kubernetes: \
         securityContext.capabilities.add; systemd: AmbientCapabilities=)"
    )]
    Missing { missing: String },
    #[error("changing the capability sets: {0}")]
    Caps(#[from] caps::errors::CapsError),
}

/// Refuses to start without every capability of [`NEEDED_AT_START`].
pub fn check_start() -> Result<(), PrivilegeError> {
    let have = caps::read(None, CapSet::Effective)?;
    let missing: Vec<String> = NEEDED_AT_START
        .iter()
        .filter(|c| !have.contains(c))
        .map(ToString::to_string)
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(PrivilegeError::Missing {
            missing: missing.join(", "),
        })
    }
}

/// What [`drop_after_setup`] left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    pub kept: Vec<String>,
}

/// Reduces every capability set to [`KEPT`].
pub fn drop_after_setup() -> Result<Dropped, PrivilegeError> {
    let keep: CapsHashSet = KEPT.iter().copied().collect();
    // The bounding set needs CAP_SETPCAP, so it goes first.
    for cap in caps::read(None, CapSet::Bounding)? {
        if !keep.contains(&cap) {
            caps::drop(None, CapSet::Bounding, cap)?;
        }
    }
    caps::clear(None, CapSet::Ambient)?;
    caps::set(None, CapSet::Inheritable, &CapsHashSet::new())?;
    caps::set(None, CapSet::Effective, &keep)?;
    caps::set(None, CapSet::Permitted, &keep)?;
    let mut kept: Vec<String> = caps::read(None, CapSet::Effective)?
        .iter()
        .map(ToString::to_string)
        .collect();
    kept.sort();
    Ok(Dropped { kept })
}

/// Empties the calling thread's effective, permitted, inheritable and
/// ambient sets: it can never use or regain a capability. (The bounding
/// set only limits what an `execve` may gain; a thread that never execs
/// need not touch it, and dropping from it would need `CAP_SETPCAP`.)
pub fn drop_all() -> Result<(), PrivilegeError> {
    caps::clear(None, CapSet::Ambient)?;
    caps::clear(None, CapSet::Inheritable)?;
    caps::clear(None, CapSet::Effective)?;
    caps::clear(None, CapSet::Permitted)?;
    Ok(())
}
