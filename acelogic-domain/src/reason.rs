//! Every refusal and authorization reason code in userspace, in one enum:
//! why a request was refused, why an artifact was accepted or ended, and
//! why the daemon wrote one of its own records.
//!
//! A code is stable kebab-case text: it is what lineage records, the
//! node API (`acelogic-reason` metadata), the collector and `acelogicctl`
//! print (`refused [code]`). The kernel's decision reasons live beside the
//! records in `acelogic_common::codes`; these are the ones userspace
//! decides. The gRPC status of each code is in `acelogic-proto` and its
//! `acelogicctl` exit code in [`Reason::exit_code`], both by exhaustive
//! match, so a new code does not compile until it has both. The table in
//! `docs/reasons.md` is generated from [`Reason::ALL`] and checked against
//! it by a test.

use std::{fmt, str::FromStr};

/// Which part of the product gives a code (a code given by several parts
/// is listed with the first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Group {
    /// Artifact envelopes, payloads and signatures.
    Artifact,
    /// Key files, trust stores, sign requests and other input files.
    File,
    /// Capability policy files.
    Policy,
    /// Admission of an artifact's capabilities by the workload's policy.
    Admission,
    /// The authority's issuing policy: its file and where a request lands.
    Issuing,
    /// The node's decision engine and its API.
    Engine,
    /// Why an accepted artifact ended, or was accepted.
    Outcome,
    /// The daemon's own records: start, stop, policy loads, freezes.
    Daemon,
    /// The lineage collector.
    Collector,
    /// The authority: agents' requests, tiers and approvals.
    Authority,
}

impl Group {
    /// Every group, in the order the documentation lists them.
    pub const ALL: [Self; 10] = [
        Self::Artifact,
        Self::File,
        Self::Policy,
        Self::Admission,
        Self::Issuing,
        Self::Engine,
        Self::Outcome,
        Self::Daemon,
        Self::Collector,
        Self::Authority,
    ];

    /// The heading of the group in the documentation.
    #[must_use]
    pub const fn title(self) -> &'static str {
        match self {
            Self::Artifact => "Artifacts: envelope, payload and signatures",
            Self::File => "Key files, trust stores and sign requests",
            Self::Policy => "Capability policies",
            Self::Admission => "Admission by the workload's policy",
            Self::Issuing => "The authority's issuing policy",
            Self::Engine => "The node's decision engine and API",
            Self::Outcome => "Why an artifact was accepted or ended",
            Self::Daemon => "The daemon's own records",
            Self::Collector => "The lineage collector",
            Self::Authority => "The authority: requests and approvals",
        }
    }
}

macro_rules! reasons {
    ($($variant:ident = $code:literal, $group:ident, $summary:literal;)*) => {
        /// A stable reason code; see the module docs.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum Reason {
            $(
                #[doc = $summary]
                $variant,
            )*
        }

        impl Reason {
            /// Every code, in documentation order.
            pub const ALL: &[Self] = &[$(Self::$variant),*];

            /// The code as it appears on the wire and in records.
            #[must_use]
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $code,)*
                }
            }

            /// What the code means, in one line.
            #[must_use]
            pub const fn summary(self) -> &'static str {
                match self {
                    $(Self::$variant => $summary,)*
                }
            }

            /// The part of the product that gives it.
            #[must_use]
            pub const fn group(self) -> Group {
                match self {
                    $(Self::$variant => Group::$group,)*
                }
            }
        }
    };
}

