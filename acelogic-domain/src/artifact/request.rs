//! The request file `acelogicctl artifact sign` reads: the payload fields
//! in YAML, without `version` and `id` (the tool fills them in), and with
//! the validity given either as `notBefore` + `expires` or as a `ttl` from
//! now:
//!
//! ```yaml
//! issuer: release-authority
//! subject: {workload: checkout, node: node-1}
//! audience: prod-eu
//! ttl: 15m                    # or notBefore: ... and expires: ...
//! capabilities:
//!   - exec: {path: /usr/bin/kubectl}
//!   - connect: {host: 10.0.0.0/8, ports: "443", protocol: tcp}
//! maxUses: 3
//! operationKey: scale/checkout
//! approvalRef: CHG-1234
//! reason: Scale checkout for the sale
//! ```

use crate::reason::Reason;
use std::{num::NonZeroU32, path::Path, time::SystemTime};

use serde::Deserialize;

use super::{
    ArtifactError,
    fields::{ArtifactId, Name, parse_timestamp, whole_seconds},
    payload::{Artifact, Subject, VERSION},
    yaml::{self, YamlError},
};
use crate::capability::Capability;

/// A request that could not become a payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("{location}: {message}")]
    Yaml {
        code: Reason,
        location: String,
        message: String,
    },
    #[error("{location}: {why}")]
    Time { location: String, why: String },
    /// The payload built from the request is not a valid artifact.
    #[error("{origin}: {source}")]
    Invalid {
        origin: String,
        source: ArtifactError,
    },
    #[error("{path}: {why}")]
    Io { path: String, why: String },
    #[error("no random bytes for the artifact id: {0}")]
    Random(String),
}

impl RequestError {
    /// Stable reason code (see the table in the module docs).
    #[must_use]
    pub fn code(&self) -> Reason {
        match self {
            Self::Yaml { code, .. } => *code,
            Self::Time { .. } => Reason::BadTimeWindow,
            Self::Invalid { source, .. } => source.code(),
            Self::Io { .. } => Reason::Io,
            Self::Random(_) => Reason::NoRandomness,
        }
    }
}

impl From<YamlError> for RequestError {
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
struct Request {
    issuer: Name,
    subject: Subject,
    audience: Name,
    #[serde(default)]
    not_before: Option<String>,
    #[serde(default)]
    expires: Option<String>,
    #[serde(default)]
    ttl: Option<String>,
    capabilities: Vec<Capability>,
    #[serde(default)]
    max_uses: Option<NonZeroU32>,
    #[serde(default)]
    operation_key: Option<String>,
    #[serde(default)]
    approval_ref: Option<String>,
    reason: String,
    #[serde(default)]
    parent: Option<ArtifactId>,
}

/// Builds a payload from request YAML: a fresh random id, version 1, and
/// the validity window. `now` (truncated to whole seconds) is `notBefore`
/// for a `ttl` request. Messages name the request as `<request>`; see
/// [`build_payload_from_file`] for file names in messages.
pub fn build_payload(request_yaml: &str, now: SystemTime) -> Result<Artifact, RequestError> {
    build(request_yaml, "<request>", now)
}

/// [`build_payload`] for a file, named in messages as `path:line:column`.
pub fn build_payload_from_file(path: &Path, now: SystemTime) -> Result<Artifact, RequestError> {
    let shown = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| RequestError::Io {
        path: shown.clone(),
        why: e.to_string(),
    })?;
    build(&text, &shown, now)
}

