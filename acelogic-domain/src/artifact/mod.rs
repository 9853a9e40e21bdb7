//! Signed authorization artifacts: the only way a governed workload gets
//! an action beyond its baseline.
//!
//! An artifact is a DSSE envelope (`{"payloadType", "payload",
//! "signatures": [{"keyid", "sig"}]}`) whose payload is an [`Artifact`]
//! (JSON) and whose signatures are Ed25519 over
//! `PAE(payloadType, payload)`, checked with `verify_strict`. The issuer
//! named in the payload must have signed with a current key of role
//! `issuer`; approvers co-sign with keys of role `approver`. [`verify`]
//! does all of that offline against a [`TrustStore`]; the engine then
//! checks time, audience, subject, policy and single use on the result.
//!
//! Limits are part of the format: envelope ≤ 64 KiB, payload ≤ 32 KiB,
//! 1–8 signatures, keyid ≤ 64 bytes, 1–32 capabilities, validity ≤ 24 h.
//!
//! # Reason codes
//!
//! Stable kebab-case codes, used as the reason in lineage records and the
//! API. [`ArtifactError::code`] (verification, signing):
//!
//! | code | meaning |
//! | --- | --- |
//! | `too-large` | envelope over 64 KiB or payload over 32 KiB |
//! | `bad-encoding` | not UTF-8, or not standard padded base64 |
//! | `bad-json` | not well-formed JSON, or data after the object |
//! | `unknown-field` | a field the format does not define (envelope or payload) |
//! | `missing-field` | a required field is absent |
//! | `duplicate-field` | a field appears twice in one object |
//! | `bad-payload-type` | `payloadType` is not `application/vnd.acelogic.artifact+json` |
//! | `bad-version` | payload `version` is not 1 |
//! | `bad-value` | a value is malformed: name, id, path, port, host, timestamp, keyid, counts, charsets |
//! | `bad-time-window` | `expires` not after `notBefore`, or window over 24 h |
//! | `no-signatures` | the envelope has no signature |
//! | `too-many-signatures` | more than 8 signatures |
//! | `duplicate-keyid` | one keyid signs twice |
//! | `bad-signature` | a trusted, non-revoked key's signature does not verify (tampering) |
//! | `no-issuer-signature` | no valid signature by a current issuer key with the payload's issuer name |
//! | `revoked-key` | the only signature for the issuer is by a revoked key |
//!
//! Signatures that do not count are not errors; [`IgnoredReason::code`]:
//! `unknown-key`, `revoked-key`, `other-issuer`, `self-approval`,
//! `repeated`.
//!
//! [`TrustError::code`] (trust store file): `bad-yaml`, `unknown-field`,
//! `missing-field`, `duplicate-field`, `bad-value`, `too-large`,
//! `wrong-kind` (apiVersion/kind), `bad-key` (public key not a usable
//! Ed25519 key), `key-id-mismatch` (keyId is not derived from publicKey),
//! `duplicate-keyid`, `io`.
//!
//! [`KeyFileError::code`] (key files): `io`, `key-file-exists`,
//! `insecure-key-file` (group/other may read), `bad-key-file`,
//! `bad-value` (name), `no-randomness`.
//!
//! [`RequestError::code`] (sign requests): the YAML codes above,
//! `bad-time-window` (ttl / notBefore / expires), any [`ArtifactError`]
//! code for the built payload, `io`, `no-randomness`.

mod envelope;
mod error;
mod fields;
mod keys;
mod payload;
mod request;
mod trust;
mod verify;
pub mod yaml;

#[cfg(test)]
mod sweep;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod vectors;

pub use envelope::{Envelope, Signature, cosign, pae, sign};
pub use error::ArtifactError;
pub use fields::{ArtifactId, Name, format_timestamp, parse_timestamp};
pub use keys::{KeyFileError, SecretKey};
pub use payload::{Artifact, MAX_CAPABILITIES, MAX_WINDOW, Subject, VERSION};
pub use request::{RequestError, build_payload, build_payload_from_file};
pub use trust::{KeyId, Role, TrustError, TrustStore, TrustedKey};
pub use verify::{Approval, IgnoredReason, IgnoredSignature, Verified, verify};
pub use yaml::YamlError;

/// The DSSE `payloadType` of every ACELOGIC artifact.
pub const PAYLOAD_TYPE: &str = "application/vnd.acelogic.artifact+json";
/// Largest envelope accepted, in bytes.
pub const MAX_ENVELOPE_BYTES: usize = 64 * 1024;
/// Largest decoded payload accepted, in bytes.
pub const MAX_PAYLOAD_BYTES: usize = 32 * 1024;
/// Most signatures one envelope may carry.
pub const MAX_SIGNATURES: usize = 8;
/// Longest keyid accepted in an envelope.
pub const MAX_KEYID_BYTES: usize = 64;
