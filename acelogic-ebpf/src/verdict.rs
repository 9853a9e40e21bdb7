//! Verdicts inside the BPF programs. Not a kernel-boundary type: it becomes
//! an errno at the hook and a pair of codes in the record.

use acelogic_common::codes::reason;

/// `-EPERM`, the errno a denied process sees.
pub(crate) const EPERM: i32 = -1;

#[derive(Clone, Copy)]
pub(crate) enum Verdict {
    /// Allowed, with one of the allow reasons and the grant that allowed it
    /// (0 for none).
    Allow { reason: u16, grant_id: u64 },
    /// Denied, with one of the deny reasons.
    Deny(u16),
}

impl Verdict {
    pub(crate) const BASELINE: Self = Self::Allow {
        reason: reason::BASELINE,
        grant_id: 0,
    };
}

/// Why a decision could not be completed. For a governed task every error
/// is a deny, with the error's reason code.
#[derive(Clone, Copy)]
pub(crate) enum Error {
    /// A kernel object could not be read.
    Read,
    /// The ancestor walk ran out before the filesystem root.
    TooDeep,
    /// The scope denies everything (frozen, or its state is missing).
    Blocked(u16),
}

impl Error {
    #[inline(always)]
    pub(crate) const fn reason(self) -> u16 {
        match self {
            Self::Read => reason::READ_FAILED,
            Self::TooDeep => reason::PATH_TOO_DEEP,
            Self::Blocked(why) => why,
        }
    }
}
