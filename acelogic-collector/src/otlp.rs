//! OTLP logs export (`--otlp-endpoint`): stored records go to an
//! OpenTelemetry collector's `LogsService` in storage order, from a cursor
//! persisted in the store (`meta.otlp_cursor`, the last `records.id`
//! exported), so a restart resumes where the last acknowledged export
//! ended: nothing is skipped; a record may be sent twice if the collector
//! stops between an export and the cursor write.
//!
//! One log record per lineage record: time = when it happened on the node,
//! body = its JSON rendering, severity WARN for denials and INFO
//! otherwise, `event_name` = `acelogic.lineage.<kind>`; attributes
//! `acelogic.exec_id`, `.workload`, `.verdict`, `.reason`, `.hook`,
//! `.artifact_id`, `.seq`, `.kind`, `.journal_id` (absent when empty). The
//! resource carries the node (`host.name` and `acelogic.node`) and
//! `service.name = acelogic`.

use std::{path::PathBuf, sync::Arc, time::Duration};

use opentelemetry_proto::tonic::{
    collector::logs::v1::{ExportLogsServiceRequest, logs_service_client::LogsServiceClient},
    common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value::Value},
    logs::v1::{LogRecord, ResourceLogs, ScopeLogs},
    resource::v1::Resource,
};
use tokio::sync::watch;

use super::{metrics::Metrics, now_unix_nano, store, to_u64, writer::Writer};
use acelogic_lineage::{pb as lpb, ship};
use prost::Message as _;

/// Records per export request.
pub const BATCH: usize = 512;
/// Meta key of the cursor.
pub const CURSOR: &str = "otlp_cursor";

/// A stored record as exported.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    id: i64,
    node: String,
    journal_id: Vec<u8>,
    seq: u64,
    time_unix_nano: u64,
    kind: String,
    exec_id: Option<String>,
    workload: Option<String>,
    verdict: Option<String>,
    reason: Option<String>,
    hook: Option<String>,
    artifact_id: Option<String>,
    /// The encoded record, rendered as JSON for the body.
    record: Vec<u8>,
}

fn load(db: &rusqlite::Connection, after: i64) -> rusqlite::Result<Vec<Row>> {
    db.prepare_cached(
        "SELECT r.id, r.node, c.journal_id, r.seq, r.time_unix_nano, r.kind, p.exec_id, r.workload, \
         r.verdict, r.reason, r.hook, r.artifact_id, r.record \
         FROM records r JOIN chains c ON c.id = r.chain LEFT JOIN processes p ON p.id = r.process \
         WHERE r.id > ?1 ORDER BY r.id LIMIT ?2",
    )?
    .query_map(rusqlite::params![after, BATCH as i64], |r| {
        Ok(Row {
            id: r.get(0)?,
            node: r.get(1)?,
            journal_id: r.get(2)?,
            seq: to_u64(r.get(3)?),
            time_unix_nano: to_u64(r.get(4)?),
            kind: r.get(5)?,
            exec_id: r.get(6)?,
            workload: r.get(7)?,
            verdict: r.get(8)?,
            reason: r.get(9)?,
            hook: r.get(10)?,
            artifact_id: r.get(11)?,
            record: r.get(12)?,
        })
    })?
    .collect()
}

fn string(key: &str, value: &str) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(value.to_owned())),
        }),
        ..KeyValue::default()
    }
}

/// A stored record's JSON rendering (the store keeps only its bytes); a
/// record that no longer decodes (edited in the store) has none.
fn json(record: &[u8]) -> String {
    lpb::Record::decode(record)
        .ok()
        .and_then(|r| serde_json::to_string(&r).ok())
        .unwrap_or_default()
}

fn log_record(row: &Row, observed: u64) -> LogRecord {
    let mut attributes = vec![
        string("acelogic.kind", &row.kind),
        KeyValue {
            key: "acelogic.seq".to_owned(),
            value: Some(AnyValue {
                value: Some(Value::IntValue(i64::try_from(row.seq).unwrap_or(i64::MAX))),
            }),
            ..KeyValue::default()
        },
        string("acelogic.journal_id", &hex::encode(&row.journal_id)),
    ];
    for (key, value) in [
        ("acelogic.exec_id", &row.exec_id),
        ("acelogic.workload", &row.workload),
        ("acelogic.verdict", &row.verdict),
        ("acelogic.reason", &row.reason),
        ("acelogic.hook", &row.hook),
        ("acelogic.artifact_id", &row.artifact_id),
    ] {
        if let Some(v) = value {
            attributes.push(string(key, v));
        }
    }
    let deny = row.verdict.as_deref() == Some("deny");
    LogRecord {
        time_unix_nano: row.time_unix_nano,
        observed_time_unix_nano: observed,
        severity_number: if deny { 13 } else { 9 },
        severity_text: if deny { "WARN" } else { "INFO" }.to_owned(),
        body: Some(AnyValue {
            value: Some(Value::StringValue(json(&row.record))),
        }),
        attributes,
        event_name: format!("acelogic.lineage.{}", row.kind),
        ..LogRecord::default()
    }
}

