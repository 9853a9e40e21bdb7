//! Numbered codes carried in records and counters.
//!
//! They cross the kernel boundary as integers. Userspace converts them with
//! `TryFrom` (under the `user` feature) so a code this build does not know
//! is reported, not guessed.

/// Which hook made a decision.
pub mod hook {
    /// `bprm_check_security`: a process is about to execute a binary.
    pub const EXEC: u16 = 1;
}

/// The outcome of a decision.
pub mod verdict {
    pub const ALLOW: u16 = 1;
    pub const DENY: u16 = 2;
}

/// Why a decision came out the way it did.
pub mod reason {
    /// Governed scope, and nothing (baseline or grant) allows the action.
    pub const NO_GRANT: u16 = 1;
}

/// Indices into the per-CPU `COUNTERS` array.
pub mod counter {
    /// Governed actions denied.
    pub const DENIED: u32 = 0;
    /// Governed actions allowed.
    pub const ALLOWED: u32 = 1;
    /// Decisions whose record could not be reserved in the ring buffer;
    /// each such action was denied (no record, no allow).
    pub const RECORD_UNAVAILABLE: u32 = 2;
    /// Lifecycle records (not decisions) lost because the ring buffer was
    /// full or a read failed.
    pub const LINEAGE_LOST: u32 = 3;
    /// Number of counters; size of the `COUNTERS` array.
    pub const COUNT: u32 = 4;
}
