//! Userspace side of the shared types: `aya::Pod`, typed codes, decoding.

use core::{fmt, mem::size_of};

use crate::{
    codes::{hook, reason, verdict},
    event::{self, Decision, EventHeader, ExecDecision, ProcessExec},
    scope::ScopeEntry,
};

// SAFETY: `ScopeEntry` is `repr(C)`, `Copy`, made of integers only, with
// explicit padding, so every bit pattern is a valid value.
unsafe impl aya::Pod for ScopeEntry {}

/// A numeric code from the kernel that this build does not know.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} code {code}")]
pub struct UnknownCode {
    pub what: &'static str,
    pub code: u16,
}

macro_rules! code_enum {
    ($(#[$m:meta])* $name:ident, $what:literal, { $($variant:ident = $value:path => $text:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }

        impl TryFrom<u16> for $name {
            type Error = UnknownCode;
            fn try_from(code: u16) -> Result<Self, UnknownCode> {
                match code {
                    $($value => Ok(Self::$variant),)+
                    _ => Err(UnknownCode { what: $what, code }),
                }
            }
        }

        impl $name {
            /// The stable, lowercase name used in logs, JSON and queries.
            #[must_use]
            pub const fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $text),+ }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

code_enum!(
    /// The hook that made a decision.
    Hook, "hook", { Exec = hook::EXEC => "exec" }
);
code_enum!(
    /// Outcome of a decision.
    Verdict, "verdict", { Allow = verdict::ALLOW => "allow", Deny = verdict::DENY => "deny" }
);
code_enum!(
    /// Why a decision came out as it did.
    Reason, "reason", { NoGrant = reason::NO_GRANT => "no-grant" }
);

/// A record read from the ring buffer could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("record of {len} bytes is shorter than its header ({header} bytes)")]
    ShortHeader { len: usize, header: usize },
    #[error("unknown record kind {0:#06x}")]
    UnknownKind(u16),
    #[error("record kind {kind:#06x} needs {need} bytes, got {got}")]
    Size { kind: u16, need: usize, got: usize },
    #[error(transparent)]
    Code(#[from] UnknownCode),
}

/// A decoded record. The match in [`Event::decode`] is exhaustive over
/// kinds, so adding a kind does not compile until it is handled here.
#[derive(Debug, Clone, PartialEq, Eq)]
#[expect(
    clippy::large_enum_variant,
    reason = "records are decoded one at a time and moved on; boxing would allocate per record"
)]
pub enum Event {
    Exec(ExecDecisionEvent),
    ProcessExec(ProcessExecEvent),
}

/// A checked exec decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecDecisionEvent {
    pub header: EventHeader,
    pub scope_id: u32,
    pub hook: Hook,
    pub verdict: Verdict,
    pub reason: Reason,
    pub grant_id: u64,
    pub comm: [u8; event::COMM_LEN],
}

/// A checked process-exec lifecycle record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessExecEvent {
    pub header: EventHeader,
    pub comm: [u8; event::COMM_LEN],
    filename: [u8; event::FILENAME_LEN],
    filename_len: usize,
}

impl ProcessExecEvent {
    /// The file name passed to exec (possibly truncated), as raw bytes.
    #[must_use]
    pub fn filename(&self) -> &[u8] {
        &self.filename[..self.filename_len]
    }
}

/// The part of a NUL-padded kernel string before the first NUL.
#[must_use]
pub fn c_str_bytes(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    &bytes[..end]
}

/// Reads a `T` from the start of `bytes`.
///
/// Only instantiated with the `repr(C)` integer-and-array record types of
/// [`crate::event`], for which every bit pattern is valid.
fn read<T: Copy>(kind: u16, bytes: &[u8]) -> Result<T, DecodeError> {
    let need = size_of::<T>();
    if bytes.len() < need {
        return Err(DecodeError::Size {
            kind,
            need,
            got: bytes.len(),
        });
    }
    // SAFETY: the length was checked above; `read_unaligned` has no alignment
    // requirement; callers only use plain-integer `repr(C)` types.
    Ok(unsafe { bytes.as_ptr().cast::<T>().read_unaligned() })
}

impl Event {
    /// Decodes one ring-buffer record.
    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() < size_of::<EventHeader>() {
            return Err(DecodeError::ShortHeader {
                len: bytes.len(),
                header: size_of::<EventHeader>(),
            });
        }
        let header: EventHeader = read(0, bytes)?;
        match header.kind {
            event::kind::EXEC_DECISION => {
                let r: ExecDecision = read(header.kind, bytes)?;
                let Decision {
                    scope_id,
                    hook,
                    verdict,
                    reason,
                    grant_id,
                    ..
                } = r.decision;
                Ok(Self::Exec(ExecDecisionEvent {
                    header,
                    scope_id,
                    hook: Hook::try_from(hook)?,
                    verdict: Verdict::try_from(verdict)?,
                    reason: Reason::try_from(reason)?,
                    grant_id,
                    comm: r.comm,
                }))
            }
            event::kind::PROCESS_EXEC => {
                let r: ProcessExec = read(header.kind, bytes)?;
                let filename_len = usize::try_from(r.filename_len)
                    .unwrap_or(usize::MAX)
                    .min(event::FILENAME_LEN);
                let filename_len = c_str_bytes(&r.filename[..filename_len]).len();
                Ok(Self::ProcessExec(ProcessExecEvent {
                    header,
                    comm: r.comm,
                    filename: r.filename,
                    filename_len,
                }))
            }
            other => Err(DecodeError::UnknownKind(other)),
        }
    }

    #[must_use]
    pub const fn header(&self) -> &EventHeader {
        match self {
            Self::Exec(e) => &e.header,
            Self::ProcessExec(e) => &e.header,
        }
    }
}
