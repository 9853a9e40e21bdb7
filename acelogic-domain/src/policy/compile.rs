//! One file's raw shape to its workloads, with every check that needs only
//! that file. Checks that span files (names, cgroups and scope ids shared
//! between workloads) are in `set.rs`.

use std::{collections::BTreeMap, path::Path, path::PathBuf, time::Duration};

use serde_saphyr::Spanned;

use super::{
    Baseline, CgroupPattern, GrantRule, Located, Never, PolicyErrors, Problem, Workload,
    parse::{RawDoc, RawRule, RawSpec, pos},
    scope_id,
};
use crate::capability::{ConnectCap, PathPattern};

/// The longest `completedRetention` a rule may set.
pub(super) const MAX_COMPLETED_RETENTION: Duration = Duration::from_secs(30 * 24 * 3600);
/// The longest `maxTtl` a rule may set: the longest an artifact may live.
pub const MAX_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// One policy file, compiled.
#[derive(Debug, Clone)]
pub struct PolicyDoc {
    /// `metadata.name`.
    pub name: String,
    pub source: PathBuf,
    pub workloads: Vec<Workload>,
    pub warnings: Vec<Located>,
    pub(super) at: DocPositions,
}

/// A 1-based `(line, column)`.
pub(super) type Pos = (u64, u64);

/// Where things are, for errors found when files are put together.
#[derive(Debug, Clone, Default)]
pub(super) struct DocPositions {
    pub name: Pos,
    /// Per workload: its name, and each of its cgroups.
    pub workloads: Vec<(Pos, Vec<Pos>)>,
}

/// True when `s` is a valid name: 1-63 bytes of `[a-z0-9._-]`, starting
/// and ending with a letter or digit (the charset artifacts use for
/// workload and issuer names, so they compare by spelling).
#[must_use]
pub fn valid_name(s: &str) -> bool {
    let edge = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let inner = |b: u8| edge(b) || matches!(b, b'.' | b'_' | b'-');
    let bytes = s.as_bytes();
    !bytes.is_empty()
        && bytes.len() <= 63
        && bytes.first().copied().is_some_and(edge)
        && bytes.last().copied().is_some_and(edge)
        && bytes.iter().copied().all(inner)
}

/// True when every path `inner` matches, `outer` matches too.
pub(super) fn pattern_within(inner: &PathPattern, outer: &PathPattern) -> bool {
    match (inner, outer) {
        (PathPattern::Exact(p), _) => outer.matches(p),
        (PathPattern::Under(d), PathPattern::Under(o)) => d.is_within(o),
        (PathPattern::Under(_), PathPattern::Exact(_)) => false,
    }
}

/// True when some path is matched by both.
pub(super) fn patterns_overlap(a: &PathPattern, b: &PathPattern) -> bool {
    match a {
        PathPattern::Exact(p) => b.matches(p),
        PathPattern::Under(d) => b.overlaps_subtree(d),
    }
}

/// True when some connection is matched by both (names are compared as
/// names: nothing is resolved while compiling).
pub(super) fn connects_overlap(a: &ConnectCap, b: &ConnectCap) -> bool {
    a.protocol == b.protocol && a.ports.overlaps(b.ports) && a.host.overlaps(&b.host)
}

/// True when every connection `inner` matches, `outer` matches too.
pub(super) fn connect_within(inner: &ConnectCap, outer: &ConnectCap) -> bool {
    inner.protocol == outer.protocol
        && outer.ports.contains(inner.ports)
        && outer.host.contains(&inner.host)
}

struct Diag<'a> {
    file: &'a Path,
    errors: Vec<Located>,
    warnings: Vec<Located>,
}

impl Diag<'_> {
    fn error(&mut self, at: (u64, u64), problem: Problem) {
        self.errors.push(Located::new(self.file, at, problem));
    }

    fn warn(&mut self, at: (u64, u64), problem: Problem) {
        self.warnings.push(Located::new(self.file, at, problem));
    }

    fn name(&mut self, what: &'static str, s: &Spanned<String>) {
        if !valid_name(&s.value) {
            self.error(
                pos(s),
                Problem::BadName {
                    what,
                    value: super::cgroup::shorten(&s.value),
                },
            );
        }
    }
}