reasons! {
    TooLarge = "too-large", Artifact, "an input over its size limit: an envelope over 64 KiB or a payload over 32 KiB, a policy or key file over 1 MiB, YAML over the parser's budgets";
    BadEncoding = "bad-encoding", Artifact, "not UTF-8, or not standard padded base64";
    BadJson = "bad-json", Artifact, "not well-formed JSON, or data after the object";
    UnknownField = "unknown-field", Artifact, "a field the format does not define";
    MissingField = "missing-field", Artifact, "a required field is absent";
    DuplicateField = "duplicate-field", Artifact, "a field appears twice in one object or mapping";
    BadPayloadType = "bad-payload-type", Artifact, "`payloadType` is not `application/vnd.acelogic.artifact+json`";
    BadVersion = "bad-version", Artifact, "payload `version` is not 1";
    BadValue = "bad-value", Artifact, "a value of the wrong type or form: name, id, path, pattern, port, host, timestamp, keyid, count, charset";
    BadTimeWindow = "bad-time-window", Artifact, "`expires` not after `notBefore`, a window over 24 h, or a bad `ttl`";
    NoSignatures = "no-signatures", Artifact, "the envelope has no signature";
    TooManySignatures = "too-many-signatures", Artifact, "more than 8 signatures";
    DuplicateKeyId = "duplicate-keyid", Artifact, "one keyid signs twice, or is listed twice in a trust store";
    BadSignature = "bad-signature", Artifact, "a trusted key's signature does not verify: the signed bytes were altered";
    NoIssuerSignature = "no-issuer-signature", Artifact, "no valid signature by a current issuer key with the payload's issuer name";
    RevokedKey = "revoked-key", Artifact, "the only signature for the issuer is by a revoked key";
    Io = "io", File, "a file or directory cannot be read or written";
    BadYaml = "bad-yaml", File, "not well-formed YAML, not UTF-8, more than one document, or not a mapping";
    WrongKind = "wrong-kind", File, "`apiVersion` or `kind` is not the one this file must have";
    BadKey = "bad-key", File, "a public key that is not a usable Ed25519 key";
    KeyIdMismatch = "key-id-mismatch", File, "a `keyId` that is not derived from its `publicKey`";
    KeyFileExists = "key-file-exists", File, "the key file to write exists already";
    InsecureKeyFile = "insecure-key-file", File, "a secret key file that group or others may read";
    BadKeyFile = "bad-key-file", File, "a key file that is not an ACELOGIC secret key";
    NoRandomness = "no-randomness", File, "the operating system gave no random bytes";
    BadName = "bad-name", Policy, "a policy, workload, rule, issuer, audience, group or approver name outside `[a-z0-9]([a-z0-9._-]*[a-z0-9])?`, 1-63 bytes";
    DuplicatePolicy = "duplicate-policy", Policy, "two files with the same `metadata.name`";
    DuplicateWorkload = "duplicate-workload", Policy, "a workload name defined twice (in any files)";
    DuplicateRule = "duplicate-rule", Policy, "a grantable or issuing rule name used twice in one policy";
    NoWorkloads = "no-workloads", Policy, "`spec.workloads` is empty, or an issuing rule or rate names no workload";
    NoCgroups = "no-cgroups", Policy, "a workload lists no cgroups";
    BadCgroup = "bad-cgroup", Policy, "a cgroup path that is relative, has `.`, `..` or empty components, includes the mount, or is deeper than the kernel walks";
    CgroupRoot = "cgroup-root", Policy, "the cgroup `/`: the root cannot be governed";
    CgroupWildcard = "cgroup-wildcard", Policy, "`*` used other than as a whole path component";
    CgroupConflict = "cgroup-conflict", Policy, "two workloads name cgroups that can be the same cgroup";
    ScopeCollision = "scope-collision", Policy, "two workload names hash to the same scope id";
    BaselineInNever = "baseline-in-never", Policy, "a baseline exec, write or connect entry meets a never entry";
    RuleNoIssuers = "rule-no-issuers", Policy, "a grantable rule lists no issuers";
    RuleEmpty = "rule-empty", Policy, "a grantable or issuing rule lists no exec, write or connect entries";
    BadTtl = "bad-ttl", Policy, "`maxTtl` is not a duration, is zero or is over 24 h";
    BadRetention = "bad-retention", Policy, "`completedRetention` is not a duration, is zero or is over 30 days";
    BadMaxUses = "bad-max-uses", Policy, "`maxUses` is 0";
    GrantInNever = "grant-in-never", Policy, "warning: a grantable entry lies entirely inside never, so it can never be granted";
    NoPolicies = "no-policies", Policy, "warning: the directory holds no policy file";
    Never = "never", Admission, "the capability meets the workload's never list";
    NotGrantable = "not-grantable", Admission, "no grantable rule covers the capability";
    IssuerNotAllowed = "issuer-not-allowed", Admission, "rules cover the capability, but none lists the artifact's issuer";
    Unresolvable = "unresolvable", Admission, "a connect host name resolves to no address";
    NoCapabilities = "no-capabilities", Admission, "the artifact grants nothing";
    NoRules = "no-rules", Issuing, "an issuing policy's `spec.rules` is empty";
    NotForTier = "not-for-tier", Issuing, "an issuing rule field its tier does not take: `maxTtl` or `maxUses` on `never`, `approvals` or `pendingTimeout` on `auto` or `never`";
    BadPendingTimeout = "bad-pending-timeout", Issuing, "`pendingTimeout` is not a duration, is zero or is over 24 h";
    EmptyGroup = "empty-group", Issuing, "an approver group lists no approvers";
    DuplicateApprover = "duplicate-approver", Issuing, "an approver listed twice in one group";
    UnknownGroup = "unknown-group", Issuing, "`approvals.groups` names a group `approverGroups` does not define";
    BadApprovals = "bad-approvals", Issuing, "`approvals` that cannot be met or say nothing: `count` 0, no groups, a group listed twice, `count` over the approvers of its groups, or over the groups with `distinctGroups`";
    BadRate = "bad-rate", Issuing, "`issuedPerHour` is 0";
    NotIssuable = "not-issuable", Issuing, "no auto or approve rule of the issuing policy covers the capability for the workload";
    MixedApprovalRules = "mixed-approval-rules", Issuing, "the capabilities fall under two different approve rules: split the request, one per rule";
    NotYetValid = "not-yet-valid", Engine, "`notBefore` is later than now plus the allowed clock skew";
    Expired = "expired", Engine, "the artifact's `expires` has passed (refused), or its time ran out (ended)";
    WrongAudience = "wrong-audience", Engine, "the artifact is for another audience (cluster)";
    WrongNode = "wrong-node", Engine, "the artifact names another node, or a record or Hello names another node than the one shipping";
    UnknownWorkload = "unknown-workload", Engine, "no policy defines the subject workload";
    WrongCgroup = "wrong-cgroup", Engine, "the subject cgroup is not one the workload owns";
    WorkloadFrozen = "workload-frozen", Engine, "the workload is frozen";
    TtlExceeded = "ttl-exceeded", Engine, "the validity window is longer than the matched rules allow";
    UsesUnbounded = "uses-unbounded", Engine, "the rules limit uses and the artifact sets no `maxUses`";
    UsesExceeded = "uses-exceeded", Engine, "`maxUses` is more than the matched rules allow";
    ApprovalMissing = "approval-missing", Engine, "fewer distinct approvers signed than the matched rules require";
    OperationKeyRequired = "operation-key-required", Engine, "the matched rules require an `operationKey` and the artifact has none";
    DigestMismatch = "digest-mismatch", Engine, "the binary's sha256 is not the one the artifact names";
    ObjectMissing = "object-missing", Engine, "a granted path does not exist or cannot be opened";
    ObjectChanged = "object-changed", Engine, "a granted object changed while it was being resolved";
    TooManyEntries = "too-many-entries", Engine, "the capabilities resolve to more kernel entries than one artifact may hold";
    Replayed = "replayed", Engine, "the artifact id was accepted before (spent set)";
    OperationConflict = "operation-conflict", Engine, "another live artifact holds the operation key (on this node, or on the node the cluster store names)";
    OperationCompleted = "operation-completed", Engine, "the operation key was completed by a one-use artifact, and this artifact does not name it as its `parent`";
    OperationUnsettled = "operation-unsettled", Engine, "a one-use holder of the operation key ended without its node reporting whether it was used: it may have run, so nothing runs it again until an administrator releases the key";
    ClusterStoreUnavailable = "cluster-store-unavailable", Engine, "the cluster store did not answer in time (or its answer was unreadable): artifacts that need it are refused";
    InstallFailed = "install-failed", Engine, "the kernel refused the grants; nothing was granted";
    StateFailed = "state-failed", Engine, "the durable state could not be read or committed; nothing was granted";
    RecordFailed = "record-failed", Engine, "the decision could not be recorded; nothing was granted";
    UnknownArtifact = "unknown-artifact", Engine, "no artifact with that id is known";
    NotLive = "not-live", Engine, "the artifact is no longer live";
    GovernedCaller = "governed-caller", Engine, "an administrative call from a process in a governed cgroup";
    BadRequest = "bad-request", Engine, "a request that is malformed or missing a field";
    NoCgroup = "no-cgroup", Engine, "`acelogicctl run`: the workload has no governed cgroup on this node";
    Granted = "granted", Outcome, "accepted: every grant is installed";
    Consumed = "consumed", Outcome, "ended: every use of every kernel entry was consumed";
    Revoked = "revoked", Outcome, "revoked: `acelogicctl revoke` (the reason it was given is the record's detail)";
    PolicyNarrowed = "policy-narrowed", Outcome, "revoked: the reloaded policy no longer permits it";
    KeyRevoked = "key-revoked", Outcome, "revoked: a key whose signature accepted it was removed from the trust store, listed in `revokedKeyIds` or rebound (rotation), or the approvals left are fewer than required";
    KernelStateLost = "kernel-state-lost", Outcome, "failed: the kernel holds no entries for its grant (pinned state was removed)";
    OrphanGrant = "orphan-grant", Outcome, "a kernel grant that no live artifact holds was removed";
    Operator = "operator", Outcome, "revoked by an operator";
    LeaseEnded = "lease-ended", Outcome, "revoked: the cluster lease behind its operation key ended early (released by an administrator, or lost)";
    OperationReleased = "operation-released", Outcome, "an administrator released an operation key in the cluster store";
    ClusterStoreAvailable = "cluster-store-available", Outcome, "the cluster store answers again after it did not";
    Start = "start", Daemon, "outcome `daemon-start`: the daemon started (a new epoch)";
    Signal = "signal", Daemon, "outcome `daemon-stop`: the daemon stopped on a signal; enforcement stays pinned";
    Loaded = "loaded", Daemon, "outcome `policy-loaded`: a policy was loaded and applied";
    InvalidPolicy = "invalid-policy", Daemon, "outcome `policy-rejected`: a changed policy did not load; the one in force stays";
    Frozen = "frozen", Daemon, "outcome `frozen`: an operator froze the workload (`acelogicctl freeze`)";
    Unfrozen = "unfrozen", Daemon, "outcome `unfrozen`: an operator lifted the freeze (`acelogicctl unfreeze`)";
    BadProof = "bad-proof", Collector, "a Hello whose signature by the node key does not verify";
    StaleHello = "stale-hello", Collector, "a Hello made too far from the collector's time";
    UnknownNode = "unknown-node", Collector, "a node the collector has no enrolled key for";
    WrongNodeKey = "wrong-node-key", Collector, "a node whose key is not the one enrolled for it";
    Oversized = "oversized", Collector, "a batch or message over the collector's limits";
    BrokenChain = "broken-chain", Collector, "a record's `prev_hash` or sequence does not follow its predecessor";
    Altered = "altered", Collector, "a record does not hash to its chained hash";
    Undecodable = "undecodable", Collector, "a record that is not a lineage record";
    NotFound = "not-found", Collector, "the queried process, artifact or node is not in the store";
    StoreFailed = "store-failed", Collector, "the store could not read or commit; nothing was acknowledged";
    ShuttingDown = "shutting-down", Collector, "the collector is stopping";
    Gap = "gap", Collector, "`lineage verify`: the chain verifies but records are missing (a recorded gap)";
    VerifyFailed = "verify-failed", Collector, "`lineage verify`: a stored chain or checkpoint does not verify";
    UnauthenticatedClient = "unauthenticated-client", Collector, "a query or web page without a client certificate signed by the collector's client CA (`--client-ca`), or with one that is expired or not yet valid";
    RoleForbids = "role-forbids", Collector, "the client certificate's role does not allow the query: `reader` asks tree, artifact and denials; `auditor` also verify, checkpoints and export; `node` only ships";
    NeverAutomated = "never-automated", Authority, "the issuing policy's `never` tier: refused at once, no approver is asked";
    RateLimited = "rate-limited", Authority, "the workload's issuing rate envelope for the last hour is spent";
    IdentityMismatch = "identity-mismatch", Authority, "a request names a workload other than the caller's own";
    RequestDenied = "request-denied", Authority, "an approver denied the request (the reason is theirs)";
    RequestExpired = "request-expired", Authority, "a pending request was not approved before it expired";
    UnknownRequest = "unknown-request", Authority, "the authority has no request with that id";
    NotPending = "not-pending", Authority, "the request is no longer pending (issued, denied, expired or refused)";
    NotApprover = "not-approver", Authority, "the key is not a current approver key in a group the request's rule names";
    AlreadyApproved = "already-approved", Authority, "this approver, or another of the same group where groups must differ, already approved";
    NoAuthority = "no-authority", Authority, "the daemon has no authority configured (`--authority`)";
    AuthorityUnavailable = "authority-unavailable", Authority, "the authority could not be reached or answered with an error";
    BadNodeSignature = "bad-node-signature", Authority, "a relayed request whose node signature does not verify against the enrolled node key";
}

