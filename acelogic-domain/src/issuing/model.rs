//! The compiled issuing policy: what the authority consults for each
//! request.

use std::{collections::BTreeMap, path::PathBuf, time::Duration};

use crate::capability::{ConnectCap, PathPattern};
use crate::policy::Entries;

/// How long a request under an approve rule waits for its approvals when
/// the rule sets no `pendingTimeout`.
pub const DEFAULT_PENDING_TIMEOUT: Duration = Duration::from_secs(60 * 60);

/// The workload entry that stands for every workload.
pub const ANY_WORKLOAD: &str = "*";

/// One issuing policy file, after every check passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuingPolicy {
    /// `metadata.name`.
    pub name: String,
    /// The trust-store issuer name the authority signs as.
    pub issuer: String,
    /// The audience written into artifacts.
    pub audience: String,
    /// Approver group name to trust-store approver names.
    pub groups: BTreeMap<String, Vec<String>>,
    /// In file order: placement takes the first rule that covers.
    pub rules: Vec<IssueRule>,
    pub rates: Vec<Rate>,
    /// SHA-256 of the file's bytes, for the authority's records.
    pub sha256: [u8; 32],
    pub source: PathBuf,
}

/// Which requests a rule places, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueRule {
    /// Unique within the policy.
    pub name: String,
    /// Workload names, or [`ANY_WORKLOAD`] alone.
    pub workloads: Vec<String>,
    pub exec: Vec<PathPattern>,
    pub write: Vec<PathPattern>,
    pub connect: Vec<ConnectCap>,
    pub tier: Tier,
    /// Longest validity of an artifact issued under it; `None` for `never`.
    pub max_ttl: Option<Duration>,
    /// Most uses an artifact issued under it may allow; `None`: no limit.
    pub max_uses: Option<u32>,
}

impl IssueRule {
    /// True when the rule applies to requests for `workload`.
    #[must_use]
    pub fn applies_to(&self, workload: &str) -> bool {
        applies(&self.workloads, workload)
    }

    pub(super) fn entries(&self) -> Entries<'_> {
        Entries {
            exec: &self.exec,
            write: &self.write,
            connect: &self.connect,
        }
    }
}

/// What issuing takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tier {
    /// Issued at once.
    Auto,
    /// Issued once the approvals are given.
    Approve(Approvals),
    /// Never issued.
    Never,
}

impl Tier {
    /// `auto`, `approve` or `never`, as the file spells it.
    #[must_use]
    pub fn name(&self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Approve(_) => "approve",
            Self::Never => "never",
        }
    }
}

/// Who must approve a request under an approve rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Approvals {
    /// Distinct approvers required (at least 1).
    pub count: u32,
    /// Groups (keys of [`IssuingPolicy::groups`]) whose members may approve.
    pub groups: Vec<String>,
    /// The approvers must come from `count` different groups.
    pub distinct_groups: bool,
    /// How long a request waits for its approvals before it is dropped.
    pub pending_timeout: Duration,
}

/// At most `issued_per_hour` artifacts an hour for each of `workloads`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rate {
    /// Workload names, or [`ANY_WORKLOAD`] alone.
    pub workloads: Vec<String>,
    pub issued_per_hour: u32,
}

impl Rate {
    /// True when the rate applies to `workload`.
    #[must_use]
    pub fn applies_to(&self, workload: &str) -> bool {
        applies(&self.workloads, workload)
    }
}

fn applies(workloads: &[String], workload: &str) -> bool {
    workloads.iter().any(|w| w == ANY_WORKLOAD || w == workload)
}

impl IssuingPolicy {
    /// The smallest `issued_per_hour` of the rates that apply to
    /// `workload`, if any.
    #[must_use]
    pub fn rate_for(&self, workload: &str) -> Option<u32> {
        self.rates
            .iter()
            .filter(|r| r.applies_to(workload))
            .map(|r| r.issued_per_hour)
            .min()
    }

    /// The groups of `approvals` that list approver `name`, in the order
    /// `approvals` lists them.
    #[must_use]
    pub fn groups_of<'a>(&'a self, approvals: &'a Approvals, name: &str) -> Vec<&'a str> {
        approvals
            .groups
            .iter()
            .filter(|g| {
                self.groups
                    .get(g.as_str())
                    .is_some_and(|members| members.iter().any(|m| m == name))
            })
            .map(String::as_str)
            .collect()
    }

    /// The rule named `name`.
    #[must_use]
    pub fn rule(&self, name: &str) -> Option<&IssueRule> {
        self.rules.iter().find(|r| r.name == name)
    }
}
