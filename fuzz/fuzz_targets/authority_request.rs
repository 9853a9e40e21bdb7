//! Arbitrary bytes as a request a node relays to the authority:
//! `request::check` (size limit, decoding, node lookup, signature, field
//! checks, capability JSON, evidence digests) and `request::fresh` must
//! return, never panic. The node key is fixed and enrolled, and the input
//! is also signed with it (as the raw `request` field, and re-encoded when
//! it decodes as an `ArtifactRequest`), so the checks past the signature
//! are reached. The seeds are written by
//! `ACELOGIC_REGEN_VECTORS=1 cargo test -p acelogic-authority --lib request::tests`.
#![no_main]

use std::{collections::BTreeMap, sync::OnceLock};

use acelogic_authority::request::{check, fresh};
use acelogic_domain::artifact::{Role, SecretKey};
use acelogic_proto::{
    authority::{ArtifactRequest, NodeRequest},
    relay,
};
use libfuzzer_sys::fuzz_target;
use prost::Message as _;

/// The enrolled node (the unit tests' seed key: same name, role, seed).
const NODE: &str = "node-a";
/// The authority's clock for `fresh` (the seeds' signing time).
const NOW: u64 = 1_767_225_600_000_000_000;

fn key() -> &'static SecretKey {
    static KEY: OnceLock<SecretKey> = OnceLock::new();
    KEY.get_or_init(|| SecretKey::from_seed(NODE, Role::Lineage, [7; 32]).expect("a seed key"))
}

fuzz_target!(|data: &[u8]| {
    let nodes = &BTreeMap::from([(NODE.to_owned(), key().public())]);
    // As the node sends it: an encoded NodeRequest.
    if let Ok(nr) = NodeRequest::decode(data) {
        let _ = check(&nr, nodes);
    }
    // As the signed bytes themselves, with a valid signature over them.
    let raw = NodeRequest {
        request: data.to_vec(),
        signature: key().sign_bytes(&relay::request_message(data)).to_vec(),
        wait_ms: 0,
    };
    if let Ok(checked) = check(&raw, nodes) {
        let _ = fresh(&checked.request, NOW);
    }
    // As an ArtifactRequest, re-encoded and signed, as named and as the
    // enrolled node's.
    if let Ok(mut request) = ArtifactRequest::decode(data) {
        let _ = fresh(&request, NOW);
        let _ = check(&relay::sign_request(key(), &request, 0), nodes);
        request.node = NODE.to_owned();
        let _ = check(&relay::sign_request(key(), &request, 0), nodes);
    }
});
