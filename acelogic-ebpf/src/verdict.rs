//! Verdicts inside the BPF programs. Not a kernel-boundary type: it becomes
//! an errno at the hook and a pair of codes in the record.

use acelogic_common::codes::reason;

/// `-EPERM`, the errno a denied process sees.
pub(crate) const EPERM: i32 = -1;

/// A decision, with every field set on every path.
///
/// Not an enum on purpose: an enum's payload is undefined in the variants
/// without it, and LLVM then copies the undefined bytes between stack
/// slots where paths meet. Verifiers before Linux 6.3's "allow reads from
/// uninit stack" (5.10, and 6.1 until a later point release) reject that
/// read: `invalid read from stack`. A denial's `grant_id` is 0.
/// `allowed` is a `u8`, not a `bool`: a `bool`'s niche would carry the
/// discriminant of `Result<Verdict, _>` at a bit offset BTF rejects
/// (`Invalid member bits_offset`).
#[derive(Clone, Copy)]
pub(crate) struct Verdict {
    allowed: u8,
    /// One of the allow reasons, or one of the deny reasons.
    pub(crate) reason: u16,
    /// The grant that allowed it; 0 for none.
    pub(crate) grant_id: u64,
    /// `CLOCK_BOOTTIME` ns from which the allow no longer holds (the
    /// grant's expiry); `u64::MAX` for an allow that does not expire.
    pub(crate) until_boot_ns: u64,
}

impl Verdict {
    pub(crate) const BASELINE: Self = Self::allow(reason::BASELINE, 0);

    #[inline(always)]
    pub(crate) const fn allow(reason: u16, grant_id: u64) -> Self {
        Self {
            allowed: 1,
            reason,
            grant_id,
            until_boot_ns: u64::MAX,
        }
    }

    /// An allow that holds only until `until_boot_ns`.
    #[inline(always)]
    pub(crate) const fn until(self, until_boot_ns: u64) -> Self {
        Self {
            until_boot_ns,
            ..self
        }
    }

    #[inline(always)]
    pub(crate) const fn deny(reason: u16) -> Self {
        Self {
            allowed: 0,
            reason,
            grant_id: 0,
            until_boot_ns: 0,
        }
    }

    #[inline(always)]
    pub(crate) const fn allows(self) -> bool {
        self.allowed != 0
    }
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
