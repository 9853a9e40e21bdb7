//! What the collector checks before it touches the store: the Hello proof
//! and, per batch, its size, its signature, each entry's decoding and
//! node, and the chain inside the batch (consecutive seqs, linked
//! `prev_hash`, `hash == entry_hash(...)`). The checks against what is
//! already stored (resume point, duplicates, gaps) are the writer's
//! (`store.rs`).
//!
//! ## The Hello proof
//!
//! The node signs `"acelogic-hello-v1" 0x00 node 0x00 journal_id
//! time_be node_key` with its key, and the collector accepts the Hello
//! only within a clock-skew window of its own time. The proof shows the
//! peer holds the key it presents, so trust on first use never enrolls a
//! key nobody can sign with, and an old captured Hello is useless once
//! the window passed. A Hello replayed inside the window gets the peer a
//! Welcome (the resume point) and nothing more: every batch carries its
//! own signature by the node key over the batch's seq range and last
//! hash, and no chain, gap or alarm is written before a signed batch
//! verifies. A fresh collector nonce would close the window entirely, at
//! the cost of a round trip before every session; it buys nothing for the
//! data, which the batch signatures already authenticate.

use acelogic_domain::Reason;
use std::time::Duration;

use ed25519_dalek::{Signature, VerifyingKey};
use prost::Message as _;

use super::{pb, refusal, store::Columns};
use acelogic_domain::Refusal;
use acelogic_lineage::wire::hello_message;
use acelogic_lineage::{
    chain::{self, Hash, JOURNAL_ID_LEN},
    pb as lpb,
};

/// What one batch may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Entries per batch.
    pub max_entries: usize,
    /// Bytes per batch: records plus 80 bytes of seq and hashes per entry.
    pub max_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_entries: 4096,
            max_bytes: 4 << 20,
        }
    }
}

impl Limits {
    /// The largest gRPC message the collector decodes: a full batch and
    /// its framing. Anything larger is refused before it is decoded.
    #[must_use]
    pub fn max_message_bytes(&self) -> usize {
        self.max_bytes
            .saturating_add(self.max_entries.saturating_mul(16))
            .saturating_add(64 << 10)
    }
}

/// Per-entry accounting overhead (seq and the two hashes).
pub const ENTRY_OVERHEAD: usize = 80;

/// Longest node name accepted (a DNS name).
pub use acelogic_lineage::enrollment::MAX_NODE_NAME;

/// A verified Hello: who is shipping which chain with which key.
#[derive(Debug, Clone)]
pub struct Hello {
    pub node: String,
    pub journal_id: [u8; JOURNAL_ID_LEN],
    pub key: VerifyingKey,
}

fn valid_node_name(node: &str) -> bool {
    !node.is_empty() && node.len() <= MAX_NODE_NAME && !node.chars().any(char::is_control)
}

/// The head a Hello says this collector acknowledged: a note signed by
/// the Hello's key for its node and journal, or none.
pub fn check_acked_head(
    text: &str,
    hello: &Hello,
) -> Result<Option<acelogic_lineage::note::Head>, Refusal> {
    if text.is_empty() {
        return Ok(None);
    }
    let head = acelogic_lineage::note::open(text, &hello.key)
        .map_err(|e| refusal(Reason::BadRequest, format!("acked_head: {e}")))?;
    if head.node != hello.node || head.journal_id != hello.journal_id || head.log.is_some() {
        return Err(refusal(
            Reason::BadRequest,
            "acked_head is not a node head of the Hello's node and journal",
        ));
    }
    Ok(Some(head))
}

