//! The DSSE envelope: payload bytes, their type, and signatures over
//! `PAE(payloadType, payload)`. Signing the exact bytes (no JSON
//! canonicalization) means what a verifier parses is byte for byte what
//! the signers saw.

use std::collections::BTreeSet;

use base64::{Engine as _, engine::general_purpose::STANDARD};
use serde::{Deserialize, Serialize};

use super::{
    ArtifactError, MAX_ENVELOPE_BYTES, MAX_KEYID_BYTES, MAX_PAYLOAD_BYTES, MAX_SIGNATURES,
    PAYLOAD_TYPE, keys::SecretKey, payload::Artifact,
};

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct WireEnvelope {
    payload_type: String,
    payload: String,
    signatures: Vec<WireSignature>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireSignature {
    keyid: String,
    sig: String,
}

/// A decoded envelope that passed the structural checks (sizes, payload
/// type, signature count, keyid syntax, no duplicate keyids, base64). Its
/// signatures are not verified yet: that needs a trust store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub payload_type: String,
    /// The exact signed bytes.
    pub payload: Vec<u8>,
    pub signatures: Vec<Signature>,
}

/// One signature as it appears in the envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// As written by the signer; names a trust store key when it is one.
    pub keyid: String,
    pub sig: Vec<u8>,
}

/// DSSE pre-authentication encoding: `"DSSEv1" SP LEN(type) SP type SP
/// LEN(body) SP body`, lengths in ASCII decimal. It binds the type to the
/// body, so a signature cannot be replayed under another type.
#[must_use]
pub fn pae(payload_type: &str, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload_type.len() + payload.len() + 32);
    out.extend_from_slice(b"DSSEv1 ");
    out.extend_from_slice(payload_type.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload_type.as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload.len().to_string().as_bytes());
    out.push(b' ');
    out.extend_from_slice(payload);
    out
}

impl Envelope {
    /// Parses an envelope strictly and checks everything that does not
    /// need keys.
    pub fn from_json(bytes: &[u8]) -> Result<Self, ArtifactError> {
        if bytes.len() > MAX_ENVELOPE_BYTES {
            return Err(ArtifactError::TooLarge {
                what: "envelope",
                size: bytes.len(),
                limit: MAX_ENVELOPE_BYTES,
            });
        }
        if let Err(e) = std::str::from_utf8(bytes) {
            return Err(ArtifactError::BadEncoding {
                path: "envelope".to_owned(),
                why: format!("not UTF-8 ({e})"),
            });
        }
        let mut de = serde_json::Deserializer::from_slice(bytes);
        let wire: WireEnvelope = serde_path_to_error::deserialize(&mut de)
            .map_err(|e| ArtifactError::from_json("envelope", &e))?;
        de.end().map_err(|e| ArtifactError::BadJson {
            path: "envelope".to_owned(),
            why: e.to_string(),
        })?;

        if wire.payload_type != PAYLOAD_TYPE {
            return Err(ArtifactError::BadPayloadType {
                found: super::fields::shorten(&wire.payload_type),
            });
        }
        match wire.signatures.len() {
            0 => return Err(ArtifactError::NoSignatures),
            n if n > MAX_SIGNATURES => return Err(ArtifactError::TooManySignatures { count: n }),
            _ => {}
        }
        let mut seen = BTreeSet::new();
        for (index, s) in wire.signatures.iter().enumerate() {
            check_keyid(&s.keyid).map_err(|why| {
                ArtifactError::bad_value(format!("envelope.signatures[{index}].keyid"), why)
            })?;
            if !seen.insert(s.keyid.as_str()) {
                return Err(ArtifactError::DuplicateKeyId {
                    index,
                    keyid: s.keyid.clone(),
                });
            }
        }
        // Refuse before decoding: base64 of the largest payload.
        let max_encoded = MAX_PAYLOAD_BYTES.div_ceil(3) * 4;
        if wire.payload.len() > max_encoded {
            return Err(ArtifactError::TooLarge {
                what: "payload",
                size: wire.payload.len() / 4 * 3,
                limit: MAX_PAYLOAD_BYTES,
            });
        }
        let payload = decode("envelope.payload", &wire.payload)?;
        if payload.len() > MAX_PAYLOAD_BYTES {
            return Err(ArtifactError::TooLarge {
                what: "payload",
                size: payload.len(),
                limit: MAX_PAYLOAD_BYTES,
            });
        }
        let signatures = wire
            .signatures
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                Ok(Signature {
                    sig: decode(&format!("envelope.signatures[{i}].sig"), &s.sig)?,
                    keyid: s.keyid,
                })
            })
            .collect::<Result<_, ArtifactError>>()?;
        Ok(Self {
            payload_type: wire.payload_type,
            payload,
            signatures,
        })
    }

    /// The envelope as compact JSON, the form `verify` reads.
    #[must_use]
    pub fn to_json(&self) -> Vec<u8> {
        let wire = WireEnvelope {
            payload_type: self.payload_type.clone(),
            payload: STANDARD.encode(&self.payload),
            signatures: self
                .signatures
                .iter()
                .map(|s| WireSignature {
                    keyid: s.keyid.clone(),
                    sig: STANDARD.encode(&s.sig),
                })
                .collect(),
        };
        serde_json::to_vec(&wire).expect("a struct of strings always serializes")
    }

    /// The bytes every signature covers.
    #[must_use]
    pub fn pae(&self) -> Vec<u8> {
        pae(&self.payload_type, &self.payload)
    }
}

