//! `acelogicctl lineage export`: stored records as JSON lines, streamed.

use std::io::Write as _;

use super::{Target, parse_since, record::record_json};
use crate::{
    CtlError, CtlResult, connect,
    error::{Peer, from_status},
};
use acelogic_proto::collector as pb;

#[derive(Debug, clap::Args)]
pub struct Args {
    #[arg(long, default_value = "")]
    node: String,
    /// RFC 3339 time or a duration ago [default: everything].
    #[arg(long)]
    since: Option<String>,
}

pub fn exec(args: &Args, t: &Target) -> CtlResult<String> {
    let since = args.since.as_deref().map(parse_since).transpose()?;
    connect::block(export(t, &args.node, since.unwrap_or(0)))?;
    Ok(String::new())
}

/// Streams records as JSON lines to stdout; returns how many.
pub async fn export(t: &Target, node: &str, since: u64) -> CtlResult<u64> {
    let mut c = connect::collector(t).await?;
    let mut stream = c
        .export(pb::ExportRequest {
            node: node.to_owned(),
            since_unix_nano: since,
        })
        .await
        .map_err(|s| from_status(&s, Peer::Collector))?
        .into_inner();
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut n = 0;
    while let Some(r) = stream
        .message()
        .await
        .map_err(|s| from_status(&s, Peer::Collector))?
    {
        writeln!(out, "{}", record_json(&r)).map_err(CtlError::internal)?;
        n += 1;
    }
    out.flush().map_err(CtlError::internal)?;
    Ok(n)
}
