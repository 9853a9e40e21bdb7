//! The signed statement: who may do what, where, until when, and why.
//!
//! Parsing is strict (unknown, missing and duplicate fields are errors)
//! and checks every value as it is read, so a rejection names the field.
//! What needs the clock, the policy or the node (validity now, audience,
//! subject, grantable set) is the engine's job, not this module's.

use std::{num::NonZeroU32, time::SystemTime};

use serde::{Deserialize, Serialize};

use super::{
    ArtifactError, MAX_PAYLOAD_BYTES,
    fields::{ArtifactId, Name, check_strings, checked, timestamp, whole_seconds},
};
use crate::capability::{AbsPath, Capability};

/// The only payload version this code reads and writes.
pub const VERSION: u32 = 1;
/// Most capabilities one artifact may grant.
pub const MAX_CAPABILITIES: usize = 32;
/// Longest validity window the format allows; policies set tighter ones.
pub const MAX_WINDOW: std::time::Duration = std::time::Duration::from_secs(24 * 60 * 60);

/// Whom the artifact is for: a workload, optionally pinned to one node and
/// one cgroup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Subject {
    pub workload: Name,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<Name>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cgroup: Option<AbsPath>,
}

/// The payload of a signed authorization artifact (format version 1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub struct Artifact {
    pub version: u32,
    pub id: ArtifactId,
    /// The authority that issued it: a name with `role: issuer` keys in
    /// the trust store.
    pub issuer: Name,
    pub subject: Subject,
    /// The cluster or fleet this artifact is for.
    pub audience: Name,
    #[serde(with = "timestamp")]
    pub not_before: SystemTime,
    #[serde(with = "timestamp")]
    pub expires: SystemTime,
    pub capabilities: Vec<Capability>,
    /// Uses allowed per capability's kernel grant; absent: unlimited until
    /// expiry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_uses: Option<NonZeroU32>,
    /// At most one live artifact holds an operation key at a time.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "checked::operation_key"
    )]
    pub operation_key: Option<String>,
    /// A change ticket or similar reference, for humans.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "checked::approval_ref"
    )]
    pub approval_ref: Option<String>,
    #[serde(deserialize_with = "checked::reason")]
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<ArtifactId>,
}

/// Reads `version` before anything else, so a newer artifact is reported
/// as a version mismatch rather than as the unknown fields it may add.
#[derive(Deserialize)]
struct VersionProbe {
    version: Option<serde_json::Value>,
}

impl Artifact {
    /// Parses and checks payload bytes (the exact bytes that were signed).
    pub fn from_json(payload: &[u8]) -> Result<Self, ArtifactError> {
        if payload.len() > MAX_PAYLOAD_BYTES {
            return Err(ArtifactError::TooLarge {
                what: "payload",
                size: payload.len(),
                limit: MAX_PAYLOAD_BYTES,
            });
        }
        if let Err(e) = std::str::from_utf8(payload) {
            return Err(ArtifactError::BadEncoding {
                path: "payload".to_owned(),
                why: format!("not UTF-8 ({e})"),
            });
        }
        if let Ok(VersionProbe { version: Some(v) }) = serde_json::from_slice(payload)
            && v.as_u64() != Some(u64::from(VERSION))
        {
            return Err(ArtifactError::BadVersion {
                found: super::fields::shorten(&v.to_string()),
            });
        }
        let mut de = serde_json::Deserializer::from_slice(payload);
        let artifact: Self = serde_path_to_error::deserialize(&mut de)
            .map_err(|e| ArtifactError::from_json("payload", &e))?;
        // Trailing bytes after the object would give the signed bytes a
        // second reading.
        de.end().map_err(|e| ArtifactError::BadJson {
            path: "payload".to_owned(),
            why: e.to_string(),
        })?;
        artifact.check()?;
        Ok(artifact)
    }

