//! Robustness sweeps on the stable toolchain: the fuzz corpus replayed,
//! and deterministic mutations of a valid envelope and payload.

use super::{
    Artifact,
    vectors::{full_payload, keys, signed, trust},
    verify,
};

const CORPUS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../fuzz/corpus/artifact_envelope"
);

/// Replays every file of the fuzz corpus (seeds and whatever fuzzing
/// added) through the parsers: the stable-toolchain half of fuzzing.
#[test]
fn fuzz_corpus_replays_without_panic() {
    let trust = trust(&keys());
    let mut n = 0;
    for entry in std::fs::read_dir(CORPUS).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        let _ = verify(&bytes, &trust);
        let _ = Artifact::from_json(&bytes);
        n += 1;
    }
    assert!(n >= 30, "only {n} corpus files in {CORPUS}");
}

/// Deterministic xorshift, so a failure reproduces.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n.max(1) as u64).unwrap()
    }
}

fn mutate(rng: &mut Rng, input: &[u8]) -> Vec<u8> {
    let mut b = input.to_vec();
    for _ in 0..=rng.below(3) {
        let at = rng.below(b.len());
        match rng.below(6) {
            0 => b[at] ^= 1 << rng.below(8),
            1 => b[at] = u8::try_from(rng.next() & 0xff).unwrap(),
            2 if b.len() > 1 => drop(b.remove(at)),
            3 => {
                const BYTES: &[u8] = b"{}[]\",:\\ 0aA=+/";
                b.insert(at, BYTES[rng.below(BYTES.len())]);
            }
            4 => {
                let end = (at + rng.below(16)).min(b.len());
                let chunk = b[at..end].to_vec();
                b.splice(at..at, chunk);
            }
            _ => b.truncate(at),
        }
    }
    b
}

#[test]
fn mutated_envelopes_never_verify_with_another_payload() {
    let k = keys();
    let trust = trust(&k);
    let original = signed(&full_payload(), &[&k.issuer, &k.alice, &k.bob]);
    let want = verify(&original, &trust).unwrap().artifact;
    let mut rng = Rng(0x5eed_ace1_0000_0001);
    let mut still_ok = 0;
    for i in 0..5000 {
        let m = mutate(&mut rng, &original);
        if let Ok(v) = verify(&m, &trust) {
            assert_eq!(
                v.artifact, want,
                "mutation {i} verified with another payload"
            );
            still_ok += 1;
        }
    }
    assert!(
        still_ok < 5000,
        "mutations never changed the outcome: the sweep is not testing anything"
    );
}

#[test]
fn mutated_payloads_signed_by_the_issuer_never_panic() {
    let k = keys();
    let trust = trust(&k);
    let original = full_payload();
    let mut rng = Rng(0x5eed_ace1_0000_0002);
    let mut accepted = 0;
    for _ in 0..2000 {
        let payload = mutate(&mut rng, &original);
        if let Ok(v) = verify(&signed(&payload, &[&k.issuer]), &trust) {
            // Whatever was accepted reads back to the same artifact.
            assert_eq!(
                Artifact::from_json(&v.artifact.to_json().unwrap()).unwrap(),
                v.artifact
            );
            accepted += 1;
        }
    }
    assert!(accepted < 2000);
}
