//! Signature rules of `verify`, `sign` and `cosign`, with trust stores
//! built in code (the committed vectors cover the same ground from files;
//! see `vectors.rs`).

use super::*;

const PAYLOAD: &str = r#"{"version":1,"id":"0123456789abcdef0123456789abcdef","issuer":"release-authority","subject":{"workload":"checkout"},"audience":"prod-eu","notBefore":"2026-11-21T10:00:00Z","expires":"2026-11-21T10:15:00Z","capabilities":[{"exec":{"path":"/usr/bin/kubectl"}}],"reason":"scale checkout"}"#;

fn key(name: &str, role: Role, seed: u8) -> SecretKey {
    SecretKey::from_seed(name, role, [seed; 32]).unwrap()
}

struct World {
    issuer: SecretKey,
    issuer2: SecretKey,
    old: SecretKey,
    alice: SecretKey,
    alice2: SecretKey,
    bob: SecretKey,
    self_approver: SecretKey,
    other_issuer: SecretKey,
    stranger: SecretKey,
    trust: TrustStore,
}

fn world() -> World {
    let issuer = key("release-authority", Role::Issuer, 1);
    let issuer2 = key("release-authority", Role::Issuer, 2);
    let old = key("release-authority", Role::Issuer, 3);
    let alice = key("alice", Role::Approver, 4);
    let alice2 = key("alice", Role::Approver, 5);
    let bob = key("bob", Role::Approver, 6);
    let self_approver = key("release-authority", Role::Approver, 7);
    let other_issuer = key("other-authority", Role::Issuer, 8);
    let stranger = key("mallory", Role::Issuer, 9);
    let trust = TrustStore::new(
        [
            &issuer,
            &issuer2,
            &old,
            &alice,
            &alice2,
            &bob,
            &self_approver,
            &other_issuer,
        ]
        .map(SecretKey::trusted),
        [old.key_id()],
    )
    .unwrap();
    World {
        issuer,
        issuer2,
        old,
        alice,
        alice2,
        bob,
        self_approver,
        other_issuer,
        stranger,
        trust,
    }
}

fn signed(signers: &[&SecretKey]) -> Vec<u8> {
    sign(PAYLOAD.as_bytes(), signers).to_json()
}

fn reasons(v: &Verified) -> Vec<&'static str> {
    v.ignored.iter().map(|i| i.reason.code()).collect()
}

fn names(v: &Verified) -> Vec<&str> {
    v.approvers.iter().map(|a| a.name.as_str()).collect()
}

#[test]
fn issuer_signature_is_enough() {
    let w = world();
    let bytes = signed(&[&w.issuer]);
    let v = verify(&bytes, &w.trust).unwrap();
    assert_eq!(v.issuer_key, w.issuer.key_id());
    assert!(v.approvers.is_empty() && v.ignored.is_empty());
    assert_eq!(v.artifact, Artifact::from_json(PAYLOAD.as_bytes()).unwrap());
    use sha2::Digest as _;
    assert_eq!(
        v.envelope_sha256,
        <[u8; 32]>::from(sha2::Sha256::digest(&bytes))
    );
}

#[test]
fn approvals_count_distinct_names_sorted_never_the_issuer() {
    let w = world();
    let bytes = signed(&[
        &w.bob,
        &w.alice,
        &w.issuer,
        &w.alice2,
        &w.self_approver,
        &w.other_issuer,
    ]);
    let v = verify(&bytes, &w.trust).unwrap();
    assert_eq!(names(&v), ["alice", "bob"]);
    assert_eq!(
        v.approvers[0].key_id,
        w.alice.key_id(),
        "first in envelope order counts"
    );
    assert_eq!(reasons(&v), ["repeated", "self-approval", "other-issuer"]);
}

#[test]
fn unknown_and_revoked_keys_are_ignored_not_fatal() {
    let w = world();
    let v = verify(
        &signed(&[&w.stranger, &w.old, &w.issuer2, &w.issuer]),
        &w.trust,
    )
    .unwrap();
    assert_eq!(
        v.issuer_key,
        w.issuer2.key_id(),
        "rotation: either current key signs"
    );
    assert_eq!(reasons(&v), ["unknown-key", "revoked-key", "repeated"]);
    assert_eq!(v.ignored[0].keyid, w.stranger.key_id().to_string());
    // A keyid that is not even an ed25519 id is unknown too.
    let mut e = sign(PAYLOAD.as_bytes(), &[&w.issuer]);
    e.signatures.push(Signature {
        keyid: "gpg:ABCD".into(),
        sig: vec![1; 3],
    });
    let v = verify(&e.to_json(), &w.trust).unwrap();
    assert_eq!(reasons(&v), ["unknown-key"]);
}

