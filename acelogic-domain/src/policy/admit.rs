//! Admission: may this verified artifact's capabilities be granted to this
//! workload, and on which terms?
//!
//! Each capability is checked against `never` first (nothing overrides
//! it), then must be covered by a grantable rule that lists the artifact's
//! issuer. DNS names are resolved through the caller's resolver once per
//! call, so the answer the engine installs is the answer checked here when
//! the engine passes the same resolution.

use crate::reason::Reason;
use std::{cmp::Reverse, fmt::Write as _, net::IpAddr, time::Duration};

use super::{
    GrantRule, Never, Workload,
    cover::{Entries, Names, kind},
};
use crate::capability::{Capability, Host};

/// What the artifact must satisfy, the strictest over its capabilities.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Terms {
    /// The artifact's validity may not be longer.
    pub max_ttl: Duration,
    /// The artifact's `maxUses` must be set and at most this (`None`: no
    /// limit from the policy).
    pub max_uses: Option<u32>,
    /// Approver signatures required.
    pub approvals: u32,
    /// The artifact must carry an operation key.
    pub operation_key_required: bool,
    /// The longest `completedRetention` of the matched rules (`None`: none
    /// set one).
    pub completed_retention: Option<Duration>,
    /// The rule that admitted each capability, by capability index.
    pub rules: Vec<String>,
}

/// Why an artifact cannot be admitted: the first capability refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("capability {index}: {why}")]
pub struct Refusal {
    /// Index of the refused capability in the artifact.
    pub index: usize,
    /// `never`, `not-grantable`, `issuer-not-allowed`, `unresolvable` or
    /// `no-capabilities`.
    pub code: Reason,
    pub why: String,
}

impl Refusal {
    #[must_use]
    pub fn code(&self) -> Reason {
        self.code
    }
}

impl GrantRule {
    pub(crate) fn entries(&self) -> Entries<'_> {
        Entries {
            exec: &self.exec,
            write: &self.write,
            connect: &self.connect,
        }
    }
}

impl Never {
    pub(crate) fn entries(&self) -> Entries<'_> {
        Entries {
            exec: &self.exec,
            write: &self.write,
            connect: &self.connect,
        }
    }
}

/// Orders rules from least to most strict: fewer approvals, then a longer
/// TTL, then no operation key, then more uses.
fn strictness(r: &GrantRule) -> (u32, Reverse<Duration>, bool, Reverse<u64>) {
    (
        r.approvals,
        Reverse(r.max_ttl),
        r.operation_key_required,
        Reverse(r.max_uses.map_or(u64::MAX, u64::from)),
    )
}

impl Workload {
    /// Decides whether an artifact signed by `issuer` (already verified)
    /// may grant `caps` to this workload. `resolve` returns the addresses
    /// of a DNS name (empty when it does not resolve); the engine should
    /// pass the resolution it will install.
    pub fn admit(
        &self,
        issuer: &str,
        caps: &[Capability],
        resolve: &dyn Fn(&Host) -> Vec<IpAddr>,
    ) -> Result<Terms, Refusal> {
        if caps.is_empty() {
            return Err(Refusal {
                index: 0,
                code: Reason::NoCapabilities,
                why: "the artifact grants nothing".into(),
            });
        }
        let mut names = Names::new(resolve);
        let mut terms = Terms {
            max_ttl: Duration::MAX,
            max_uses: None,
            approvals: 0,
            operation_key_required: false,
            completed_retention: None,
            rules: Vec::with_capacity(caps.len()),
        };
        for (index, cap) in caps.iter().enumerate() {
            let refuse = |code, why| Refusal { index, code, why };
            if let Some(n) = self.never.entries().met_by(cap, &mut names) {
                return Err(refuse(
                    Reason::Never,
                    format!(
                        "{cap} meets never {} {n} of workload {}: no artifact can grant it",
                        kind(cap),
                        self.name
                    ),
                ));
            }
            let addrs = names
                .cap_addrs(cap)
                .map_err(|why| refuse(Reason::Unresolvable, why))?;
            let covering: Vec<&GrantRule> = self
                .grantable
                .iter()
                .filter(|r| r.entries().covers(cap, &addrs))
                .collect();
            let Some(rule) = covering
                .iter()
                .filter(|r| r.issuers.iter().any(|i| i == issuer))
                .min_by_key(|r| strictness(r))
            else {
                return Err(if covering.is_empty() {
                    refuse(Reason::NotGrantable, self.not_grantable(issuer, cap))
                } else {
                    let mut why =
                        format!("{cap} is grantable to workload {} only under", self.name);
                    for (i, r) in covering.iter().enumerate() {
                        let sep = if i == 0 { " " } else { ", " };
                        let _ = write!(
                            why,
                            "{sep}rule {} (issuers {})",
                            r.name,
                            r.issuers.join(", ")
                        );
                    }
                    let _ = write!(why, "; not for issuer {issuer}");
                    refuse(Reason::IssuerNotAllowed, why)
                });
            };
            terms.max_ttl = terms.max_ttl.min(rule.max_ttl);
            terms.max_uses = match (terms.max_uses, rule.max_uses) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            terms.approvals = terms.approvals.max(rule.approvals);
            terms.operation_key_required |= rule.operation_key_required;
            terms.completed_retention = terms.completed_retention.max(rule.completed_retention);
            terms.rules.push(rule.name.clone());
        }
        Ok(terms)
    }

    fn not_grantable(&self, issuer: &str, cap: &Capability) -> String {
        let mut why = format!(
            "no grantable rule of workload {} covers {cap} for issuer {issuer}",
            self.name
        );
        let close: Vec<(&GrantRule, Vec<String>)> = self
            .grantable
            .iter()
            .map(|r| (r, r.entries().of_kind(cap)))
            .filter(|(_, e)| !e.is_empty())
            .collect();
        if close.is_empty() {
            let _ = write!(why, "; its policy grants no {} at all", kind(cap));
        } else {
            let _ = write!(why, "; rules with {} entries:", kind(cap));
            for (i, (r, entries)) in close.iter().take(4).enumerate() {
                let sep = if i == 0 { " " } else { "; " };
                let shown: Vec<&str> = entries.iter().take(4).map(String::as_str).collect();
                let more = if entries.len() > 4 { ", ..." } else { "" };
                let _ = write!(why, "{sep}{} ({}{more})", r.name, shown.join(", "));
            }
            if close.len() > 4 {
                let _ = write!(why, "; and {} more", close.len() - 4);
            }
        }
        why
    }
}
