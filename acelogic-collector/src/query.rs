//! The `Query` service: forensic questions answered from the store, each
//! on a blocking thread with its own read connection (WAL readers do not
//! wait for the writer).

use acelogic_domain::Reason;
use std::{
    collections::{HashSet, VecDeque},
    path::PathBuf,
    pin::Pin,
};

use ed25519_dalek::VerifyingKey;
use rusqlite::{Connection, params};
use tokio::sync::mpsc;
use tokio_stream::{Stream, wrappers::ReceiverStream};
use tonic::{Request, Response, Status};

use super::{
    access::Method,
    anchor, audit,
    audit_log::Gate,
    pb::{self, StoredRecord},
    refusal, status_of, store, to_i64, to_u64,
};
use acelogic_lineage::pb as lpb;

/// Most processes a tree answer holds.
pub const MAX_TREE_PROCESSES: usize = 2000;
/// Most generations walked up or down.
pub const MAX_DEPTH: i32 = 256;
/// Default and largest number of denials or artifact decisions returned.
pub const DEFAULT_LIMIT: u32 = 1000;
pub const MAX_LIMIT: u32 = 100_000;

/// What the service needs.
#[derive(Debug, Clone)]
pub struct Query {
    pub db: PathBuf,
    /// The collector's checkpoint key (public half) and its id.
    pub key: VerifyingKey,
    pub key_id: String,
    /// Who may ask what; every query's audit record.
    pub gate: Gate,
}

impl Query {
    #[must_use]
    pub fn server(self) -> pb::query_server::QueryServer<Self> {
        pb::query_server::QueryServer::new(self)
    }

    async fn with_db<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, Status> + Send + 'static,
    ) -> Result<T, Status> {
        let path = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let db = store::open_read(&path).map_err(|e| internal(&e))?;
            f(&db)
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?
    }
}

fn internal(e: &rusqlite::Error) -> Status {
    tracing::error!(error = %e, "collector query failed");
    status_of(&refusal(
        Reason::StoreFailed,
        format!("reading the store: {e}"),
    ))
}

fn bad(why: impl Into<String>) -> Status {
    status_of(&refusal(Reason::BadRequest, why))
}

const COLUMNS: &str = "r.node, c.journal_id, r.seq, r.prev_hash, r.hash, r.record";

fn stored(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredRecord> {
    Ok(StoredRecord {
        node: r.get(0)?,
        journal_id: r.get(1)?,
        entry: Some(lpb::Entry {
            seq: to_u64(r.get(2)?),
            prev_hash: r.get(3)?,
            hash: r.get(4)?,
            record: r.get(5)?,
        }),
    })
}

/// Records matching `filter`, oldest first, at most `limit` (-1: all).
fn records(
    db: &Connection,
    filter: &str,
    limit: i64,
    args: impl rusqlite::Params,
) -> rusqlite::Result<Vec<StoredRecord>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM records r JOIN chains c ON c.id = r.chain WHERE {filter} \
         ORDER BY r.time_unix_nano, r.id LIMIT {limit}"
    );
    db.prepare_cached(&sql)?.query_map(args, stored)?.collect()
}

/// The parent named by the first stored record of `exec_id` that names
/// one.
fn parent_of(db: &Connection, exec_id: &str) -> rusqlite::Result<Option<String>> {
    db.prepare_cached(
        "SELECT parent FROM (SELECT p.parent_exec_id AS parent, \
         (SELECT MIN(r.id) FROM records r WHERE r.process = p.id) AS first \
         FROM processes p WHERE p.exec_id = ?1 AND p.parent_exec_id IS NOT NULL) \
         WHERE first IS NOT NULL ORDER BY first LIMIT 1",
    )?
    .query_map([exec_id], |r| r.get(0))?
    .next()
    .transpose()
}

/// The processes whose records name `exec_id` as their parent.
fn children_of(db: &Connection, exec_id: &str) -> rusqlite::Result<Vec<String>> {
    db.prepare_cached(
        "SELECT DISTINCT p.exec_id FROM processes p WHERE p.parent_exec_id = ?1 \
         AND p.exec_id IS NOT NULL AND EXISTS (SELECT 1 FROM records r WHERE r.process = p.id \
         AND r.kind != 'authorization') ORDER BY p.exec_id",
    )?
    .query_map([exec_id], |r| r.get(0))?
    .collect()
}

