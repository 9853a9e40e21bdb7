//! Problems found in policy files, each pinned to `file:line:column` and
//! carrying a stable code (the table is in the module documentation).

use crate::reason::Reason;
use std::{
    fmt,
    path::{Path, PathBuf},
};

/// One problem (an error or a warning) and where it is.
///
/// `line` and `column` are 1-based; both are 0 when the problem concerns a
/// whole file or the directory (it could not be read, for instance).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located {
    pub file: PathBuf,
    pub line: u64,
    pub column: u64,
    pub problem: Problem,
}

impl Located {
    pub(crate) fn new(file: &Path, (line, column): (u64, u64), problem: Problem) -> Self {
        Self {
            file: file.to_owned(),
            line,
            column,
            problem,
        }
    }

    /// The stable reason code (`duplicate-workload`, `bad-ttl`, ...).
    #[must_use]
    pub fn code(&self) -> Reason {
        self.problem.code()
    }

    /// True for warnings: the policy loads, but something in it is
    /// probably not what its author meant.
    #[must_use]
    pub fn is_warning(&self) -> bool {
        self.problem.is_warning()
    }
}

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line != 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        write!(f, ": {} [{}]", self.problem, self.code())
    }
}

impl std::error::Error for Located {}

/// Every error found in a policy directory or file (loading goes on past
/// the first one so an author can fix them all in one pass).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyErrors(pub Vec<Located>);

impl PolicyErrors {
    pub(crate) fn one(file: &Path, at: (u64, u64), problem: Problem) -> Self {
        Self(vec![Located::new(file, at, problem)])
    }

    /// In file, line and column order.
    pub(crate) fn sorted(mut self) -> Self {
        self.0
            .sort_by(|a, b| (&a.file, a.line, a.column).cmp(&(&b.file, b.line, b.column)));
        self
    }

    /// The code of the first error: the reason recorded when a load or a
    /// reload is rejected.
    #[must_use]
    pub fn code(&self) -> Reason {
        self.0.first().map_or(Reason::BadValue, Located::code)
    }

    /// The codes of all errors, in order.
    #[must_use]
    pub fn codes(&self) -> Vec<Reason> {
        self.0.iter().map(Located::code).collect()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Located> {
        self.0.iter()
    }
}

impl fmt::Display for PolicyErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for PolicyErrors {}

/// What is wrong. The text says what and why, and what to do about it;
/// [`Located`] adds where and the code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    #[error("cannot read it: {0}")]
    Io(String),
    #[error("{0}")]
    TooLarge(String),
    #[error("not valid YAML: {0}")]
    BadYaml(String),
    #[error("{0}; remove it or fix its spelling (policies/README.md lists every field)")]
    UnknownField(String),
    #[error("{0}; add it")]
    MissingField(String),
    #[error("{0}")]
    DuplicateField(String),
    #[error("{0}")]
    BadValue(String),
    #[error(
        "{what} {found:?} is not a capability policy: write `apiVersion: acelogic.dev/v1` and \
         `kind: CapabilityPolicy` (`kind: TrustStore` and `kind: IssuingPolicy` files are skipped \
         by the directory loader)"
    )]
    WrongKind { what: &'static str, found: String },
    #[error(
        "{what} {value:?}: a name is 1-63 bytes of lowercase letters, digits, '.', '_' and '-', \
         starting and ending with a letter or digit"
    )]
    BadName { what: &'static str, value: String },
    #[error("policy {name:?} is also defined at {first}; metadata.name must be unique")]
    DuplicatePolicy { name: String, first: String },
    #[error(
        "workload {name:?} is also defined at {first}; a workload is defined once across all \
         policy files"
    )]
    DuplicateWorkload { name: String, first: String },
    #[error(
        "rule {name:?} is also defined at {first}; decisions name the rule that allowed a \
         capability, so rule names are unique within a policy"
    )]
    DuplicateRule { name: String, first: String },
    #[error(
        "spec.workloads is empty: a policy governs one or more workloads; add one with a name \
         and its cgroups"
    )]
    NoWorkloads,
    #[error(
        "workload {name:?} lists no cgroups: list the cgroup paths it owns (such as \
         /acelogic/{name})"
    )]
    NoCgroups { name: String },
    #[error("cgroup {path:?}: {why}")]
    BadCgroup { path: String, why: String },
    #[error(
        "cgroup \"/\" is the root cgroup: governing it would govern the whole node; name the \
         workload's own cgroup subtree"
    )]
    CgroupRoot,
    #[error(
        "cgroup {path:?}: `*` stands for one whole path component (as in \
         /kubepods.slice/*/agent) and cannot be part of a name"
    )]
    CgroupWildcard { path: String },
    #[error(
        "cgroup {path} of workload {workload:?} can be the same cgroup as {other_path} of \
         workload {other:?} at {other_at}; each cgroup is governed by one workload, so make the \
         paths disjoint"
    )]
    CgroupConflict {
        path: String,
        workload: String,
        other_path: String,
        other: String,
        other_at: String,
    },
    #[error(
        "workload {name:?} gets scope id {id:#010x}, the same as workload {other:?} at \
         {other_at}; rename one of them"
    )]
    ScopeCollision {
        name: String,
        id: u32,
        other: String,
        other_at: String,
    },
    #[error(
        "baseline {kind} {entry} is inside never {kind} {never}: the baseline allows it with no \
         artifact while never forbids it; remove one of the two"
    )]
    BaselineInNever {
        kind: &'static str,
        entry: String,
        never: String,
    },
    #[error(
        "grantable rule {rule:?} names no issuers: list the trust-store issuers that may sign \
         artifacts under it"
    )]
    RuleNoIssuers { rule: String },
    #[error("rule {rule:?} grants nothing: list exec, write or connect entries")]
    RuleEmpty { rule: String },
    #[error("maxTtl {value:?}: {why}")]
    BadTtl { value: String, why: String },
    #[error("completedRetention {value:?}: {why}")]
    BadRetention { value: String, why: String },
    #[error(
        "maxUses is 0, so no artifact could ever be used: omit maxUses for no limit, or write 1 \
         or more"
    )]
    BadMaxUses,
    #[error(
        "grantable rule {rule:?}: {kind} {entry} lies entirely inside never {kind} {never}, so \
         no artifact can be granted it; remove it from the rule or narrow never"
    )]
    GrantInNever {
        rule: String,
        kind: &'static str,
        entry: String,
        never: String,
    },
    #[error("no policy files (*.yaml, *.yml) here: no workload is governed")]
    NoPolicies,
    #[error(
        "{what} {found:?} is not an issuing policy: write `apiVersion: acelogic.dev/v1` and \
         `kind: IssuingPolicy`"
    )]
    NotIssuingPolicy { what: &'static str, found: String },
    #[error(
        "spec.rules is empty: an issuing policy with no rule issues nothing; add auto, approve \
         or never rules"
    )]
    NoRules,
    #[error("{what} names no workload: list workload names, or [\"*\"] for every workload")]
    NoRuleWorkloads { what: String },
    #[error("rule {rule:?} has tier {tier}, which does not take {field}: {hint}")]
    NotForTier {
        rule: String,
        tier: &'static str,
        field: &'static str,
        hint: &'static str,
    },
    #[error("pendingTimeout {value:?}: {why}")]
    BadPendingTimeout { value: String, why: String },
    #[error(
        "approver group {group:?} lists no approvers: list trust-store approver names, or remove \
         the group"
    )]
    EmptyGroup { group: String },
    #[error("approver {name:?} is listed twice in group {group:?}; list it once")]
    DuplicateApprover { group: String, name: String },
    #[error(
        "rule {rule:?} requires approvals from group {group:?}, which approverGroups does not \
         define; define it or fix the spelling"
    )]
    UnknownGroup { rule: String, group: String },
    #[error("rule {rule:?}: approvals {why}")]
    BadApprovals { rule: String, why: String },
    #[error(
        "issuedPerHour is 0, so nothing could ever be issued: write 1 or more, or drop the rate \
         for no limit"
    )]
    BadRate,
}

