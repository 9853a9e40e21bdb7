//! Verdicts inside the BPF programs. Not a kernel-boundary type: it becomes
//! an errno at the hook and a pair of codes in the record.

use acelogic_common::codes::reason;

/// `-EPERM`, the errno a denied process sees.
pub(crate) const EPERM: i32 = -1;

#[derive(Clone, Copy)]
pub(crate) enum Verdict {
    Allow,
    Deny(Reason),
}

#[derive(Clone, Copy)]
pub(crate) enum Reason {
    NoGrant,
}

impl Reason {
    /// The `acelogic_common::codes::reason` code of this reason.
    #[inline(always)]
    pub(crate) const fn code(self) -> u16 {
        match self {
            Self::NoGrant => reason::NO_GRANT,
        }
    }
}

impl Verdict {
    /// What the LSM hook returns.
    #[inline(always)]
    pub(crate) const fn errno(self) -> i32 {
        match self {
            Self::Allow => 0,
            Self::Deny(_) => EPERM,
        }
    }
}

/// Why a program could not complete. For a governed task every error is a
/// deny; the wrapper of each hook is the one place that conversion happens.
#[derive(Clone, Copy)]
pub(crate) enum Error {
    /// The ring buffer had no room for the record.
    RecordUnavailable,
}