impl Reason {
    /// `acelogicctl`'s exit code when a command ends with this reason:
    /// 1 for a refusal or invalid input it could parse, 2 for input that
    /// cannot be read. (3, daemon unreachable, and 4, internal, carry no
    /// reason.)
    #[must_use]
    pub const fn exit_code(self) -> u8 {
        match self {
            Self::Io => 2,
            Self::TooLarge
            | Self::BadEncoding
            | Self::BadJson
            | Self::UnknownField
            | Self::MissingField
            | Self::DuplicateField
            | Self::BadPayloadType
            | Self::BadVersion
            | Self::BadValue
            | Self::BadTimeWindow
            | Self::NoSignatures
            | Self::TooManySignatures
            | Self::DuplicateKeyId
            | Self::BadSignature
            | Self::NoIssuerSignature
            | Self::RevokedKey
            | Self::BadYaml
            | Self::WrongKind
            | Self::BadKey
            | Self::KeyIdMismatch
            | Self::KeyFileExists
            | Self::InsecureKeyFile
            | Self::BadKeyFile
            | Self::NoRandomness
            | Self::BadName
            | Self::DuplicatePolicy
            | Self::DuplicateWorkload
            | Self::DuplicateRule
            | Self::NoWorkloads
            | Self::NoCgroups
            | Self::BadCgroup
            | Self::CgroupRoot
            | Self::CgroupWildcard
            | Self::CgroupConflict
            | Self::ScopeCollision
            | Self::BaselineInNever
            | Self::RuleNoIssuers
            | Self::RuleEmpty
            | Self::BadTtl
            | Self::BadRetention
            | Self::BadMaxUses
            | Self::GrantInNever
            | Self::NoPolicies
            | Self::Never
            | Self::NotGrantable
            | Self::IssuerNotAllowed
            | Self::Unresolvable
            | Self::NoCapabilities
            | Self::NoRules
            | Self::NotForTier
            | Self::BadPendingTimeout
            | Self::EmptyGroup
            | Self::DuplicateApprover
            | Self::UnknownGroup
            | Self::BadApprovals
            | Self::BadRate
            | Self::NotIssuable
            | Self::MixedApprovalRules
            | Self::NotYetValid
            | Self::Expired
            | Self::WrongAudience
            | Self::WrongNode
            | Self::UnknownWorkload
            | Self::WrongCgroup
            | Self::WorkloadFrozen
            | Self::TtlExceeded
            | Self::UsesUnbounded
            | Self::UsesExceeded
            | Self::ApprovalMissing
            | Self::OperationKeyRequired
            | Self::DigestMismatch
            | Self::ObjectMissing
            | Self::ObjectChanged
            | Self::TooManyEntries
            | Self::Replayed
            | Self::OperationConflict
            | Self::OperationCompleted
            | Self::OperationUnsettled
            | Self::ClusterStoreUnavailable
            | Self::InstallFailed
            | Self::StateFailed
            | Self::RecordFailed
            | Self::UnknownArtifact
            | Self::NotLive
            | Self::GovernedCaller
            | Self::BadRequest
            | Self::NoCgroup
            | Self::Granted
            | Self::Consumed
            | Self::Revoked
            | Self::PolicyNarrowed
            | Self::KeyRevoked
            | Self::KernelStateLost
            | Self::OrphanGrant
            | Self::Operator
            | Self::LeaseEnded
            | Self::OperationReleased
            | Self::ClusterStoreAvailable
            | Self::Start
            | Self::Signal
            | Self::Loaded
            | Self::InvalidPolicy
            | Self::Frozen
            | Self::Unfrozen
            | Self::BadProof
            | Self::StaleHello
            | Self::UnknownNode
            | Self::WrongNodeKey
            | Self::Oversized
            | Self::BrokenChain
            | Self::Altered
            | Self::Undecodable
            | Self::NotFound
            | Self::StoreFailed
            | Self::ShuttingDown
            | Self::Gap
            | Self::VerifyFailed
            | Self::UnauthenticatedClient
            | Self::RoleForbids
            | Self::NeverAutomated
            | Self::RateLimited
            | Self::IdentityMismatch
            | Self::RequestDenied
            | Self::RequestExpired
            | Self::UnknownRequest
            | Self::NotPending
            | Self::NotApprover
            | Self::AlreadyApproved
            | Self::NoAuthority
            | Self::AuthorityUnavailable
            | Self::BadNodeSignature => 1,
        }
    }

