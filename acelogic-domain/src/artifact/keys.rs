//! Signing keys and their files.
//!
//! A key file is one small JSON object, written once with mode 0600:
//!
//! ```json
//! {"name":"release-authority","role":"issuer","keyId":"ed25519:0123456789abcdef","secretKey":"<base64 of the 32-byte seed>"}
//! ```
//!
//! JSON rather than YAML: the file is written by a tool, never edited, and
//! read with the same strict parser as artifacts. `keyId` is checked
//! against the key on read, so a file whose parts were mixed up is refused.

use crate::reason::Reason;
use std::{
    fmt,
    fs::{File, OpenOptions},
    io::{Read as _, Write as _},
    os::unix::fs::{MetadataExt as _, OpenOptionsExt as _},
    path::Path,
};

use base64::{Engine as _, engine::general_purpose::STANDARD};
use ed25519_dalek::{Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};

use super::{
    fields::Name,
    trust::{KeyId, Role, TrustedKey},
};

/// Largest key file read; a real one is about 150 bytes.
const MAX_KEY_FILE_BYTES: u64 = 4096;

/// A key file that could not be written or used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyFileError {
    #[error("{path}: {why}")]
    Io { path: String, why: String },
    #[error(
        "{path} already exists; a key file is never overwritten (choose another path or remove the old key deliberately)"
    )]
    Exists { path: String },
    #[error(
        "{path} is readable or writable by group or others (mode {mode:04o}); \
         run `chmod 600 {path}` and check who may have copied it"
    )]
    Insecure { path: String, mode: u32 },
    #[error("{path}: {why}")]
    Bad { path: String, why: String },
    #[error("{0}")]
    BadName(String),
    #[error("no random bytes from the operating system: {0}")]
    Random(String),
}

