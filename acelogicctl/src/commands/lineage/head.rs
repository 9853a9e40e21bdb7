//! `acelogicctl lineage head`: on the node, the newest head the collector
//! acknowledged, signed by the node key (asks no collector).

use std::path::{Path, PathBuf};

use crate::{CtlError, CtlResult};
use acelogic_lineage::{note, ship};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// The daemon's state directory.
    #[arg(long, value_name = "DIR", default_value = "/var/lib/acelogic")]
    state_dir: PathBuf,
}

pub fn exec(args: &Args) -> CtlResult<String> {
    head(&args.state_dir)
}

/// The node's signed acknowledged head, as its shipper keeps it.
pub fn head(state_dir: &Path) -> CtlResult<String> {
    let path = state_dir.join(ship::ACKED_HEAD_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        CtlError::input(format!(
            "{}: {e} (the daemon writes it once the collector acknowledged a batch)",
            path.display()
        ))
    })?;
    note::peek(&text).map_err(|e| CtlError::input(format!("{}: {e}", path.display())))?;
    Ok(text)
}
