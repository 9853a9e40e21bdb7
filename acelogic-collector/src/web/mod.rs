//! The web view: server-rendered HTML pages on the collector's own
//! listener, beside gRPC (HTTP/1.1 or HTTP/2, same TLS, same client
//! certificates and roles, same audit table). No script, no external
//! resource: the CSS is inline.
//!
//! | page | role | shows |
//! |---|---|---|
//! | `/` | reader | a form per question, the nodes known |
//! | `/tree?exec_id=ID` | reader | the process tree, decisions coloured by verdict, a timeline |
//! | `/artifact?id=ID` | reader | the authority's request records, authorization records, decisions it allowed |
//! | `/denials?workload=W&since=24h&until=` | reader | denials of a workload in a time range |
//! | `/verify` | auditor | each node's chains, verified as `Verify` does |
//!
//! Pages answer through the `Query` service's own functions, so what a page
//! shows is what the matching query answers.

pub mod html;
pub mod pages;

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::Arc,
    time::{SystemTime, UNIX_EPOCH},
};

use axum::{
    Router,
    extract::{Request, State},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use tokio_rustls::rustls::pki_types::CertificateDer;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};

use super::{access::Method, query::Query, refusal, status_of};
use acelogic_domain::Reason;
use acelogic_proto::REASON_KEY;

/// The pages, as a router to merge beside the gRPC services.
pub fn router(query: Query) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/tree", get(tree))
        .route("/artifact", get(artifact))
        .route("/denials", get(denials))
        .route("/verify", get(verify))
        .with_state(Arc::new(query))
}

type Page = Result<(String, String), tonic::Status>;

/// What a page needs of its request: the peer's certificates and address
/// (from the connection) and the query string's parameters.
struct Asked {
    certs: Option<Arc<Vec<CertificateDer<'static>>>>,
    peer: Option<SocketAddr>,
    params: HashMap<String, String>,
}

impl Asked {
    fn of(req: &Request) -> Self {
        let ext = req.extensions();
        let (certs, peer) = match ext.get::<TlsConnectInfo<TcpConnectInfo>>() {
            Some(tls) => (tls.peer_certs(), tls.get_ref().remote_addr()),
            None => (
                None,
                ext.get::<TcpConnectInfo>()
                    .and_then(TcpConnectInfo::remote_addr),
            ),
        };
        Self {
            certs,
            peer,
            params: html::params(req.uri().query()),
        }
    }

    fn param(&self, key: &str) -> String {
        self.params
            .get(key)
            .map(|v| v.trim().to_owned())
            .unwrap_or_default()
    }
}

fn html(status: StatusCode, body: String, reason: Option<&str>) -> Response {
    let mut resp = (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            // Pages hold only what is rendered here: no script runs, no
            // other origin is asked.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
            ),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response();
    if let Some(code) = reason.and_then(|r| HeaderValue::from_str(r).ok()) {
        resp.headers_mut().insert(REASON_KEY, code);
    }
    resp
}

