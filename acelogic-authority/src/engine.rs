//! The authority's decisions, on the one owner of its state: a relayed
//! request placed in a tier (refused, queued or issued at once), an
//! approval or a denial by an approver, the expiry of what waited too
//! long. Each step is journaled before the state that follows from it is
//! committed, so nothing is issued that the lineage does not show; a
//! record that cannot be journaled refuses the step (`record-failed`).

use std::{
    collections::BTreeMap,
    net::{IpAddr, ToSocketAddrs as _},
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use ed25519_dalek::{Signature as EdSignature, VerifyingKey};
use prost::Message as _;
use sha2::{Digest as _, Sha256};

use acelogic_domain::{
    Reason, Refusal,
    artifact::{
        self, Artifact, ArtifactId, Envelope, KeyId, PAYLOAD_TYPE, Role, Signature, Subject,
        TrustStore, VERSION, pae,
    },
    capability::{Capability, Host},
    issuing::{IssuingPolicy, Tier},
    policy::PolicySet,
};
use acelogic_lineage::{journal::Shared, pb as lpb};
use acelogic_proto::{
    authority::{
        Approval, ApproveRequest, ArtifactRequest, DenyRequest, NodeRequest, RequestState,
    },
    relay,
};

use crate::{
    request::{self, Checked},
    signer::Signer,
    store::{ApprovalRow, Row, Settle, Store},
};

/// What the authority decides with; replaced whole on a reload.
#[derive(Debug, Clone)]
pub struct Inputs {
    pub issuing: IssuingPolicy,
    /// The nodes' capability policies: a request none of them could ever
    /// grant is refused before anyone is asked. `None`: not checked here.
    pub policies: Option<PolicySet>,
    /// Approver keys (and the issuer's, for the self-check of what is
    /// issued).
    pub trust: TrustStore,
    /// Node name -> the key it signs requests with.
    pub nodes: BTreeMap<String, VerifyingKey>,
}

/// The rate envelope's window.
const RATE_WINDOW: Duration = Duration::from_secs(3600);

/// The state's owner.
#[derive(Debug)]
pub struct Engine {
    store: Store,
    journal: Arc<Shared>,
    signer: Box<dyn Signer>,
    inputs: Inputs,
    /// The chain's node name (the authority's name).
    name: String,
    epoch: u64,
}

fn unix(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn nanos(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

fn stored(e: &rusqlite::Error) -> Refusal {
    Refusal::new(
        Reason::StateFailed,
        format!("the authority's state could not be read or written: {e}"),
    )
}

/// DNS names in connect capabilities, resolved by this host.
fn resolve(host: &Host) -> Vec<IpAddr> {
    match host {
        Host::Net(_) => Vec::new(),
        Host::Name(name) => (name.as_str(), 0)
            .to_socket_addrs()
            .map(|a| a.map(|s| s.ip()).collect())
            .unwrap_or_default(),
    }
}

/// A request's outcome before it is stored.
enum Decided {
    Refused(Refusal, Option<(String, &'static str)>),
    Issue(Plan),
    Queue(Plan),
}

/// An artifact to issue now or after approvals.
struct Plan {
    rule: String,
    tier: &'static str,
    payload: Vec<u8>,
    artifact_id: String,
    expires: SystemTime,
    needed: u32,
    groups: Vec<String>,
    distinct_groups: bool,
    pending_until: SystemTime,
}

impl Engine {
    /// Takes over the store and the journal; `epoch` numbers this start.
    pub fn new(
        store: Store,
        journal: Arc<Shared>,
        signer: Box<dyn Signer>,
        inputs: Inputs,
        name: &str,
        epoch: u64,
    ) -> Self {
        Self {
            store,
            journal,
            signer,
            inputs,
            name: name.to_owned(),
            epoch,
        }
    }

    #[must_use]
    pub fn inputs(&self) -> &Inputs {
        &self.inputs
    }

    /// Replaces what decisions are made with (a reload that passed).
    pub fn set_inputs(&mut self, inputs: Inputs) {
        self.inputs = inputs;
    }

    /// Journals `bodies` as one batch; nothing is decided without it.
    fn journal(&self, bodies: Vec<lpb::record::Body>, now: SystemTime) -> Result<(), Refusal> {
        let records: Vec<lpb::Record> = bodies
            .into_iter()
            .map(|body| lpb::Record {
                node: self.name.clone(),
                time_unix_nano: nanos(now),
                epoch: self.epoch,
                body: Some(body),
            })
            .collect();
        self.journal.append(&records).map(|_| ()).map_err(|e| {
            Refusal::new(
                Reason::RecordFailed,
                format!("the authority's journal refused the record, so nothing was decided: {e}"),
            )
        })
    }

    /// The authority's own lifecycle (start, policy loads) as a record.
    pub fn lifecycle(&self, event: &str, sha256: &[u8], detail: &str) -> Result<(), Refusal> {
        self.journal(
            vec![lpb::record::Body::Lifecycle(lpb::Lifecycle {
                event: event.to_owned(),
                policy_sha256: hex::encode(sha256),
                detail: detail.to_owned(),
            })],
            SystemTime::now(),
        )
    }

    /// The lineage record of `event` on `row`.
    fn issuance(&self, row: &Row, event: &str) -> lpb::record::Body {
        let req = ArtifactRequest::decode(row.request.as_slice()).unwrap_or_default();
        let capabilities = req
            .capabilities
            .iter()
            .map(|c| {
                serde_json::from_str::<Capability>(c).map_or_else(|_| c.clone(), |c| c.to_string())
            })
            .collect();
        lpb::record::Body::Issuance(lpb::Issuance {
            event: event.to_owned(),
            request_id: row.id.clone(),
            artifact_id: row.artifact_id.clone(),
            node: row.node.clone(),
            workload: row.workload.clone(),
            exec_id: row.exec_id.clone(),
            pid: req.pid,
            tier: row.tier.clone(),
            rule: row.rule.clone(),
            capabilities,
            operation_key: req.operation_key,
            reason: req.reason,
            evidence: req
                .evidence
                .into_iter()
                .map(|e| lpb::EvidenceDigest {
                    name: e.name,
                    sha256: e.sha256,
                    uri: e.uri,
                    size: e.size,
                })
                .collect(),
            issuer: self.inputs.issuing.issuer.clone(),
            payload_sha256: if row.payload.is_empty() {
                String::new()
            } else {
                hex::encode(Sha256::digest(&row.payload))
            },
            ..lpb::Issuance::default()
        })
    }

    /// A node relays a request. Errors are refusals of the call itself
    /// (unauthenticated, malformed, state or journal failure): nothing is
    /// stored. A request the policy refuses is stored as refused and
    /// answered.
    pub fn request(&mut self, nr: &NodeRequest, now: SystemTime) -> Result<RequestState, Refusal> {
        let checked = request::check(nr, &self.inputs.nodes)?;
        if let Some(row) = self
            .store
            .get(&checked.request.request_id)
            .map_err(|e| stored(&e))?
        {
            if row.request != checked.bytes {
                return Err(Refusal::new(
                    Reason::BadRequest,
                    format!(
                        "request id {} was already used for a different request",
                        row.id
                    ),
                ));
            }
            return self.state_of(row);
        }
        request::fresh(&checked.request, nanos(now))?;
        let req = &checked.request;
        let mut row = Row {
            id: req.request_id.clone(),
            node: req.node.clone(),
            workload: req.workload.clone(),
            exec_id: req.exec_id.clone(),
            request: checked.bytes.clone(),
            created_unix: unix(now),
            settled_unix: unix(now),
            ..Row::default()
        };
        let mut records = vec![self.issuance(&row, "requested")];
        match self.decide(&checked, now)? {
            Decided::Refused(r, placed) => {
                if let Some((rule, tier)) = placed {
                    row.rule = rule;
                    row.tier = tier.to_owned();
                }
                row.state = "refused".to_owned();
                row.code = r.code.as_str().to_owned();
                row.detail = r.why;
                records.push(self.with_code(&row, "refused"));
            }
            Decided::Issue(plan) => {
                plan.apply(&mut row);
                let envelope = self.sign(&row, &[])?;
                row.state = "issued".to_owned();
                records.push(self.issued(&row, &envelope));
                row.envelope = envelope;
            }
            Decided::Queue(plan) => {
                plan.apply(&mut row);
                row.state = "pending".to_owned();
                row.settled_unix = 0;
                records.push(self.issuance(&row, "queued"));
            }
        }
        self.journal(records, now)?;
        self.store.insert(&row).map_err(|e| stored(&e))?;
        self.state_of(row)
    }

    fn with_code(&self, row: &Row, event: &str) -> lpb::record::Body {
        let mut body = self.issuance(row, event);
        if let lpb::record::Body::Issuance(i) = &mut body {
            i.code.clone_from(&row.code);
            i.detail.clone_from(&row.detail);
            i.approver.clone_from(&row.denied_by);
        }
        body
    }

    fn issued(&self, row: &Row, envelope: &[u8]) -> lpb::record::Body {
        let mut body = self.issuance(row, "issued");
        if let lpb::record::Body::Issuance(i) = &mut body {
            i.envelope_sha256 = hex::encode(Sha256::digest(envelope));
            i.approvers = Envelope::from_json(envelope)
                .ok()
                .map(|e| {
                    e.signatures
                        .iter()
                        .filter_map(|s| s.keyid.parse::<KeyId>().ok())
                        .filter_map(|k| self.inputs.trust.key(&k))
                        .filter(|k| k.role == Role::Approver)
                        .map(|k| k.name.to_string())
                        .collect()
                })
                .unwrap_or_default();
        }
        body
    }

    /// Places a checked request: refused, or an artifact to issue now or
    /// after approvals.
    fn decide(&self, c: &Checked, now: SystemTime) -> Result<Decided, Refusal> {
        let req = &c.request;
        let issuing = &self.inputs.issuing;
        let placement = match issuing.place(&req.workload, &c.capabilities, &resolve) {
            Ok(p) => p,
            Err(r) => return Ok(Decided::Refused(Refusal::new(r.code, r.to_string()), None)),
        };
        let tier = placement.tier.name();
        let placed = Some((placement.rule.clone(), tier));
        if matches!(placement.tier, Tier::Never) {
            return Ok(Decided::Refused(
                Refusal::new(
                    Reason::NeverAutomated,
                    format!(
                        "the issuing policy never issues this (rule {}); no approver is asked",
                        placement.rule
                    ),
                ),
                placed,
            ));
        }
        let refuse =
            |code, why: String| Ok(Decided::Refused(Refusal::new(code, why), placed.clone()));
        // What the node will check, checked first, so nobody approves
        // what no node would accept.
        let mut max_ttl = placement.max_ttl;
        let mut max_uses = placement.max_uses;
        let mut node_approvals = 0;
        if let Some(set) = &self.inputs.policies {
            let Some(w) = set.workloads.get(&req.workload) else {
                return refuse(
                    Reason::UnknownWorkload,
                    format!("no capability policy defines workload {:?}", req.workload),
                );
            };
            let terms = match w.admit(&issuing.issuer, &c.capabilities, &resolve) {
                Ok(t) => t,
                Err(r) => {
                    return refuse(
                        r.code,
                        format!("the workload's capability policy could never grant it: {r}"),
                    );
                }
            };
            max_ttl = Some(max_ttl.map_or(terms.max_ttl, |t| t.min(terms.max_ttl)));
            max_uses = match (max_uses, terms.max_uses) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            node_approvals = terms.approvals;
            if terms.operation_key_required && req.operation_key.is_empty() {
                return refuse(
                    Reason::OperationKeyRequired,
                    format!(
                        "the workload's capability policy (rule {}) needs an operation key; ask with one",
                        terms.rules.join(", ")
                    ),
                );
            }
        }
        let (needed, groups, distinct_groups, pending) = match &placement.tier {
            Tier::Approve(a) => (
                a.count,
                a.groups.clone(),
                a.distinct_groups,
                a.pending_timeout,
            ),
            Tier::Auto | Tier::Never => (0, Vec::new(), false, Duration::ZERO),
        };
        if node_approvals > needed {
            return refuse(
                Reason::ApprovalMissing,
                format!(
                    "the workload's capability policy needs {node_approvals} approver signature(s) \
                     but the issuing rule {} gives {needed}: the issuing policy must send it to \
                     approvers",
                    placement.rule
                ),
            );
        }
        let max_ttl = max_ttl.unwrap_or(artifact::MAX_WINDOW);
        let ttl = match req.ttl_seconds {
            0 => max_ttl,
            s if Duration::from_secs(s) > max_ttl => {
                return refuse(
                    Reason::TtlExceeded,
                    format!(
                        "{s} s asked for; the rules allow at most {} s",
                        max_ttl.as_secs()
                    ),
                );
            }
            s => Duration::from_secs(s),
        };
        let uses = match (req.max_uses, max_uses) {
            (0, limit) => limit,
            (n, Some(limit)) if n > limit => {
                return refuse(
                    Reason::UsesExceeded,
                    format!("{n} uses asked for; the rules allow at most {limit}"),
                );
            }
            (n, _) => Some(n),
        };
        if let Some(limit) = issuing.rate_for(&req.workload) {
            let since = unix(now) - i64::try_from(RATE_WINDOW.as_secs()).unwrap_or(i64::MAX);
            let used = self
                .store
                .issued_or_pending(&req.workload, since)
                .map_err(|e| stored(&e))?;
            if used >= u64::from(limit) {
                return refuse(
                    Reason::RateLimited,
                    format!(
                        "workload {} has {used} artifact(s) issued in the last hour or pending; \
                         its envelope is {limit} per hour",
                        req.workload
                    ),
                );
            }
        }
        let not_before = UNIX_EPOCH + Duration::from_secs(u64::try_from(unix(now)).unwrap_or(0));
        let expires = not_before + ttl;
        let id = ArtifactId::generate().map_err(|e| {
            Refusal::new(Reason::NoRandomness, format!("no random artifact id: {e}"))
        })?;
        let name = |s: &str, what: &str| {
            s.parse().map_err(|_| {
                Refusal::new(
                    Reason::BadValue,
                    format!("{what} {s:?} is not a valid name"),
                )
            })
        };
        let payload =
            Artifact {
                version: VERSION,
                id,
                issuer: name(&issuing.issuer, "issuer")?,
                subject: Subject {
                    workload: name(&req.workload, "workload")?,
                    node: Some(name(&req.node, "node")?),
                    cgroup: None,
                },
                audience: name(&issuing.audience, "audience")?,
                not_before,
                expires,
                capabilities: c.capabilities.clone(),
                max_uses: uses.and_then(std::num::NonZeroU32::new),
                operation_key: (!req.operation_key.is_empty()).then(|| req.operation_key.clone()),
                approval_ref: Some(format!("acelogic-request:{}", req.request_id)),
                reason: req.reason.clone(),
                parent: if req.parent.is_empty() {
                    None
                } else {
                    Some(req.parent.parse().map_err(|_| {
                        Refusal::new(Reason::BadValue, "parent is not an artifact id")
                    })?)
                },
            };
        let payload_bytes = match payload.to_json() {
            Ok(b) => b,
            Err(e) => return refuse(e.code(), format!("the artifact would not be valid: {e}")),
        };
        let plan = Plan {
            rule: placement.rule.clone(),
            tier,
            payload: payload_bytes,
            artifact_id: id.to_string(),
            expires,
            needed,
            groups,
            distinct_groups,
            // A pending request cannot outlive the artifact it would be.
            pending_until: (now + pending).min(expires),
        };
        Ok(if needed == 0 {
            Decided::Issue(plan)
        } else {
            Decided::Queue(plan)
        })
    }

    /// The envelope: the payload with the approvers' signatures and the
    /// issuer's, checked the way a node will check it.
    fn sign(&self, row: &Row, approvals: &[ApprovalRow]) -> Result<Vec<u8>, Refusal> {
        let message = pae(PAYLOAD_TYPE, &row.payload);
        let sig = self
            .signer
            .sign(&message)
            .map_err(|e| Refusal::new(Reason::StateFailed, e.to_string()))?;
        let mut signatures = vec![Signature {
            keyid: self.signer.key_id().to_string(),
            sig: sig.to_vec(),
        }];
        signatures.extend(approvals.iter().map(|a| Signature {
            keyid: a.keyid.clone(),
            sig: a.signature.clone(),
        }));
        let json = Envelope {
            payload_type: PAYLOAD_TYPE.to_owned(),
            payload: row.payload.clone(),
            signatures,
        }
        .to_json();
        let verified = artifact::verify(&json, &self.inputs.trust).map_err(|e| {
            Refusal::new(
                e.code(),
                format!("the issued envelope does not verify against the trust store: {e}"),
            )
        })?;
        if (verified.approvers.len() as u64) < u64::from(row.approvals_needed) {
            return Err(Refusal::new(
                Reason::ApprovalMissing,
                format!(
                    "{} approver signature(s) verify, {} needed",
                    verified.approvers.len(),
                    row.approvals_needed
                ),
            ));
        }
        Ok(json)
    }

    fn pending(&self, id: &str) -> Result<Row, Refusal> {
        let row =
            self.store.get(id).map_err(|e| stored(&e))?.ok_or_else(|| {
                Refusal::new(Reason::UnknownRequest, format!("no request {id:?}"))
            })?;
        if row.state != "pending" {
            return Err(Refusal::new(
                Reason::NotPending,
                format!("request {id} is {}, no longer pending", row.state),
            ));
        }
        Ok(row)
    }

    /// The approver behind `keyid` and the request's groups that list it.
    fn approver(&self, row: &Row, keyid: &str) -> Result<(String, KeyId, Vec<String>), Refusal> {
        let id: KeyId = keyid.parse().map_err(|_| {
            Refusal::new(
                Reason::BadValue,
                format!("keyid {keyid:?} is not ed25519:<16 hex>"),
            )
        })?;
        let key = self
            .inputs
            .trust
            .key(&id)
            .filter(|k| k.role == Role::Approver && !self.inputs.trust.is_revoked(&id))
            .ok_or_else(|| {
                Refusal::new(
                    Reason::NotApprover,
                    format!("{keyid} is not a current approver key in the trust store"),
                )
            })?;
        let name = key.name.to_string();
        let groups: Vec<String> = row
            .groups
            .iter()
            .filter(|g| {
                self.inputs
                    .issuing
                    .groups
                    .get(*g)
                    .is_some_and(|members| members.contains(&name))
            })
            .cloned()
            .collect();
        if groups.is_empty() {
            return Err(Refusal::new(
                Reason::NotApprover,
                format!(
                    "{name} is in none of the groups that approve this request ({})",
                    row.groups.join(", ")
                ),
            ));
        }
        Ok((name, id, groups))
    }

    fn verify_with(&self, id: &KeyId, message: &[u8], sig: &[u8]) -> Result<(), Refusal> {
        let ok = self.inputs.trust.key(id).is_some_and(|k| {
            <[u8; 64]>::try_from(sig).is_ok_and(|s| {
                k.public_key
                    .verify_strict(message, &EdSignature::from_bytes(&s))
                    .is_ok()
            })
        });
        if ok {
            Ok(())
        } else {
            Err(Refusal::new(
                Reason::BadSignature,
                format!("the signature is not {id}'s over this request's exact payload"),
            ))
        }
    }

    /// An approver's signature on a pending request; the last one needed
    /// issues it.
    pub fn approve(
        &mut self,
        a: &ApproveRequest,
        now: SystemTime,
    ) -> Result<RequestState, Refusal> {
        let row = self.pending(&a.request_id)?;
        let (name, id, groups) = self.approver(&row, &a.keyid)?;
        self.verify_with(&id, &pae(PAYLOAD_TYPE, &row.payload), &a.signature)?;
        let mut approvals = self.store.approvals(&row.id).map_err(|e| stored(&e))?;
        if approvals.iter().any(|x| x.approver == name) {
            return Err(Refusal::new(
                Reason::AlreadyApproved,
                format!(
                    "{name} already approved request {}; a second signature does not count",
                    row.id
                ),
            ));
        }
        let groups = if row.distinct_groups {
            let used: Vec<&String> = approvals.iter().flat_map(|x| &x.groups).collect();
            let Some(free) = groups.iter().find(|g| !used.contains(g)) else {
                return Err(Refusal::new(
                    Reason::AlreadyApproved,
                    format!(
                        "each approval must come from a different group, and {name}'s ({}) already approved",
                        groups.join(", ")
                    ),
                ));
            };
            vec![free.clone()]
        } else {
            groups
        };
        let approval = ApprovalRow {
            approver: name.clone(),
            keyid: id.to_string(),
            groups: groups.clone(),
            signature: a.signature.clone(),
            at_unix: unix(now),
        };
        let mut approved = self.issuance(&row, "approved");
        if let lpb::record::Body::Issuance(i) = &mut approved {
            i.approver = name;
            i.approver_groups = groups;
        }
        let mut records = vec![approved];
        approvals.push(approval.clone());
        let envelope = if approvals.len() as u64 >= u64::from(row.approvals_needed) {
            let envelope = self.sign(&row, &approvals)?;
            records.push(self.issued(&row, &envelope));
            Some(envelope)
        } else {
            None
        };
        self.journal(records, now)?;
        let settle = envelope.as_deref().map(|e| Settle {
            state: "issued",
            code: "",
            detail: "",
            envelope: e,
            at_unix: unix(now),
            denied_by: "",
        });
        self.store
            .settle(&row.id, Some(&approval), settle)
            .map_err(|e| stored(&e))?;
        self.state_after(row)
    }

    /// The state of `row` as stored now (after a settlement).
    fn state_after(&self, row: Row) -> Result<RequestState, Refusal> {
        let row = self
            .store
            .get(&row.id)
            .map_err(|e| stored(&e))?
            .unwrap_or(row);
        self.state_of(row)
    }

    /// An approver refuses a pending request, with a reason the requester
    /// sees.
    pub fn deny(&mut self, d: &DenyRequest, now: SystemTime) -> Result<RequestState, Refusal> {
        let mut row = self.pending(&d.request_id)?;
        if d.reason.trim().is_empty() || d.reason.len() > 1024 {
            return Err(Refusal::new(
                Reason::BadRequest,
                "a denial needs a reason of 1-1024 bytes (the requester sees it)",
            ));
        }
        let (name, id, _) = self.approver(&row, &d.keyid)?;
        self.verify_with(&id, &relay::deny_message(&row.id, &d.reason), &d.signature)?;
        row.code = Reason::RequestDenied.as_str().to_owned();
        row.detail.clone_from(&d.reason);
        row.denied_by.clone_from(&name);
        self.journal(vec![self.with_code(&row, "denied")], now)?;
        self.store
            .settle(
                &row.id,
                None,
                Some(Settle {
                    state: "denied",
                    code: &row.code,
                    detail: &row.detail,
                    envelope: &[],
                    at_unix: unix(now),
                    denied_by: &name,
                }),
            )
            .map_err(|e| stored(&e))?;
        self.state_after(row)
    }

    /// Expires what waited too long; returns the ids.
    pub fn expire(&mut self, now: SystemTime) -> Result<Vec<String>, Refusal> {
        let mut out = Vec::new();
        for mut row in self.store.expired(unix(now)).map_err(|e| stored(&e))? {
            row.code = Reason::RequestExpired.as_str().to_owned();
            row.detail = format!(
                "{} of {} approval(s) before it expired",
                self.store.approvals(&row.id).map_err(|e| stored(&e))?.len(),
                row.approvals_needed
            );
            self.journal(vec![self.with_code(&row, "expired")], now)?;
            self.store
                .settle(
                    &row.id,
                    None,
                    Some(Settle {
                        state: "expired",
                        code: &row.code,
                        detail: &row.detail,
                        envelope: &[],
                        at_unix: unix(now),
                        denied_by: "",
                    }),
                )
                .map_err(|e| stored(&e))?;
            out.push(row.id);
        }
        Ok(out)
    }

    /// An issued envelope went back to its node: recorded the first time.
    pub fn delivered(&mut self, id: &str, now: SystemTime) -> Result<(), Refusal> {
        let Some(row) = self.store.get(id).map_err(|e| stored(&e))? else {
            return Ok(());
        };
        if row.state != "issued" || row.delivered {
            return Ok(());
        }
        self.journal(vec![self.issuance(&row, "delivered")], now)?;
        self.store.delivered(id).map_err(|e| stored(&e))?;
        Ok(())
    }

    pub fn show(&self, id: &str) -> Result<RequestState, Refusal> {
        let row =
            self.store.get(id).map_err(|e| stored(&e))?.ok_or_else(|| {
                Refusal::new(Reason::UnknownRequest, format!("no request {id:?}"))
            })?;
        self.state_of(row)
    }

    pub fn list(&self, state: &str, limit: u32) -> Result<Vec<RequestState>, Refusal> {
        let state = match state {
            "" => Some("pending"),
            "all" => None,
            s @ ("pending" | "issued" | "denied" | "expired" | "refused") => Some(s),
            other => {
                return Err(Refusal::new(
                    Reason::BadRequest,
                    format!(
                        "state {other:?}: give pending, issued, denied, expired, refused or all"
                    ),
                ));
            }
        };
        let limit = if limit == 0 { 100 } else { limit.min(1000) };
        self.store
            .list(state, limit)
            .map_err(|e| stored(&e))?
            .into_iter()
            .map(|r| self.state_of(r))
            .collect()
    }

    fn state_of(&self, row: Row) -> Result<RequestState, Refusal> {
        let approvals = self
            .store
            .approvals(&row.id)
            .map_err(|e| stored(&e))?
            .into_iter()
            .map(|a| Approval {
                approver: a.approver,
                keyid: a.keyid,
                groups: a.groups,
                at_unix: a.at_unix,
            })
            .collect();
        Ok(RequestState {
            request: ArtifactRequest::decode(row.request.as_slice()).ok(),
            payload_type: if row.payload.is_empty() {
                String::new()
            } else {
                PAYLOAD_TYPE.to_owned()
            },
            request_id: row.id,
            state: row.state,
            tier: row.tier,
            rule: row.rule,
            code: row.code,
            detail: row.detail,
            payload: row.payload,
            envelope: row.envelope,
            approvals,
            approvals_needed: row.approvals_needed,
            approver_groups: row.groups,
            distinct_groups: row.distinct_groups,
            created_unix: row.created_unix,
            expires_unix: row.expires_unix,
            artifact_id: row.artifact_id,
            denied_by: row.denied_by,
        })
    }
}

impl Plan {
    fn apply(self, row: &mut Row) {
        row.rule = self.rule;
        row.tier = self.tier.to_owned();
        row.payload = self.payload;
        row.artifact_id = self.artifact_id;
        row.approvals_needed = self.needed;
        row.groups = self.groups;
        row.distinct_groups = self.distinct_groups;
        row.expires_unix = unix(if self.needed == 0 {
            self.expires
        } else {
            self.pending_until
        });
    }
}
