//! Why an artifact was refused. Every variant names the field (a JSON path
//! from `envelope` or `payload`) and carries a stable [`ArtifactError::code`]
//! that lineage records and the API use as the reason.

use crate::reason::Reason;

/// An artifact that was refused, with where and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ArtifactError {
    #[error("{what} is {size} bytes, over the {limit}-byte limit; artifacts must stay small")]
    TooLarge {
        what: &'static str,
        size: usize,
        limit: usize,
    },
    #[error("{path}: {why}")]
    BadEncoding { path: String, why: String },
    #[error("{path}: not well-formed JSON: {why}")]
    BadJson { path: String, why: String },
    #[error("{path}: {why}; remove it (the format denies fields it does not know)")]
    UnknownField { path: String, why: String },
    #[error("{path}: {why}")]
    MissingField { path: String, why: String },
    #[error("{path}: {why}; a field may appear once")]
    DuplicateField { path: String, why: String },
    #[error(
        "envelope.payloadType is {found:?}, expected {expected:?}: this is not an ACELOGIC artifact",
        expected = super::PAYLOAD_TYPE
    )]
    BadPayloadType { found: String },
    #[error("payload.version is {found}; this agent reads version 1 artifacts only")]
    BadVersion { found: String },
    #[error("{path}: {why}")]
    BadValue { path: String, why: String },
    #[error("{path}: {why}")]
    BadTimeWindow { path: String, why: String },
    #[error("envelope.signatures is empty; an artifact needs at least its issuer's signature")]
    NoSignatures,
    #[error("envelope.signatures has {count} entries; at most {max} are allowed", max = super::MAX_SIGNATURES)]
    TooManySignatures { count: usize },
    #[error("envelope.signatures[{index}]: keyid {keyid:?} signs twice; each key signs once")]
    DuplicateKeyId { index: usize, keyid: String },
    #[error(
        "envelope.signatures[{index}]: the signature by trusted key {keyid} does not verify: \
         payload or signature was altered after signing; obtain a freshly signed artifact"
    )]
    BadSignature { index: usize, keyid: String },
    #[error(
        "payload.issuer: no valid signature from an issuer key named {issuer:?} in the trust \
         store; have the artifact signed by that authority's current key"
    )]
    NoIssuerSignature { issuer: String },
    #[error(
        "payload.issuer: the only signature for issuer {issuer:?} is by revoked key {keyid}; \
         have the artifact re-signed with a current key"
    )]
    RevokedKey { issuer: String, keyid: String },
}

impl ArtifactError {
    /// The stable reason code (see the table in the module docs).
    #[must_use]
    pub fn code(&self) -> Reason {
        match self {
            Self::TooLarge { .. } => Reason::TooLarge,
            Self::BadEncoding { .. } => Reason::BadEncoding,
            Self::BadJson { .. } => Reason::BadJson,
            Self::UnknownField { .. } => Reason::UnknownField,
            Self::MissingField { .. } => Reason::MissingField,
            Self::DuplicateField { .. } => Reason::DuplicateField,
            Self::BadPayloadType { .. } => Reason::BadPayloadType,
            Self::BadVersion { .. } => Reason::BadVersion,
            Self::BadValue { .. } => Reason::BadValue,
            Self::BadTimeWindow { .. } => Reason::BadTimeWindow,
            Self::NoSignatures => Reason::NoSignatures,
            Self::TooManySignatures { .. } => Reason::TooManySignatures,
            Self::DuplicateKeyId { .. } => Reason::DuplicateKeyId,
            Self::BadSignature { .. } => Reason::BadSignature,
            Self::NoIssuerSignature { .. } => Reason::NoIssuerSignature,
            Self::RevokedKey { .. } => Reason::RevokedKey,
        }
    }

    pub(crate) fn bad_value(path: impl Into<String>, why: impl Into<String>) -> Self {
        Self::BadValue {
            path: path.into(),
            why: why.into(),
        }
    }

    /// Maps a strict serde_json parse of the document at `root`
    /// (`envelope` or `payload`) to a typed rejection with the field path.
    pub(crate) fn from_json(
        root: &str,
        err: &serde_path_to_error::Error<serde_json::Error>,
    ) -> Self {
        let path = join_path(root, &err.path().to_string());
        let inner = err.inner();
        let why = inner.to_string();
        match inner.classify() {
            serde_json::error::Category::Syntax | serde_json::error::Category::Eof => {
                Self::BadJson { path, why }
            }
            serde_json::error::Category::Io => Self::BadJson { path, why },
            serde_json::error::Category::Data => {
                // serde's derive spells these three messages; they are
                // stable wording in serde::de::Error's default methods.
                if why.starts_with("unknown field") {
                    Self::UnknownField { path, why }
                } else if why.starts_with("missing field") {
                    Self::MissingField { path, why }
                } else if why.starts_with("duplicate field") {
                    Self::DuplicateField { path, why }
                } else {
                    Self::BadValue { path, why }
                }
            }
        }
    }
}

/// `payload` + `capabilities[2].connect.ports` ->
/// `payload.capabilities[2].connect.ports`; serde_path_to_error writes the
/// root as `.`.
fn join_path(root: &str, path: &str) -> String {
    if path == "." || path.is_empty() {
        root.to_owned()
    } else {
        format!("{root}.{path}")
    }
}
