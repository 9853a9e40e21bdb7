//! Signed checkpoints: every interval (and at shutdown) the collector
//! signs the head of each chain that moved, with its own Ed25519 key.
//!
//! A checkpoint pins what the collector held at a time: anyone with write
//! access to the database can recompute a consistent chain after editing
//! a record, or cut its tail, but cannot make the chain hash to a value
//! the collector signed earlier. `Verify` checks each checkpoint's
//! signature against the collector's key and that the stored chain still
//! hashes to the checkpointed head at that seq.
//!
//! Signed message: `"acelogic-checkpoint-v1" 0x00 node 0x00 journal_id
//! seq(u64 BE) head_hash time_unix_nano(u64 BE)`.

use std::{path::Path, time::Duration};

use acelogic_domain::artifact::{KeyFileError, Role, SecretKey};
use acelogic_lineage::chain::{Hash, JOURNAL_ID_LEN};

/// The message a checkpoint signs.
#[must_use]
pub fn message(
    node: &str,
    journal_id: &[u8; JOURNAL_ID_LEN],
    seq: u64,
    head_hash: &Hash,
    time_unix_nano: u64,
) -> Vec<u8> {
    let mut m = Vec::with_capacity(96 + node.len());
    m.extend_from_slice(b"acelogic-checkpoint-v1\0");
    m.extend_from_slice(node.as_bytes());
    m.push(0);
    m.extend_from_slice(journal_id);
    m.extend_from_slice(&seq.to_be_bytes());
    m.extend_from_slice(head_hash);
    m.extend_from_slice(&time_unix_nano.to_be_bytes());
    m
}

/// Default interval between checkpoints.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

/// Reads the collector's checkpoint key, or creates it (mode 0600) when
/// the file does not exist yet. Returns the key and whether it is new.
pub fn load_or_create_key(path: &Path) -> Result<(SecretKey, bool), KeyFileError> {
    match SecretKey::read(path) {
        Ok(k) => Ok((k, false)),
        Err(KeyFileError::Io { .. }) if !path.exists() => {
            let key = SecretKey::generate("collector", Role::Lineage)?;
            key.write_new(path)?;
            Ok((key, true))
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_binds_every_field() {
        let base = message("n", &[1; 16], 5, &[2; 32], 9);
        assert_ne!(base, message("m", &[1; 16], 5, &[2; 32], 9));
        assert_ne!(base, message("n", &[3; 16], 5, &[2; 32], 9));
        assert_ne!(base, message("n", &[1; 16], 6, &[2; 32], 9));
        assert_ne!(base, message("n", &[1; 16], 5, &[4; 32], 9));
        assert_ne!(base, message("n", &[1; 16], 5, &[2; 32], 8));
    }

    #[test]
    fn key_is_created_once_with_mode_0600() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::Builder::new()
            .prefix("acelogic-ckey-")
            .tempdir()
            .unwrap();
        let path = dir.path().join("collector.key");
        let (a, new) = load_or_create_key(&path).unwrap();
        assert!(new);
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let (b, new) = load_or_create_key(&path).unwrap();
        assert!(!new);
        assert_eq!(a.key_id(), b.key_id());
    }
}