#[test]
fn issuer_rules() {
    let w = world();
    let code = |signers: &[&SecretKey]| verify(&signed(signers), &w.trust).unwrap_err().code();
    assert_eq!(code(&[&w.old]), "revoked-key");
    assert_eq!(code(&[&w.old, &w.alice]), "revoked-key");
    assert_eq!(code(&[&w.stranger]), "no-issuer-signature");
    assert_eq!(code(&[&w.alice, &w.bob]), "no-issuer-signature");
    assert_eq!(
        code(&[&w.self_approver]),
        "no-issuer-signature",
        "approver role cannot issue"
    );
    assert_eq!(
        code(&[&w.other_issuer]),
        "no-issuer-signature",
        "another authority's name"
    );
    let e = verify(&signed(&[&w.old]), &w.trust).unwrap_err();
    assert!(e.to_string().contains(&w.old.key_id().to_string()), "{e}");
}

#[test]
fn any_bad_trusted_signature_is_fatal() {
    let w = world();
    for victim in 0..3 {
        let mut e = sign(PAYLOAD.as_bytes(), &[&w.issuer, &w.alice, &w.bob]);
        e.signatures[victim].sig[10] ^= 1;
        let err = verify(&e.to_json(), &w.trust).unwrap_err();
        assert_eq!(err.code(), "bad-signature");
        assert!(
            err.to_string().contains(&e.signatures[victim].keyid),
            "{err}"
        );
    }
    let mut e = sign(PAYLOAD.as_bytes(), &[&w.issuer]);
    e.signatures[0].sig.truncate(63);
    assert_eq!(
        verify(&e.to_json(), &w.trust).unwrap_err().code(),
        "bad-signature"
    );
    // Signatures do not survive a changed payload.
    let mut e = sign(PAYLOAD.as_bytes(), &[&w.issuer]);
    e.payload = PAYLOAD.replace("checkout\"}", "checkouts\"}").into_bytes();
    assert_eq!(
        verify(&e.to_json(), &w.trust).unwrap_err().code(),
        "bad-signature"
    );
    // A non-canonical signature (s + l) is refused by verify_strict.
    let mut e = sign(PAYLOAD.as_bytes(), &[&w.issuer]);
    add_group_order(&mut e.signatures[0].sig[32..]);
    assert_eq!(
        verify(&e.to_json(), &w.trust).unwrap_err().code(),
        "bad-signature"
    );
}

/// Adds the Ed25519 group order to a little-endian scalar (the classic
/// signature malleability).
fn add_group_order(s: &mut [u8]) {
    const L: [u8; 32] = [
        0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde,
        0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
    ];
    let mut carry = 0u16;
    for (b, l) in s.iter_mut().zip(L) {
        let sum = u16::from(*b) + u16::from(l) + carry;
        *b = (sum & 0xff) as u8;
        carry = sum >> 8;
    }
}

#[test]
fn cosign_appends_and_refuses_duplicates() {
    let w = world();
    let one = signed(&[&w.issuer]);
    let two = cosign(&one, &w.alice).unwrap();
    assert_eq!(names(&verify(&two, &w.trust).unwrap()), ["alice"]);
    assert_eq!(
        cosign(&two, &w.alice).unwrap_err().code(),
        "duplicate-keyid"
    );
    assert_eq!(
        cosign(&two, &w.issuer).unwrap_err().code(),
        "duplicate-keyid"
    );
    let mut full = two;
    for seed in 20..26 {
        full = cosign(&full, &key("extra", Role::Approver, seed)).unwrap();
    }
    assert_eq!(Envelope::from_json(&full).unwrap().signatures.len(), 8);
    assert_eq!(
        cosign(&full, &w.bob).unwrap_err().code(),
        "too-many-signatures"
    );
    // Nobody co-signs a payload that would not verify.
    let bad = sign(
        PAYLOAD
            .replace("\"version\":1", "\"version\":1,\"x\":1")
            .as_bytes(),
        &[&w.issuer],
    );
    assert_eq!(
        cosign(&bad.to_json(), &w.alice).unwrap_err().code(),
        "unknown-field"
    );
}

#[test]
fn sign_signs_once_per_key() {
    let w = world();
    let e = sign(PAYLOAD.as_bytes(), &[&w.issuer, &w.alice, &w.issuer]);
    assert_eq!(e.signatures.len(), 2);
    assert_eq!(e.payload_type, PAYLOAD_TYPE);
    assert_eq!(Envelope::from_json(&e.to_json()).unwrap(), e);
}

#[test]
fn structural_errors_come_before_signatures() {
    let w = world();
    // A payload error is reported even when no trusted key signed.
    let e = sign(
        PAYLOAD.replace("\"version\":1", "\"version\":2").as_bytes(),
        &[&w.stranger],
    );
    assert_eq!(
        verify(&e.to_json(), &w.trust).unwrap_err().code(),
        "bad-version"
    );
}
