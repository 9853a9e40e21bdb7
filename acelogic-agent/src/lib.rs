//! ACELOGIC userspace: the library behind `acelogic-agent`,
//! `acelogic-collector` and `acelogicctl`. Binaries are thin; the modules
//! here are split by responsibility.

pub mod api;
pub mod artifact;
pub mod authz;
pub mod capability;
pub mod collector;
pub mod ctl;
pub mod daemon;
pub mod kernel;
pub mod lineage;
pub mod node;
pub mod policy;
mod yaml;

/// Logs to stderr through `tracing`, filtered by `RUST_LOG` (default
/// `info`).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
