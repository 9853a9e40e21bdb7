//! What both ends of a shipping session agree on, beyond the protobuf
//! messages: the bytes a node signs to open a session and to vouch for a
//! batch, and the enrollment entry an operator adds to the collector's
//! node list. The shipper signs with these; the collector verifies
//! against the same functions.

use acelogic_domain::artifact::SecretKey;
use base64::{Engine as _, engine::general_purpose::STANDARD};
use ed25519_dalek::VerifyingKey;

use crate::{
    chain::{self, Hash, JOURNAL_ID_LEN},
    pb,
};

/// Now, ns since the Unix epoch.
#[must_use]
pub fn now_unix_nano() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// The message a node signs to open a session.
#[must_use]
pub fn hello_message(
    node: &str,
    journal_id: &[u8; JOURNAL_ID_LEN],
    time_unix_nano: u64,
    node_key: &[u8; 32],
) -> Vec<u8> {
    let mut m = Vec::with_capacity(96 + node.len());
    m.extend_from_slice(b"acelogic-hello-v1\0");
    m.extend_from_slice(node.as_bytes());
    m.push(0);
    m.extend_from_slice(journal_id);
    m.extend_from_slice(&time_unix_nano.to_be_bytes());
    m.extend_from_slice(node_key);
    m
}

/// A signed Hello for `node`'s journal `journal_id`, made now.
#[must_use]
pub fn make_hello(
    key: &SecretKey,
    node: &str,
    journal_id: &[u8; JOURNAL_ID_LEN],
    time_unix_nano: u64,
) -> acelogic_proto::collector::Hello {
    let public = key.public().to_bytes();
    let proof = key.sign_bytes(&hello_message(node, journal_id, time_unix_nano, &public));
    acelogic_proto::collector::Hello {
        node: node.to_owned(),
        journal_id: journal_id.to_vec(),
        node_key: public.to_vec(),
        time_unix_nano,
        proof: proof.to_vec(),
        acked_head: String::new(),
    }
}

/// The signature a node puts on a batch of its entries.
#[must_use]
pub fn sign_batch(
    key: &SecretKey,
    node: &str,
    journal_id: &[u8; JOURNAL_ID_LEN],
    entries: &[pb::Entry],
) -> Vec<u8> {
    let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
        return Vec::new();
    };
    let last_hash: Hash = last.hash.as_slice().try_into().unwrap_or([0; 32]);
    key.sign_bytes(&chain::batch_message(
        node, journal_id, first.seq, last.seq, &last_hash,
    ))
    .to_vec()
}

/// The entry for a node's key, to paste under `nodes:`.
#[must_use]
pub fn entry_yaml(node: &str, key: &VerifyingKey) -> String {
    format!(
        "  - name: {node}\n    publicKey: {}\n",
        STANDARD.encode(key.as_bytes())
    )
}
