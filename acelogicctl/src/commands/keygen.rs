//! `acelogicctl keygen`: a new Ed25519 key for an issuer or an approver.

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
}

pub fn exec(args: &Args) -> CtlResult<String> {
    let role = match args.role {
        RoleArg::Issuer => Role::Issuer,
        RoleArg::Approver => Role::Approver,
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
