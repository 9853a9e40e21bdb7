//! Library target so `acelogic-agent` can name this crate as a build
//! dependency (cargo rebuilds the agent when the programs change).
#![no_std]
