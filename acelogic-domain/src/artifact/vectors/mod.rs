//! The committed test vectors (`tests/vectors/`) and the fuzz seed corpus
//! (`fuzz/corpus/artifact_envelope/`): generated here, checked here.
//!
//! `ACELOGIC_REGEN_VECTORS=1 cargo test -p acelogic-agent --lib
//! artifact::vectors` rewrites the files. Without the variable the test
//! regenerates in memory and requires the committed files to be identical
//! (Ed25519 signatures are deterministic, ids and times are fixed), then
//! checks each envelope against the manifest with `verify`.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use super::*;

mod table;

const VECTORS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/vectors");
const REGEN: &str = "ACELOGIC_REGEN_VECTORS";
/// Seeds larger than this stay out of the fuzz corpus: libFuzzer sizes its
/// inputs after the largest seed, and big inputs slow every run.
const MAX_SEED_BYTES: usize = 8 * 1024;

/// The vector keys. Seeds are public (a label hashed), so anyone can sign
/// with them: test-only.
pub(super) struct Keys {
    pub(super) issuer: SecretKey,
    pub(super) issuer_next: SecretKey,
    pub(super) issuer_revoked: SecretKey,
    pub(super) alice: SecretKey,
    pub(super) bob: SecretKey,
    pub(super) mallory: SecretKey,
}

fn test_key(label: &str, name: &str, role: Role) -> SecretKey {
    let seed = Sha256::digest(format!("acelogic test vector key: {label}"));
    SecretKey::from_seed(name, role, seed.into()).unwrap()
}

pub(super) fn keys() -> Keys {
    Keys {
        issuer: test_key("release-authority", "release-authority", Role::Issuer),
        issuer_next: test_key("release-authority-next", "release-authority", Role::Issuer),
        issuer_revoked: test_key(
            "release-authority-revoked",
            "release-authority",
            Role::Issuer,
        ),
        alice: test_key("alice", "alice", Role::Approver),
        bob: test_key("bob", "bob", Role::Approver),
        mallory: test_key("mallory", "mallory", Role::Issuer),
    }
}

/// Everything but mallory; the revoked key stays listed so its name and
/// role are known when it is the only issuer signature.
pub(super) fn trust(k: &Keys) -> TrustStore {
    TrustStore::new(
        [
            &k.issuer,
            &k.issuer_next,
            &k.issuer_revoked,
            &k.alice,
            &k.bob,
        ]
        .map(SecretKey::trusted),
        [k.issuer_revoked.key_id()],
    )
    .unwrap()
}

struct Vector {
    name: &'static str,
    expect: &'static str,
    about: &'static str,
    bytes: Vec<u8>,
    approvers: Option<Vec<&'static str>>,
    ignored: Option<Vec<&'static str>>,
}

fn reject(name: &'static str, expect: &'static str, about: &'static str, bytes: Vec<u8>) -> Vector {
    Vector {
        name,
        expect,
        about,
        bytes,
        approvers: None,
        ignored: None,
    }
}

/// The full payload: every optional field set.
pub(super) fn full_payload() -> Vec<u8> {
    let v = json!({
        "version": 1,
        "id": "5e1fc0ffee00000000000000000000a1",
        "issuer": "release-authority",
        "subject": {"workload": "checkout", "node": "node-1", "cgroup": "/sys/fs/cgroup/acelogic/checkout"},
        "audience": "prod-eu",
        "notBefore": "2026-01-15T10:00:00Z",
        "expires": "2026-01-15T10:15:00Z",
        "capabilities": [
            {"exec": {"path": "/usr/bin/kubectl", "sha256": "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"}},
            {"write": {"path": "/srv/checkout/config"}},
            {"connect": {"host": "10.0.0.0/8", "ports": "443", "protocol": "tcp"}}
        ],
        "maxUses": 3,
        "operationKey": "scale/checkout",
        "approvalRef": "CHG-1234",
        "reason": "Scale checkout for the sale.\nApproved by the change board.",
        "parent": "5e1fc0ffee00000000000000000000a0"
    });
    canonical(&v)
}

