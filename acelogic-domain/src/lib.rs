//! ACELOGIC's domain: what a workload may do and who may say so.
//!
//! Capabilities (the exec, write and connect vocabulary), the reason codes
//! every refusal carries, signed artifacts and the trust store, capability
//! policies, and grants in the kernel's terms. Pure: files and the clock,
//! no async runtime, database or BPF; every service crate builds on it.

pub mod artifact;
pub mod capability;
pub mod cgroupfs;
pub mod grant;
pub mod issuing;
pub mod policy;
pub mod port;
pub mod reason;
mod yaml;

pub use port::PortError;
pub use reason::{Reason, Refusal};

/// Logs to stderr through `tracing`, filtered by `RUST_LOG` (default
/// `info`). Every ACELOGIC binary calls it first; it lives here, the one
/// crate they all share.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}
