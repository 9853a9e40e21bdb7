//! The authority's issuing policy: for each capability request, which
//! tier it lands in (issued at once, issued once approved, never issued),
//! under which rule, and on which terms (TTL, uses, approvals, rate).
//!
//! One YAML file (`apiVersion: acelogic.dev/v1`, `kind: IssuingPolicy`),
//! parsed as strictly as capability policies (unknown fields, duplicate
//! keys, YAML 1.1 booleans and custom tags are errors; same budgets and
//! 1 MiB limit), every error collected with `file:line:column` and a code.
//! It may live in the capability policy directory: `policy::load_dir`
//! skips it. The format is documented in `policies/README.md` and
//! described for editors by `policies/schema/issuing-policy.schema.json`.
//!
//! Placement ([`IssuingPolicy::place`]) uses the node's coverage
//! semantics (shared with `policy` admission), so what the authority
//! issues under a rule is judged the same way on the node.
//!
//! # Error codes
//!
//! Besides the file codes shared with capability policies (`io`,
//! `too-large`, `bad-yaml`, `unknown-field`, `missing-field`,
//! `duplicate-field`, `bad-value`, `wrong-kind`, `bad-name`,
//! `duplicate-rule`, `no-workloads`, `rule-empty`, `bad-ttl`,
//! `bad-max-uses`), [`Located::code`](crate::policy::Located::code):
//!
//! | code | meaning |
//! | --- | --- |
//! | `no-rules` | `spec.rules` is empty |
//! | `not-for-tier` | `maxTtl` or `maxUses` on a never rule, `approvals` or `pendingTimeout` on an auto or never rule |
//! | `bad-pending-timeout` | `pendingTimeout` is not a duration, is zero or is over 24 h |
//! | `empty-group` | an approver group lists no approvers |
//! | `duplicate-approver` | an approver listed twice in one group |
//! | `unknown-group` | `approvals.groups` names a group `approverGroups` does not define |
//! | `bad-approvals` | `count` 0, no groups, a group listed twice, `count` over the approvers of its groups, or over the groups with `distinctGroups` |
//! | `bad-rate` | `issuedPerHour` is 0 |
//!
//! A rule's tier-required fields (`maxTtl` for auto and approve,
//! `approvals` for approve) are `missing-field` when absent.
//!
//! [`IssueRefusal::code`] (placement):
//!
//! | code | meaning |
//! | --- | --- |
//! | `not-issuable` | no auto or approve rule applying to the workload covers the capability |
//! | `mixed-approval-rules` | the capabilities fall under two different approve rules: split the request |
//! | `unresolvable` | a connect host name resolves to no address |
//! | `no-capabilities` | the request names no capability |

mod compile;
mod model;
mod parse;
mod place;

pub use model::{
    ANY_WORKLOAD, Approvals, DEFAULT_PENDING_TIMEOUT, IssueRule, IssuingPolicy, Rate, Tier,
};
pub use parse::{load_file, parse_file};
pub use place::{IssueRefusal, Placement};

#[cfg(test)]
mod tests;
