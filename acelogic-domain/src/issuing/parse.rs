//! An issuing policy file to its raw shape, strictly, with the same YAML
//! options and budgets as capability policies; then [`compile`] checks it.
//!
//! [`compile`]: super::compile

use std::{collections::BTreeMap, path::Path};

use serde::Deserialize;
use serde_saphyr::Spanned;
use sha2::{Digest, Sha256};

use super::{IssuingPolicy, compile::compile};
use crate::{
    capability::{ConnectCap, PathPattern},
    policy::{
        ISSUING_KIND, Located, MAX_POLICY_BYTES, PolicyErrors, Problem, pos, read_limited,
        yaml_error, yaml_options,
    },
};

const API_VERSION: &str = "acelogic.dev/v1";

/// The document envelope of capability policies, with this spec.
pub(super) type RawDoc = crate::policy::RawDoc<RawSpec>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawSpec {
    pub issuer: Spanned<String>,
    pub audience: Spanned<String>,
    #[serde(default)]
    pub approver_groups: BTreeMap<String, Spanned<Vec<Spanned<String>>>>,
    pub rules: Spanned<Vec<Spanned<RawRule>>>,
    #[serde(default)]
    pub rates: Vec<Spanned<RawRate>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(super) enum RawTier {
    Auto,
    Approve,
    Never,
}

impl RawTier {
    pub(super) fn name(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Approve => "approve",
            Self::Never => "never",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawRule {
    pub name: Spanned<String>,
    pub workloads: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    pub exec: Vec<Spanned<PathPattern>>,
    #[serde(default)]
    pub write: Vec<Spanned<PathPattern>>,
    #[serde(default)]
    pub connect: Vec<Spanned<ConnectCap>>,
    pub tier: Spanned<RawTier>,
    #[serde(default)]
    pub max_ttl: Option<Spanned<String>>,
    #[serde(default)]
    pub max_uses: Option<Spanned<u32>>,
    #[serde(default)]
    pub approvals: Option<Spanned<RawApprovals>>,
    #[serde(default)]
    pub pending_timeout: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawApprovals {
    pub count: Spanned<u32>,
    pub groups: Spanned<Vec<Spanned<String>>>,
    #[serde(default)]
    pub distinct_groups: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct RawRate {
    pub workloads: Spanned<Vec<Spanned<String>>>,
    pub issued_per_hour: Spanned<u32>,
}

/// Parses and checks an issuing policy file. Every error is collected,
/// in line and column order.
pub fn parse_file(path: &Path, text: &str) -> Result<IssuingPolicy, PolicyErrors> {
    parse_unsorted(path, text).map_err(PolicyErrors::sorted)
}

fn parse_unsorted(path: &Path, text: &str) -> Result<IssuingPolicy, PolicyErrors> {
    if text.len() > MAX_POLICY_BYTES {
        return Err(PolicyErrors::one(
            path,
            (0, 0),
            Problem::TooLarge(format!(
                "{} bytes, over the {MAX_POLICY_BYTES}-byte limit for a policy file",
                text.len()
            )),
        ));
    }
    let header: crate::policy::Header = serde_saphyr::from_str_with_options(text, yaml_options())
        .map_err(|e| PolicyErrors(vec![yaml_error(path, &e)]))?;
    let mut errors = Vec::new();
    for (what, field, want) in [
        ("kind", &header.kind, ISSUING_KIND),
        ("apiVersion", &header.api_version, API_VERSION),
    ] {
        if let Some(v) = field
            && v.value != want
        {
            errors.push(Located::new(
                path,
                pos(v),
                Problem::NotIssuingPolicy {
                    what,
                    found: crate::policy::shorten(&v.value),
                },
            ));
        }
    }
    if !errors.is_empty() {
        return Err(PolicyErrors(errors));
    }
    let raw: RawDoc = serde_saphyr::from_str_with_options(text, yaml_options())
        .map_err(|e| PolicyErrors(vec![yaml_error(path, &e)]))?;
    let sha256 = Sha256::digest(text.as_bytes()).into();
    compile(path, raw, sha256)
}

/// Reads (at most [`MAX_POLICY_BYTES`]) and parses an issuing policy file.
pub fn load_file(path: &Path) -> Result<IssuingPolicy, PolicyErrors> {
    let bytes = read_limited(path).map_err(|p| PolicyErrors::one(path, (0, 0), p))?;
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| PolicyErrors::one(path, (0, 0), Problem::BadYaml("not UTF-8 text".into())))?;
    parse_file(path, text)
}