/// A keyid goes into lineage records and logs verbatim: keep it short and
/// printable.
fn check_keyid(keyid: &str) -> Result<(), String> {
    if keyid.is_empty() || keyid.len() > MAX_KEYID_BYTES {
        return Err(format!(
            "keyid is {} bytes; write 1-{MAX_KEYID_BYTES}",
            keyid.len()
        ));
    }
    if !keyid.bytes().all(|b| b.is_ascii_graphic()) {
        return Err("keyid must be printable ASCII without spaces".to_owned());
    }
    Ok(())
}

/// Standard base64 with padding; the decoder refuses non-zero trailing
/// bits, so each byte string has one encoding.
fn decode(path: &str, text: &str) -> Result<Vec<u8>, ArtifactError> {
    STANDARD
        .decode(text)
        .map_err(|e| ArtifactError::BadEncoding {
            path: path.to_owned(),
            why: format!("not standard padded base64 ({e})"),
        })
}

/// Signs `payload` (the exact bytes, see [`Artifact::to_json`]) with each
/// signer, in order. A key listed twice signs once.
#[must_use]
pub fn sign(payload: &[u8], signers: &[&SecretKey]) -> Envelope {
    let message = pae(PAYLOAD_TYPE, payload);
    let mut seen = BTreeSet::new();
    let signatures = signers
        .iter()
        .filter(|k| seen.insert(k.key_id()))
        .map(|k| Signature {
            keyid: k.key_id().to_string(),
            sig: k.sign_bytes(&message).to_vec(),
        })
        .collect();
    Envelope {
        payload_type: PAYLOAD_TYPE.to_owned(),
        payload: payload.to_vec(),
        signatures,
    }
}

