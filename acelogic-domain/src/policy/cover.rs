//! What a list of exec, write and connect entries covers and what it
//! meets: the one definition of coverage that admission (grantable rules,
//! never) and the authority's issuing policy share, so a capability the
//! authority places under a rule is judged by the same semantics the node
//! applies to the artifact.

use std::{collections::BTreeMap, net::IpAddr};

use super::compile::connect_text;
use crate::capability::{Capability, ConnectCap, Host, PathPattern};

/// A rule's (or a never list's) entries, borrowed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Entries<'a> {
    pub exec: &'a [PathPattern],
    pub write: &'a [PathPattern],
    pub connect: &'a [ConnectCap],
}

/// Resolves each name once per decision, so every entry is compared with
/// the same answer.
pub(crate) struct Names<'a> {
    resolve: &'a dyn Fn(&Host) -> Vec<IpAddr>,
    cache: BTreeMap<Host, Vec<IpAddr>>,
}

impl<'a> Names<'a> {
    pub(crate) fn new(resolve: &'a dyn Fn(&Host) -> Vec<IpAddr>) -> Self {
        Self {
            resolve,
            cache: BTreeMap::new(),
        }
    }

    pub(crate) fn addrs(&mut self, host: &Host) -> &[IpAddr] {
        match host {
            Host::Net(_) => &[],
            Host::Name(_) => self
                .cache
                .entry(host.clone())
                .or_insert_with(|| (self.resolve)(host)),
        }
    }

    /// The addresses coverage compares a capability by: those of a connect
    /// capability's DNS name (`Err` with the message when it resolves to
    /// nothing), none otherwise.
    pub(crate) fn cap_addrs(&mut self, cap: &Capability) -> Result<Vec<IpAddr>, String> {
        match cap {
            Capability::Connect(
                c @ ConnectCap {
                    host: Host::Name(_),
                    ..
                },
            ) => {
                let addrs = self.addrs(&c.host).to_vec();
                if addrs.is_empty() {
                    Err(format!("{} does not resolve to any address", c.host))
                } else {
                    Ok(addrs)
                }
            }
            _ => Ok(Vec::new()),
        }
    }
}

/// True when `cap` could reach anything `never` names: the hosts share an
/// address (a name: the same name, or any of its addresses inside the
/// other's prefix), the ports overlap and the protocol is the same.
fn connect_meets(cap: &ConnectCap, never: &ConnectCap, names: &mut Names<'_>) -> bool {
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

impl Entries<'_> {
    /// True when the entries cover all of `cap` (`addrs`: from
    /// [`Names::cap_addrs`]). A write is covered when its whole subtree is
    /// inside a `/**` pattern, or it equals an exact pattern.
    pub(crate) fn covers(self, cap: &Capability, addrs: &[IpAddr]) -> bool {
        match cap {
            Capability::Exec(c) => self.exec.iter().any(|p| p.matches(&c.path)),
            Capability::Write(c) => self.write.iter().any(|p| {
                p.covers_subtree(&c.path) || matches!(p, PathPattern::Exact(e) if *e == c.path)
            }),
            Capability::Connect(c) => self.connect.iter().any(|r| connect_covered(c, r, addrs)),
        }
    }

    /// The first entry `cap` meets (any overlap), as text: the never
    /// semantics.
    pub(crate) fn met_by(self, cap: &Capability, names: &mut Names<'_>) -> Option<String> {
        match cap {
            Capability::Exec(c) => self
                .exec
                .iter()
                .find(|n| n.matches(&c.path))
                .map(ToString::to_string),
            Capability::Write(c) => self
                .write
                .iter()
                .find(|n| n.overlaps_subtree(&c.path))
                .map(ToString::to_string),
            Capability::Connect(c) => self
                .connect
                .iter()
                .find(|n| connect_meets(c, n, names))
                .map(connect_text),
        }
    }

    /// The entries of the capability's kind, for messages.
    pub(crate) fn of_kind(self, cap: &Capability) -> Vec<String> {
        match cap {
            Capability::Exec(_) => self.exec.iter().map(ToString::to_string).collect(),
            Capability::Write(_) => self.write.iter().map(ToString::to_string).collect(),
            Capability::Connect(_) => self.connect.iter().map(connect_text).collect(),
        }
    }
}

/// `exec`, `write` or `connect`.
pub(crate) fn kind(cap: &Capability) -> &'static str {
    match cap {
        Capability::Exec(_) => "exec",
        Capability::Write(_) => "write",
        Capability::Connect(_) => "connect",
    }
}