/// The tree around `exec_id`.
pub fn tree(db: &Connection, exec_id: &str) -> rusqlite::Result<pb::TreeResponse> {
    let mut order: Vec<(String, i32)> = Vec::new();
    let mut seen: HashSet<String> = HashSet::from([exec_id.to_owned()]);
    // Ancestors, nearest first, then reversed so the root comes first.
    let mut up = Vec::new();
    let mut at = exec_id.to_owned();
    let mut depth = 0;
    while depth > -MAX_DEPTH {
        let Some(parent) = parent_of(db, &at)? else {
            break;
        };
        if !seen.insert(parent.clone()) {
            break;
        }
        depth -= 1;
        up.push((parent.clone(), depth));
        at = parent;
    }
    up.reverse();
    order.extend(up);
    order.push((exec_id.to_owned(), 0));
    // Descendants, breadth-first.
    let mut truncated = false;
    let mut queue = VecDeque::from([(exec_id.to_owned(), 0)]);
    while let Some((id, d)) = queue.pop_front() {
        if d >= MAX_DEPTH {
            truncated = true;
            continue;
        }
        for child in children_of(db, &id)? {
            if !seen.insert(child.clone()) {
                continue;
            }
            if order.len() >= MAX_TREE_PROCESSES {
                truncated = true;
                break;
            }
            order.push((child.clone(), d + 1));
            queue.push_back((child, d + 1));
        }
    }
    let mut processes = Vec::with_capacity(order.len());
    for (id, depth) in order {
        let recs = records(
            db,
            "r.process IN (SELECT id FROM processes WHERE exec_id = ?1)",
            -1,
            [&id],
        )?;
        let parent = parent_of(db, &id)?;
        processes.push(pb::TreeProcess {
            exec_id: id,
            parent_exec_id: parent.unwrap_or_default(),
            depth,
            records: recs,
        });
    }
    Ok(pb::TreeResponse {
        processes,
        truncated,
    })
}

/// The newest signed checkpoint of each chain of `node`.
pub fn newest_checkpoints(db: &Connection, node: &str) -> rusqlite::Result<Vec<String>> {
    db.prepare(
        "SELECT k.note FROM checkpoints k JOIN chains c ON c.id = k.chain \
         WHERE c.node = ?1 AND k.log_index = (SELECT MAX(log_index) FROM checkpoints WHERE chain = c.id) \
         ORDER BY c.id",
    )?
    .query_map([node], |r| r.get::<_, Option<String>>(0))?
    .filter_map(Result::transpose)
    .collect()
}

fn limit(asked: u32) -> u32 {
    match asked {
        0 => DEFAULT_LIMIT,
        n => n.min(MAX_LIMIT),
    }
}

#[tonic::async_trait]
impl pb::query_server::Query for Query {
    async fn tree(
        &self,
        req: Request<pb::TreeRequest>,
    ) -> Result<Response<pb::TreeResponse>, Status> {
        let args = serde_json::json!({"exec_id": req.get_ref().exec_id});
        self.guarded(req, Method::Tree, &args, |r| self.answer_tree(r.exec_id))
            .await
    }

    async fn artifact(
        &self,
        req: Request<pb::ArtifactRequest>,
    ) -> Result<Response<pb::ArtifactResponse>, Status> {
        let args = serde_json::json!({"artifact_id": req.get_ref().artifact_id});
        self.guarded(req, Method::Artifact, &args, |r| {
            self.answer_artifact(r.artifact_id)
        })
        .await
    }

    async fn denials(
        &self,
        req: Request<pb::DenialsRequest>,
    ) -> Result<Response<pb::DenialsResponse>, Status> {
        let r = req.get_ref();
        let args = serde_json::json!({
            "workload": r.workload, "since_unix_nano": r.since_unix_nano,
            "until_unix_nano": r.until_unix_nano, "limit": r.limit,
        });
        self.guarded(req, Method::Denials, &args, |r| self.answer_denials(r))
            .await
    }