/// Adds `signer`'s signature to an envelope (an approver co-signing). The
/// payload must be a valid artifact, so nobody approves bytes that no
/// verifier would accept; the existing signatures are not checked (that
/// needs the trust store: `verify` does it).
pub fn cosign(envelope_json: &[u8], signer: &SecretKey) -> Result<Vec<u8>, ArtifactError> {
    let mut envelope = Envelope::from_json(envelope_json)?;
    Artifact::from_json(&envelope.payload)?;
    let keyid = signer.key_id().to_string();
    if let Some(index) = envelope.signatures.iter().position(|s| s.keyid == keyid) {
        return Err(ArtifactError::DuplicateKeyId { index, keyid });
    }
    if envelope.signatures.len() >= MAX_SIGNATURES {
        return Err(ArtifactError::TooManySignatures {
            count: envelope.signatures.len() + 1,
        });
    }
    let sig = signer.sign_bytes(&envelope.pae()).to_vec();
    envelope.signatures.push(Signature { keyid, sig });
    let out = envelope.to_json();
    if out.len() > MAX_ENVELOPE_BYTES {
        return Err(ArtifactError::TooLarge {
            what: "envelope",
            size: out.len(),
            limit: MAX_ENVELOPE_BYTES,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pae_matches_the_dsse_spec_example() {
        // From the DSSE protocol document.
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
        );
        assert_eq!(pae("", b""), b"DSSEv1 0  0 ");
    }

    fn envelope(payload_type: &str, sigs: &str) -> Vec<u8> {
        format!(r#"{{"payloadType":"{payload_type}","payload":"e30=","signatures":{sigs}}}"#)
            .into_bytes()
    }

    fn code(bytes: &[u8]) -> &'static str {
        Envelope::from_json(bytes).unwrap_err().code().as_str()
    }

    #[test]
    fn structure_is_strict() {
        let one = r#"[{"keyid":"k","sig":"AAAA"}]"#;
        assert!(Envelope::from_json(&envelope(PAYLOAD_TYPE, one)).is_ok());
        assert_eq!(code(&envelope("application/json", one)), "bad-payload-type");
        assert_eq!(code(&envelope(PAYLOAD_TYPE, "[]")), "no-signatures");
        let nine: Vec<String> = (0..9)
            .map(|i| format!(r#"{{"keyid":"k{i}","sig":""}}"#))
            .collect();
        assert_eq!(
            code(&envelope(PAYLOAD_TYPE, &format!("[{}]", nine.join(",")))),
            "too-many-signatures"
        );
        assert_eq!(
            code(&envelope(
                PAYLOAD_TYPE,
                r#"[{"keyid":"k","sig":""},{"keyid":"k","sig":""}]"#
            )),
            "duplicate-keyid"
        );
        assert_eq!(
            code(&envelope(PAYLOAD_TYPE, r#"[{"keyid":"","sig":""}]"#)),
            "bad-value"
        );
        assert_eq!(
            code(&envelope(PAYLOAD_TYPE, r#"[{"keyid":"a b","sig":""}]"#)),
            "bad-value"
        );
        let long = format!(r#"[{{"keyid":"{}","sig":""}}]"#, "k".repeat(65));
        assert_eq!(code(&envelope(PAYLOAD_TYPE, &long)), "bad-value");
        assert_eq!(
            code(&envelope(PAYLOAD_TYPE, r#"[{"keyid":"k","sig":"AAA"}]"#)),
            "bad-encoding"
        );
        assert_eq!(
            code(&envelope(PAYLOAD_TYPE, r#"[{"keyid":"k","sig":"AAB="}]"#)),
            "bad-encoding"
        );
        assert_eq!(
            code(&envelope(PAYLOAD_TYPE, r#"[{"keyid":"k","sig":"","x":1}]"#)),
            "unknown-field"
        );
        assert_eq!(code(br#"{"payloadType":"x"}"#), "missing-field");
        assert_eq!(code(b"{} {}"), "missing-field");
        let trailing = [envelope(PAYLOAD_TYPE, one), b"[]".to_vec()].concat();
        assert_eq!(code(&trailing), "bad-json");
        assert_eq!(code(&vec![b' '; MAX_ENVELOPE_BYTES + 1]), "too-large");
    }

    #[test]
    fn round_trips() {
        let e = Envelope::from_json(&envelope(PAYLOAD_TYPE, r#"[{"keyid":"k","sig":"AAAA"}]"#))
            .unwrap();
        assert_eq!(e.payload, b"{}");
        assert_eq!(Envelope::from_json(&e.to_json()).unwrap(), e);
    }
}
