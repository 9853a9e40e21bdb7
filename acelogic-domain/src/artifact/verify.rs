//! From envelope bytes to a verified artifact: structure, payload, then
//! signatures against the trust store. No clock, policy or node state:
//! the engine checks those on the [`Verified`] result.

use std::collections::BTreeMap;

use ed25519_dalek::Signature as EdSignature;
use sha2::{Digest as _, Sha256};

use super::{
    ArtifactError,
    envelope::Envelope,
    payload::Artifact,
    trust::{KeyId, Role, TrustStore},
};

/// An artifact whose issuer signature verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub artifact: Artifact,
    /// SHA-256 of the envelope bytes as received: the artifact's identity
    /// in lineage records.
    pub envelope_sha256: [u8; 32],
    /// The key that signed for `artifact.issuer`.
    pub issuer_key: KeyId,
    /// Distinct approver names with a valid signature, sorted by name.
    pub approvers: Vec<Approval>,
    /// Signatures that did not count, each with why, in envelope order.
    pub ignored: Vec<IgnoredSignature>,
}

/// A valid approver signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approval {
    pub name: String,
    pub key_id: KeyId,
}

/// A signature that did not count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IgnoredSignature {
    /// As written in the envelope.
    pub keyid: String,
    pub reason: IgnoredReason,
}

/// Why a signature did not count. None of these rejects the artifact: an
/// untrusted co-signature adds nothing, it does not taint the rest.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IgnoredReason {
    /// The keyid is not in the trust store (not verified).
    UnknownKey,
    /// The key is revoked (not verified).
    RevokedKey,
    /// A valid issuer-role signature for another name than the payload's
    /// issuer.
    OtherIssuer,
    /// A valid approver-role signature under the issuer's own name: an
    /// authority does not approve its own artifacts.
    SelfApproval,
    /// A second valid signature for a name already counted (rotation
    /// overlap); the first in envelope order counts.
    Repeated,
}

impl IgnoredReason {
    /// Stable code for lineage records.
    #[must_use]
    pub fn code(self) -> &'static str {
        match self {
            Self::UnknownKey => "unknown-key",
            Self::RevokedKey => "revoked-key",
            Self::OtherIssuer => "other-issuer",
            Self::SelfApproval => "self-approval",
            Self::Repeated => "repeated",
        }
    }
}

/// Verifies an envelope against `trust`. Every structural or payload
/// problem and every signature by a trusted key that does not verify is an
/// error; signatures by unknown or revoked keys are listed in
/// [`Verified::ignored`].
pub fn verify(envelope_json: &[u8], trust: &TrustStore) -> Result<Verified, ArtifactError> {
    let envelope = Envelope::from_json(envelope_json)?;
    let artifact = Artifact::from_json(&envelope.payload)?;
    let message = envelope.pae();

    let mut issuer_key = None;
    let mut revoked_issuer_key = None;
    let mut approvers: BTreeMap<String, KeyId> = BTreeMap::new();
    let mut ignored = Vec::new();
    for (index, s) in envelope.signatures.iter().enumerate() {
        let ignore = |reason| IgnoredSignature {
            keyid: s.keyid.clone(),
            reason,
        };
        let Ok(id) = s.keyid.parse::<KeyId>() else {
            ignored.push(ignore(IgnoredReason::UnknownKey));
            continue;
        };
        if trust.is_revoked(&id) {
            if let Some(k) = trust.key(&id)
                && k.role == Role::Issuer
                && k.name == artifact.issuer
            {
                revoked_issuer_key.get_or_insert(id);
            }
            ignored.push(ignore(IgnoredReason::RevokedKey));
            continue;
        }
        let Some(key) = trust.key(&id) else {
            ignored.push(ignore(IgnoredReason::UnknownKey));
            continue;
        };
        // A trusted key's signature that does not verify means the bytes
        // changed after signing: reject, never skip.
        let valid = <[u8; 64]>::try_from(s.sig.as_slice()).is_ok_and(|sig| {
            key.public_key
                .verify_strict(&message, &EdSignature::from_bytes(&sig))
                .is_ok()
        });
        if !valid {
            return Err(ArtifactError::BadSignature {
                index,
                keyid: s.keyid.clone(),
            });
        }
        let same_name = key.name == artifact.issuer;
        let reason = match (key.role, same_name) {
            (Role::Issuer, true) if issuer_key.is_none() => {
                issuer_key = Some(id);
                None
            }
            (Role::Issuer, true) => Some(IgnoredReason::Repeated),
            (Role::Issuer, false) => Some(IgnoredReason::OtherIssuer),
            (Role::Approver, true) => Some(IgnoredReason::SelfApproval),
            (Role::Approver, false) => match approvers.entry(key.name.to_string()) {
                std::collections::btree_map::Entry::Vacant(v) => {
                    v.insert(id);
                    None
                }
                std::collections::btree_map::Entry::Occupied(_) => Some(IgnoredReason::Repeated),
            },
            // A lineage key never counts for an artifact (a trust store
            // file cannot list one; this covers stores built in code).
            (Role::Lineage, _) => Some(IgnoredReason::UnknownKey),
        };
        if let Some(reason) = reason {
            ignored.push(ignore(reason));
        }
    }

    let Some(issuer_key) = issuer_key else {
        return Err(match revoked_issuer_key {
            Some(keyid) => ArtifactError::RevokedKey {
                issuer: artifact.issuer.to_string(),
                keyid: keyid.to_string(),
            },
            None => ArtifactError::NoIssuerSignature {
                issuer: artifact.issuer.to_string(),
            },
        });
    };
    Ok(Verified {
        artifact,
        envelope_sha256: Sha256::digest(envelope_json).into(),
        issuer_key,
        approvers: approvers
            .into_iter()
            .map(|(name, key_id)| Approval { name, key_id })
            .collect(),
        ignored,
    })
}
