//! `acelogicctl unfreeze`: lift a freeze.

use std::path::Path;

use super::freeze::freeze;
use crate::{CtlResult, connect};

/// The same arguments as `freeze`.
pub type Args = super::freeze::Args;

pub fn exec(args: &Args, socket: &Path) -> CtlResult<String> {
    connect::block(freeze(socket, &args.workload, &args.reason, false))
}
