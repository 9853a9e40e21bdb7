//! `acelogicctl`'s commands, as library functions the thin binary calls.
//!
//! Exit codes a script can rely on:
//!
//! | code | meaning |
//! |---|---|
//! | 0 | done |
//! | 1 | refused or invalid: the daemon or the verifier refused (the reason code is printed as `[code]`), a policy failed `policy check`, or `lineage verify` found a problem |
//! | 2 | usage error, or an input file that cannot be read or parsed |
//! | 3 | the daemon (or, for `lineage`, the collector) is unreachable |
//! | 4 | anything else (internal error) |

pub mod lineage;
pub mod offline;
pub mod remote;
pub mod run;

use std::fmt;

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

    pub fn refused(code: &str, why: impl fmt::Display) -> Self {
        Self {
            exit: Self::REFUSED,
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

/// A command's result.
pub type CtlResult<T = ()> = Result<T, CtlError>;
