//! The trust store: which Ed25519 keys may sign for which issuer or
//! approver name, and which keys are revoked. Loaded from
//! `policies/trust.yaml`:
//!
//! ```yaml
//! apiVersion: acelogic.dev/v1
//! kind: TrustStore
//! keys:
//!   - name: release-authority
//!     role: issuer                      # issuer | approver
//!     keyId: ed25519:0123456789abcdef   # must be the id derived from publicKey
//!     publicKey: <base64 of the 32-byte key>
//! revokedKeyIds: [ed25519:...]          # optional
//! ```
//!
//! Key ids are derived from the key (`ed25519:` + the first 16 hex digits
//! of its SHA-256), never chosen, so an id names exactly one key. Several
//! keys may share a name (rotation); name and role together are what a
//! signature speaks for.

use crate::reason::Reason;
use std::{
    collections::{BTreeMap, BTreeSet},
    fmt,
    path::Path,
    str::FromStr,
};

use base64::{Engine as _, engine::general_purpose::STANDARD};
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;
use sha2::{Digest as _, Sha256};

use super::{
    fields::{Name, shorten},
    yaml::{self, YamlError},
};

/// `apiVersion` of the trust store file.
pub(crate) const API_VERSION: &str = "acelogic.dev/v1";
/// `kind` of the trust store file.
pub(crate) const KIND: &str = "TrustStore";

/// A key id: `ed25519:` and the first 16 hex digits of SHA-256 over the
/// 32 public key bytes.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct KeyId([u8; 8]);

impl KeyId {
    const PREFIX: &str = "ed25519:";

    /// The id of `key`.
    #[must_use]
    pub fn of(key: &VerifyingKey) -> Self {
        let digest = Sha256::digest(key.as_bytes());
        let mut id = [0u8; 8];
        id.copy_from_slice(&digest[..8]);
        Self(id)
    }
}

impl FromStr for KeyId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut id = [0u8; 8];
        let ok = s.strip_prefix(Self::PREFIX).is_some_and(|h| {
            h.len() == 16
                && h.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
                && hex::decode_to_slice(h, &mut id).is_ok()
        });
        if ok {
            Ok(Self(id))
        } else {
            Err(format!(
                "key id {:?} is not ed25519: and 16 lowercase hex digits",
                shorten(s)
            ))
        }
    }
}

impl TryFrom<String> for KeyId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<KeyId> for String {
    fn from(id: KeyId) -> Self {
        id.to_string()
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", Self::PREFIX, hex::encode(self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

/// What a key's signature counts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Issues artifacts: the payload's `issuer` must have signed.
    Issuer,
    /// Co-signs artifacts a policy marks as needing human approval.
    Approver,
    /// Signs execution lineage (a node's batches, the collector's
    /// checkpoints), never artifacts: a trust store refuses such a key.
    Lineage,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Issuer => "issuer",
            Self::Approver => "approver",
            Self::Lineage => "lineage",
        })
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "issuer" => Ok(Self::Issuer),
            "approver" => Ok(Self::Approver),
            "lineage" => Ok(Self::Lineage),
            _ => Err(format!(
                "role {:?} is not issuer, approver or lineage",
                shorten(s)
            )),
        }
    }
}

/// A public key the store trusts, with the name and role it signs for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustedKey {
    pub name: Name,
    pub role: Role,
    pub key_id: KeyId,
    pub public_key: VerifyingKey,
}

impl TrustedKey {
    #[must_use]
    pub fn new(name: Name, role: Role, public_key: VerifyingKey) -> Self {
        Self {
            name,
            role,
            key_id: KeyId::of(&public_key),
            public_key,
        }
    }

    /// The entry for the `keys:` list of a trust store file.
    #[must_use]
    pub fn to_yaml_item(&self) -> String {
        format!(
            "  - name: {}\n    role: {}\n    keyId: {}\n    publicKey: {}\n",
            self.name,
            self.role,
            self.key_id,
            STANDARD.encode(self.public_key.as_bytes())
        )
    }
}

/// A trust store file that could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    #[error("{location}: {message}")]
    Yaml {
        code: Reason,
        location: String,
        message: String,
    },
    #[error("{location}: apiVersion/kind must be {API_VERSION}/{KIND}, found {found}")]
    WrongKind { location: String, found: String },
    #[error("{location}: {why}")]
    BadKey { location: String, why: String },
    #[error(
        "{location}: keyId {written} does not match publicKey, whose id is {derived}; \
         copy the entry from `acelogicctl key` output rather than editing ids by hand"
    )]
    KeyIdMismatch {
        location: String,
        written: String,
        derived: KeyId,
    },
    #[error("{location}: key {key_id} is listed twice; list each key once")]
    DuplicateKeyId { location: String, key_id: KeyId },
    #[error("{path}: {why}")]
    Io { path: String, why: String },
}

