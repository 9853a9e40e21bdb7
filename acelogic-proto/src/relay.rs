//! What a node and the authority agree on when a node relays a request:
//! the bytes each signature covers. Both ends build them here, so they
//! cannot drift apart.
//!
//! A node signs the encoded [`ArtifactRequest`] with its node key (the
//! key it signs lineage with, enrolled at the authority as at the
//! collector); an approver signs a denial with the key it approves with.
//! An approval needs no message of its own: it is the DSSE signature over
//! the artifact payload, and goes into the envelope as it is.

use acelogic_domain::artifact::SecretKey;
use prost::Message as _;

use crate::authority::{ArtifactRequest, NodeRequest};

/// Domain separation for a node's signature over a relayed request.
pub const REQUEST_CONTEXT: &[u8] = b"acelogic-authority-request-v1\0";
/// Domain separation for an approver's signature over a denial.
pub const DENY_CONTEXT: &[u8] = b"acelogic-authority-deny-v1\0";
/// Longest wait a node may ask of the authority in one call.
pub const MAX_WAIT_MS: u32 = 60_000;

/// The bytes a node signs for `request` (the encoded request).
#[must_use]
pub fn request_message(request: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(REQUEST_CONTEXT.len() + request.len());
    m.extend_from_slice(REQUEST_CONTEXT);
    m.extend_from_slice(request);
    m
}

/// The bytes an approver signs to deny `request_id` for `reason`.
#[must_use]
pub fn deny_message(request_id: &str, reason: &str) -> Vec<u8> {
    let mut m = Vec::with_capacity(DENY_CONTEXT.len() + request_id.len() + reason.len() + 1);
    m.extend_from_slice(DENY_CONTEXT);
    m.extend_from_slice(request_id.as_bytes());
    m.push(0);
    m.extend_from_slice(reason.as_bytes());
    m
}

/// Encodes and signs `request` with the node key: what the node sends
/// (and sends again, unchanged, to wait for the answer).
#[must_use]
pub fn sign_request(key: &SecretKey, request: &ArtifactRequest, wait_ms: u32) -> NodeRequest {
    let bytes = request.encode_to_vec();
    let signature = key.sign_bytes(&request_message(&bytes)).to_vec();
    NodeRequest {
        request: bytes,
        signature,
        wait_ms: wait_ms.min(MAX_WAIT_MS),
    }
}