/// The export request for `rows`: one resource per node, in order.
fn request(rows: &[Row]) -> ExportLogsServiceRequest {
    let observed = now_unix_nano();
    let mut resource_logs: Vec<ResourceLogs> = Vec::new();
    for row in rows {
        let same = resource_logs.last().is_some_and(|r| {
            r.resource
                .as_ref()
                .and_then(|res| res.attributes.get(1))
                .and_then(|kv| kv.value.as_ref())
                .and_then(|v| v.value.as_ref())
                == Some(&Value::StringValue(row.node.clone()))
        });
        if !same {
            resource_logs.push(ResourceLogs {
                resource: Some(Resource {
                    attributes: vec![
                        string("service.name", "acelogic"),
                        string("acelogic.node", &row.node),
                        string("host.name", &row.node),
                    ],
                    ..Resource::default()
                }),
                scope_logs: vec![ScopeLogs {
                    scope: Some(InstrumentationScope {
                        name: "acelogic.lineage".to_owned(),
                        version: env!("CARGO_PKG_VERSION").to_owned(),
                        ..InstrumentationScope::default()
                    }),
                    ..ScopeLogs::default()
                }],
                ..ResourceLogs::default()
            });
        }
        if let Some(scope) = resource_logs
            .last_mut()
            .and_then(|r| r.scope_logs.first_mut())
        {
            scope.log_records.push(log_record(row, observed));
        }
    }
    ExportLogsServiceRequest { resource_logs }
}

/// What the exporter runs with.
#[derive(Debug, Clone)]
pub struct Exporter {
    pub db: PathBuf,
    pub endpoint: String,
    pub ca: Option<PathBuf>,
    pub writer: Writer,
    pub metrics: Arc<Metrics>,
}

const BACKOFF_MIN: Duration = Duration::from_millis(500);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

impl Exporter {
    /// Exports until `shutdown` turns true. Only a bad endpoint URL or CA
    /// file ends it early; an unreachable endpoint is retried with backoff.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) -> Result<(), String> {
        let endpoint = ship::endpoint(&self.endpoint, self.ca.as_deref())?;
        let mut client = LogsServiceClient::new(endpoint.connect_lazy());
        let path = self.db.clone();
        let mut cursor = tokio::task::spawn_blocking(move || {
            let db = store::open_read(&path)?;
            store::meta_i64(&db, CURSOR)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("reading the OTLP cursor: {e}"))?
        .unwrap_or(0);
        tracing::info!(endpoint = %self.endpoint, cursor, "OTLP export started");
        let mut stored = self.writer.stored();
        let mut backoff = BACKOFF_MIN;
        while !*shutdown.borrow() {
            let path = self.db.clone();
            let rows = tokio::task::spawn_blocking(move || {
                let db = store::open_read(&path)?;
                load(&db, cursor)
            })
            .await
            .map_err(|e| e.to_string())?;
            let rows = match rows {
                Ok(r) => r,
                Err(e) => {
                    tracing::error!(error = %e, "OTLP export: reading the store failed");
                    wait(&mut shutdown, backoff).await;
                    continue;
                }
            };
            if rows.is_empty() {
                tokio::select! {
                    _ = stored.changed() => {}
                    _ = shutdown.changed() => {}
                    () = tokio::time::sleep(Duration::from_secs(1)) => {}
                }
                continue;
            }
            let last = rows[rows.len() - 1].id;
            match client.export(request(&rows)).await {
                Ok(answer) => {
                    if let Some(p) = answer.into_inner().partial_success
                        && p.rejected_log_records > 0
                    {
                        tracing::warn!(
                            rejected = p.rejected_log_records,
                            why = %p.error_message,
                            "the OTLP endpoint refused some records; not retried"
                        );
                    }
                    cursor = last;
                    if let Err(e) = self.writer.set_meta(CURSOR, cursor).await {
                        tracing::warn!(error = %e, "OTLP export: the cursor was not saved");
                    }
                    self.metrics.otlp_exported(rows.len() as u64);
                    backoff = BACKOFF_MIN;
                }
                Err(status) => {
                    self.metrics.otlp_failed();
                    tracing::warn!(
                        code = ?status.code(),
                        why = %status.message(),
                        retry_in = ?backoff,
                        "OTLP export failed"
                    );
                    wait(&mut shutdown, backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
        Ok(())
    }
}

async fn wait(shutdown: &mut watch::Receiver<bool>, d: Duration) {
    tokio::select! {
        _ = shutdown.changed() => {}
        () = tokio::time::sleep(d) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: i64, node: &str, verdict: Option<&str>) -> Row {
        Row {
            id,
            node: node.into(),
            journal_id: vec![1; 16],
            seq: 7,
            time_unix_nano: 42,
            kind: "decision".into(),
            exec_id: Some("e1".into()),
            workload: Some("agent".into()),
            verdict: verdict.map(Into::into),
            reason: Some("no-grant".into()),
            hook: Some("exec".into()),
            artifact_id: None,
            record: Vec::new(),
        }
    }

    #[test]
    fn one_resource_per_node_run_with_attributes() {
        let req = request(&[
            row(1, "a", Some("deny")),
            row(2, "a", Some("allow")),
            row(3, "b", None),
        ]);
        assert_eq!(req.resource_logs.len(), 2);
        let logs = &req.resource_logs[0].scope_logs[0].log_records;
        assert_eq!(logs.len(), 2);
        assert_eq!((logs[0].severity_number, logs[1].severity_number), (13, 9));
        let keys: Vec<&str> = logs[0].attributes.iter().map(|k| k.key.as_str()).collect();
        assert!(keys.contains(&"acelogic.exec_id") && keys.contains(&"acelogic.seq"));
        assert!(
            !keys.contains(&"acelogic.artifact_id"),
            "empty attributes are left out"
        );
        let node = &req.resource_logs[1].resource.as_ref().unwrap().attributes[1];
        assert_eq!(node.key, "acelogic.node");
    }
}