    /// The exact payload bytes to sign. Refuses an artifact that would not
    /// parse back (so a signer never signs what a verifier rejects).
    pub fn to_json(&self) -> Result<Vec<u8>, ArtifactError> {
        self.check()?;
        let bytes = serde_json::to_vec(self).map_err(|e| ArtifactError::BadJson {
            path: "payload".to_owned(),
            why: e.to_string(),
        })?;
        if Self::from_json(&bytes)? != *self {
            return Err(ArtifactError::bad_value(
                "payload",
                "does not read back as written; this is a bug, please report it",
            ));
        }
        Ok(bytes)
    }

    /// The checks that span fields or are not in the field types.
    fn check(&self) -> Result<(), ArtifactError> {
        if self.version != VERSION {
            return Err(ArtifactError::BadVersion {
                found: self.version.to_string(),
            });
        }
        if self.id.0 == [0; 16] {
            return Err(ArtifactError::bad_value("payload.id", "id is all zero"));
        }
        for (field, t) in [("notBefore", self.not_before), ("expires", self.expires)] {
            if whole_seconds(t) != t {
                return Err(ArtifactError::bad_value(
                    format!("payload.{field}"),
                    "has a sub-second part; timestamps are whole seconds",
                ));
            }
        }
        let n = self.capabilities.len();
        if n == 0 || n > MAX_CAPABILITIES {
            return Err(ArtifactError::bad_value(
                "payload.capabilities",
                format!("{n} capabilities; an artifact grants 1-{MAX_CAPABILITIES}"),
            ));
        }
        check_strings(
            self.operation_key.as_deref(),
            self.approval_ref.as_deref(),
            &self.reason,
        )
        .map_err(|(field, why)| ArtifactError::bad_value(format!("payload.{field}"), why))?;
        match self.expires.duration_since(self.not_before) {
            Ok(window) if window.is_zero() => Err(window_error("expires equals notBefore")),
            Err(_) => Err(window_error("expires is before notBefore")),
            Ok(window) if window > MAX_WINDOW => Err(window_error(&format!(
                "the validity window is {}, over the 24h maximum",
                humantime::format_duration(window)
            ))),
            Ok(_) => Ok(()),
        }
    }

    /// How long the artifact is valid, from `not_before` to `expires`.
    #[must_use]
    pub fn window(&self) -> std::time::Duration {
        self.expires
            .duration_since(self.not_before)
            .unwrap_or_default()
    }
}

