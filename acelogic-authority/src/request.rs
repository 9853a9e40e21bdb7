//! A relayed request, checked before anything is decided on it: the node
//! that signed it is enrolled and its signature verifies, and every field
//! is well formed. Nothing here looks at policy.

use std::{collections::BTreeMap, time::Duration};

use ed25519_dalek::{Signature, VerifyingKey};
use prost::Message as _;
use sha2::{Digest as _, Sha256};

use acelogic_domain::{
    Reason, Refusal,
    artifact::{MAX_CAPABILITIES, Name},
    capability::Capability,
};
use acelogic_proto::{
    authority::{ArtifactRequest, NodeRequest},
    relay,
};

/// Largest encoded request (evidence content included).
pub const MAX_REQUEST_BYTES: usize = 256 * 1024;
/// Most evidence items, and the largest attached content of one.
pub const MAX_EVIDENCE: usize = 16;
pub const MAX_EVIDENCE_CONTENT: usize = 64 * 1024;
/// Longest evidence name and URI.
const MAX_EVIDENCE_TEXT: usize = 512;
/// How far a request's time may be from the authority's.
pub const CLOCK_SKEW: Duration = Duration::from_secs(300);

/// A request whose node signature verified and whose fields are sound.
#[derive(Debug, Clone)]
pub struct Checked {
    pub request: ArtifactRequest,
    /// The exact bytes the node signed (kept, and compared on a retry).
    pub bytes: Vec<u8>,
    pub capabilities: Vec<Capability>,
}

fn bad(why: impl Into<String>) -> Refusal {
    Refusal::new(Reason::BadRequest, why)
}