impl Problem {
    /// The stable reason code.
    #[must_use]
    pub fn code(&self) -> Reason {
        match self {
            Self::Io(_) => Reason::Io,
            Self::TooLarge(_) => Reason::TooLarge,
            Self::BadYaml(_) => Reason::BadYaml,
            Self::UnknownField(_) => Reason::UnknownField,
            Self::MissingField(_) => Reason::MissingField,
            Self::DuplicateField(_) => Reason::DuplicateField,
            Self::BadValue(_) => Reason::BadValue,
            Self::WrongKind { .. } => Reason::WrongKind,
            Self::BadName { .. } => Reason::BadName,
            Self::DuplicatePolicy { .. } => Reason::DuplicatePolicy,
            Self::DuplicateWorkload { .. } => Reason::DuplicateWorkload,
            Self::DuplicateRule { .. } => Reason::DuplicateRule,
            Self::NoWorkloads => Reason::NoWorkloads,
            Self::NoCgroups { .. } => Reason::NoCgroups,
            Self::BadCgroup { .. } => Reason::BadCgroup,
            Self::CgroupRoot => Reason::CgroupRoot,
            Self::CgroupWildcard { .. } => Reason::CgroupWildcard,
            Self::CgroupConflict { .. } => Reason::CgroupConflict,
            Self::ScopeCollision { .. } => Reason::ScopeCollision,
            Self::BaselineInNever { .. } => Reason::BaselineInNever,
            Self::RuleNoIssuers { .. } => Reason::RuleNoIssuers,
            Self::RuleEmpty { .. } => Reason::RuleEmpty,
            Self::BadTtl { .. } => Reason::BadTtl,
            Self::BadRetention { .. } => Reason::BadRetention,
            Self::BadMaxUses => Reason::BadMaxUses,
            Self::GrantInNever { .. } => Reason::GrantInNever,
            Self::NoPolicies => Reason::NoPolicies,
            Self::NotIssuingPolicy { .. } => Reason::WrongKind,
            Self::NoRules => Reason::NoRules,
            Self::NoRuleWorkloads { .. } => Reason::NoWorkloads,
            Self::NotForTier { .. } => Reason::NotForTier,
            Self::BadPendingTimeout { .. } => Reason::BadPendingTimeout,
            Self::EmptyGroup { .. } => Reason::EmptyGroup,
            Self::DuplicateApprover { .. } => Reason::DuplicateApprover,
            Self::UnknownGroup { .. } => Reason::UnknownGroup,
            Self::BadApprovals { .. } => Reason::BadApprovals,
            Self::BadRate => Reason::BadRate,
        }
    }

    /// True for the problems that do not stop a policy from loading.
    #[must_use]
    pub fn is_warning(&self) -> bool {
        matches!(self, Self::GrantInNever { .. } | Self::NoPolicies)
    }
}

/// `file:line:column` of a position, for messages that point elsewhere.
pub(crate) fn at_text(file: &Path, (line, column): (u64, u64)) -> String {
    format!("{}:{line}:{column}", file.display())
}
