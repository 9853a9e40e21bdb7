//! Where a request lands: which rule, which tier, on which terms.
//!
//! Coverage is the node's own (`policy::Entries`, shared with admission),
//! so a capability the authority places under a rule is judged by the
//! same semantics the node applies to the artifact it issues.

use std::{net::IpAddr, time::Duration};

use super::{IssueRule, IssuingPolicy, Tier};
use crate::{
    capability::{Capability, Host},
    policy::{Names, cap_kind},
    reason::Reason,
};

/// Where a request landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// The rule that decides: the never rule met, the approve rule, or
    /// (all auto) the rule of the first capability.
    pub rule: String,
    /// `never` (refuse), `approve` (with the rule's approvals) or `auto`.
    pub tier: Tier,
    /// The shortest `maxTtl` of the rules used; `None` for never.
    pub max_ttl: Option<Duration>,
    /// The fewest `maxUses` of the rules used that set one.
    pub max_uses: Option<u32>,
    /// The rule that placed each capability, by capability index (empty
    /// for never).
    pub rules: Vec<String>,
}

/// Why a request cannot be placed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("capability {index}: {why}")]
pub struct IssueRefusal {
    /// Index of the capability the refusal is about.
    pub index: usize,
    /// `not-issuable`, `mixed-approval-rules`, `unresolvable` or
    /// `no-capabilities`.
    pub code: Reason,
    pub why: String,
}

impl IssuingPolicy {
    /// Where a request for `caps` by `workload` lands.
    ///
    /// Any capability that meets (overlaps) a `never` rule applying to the
    /// workload places the request under that rule, tier never. Otherwise
    /// each capability is placed by the first auto or approve rule, in
    /// file order, that applies to the workload and covers it, with the
    /// node's coverage semantics; the request's tier is the strictest
    /// (approve over auto), its TTL the shortest and its uses the fewest
    /// of the rules used. `resolve` returns a DNS name's addresses.
    pub fn place(
        &self,
        workload: &str,
        caps: &[Capability],
        resolve: &dyn Fn(&Host) -> Vec<IpAddr>,
    ) -> Result<Placement, IssueRefusal> {
        if caps.is_empty() {
            return Err(IssueRefusal {
                index: 0,
                code: Reason::NoCapabilities,
                why: "the request names no capability".into(),
            });
        }
        let mut names = Names::new(resolve);
        let applying: Vec<&IssueRule> = self
            .rules
            .iter()
            .filter(|r| r.applies_to(workload))
            .collect();
        for cap in caps {
            for rule in applying.iter().filter(|r| r.tier == Tier::Never) {
                if rule.entries().met_by(cap, &mut names).is_some() {
                    return Ok(Placement {
                        rule: rule.name.clone(),
                        tier: Tier::Never,
                        max_ttl: None,
                        max_uses: None,
                        rules: Vec::new(),
                    });
                }
            }
        }
        let mut used: Vec<&IssueRule> = Vec::with_capacity(caps.len());
        let mut approve: Option<&IssueRule> = None;
        for (index, cap) in caps.iter().enumerate() {
            let refuse = |code, why| IssueRefusal { index, code, why };
            let addrs = names
                .cap_addrs(cap)
                .map_err(|why| refuse(Reason::Unresolvable, why))?;
            let Some(rule) = applying
                .iter()
                .find(|r| r.tier != Tier::Never && r.entries().covers(cap, &addrs))
            else {
                return Err(refuse(
                    Reason::NotIssuable,
                    self.not_issuable(workload, cap),
                ));
            };
            if matches!(rule.tier, Tier::Approve(_)) {
                match approve {
                    Some(first) if first.name != rule.name => {
                        return Err(refuse(
                            Reason::MixedApprovalRules,
                            format!(
                                "{cap} needs the approvals of rule {}, and an earlier capability \
                                 those of rule {}: split the request, one per approve rule",
                                rule.name, first.name
                            ),
                        ));
                    }
                    Some(_) => {}
                    None => approve = Some(rule),
                }
            }
            used.push(rule);
        }
        let decisive = approve.unwrap_or(used[0]);
        Ok(Placement {
            rule: decisive.name.clone(),
            tier: decisive.tier.clone(),
            max_ttl: used.iter().filter_map(|r| r.max_ttl).min(),
            max_uses: used.iter().filter_map(|r| r.max_uses).min(),
            rules: used.iter().map(|r| r.name.clone()).collect(),
        })
    }

    fn not_issuable(&self, workload: &str, cap: &Capability) -> String {
        let kind = cap_kind(cap);
        let close: Vec<&str> = self
            .rules
            .iter()
            .filter(|r| r.applies_to(workload) && r.tier != Tier::Never)
            .filter(|r| !r.entries().of_kind(cap).is_empty())
            .map(|r| r.name.as_str())
            .collect();
        let mut why = format!(
            "no auto or approve rule of issuing policy {} covers {cap} for workload {workload}",
            self.name
        );
        if close.is_empty() {
            why.push_str(&format!(
                "; none of its rules for {workload} lists {kind} entries"
            ));
        } else {
            why.push_str(&format!(
                "; rules with {kind} entries: {}",
                close.join(", ")
            ));
        }
        why
    }
}
