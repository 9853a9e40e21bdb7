//! The central lineage collector.
use std::{net::SocketAddr, path::PathBuf, process::ExitCode, time::Duration};

use acelogic_collector::{self as collector, DEFAULT_LISTEN, verify::Limits};
use clap::Parser;

/// ACELOGIC lineage collector: receives each node's hash-chained journal
/// over gRPC, verifies every batch (chain, hashes, node signature) before
/// storing it in SQLite, records gaps and alarms, signs checkpoints of
/// every chain head, answers `acelogicctl lineage` queries and serves a
/// web view (both behind client certificates with --client-ca), serves
/// Prometheus metrics and exports records as OTLP logs.
///
/// Prints `acelogic-collector: listening on URL` once ready. SIGTERM or
/// SIGINT stops it cleanly (a last checkpoint is signed).
#[derive(Debug, Parser)]
#[command(name = "acelogic-collector", version)]
struct Args {
    /// Address for node sessions and queries (port 0 picks a free one).
    #[arg(long, value_name = "ADDR", default_value = DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// The store (SQLite; created when missing).
    #[arg(
        long,
        value_name = "PATH",
        default_value = "/var/lib/acelogic-collector/collector.db"
    )]
    db: PathBuf,
    /// Checkpoint signing key (Ed25519 key file; created with mode 0600 when missing).
    #[arg(
        long,
        value_name = "PATH",
        default_value = "/var/lib/acelogic-collector/collector.key"
    )]
    key: PathBuf,
    /// Enrollment file: node name -> public key (kind NodeEnrollment).
    #[arg(long, value_name = "FILE")]
    nodes: Option<PathBuf>,
    /// Enroll an unknown node's key on first contact (trust on first use; logged and recorded as an alarm).
    #[arg(long)]
    accept_new_nodes: bool,
    /// TLS certificate chain (PEM); with --tls-key, serve https.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// CA certificate (PEM) that signs client certificates: queries and the
    /// web view then need a client certificate whose role allows them
    /// (acelogicctl certs). Without it queries are open. Needs --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    client_ca: Option<PathBuf>,
    /// How often chain heads that moved are checkpointed.
    #[arg(long, value_name = "DURATION", default_value = "10s", value_parser = humantime::parse_duration)]
    checkpoint_interval: Duration,
    /// Export stored records as OTLP logs to this gRPC endpoint (http:// or https://).
    #[arg(long, value_name = "URL")]
    otlp_endpoint: Option<String>,
    /// CA certificate (PEM) for an https OTLP endpoint.
    #[arg(long, value_name = "FILE", requires = "otlp_endpoint")]
    otlp_ca: Option<PathBuf>,
    /// Serve /metrics (Prometheus) and /healthz on this address.
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<SocketAddr>,
    /// Most entries in one batch.
    #[arg(long, value_name = "N", default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    max_batch_entries: u32,
    /// Most bytes in one batch (records plus 80 per entry).
    #[arg(long, value_name = "BYTES", default_value_t = 4 << 20, value_parser = clap::value_parser!(u32).range(1024..=(256 << 20)))]
    max_batch_bytes: u32,
    /// How far a node's clock may be from ours.
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = humantime::parse_duration)]
    clock_skew: Duration,
}

fn main() -> ExitCode {
    acelogic_domain::init_tracing();
    let a = Args::parse();
    let config = collector::Config {
        listen: a.listen,
        db: a.db,
        key: a.key,
        nodes: a.nodes,
        accept_new_nodes: a.accept_new_nodes,
        tls: a.tls_cert.zip(a.tls_key),
        checkpoint_interval: a.checkpoint_interval,
        otlp_endpoint: a.otlp_endpoint,
        otlp_ca: a.otlp_ca,
        metrics_listen: a.metrics_listen,
        limits: Limits {
            max_entries: a.max_batch_entries as usize,
            max_bytes: a.max_batch_bytes as usize,
        },
        clock_skew: a.clock_skew,
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("acelogic-collector: starting the runtime: {e}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(collector::run(config, a.client_ca)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("acelogic-collector: {e:#}");
            ExitCode::from(1)
        }
    }
}
