//! The daemon side of the API. Each call is a command to the state's
//! owner ([`crate::owner`]): the handler parses the request, the owner's
//! thread decides (digests and SQLite commits happen there), and the
//! handler awaits the answer, so the event loop that drains the kernel's
//! ring buffer keeps running meanwhile.

use std::{
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use tonic::{Request, Response, Status, transport::server::UdsConnectInfo};

use acelogic_authz::state::{Outcome, Peer, Record};
use acelogic_domain::{Reason, Refusal};
use acelogic_proto::{agent as pb, status_of};

use crate::{
    cluster::Cluster,
    node::{KernelGrants, Node},
    owner::{Gone, NodeHandle},
    relay::Relay,
};

/// The gRPC service over the node state's owner.
#[derive(Debug, Clone)]
pub struct Service {
    node: NodeHandle,
    /// The cluster store, when configured: asked between the halves of a
    /// submission, on this task, so the owner serves other calls meanwhile.
    cluster: Option<Cluster>,
    /// The authority requests are relayed to, when configured.
    relay: Option<Arc<Relay>>,
}

impl From<Gone> for Status {
    fn from(e: Gone) -> Self {
        Status::unavailable(format!("{e}; restart the daemon"))
    }
}

impl Service {
    #[must_use]
    pub fn new(node: NodeHandle, cluster: Option<Cluster>, relay: Option<Arc<Relay>>) -> Self {
        Self {
            node,
            cluster,
            relay,
        }
    }

    /// Decides on an envelope and installs its grants (both halves, the
    /// cluster store asked between them): a submission, or an artifact the
    /// authority issued on a relayed request.
    async fn install(
        &self,
        envelope: Vec<u8>,
        peer: Option<Peer>,
    ) -> Result<pb::SubmitArtifactResponse, Status> {
        let prepared = self
            .node
            .call(move |node| node.prepare(&envelope, peer))
            .await?
            .map_err(|r| status_of(&r))?;
        let answer = match (&prepared.prepared.cluster, &self.cluster) {
            (Some(claim), Some(cluster)) => Some(cluster.claim(claim).await),
            _ => None,
        };
        let a = self
            .node
            .call(move |node| node.commit(prepared, answer))
            .await?;
        if let Some(c) = &self.cluster {
            // A refusal may have queued an undo, an acceptance nothing.
            c.kick();
        }
        let a = a.map_err(|r| status_of(&r))?;
        Ok(pb::SubmitArtifactResponse {
            artifact_id: a.artifact_id,
            workload: a.workload,
            expires_unix: a.expires_unix,
            grant_id: a.grant_id,
            capabilities: a.capabilities,
            kernel_entries: u32::try_from(a.kernel_entries).unwrap_or(u32::MAX),
            approvers: a.approvers,
            fencing_token: a.fencing_token,
        })
    }

    fn cluster(&self) -> Result<&Cluster, Status> {
        self.cluster.as_ref().ok_or_else(|| {
            Status::failed_precondition(
                "this node has no cluster store (--etcd-endpoints): operation keys are leased in \
                 its local state only",
            )
        })
    }

    /// The generated server, ready for `Server::add_service`.
    #[must_use]
    pub fn server(self) -> pb::agent_server::AgentServer<Self> {
        pb::agent_server::AgentServer::new(self)
    }
}

fn peer<T>(req: &Request<T>) -> Option<Peer> {
    let cred = req.extensions().get::<UdsConnectInfo>()?.peer_cred?;
    Some(Peer {
        pid: cred.pid(),
        uid: cred.uid(),
        gid: cred.gid(),
    })
}

fn bad_request(why: String) -> Status {
    status_of(&Refusal {
        code: Reason::BadRequest,
        why,
    })
}

/// Administrative calls (revoke, freeze, unfreeze) are refused to
/// processes in governed cgroups: the socket is reachable from them so
/// agents can submit artifacts, not so they can unfreeze themselves.
fn admin_only(node: &mut Node, peer: Option<Peer>, what: &str) -> Result<(), Status> {
    let governed = match peer.and_then(|p| p.pid) {
        Some(pid) => node.is_governed(pid),
        None => true,
    };
    if governed {
        let r = Refusal {
            code: Reason::GovernedCaller,
            why: format!(
                "{what} is refused to processes in governed cgroups (or of unknown origin)"
            ),
        };
        let _ = node.authz.note(&Record {
            detail: &r.why,
            peer,
            ..Record::new(Outcome::Refused, r.code)
        });
        return Err(status_of(&r));
    }
    Ok(())
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[tonic::async_trait]
impl pb::agent_server::Agent for Service {
    async fn submit_artifact(
        &self,
        req: Request<pb::SubmitArtifactRequest>,
    ) -> Result<Response<pb::SubmitArtifactResponse>, Status> {
        let peer = peer(&req);
        let envelope = req.into_inner().envelope;
        Ok(Response::new(self.install(envelope, peer).await?))
    }

    async fn request_artifact(
        &self,
        req: Request<pb::RequestArtifactRequest>,
    ) -> Result<Response<pb::RequestArtifactResponse>, Status> {
        let peer = peer(&req);
        let r = req.into_inner();
        let relay = self.relay.clone().ok_or_else(|| {
            status_of(&Refusal::new(
                Reason::NoAuthority,
                "this daemon relays requests to no authority (--authority)",
            ))
        })?;
        let asked = r.workload.clone();
        let (workload, exec_id, pid, uid) = self
            .node
            .call(move |node| {
                node.attest(peer, &asked).inspect_err(|refusal| {
                    // A caller that asks as another workload is evidence.
                    let _ = node.authz.note(&Record {
                        detail: &refusal.why,
                        peer,
                        ..Record::new(Outcome::Refused, refusal.code)
                    });
                })
            })
            .await?
            .map_err(|r| status_of(&r))?;
        let id = acelogic_domain::artifact::ArtifactId::generate()
            .map_err(|e| Status::internal(format!("no random request id: {e}")))?;
        let request = acelogic_proto::authority::ArtifactRequest {
            request_id: id.to_string(),
            node: relay.node.clone(),
            workload,
            exec_id,
            pid,
            uid,
            capabilities: r.capabilities,
            operation_key: r.operation_key,
            reason: r.reason,
            ttl_seconds: r.ttl_seconds,
            max_uses: r.max_uses,
            evidence: r.evidence,
            time_unix_nano: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)),
            parent: r.parent,
        };
        let wait = Duration::from_secs(u64::from(r.wait_seconds.min(3600)));
        let state = relay.ask(&request, wait).await.map_err(|r| status_of(&r))?;
        let mut out = pb::RequestArtifactResponse::default();
        if state.state == "issued" {
            // Installed before the call returns: the grant is live when
            // the caller hears it was issued.
            match self.install(state.envelope.clone(), peer).await {
                Ok(g) => out.grant = Some(g),
                Err(s) => s.message().clone_into(&mut out.install_error),
            }
        }
        out.request = Some(state);
        Ok(Response::new(out))
    }

    async fn revoke_artifact(
        &self,
        req: Request<pb::RevokeArtifactRequest>,
    ) -> Result<Response<pb::RevokeArtifactResponse>, Status> {
        let peer = peer(&req);
        let r = req.into_inner();
        if r.artifact_id.len() != 32 || !r.artifact_id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(bad_request(format!(
                "artifact_id {:?} is not 32 hex digits",
                r.artifact_id.chars().take(64).collect::<String>()
            )));
        }
        let why = if r.reason.is_empty() {
            "revoked by an operator".to_owned()
        } else {
            r.reason
        };
        let id = r.artifact_id.to_ascii_lowercase();
        let removed = self
            .node
            .call(move |node| {
                admin_only(node, peer, "revoke")?;
                node.authz
                    .revoke(
                        &id,
                        &why,
                        peer,
                        &mut KernelGrants(&mut node.kernel),
                        SystemTime::now(),
                    )
                    .map_err(|r| status_of(&r))
            })
            .await??;
        if let Some(c) = &self.cluster {
            c.kick();
        }
        Ok(Response::new(pb::RevokeArtifactResponse {
            removed: u32::try_from(removed).unwrap_or(u32::MAX),
        }))
    }

    async fn list_grants(
        &self,
        req: Request<pb::ListGrantsRequest>,
    ) -> Result<Response<pb::ListGrantsResponse>, Status> {
        let only = req.into_inner().workload;
        let wanted = only.clone();
        let live = self
            .node
            .call(move |node| {
                if !wanted.is_empty() && !node.policy.workloads.contains_key(&wanted) {
                    return Err(Refusal {
                        code: Reason::UnknownWorkload,
                        why: format!("no loaded policy defines workload {wanted:?}"),
                    });
                }
                node.authz.live(&mut KernelGrants(&mut node.kernel))
            })
            .await?
            .map_err(|r| status_of(&r))?;
        let now = unix_now();
        let grants = live
            .into_iter()
            .filter(|g| only.is_empty() || g.row.workload == only)
            .filter(|g| g.row.expires > now)
            .map(|g| pb::Grant {
                artifact_id: g.row.id,
                workload: g.row.workload,
                grant_id: g.row.grant_id,
                capabilities: g.row.capabilities,
                expires_unix: g.row.expires,
                uses_left: g.uses_left,
                operation_key: g.row.operation_key.unwrap_or_default(),
                issuer: g.row.issuer,
                approvers: g.row.approvers,
                fencing_token: g.row.cluster_token,
            })
            .collect();
        Ok(Response::new(pb::ListGrantsResponse { grants }))
    }

    async fn freeze(
        &self,
        req: Request<pb::FreezeRequest>,
    ) -> Result<Response<pb::FreezeResponse>, Status> {
        self.set_frozen(req, true).await
    }

    async fn unfreeze(
        &self,
        req: Request<pb::FreezeRequest>,
    ) -> Result<Response<pb::FreezeResponse>, Status> {
        self.set_frozen(req, false).await
    }

    async fn status(
        &self,
        _req: Request<pb::StatusRequest>,
    ) -> Result<Response<pb::StatusResponse>, Status> {
        let mut reply = self.node.call(status).await?;
        reply.cluster = self.cluster.as_ref().map(|c| {
            let h = c.health();
            pb::Cluster {
                endpoints: h.endpoints,
                prefix: h.prefix,
                connected: h.up == Some(true),
                last_error: h.last_error,
                pending_settlements: h.pending,
            }
        });
        Ok(Response::new(reply))
    }

    async fn operations(
        &self,
        req: Request<pb::OperationsRequest>,
    ) -> Result<Response<pb::OperationsResponse>, Status> {
        let key = req.into_inner().key;
        let store = &self.cluster()?.store;
        let ops = if key.is_empty() {
            store.operations().await
        } else {
            store.operation(&key).await.map(|o| vec![o])
        }
        .map_err(|e| cluster_unavailable(&e))?;
        Ok(Response::new(pb::OperationsResponse {
            operations: ops.iter().map(operation).collect(),
        }))
    }

    async fn release_operation(
        &self,
        req: Request<pb::ReleaseOperationRequest>,
    ) -> Result<Response<pb::ReleaseOperationResponse>, Status> {
        let peer = peer(&req);
        let r = req.into_inner();
        if r.key.is_empty() || r.key.len() > 256 {
            return Err(bad_request(format!(
                "key must be 1 to 256 bytes, not {}",
                r.key.len()
            )));
        }
        if r.reason.trim().is_empty() {
            return Err(bad_request(
                "a release needs a reason (--reason): it is recorded".to_owned(),
            ));
        }
        let cluster = self.cluster()?.clone();
        self.node
            .call(move |node| admin_only(node, peer, "releasing an operation key"))
            .await??;
        let released = cluster
            .store
            .release(&r.key)
            .await
            .map_err(|e| cluster_unavailable(&e))?;
        let detail = format!(
            "operation key {:?} released ({}): {}; holder {}, completed {}",
            r.key,
            released.state(),
            r.reason,
            released.holder.as_ref().map_or_else(
                || "none".to_owned(),
                |(h, t)| format!("{} on {} (token {t})", h.artifact, h.node)
            ),
            released.completed.as_ref().map_or_else(
                || "no".to_owned(),
                |c| format!("by {} on {} (token {})", c.artifact, c.node, c.token)
            ),
        );
        let key = r.key.clone();
        self.node
            .call(move |node| {
                if let Err(e) = node.authz.note(&Record {
                    detail: &detail,
                    peer,
                    operation_key: Some(&key),
                    ..Record::new(Outcome::OperationReleased, Reason::OperationReleased)
                }) {
                    tracing::error!(error = %e, "could not record an operation release");
                }
            })
            .await?;
        Ok(Response::new(pb::ReleaseOperationResponse {
            released: Some(operation(&released)),
        }))
    }
}

