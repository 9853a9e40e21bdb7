//! Every privileged test, one module per area.

mod authz;
mod burst;
mod cluster;
mod coredump;
mod deploy;
mod descriptors;
mod escape;
mod exec_gate;
mod files;
mod journal;
mod lineage;
mod metadata;
mod metrics;
mod narrowing;
mod network;
mod overlay;
mod paths;
mod pinning;
mod recorders;
mod request;
mod revocation;
mod session;
mod uring;

pub use pinning::hold;

use crate::harness::Case;

/// All cases, in run order.
#[must_use]
pub fn all() -> Vec<Case> {
    let mut cases = Vec::new();
    cases.extend_from_slice(exec_gate::CASES);
    cases.extend_from_slice(files::CASES);
    cases.extend_from_slice(descriptors::CASES);
    cases.extend_from_slice(narrowing::CASES);
    cases.extend_from_slice(uring::CASES);
    cases.extend_from_slice(overlay::CASES);
    cases.extend_from_slice(coredump::CASES);
    cases.extend_from_slice(metadata::CASES);
    cases.extend_from_slice(lineage::CASES);
    cases.extend_from_slice(recorders::CASES);
    cases.extend_from_slice(paths::CASES);
    cases.extend_from_slice(pinning::CASES);
    cases.extend_from_slice(network::CASES);
    cases.extend_from_slice(escape::CASES);
    cases.extend_from_slice(authz::CASES);
    cases.extend_from_slice(revocation::CASES);
    cases.extend_from_slice(request::CASES);
    cases.extend_from_slice(journal::CASES);
    cases.extend_from_slice(session::CASES);
    cases.extend_from_slice(deploy::CASES);
    cases.extend_from_slice(metrics::CASES);
    cases.extend_from_slice(burst::CASES);
    cases.extend_from_slice(cluster::CASES);
    cases
}