    async fn verify(
        &self,
        req: Request<pb::VerifyRequest>,
    ) -> Result<Response<pb::VerifyResponse>, Status> {
        let r = req.get_ref();
        let args = serde_json::json!({"node": r.node, "anchors": r.anchors.len()});
        self.guarded(req, Method::Verify, &args, |r| {
            self.answer_verify(r.node, r.anchors)
        })
        .await
    }

    async fn checkpoints(
        &self,
        req: Request<pb::CheckpointsRequest>,
    ) -> Result<Response<pb::CheckpointsResponse>, Status> {
        let args = serde_json::json!({"node": req.get_ref().node});
        self.guarded(req, Method::Checkpoints, &args, |r| {
            self.answer_checkpoints(r.node)
        })
        .await
    }

    type ExportStream = Pin<Box<dyn Stream<Item = Result<StoredRecord, Status>> + Send>>;

    async fn export(
        &self,
        req: Request<pb::ExportRequest>,
    ) -> Result<Response<Self::ExportStream>, Status> {
        let r = req.get_ref();
        let args = serde_json::json!({"node": r.node, "since_unix_nano": r.since_unix_nano});
        // The row is written when the stream starts: what it holds follows
        // from the arguments.
        self.guarded(req, Method::Export, &args, |r| async move {
            Ok(self.answer_export(r))
        })
        .await
    }
}

impl Query {
    /// Admits the caller (or refuses, counted and audited), answers with
    /// `f`, and audits how it ended before the answer leaves.
    async fn guarded<T, R, Fut>(
        &self,
        req: Request<T>,
        method: Method,
        args: &serde_json::Value,
        f: impl FnOnce(T) -> Fut,
    ) -> Result<Response<R>, Status>
    where
        Fut: Future<Output = Result<R, Status>>,
    {
        let args = args.to_string();
        let certs = req.peer_certs();
        let caller = self
            .gate
            .admit(
                certs.as_deref().map(Vec::as_slice),
                req.remote_addr(),
                method,
                &args,
            )
            .await
            .map_err(|r| status_of(&r))?;
        let result = f(req.into_inner()).await;
        let outcome = match &result {
            Ok(_) => "ok".to_owned(),
            Err(s) => acelogic_proto::reason_of(s).unwrap_or_else(|| format!("{:?}", s.code())),
        };
        self.gate
            .record(&caller, method, &args, &outcome)
            .await
            .map_err(|r| status_of(&r))?;
        result.map(Response::new)
    }

    pub async fn answer_tree(&self, exec_id: String) -> Result<pb::TreeResponse, Status> {
        if exec_id.is_empty() || exec_id.len() > 128 {
            return Err(bad("exec_id must be 1-128 characters"));
        }
        self.with_db(move |db| {
            let t = tree(db, &exec_id).map_err(|e| internal(&e))?;
            if t.processes.iter().all(|p| p.records.is_empty()) {
                return Err(status_of(&refusal(
                    Reason::NotFound,
                    format!("no record of exec id {exec_id:?}"),
                )));
            }
            Ok(t)
        })
        .await
    }

    pub async fn answer_artifact(&self, id: String) -> Result<pb::ArtifactResponse, Status> {
        let id = id.to_ascii_lowercase();
        if id.is_empty() || id.len() > 128 {
            return Err(bad("artifact_id must be 1-128 characters"));
        }
        self.with_db(move |db| {
            let authorizations = records(
                db,
                "r.artifact_id = ?1 AND r.kind = 'authorization'",
                -1,
                [&id],
            )
            .map_err(|e| internal(&e))?;
            let max = limit(0);
            let mut decisions = records(
                db,
                "r.artifact_id = ?1 AND r.kind = 'decision'",
                i64::from(max) + 1,
                [&id],
            )
            .map_err(|e| internal(&e))?;
            let truncated = decisions.len() > max as usize;
            decisions.truncate(max as usize);
            // The request's whole story: records of the same request
            // id, from before the artifact id existed (requested) too.
            let issuances = records(
                db,
                "r.kind = 'issuance' AND r.object IN (SELECT object FROM records \
                 WHERE artifact_id = ?1 AND kind = 'issuance')",
                -1,
                [&id],
            )
            .map_err(|e| internal(&e))?;
            if authorizations.is_empty() && decisions.is_empty() && issuances.is_empty() {
                return Err(status_of(&refusal(
                    Reason::NotFound,
                    format!("no record of artifact {id:?}"),
                )));
            }
            Ok(pb::ArtifactResponse {
                authorizations,
                decisions,
                truncated,
                issuances,
            })
        })
        .await
    }