impl TrustError {
    /// Stable reason code (see the table in the module docs).
    #[must_use]
    pub fn code(&self) -> Reason {
        match self {
            Self::Yaml { code, .. } => *code,
            Self::WrongKind { .. } => Reason::WrongKind,
            Self::BadKey { .. } => Reason::BadKey,
            Self::KeyIdMismatch { .. } => Reason::KeyIdMismatch,
            Self::DuplicateKeyId { .. } => Reason::DuplicateKeyId,
            Self::Io { .. } => Reason::Io,
        }
    }
}

impl From<YamlError> for TrustError {
    fn from(e: YamlError) -> Self {
        Self::Yaml {
            code: e.code,
            location: e.location,
            message: e.message,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct TrustFile {
    api_version: Spanned<String>,
    kind: String,
    keys: Vec<KeyEntry>,
    #[serde(default)]
    revoked_key_ids: Vec<Spanned<KeyId>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct KeyEntry {
    name: Name,
    role: Role,
    key_id: Spanned<String>,
    public_key: Spanned<String>,
}

/// Keys by id, and revoked ids. Immutable once loaded: a reload builds a
/// new store and swaps it in whole.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustStore {
    keys: BTreeMap<KeyId, TrustedKey>,
    revoked: BTreeSet<KeyId>,
}

impl TrustStore {
    /// A store from keys built in code (tests, tools).
    pub fn new(
        keys: impl IntoIterator<Item = TrustedKey>,
        revoked: impl IntoIterator<Item = KeyId>,
    ) -> Result<Self, TrustError> {
        let mut store = Self {
            keys: BTreeMap::new(),
            revoked: revoked.into_iter().collect(),
        };
        for key in keys {
            let key_id = key.key_id;
            if store.keys.insert(key_id, key).is_some() {
                return Err(TrustError::DuplicateKeyId {
                    location: "trust store".to_owned(),
                    key_id,
                });
            }
        }
        Ok(store)
    }

    /// Reads and checks a trust store file.
    pub fn load(path: &Path) -> Result<Self, TrustError> {
        let shown = path.display().to_string();
        let io = |e: std::io::Error| TrustError::Io {
            path: shown.clone(),
            why: format!("{e}; check the daemon's --trust path"),
        };
        let meta = std::fs::metadata(path).map_err(io)?;
        if meta.len() > yaml::MAX_YAML_BYTES as u64 {
            return Err(YamlError {
                code: Reason::TooLarge,
                location: shown,
                message: format!(
                    "{} bytes, over the {}-byte limit",
                    meta.len(),
                    yaml::MAX_YAML_BYTES
                ),
            }
            .into());
        }
        let text = std::fs::read_to_string(path).map_err(io)?;
        Self::from_yaml(&text, &shown)
    }

    /// Parses a trust store; `origin` names the file in messages.
    pub fn from_yaml(text: &str, origin: &str) -> Result<Self, TrustError> {
        let file: TrustFile = yaml::parse(text, origin)?;
        let loc = |s: &serde_saphyr::Location| yaml::at(origin, s.line(), s.column());
        if file.api_version.value != API_VERSION || file.kind != KIND {
            return Err(TrustError::WrongKind {
                location: loc(&file.api_version.referenced),
                found: format!(
                    "{}/{}",
                    shorten(&file.api_version.value),
                    shorten(&file.kind)
                ),
            });
        }
        let mut keys = BTreeMap::new();
        for entry in file.keys {
            let location = loc(&entry.public_key.referenced);
            let bytes: [u8; 32] = STANDARD
                .decode(&entry.public_key.value)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| TrustError::BadKey {
                    location: location.clone(),
                    why: "publicKey is not standard base64 of 32 bytes".to_owned(),
                })?;
            let public_key = VerifyingKey::from_bytes(&bytes).map_err(|_| TrustError::BadKey {
                location: location.clone(),
                why: "publicKey is not a valid Ed25519 point".to_owned(),
            })?;
            if public_key.is_weak() {
                return Err(TrustError::BadKey {
                    location,
                    why: "publicKey is a small-order (weak) point; no real key is".to_owned(),
                });
            }
            if entry.role == Role::Lineage {
                return Err(TrustError::BadKey {
                    location,
                    why: "role lineage signs node batches and collector checkpoints, \
                          never artifacts; list only issuer and approver keys here"
                        .to_owned(),
                });
            }
            let key = TrustedKey::new(entry.name, entry.role, public_key);
            if entry.key_id.value != key.key_id.to_string() {
                return Err(TrustError::KeyIdMismatch {
                    location: loc(&entry.key_id.referenced),
                    written: shorten(&entry.key_id.value),
                    derived: key.key_id,
                });
            }
            let key_id = key.key_id;
            if keys.insert(key_id, key).is_some() {
                return Err(TrustError::DuplicateKeyId {
                    location: loc(&entry.key_id.referenced),
                    key_id,
                });
            }
        }
        Ok(Self {
            keys,
            revoked: file.revoked_key_ids.into_iter().map(|s| s.value).collect(),
        })
    }

    /// The file form of this store (what [`Self::from_yaml`] reads).
    #[must_use]
    pub fn to_yaml(&self) -> String {
        let mut out = format!("apiVersion: {API_VERSION}\nkind: {KIND}\nkeys:\n");
        for key in self.keys.values() {
            out.push_str(&key.to_yaml_item());
        }
        if !self.revoked.is_empty() {
            out.push_str("revokedKeyIds:\n");
            for id in &self.revoked {
                out.push_str(&format!("  - {id}\n"));
            }
        }
        out
    }

    #[must_use]
    pub fn key(&self, id: &KeyId) -> Option<&TrustedKey> {
        self.keys.get(id)
    }

    #[must_use]
    pub fn is_revoked(&self, id: &KeyId) -> bool {
        self.revoked.contains(id)
    }

    pub fn keys(&self) -> impl Iterator<Item = &TrustedKey> {
        self.keys.values()
    }

    pub fn revoked(&self) -> impl Iterator<Item = &KeyId> {
        self.revoked.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8) -> VerifyingKey {
        ed25519_dalek::SigningKey::from_bytes(&[seed; 32]).verifying_key()
    }

    fn entry(name: &str, role: &str, k: &VerifyingKey) -> String {
        format!(
            "  - name: {name}\n    role: {role}\n    keyId: {}\n    publicKey: {}\n",
            KeyId::of(k),
            STANDARD.encode(k.as_bytes())
        )
    }

    const HEAD: &str = "apiVersion: acelogic.dev/v1\nkind: TrustStore\nkeys:\n";

    #[test]
    fn key_ids_are_derived() {
        let id = KeyId::of(&key(1));
        let s = id.to_string();
        assert!(s.starts_with("ed25519:") && s.len() == 24, "{s}");
        assert_eq!(s.parse::<KeyId>().unwrap(), id);
        for bad in [
            "ed25519:0123",
            "ED25519:0123456789abcdef",
            "ed25519:0123456789ABCDEF",
            "x",
        ] {
            assert!(bad.parse::<KeyId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn loads_and_round_trips() {
        let text = format!(
            "{HEAD}{}{}revokedKeyIds: [{}]\n",
            entry("release-authority", "issuer", &key(1)),
            entry("alice", "approver", &key(2)),
            KeyId::of(&key(3))
        );
        let store = TrustStore::from_yaml(&text, "trust.yaml").unwrap();
        let k = store.key(&KeyId::of(&key(2))).unwrap();
        assert_eq!((k.name.as_str(), k.role), ("alice", Role::Approver));
        assert!(store.is_revoked(&KeyId::of(&key(3))));
        assert_eq!(TrustStore::from_yaml(&store.to_yaml(), "x").unwrap(), store);
    }

    #[test]
    fn rejections_have_codes_and_positions() {
        let k1 = entry("a", "issuer", &key(1));
        let wrong_id = k1.replace(
            &KeyId::of(&key(1)).to_string(),
            &KeyId::of(&key(2)).to_string(),
        );
        let cases = [
            (format!("{HEAD}{k1}{k1}"), "duplicate-keyid", "t.yaml:10:12"),
            (
                format!("{HEAD}{wrong_id}"),
                "key-id-mismatch",
                "t.yaml:6:12",
            ),
            (
                format!("{HEAD}{}", k1.replace("issuer", "admin")),
                "bad-value",
                "t.yaml:5:",
            ),
            (
                format!("{HEAD}{}", k1.replace("name: a", "name: A")),
                "bad-value",
                "t.yaml:4:",
            ),
            (
                format!("{HEAD}{k1}    extra: 1\n"),
                "unknown-field",
                "t.yaml:8:",
            ),
            (
                format!("{HEAD}  - name: a\n    role: issuer\n"),
                "missing-field",
                "t.yaml",
            ),
            (HEAD.replace("v1", "v2") + &k1, "wrong-kind", "t.yaml:1:13"),
            (
                format!("{HEAD}{}", k1.replace("publicKey: ", "publicKey: AA")),
                "bad-key",
                "t.yaml:7:",
            ),
            (
                format!("{HEAD}{k1}revokedKeyIds: [nope]\n"),
                "bad-value",
                "t.yaml:8:",
            ),
        ];
        for (text, code, location) in cases {
            let e = TrustStore::from_yaml(&text, "t.yaml").unwrap_err();
            assert_eq!(e.code(), code, "{e}");
            assert!(e.to_string().starts_with(location), "{e} (want {location})");
        }
        // A small-order point decodes but is not a key.
        let weak = STANDARD.encode([0u8; 32]);
        let text = format!(
            "{HEAD}  - name: a\n    role: issuer\n    keyId: ed25519:0000000000000000\n    publicKey: {weak}\n"
        );
        assert_eq!(
            TrustStore::from_yaml(&text, "t").unwrap_err().code(),
            "bad-key"
        );
    }

    #[test]
    fn lineage_keys_cannot_sign_artifacts() {
        let text = format!("{HEAD}{}", entry("node-a", "lineage", &key(5)));
        let e = TrustStore::from_yaml(&text, "t.yaml").unwrap_err();
        assert_eq!(e.code(), "bad-key", "{e}");
        assert!(e.to_string().contains("never artifacts"), "{e}");
    }
}