/// Is `s` exactly `n` lowercase hex digits?
#[must_use]
pub fn is_hex(s: &str, n: usize) -> bool {
    s.len() == n
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Checks a node's request against the enrolled node keys. How old it
/// is matters only for a new request ([`fresh`]): a node waiting on one it
/// sent earlier sends the same signed bytes again.
pub fn check(nr: &NodeRequest, nodes: &BTreeMap<String, VerifyingKey>) -> Result<Checked, Refusal> {
    if nr.request.len() > MAX_REQUEST_BYTES {
        return Err(Refusal::new(
            Reason::TooLarge,
            format!(
                "request is {} bytes; the limit is {MAX_REQUEST_BYTES} (attach large evidence by digest and URI)",
                nr.request.len()
            ),
        ));
    }
    let request = ArtifactRequest::decode(nr.request.as_slice())
        .map_err(|e| bad(format!("request is not an encoded ArtifactRequest: {e}")))?;
    let Some(key) = nodes.get(&request.node) else {
        return Err(Refusal::new(
            Reason::UnknownNode,
            format!(
                "node {:?} is not enrolled at this authority (--nodes)",
                shorten(&request.node)
            ),
        ));
    };
    let sig = <[u8; 64]>::try_from(nr.signature.as_slice())
        .map_err(|_| Refusal::new(Reason::BadNodeSignature, "signature is not 64 bytes"))?;
    key.verify_strict(
        &relay::request_message(&nr.request),
        &Signature::from_bytes(&sig),
    )
    .map_err(|_| {
        Refusal::new(
            Reason::BadNodeSignature,
            format!(
                "the signature is not node {:?}'s enrolled key's over this request",
                request.node
            ),
        )
    })?;
    let capabilities = fields(&request)?;
    Ok(Checked {
        request,
        bytes: nr.request.clone(),
        capabilities,
    })
}

fn shorten(s: &str) -> String {
    s.chars().take(80).collect()
}

/// A new request must have been signed within [`CLOCK_SKEW`] of `now_ns`.
pub fn fresh(r: &ArtifactRequest, now_ns: u64) -> Result<(), Refusal> {
    let skew = u64::try_from(CLOCK_SKEW.as_nanos()).unwrap_or(u64::MAX);
    if r.time_unix_nano.abs_diff(now_ns) > skew {
        return Err(bad(format!(
            "the request was signed {} s from the authority's time; the limit is {} s (check the node's clock)",
            r.time_unix_nano.abs_diff(now_ns) / 1_000_000_000,
            CLOCK_SKEW.as_secs()
        )));
    }
    Ok(())
}

/// The field checks; returns the parsed capabilities.
fn fields(r: &ArtifactRequest) -> Result<Vec<Capability>, Refusal> {
    if !is_hex(&r.request_id, 32) {
        return Err(bad(format!(
            "request_id {:?} is not 32 lowercase hex digits",
            shorten(&r.request_id)
        )));
    }
    if r.workload.parse::<Name>().is_err() {
        return Err(bad(format!(
            "workload {:?} is not a valid name",
            shorten(&r.workload)
        )));
    }
    if !r.exec_id.is_empty() && (r.exec_id.len() > 128 || !r.exec_id.is_ascii()) {
        return Err(bad("exec_id is not 1-128 ASCII characters"));
    }
    if r.capabilities.is_empty() || r.capabilities.len() > MAX_CAPABILITIES {
        return Err(Refusal::new(
            Reason::NoCapabilities,
            format!(
                "{} capabilities asked for; ask for 1-{MAX_CAPABILITIES}",
                r.capabilities.len()
            ),
        ));
    }
    let mut caps = Vec::with_capacity(r.capabilities.len());
    for (i, text) in r.capabilities.iter().enumerate() {
        let mut de = serde_json::Deserializer::from_str(text);
        let cap = serde::Deserialize::deserialize(&mut de)
            .and_then(|c: Capability| de.end().map(|()| c))
            .map_err(|e| {
                Refusal::new(
                    Reason::BadValue,
                    format!("capabilities[{i}] {:?}: {e}", shorten(text)),
                )
            })?;
        caps.push(cap);
    }
    if r.evidence.len() > MAX_EVIDENCE {
        return Err(bad(format!(
            "{} evidence items; at most {MAX_EVIDENCE}",
            r.evidence.len()
        )));
    }
    for (i, e) in r.evidence.iter().enumerate() {
        if e.name.is_empty()
            || e.name.len() > MAX_EVIDENCE_TEXT
            || e.uri.len() > MAX_EVIDENCE_TEXT
            || e.name.chars().chain(e.uri.chars()).any(char::is_control)
        {
            return Err(bad(format!(
                "evidence[{i}]: name (1-{MAX_EVIDENCE_TEXT}) and uri (at most {MAX_EVIDENCE_TEXT}) must be text without control characters"
            )));
        }
        if !is_hex(&e.sha256, 64) {
            return Err(bad(format!(
                "evidence[{i}] {:?}: sha256 is not 64 lowercase hex digits",
                e.name
            )));
        }
        if e.content.len() > MAX_EVIDENCE_CONTENT {
            return Err(bad(format!(
                "evidence[{i}] {:?}: {} bytes attached; at most {MAX_EVIDENCE_CONTENT} (give a digest and URI instead)",
                e.name,
                e.content.len()
            )));
        }
        if !e.content.is_empty() {
            if hex::encode(Sha256::digest(&e.content)) != e.sha256 {
                return Err(Refusal::new(
                    Reason::DigestMismatch,
                    format!(
                        "evidence[{i}] {:?}: the attached content does not hash to its sha256",
                        e.name
                    ),
                ));
            }
            if e.size != e.content.len() as u64 {
                return Err(bad(format!(
                    "evidence[{i}] {:?}: size {} but {} bytes attached",
                    e.name,
                    e.size,
                    e.content.len()
                )));
            }
        }
    }
    if !r.parent.is_empty() && !is_hex(&r.parent, 32) {
        return Err(bad(
            "parent is not an artifact id (32 lowercase hex digits)",
        ));
    }
    Ok(caps)
}

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    use acelogic_domain::artifact::{Role, SecretKey};
    use acelogic_proto::authority::Evidence;

    use super::*;

    const NODE: &str = "node-a";
    /// A fixed time, well inside the range `fresh` compares against.
    const T0: u64 = 1_767_225_600_000_000_000;

    /// The node key of the `authority_request` fuzz target (same name,
    /// role and seed), so the seeds below verify there too.
    fn node_key() -> SecretKey {
        SecretKey::from_seed(NODE, Role::Lineage, [7; 32]).unwrap()
    }

    fn nodes() -> BTreeMap<String, VerifyingKey> {
        BTreeMap::from([(NODE.to_owned(), node_key().public())])
    }

    fn evidence(content: &[u8]) -> Evidence {
        Evidence {
            name: "plan.txt".into(),
            sha256: hex::encode(Sha256::digest(content)),
            uri: "https://ci.example/plan/1".into(),
            size: content.len() as u64,
            content: content.to_vec(),
        }
    }

    /// A request every check accepts.
    fn valid() -> ArtifactRequest {
        ArtifactRequest {
            request_id: "0123456789abcdef0123456789abcdef".into(),
            node: NODE.into(),
            workload: "scaling-agent".into(),
            exec_id: "exec-1".into(),
            pid: 4242,
            uid: 1000,
            capabilities: vec![
                r#"{"exec":{"path":"/usr/local/bin/scale"}}"#.into(),
                r#"{"connect":{"host":"10.30.0.7","ports":"6443","protocol":"tcp"}}"#.into(),
            ],
            operation_key: "scale-web".into(),
            reason: "traffic doubled".into(),
            ttl_seconds: 600,
            max_uses: 1,
            evidence: vec![evidence(b"replicas: 4 -> 8\n")],
            time_unix_nano: T0,
            parent: String::new(),
        }
    }

    fn signed(r: &ArtifactRequest) -> NodeRequest {
        relay::sign_request(&node_key(), r, 0)
    }

    /// `r` signed by the enrolled key, checked; the refusal it gets.
    fn refusal(r: &ArtifactRequest) -> Refusal {
        match check(&signed(r), &nodes()) {
            Ok(c) => panic!("accepted: {:?}", c.request),
            Err(e) => e,
        }
    }

    #[track_caller]
    fn assert_refused(e: &Refusal, code: Reason, why: &str) {
        assert_eq!(e.code, code, "{}", e.why);
        assert!(e.why.contains(why), "{:?} lacks {why:?}", e.why);
    }

    #[test]
    fn a_signed_well_formed_request_passes() {
        let r = valid();
        let nr = signed(&r);
        let c = check(&nr, &nodes()).unwrap();
        assert_eq!(c.request, r);
        assert_eq!(c.bytes, nr.request);
        assert_eq!(c.capabilities.len(), 2);
        fresh(&r, T0).unwrap();
        // Every optional part left out.
        let bare = ArtifactRequest {
            exec_id: String::new(),
            evidence: vec![],
            ..valid()
        };
        check(&signed(&bare), &nodes()).unwrap();
        // Evidence by digest and URI, no content.
        let by_ref = ArtifactRequest {
            evidence: vec![Evidence {
                content: vec![],
                size: 1 << 30,
                ..evidence(b"large")
            }],
            parent: "fedcba9876543210fedcba9876543210".into(),
            ..valid()
        };
        check(&signed(&by_ref), &nodes()).unwrap();
    }

    #[test]
    fn refuses_a_bad_request_id() {
        for id in [
            "",
            "0123456789abcdef",
            "0123456789ABCDEF0123456789ABCDEF",
            "0123456789abcdef0123456789abcdeg",
            "0123456789abcdef0123456789abcdef0",
        ] {
            let r = ArtifactRequest {
                request_id: id.into(),
                ..valid()
            };
            assert_refused(&refusal(&r), Reason::BadRequest, "request_id");
        }
    }

    #[test]
    fn refuses_an_unknown_node() {
        let r = ArtifactRequest {
            node: "node-b".into(),
            ..valid()
        };
        // Signed by node-a's key, but it names node-b: not enrolled.
        assert_refused(&refusal(&r), Reason::UnknownNode, "node-b");
        // No node at all.
        let r = ArtifactRequest {
            node: String::new(),
            ..valid()
        };
        assert_refused(&refusal(&r), Reason::UnknownNode, "not enrolled");
        // Nothing enrolled.
        let e = check(&signed(&valid()), &BTreeMap::new()).unwrap_err();
        assert_refused(&e, Reason::UnknownNode, NODE);
    }

    #[test]
    fn refuses_a_bad_node_signature() {
        let good = signed(&valid());
        // Another key, for the enrolled name.
        let other = SecretKey::from_seed(NODE, Role::Lineage, [8; 32]).unwrap();
        let forged = relay::sign_request(&other, &valid(), 0);
        let e = check(&forged, &nodes()).unwrap_err();
        assert_refused(&e, Reason::BadNodeSignature, "enrolled key");
        // The signed bytes altered after signing (still a valid request:
        // one letter of the reason).
        let mut tampered = good.clone();
        let at = tampered
            .request
            .windows(b"doubled".len())
            .position(|w| w == b"doubled")
            .unwrap();
        tampered.request[at] = b'D';
        ArtifactRequest::decode(tampered.request.as_slice()).unwrap();
        let e = check(&tampered, &nodes()).unwrap_err();
        assert_refused(&e, Reason::BadNodeSignature, "enrolled key");
        // The signature altered.
        let mut flipped = good.clone();
        flipped.signature[10] ^= 1;
        let e = check(&flipped, &nodes()).unwrap_err();
        assert_refused(&e, Reason::BadNodeSignature, "enrolled key");
        // Not 64 bytes, or none.
        for len in [0, 63, 65] {
            let mut short = good.clone();
            short.signature.resize(len, 0);
            let e = check(&short, &nodes()).unwrap_err();
            assert_refused(&e, Reason::BadNodeSignature, "not 64 bytes");
        }
        // Without the domain separation: the key's plain signature over the bytes.
        let mut plain = good.clone();
        plain.signature = node_key().sign_bytes(&good.request).to_vec();
        let e = check(&plain, &nodes()).unwrap_err();
        assert_refused(&e, Reason::BadNodeSignature, "enrolled key");
    }

    #[test]
    fn refuses_no_capabilities_or_too_many() {
        let none = ArtifactRequest {
            capabilities: vec![],
            ..valid()
        };
        assert_refused(&refusal(&none), Reason::NoCapabilities, "0 capabilities");
        let cap = r#"{"exec":{"path":"/usr/local/bin/scale"}}"#.to_owned();
        let most = ArtifactRequest {
            capabilities: vec![cap.clone(); MAX_CAPABILITIES],
            ..valid()
        };
        assert_eq!(
            check(&signed(&most), &nodes()).unwrap().capabilities.len(),
            MAX_CAPABILITIES
        );
        let over = ArtifactRequest {
            capabilities: vec![cap; MAX_CAPABILITIES + 1],
            ..valid()
        };
        assert_refused(
            &refusal(&over),
            Reason::NoCapabilities,
            &format!("{} capabilities", MAX_CAPABILITIES + 1),
        );
    }

    #[test]
    fn refuses_bad_capability_json() {
        for (text, why) in [
            ("not json", "capabilities[1]"),
            (r#"{"exec":{"path":"relative/scale"}}"#, "capabilities[1]"),
            (r#"{"exec":{"path":"/bin/x","extra":1}}"#, "capabilities[1]"),
            (r#"{"teleport":{}}"#, "capabilities[1]"),
            // Data after the capability.
            (
                r#"{"exec":{"path":"/bin/x"}} {"exec":{"path":"/bin/y"}}"#,
                "capabilities[1]",
            ),
            ("", "capabilities[1]"),
        ] {
            let mut r = valid();
            r.capabilities[1] = text.into();
            assert_refused(&refusal(&r), Reason::BadValue, why);
        }
    }

    #[test]
    fn refuses_evidence_whose_content_is_not_its_digest() {
        let mut r = valid();
        r.evidence[0].content = b"replicas: 4 -> 80\n".to_vec();
        r.evidence[0].size = r.evidence[0].content.len() as u64;
        assert_refused(&refusal(&r), Reason::DigestMismatch, "evidence[0]");
        // The digest of other content altogether.
        let mut r = valid();
        r.evidence.push(evidence(b"second"));
        r.evidence[1].sha256 = evidence(b"third").sha256;
        assert_refused(&refusal(&r), Reason::DigestMismatch, "evidence[1]");
    }

    #[test]
    fn refuses_evidence_whose_size_is_not_its_content() {
        let mut r = valid();
        r.evidence[0].size += 1;
        assert_refused(&refusal(&r), Reason::BadRequest, "size 18 but 17 bytes");
        r.evidence[0].size = 0;
        assert_refused(&refusal(&r), Reason::BadRequest, "size 0 but 17 bytes");
    }

    #[test]
    fn refuses_oversized_content() {
        // One item over its limit (the request itself is under its own).
        let big = vec![b'x'; MAX_EVIDENCE_CONTENT + 1];
        let r = ArtifactRequest {
            evidence: vec![evidence(&big)],
            ..valid()
        };
        assert_refused(
            &refusal(&r),
            Reason::BadRequest,
            &format!("{} bytes attached", MAX_EVIDENCE_CONTENT + 1),
        );
        // At the limit it passes.
        let most = vec![b'x'; MAX_EVIDENCE_CONTENT];
        let r = ArtifactRequest {
            evidence: vec![evidence(&most)],
            ..valid()
        };
        check(&signed(&r), &nodes()).unwrap();
        // The whole request over its limit: refused before it is decoded.
        let r = ArtifactRequest {
            evidence: vec![evidence(&most); 4],
            ..valid()
        };
        let nr = signed(&r);
        assert!(nr.request.len() > MAX_REQUEST_BYTES);
        let e = check(&nr, &nodes()).unwrap_err();
        assert_refused(&e, Reason::TooLarge, "the limit is");
        // Even when it is not a request at all.
        let junk = NodeRequest {
            request: vec![0xff; MAX_REQUEST_BYTES + 1],
            ..nr
        };
        let e = check(&junk, &nodes()).unwrap_err();
        assert_refused(&e, Reason::TooLarge, "the limit is");
    }

    #[test]
    fn refuses_other_malformed_fields() {
        let cases: Vec<(ArtifactRequest, &str)> = vec![
            (
                ArtifactRequest {
                    workload: "Scaling Agent".into(),
                    ..valid()
                },
                "workload",
            ),
            (
                ArtifactRequest {
                    exec_id: "e".repeat(129),
                    ..valid()
                },
                "exec_id",
            ),
            (
                ArtifactRequest {
                    exec_id: "exec-é".into(),
                    ..valid()
                },
                "exec_id",
            ),
            (
                ArtifactRequest {
                    evidence: vec![evidence(b"e"); MAX_EVIDENCE + 1],
                    ..valid()
                },
                "evidence items",
            ),
            (
                ArtifactRequest {
                    evidence: vec![Evidence {
                        name: String::new(),
                        ..evidence(b"e")
                    }],
                    ..valid()
                },
                "evidence[0]: name",
            ),
            (
                ArtifactRequest {
                    evidence: vec![Evidence {
                        uri: "https://x/\n".into(),
                        ..evidence(b"e")
                    }],
                    ..valid()
                },
                "evidence[0]: name",
            ),
            (
                ArtifactRequest {
                    evidence: vec![Evidence {
                        sha256: evidence(b"e").sha256.to_uppercase(),
                        ..evidence(b"e")
                    }],
                    ..valid()
                },
                "sha256 is not 64",
            ),
            (
                ArtifactRequest {
                    parent: "not-an-id".into(),
                    ..valid()
                },
                "parent",
            ),
        ];
        for (r, why) in cases {
            assert_refused(&refusal(&r), Reason::BadRequest, why);
        }
    }

    #[test]
    fn refuses_bytes_that_are_not_a_request() {
        // Field 1 as a varint where a string is expected, then a truncated field.
        for bytes in [vec![0x08, 0x01], vec![0x0a, 0x05, b'a'], vec![0xff]] {
            let nr = NodeRequest {
                request: bytes,
                signature: vec![0; 64],
                wait_ms: 0,
            };
            let e = check(&nr, &nodes()).unwrap_err();
            assert_refused(&e, Reason::BadRequest, "not an encoded ArtifactRequest");
        }
    }

    #[test]
    fn fresh_refuses_a_stale_or_future_time() {
        let skew = u64::try_from(CLOCK_SKEW.as_nanos()).unwrap();
        let r = valid();
        fresh(&r, T0).unwrap();
        fresh(&r, T0 + skew).unwrap();
        fresh(&r, T0 - skew).unwrap();
        // Signed too long ago.
        let e = fresh(&r, T0 + skew + 1).unwrap_err();
        assert_refused(&e, Reason::BadRequest, "the limit is 300 s");
        let e = fresh(&r, T0 + 3600 * 1_000_000_000).unwrap_err();
        assert_refused(&e, Reason::BadRequest, "signed 3600 s from");
        // Signed in the future (the node's clock is ahead).
        let e = fresh(&r, T0 - skew - 1).unwrap_err();
        assert_refused(&e, Reason::BadRequest, "check the node's clock");
        // No time at all, and the largest.
        for t in [0, u64::MAX] {
            let r = ArtifactRequest {
                time_unix_nano: t,
                ..valid()
            };
            assert_refused(&fresh(&r, T0).unwrap_err(), Reason::BadRequest, "s from");
        }
    }

    // ------------------------------------------------ the fuzz corpus

    /// `fuzz/corpus/authority_request/`.
    fn corpus_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/authority_request")
    }

    /// `check`'s answer, when the input decodes as the message tried.
    type IfDecoded = Option<Result<Checked, Refusal>>;

    /// What the `authority_request` fuzz target does with one input; the
    /// result of `check` on it as an encoded `NodeRequest`, and on it as an
    /// `ArtifactRequest` signed by the enrolled key (when it decodes).
    fn replay(data: &[u8]) -> (IfDecoded, IfDecoded) {
        let nodes = nodes();
        let key = node_key();
        let as_node_request = NodeRequest::decode(data).ok().map(|nr| check(&nr, &nodes));
        // The raw bytes as the request field, signed and not.
        let raw = NodeRequest {
            request: data.to_vec(),
            signature: key.sign_bytes(&relay::request_message(data)).to_vec(),
            wait_ms: 0,
        };
        let _ = check(&raw, &nodes);
        let _ = check(
            &NodeRequest {
                signature: vec![],
                ..raw
            },
            &nodes,
        );
        let as_request = ArtifactRequest::decode(data).ok().map(|mut r| {
            let _ = fresh(&r, T0);
            let _ = check(&relay::sign_request(&key, &r, 0), &nodes);
            r.node = NODE.to_owned();
            check(&relay::sign_request(&key, &r, 0), &nodes)
        });
        (as_node_request, as_request)
    }

    /// The committed seeds, by file name: signed `NodeRequest`s (`*.node`)
    /// and bare `ArtifactRequest`s (`*.request`), which the target signs.
    fn seeds() -> Vec<(&'static str, Vec<u8>)> {
        let mut digest_mismatch = valid();
        digest_mismatch.evidence[0].content.push(b'!');
        let unknown_node = ArtifactRequest {
            node: "node-b".into(),
            ..valid()
        };
        let mut forged = signed(&valid());
        forged.signature[0] ^= 0x80;
        let bare = ArtifactRequest {
            exec_id: String::new(),
            evidence: vec![],
            operation_key: String::new(),
            ..valid()
        };
        let bad_capability = ArtifactRequest {
            capabilities: vec![r#"{"exec":{"path":"/bin/x"}} trailing"#.into()],
            ..valid()
        };
        vec![
            ("valid.node", signed(&valid()).encode_to_vec()),
            ("unknown-node.node", signed(&unknown_node).encode_to_vec()),
            ("bad-signature.node", forged.encode_to_vec()),
            (
                "digest-mismatch.node",
                signed(&digest_mismatch).encode_to_vec(),
            ),
            ("valid.request", valid().encode_to_vec()),
            ("minimal.request", bare.encode_to_vec()),
            ("bad-capability.request", bad_capability.encode_to_vec()),
        ]
    }

    /// The seeds are what [`seeds`] makes (`ACELOGIC_REGEN_VECTORS=1`
    /// writes them), and each lands where its name says.
    #[test]
    fn fuzz_corpus_seeds_are_current_and_land_where_named() {
        let dir = corpus_dir();
        let regen = std::env::var_os("ACELOGIC_REGEN_VECTORS").is_some();
        if regen {
            std::fs::create_dir_all(&dir).unwrap();
        }
        for (name, bytes) in seeds() {
            let path = dir.join(name);
            if regen {
                std::fs::write(&path, &bytes).unwrap();
            }
            let committed = std::fs::read(&path).unwrap_or_else(|e| {
                panic!(
                    "{}: {e}; write the seeds with ACELOGIC_REGEN_VECTORS=1 cargo test -p \
                     acelogic-authority --lib request::tests",
                    path.display()
                )
            });
            assert!(
                committed == bytes,
                "{} is stale; write it again with ACELOGIC_REGEN_VECTORS=1",
                path.display()
            );
            let (as_node_request, as_request) = replay(&bytes);
            let code = |r: IfDecoded| {
                r.unwrap_or_else(|| panic!("{name} does not decode"))
                    .err()
                    .map(|e| e.code)
            };
            match name {
                "valid.node" => assert_eq!(code(as_node_request), None),
                "unknown-node.node" => {
                    assert_eq!(code(as_node_request), Some(Reason::UnknownNode));
                }
                "bad-signature.node" => {
                    assert_eq!(code(as_node_request), Some(Reason::BadNodeSignature));
                }
                "digest-mismatch.node" => {
                    assert_eq!(code(as_node_request), Some(Reason::DigestMismatch));
                }
                "valid.request" | "minimal.request" => assert_eq!(code(as_request), None),
                "bad-capability.request" => {
                    assert_eq!(code(as_request), Some(Reason::BadValue));
                }
                other => panic!("no expectation for seed {other}"),
            }
        }
    }

    /// Every file of the corpus (the seeds and whatever fuzzing added)
    /// goes through the target's steps without a panic: the stable
    /// toolchain's half of fuzzing.
    #[test]
    fn fuzz_corpus_replays_without_panic() {
        let dir = corpus_dir();
        let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        let mut count = 0;
        for entry in entries {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            let _ = replay(&bytes);
            count += 1;
        }
        assert!(
            count >= seeds().len(),
            "only {count} files in {}",
            dir.display()
        );
    }
}
