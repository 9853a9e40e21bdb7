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
