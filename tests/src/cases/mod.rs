//! Every privileged test, one module per area.

mod exec_gate;
mod lineage;
mod pinning;

use crate::harness::Case;

/// All cases, in run order.
#[must_use]
pub fn all() -> Vec<Case> {
    let mut cases = Vec::new();
    cases.extend_from_slice(exec_gate::CASES);
    cases.extend_from_slice(lineage::CASES);
    cases.extend_from_slice(pinning::CASES);
    cases
}
