//! ACELOGIC's privileged integration tests.
//!
//! They load the real BPF object into the running kernel, so they run as
//! root, one at a time, each in its own subprocess and its own cgroups.
//! `cargo xtask test` runs them on the host (what its kernel allows) and
//! inside the VM kernel matrix (BPF LSM). Output contract, parsed by xtask:
//! one `ACELOGIC-TEST <name> <PASS|FAIL|SKIP> <detail>` line per test and a
//! final `ACELOGIC-SUMMARY <p> passed, <f> failed, <s> skipped` line.

pub mod authority;
pub mod authz_bench;
pub mod bench;
pub mod cases;
pub mod cluster_bench;
pub mod collector_bench;
pub mod daemon;
pub mod etcd;
pub mod fixtures;
pub mod harness;
pub mod http;
pub mod journal_bench;
pub mod summary;
