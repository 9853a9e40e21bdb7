//! Admission: may this verified artifact's capabilities be granted to this
//! workload, and on which terms?
//!
//! Each capability is checked against `never` first (nothing overrides
//! it), then must be covered by a grantable rule that lists the artifact's
//! issuer. DNS names are resolved through the caller's resolver once per
//! call, so the answer the engine installs is the answer checked here when
//! the engine passes the same resolution.

use crate::reason::Reason;
use std::{cmp::Reverse, collections::BTreeMap, fmt::Write as _, net::IpAddr, time::Duration};

use super::{GrantRule, Workload, compile::connect_text};
use crate::capability::{Capability, ConnectCap, Host, PathPattern};

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

/// Resolves each name once per admission.
struct Names<'a> {
    resolve: &'a dyn Fn(&Host) -> Vec<IpAddr>,
    cache: BTreeMap<Host, Vec<IpAddr>>,
}

impl Names<'_> {
    fn addrs(&mut self, host: &Host) -> &[IpAddr] {
        match host {
            Host::Net(_) => &[],
            Host::Name(_) => self
                .cache
                .entry(host.clone())
                .or_insert_with(|| (self.resolve)(host)),
        }
    }
}

/// True when `cap` could reach anything `never` names: the hosts share an
/// address (a name: the same name, or any of its addresses inside the
/// other's prefix), the ports overlap and the protocol is the same.
fn connect_meets_never(cap: &ConnectCap, never: &ConnectCap, names: &mut Names<'_>) -> bool {
    if cap.protocol != never.protocol || !cap.ports.overlaps(never.ports) {
        return false;
    }
    match (&cap.host, &never.host) {
        (Host::Name(_), Host::Net(_)) => names
            .addrs(&cap.host)
            .iter()
            .any(|a| never.host.contains_addr(*a)),
        (Host::Net(_), Host::Name(_)) => names
            .addrs(&never.host)
            .iter()
            .any(|a| cap.host.contains_addr(*a)),
        (a, b) => a.overlaps(b),
    }
}

/// True when everything `cap` reaches is inside `rule`: same protocol,
/// ports contained, and the host contained (a name: the same name, or
/// every address it resolves to inside the rule's prefix). An address is
/// never covered by a rule naming a DNS name.
fn connect_covered(cap: &ConnectCap, rule: &ConnectCap, addrs: &[IpAddr]) -> bool {
    cap.protocol == rule.protocol
        && rule.ports.contains(cap.ports)
        && match (&cap.host, &rule.host) {
            (Host::Name(_), Host::Net(_)) => {
                !addrs.is_empty() && addrs.iter().all(|a| rule.host.contains_addr(*a))
            }
            (a, b) => b.contains(a),
        }
}

fn covers(rule: &GrantRule, cap: &Capability, addrs: &[IpAddr]) -> bool {
    match cap {
        Capability::Exec(c) => rule.exec.iter().any(|p| p.matches(&c.path)),
        Capability::Write(c) => rule.write.iter().any(|p| {
            p.covers_subtree(&c.path) || matches!(p, PathPattern::Exact(e) if *e == c.path)
        }),
        Capability::Connect(c) => rule.connect.iter().any(|r| connect_covered(c, r, addrs)),
    }
}

/// The rule's entries of the capability's kind, for messages.
fn entries_of_kind(rule: &GrantRule, cap: &Capability) -> Vec<String> {
    match cap {
        Capability::Exec(_) => rule.exec.iter().map(ToString::to_string).collect(),
        Capability::Write(_) => rule.write.iter().map(ToString::to_string).collect(),
        Capability::Connect(_) => rule.connect.iter().map(connect_text).collect(),
    }
}

fn kind(cap: &Capability) -> &'static str {
    match cap {
        Capability::Exec(_) => "exec",
        Capability::Write(_) => "write",
        Capability::Connect(_) => "connect",
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
        let mut names = Names {
            resolve,
            cache: BTreeMap::new(),
        };
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
            if let Some(n) = self.never_hit(cap, &mut names) {
                return Err(refuse(
                    Reason::Never,
                    format!(
                        "{cap} meets never {} {n} of workload {}: no artifact can grant it",
                        kind(cap),
                        self.name
                    ),
                ));
            }
            let addrs = match cap {
                Capability::Connect(
                    c @ ConnectCap {
                        host: Host::Name(_),
                        ..
                    },
                ) => {
                    let addrs = names.addrs(&c.host).to_vec();
                    if addrs.is_empty() {
                        return Err(refuse(
                            Reason::Unresolvable,
                            format!("{} does not resolve to any address", c.host),
                        ));
                    }
                    addrs
                }
                _ => Vec::new(),
            };
            let covering: Vec<&GrantRule> = self
                .grantable
                .iter()
                .filter(|r| covers(r, cap, &addrs))
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

    /// The never entry `cap` meets, as text.
    fn never_hit(&self, cap: &Capability, names: &mut Names<'_>) -> Option<String> {
        match cap {
            Capability::Exec(c) => self
                .never
                .exec
                .iter()
                .find(|n| n.matches(&c.path))
                .map(ToString::to_string),
            Capability::Write(c) => self
                .never
                .write
                .iter()
                .find(|n| n.overlaps_subtree(&c.path))
                .map(ToString::to_string),
            Capability::Connect(c) => self
                .never
                .connect
                .iter()
                .find(|n| connect_meets_never(c, n, names))
                .map(connect_text),
        }
    }

    fn not_grantable(&self, issuer: &str, cap: &Capability) -> String {
        let mut why = format!(
            "no grantable rule of workload {} covers {cap} for issuer {issuer}",
            self.name
        );
        let close: Vec<(&GrantRule, Vec<String>)> = self
            .grantable
            .iter()
            .map(|r| (r, entries_of_kind(r, cap)))
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
