//! Tests of the issuing policy.

mod checks;
mod placement;
