//! The BPF object, built by `build.rs` (aya-build) and embedded in every
//! binary so a node needs no separate file.

/// Bytes of the BPF ELF object.
pub static BPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/acelogic"));
