//! The authority end to end, over loopback with TLS: the real
//! `acelogic-authority` process, a node's signed requests made with the
//! same code the daemon uses, approvers through `acelogicctl approvals`,
//! and the real collector verifying the authority's chain.

mod cases;
mod support;
