//! The ACELOGIC node daemon (`acelogic-agent`): checks the node, loads or
//! adopts the kernel programs, governs the policies' cgroups, decides
//! artifacts through the engine, journals and ships lineage, and serves
//! the node API, health and metrics.
//!
//! | module | owns |
//! |---|---|
//! | `daemon` | start-up, the event loop, reloads, shutdown |
//! | `node` | the node's state: kernel, engine, policy in force |
//! | `owner` | the one thread that holds the node's state; commands to it |
//! | `api` | the gRPC service on the Unix socket |
//! | `cluster` | the cluster store: claims, settlements, lost leases, its health |
//! | `lineage` | the journal and the pump from the kernel's ring |
//! | `journal_sink` | authorization and lifecycle records into the journal |
//! | `metrics` | `/metrics`, `/healthz`, `/readyz` |
//! | `privileges` | the capabilities the daemon starts with and keeps |

pub mod api;
pub mod cluster;
pub mod daemon;
mod journal_sink;
pub mod lineage;
pub mod metrics;
pub mod node;
pub mod owner;
pub mod privileges;
pub mod relay;

pub use journal_sink::{JournalSink, authorization_outcome};
