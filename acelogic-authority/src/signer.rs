//! Who signs as the issuer. The authority holds the issuer key and no
//! other: approvers sign where they are, with their own keys. Signing
//! sits behind [`Signer`] so an external signer (a KMS, an HSM) can
//! replace the key file without touching the rest.

use std::path::Path;

use acelogic_domain::artifact::{KeyFileError, KeyId, Role, SecretKey};

/// Why the issuer could not sign.
#[derive(Debug, thiserror::Error)]
#[error("the issuer signer failed: {0}")]
pub struct SignError(pub String);

/// Signs as one issuer.
pub trait Signer: Send + Sync + std::fmt::Debug {
    /// The trust-store name the signatures are for.
    fn name(&self) -> &str;
    fn key_id(&self) -> KeyId;
    /// An Ed25519 signature over `message`.
    fn sign(&self, message: &[u8]) -> Result<[u8; 64], SignError>;
}

/// The issuer key in a file (mode 0600, as `acelogicctl keygen` writes
/// it; a file others may read is refused).
#[derive(Debug)]
pub struct KeyFileSigner(SecretKey);

impl KeyFileSigner {
    /// Reads the key; it must be an issuer key.
    pub fn open(path: &Path) -> Result<Self, KeyFileError> {
        let key = SecretKey::read(path)?;
        if key.role() != Role::Issuer {
            return Err(KeyFileError::Bad {
                path: path.display().to_string(),
                why: format!(
                    "{} is a key of role {:?}; the authority signs with an issuer key",
                    key.name(),
                    key.role()
                ),
            });
        }
        Ok(Self(key))
    }
}

impl Signer for KeyFileSigner {
    fn name(&self) -> &str {
        self.0.name().as_str()
    }
    fn key_id(&self) -> KeyId {
        self.0.key_id()
    }
    fn sign(&self, message: &[u8]) -> Result<[u8; 64], SignError> {
        Ok(self.0.sign_bytes(message))
    }
}