fn http_status(code: tonic::Code) -> StatusCode {
    match code {
        tonic::Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        tonic::Code::PermissionDenied => StatusCode::FORBIDDEN,
        tonic::Code::NotFound => StatusCode::NOT_FOUND,
        tonic::Code::InvalidArgument => StatusCode::BAD_REQUEST,
        tonic::Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn error_page(who: &str, s: &tonic::Status) -> Response {
    let code = acelogic_proto::reason_of(s).unwrap_or_else(|| "error".to_owned());
    let why = s
        .message()
        .strip_prefix(&format!("{code}: "))
        .unwrap_or(s.message());
    html(
        http_status(s.code()),
        html::page("Refused", who, &pages::refused(&code, why)),
        Some(&code),
    )
}

/// Admits (or refuses, counted and audited), renders with `f`, audits the
/// view before it is sent.
async fn guarded(
    q: &Query,
    asked: &Asked,
    method: Method,
    args: &serde_json::Value,
    f: impl Future<Output = Page>,
) -> Response {
    let args = args.to_string();
    let caller = match q
        .gate
        .admit(
            asked.certs.as_deref().map(Vec::as_slice),
            asked.peer,
            method,
            &args,
        )
        .await
    {
        Ok(c) => c,
        Err(r) => return error_page("not signed in", &status_of(&r)),
    };
    let who = format!("{} ({})", caller.who, caller.role);
    let result = f.await;
    let outcome = match &result {
        Ok(_) => "ok".to_owned(),
        Err(s) => acelogic_proto::reason_of(s).unwrap_or_else(|| format!("{:?}", s.code())),
    };
    if let Err(r) = q.gate.record(&caller, method, &args, &outcome).await {
        return error_page(&who, &status_of(&r));
    }
    match result {
        Ok((title, body)) => html(StatusCode::OK, html::page(&title, &who, &body), None),
        Err(s) => error_page(&who, &s),
    }
}

async fn index(State(q): State<Arc<Query>>, req: Request) -> Response {
    let req = Asked::of(&req);
    let page = async {
        let nodes = q.nodes().await?;
        Ok(("Lineage".to_owned(), pages::index(&nodes)))
    };
    guarded(&q, &req, Method::WebIndex, &serde_json::json!({}), page).await
}

async fn tree(State(q): State<Arc<Query>>, req: Request) -> Response {
    let req = Asked::of(&req);
    let exec_id = req.param("exec_id");
    let args = serde_json::json!({ "exec_id": exec_id });
    let page = async {
        let t = q.answer_tree(exec_id.clone()).await?;
        Ok((format!("tree {exec_id}"), pages::tree(&t, &exec_id)))
    };
    guarded(&q, &req, Method::WebTree, &args, page).await
}

async fn artifact(State(q): State<Arc<Query>>, req: Request) -> Response {
    let req = Asked::of(&req);
    let id = req.param("id");
    let args = serde_json::json!({ "artifact_id": id });
    let page = async {
        let a = q.answer_artifact(id.clone()).await?;
        Ok((format!("artifact {id}"), pages::artifact(&a, &id)))
    };
    guarded(&q, &req, Method::WebArtifact, &args, page).await
}

/// `--since`/`--until` as the CLI takes them: RFC 3339 or a duration ago.
fn time_param(s: &str, name: &str) -> Result<u64, tonic::Status> {
    let t = humantime::parse_rfc3339_weak(s)
        .or_else(|_| {
            humantime::parse_duration(s)
                .map(|d| SystemTime::now().checked_sub(d).unwrap_or(UNIX_EPOCH))
        })
        .map_err(|_| {
            status_of(&refusal(
                Reason::BadRequest,
                format!("{name} {s:?} is neither an RFC 3339 time nor a duration (1h, 30m)"),
            ))
        })?;
    Ok(t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)))
}

async fn denials(State(q): State<Arc<Query>>, req: Request) -> Response {
    let req = Asked::of(&req);
    let workload = req.param("workload");
    let mut since = req.param("since");
    if since.is_empty() {
        "24h".clone_into(&mut since);
    }
    let until = req.param("until");
    let args = serde_json::json!({ "workload": workload, "since": since, "until": until });
    let page = async {
        if workload.is_empty() {
            return Ok((
                "denials".to_owned(),
                format!(
                    "<h1>Denials</h1>{}",
                    pages::denials_form(&workload, &since, &until)
                ),
            ));
        }
        let r = acelogic_proto::collector::DenialsRequest {
            workload: workload.clone(),
            since_unix_nano: time_param(&since, "since")?,
            until_unix_nano: if until.is_empty() {
                0
            } else {
                time_param(&until, "until")?
            },
            limit: 0,
        };
        let d = q.answer_denials(r).await?;
        Ok((
            format!("denials {workload}"),
            pages::denials(&d, &workload, &since, &until),
        ))
    };
    guarded(&q, &req, Method::WebDenials, &args, page).await
}

async fn verify(State(q): State<Arc<Query>>, req: Request) -> Response {
    let req = Asked::of(&req);
    let page = async {
        let mut reports = Vec::new();
        for node in q.nodes().await? {
            let v = q
                .answer_verify(node.clone(), Vec::new())
                .await
                .map_err(|s| s.message().to_owned());
            reports.push((node, v));
        }
        Ok(("verify".to_owned(), pages::verify(&reports)))
    };
    guarded(&q, &req, Method::WebVerify, &serde_json::json!({}), page).await
}