/// Checks a Hello: well-formed, fresh (within `skew` of `now`), and signed
/// by the key it presents.
pub fn check_hello(h: &pb::Hello, now_unix_nano: u64, skew: Duration) -> Result<Hello, Refusal> {
    if !valid_node_name(&h.node) {
        return Err(refusal(
            Reason::BadRequest,
            format!(
                "node name must be 1-{MAX_NODE_NAME} bytes without control characters, got {} bytes",
                h.node.len()
            ),
        ));
    }
    let journal_id: [u8; JOURNAL_ID_LEN] = h.journal_id.as_slice().try_into().map_err(|_| {
        refusal(
            Reason::BadRequest,
            format!(
                "journal_id is {} bytes, not {JOURNAL_ID_LEN}",
                h.journal_id.len()
            ),
        )
    })?;
    let key_bytes: [u8; 32] = h.node_key.as_slice().try_into().map_err(|_| {
        refusal(
            Reason::BadRequest,
            format!("node_key is {} bytes, not 32", h.node_key.len()),
        )
    })?;
    let key = VerifyingKey::from_bytes(&key_bytes)
        .ok()
        .filter(|k| !k.is_weak())
        .ok_or_else(|| {
            refusal(
                Reason::BadRequest,
                "node_key is not a usable Ed25519 public key",
            )
        })?;
    let skew_ns = u64::try_from(skew.as_nanos()).unwrap_or(u64::MAX);
    if h.time_unix_nano.abs_diff(now_unix_nano) > skew_ns {
        return Err(refusal(
            Reason::StaleHello,
            format!(
                "the Hello was made {:.0}s from the collector's time, more than the {}s allowed; \
                 check both clocks (NTP)",
                (h.time_unix_nano as f64 - now_unix_nano as f64) / 1e9,
                skew.as_secs()
            ),
        ));
    }
    let proof = Signature::from_slice(&h.proof)
        .map_err(|_| refusal(Reason::BadProof, "proof is not a 64-byte Ed25519 signature"))?;
    key.verify_strict(
        &hello_message(&h.node, &journal_id, h.time_unix_nano, &key_bytes),
        &proof,
    )
    .map_err(|_| {
        refusal(
            Reason::BadProof,
            "the Hello proof does not verify with the presented node key",
        )
    })?;
    Ok(Hello {
        node: h.node.clone(),
        journal_id,
        key,
    })
}

/// An entry that passed every check that needs no store, with what the
/// store derives from it ([`CheckedBatch::columns`]).
#[derive(Debug, Clone)]
pub struct CheckedEntry {
    pub seq: u64,
    pub prev_hash: Hash,
    pub hash: Hash,
    pub record: Vec<u8>,
    columns: Columns<Span>,
}

/// Where a column's string lies in [`CheckedBatch`]'s text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    start: usize,
    end: usize,
}

/// A batch that passed every check that needs no store.
#[derive(Debug, Clone)]
pub struct CheckedBatch {
    pub node: String,
    pub journal_id: [u8; JOURNAL_ID_LEN],
    pub entries: Vec<CheckedEntry>,
    /// Encoded size as counted against [`Limits::max_bytes`].
    pub bytes: usize,
    /// The strings of every entry's columns, one after the other: one
    /// allocation per batch rather than one per string, made off the
    /// writer thread and freed there.
    text: String,
}

impl CheckedBatch {
    /// The columns derived from entry `e` of this batch.
    #[must_use]
    pub fn columns<'s>(&'s self, e: &'s CheckedEntry) -> Columns<&'s str> {
        e.columns
            .map(|s| self.text.get(s.start..s.end).unwrap_or_default())
    }

    #[must_use]
    pub fn first_seq(&self) -> u64 {
        self.entries.first().map_or(0, |e| e.seq)
    }

    #[must_use]
    pub fn last_seq(&self) -> u64 {
        self.entries.last().map_or(0, |e| e.seq)
    }
}

fn hash32(bytes: &[u8], what: &str, seq: u64) -> Result<Hash, Refusal> {
    bytes.try_into().map_err(|_| {
        refusal(
            Reason::BadRequest,
            format!("seq {seq}: {what} is {} bytes, not 32", bytes.len()),
        )
    })
}