fn cluster_unavailable(e: &acelogic_cluster::Error) -> Status {
    status_of(&Refusal::new(
        Reason::ClusterStoreUnavailable,
        format!("the cluster store: {e}"),
    ))
}

fn operation(o: &acelogic_cluster::Operation) -> pb::Operation {
    let mut p = pb::Operation {
        key: o.key.clone(),
        state: o.state().to_owned(),
        ..pb::Operation::default()
    };
    if let Some((h, token)) = &o.holder {
        p.holder_artifact.clone_from(&h.artifact);
        p.holder_node.clone_from(&h.node);
        p.holder_workload.clone_from(&h.workload);
        p.holder_until_unix = h.until;
        p.token = *token;
    }
    if let Some((i, _)) = &o.intent {
        p.intent_artifact.clone_from(&i.artifact);
        p.intent_node.clone_from(&i.node);
        p.intent_since_unix = i.since;
    }
    if let Some(c) = &o.completed {
        p.completed_artifact.clone_from(&c.artifact);
        p.completed_node.clone_from(&c.node);
        p.completed_at_unix = c.at;
        p.completed_token = c.token;
    }
    p
}

/// What `Status` answers, read from the node state.
fn status(node: &mut Node) -> pb::StatusResponse {
    let live = node.authz.state().active().map_or(0, |a| a.len());
    let workloads = node
        .policy
        .workloads
        .values()
        .map(|w| pb::Workload {
            name: w.name.clone(),
            scope_id: w.scope_id,
            mode: format!("{:?}", w.mode).to_ascii_lowercase(),
            frozen: node.frozen.contains(&w.name),
            cgroups: node
                .cgroups
                .get(&w.name)
                .map(|d| d.iter().map(|p| p.display().to_string()).collect())
                .unwrap_or_default(),
            policy: w.policy.clone(),
        })
        .collect();
    let settings = node.authz.settings().clone();
    let lineage = node.journal.as_ref().map(|j| {
        let j = j.lock();
        let mut l = pb::Lineage {
            head_seq: j.head().0,
            acked_seq: j.acked(),
            pending_bytes: j.pending_bytes(),
            cap_bytes: j.cap_bytes(),
            ..pb::Lineage::default()
        };
        if let Some((url, status)) = &node.shipping {
            let s = status.borrow();
            l.collector.clone_from(url);
            l.connected = s.connected;
            l.last_error = s.last_error.clone().unwrap_or_default();
        }
        l
    });
    pb::StatusResponse {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        node: settings.node,
        audience: settings.audience,
        epoch: node.epoch,
        policy_sha256: hex::encode(node.policy.sha256),
        policy_loaded_unix: node
            .policy_loaded
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
        policy_error: node.policy_error.clone(),
        workloads,
        live_artifacts: u32::try_from(live).unwrap_or(u32::MAX),
        trusted_keys: u32::try_from(node.trust.keys().count()).unwrap_or(u32::MAX),
        warnings: node.warnings.clone(),
        cgroup_root: node.cgroup_root.display().to_string(),
        lineage,
        cluster: None,
    }
}

impl Service {
    async fn set_frozen(
        &self,
        req: Request<pb::FreezeRequest>,
        frozen: bool,
    ) -> Result<Response<pb::FreezeResponse>, Status> {
        let peer = peer(&req);
        let r = req.into_inner();
        let why = if r.reason.is_empty() {
            "operator request".to_owned()
        } else {
            r.reason
        };
        self.node
            .call(move |node| {
                admin_only(node, peer, if frozen { "freeze" } else { "unfreeze" })?;
                node.set_frozen(&r.workload, frozen, &why)
                    .map_err(|r| status_of(&r))
            })
            .await??;
        Ok(Response::new(pb::FreezeResponse { frozen }))
    }
}
