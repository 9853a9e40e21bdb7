//! Arbitrary bytes as a collector ingest batch and as a lineage record:
//! decoding and `check_batch` must return, never panic. The Hello is a
//! fixed node key, so seeds made from real signed batches reach the chain
//! and signature checks.
#![no_main]

use std::sync::OnceLock;

use acelogic_collector::{
    pb,
    verify::{Hello, Limits, check_batch},
};
use acelogic_domain::artifact::{Role, SecretKey};
use acelogic_lineage::pb as lpb;
use libfuzzer_sys::fuzz_target;
use prost::Message as _;

fn hello() -> &'static Hello {
    static HELLO: OnceLock<Hello> = OnceLock::new();
    HELLO.get_or_init(|| {
        let key = SecretKey::from_seed("node-a", Role::Lineage, [9; 32]).expect("a seed key");
        Hello {
            node: "node-a".into(),
            journal_id: [4; 16],
            key: key.public(),
        }
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok(batch) = pb::Batch::decode(data) {
        let _ = check_batch(hello(), batch, Limits::default());
    }
    let _ = lpb::Record::decode(data);
});