impl KeyFileError {
    /// Stable reason code (see the table in the module docs).
    #[must_use]
    pub fn code(&self) -> Reason {
        match self {
            Self::Io { .. } => Reason::Io,
            Self::Exists { .. } => Reason::KeyFileExists,
            Self::Insecure { .. } => Reason::InsecureKeyFile,
            Self::Bad { .. } => Reason::BadKeyFile,
            Self::BadName(_) => Reason::BadValue,
            Self::Random(_) => Reason::NoRandomness,
        }
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct KeyFile {
    name: Name,
    role: Role,
    key_id: KeyId,
    secret_key: String,
}

/// An Ed25519 signing key with the name and role it signs for. `Debug`
/// never shows the secret.
#[derive(Clone)]
pub struct SecretKey {
    name: Name,
    role: Role,
    signing: SigningKey,
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretKey")
            .field("name", &self.name)
            .field("role", &self.role)
            .field("key_id", &self.key_id())
            .finish_non_exhaustive()
    }
}

impl SecretKey {
    /// A new key from 32 bytes of operating system randomness.
    pub fn generate(name: &str, role: Role) -> Result<Self, KeyFileError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| KeyFileError::Random(e.to_string()))?;
        let key = Self::from_seed(name, role, seed);
        seed.fill(0);
        key
    }

    /// A key from a known seed. Only for test vectors and tools that
    /// derive keys; a real key comes from [`Self::generate`].
    pub fn from_seed(name: &str, role: Role, seed: [u8; 32]) -> Result<Self, KeyFileError> {
        Ok(Self {
            name: name.parse().map_err(KeyFileError::BadName)?,
            role,
            signing: SigningKey::from_bytes(&seed),
        })
    }

    #[must_use]
    pub fn name(&self) -> &Name {
        &self.name
    }

    #[must_use]
    pub fn role(&self) -> Role {
        self.role
    }

    #[must_use]
    pub fn public(&self) -> VerifyingKey {
        self.signing.verifying_key()
    }

    #[must_use]
    pub fn key_id(&self) -> KeyId {
        KeyId::of(&self.public())
    }

    /// The public half as the trust store holds it.
    #[must_use]
    pub fn trusted(&self) -> TrustedKey {
        TrustedKey::new(self.name.clone(), self.role, self.public())
    }

    /// The item to paste under `keys:` in the trust store.
    #[must_use]
    pub fn trust_entry_yaml(&self) -> String {
        self.trusted().to_yaml_item()
    }

    /// Signs raw bytes (lineage Hellos and batches; artifacts sign PAE).
    #[must_use]
    pub fn sign_bytes(&self, message: &[u8]) -> [u8; 64] {
        self.signing.sign(message).to_bytes()
    }

    pub(crate) fn file_json(&self) -> Vec<u8> {
        let file = KeyFile {
            name: self.name.clone(),
            role: self.role,
            key_id: self.key_id(),
            secret_key: STANDARD.encode(self.signing.to_bytes()),
        };
        let mut out = serde_json::to_vec(&file).expect("a struct of strings always serializes");
        out.push(b'\n');
        out
    }

    /// Writes the key to a new file created with mode 0600 (the mode is
    /// set by `open`, so the secret is never readable by others, not even
    /// briefly). Refuses to overwrite anything.
    pub fn write_new(&self, path: &Path) -> Result<(), KeyFileError> {
        let shown = path.display().to_string();
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => KeyFileError::Exists {
                    path: shown.clone(),
                },
                _ => KeyFileError::Io {
                    path: shown.clone(),
                    why: e.to_string(),
                },
            })?;
        file.write_all(&self.file_json())
            .and_then(|()| file.sync_all())
            .map_err(|e| KeyFileError::Io {
                path: shown,
                why: e.to_string(),
            })
    }

    /// Reads a key file, refusing one that group or others can read or
    /// write (a leaked signing key is a forged artifact).
    pub fn read(path: &Path) -> Result<Self, KeyFileError> {
        let shown = path.display().to_string();
        let io = |e: std::io::Error| KeyFileError::Io {
            path: shown.clone(),
            why: e.to_string(),
        };
        let file = File::open(path).map_err(io)?;
        let meta = file.metadata().map_err(io)?;
        if !meta.is_file() {
            return Err(KeyFileError::Bad {
                path: shown,
                why: "not a regular file".to_owned(),
            });
        }
        let mode = meta.mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(KeyFileError::Insecure { path: shown, mode });
        }
        let mut text = Vec::new();
        file.take(MAX_KEY_FILE_BYTES + 1)
            .read_to_end(&mut text)
            .map_err(io)?;
        let bad = |why: String| KeyFileError::Bad {
            path: shown.clone(),
            why,
        };
        if text.len() as u64 > MAX_KEY_FILE_BYTES {
            return Err(bad("larger than a key file can be".to_owned()));
        }
        let parsed: KeyFile =
            serde_json::from_slice(&text).map_err(|e| bad(format!("not a key file: {e}")))?;
        let seed: [u8; 32] = STANDARD
            .decode(&parsed.secret_key)
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| bad("secretKey is not standard base64 of 32 bytes".to_owned()))?;
        let key = Self {
            name: parsed.name,
            role: parsed.role,
            signing: SigningKey::from_bytes(&seed),
        };
        if key.key_id() != parsed.key_id {
            return Err(bad(format!(
                "keyId {} does not match secretKey (whose id is {}); the file was altered",
                parsed.key_id,
                key.key_id()
            )));
        }
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    /// A fresh directory and a key path in it (not created). The directory
    /// is removed when the `TempDir` is dropped: keep it bound.
    fn tmp(name: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::Builder::new()
            .prefix(&format!("acelogic-keys-{name}-"))
            .tempdir()
            .unwrap();
        let path = dir.path().join("k.key");
        (dir, path)
    }

    #[test]
    fn write_read_round_trip_with_mode_0600() {
        let (_dir, path) = tmp("rt");
        let key = SecretKey::generate("release-authority", Role::Issuer).unwrap();
        key.write_new(&path).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let back = SecretKey::read(&path).unwrap();
        assert_eq!(
            (back.key_id(), back.role(), back.name()),
            (key.key_id(), Role::Issuer, key.name())
        );
        assert_eq!(key.write_new(&path).unwrap_err().code(), "key-file-exists");
        assert!(!format!("{key:?}").contains(&STANDARD.encode(key.signing.to_bytes())));
    }

    #[test]
    fn refuses_readable_or_altered_files() {
        let (_dir, path) = tmp("bad");
        let key = SecretKey::from_seed("alice", Role::Approver, [7; 32]).unwrap();
        key.write_new(&path).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        let e = SecretKey::read(&path).unwrap_err();
        assert_eq!(e.code(), "insecure-key-file");
        assert!(e.to_string().contains("chmod 600"), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let other = SecretKey::from_seed("alice", Role::Approver, [8; 32]).unwrap();
        std::fs::write(
            &path,
            text.replace(&key.key_id().to_string(), &other.key_id().to_string()),
        )
        .unwrap();
        assert_eq!(SecretKey::read(&path).unwrap_err().code(), "bad-key-file");
        std::fs::write(&path, text.replace("\"role\"", "\"rank\"")).unwrap();
        assert_eq!(SecretKey::read(&path).unwrap_err().code(), "bad-key-file");
        assert_eq!(
            SecretKey::read(&path.with_extension("none"))
                .unwrap_err()
                .code(),
            "io"
        );
        assert_eq!(
            SecretKey::generate("Alice", Role::Approver)
                .unwrap_err()
                .code(),
            "bad-value"
        );
    }

    #[test]
    fn trust_entry_parses_in_a_store() {
        let key = SecretKey::from_seed("alice", Role::Approver, [9; 32]).unwrap();
        let text = format!(
            "apiVersion: acelogic.dev/v1\nkind: TrustStore\nkeys:\n{}",
            key.trust_entry_yaml()
        );
        let store = super::super::TrustStore::from_yaml(&text, "t").unwrap();
        assert_eq!(store.key(&key.key_id()).unwrap().public_key, key.public());
    }
}
