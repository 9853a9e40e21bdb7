//! The raw shape to an [`IssuingPolicy`], with every check the file
//! needs on its own: names, tiers and the fields each takes, approver
//! groups and approvals that can be met, rates.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
    time::Duration,
};

use serde_saphyr::Spanned;

use super::{
    ANY_WORKLOAD, Approvals, DEFAULT_PENDING_TIMEOUT, IssueRule, IssuingPolicy, Rate, Tier,
    parse::{RawApprovals, RawDoc, RawRule, RawTier},
};
use crate::policy::{Located, MAX_TTL, PolicyErrors, Problem, pos, shorten, valid_name};

type Pos = (u64, u64);

struct Diag<'a> {
    file: &'a Path,
    errors: Vec<Located>,
}

impl Diag<'_> {
    fn error(&mut self, at: Pos, problem: Problem) {
        self.errors.push(Located::new(self.file, at, problem));
    }

    fn name(&mut self, what: &'static str, value: &str, at: Pos) {
        if !valid_name(value) {
            let value = shorten(value);
            self.error(at, Problem::BadName { what, value });
        }
    }

    /// A workload list: one or more names, or `*` alone.
    fn workloads(&mut self, what: &str, list: &Spanned<Vec<Spanned<String>>>) -> Vec<String> {
        if list.value.is_empty() {
            let what = what.to_owned();
            self.error(pos(list), Problem::NoRuleWorkloads { what });
        }
        let any = list.value.iter().any(|w| w.value == ANY_WORKLOAD);
        for w in &list.value {
            if w.value == ANY_WORKLOAD {
                if list.value.len() > 1 {
                    self.error(
                        pos(w),
                        Problem::BadValue(format!(
                            "{what}: \"*\" stands for every workload, so it is listed alone"
                        )),
                    );
                }
            } else if !any {
                self.name("workload name", &w.value, pos(w));
            }
        }
        list.value.iter().map(|w| w.value.clone()).collect()
    }

    /// A duration in (0, 24h].
    fn duration(&mut self, s: &Spanned<String>, bad: fn(String, String) -> Problem) -> Duration {
        let t = match humantime::parse_duration(&s.value) {
            Ok(t) if t.is_zero() => Err("must be more than 0".to_owned()),
            Ok(t) if t > MAX_TTL => Err("is over 24h".to_owned()),
            Ok(t) => Ok(t),
            Err(e) => Err(format!("{e}; write a duration such as 15m, 1h or 1h30m")),
        };
        t.unwrap_or_else(|why| {
            self.error(pos(s), bad(shorten(&s.value), why));
            Duration::ZERO
        })
    }
}

fn values<T: Clone>(list: &[Spanned<T>]) -> Vec<T> {
    list.iter().map(|s| s.value.clone()).collect()
}

pub(super) fn compile(
    path: &Path,
    raw: RawDoc,
    sha256: [u8; 32],
) -> Result<IssuingPolicy, PolicyErrors> {
    let mut d = Diag {
        file: path,
        errors: Vec::new(),
    };
    let meta = raw.metadata.name;
    d.name("metadata.name", &meta.value, pos(&meta));
    let spec = raw.spec;
    d.name("issuer", &spec.issuer.value, pos(&spec.issuer));
    d.name("audience", &spec.audience.value, pos(&spec.audience));

    let mut groups = BTreeMap::new();
    for (group, members) in spec.approver_groups {
        d.name("approver group", &group, pos(&members));
        if members.value.is_empty() {
            let group = group.clone();
            d.error(pos(&members), Problem::EmptyGroup { group });
        }
        let mut seen = BTreeSet::new();
        for m in &members.value {
            d.name("approver", &m.value, pos(m));
            if !seen.insert(m.value.as_str()) {
                let (group, name) = (group.clone(), m.value.clone());
                d.error(pos(m), Problem::DuplicateApprover { group, name });
            }
        }
        groups.insert(group, values(&members.value));
    }

    if spec.rules.value.is_empty() {
        d.error(pos(&spec.rules), Problem::NoRules);
    }
    let mut rules = Vec::new();
    let mut names: BTreeMap<String, Pos> = BTreeMap::new();
    for rule in &spec.rules.value {
        let name = &rule.value.name;
        if let Some(first) = names.get(&name.value) {
            d.error(
                pos(name),
                Problem::DuplicateRule {
                    name: name.value.clone(),
                    first: crate::policy::at_text(path, *first),
                },
            );
        } else {
            names.insert(name.value.clone(), pos(name));
        }
        rules.push(compile_rule(&mut d, rule, &groups));
    }

    let mut rates = Vec::new();
    for (i, rate) in spec.rates.iter().enumerate() {
        let r = &rate.value;
        let workloads = d.workloads(&format!("rate {}", i + 1), &r.workloads);
        if r.issued_per_hour.value == 0 {
            d.error(pos(&r.issued_per_hour), Problem::BadRate);
        }
        rates.push(Rate {
            workloads,
            issued_per_hour: r.issued_per_hour.value,
        });
    }

    if !d.errors.is_empty() {
        return Err(PolicyErrors(d.errors));
    }
    Ok(IssuingPolicy {
        name: meta.value,
        issuer: spec.issuer.value,
        audience: spec.audience.value,
        groups,
        rules,
        rates,
        sha256,
        source: path.to_owned(),
    })
}