fn values<T: Clone>(list: &[Spanned<T>]) -> Vec<T> {
    list.iter().map(|s| s.value.clone()).collect()
}

pub(super) fn compile_doc(path: &Path, raw: RawDoc<RawSpec>) -> Result<PolicyDoc, PolicyErrors> {
    let mut d = Diag {
        file: path,
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    let meta_name = raw.metadata.name;
    d.name("metadata.name", &meta_name);
    let spec = raw.spec;

    let never = Never {
        exec: values(&spec.never.exec),
        write: values(&spec.never.write),
        connect: values(&spec.never.connect),
    };
    let b = &spec.baseline;
    let baseline = Baseline {
        exec: values(&b.exec),
        libraries: values(&b.libraries),
        write: values(&b.write),
        connect: values(&b.connect),
        unix_connect: values(&b.unix_connect),
    };
    check_baseline(&mut d, &spec.baseline, &never);

    let mut grantable = Vec::new();
    let mut rule_names: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for rule in &spec.grantable {
        let name = &rule.value.name;
        if let Some(first) = rule_names.get(&name.value) {
            d.error(
                pos(name),
                Problem::DuplicateRule {
                    name: name.value.clone(),
                    first: super::error::at_text(path, *first),
                },
            );
        } else {
            rule_names.insert(name.value.clone(), pos(name));
        }
        if let Some(r) = compile_rule(&mut d, rule, &never) {
            grantable.push(r);
        }
    }

    let mut at = DocPositions {
        name: pos(&meta_name),
        workloads: Vec::new(),
    };
    if spec.workloads.value.is_empty() {
        d.error(pos(&spec.workloads), Problem::NoWorkloads);
    }
    let mut workloads = Vec::new();
    for w in spec.workloads.value {
        d.name("workload name", &w.name);
        if w.cgroups.is_empty() {
            d.error(
                pos(&w.name),
                Problem::NoCgroups {
                    name: w.name.value.clone(),
                },
            );
        }
        let mut cgroups = Vec::new();
        let mut cgroup_at = Vec::new();
        for c in &w.cgroups {
            match CgroupPattern::parse(&c.value) {
                Ok(p) => {
                    cgroups.push(p);
                    cgroup_at.push(pos(c));
                }
                Err(problem) => d.error(pos(c), problem),
            }
        }
        at.workloads.push((pos(&w.name), cgroup_at));
        workloads.push(Workload {
            scope_id: scope_id(&w.name.value),
            name: w.name.value,
            policy: meta_name.value.clone(),
            source: path.to_owned(),
            cgroups,
            mode: w.mode,
            baseline: baseline.clone(),
            grantable: grantable.clone(),
            never: never.clone(),
        });
    }
    if !d.errors.is_empty() {
        return Err(PolicyErrors(d.errors));
    }
    Ok(PolicyDoc {
        name: meta_name.value,
        source: path.to_owned(),
        workloads,
        warnings: d.warnings,
        at,
    })
}

/// A baseline entry that never forbids is a contradiction the kernel
/// would settle silently in the baseline's favour (it allows by identity
/// and knows nothing of never), so it is an error, not a precedence rule.
/// Libraries are executable mappings, not execs, so never's exec list
/// does not apply to them.
fn check_baseline(d: &mut Diag<'_>, b: &super::parse::RawBaseline, never: &Never) {
    for e in &b.exec {
        if let Some(n) = never.exec.iter().find(|n| n.matches(&e.value)) {
            d.error(pos(e), in_never("exec", &e.value, n));
        }
    }
    for w in &b.write {
        if let Some(n) = never.write.iter().find(|n| patterns_overlap(&w.value, n)) {
            d.error(pos(w), in_never("write", &w.value, n));
        }
    }
    for c in &b.connect {
        if let Some(n) = never.connect.iter().find(|n| connects_overlap(&c.value, n)) {
            d.error(
                pos(c),
                in_never("connect", &connect_text(&c.value), &connect_text(n)),
            );
        }
    }
}

fn in_never(kind: &'static str, entry: &impl ToString, never: &impl ToString) -> Problem {
    Problem::BaselineInNever {
        kind,
        entry: entry.to_string(),
        never: never.to_string(),
    }
}

pub(super) fn connect_text(c: &ConnectCap) -> String {
    format!("{} {}:{}", c.protocol, c.host, c.ports)
}

fn compile_rule(d: &mut Diag<'_>, rule: &Spanned<RawRule>, never: &Never) -> Option<GrantRule> {
    let r = &rule.value;
    let name = r.name.value.clone();
    let before = d.errors.len();
    d.name("rule name", &r.name);
    if r.issuers.is_empty() {
        d.error(pos(rule), Problem::RuleNoIssuers { rule: name.clone() });
    }
    for i in &r.issuers {
        d.name("issuer", i);
    }
    if r.exec.is_empty() && r.write.is_empty() && r.connect.is_empty() {
        d.error(pos(rule), Problem::RuleEmpty { rule: name.clone() });
    }
    let max_ttl = match humantime::parse_duration(&r.max_ttl.value) {
        Ok(t) if t.is_zero() => Err("must be more than 0".to_owned()),
        Ok(t) if t > MAX_TTL => Err("is over 24h, the longest an artifact may live".to_owned()),
        Ok(t) => Ok(t),
        Err(e) => Err(format!("{e}; write a duration such as 15m, 1h or 1h30m")),
    };
    let max_ttl = max_ttl
        .map_err(|why| {
            d.error(
                pos(&r.max_ttl),
                Problem::BadTtl {
                    value: super::cgroup::shorten(&r.max_ttl.value),
                    why,
                },
            );
        })
        .unwrap_or_default();
    if let Some(u) = &r.max_uses
        && u.value == 0
    {
        d.error(pos(u), Problem::BadMaxUses);
    }
    let completed_retention = r.completed_retention.as_ref().and_then(|c| {
        let t = match humantime::parse_duration(&c.value) {
            Ok(t) if t.is_zero() => Err("must be more than 0".to_owned()),
            Ok(t) if t > MAX_COMPLETED_RETENTION => Err(
                "is over 30d, the longest the cluster store keeps a completed operation".to_owned(),
            ),
            Ok(t) => Ok(t),
            Err(e) => Err(format!("{e}; write a duration such as 24h or 7d")),
        };
        t.map_err(|why| {
            d.error(
                pos(c),
                Problem::BadRetention {
                    value: super::cgroup::shorten(&c.value),
                    why,
                },
            );
        })
        .ok()
    });
    for e in &r.exec {
        if let Some(n) = never.exec.iter().find(|n| pattern_within(&e.value, n)) {
            d.warn(pos(e), shadowed(&name, "exec", &e.value, n));
        }
    }
    for w in &r.write {
        if let Some(n) = never.write.iter().find(|n| pattern_within(&w.value, n)) {
            d.warn(pos(w), shadowed(&name, "write", &w.value, n));
        }
    }
    for c in &r.connect {
        if let Some(n) = never.connect.iter().find(|n| connect_within(&c.value, n)) {
            d.warn(
                pos(c),
                shadowed(&name, "connect", &connect_text(&c.value), &connect_text(n)),
            );
        }
    }
    (d.errors.len() == before).then(|| GrantRule {
        name,
        exec: values(&r.exec),
        write: values(&r.write),
        connect: values(&r.connect),
        issuers: r.issuers.iter().map(|i| i.value.clone()).collect(),
        max_ttl,
        max_uses: r.max_uses.as_ref().map(|u| u.value),
        approvals: r.approvals,
        operation_key_required: r.operation_key_required,
        completed_retention,
    })
}

fn shadowed(rule: &str, kind: &'static str, entry: &impl ToString, n: &impl ToString) -> Problem {
    Problem::GrantInNever {
        rule: rule.to_owned(),
        kind,
        entry: entry.to_string(),
        never: n.to_string(),
    }
}