/// Checks a batch from `hello`'s node: size, signature, then each entry
/// (decodes as a Record of this node, seqs consecutive, prev_hash linked
/// inside the batch, hash recomputed). All or nothing.
pub fn check_batch(
    hello: &Hello,
    batch: pb::Batch,
    limits: Limits,
) -> Result<CheckedBatch, Refusal> {
    let n = batch.entries.len();
    if n == 0 {
        return Err(refusal(
            Reason::BadRequest,
            "a batch holds at least one entry",
        ));
    }
    if n > limits.max_entries {
        return Err(refusal(
            Reason::Oversized,
            format!(
                "{n} entries in one batch, over the limit of {}",
                limits.max_entries
            ),
        ));
    }
    let bytes: usize = batch
        .entries
        .iter()
        .map(|e| e.record.len() + ENTRY_OVERHEAD)
        .sum();
    if bytes > limits.max_bytes {
        return Err(refusal(
            Reason::Oversized,
            format!(
                "{bytes} bytes in one batch, over the limit of {}",
                limits.max_bytes
            ),
        ));
    }
    let (first, last) = (&batch.entries[0], &batch.entries[n - 1]);
    let last_hash = hash32(&last.hash, "hash", last.seq)?;
    let signature = Signature::from_slice(&batch.signature).map_err(|_| {
        refusal(
            Reason::BadSignature,
            "the batch signature is not a 64-byte Ed25519 signature",
        )
    })?;
    hello
        .key
        .verify_strict(
            &chain::batch_message(
                &hello.node,
                &hello.journal_id,
                first.seq,
                last.seq,
                &last_hash,
            ),
            &signature,
        )
        .map_err(|_| {
            refusal(
                Reason::BadSignature,
                format!(
                    "the signature over seq {}..={} does not verify with node {:?}'s key",
                    first.seq, last.seq, hello.node
                ),
            )
        })?;
    let mut entries = Vec::with_capacity(n);
    // Columns take about half a record's bytes.
    let mut text = String::with_capacity(bytes / 2);
    let mut before: Option<(u64, Hash)> = None;
    for e in batch.entries {
        let prev_hash = hash32(&e.prev_hash, "prev_hash", e.seq)?;
        let hash = hash32(&e.hash, "hash", e.seq)?;
        if e.seq == 0 {
            return Err(refusal(
                Reason::BrokenChain,
                "seq 0 does not exist; seqs start at 1",
            ));
        }
        if let Some((seq, h)) = before {
            if e.seq != seq.wrapping_add(1) {
                return Err(refusal(
                    Reason::BrokenChain,
                    format!("seq {} follows seq {seq} in the batch", e.seq),
                ));
            }
            if prev_hash != h {
                return Err(refusal(
                    Reason::BrokenChain,
                    format!("seq {}: prev_hash is not the hash of seq {seq}", e.seq),
                ));
            }
        }
        let again = chain::entry_hash(&hello.node, &hello.journal_id, e.seq, &prev_hash, &e.record);
        if again != hash {
            return Err(refusal(
                Reason::Altered,
                format!(
                    "seq {}: the record does not hash to the entry's hash (altered after it was chained)",
                    e.seq
                ),
            ));
        }
        let record = lpb::Record::decode(e.record.as_slice()).map_err(|err| {
            refusal(
                Reason::Undecodable,
                format!("seq {}: the record is not a lineage Record: {err}", e.seq),
            )
        })?;
        if record.node != hello.node {
            return Err(refusal(
                Reason::WrongNode,
                format!(
                    "seq {}: the record is from node {:?}, the session is node {:?}'s",
                    e.seq,
                    record.node.chars().take(64).collect::<String>(),
                    hello.node
                ),
            ));
        }
        before = Some((e.seq, hash));
        let columns = Columns::of(&record).map(|s| {
            let start = text.len();
            text.push_str(s);
            Span {
                start,
                end: text.len(),
            }
        });
        entries.push(CheckedEntry {
            seq: e.seq,
            prev_hash,
            hash,
            columns,
            record: e.record,
        });
    }
    Ok(CheckedBatch {
        node: hello.node.clone(),
        journal_id: hello.journal_id,
        entries,
        bytes,
        text,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use acelogic_domain::artifact::Role;
    use acelogic_domain::artifact::SecretKey;
    use acelogic_lineage::{
        chain::GENESIS,
        wire::{make_hello, sign_batch},
    };

    fn key(seed: u8) -> SecretKey {
        SecretKey::from_seed("node-a", Role::Lineage, [seed; 32]).unwrap()
    }

    #[test]
    fn an_acked_head_must_be_the_hellos_own() {
        use acelogic_lineage::note::{Head, LogLink};
        let k = key(1);
        let hello = Hello {
            node: "node-a".into(),
            journal_id: [3; 16],
            key: k.public(),
        };
        let head = Head {
            node: "node-a".into(),
            journal_id: [3; 16],
            seq: 9,
            hash: [4; 32],
            time_unix_nano: 1,
            log: None,
        };
        assert_eq!(check_acked_head("", &hello).unwrap(), None);
        assert_eq!(
            check_acked_head(&head.sign(&k), &hello).unwrap(),
            Some(head.clone())
        );
        let refused = |text: String| check_acked_head(&text, &hello).unwrap_err().code;
        assert_eq!(
            refused(head.sign(&key(2))),
            Reason::BadRequest,
            "another key"
        );
        assert_eq!(refused("junk".into()), Reason::BadRequest);
        let other = Head {
            journal_id: [5; 16],
            ..head.clone()
        };
        assert_eq!(
            refused(other.sign(&k)),
            Reason::BadRequest,
            "another journal"
        );
        let checkpoint = Head {
            log: Some(LogLink {
                index: 1,
                prev: [0; 32],
            }),
            ..head
        };
        assert_eq!(
            refused(checkpoint.sign(&k)),
            Reason::BadRequest,
            "not a node head"
        );
    }

    fn entries(node: &str, jid: &[u8; 16], n: u64) -> Vec<lpb::Entry> {
        let mut prev = GENESIS;
        (1..=n)
            .map(|seq| {
                let record = lpb::Record {
                    node: node.into(),
                    time_unix_nano: seq,
                    ..Default::default()
                }
                .encode_to_vec();
                let hash = chain::entry_hash(node, jid, seq, &prev, &record);
                let e = lpb::Entry {
                    seq,
                    prev_hash: prev.to_vec(),
                    hash: hash.to_vec(),
                    record,
                };
                prev = hash;
                e
            })
            .collect()
    }

    #[test]
    fn hello_proof_must_be_fresh_and_signed() {
        let k = key(1);
        let skew = Duration::from_secs(300);
        let now = 1_700_000_000_000_000_000;
        let h = make_hello(&k, "node-a", &[3; 16], now);
        let ok = check_hello(&h, now + 1_000_000_000, skew).unwrap();
        assert_eq!((ok.node.as_str(), ok.key), ("node-a", k.public()));
        let e = check_hello(&h, now + 301_000_000_000, skew).unwrap_err();
        assert_eq!(e.code, "stale-hello", "{e}");
        let mut other = h.clone();
        other.node = "node-b".into();
        assert_eq!(
            check_hello(&other, now, skew).unwrap_err().code,
            "bad-proof"
        );
        let mut swapped = h.clone();
        swapped.node_key = key(2).public().to_bytes().to_vec();
        assert_eq!(
            check_hello(&swapped, now, skew).unwrap_err().code,
            "bad-proof"
        );
        let mut short = h;
        short.journal_id.pop();
        assert_eq!(
            check_hello(&short, now, skew).unwrap_err().code,
            "bad-request"
        );
    }

    #[test]
    fn batch_checks_name_what_is_wrong() {
        let k = key(1);
        let jid = [3; 16];
        let hello = check_hello(
            &make_hello(&k, "node-a", &jid, 5),
            5,
            Duration::from_secs(1),
        )
        .unwrap();
        let batch = |es: Vec<lpb::Entry>, signer: &SecretKey| pb::Batch {
            signature: sign_batch(signer, "node-a", &jid, &es),
            entries: es,
        };
        let good = entries("node-a", &jid, 4);
        let checked = check_batch(&hello, batch(good.clone(), &k), Limits::default()).unwrap();
        assert_eq!((checked.first_seq(), checked.last_seq()), (1, 4));

        let code = |b: pb::Batch, l: Limits| check_batch(&hello, b, l).unwrap_err().code;
        assert_eq!(
            code(batch(good.clone(), &key(9)), Limits::default()),
            "bad-signature"
        );
        let mut altered = good.clone();
        altered[1].record.push(0);
        assert_eq!(code(batch(altered, &k), Limits::default()), "altered");
        let mut unlinked = good.clone();
        unlinked[2].prev_hash = vec![9; 32];
        assert_eq!(code(batch(unlinked, &k), Limits::default()), "broken-chain");
        let skipped = vec![good[0].clone(), good[2].clone()];
        assert_eq!(code(batch(skipped, &k), Limits::default()), "broken-chain");
        let small = Limits {
            max_entries: 3,
            ..Limits::default()
        };
        assert_eq!(code(batch(good, &k), small), "oversized");
        let foreign = entries("node-b", &jid, 1);
        // Chained under node-a's name but carrying node-b's records.
        let mut e = foreign[0].clone();
        e.hash = chain::entry_hash("node-a", &jid, 1, &GENESIS, &e.record).to_vec();
        assert_eq!(code(batch(vec![e], &k), Limits::default()), "wrong-node");
        let junk = b"\xff\xff\xff".to_vec();
        let e = lpb::Entry {
            seq: 1,
            prev_hash: GENESIS.to_vec(),
            hash: chain::entry_hash("node-a", &jid, 1, &GENESIS, &junk).to_vec(),
            record: junk,
        };
        assert_eq!(code(batch(vec![e], &k), Limits::default()), "undecodable");
    }
}

/// Robustness on the stable toolchain (the `ingest_batch` fuzz target does
/// the same under libFuzzer): a valid signed batch, mutated byte by byte
/// and cut at every length, must be refused or accepted, never panic, and
/// only a batch that still verifies may be accepted.
#[cfg(test)]
mod sweep {
    use prost::Message as _;

    use super::*;
    use acelogic_domain::artifact::Role;
    use acelogic_domain::artifact::SecretKey;
    use acelogic_lineage::{chain::GENESIS, wire::sign_batch};

    #[test]
    fn mutated_batches_are_refused_never_panic() {
        let key = SecretKey::from_seed("node-a", Role::Lineage, [9; 32]).unwrap();
        let jid = [4; JOURNAL_ID_LEN];
        let hello = Hello {
            node: "node-a".into(),
            journal_id: jid,
            key: key.public(),
        };
        let mut prev = GENESIS;
        let mut entries = Vec::new();
        for (seq, r) in (1u64..).zip(
            acelogic_lineage::sample::session("node-a", 1)
                .0
                .iter()
                .take(3),
        ) {
            let record = r.encode_to_vec();
            let hash = chain::entry_hash("node-a", &jid, seq, &prev, &record);
            entries.push(lpb::Entry {
                seq,
                prev_hash: prev.to_vec(),
                hash: hash.to_vec(),
                record,
            });
            prev = hash;
        }
        let signature = sign_batch(&key, "node-a", &jid, &entries);
        let good = pb::Batch { entries, signature }.encode_to_vec();
        let decoded = pb::Batch::decode(good.as_slice()).unwrap();
        assert!(check_batch(&hello, decoded, Limits::default()).is_ok());
        let (mut accepted, mut refused) = (0, 0);
        for i in 0..good.len() {
            for flip in [0x01u8] {
                let mut bytes = good.clone();
                bytes[i] ^= flip;
                let Ok(batch) = pb::Batch::decode(bytes.as_slice()) else {
                    refused += 1;
                    continue;
                };
                match check_batch(&hello, batch, Limits::default()) {
                    Ok(_) => accepted += 1,
                    Err(_) => refused += 1,
                }
            }
        }
        for len in (0..good.len()).step_by(5) {
            if let Ok(batch) = pb::Batch::decode(&good[..len]) {
                let _ = check_batch(&hello, batch, Limits::default());
            }
        }
        // Every byte is covered by the signature or a hash: a mutation that
        // still verifies would be a forgery.
        assert_eq!(accepted, 0, "{accepted} mutated batches verified");
        assert!(refused > 0);
    }
}
