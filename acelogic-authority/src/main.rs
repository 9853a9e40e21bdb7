//! The authority's binary.
use std::{net::SocketAddr, path::PathBuf, process::ExitCode, time::Duration};

use acelogic_authority::{self as authority, DEFAULT_LISTEN};
use clap::Parser;

/// ACELOGIC authority: issues signed artifacts on agents' requests,
/// relayed and attested by their node daemons. The issuing policy puts
/// each request in a tier: issued at once, queued for named approvers
/// (`acelogicctl approvals`), or refused. Every step is lineage, shipped
/// to the collector.
///
/// Prints `acelogic-authority: listening on URL` once ready; SIGTERM or
/// SIGINT stops it. Pending requests, approvals and issued ids survive
/// restarts.
#[derive(Debug, Parser)]
#[command(name = "acelogic-authority", version)]
struct Args {
    /// Address to serve the Authority API on (port 0 picks a free one).
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// Durable state: authority.db, journal.db, lineage.key.
    #[arg(
        long,
        value_name = "DIR",
        default_value = "/var/lib/acelogic-authority"
    )]
    state_dir: PathBuf,
    /// The issuer key (an Ed25519 key file of role issuer, mode 0600).
    #[arg(long, value_name = "FILE")]
    issuer_key: PathBuf,
    /// The issuing policy (kind IssuingPolicy); reloaded when it changes.
    #[arg(long, value_name = "FILE")]
    issuing_policy: PathBuf,
    /// The nodes' capability policy directory: what no node could grant is refused before the queue.
    #[arg(long, value_name = "DIR")]
    policies: Option<PathBuf>,
    /// The trust store (approver and issuer keys).
    #[arg(long, value_name = "FILE")]
    trust: PathBuf,
    /// Node enrollment (kind NodeEnrollment): the keys nodes sign requests with.
    #[arg(long, value_name = "FILE")]
    nodes: PathBuf,
    /// TLS certificate chain (PEM); with --tls-key, serve https.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Ship the authority's journal to this collector (http:// or https://).
    #[arg(long, value_name = "URL")]
    collector: Option<String>,
    /// CA certificate (PEM) of an https collector.
    #[arg(long, value_name = "FILE", requires = "collector")]
    collector_ca: Option<PathBuf>,
    /// The name of the authority's lineage chain (as the collector shows it).
    #[arg(long, value_name = "NAME", default_value = "authority")]
    name: String,
    /// Bytes of records kept for the collector before requests are refused.
    #[arg(long, value_name = "BYTES", default_value_t = 256 << 20)]
    journal_cap: u64,
    /// How often pending requests are expired and inputs checked for changes.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = humantime::parse_duration)]
    tick: Duration,
}

fn main() -> ExitCode {
    acelogic_domain::init_tracing();
    let a = Args::parse();
    let config = authority::Config {
        listen: a.listen,
        state_dir: a.state_dir,
        issuer_key: a.issuer_key,
        issuing_policy: a.issuing_policy,
        policies: a.policies,
        trust: a.trust,
        nodes: a.nodes,
        tls: a.tls_cert.zip(a.tls_key),
        collector: a.collector,
        collector_ca: a.collector_ca,
        name: a.name,
        journal_cap: a.journal_cap,
        tick: a.tick,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("acelogic-authority: starting the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(authority::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("acelogic-authority: {e:#}");
            ExitCode::from(1)
        }
    }
}
