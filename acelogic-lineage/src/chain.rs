//! The hash chain that links a node's records, and the process identity
//! records carry.
//!
//! Both are part of the format: a collector and a forensics team recompute
//! them from stored bytes, so they are defined here once and pinned by
//! test vectors below.

use sha2::{Digest as _, Sha256};

/// A SHA-256 digest.
pub type Hash = [u8; 32];

/// `prev_hash` of the first entry of every journal.
pub const GENESIS: Hash = [0; 32];

/// Length of a journal id (random, made when a journal is created).
pub const JOURNAL_ID_LEN: usize = 16;

const DOMAIN: &[u8] = b"acelogic-lineage-v1\0";

/// The chain hash of the entry at `seq` holding `record` (encoded bytes):
/// `SHA-256("acelogic-lineage-v1" 0x00 node 0x00 journal_id seq_be
/// prev_hash record)`. Binding node and journal id means an entry copied
/// into another node's chain does not verify there.
#[must_use]
pub fn entry_hash(
    node: &str,
    journal_id: &[u8; JOURNAL_ID_LEN],
    seq: u64,
    prev: &Hash,
    record: &[u8],
) -> Hash {
    let mut h = Sha256::new();
    h.update(DOMAIN);
    h.update(node.as_bytes());
    h.update([0]);
    h.update(journal_id);
    h.update(seq.to_be_bytes());
    h.update(prev);
    h.update(record);
    h.finalize().into()
}

/// The stable id of a process on a node: 12 bytes of
/// `SHA-256("acelogic-exec-v1" 0x00 boot_id start_ticks_be pid_be)`, hex.
///
/// The boot id separates boots, the start time separates two processes
/// that had the same pid, so a reused pid never aliases an earlier
/// process. The start time is in clock ticks so the id can be computed
/// alike from a kernel record and from `/proc/PID/stat` (a daemon that
/// restarts, or meets a process older than itself, finds the same id).
#[must_use]
pub fn exec_id(boot_id: &[u8; 16], start_ticks: u64, pid: u32) -> String {
    let mut h = Sha256::new();
    h.update(b"acelogic-exec-v1\0");
    h.update(boot_id);
    h.update(start_ticks.to_be_bytes());
    h.update(pid.to_be_bytes());
    hex::encode(&h.finalize()[..12])
}

/// The running kernel's boot id (`/proc/sys/kernel/random/boot_id`).
pub fn boot_id() -> std::io::Result<[u8; 16]> {
    let text = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")?;
    parse_uuid(text.trim()).ok_or_else(|| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("boot_id {:?} is not a UUID", text.trim()),
        )
    })
}

fn parse_uuid(s: &str) -> Option<[u8; 16]> {
    let hex: String = s.chars().filter(|c| *c != '-').collect();
    let mut out = [0; 16];
    hex::decode_to_slice(hex, &mut out).ok()?;
    Some(out)
}

/// The message a node signs for a batch of entries: node, journal, the
/// seq range and the hash of the last entry (which commits to all before
/// it).
#[must_use]
pub fn batch_message(
    node: &str,
    journal_id: &[u8; JOURNAL_ID_LEN],
    first_seq: u64,
    last_seq: u64,
    last_hash: &Hash,
) -> Vec<u8> {
    let mut m = Vec::with_capacity(64 + node.len());
    m.extend_from_slice(b"acelogic-batch-v1\0");
    m.extend_from_slice(node.as_bytes());
    m.push(0);
    m.extend_from_slice(journal_id);
    m.extend_from_slice(&first_seq.to_be_bytes());
    m.extend_from_slice(&last_seq.to_be_bytes());
    m.extend_from_slice(last_hash);
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    // Pinned values (computed independently with Python hashlib): changing
    // the hash input is a format change.
    #[test]
    fn entry_hash_vector() {
        let h = entry_hash("node-a", &[7; 16], 1, &GENESIS, b"record");
        assert_eq!(
            hex::encode(h),
            "9fc1c7faa1314db066bc1664d91670071232834cc3c510f9b563457af732361c"
        );
    }

    #[test]
    fn entry_hash_binds_every_input() {
        let base = entry_hash("n", &[1; 16], 5, &[2; 32], b"r");
        assert_ne!(base, entry_hash("m", &[1; 16], 5, &[2; 32], b"r"));
        assert_ne!(base, entry_hash("n", &[3; 16], 5, &[2; 32], b"r"));
        assert_ne!(base, entry_hash("n", &[1; 16], 6, &[2; 32], b"r"));
        assert_ne!(base, entry_hash("n", &[1; 16], 5, &[4; 32], b"r"));
        assert_ne!(base, entry_hash("n", &[1; 16], 5, &[2; 32], b"s"));
        // The separator keeps "ab"+"c" apart from "a"+"bc" style splits.
        assert_ne!(
            entry_hash("n\0", &[1; 16], 5, &[2; 32], b"r"),
            entry_hash("n", &[0; 16], 5, &[2; 32], b"r")
        );
    }

    #[test]
    fn exec_id_vector_and_inputs() {
        let boot = parse_uuid("0f3c5a7e-1b2d-4c6e-8f90-a1b2c3d4e5f6").unwrap();
        let id = exec_id(&boot, 12345, 42);
        assert_eq!(id, "7de6accc3e6db958ef65df23");
        assert_eq!(id.len(), 24);
        assert_ne!(id, exec_id(&boot, 12346, 42));
        assert_ne!(id, exec_id(&boot, 12345, 43));
        assert_ne!(id, exec_id(&[0; 16], 12345, 42));
    }

    #[test]
    fn boot_id_reads() {
        let a = boot_id().unwrap();
        assert_ne!(a, [0; 16]);
        assert_eq!(a, boot_id().unwrap());
        assert!(parse_uuid("not-a-uuid").is_none());
    }
}
