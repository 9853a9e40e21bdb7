//! Arbitrary bytes as an artifact envelope: `verify` must return, never
//! panic, whatever it is given. The trust store is the test vectors' one,
//! so seeds from `tests/vectors/` reach signature checking and beyond.
#![no_main]

use std::sync::OnceLock;

use acelogic_domain::artifact::{Artifact, TrustStore, verify};
use libfuzzer_sys::fuzz_target;

fn trust() -> &'static TrustStore {
    static TRUST: OnceLock<TrustStore> = OnceLock::new();
    TRUST.get_or_init(|| {
        TrustStore::from_yaml(
            include_str!("../../tests/vectors/trust.yaml"),
            "tests/vectors/trust.yaml",
        )
        .expect("the vectors' trust store parses")
    })
}

fuzz_target!(|data: &[u8]| {
    let _ = verify(data, trust());
    // The same bytes as a payload: most fuzzed envelopes never get a
    // trusted signature, so this reaches the payload parser directly.
    let _ = Artifact::from_json(data);
});
