//! The authority: agents propose, humans authorize.
//!
//! A governed process asks its node daemon for capabilities; the daemon
//! attests who is asking (workload, node, the caller's exec id) and
//! relays the request here, signed with its node key. The issuing policy
//! puts each request in a tier: `auto` (issued at once), `approve` (held
//! in the queue until enough distinct approvers have signed the exact
//! payload with their own keys, wherever they are) or `never` (refused,
//! nobody is asked). A request that the workload's capability policy
//! could never grant, or that would pass the workload's rate envelope, is
//! refused before any human sees it. Every step (requested, queued,
//! approved, denied, issued, refused, expired, delivered) is a record in
//! the authority's own hash-chained journal, shipped to the collector as
//! a node's is.
//!
//! | module | what |
//! | --- | --- |
//! | `request.rs` | a relayed request checked: node signature, fields |
//! | `engine.rs` | the decisions, on the one owner of the state |
//! | `store.rs` | requests and approvals in SQLite |
//! | `signer.rs` | the issuer key behind a trait |
//! | `service.rs` | the gRPC service |
//! | `server.rs` | wiring: inputs, TLS, tick (expiry, reload), shipping |

pub mod engine;
pub mod request;
pub mod server;
pub mod service;
pub mod signer;
pub mod store;

pub use server::{Config, Running, run, start};

/// Where the authority listens by default.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:7500";
