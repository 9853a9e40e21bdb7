//! Capability policies: which workloads are governed, what each may do
//! with no artifact (baseline), what artifacts may grant it and on which
//! terms (grantable), and what nothing may grant (never).
//!
//! Policies are YAML files in one directory (`policies/*.yaml`,
//! `*.yml`), Kubernetes-style (`apiVersion: acelogic.dev/v1`, `kind:
//! CapabilityPolicy`), parsed strictly: unknown fields, duplicate keys,
//! YAML 1.1 booleans and custom tags are errors. [`load_dir`] reads them
//! all, collects every error with `file:line:column` and a code, and
//! returns a complete [`PolicySet`] or nothing, so a daemon reloading them
//! keeps its last good set when a new one is wrong. `kind: TrustStore`
//! and `kind: IssuingPolicy` (`crate::issuing`) files live beside the
//! policies and are skipped (listed in [`Loaded::skipped`]). The format is documented in `policies/README.md`
//! and described for editors by `policies/schema/capability-policy.schema.json`.
//!
//! Admission ([`Workload::admit`]) decides whether a verified artifact's
//! capabilities may be granted and returns the strictest [`Terms`] its
//! rules demand; the engine compares the artifact against them.
//!
//! # Error and warning codes
//!
//! [`Located::code`], printed as `file:line:column: what: why [code]`:
//!
//! | code | meaning |
//! | --- | --- |
//! | `io` | the directory or a file cannot be read (also a dangling symlink) |
//! | `too-large` | a file over 1 MiB, or YAML over the parser's budgets (nesting, nodes, alias expansion) |
//! | `bad-yaml` | not well-formed YAML, not UTF-8, more than one document, not a mapping |
//! | `unknown-field` | a field the format does not define |
//! | `missing-field` | a required field is absent |
//! | `duplicate-field` | a key appears twice in one mapping |
//! | `bad-value` | a value of the wrong type or form: path, pattern, host, ports, protocol, mode, boolean, number |
//! | `wrong-kind` | `apiVersion` is not `acelogic.dev/v1` or `kind` is not `CapabilityPolicy` |
//! | `bad-name` | a policy, workload, rule or issuer name outside `[a-z0-9]([a-z0-9._-]*[a-z0-9])?`, 1-63 bytes |
//! | `duplicate-policy` | two files with the same `metadata.name` |
//! | `duplicate-workload` | a workload name defined twice (in any files) |
//! | `duplicate-rule` | a grantable rule name used twice in one policy |
//! | `no-workloads` | `spec.workloads` is empty |
//! | `no-cgroups` | a workload lists no cgroups |
//! | `bad-cgroup` | a cgroup path that is relative, has `.`/`..`/empty components, includes the mount, or is deeper than the kernel walks |
//! | `cgroup-root` | the cgroup `/`: the root cannot be governed |
//! | `cgroup-wildcard` | `*` used other than as a whole path component |
//! | `cgroup-conflict` | two workloads name cgroups that can be the same cgroup (equal, or `/a/*` and `/a/b`) |
//! | `scope-collision` | two workload names hash to the same scope id |
//! | `baseline-in-never` | a baseline exec, write or connect entry meets a never entry |
//! | `rule-no-issuers` | a grantable rule lists no issuers |
//! | `rule-empty` | a grantable rule lists no exec, write or connect entries |
//! | `bad-ttl` | `maxTtl` is not a duration, is zero or is over 24 h |
//! | `bad-retention` | `completedRetention` is not a duration, is zero or is over 30 days |
//! | `bad-max-uses` | `maxUses` is 0 |
//! | `grant-in-never` | warning: a grantable entry lies entirely inside never, so it can never be granted |
//! | `no-policies` | warning: the directory holds no policy file |
//!
//! [`Refusal::code`] (admission):
//!
//! | code | meaning |
//! | --- | --- |
//! | `never` | the capability meets the workload's never list |
//! | `not-grantable` | no grantable rule covers the capability |
//! | `issuer-not-allowed` | rules cover it, but none lists the artifact's issuer |
//! | `unresolvable` | a connect host name resolves to no address |
//! | `no-capabilities` | the artifact grants nothing |

mod admit;
mod cgroup;
mod compile;
mod cover;
mod error;
mod load;
mod model;
mod parse;

pub use admit::{Refusal, Terms};
pub use cgroup::CgroupPattern;
pub(crate) use cgroup::shorten;
pub use compile::{MAX_TTL, PolicyDoc, valid_name};
pub(crate) use cover::{Entries, Names, kind as cap_kind};
pub(crate) use error::at_text;
pub use error::{Located, PolicyErrors, Problem};
pub(crate) use load::read_limited;
pub use load::{InputsError, load_dir, load_inputs, parse_file};
pub use model::{
    Baseline, GrantRule, Loaded, Mode, Never, PolicySet, Workload, scope_id, scope_text,
};
pub(crate) use parse::Header;
pub use parse::MAX_POLICY_BYTES;
pub(crate) use parse::{ISSUING_KIND, RawDoc, options as yaml_options, pos, yaml_error};

#[cfg(test)]
mod tests;
