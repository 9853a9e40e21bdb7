//! `acelogicctl keygen`: a new Ed25519 key for an issuer, an approver or
//! a node (the key a daemon signs lineage and relayed requests with).

use std::path::{Path, PathBuf};

use clap::ValueEnum;

use crate::{CtlError, CtlResult};
use acelogic_domain::artifact::{Role, SecretKey};

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long)]
    name: String,
    #[arg(long, value_enum)]
    role: RoleArg,
    /// Where to write the secret key (refuses to overwrite).
    #[arg(long, short)]
    out: PathBuf,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum RoleArg {
    Issuer,
    Approver,
    /// A node key: give it to the daemon as `<state-dir>/node.key` (or to
    /// the authority as its `lineage.key`); prints its enrollment entry
    /// for the collector's and the authority's `--nodes` files.
    Node,
}

pub fn exec(args: &Args) -> CtlResult<String> {
    let role = match args.role {
        RoleArg::Issuer => Role::Issuer,
        RoleArg::Approver => Role::Approver,
        RoleArg::Node => {
            let key = SecretKey::generate(&args.name, Role::Lineage)
                .map_err(|e| CtlError::input(format!("[{}] {e}", e.code())))?;
            key.write_new(&args.out)
                .map_err(|e| CtlError::input(format!("[{}] {e}", e.code())))?;
            eprintln!(
                "wrote {} (mode 0600); add this entry to the nodes of a NodeEnrollment file:",
                args.out.display()
            );
            return Ok(
                acelogic_lineage::wire::entry_yaml(&args.name, &key.public())
                    .trim_end()
                    .to_owned(),
            );
        }
    };
    let entry = keygen(&args.name, role, &args.out)?;
    eprintln!(
        "wrote {} (mode 0600); add this entry to the trust store's keys:",
        args.out.display()
    );
    Ok(entry.trim_end().to_owned())
}

/// Writes a new key (mode 0600, never over an existing file) and returns
/// its trust-store entry.
pub fn keygen(name: &str, role: Role, out: &Path) -> CtlResult<String> {
    let key = SecretKey::generate(name, role)
        .map_err(|e| CtlError::input(format!("[{}] {e}", e.code())))?;
    key.write_new(out)
        .map_err(|e| CtlError::input(format!("[{}] {e}", e.code())))?;
    Ok(key.trust_entry_yaml())
}
