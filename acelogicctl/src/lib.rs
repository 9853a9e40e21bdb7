//! `acelogicctl`'s commands, as library functions the thin binary calls:
//! one module per subcommand under [`commands`], as cargo keeps its own.
//!
//! Exit codes a script can rely on:
//!
//! | code | meaning |
//! |---|---|
//! | 0 | done |
//! | 1 | refused or invalid (every reason code but `io`; see `docs/reasons.md`): the daemon or the verifier refused (the reason code is printed as `[code]`), a policy failed `policy check`, or `lineage verify` found a problem |
//! | 2 | usage error, or an input file that cannot be read or parsed |
//! | 3 | the daemon (or, for `lineage`, the collector) is unreachable |
//! | 4 | anything else (internal error) |
//! | 126 | `run` could not exec its command |

pub mod commands;
mod connect;
mod error;
mod output;

pub use error::{CtlError, CtlResult};