fn window_error(why: &str) -> ArtifactError {
    ArtifactError::BadTimeWindow {
        path: "payload.expires".to_owned(),
        why: format!("{why}; issue an artifact valid for at most 24h after notBefore"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"{"version":1,"id":"0123456789abcdef0123456789abcdef","issuer":"release-authority","subject":{"workload":"checkout"},"audience":"prod-eu","notBefore":"2026-11-21T10:00:00Z","expires":"2026-11-21T10:15:00Z","capabilities":[{"exec":{"path":"/usr/bin/kubectl"}}],"reason":"scale checkout"}"#;

    fn with(field: &str, value: serde_json::Value) -> Vec<u8> {
        let mut v: serde_json::Value = serde_json::from_str(MINIMAL).unwrap();
        v[field] = value;
        serde_json::to_vec(&v).unwrap()
    }

    fn without(field: &str) -> Vec<u8> {
        let mut v: serde_json::Value = serde_json::from_str(MINIMAL).unwrap();
        v.as_object_mut().unwrap().remove(field);
        serde_json::to_vec(&v).unwrap()
    }

    fn code(bytes: &[u8]) -> (&'static str, String) {
        let e = Artifact::from_json(bytes).unwrap_err();
        (e.code().as_str(), e.to_string())
    }

    #[test]
    fn minimal_round_trips_byte_for_byte() {
        let a = Artifact::from_json(MINIMAL.as_bytes()).unwrap();
        assert_eq!(a.to_json().unwrap(), MINIMAL.as_bytes());
        assert_eq!(a.window(), std::time::Duration::from_secs(900));
    }

    #[test]
    fn rejections_name_the_field() {
        use serde_json::json;
        let cases: Vec<(Vec<u8>, &str, &str)> = vec![
            (
                with("extra", json!(1)),
                "unknown-field",
                "payload.extra: unknown field `extra`",
            ),
            (without("reason"), "missing-field", "missing field `reason`"),
            (with("version", json!(2)), "bad-version", "version is 2"),
            (with("version", json!("1")), "bad-version", "version"),
            (
                with("id", json!("00000000000000000000000000000000")),
                "bad-value",
                "payload.id",
            ),
            (
                with("issuer", json!("Release")),
                "bad-value",
                "payload.issuer",
            ),
            (
                with(
                    "capabilities",
                    json!([{"connect": {"host": "10.0.0.1", "ports": "0", "protocol": "tcp"}}]),
                ),
                "bad-value",
                "payload.capabilities[0].connect.ports",
            ),
            (
                with(
                    "capabilities",
                    json!([{"write": {"path": "/a"}}, {"exec": {"path": "bin/sh"}}]),
                ),
                "bad-value",
                "payload.capabilities[1].exec.path",
            ),
            (
                with("capabilities", json!([])),
                "bad-value",
                "payload.capabilities",
            ),
            (
                with("subject", json!({"workload": "w", "pod": "p"})),
                "unknown-field",
                "payload.subject",
            ),
            (
                with("subject", json!({"node": "n"})),
                "missing-field",
                "payload.subject",
            ),
            (with("maxUses", json!(0)), "bad-value", "payload.maxUses"),
            (
                with("operationKey", json!("a b")),
                "bad-value",
                "payload.operationKey",
            ),
            (
                with("operationKey", json!(null)),
                "bad-value",
                "payload.operationKey",
            ),
            (
                with("approvalRef", json!("")),
                "bad-value",
                "payload.approvalRef",
            ),
            (
                with("reason", json!("a\u{1b}[31m")),
                "bad-value",
                "payload.reason",
            ),
            (with("parent", json!("xyz")), "bad-value", "payload.parent"),
            (
                with("notBefore", json!("2026-11-21T10:00:00.000Z")),
                "bad-value",
                "payload.notBefore",
            ),
            (
                with("expires", json!("2026-11-21T09:00:00Z")),
                "bad-time-window",
                "before notBefore",
            ),
            (
                with("expires", json!("2026-11-21T10:00:00Z")),
                "bad-time-window",
                "equals",
            ),
            (
                with("expires", json!("2026-11-22T10:00:01Z")),
                "bad-time-window",
                "24h",
            ),
        ];
        for (bytes, want, text) in cases {
            let (got, msg) = code(&bytes);
            assert_eq!(got, want, "{msg}");
            assert!(msg.contains(text), "{msg:?} lacks {text:?}");
        }
        assert!(Artifact::from_json(&with("expires", json!("2026-11-22T10:00:00Z"))).is_ok());
    }

    #[test]
    fn json_shape_errors() {
        let dup = MINIMAL.replacen(r#""reason":"#, r#""reason":"x","reason":"#, 1);
        assert_eq!(code(dup.as_bytes()).0, "duplicate-field");
        assert_eq!(code(b"{").0, "bad-json");
        assert_eq!(code(b"[]").0, "bad-value");
        assert_eq!(code(&[b'"', 0xff, b'"']).0, "bad-encoding");
        let trailing = format!("{MINIMAL} {{}}");
        assert_eq!(code(trailing.as_bytes()).0, "bad-json");
        let big = vec![b' '; MAX_PAYLOAD_BYTES + 1];
        assert_eq!(code(&big).0, "too-large");
    }

    #[test]
    fn to_json_refuses_what_would_not_verify() {
        let mut a = Artifact::from_json(MINIMAL.as_bytes()).unwrap();
        a.reason = String::new();
        assert_eq!(a.to_json().unwrap_err().code(), "bad-value");
        a.reason = "ok".into();
        a.expires = a.not_before;
        assert_eq!(a.to_json().unwrap_err().code(), "bad-time-window");
    }
}