fn compile_rule(
    d: &mut Diag<'_>,
    rule: &Spanned<RawRule>,
    groups: &BTreeMap<String, Vec<String>>,
) -> IssueRule {
    let r = &rule.value;
    let name = r.name.value.clone();
    d.name("rule name", &name, pos(&r.name));
    let workloads = d.workloads(&format!("rule {name:?}"), &r.workloads);
    if r.exec.is_empty() && r.write.is_empty() && r.connect.is_empty() {
        d.error(pos(rule), Problem::RuleEmpty { rule: name.clone() });
    }
    let raw_tier = r.tier.value;
    let not_for = |d: &mut Diag<'_>, at: Pos, field: &'static str, hint: &'static str| {
        let (rule, tier) = (name.clone(), raw_tier.name());
        d.error(
            at,
            Problem::NotForTier {
                rule,
                tier,
                field,
                hint,
            },
        );
    };
    let requires = |d: &mut Diag<'_>, field: &str| {
        d.error(
            pos(rule),
            Problem::MissingField(format!(
                "rule {name:?} has tier {}, which requires {field}",
                raw_tier.name()
            )),
        );
    };

    let max_ttl = match (&r.max_ttl, raw_tier) {
        (Some(t), RawTier::Never) => {
            not_for(d, pos(t), "maxTtl", "nothing is issued under it; remove it");
            None
        }
        (Some(t), _) => Some(d.duration(t, |value, why| Problem::BadTtl { value, why })),
        (None, RawTier::Never) => None,
        (None, _) => {
            requires(d, "maxTtl");
            None
        }
    };
    let max_uses = r.max_uses.as_ref().map(|u| {
        if raw_tier == RawTier::Never {
            not_for(
                d,
                pos(u),
                "maxUses",
                "nothing is issued under it; remove it",
            );
        } else if u.value == 0 {
            d.error(pos(u), Problem::BadMaxUses);
        }
        u.value
    });
    if raw_tier != RawTier::Approve {
        if let Some(a) = &r.approvals {
            not_for(d, pos(a), "approvals", "use tier approve, or remove them");
        }
        if let Some(t) = &r.pending_timeout {
            not_for(
                d,
                pos(t),
                "pendingTimeout",
                "only approve rules wait; remove it",
            );
        }
    }
    let tier = match raw_tier {
        RawTier::Auto => Tier::Auto,
        RawTier::Never => Tier::Never,
        RawTier::Approve => {
            let pending_timeout = r
                .pending_timeout
                .as_ref()
                .map_or(DEFAULT_PENDING_TIMEOUT, |t| {
                    d.duration(t, |value, why| Problem::BadPendingTimeout { value, why })
                });
            let approvals = if let Some(a) = &r.approvals {
                approvals(d, &name, &a.value, groups, pending_timeout)
            } else {
                requires(d, "approvals (count and groups)");
                Approvals {
                    count: 0,
                    groups: Vec::new(),
                    distinct_groups: false,
                    pending_timeout,
                }
            };
            Tier::Approve(approvals)
        }
    };
    IssueRule {
        name,
        workloads,
        exec: values(&r.exec),
        write: values(&r.write),
        connect: values(&r.connect),
        tier,
        max_ttl,
        max_uses,
    }
}

/// Approvals that can be met: at least one, from defined groups listed
/// once, no more than the groups' approvers (or, with `distinctGroups`,
/// than the groups) can give.
fn approvals(
    d: &mut Diag<'_>,
    rule: &str,
    a: &RawApprovals,
    groups: &BTreeMap<String, Vec<String>>,
    pending_timeout: Duration,
) -> Approvals {
    let bad = |d: &mut Diag<'_>, at: Pos, why: String| {
        let rule = rule.to_owned();
        d.error(at, Problem::BadApprovals { rule, why });
    };
    let count = a.count.value;
    if count == 0 {
        bad(
            d,
            pos(&a.count),
            "count is 0: write 1 or more, or use tier auto".into(),
        );
    }
    if a.groups.value.is_empty() {
        bad(
            d,
            pos(&a.groups),
            "list no groups: name who may approve".into(),
        );
    }
    let mut listed = BTreeSet::new();
    let mut approvers = BTreeSet::new();
    let mut all_known = true;
    for g in &a.groups.value {
        if !listed.insert(g.value.as_str()) {
            bad(
                d,
                pos(g),
                format!("list group {:?} twice; list it once", g.value),
            );
        }
        match groups.get(&g.value) {
            Some(members) => approvers.extend(members.iter().map(String::as_str)),
            None => {
                all_known = false;
                let (rule, group) = (rule.to_owned(), g.value.clone());
                d.error(pos(g), Problem::UnknownGroup { rule, group });
            }
        }
    }
    let count_usize = usize::try_from(count).unwrap_or(usize::MAX);
    if a.distinct_groups && count_usize > listed.len() && !listed.is_empty() {
        bad(
            d,
            pos(&a.count),
            format!(
                "count {count} with distinctGroups needs {count} groups, and {} are listed",
                listed.len()
            ),
        );
    } else if all_known && !approvers.is_empty() && count_usize > approvers.len() {
        bad(
            d,
            pos(&a.count),
            format!(
                "count {count} can never be met: its groups have {} approvers",
                approvers.len()
            ),
        );
    }
    Approvals {
        count,
        groups: values(&a.groups.value),
        distinct_groups: a.distinct_groups,
        pending_timeout,
    }
}
