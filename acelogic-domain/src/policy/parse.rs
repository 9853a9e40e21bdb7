//! YAML to the file's raw shape, strictly: unknown and duplicate keys are
//! errors, YAML 1.1 booleans (`yes`, `on`) are not booleans, custom tags
//! are refused, and budgets stop alias bombs. Values that later checks
//! point at are kept [`Spanned`], so those errors carry `line:column` too.

use crate::reason::Reason;
use std::path::Path;

use serde::Deserialize;
use serde_saphyr::{Budget, Spanned};

use super::{Located, Mode, PolicyErrors, Problem};
use crate::capability::{AbsPath, ConnectCap, PathPattern};

/// Largest policy file read; a large policy is a few KiB.
pub const MAX_POLICY_BYTES: usize = 1024 * 1024;

pub(super) const API_VERSION: &str = "acelogic.dev/v1";
pub(super) const KIND: &str = "CapabilityPolicy";
/// Files of these kinds live beside the policies and are loaded
/// elsewhere: the trust store by the artifact verifier, the issuing policy
/// by the authority.
pub(super) const SKIPPED_KINDS: [&str; 2] = ["TrustStore", ISSUING_KIND];
/// The `kind` of the authority's issuing policy (`crate::issuing`).
pub(crate) const ISSUING_KIND: &str = "IssuingPolicy";

/// Just enough to tell what a file is before parsing it strictly.
#[derive(Deserialize)]
pub(crate) struct Header {
    #[serde(rename = "apiVersion", default)]
    pub api_version: Option<Spanned<String>>,
    #[serde(default)]
    pub kind: Option<Spanned<String>>,
}

/// A document of `kind` whose spec is `S` (a capability policy's here;
/// the issuing policy reads its own spec in the same envelope).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct RawDoc<S> {
    #[expect(dead_code, reason = "checked on the header before the strict parse")]
    pub api_version: Spanned<String>,
    #[expect(dead_code, reason = "checked on the header before the strict parse")]
    pub kind: Spanned<String>,
    pub metadata: RawMetadata,
    pub spec: S,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMetadata {
    pub name: Spanned<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSpec {
    pub workloads: Spanned<Vec<RawWorkload>>,
    #[serde(default)]
    pub baseline: RawBaseline,
    #[serde(default)]
    pub grantable: Vec<Spanned<RawRule>>,
    #[serde(default)]
    pub never: RawNever,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawWorkload {
    pub name: Spanned<String>,
    pub cgroups: Vec<Spanned<String>>,
    #[serde(default)]
    pub mode: Mode,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawBaseline {
    #[serde(default)]
    pub exec: Vec<Spanned<AbsPath>>,
    #[serde(default)]
    pub libraries: Vec<Spanned<PathPattern>>,
    #[serde(default)]
    pub write: Vec<Spanned<PathPattern>>,
    #[serde(default)]
    pub connect: Vec<Spanned<ConnectCap>>,
    #[serde(default)]
    pub unix_connect: Vec<Spanned<AbsPath>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawRule {
    pub name: Spanned<String>,
    #[serde(default)]
    pub exec: Vec<Spanned<PathPattern>>,
    #[serde(default)]
    pub write: Vec<Spanned<PathPattern>>,
    #[serde(default)]
    pub connect: Vec<Spanned<ConnectCap>>,
    #[serde(default)]
    pub issuers: Vec<Spanned<String>>,
    pub max_ttl: Spanned<String>,
    #[serde(default)]
    pub max_uses: Option<Spanned<u32>>,
    #[serde(default)]
    pub approvals: u32,
    #[serde(default)]
    pub operation_key_required: bool,
    #[serde(default)]
    pub completed_retention: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawNever {
    #[serde(default)]
    pub exec: Vec<Spanned<PathPattern>>,
    #[serde(default)]
    pub write: Vec<Spanned<PathPattern>>,
    #[serde(default)]
    pub connect: Vec<Spanned<ConnectCap>>,
}

/// `(line, column)` of a spanned value.
pub(crate) fn pos<T>(s: &Spanned<T>) -> (u64, u64) {
    (s.referenced.line(), s.referenced.column())
}

pub(crate) fn options() -> serde_saphyr::Options {
    let mut budget = Budget::default();
    budget.max_depth = 32;
    budget.max_nodes = 50_000;
    budget.max_events = 200_000;
    budget.max_aliases = 1_000;
    budget.max_anchors = 1_000;
    budget.max_documents = 2;
    budget.max_total_scalar_bytes = MAX_POLICY_BYTES;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options.alias_limits.max_total_replayed_events = 100_000;
    options.strict_booleans = true;
    options.reject_unsupported_tags = true;
    options.reject_tagged_field_names = true;
    options.with_snippet = false;
    options
}

pub(crate) fn yaml_error(file: &Path, e: &serde_saphyr::Error) -> Located {
    let at = e.location().map_or((0, 0), |l| (l.line(), l.column()));
    let (code, message) = crate::yaml::classify(e);
    let problem = match code {
        Reason::UnknownField => Problem::UnknownField(message),
        Reason::MissingField => Problem::MissingField(message),
        Reason::DuplicateField => Problem::DuplicateField(message),
        Reason::TooLarge => Problem::TooLarge(format!(
            "{message}: a policy needs neither deep nesting nor mass alias expansion"
        )),
        Reason::BadValue => Problem::BadValue(message),
        _ => Problem::BadYaml(message),
    };
    Located::new(file, at, problem)
}

/// What a file turned out to be.
#[derive(Debug)]
pub(super) enum Parsed {
    Policy(Box<RawDoc<RawSpec>>),
    /// A file of one of [`SKIPPED_KINDS`] (its `kind` is at this
    /// position): loaded elsewhere.
    Skipped(&'static str, (u64, u64)),
}

/// Parses one file into its raw shape.
pub(super) fn parse_raw(path: &Path, text: &str) -> Result<Parsed, PolicyErrors> {
    if text.len() > MAX_POLICY_BYTES {
        return Err(PolicyErrors::one(
            path,
            (0, 0),
            Problem::TooLarge(format!(
                "{} bytes, over the {MAX_POLICY_BYTES}-byte limit for a policy file; split it",
                text.len()
            )),
        ));
    }
    let header: Header = serde_saphyr::from_str_with_options(text, options())
        .map_err(|e| PolicyErrors(vec![yaml_error(path, &e)]))?;
    let mut errors = Vec::new();
    if let Some(kind) = &header.kind {
        if let Some(skipped) = SKIPPED_KINDS.iter().find(|k| **k == kind.value) {
            return Ok(Parsed::Skipped(skipped, pos(kind)));
        }
        if kind.value != KIND {
            errors.push(Located::new(
                path,
                pos(kind),
                Problem::WrongKind {
                    what: "kind",
                    found: super::cgroup::shorten(&kind.value),
                },
            ));
        }
    }
    if let Some(v) = &header.api_version
        && v.value != API_VERSION
    {
        errors.push(Located::new(
            path,
            pos(v),
            Problem::WrongKind {
                what: "apiVersion",
                found: super::cgroup::shorten(&v.value),
            },
        ));
    }
    if !errors.is_empty() {
        return Err(PolicyErrors(errors));
    }
    serde_saphyr::from_str_with_options(text, options())
        .map(|raw| Parsed::Policy(Box::new(raw)))
        .map_err(|e| PolicyErrors(vec![yaml_error(path, &e)]))
}