    pub async fn answer_denials(
        &self,
        r: pb::DenialsRequest,
    ) -> Result<pb::DenialsResponse, Status> {
        if r.workload.is_empty() {
            return Err(bad("workload is required"));
        }
        let until = if r.until_unix_nano == 0 {
            u64::MAX
        } else {
            r.until_unix_nano
        };
        let max = limit(r.limit);
        self.with_db(move |db| {
            let mut records = records(
                db,
                "r.verdict = 'deny' AND r.workload = ?1 AND r.time_unix_nano >= ?2 \
                 AND r.time_unix_nano <= ?3",
                i64::from(max) + 1,
                params![r.workload, to_i64(r.since_unix_nano), to_i64(until)],
            )
            .map_err(|e| internal(&e))?;
            let truncated = records.len() > max as usize;
            records.truncate(max as usize);
            Ok(pb::DenialsResponse { records, truncated })
        })
        .await
    }

    pub async fn answer_verify(
        &self,
        node: String,
        anchors: Vec<String>,
    ) -> Result<pb::VerifyResponse, Status> {
        if node.is_empty() {
            return Err(bad("node is required"));
        }
        if anchors.len() > anchor::MAX_ANCHORS {
            return Err(bad(format!(
                "{} anchors; at most {} per request",
                anchors.len(),
                anchor::MAX_ANCHORS
            )));
        }
        let (key, key_id) = (self.key, self.key_id.clone());
        self.with_db(move |db| {
            let v =
                audit::verify_node(db, &node, &key, &key_id, &anchors).map_err(|e| internal(&e))?;
            if v.chains.is_empty() {
                return Err(status_of(&refusal(
                    Reason::NotFound,
                    format!("the collector holds no chain of node {node:?}"),
                )));
            }
            Ok(v)
        })
        .await
    }

    /// Every node that has a chain, by name.
    pub async fn nodes(&self) -> Result<Vec<String>, Status> {
        self.with_db(|db| {
            db.prepare("SELECT DISTINCT node FROM chains ORDER BY node")
                .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
                .map_err(|e| internal(&e))
        })
        .await
    }

    async fn answer_checkpoints(&self, node: String) -> Result<pb::CheckpointsResponse, Status> {
        if node.is_empty() {
            return Err(bad("node is required"));
        }
        self.with_db(move |db| {
            let notes = newest_checkpoints(db, &node).map_err(|e| internal(&e))?;
            if notes.is_empty() {
                return Err(status_of(&refusal(
                    Reason::NotFound,
                    format!("the collector holds no checkpoint of node {node:?}"),
                )));
            }
            Ok(pb::CheckpointsResponse { notes })
        })
        .await
    }

    fn answer_export(
        &self,
        r: pb::ExportRequest,
    ) -> <Self as pb::query_server::Query>::ExportStream {
        let (tx, rx) = mpsc::channel(256);
        let path = self.db.clone();
        tokio::task::spawn_blocking(move || {
            let result = (|| {
                let db = store::open_read(&path)?;
                // One read transaction: the export is a consistent snapshot.
                db.execute_batch("BEGIN")?;
                let mut stmt = db.prepare(&format!(
                    "SELECT {COLUMNS} FROM records r JOIN chains c ON c.id = r.chain \
                     WHERE (?1 = '' OR r.node = ?1) AND r.time_unix_nano >= ?2 ORDER BY r.id"
                ))?;
                let mut rows = stmt.query(params![r.node, to_i64(r.since_unix_nano)])?;
                while let Some(row) = rows.next()? {
                    if tx.blocking_send(Ok(stored(row)?)).is_err() {
                        break; // the client went away
                    }
                }
                Ok::<_, rusqlite::Error>(())
            })();
            if let Err(e) = result {
                let _ = tx.blocking_send(Err(internal(&e)));
            }
        });
        Box::pin(ReceiverStream::new(rx))
    }
}
