//! `acelogicctl lineage denials --workload W`: the denied decisions of a
//! workload in a time range.

use std::fmt::Write as _;

use super::{
    Target, parse_since,
    record::{decode, describe, process_of, record_json},
};
use crate::{
    CtlResult, connect,
    error::{Peer, from_status},
    output::when_ns,
};
use acelogic_proto::collector as pb;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long)]
    workload: String,
    /// RFC 3339 time or a duration ago (1h, 30m).
    #[arg(long, default_value = "24h")]
    since: String,
    /// RFC 3339 time or a duration ago [default: now].
    #[arg(long)]
    until: Option<String>,
}

pub fn exec(args: &Args, t: &Target, json: bool) -> CtlResult<String> {
    let since = parse_since(&args.since)?;
    let until = args.until.as_deref().map(parse_since).transpose()?;
    connect::block(denials(t, &args.workload, since, until.unwrap_or(0), json))
}

/// Denied decisions of `workload` between `since` and `until` (ns; 0: now).
pub async fn denials(
    t: &Target,
    workload: &str,
    since: u64,
    until: u64,
    json: bool,
) -> CtlResult<String> {
    let mut c = connect::collector(t).await?;
    let r = c
        .denials(pb::DenialsRequest {
            workload: workload.to_owned(),
            since_unix_nano: since,
            until_unix_nano: until,
            limit: 0,
        })
        .await
        .map_err(|s| from_status(&s, Peer::Collector))?
        .into_inner();
    if json {
        return Ok(serde_json::json!({
            "records": r.records.iter().map(record_json).collect::<Vec<_>>(),
            "truncated": r.truncated,
        })
        .to_string());
    }
    let mut out = format!(
        "{} denial(s) of workload {workload} since {}\n",
        r.records.len(),
        when_ns(since)
    );
    for d in &r.records {
        let who = decode(d)
            .and_then(|rec| {
                process_of(&rec).map(|p| format!("{} pid {} {} ", p.exec_id, p.pid, p.comm))
            })
            .unwrap_or_default();
        let _ = writeln!(out, "  {who}{}", describe(d));
    }
    if r.truncated {
        out.push_str("(truncated: narrow the time range)\n");
    }
    Ok(out)
}