fn minimal_payload(id: &str) -> Vec<u8> {
    canonical(&json!({
        "version": 1,
        "id": id,
        "issuer": "release-authority",
        "subject": {"workload": "checkout"},
        "audience": "prod-eu",
        "notBefore": "2026-01-15T10:00:00Z",
        "expires": "2026-01-15T10:05:00Z",
        "capabilities": [{"exec": {"path": "/usr/bin/kubectl"}}],
        "reason": "Restart checkout"
    }))
}

/// A valid payload in the field order `Artifact::to_json` writes.
fn canonical(v: &Value) -> Vec<u8> {
    Artifact::from_json(&serde_json::to_vec(v).unwrap())
        .unwrap()
        .to_json()
        .unwrap()
}

/// The full payload with one change (keys then sort alphabetically).
fn edited(edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> Vec<u8> {
    let mut v: Value = serde_json::from_slice(&full_payload()).unwrap();
    edit(v.as_object_mut().unwrap());
    serde_json::to_vec(&v).unwrap()
}

pub(super) fn signed(payload: &[u8], signers: &[&SecretKey]) -> Vec<u8> {
    sign(payload, signers).to_json()
}

/// An envelope of the full payload signed by the issuer, as a JSON value
/// to edit.
fn envelope_value(k: &Keys) -> Value {
    serde_json::from_slice(&signed(&full_payload(), &[&k.issuer])).unwrap()
}

fn flip(sig: &mut [u8]) {
    sig[0] ^= 0x01;
}

fn manifest(vectors: &[Vector]) -> Vec<u8> {
    let entries: Vec<Value> = vectors
        .iter()
        .map(|v| {
            let mut e = json!({"file": format!("envelopes/{}.json", v.name), "expect": v.expect, "about": v.about});
            if let Some(a) = &v.approvers {
                e["approvers"] = json!(a);
            }
            if let Some(i) = &v.ignored {
                e["ignored"] = json!(i);
            }
            e
        })
        .collect();
    let mut out = serde_json::to_vec_pretty(&entries).unwrap();
    out.push(b'\n');
    out
}

fn readme(vectors: &[Vector]) -> Vec<u8> {
    let mut out = String::from(
        "# Artifact test vectors\n\n\
         Generated by `ACELOGIC_REGEN_VECTORS=1 cargo test -p acelogic-agent --lib artifact::vectors`\n\
         (from `acelogic-agent/src/artifact/vectors/`); the same test without the variable\n\
         regenerates in memory, requires these files to be identical, and checks every envelope\n\
         with `artifact::verify` against `manifest.json`. Do not edit by hand.\n\n\
         **Test-only keys.** Every key here comes from a public seed,\n\
         `sha256(\"acelogic test vector key: <label>\")`, so anyone can sign with it. Never put\n\
         these keys, or `trust.yaml`, into a real trust store.\n\n\
         - `trust.yaml`: the store every envelope is checked against. `release-authority` has\n\
           three issuer keys: `release-authority` and `release-authority-next` (current, rotation)\n\
           and `release-authority-revoked` (listed in `revokedKeyIds`); `alice` and `bob` are\n\
           approvers. `mallory` is not in it.\n\
         - `keys/<label>.key.json`: the secret key files (format in `acelogic-agent/src/artifact/keys.rs`).\n\
           Git does not keep mode 0600; `chmod 600` a copy before `acelogicctl` will read one.\n\
         - `manifest.json`: one entry per envelope: `file`, `expect` (`ok` or the exact\n\
           rejection code), `about`, and for `ok` the expected `approvers` and `ignored` reasons.\n\
         - `envelopes/`: the envelopes. Those under 8 KiB are also the fuzz seed corpus\n\
           (`fuzz/corpus/artifact_envelope/`).\n\n\
         | file | expect | what it is |\n| --- | --- | --- |\n",
    );
    for v in vectors {
        out.push_str(&format!(
            "| `envelopes/{}.json` | `{}` | {} |\n",
            v.name, v.expect, v.about
        ));
    }
    out.into_bytes()
}

/// Every generated file, by path relative to the repository root.
fn generate() -> (BTreeMap<PathBuf, Vec<u8>>, Vec<Vector>) {
    let k = keys();
    let vectors = table::vectors(&k);
    let dir = Path::new("tests/vectors");
    let mut files = BTreeMap::new();
    files.insert(dir.join("trust.yaml"), trust(&k).to_yaml().into_bytes());
    for (label, key) in [
        ("release-authority", &k.issuer),
        ("release-authority-next", &k.issuer_next),
        ("release-authority-revoked", &k.issuer_revoked),
        ("alice", &k.alice),
        ("bob", &k.bob),
        ("mallory", &k.mallory),
    ] {
        files.insert(dir.join(format!("keys/{label}.key.json")), key.file_json());
    }
    for v in &vectors {
        files.insert(
            dir.join(format!("envelopes/{}.json", v.name)),
            v.bytes.clone(),
        );
        if v.bytes.len() <= MAX_SEED_BYTES {
            files.insert(
                Path::new("fuzz/corpus/artifact_envelope").join(format!("{}.json", v.name)),
                v.bytes.clone(),
            );
        }
    }
    files.insert(dir.join("manifest.json"), manifest(&vectors));
    files.insert(dir.join("README.md"), readme(&vectors));
    (files, vectors)
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[test]
fn vectors_are_current_and_verify_as_the_manifest_says() {
    let (files, vectors) = generate();
    let root = root();
    if std::env::var_os(REGEN).is_some_and(|v| v == "1") {
        let _ = std::fs::remove_dir_all(root.join("tests/vectors/envelopes"));
        for (path, bytes) in &files {
            let path = root.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, bytes).unwrap();
        }
    }
    let hint =
        format!("regenerate with {REGEN}=1 cargo test -p acelogic-agent --lib artifact::vectors");
    for (path, bytes) in &files {
        let on_disk = std::fs::read(root.join(path))
            .unwrap_or_else(|e| panic!("{}: {e}; {hint}", path.display()));
        assert!(
            on_disk == *bytes,
            "{} differs from the generator; {hint}",
            path.display()
        );
    }
    let committed = std::fs::read_dir(Path::new(VECTORS).join("envelopes"))
        .unwrap()
        .count();
    assert_eq!(
        committed,
        vectors.len(),
        "stale files in tests/vectors/envelopes; {hint}"
    );

    // Check from the files, as an outside implementation would.
    let trust = TrustStore::load(&Path::new(VECTORS).join("trust.yaml")).unwrap();
    let manifest: Vec<Value> =
        serde_json::from_slice(&std::fs::read(Path::new(VECTORS).join("manifest.json")).unwrap())
            .unwrap();
    assert_eq!(manifest.len(), vectors.len());
    let mut codes = std::collections::BTreeSet::new();
    for entry in &manifest {
        let file = entry["file"].as_str().unwrap();
        let bytes = std::fs::read(Path::new(VECTORS).join(file)).unwrap();
        let expect = entry["expect"].as_str().unwrap();
        match verify(&bytes, &trust) {
            Ok(v) => {
                assert_eq!(
                    expect, "ok",
                    "{file} verified but should fail with {expect}"
                );
                let names: Vec<&str> = v.approvers.iter().map(|a| a.name.as_str()).collect();
                assert_eq!(json!(names), entry["approvers"], "{file}");
                let ignored: Vec<&str> = v.ignored.iter().map(|i| i.reason.code()).collect();
                assert_eq!(json!(ignored), entry["ignored"], "{file}");
            }
            Err(e) => assert_eq!(e.code(), expect, "{file}: {e}"),
        }
        codes.insert(expect.to_owned());
    }
    // Every verification outcome has at least one vector.
    for code in [
        "ok",
        "too-large",
        "bad-encoding",
        "bad-json",
        "unknown-field",
        "missing-field",
        "duplicate-field",
        "bad-payload-type",
        "bad-version",
        "bad-value",
        "bad-time-window",
        "no-signatures",
        "too-many-signatures",
        "duplicate-keyid",
        "bad-signature",
        "no-issuer-signature",
        "revoked-key",
    ] {
        assert!(codes.contains(code), "no vector for {code}");
    }
}