    /// The markdown reference of every code (`docs/reasons.md`), grouped.
    #[must_use]
    pub fn markdown() -> String {
        let mut out = String::from(
            "# Reason codes\n\n\
             Generated from `acelogic-domain/src/reason.rs` (`cargo xtask reasons`); a unit \
             test fails when this file and the code disagree. Every code is printed as \
             `[code]` by `acelogicctl`, carried in the `acelogic-reason` gRPC metadata and \
             stored in lineage records. `acelogicctl` exits 1 on any of them but `io` (2); \
             3 means the daemon or collector is unreachable and 4 an internal error.\n",
        );
        for group in Group::ALL {
            out.push_str(&format!(
                "\n## {}\n\n| code | meaning |\n|---|---|\n",
                group.title()
            ));
            for r in Self::ALL.iter().filter(|r| r.group() == group) {
                out.push_str(&format!("| `{}` | {} |\n", r.as_str(), r.summary()));
            }
        }
        out
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A code this build does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown reason code {0:?}")]
pub struct UnknownReason(pub String);

impl FromStr for Reason {
    type Err = UnknownReason;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .iter()
            .copied()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| UnknownReason(s.to_owned()))
    }
}

impl PartialEq<&str> for Reason {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<str> for Reason {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

/// A refused request: the stable reason code and what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {why}")]
pub struct Refusal {
    pub code: Reason,
    pub why: String,
}

impl Refusal {
    #[must_use]
    pub fn new(code: Reason, why: impl Into<String>) -> Self {
        Self {
            code,
            why: why.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_kebab_case_and_round_trip() {
        let mut seen = std::collections::BTreeSet::new();
        for r in Reason::ALL {
            let s = r.as_str();
            assert!(seen.insert(s), "{s} twice");
            assert!(
                s.bytes().all(|b| b.is_ascii_lowercase() || b == b'-'),
                "{s} is not kebab-case"
            );
            assert_eq!(s.parse::<Reason>(), Ok(*r));
            assert!(!r.summary().is_empty());
        }
        assert!("no-such-code".parse::<Reason>().is_err());
    }

    /// docs/reasons.md is the generated table, byte for byte. With
    /// `ACELOGIC_BLESS=1` (what `cargo xtask reasons` sets) it writes the
    /// file first.
    #[test]
    fn docs_table_matches_the_enum() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/reasons.md");
        if std::env::var_os("ACELOGIC_BLESS").is_some() {
            std::fs::write(path, Reason::markdown()).unwrap();
        }
        let on_disk = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            on_disk == Reason::markdown(),
            "docs/reasons.md is out of date with acelogic-domain/src/reason.rs: run `cargo xtask reasons`"
        );
    }
}