fn build(text: &str, origin: &str, now: SystemTime) -> Result<Artifact, RequestError> {
    let r: Request = yaml::parse(text, origin)?;
    let time_error = |why: &str| RequestError::Time {
        location: origin.to_owned(),
        why: format!("{why}; give either `ttl` (like 15m) or both `notBefore` and `expires`"),
    };
    let parse = |field: &str, s: &str| {
        parse_timestamp(s).map_err(|why| RequestError::Time {
            location: origin.to_owned(),
            why: format!("{field}: {why}"),
        })
    };
    let (not_before, expires) = match (&r.ttl, &r.not_before, &r.expires) {
        (Some(ttl), None, None) => {
            let ttl = humantime::parse_duration(ttl).map_err(|e| RequestError::Time {
                location: origin.to_owned(),
                why: format!("ttl {ttl:?}: {e}; write a duration like 15m or 2h"),
            })?;
            let start = whole_seconds(now);
            let end = start
                .checked_add(ttl)
                .ok_or_else(|| time_error("ttl is too long"))?;
            (start, end)
        }
        (None, Some(nb), Some(ex)) => (parse("notBefore", nb)?, parse("expires", ex)?),
        (None, None, None) => return Err(time_error("no validity given")),
        _ => return Err(time_error("validity given two ways or half")),
    };
    let id = ArtifactId::generate().map_err(|e| RequestError::Random(e.to_string()))?;
    let artifact = Artifact {
        version: VERSION,
        id,
        issuer: r.issuer,
        subject: r.subject,
        audience: r.audience,
        not_before,
        expires,
        capabilities: r.capabilities,
        max_uses: r.max_uses,
        operation_key: r.operation_key,
        approval_ref: r.approval_ref,
        reason: r.reason,
        parent: r.parent,
    };
    // The same checks a verifier runs, on the exact bytes it would read.
    artifact.to_json().map_err(|source| RequestError::Invalid {
        origin: origin.to_owned(),
        source,
    })?;
    Ok(artifact)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::artifact::fields::format_timestamp;

    const BASE: &str = "issuer: release-authority\nsubject: {workload: checkout, node: node-1}\naudience: prod-eu\ncapabilities:\n  - exec: {path: /usr/bin/kubectl}\n  - connect: {host: 10.0.0.0/8, ports: 443, protocol: tcp}\nreason: Scale checkout\n";

    fn now() -> SystemTime {
        parse_timestamp("2026-11-21T10:00:00Z").unwrap() + Duration::from_millis(700)
    }

    #[test]
    fn ttl_request_builds_a_payload() {
        let a = build_payload(
            &format!("{BASE}ttl: 15m\nmaxUses: 2\noperationKey: scale/checkout\n"),
            now(),
        )
        .unwrap();
        assert_eq!(format_timestamp(a.not_before), "2026-11-21T10:00:00Z");
        assert_eq!(format_timestamp(a.expires), "2026-11-21T10:15:00Z");
        assert_eq!(a.capabilities.len(), 2);
        assert_eq!(a.max_uses.map(NonZeroU32::get), Some(2));
        let bytes = a.to_json().unwrap();
        assert_eq!(Artifact::from_json(&bytes).unwrap(), a);
        let b = build_payload(&format!("{BASE}ttl: 15m\n"), now()).unwrap();
        assert_ne!(a.id, b.id, "ids are random");
    }

    #[test]
    fn explicit_window_builds_a_payload() {
        let a = build_payload(
            &format!("{BASE}notBefore: 2026-11-21T12:00:00Z\nexpires: 2026-11-21T13:00:00Z\n"),
            now(),
        )
        .unwrap();
        assert_eq!(format_timestamp(a.not_before), "2026-11-21T12:00:00Z");
    }

    #[test]
    fn rejections_have_codes() {
        let cases = [
            (
                format!("{BASE}ttl: 15m\nid: 0123456789abcdef0123456789abcdef\n"),
                "unknown-field",
                "<request>:9:1",
            ),
            (BASE.to_owned(), "bad-time-window", "<request>"),
            (
                format!("{BASE}ttl: 25h\n"),
                "bad-time-window",
                "<request>: payload.expires",
            ),
            (format!("{BASE}ttl: soon\n"), "bad-time-window", "<request>"),
            (
                format!("{BASE}ttl: 1h\nexpires: 2026-11-21T13:00:00Z\n"),
                "bad-time-window",
                "<request>",
            ),
            (
                format!("{BASE}notBefore: 2026-11-21T12:00:00Z\nexpires: tomorrow\n"),
                "bad-time-window",
                "<request>",
            ),
            (
                format!("{BASE}ttl: 1h\noperationKey: a b\n"),
                "bad-value",
                "<request>: payload.operationKey",
            ),
            (
                format!("{BASE}ttl: 1h\nmaxUses: 0\n"),
                "bad-value",
                "<request>:9:",
            ),
            (
                BASE.replace("ports: 443", "ports: 0") + "ttl: 1h\n",
                "bad-value",
                "<request>:6:",
            ),
            (
                BASE.replace("reason: Scale checkout\n", "ttl: 1h\n"),
                "missing-field",
                "<request>",
            ),
        ];
        for (text, code, location) in cases {
            let e = build_payload(&text, now()).unwrap_err();
            assert_eq!(e.code(), code, "{e}");
            assert!(e.to_string().starts_with(location), "{e} (want {location})");
        }
    }
}
