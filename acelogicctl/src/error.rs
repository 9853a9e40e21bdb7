//! A command's failure and the exit code a script sees (the table is in
//! the crate's documentation); every subcommand fails through these.

use std::fmt;

use acelogic_domain::Reason;

/// A command's failure, with its exit code.
#[derive(Debug)]
pub struct CtlError {
    pub exit: u8,
    pub message: String,
}

impl CtlError {
    pub const REFUSED: u8 = 1;
    pub const INPUT: u8 = 2;
    pub const UNREACHABLE: u8 = 3;
    pub const INTERNAL: u8 = 4;
    /// `run` could not exec its command (a shell's "found but not runnable").
    pub const EXEC: u8 = 126;

    /// A refusal with its reason; the exit code is the reason's
    /// ([`Reason::exit_code`]).
    pub fn refused(code: Reason, why: impl fmt::Display) -> Self {
        Self {
            exit: code.exit_code(),
            message: format!("refused [{code}]: {why}"),
        }
    }

    /// A refusal a daemon or collector sent: its code as text (a newer
    /// peer may send one this build does not know: exit 1).
    pub fn refused_remote(code: &str, why: &str) -> Self {
        Self {
            exit: code
                .parse::<Reason>()
                .map_or(Self::REFUSED, Reason::exit_code),
            message: format!("refused [{code}]: {why}"),
        }
    }

    pub fn input(why: impl fmt::Display) -> Self {
        Self {
            exit: Self::INPUT,
            message: why.to_string(),
        }
    }

    pub fn internal(why: impl fmt::Display) -> Self {
        Self {
            exit: Self::INTERNAL,
            message: why.to_string(),
        }
    }
}

impl fmt::Display for CtlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Who answered a call.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Peer {
    Daemon,
    Collector,
    Authority,
}

/// Maps a gRPC error from the daemon or the collector: refusals carry
/// their reason code.
pub(crate) fn from_status(s: &tonic::Status, peer: Peer) -> CtlError {
    match acelogic_proto::reason_of(s) {
        Some(code) => CtlError::refused_remote(
            &code,
            s.message()
                .strip_prefix(&format!("{code}: "))
                .unwrap_or(s.message()),
        ),
        None if s.code() == tonic::Code::Unavailable => CtlError {
            exit: CtlError::UNREACHABLE,
            message: format!(
                "the {} is unavailable: {}",
                match peer {
                    Peer::Daemon => "daemon",
                    Peer::Collector => "collector",
                    Peer::Authority => "authority",
                },
                s.message()
            ),
        },
        None => CtlError::internal(format!("{:?}: {}", s.code(), s.message())),
    }
}

/// A command's result.
pub type CtlResult<T = ()> = Result<T, CtlError>;
