//! The node agent.
use std::{net::SocketAddr, path::PathBuf, time::Duration};

use acelogic_agent::daemon;
use acelogic_authz::check::Settings;
use acelogic_kernel::{self as kernel, DEFAULT_PIN_DIR, check::NodeReport};
use acelogic_proto::DEFAULT_SOCKET;
use anyhow::Context as _;
use clap::{Parser, Subcommand};

/// ACELOGIC node agent: loads the BPF LSM gates and pins them so
/// enforcement outlives this process, governs the cgroups its capability
/// policies name, installs their baselines, and turns verified signed
/// artifacts into kernel grants through its API on a Unix socket.
///
/// Needs root (CAP_BPF, CAP_PERFMON, CAP_SYS_ADMIN, CAP_DAC_READ_SEARCH;
/// all but CAP_BPF and CAP_DAC_READ_SEARCH are dropped after setup) and a
/// kernel with BPF LSM active; it refuses to start otherwise and says how
/// to fix it.
#[derive(Debug, Parser)]
#[command(name = "acelogic-agent", version)]
struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    /// Directory of CapabilityPolicy files (reloaded on change).
    #[arg(long, value_name = "DIR", default_value = "/etc/acelogic/policies")]
    policies: PathBuf,
    /// Trust store of issuer and approver keys [default: <policies>/trust.yaml].
    #[arg(long, value_name = "FILE")]
    trust: Option<PathBuf>,
    /// bpffs directory for pinned programs, links and maps.
    #[arg(long, value_name = "DIR", default_value = DEFAULT_PIN_DIR, global = true)]
    pin_dir: PathBuf,
    /// Durable authorization state (spent artifact ids, leases, records).
    #[arg(long, value_name = "DIR", default_value = "/var/lib/acelogic")]
    state_dir: PathBuf,
    /// The API's Unix socket (mode 0660).
    #[arg(long, value_name = "PATH", default_value = DEFAULT_SOCKET)]
    socket: PathBuf,
    /// Numeric group to own the socket (members may call the API).
    #[arg(long, value_name = "GID")]
    socket_gid: Option<u32>,
    /// The audience artifacts must name (this cluster or fleet).
    #[arg(long, default_value = "acelogic")]
    audience: String,
    /// This node's name [default: the hostname].
    #[arg(long)]
    node_name: Option<String>,
    /// How far in the future an artifact's notBefore may be.
    #[arg(long, value_name = "DURATION", default_value = "30s", value_parser = humantime::parse_duration)]
    clock_skew: Duration,
    /// How often policies are checked for changes and expired grants retired.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = humantime::parse_duration)]
    tick: Duration,
    /// Bytes of lineage records kept for the collector. When they are all
    /// unacknowledged, governed actions are denied rather than records
    /// dropped.
    #[arg(long, value_name = "BYTES", default_value_t = 1 << 30)]
    journal_cap: u64,
    /// The lineage collector (`http://HOST:PORT`, or `https://` with
    /// --collector-ca). The node key is `<state-dir>/node.key`, made on
    /// first start.
    #[arg(long, value_name = "URL")]
    collector: Option<String>,
    /// CA certificate (PEM) that signed the collector's certificate.
    #[arg(long, value_name = "FILE")]
    collector_ca: Option<PathBuf>,
    /// The authority that agents' requests (`acelogicctl request`) are
    /// relayed to, signed with the node key (`http://HOST:PORT`, or
    /// `https://` with --authority-ca). Enroll the node key there.
    #[arg(long, value_name = "URL")]
    authority: Option<String>,
    /// CA certificate (PEM) that signed the authority's certificate.
    #[arg(long, value_name = "FILE", requires = "authority")]
    authority_ca: Option<PathBuf>,
    /// Root of the host's cgroup v2 hierarchy, where policies' cgroups are
    /// made and governed [default: the first cgroup2 mount]. In a container
    /// (private cgroup namespace) mount the host's in and name it here.
    #[arg(long, value_name = "DIR")]
    cgroup_root: Option<PathBuf>,
    /// Serve /metrics (Prometheus), /healthz (liveness) and /readyz
    /// (readiness) over HTTP on this address (`0.0.0.0:9464`; port 0
    /// picks one). Prints `acelogic-agent: metrics on http://ADDR`.
    #[arg(long, value_name = "ADDR")]
    metrics_listen: Option<SocketAddr>,
    /// The cluster authorization store: etcd v3 members (`http://HOST:PORT`
    /// or `https://` with --etcd-ca), comma-separated. With it, artifact
    /// ids are single-use and operation keys leased across every node
    /// that shares the store; without it, on this node only.
    #[arg(long, value_name = "URLS", value_delimiter = ',')]
    etcd_endpoints: Vec<String>,
    /// Every key the daemon writes lives below this prefix.
    #[arg(long, value_name = "PREFIX", default_value = acelogic_cluster::DEFAULT_PREFIX)]
    etcd_prefix: String,
    /// CA certificate (PEM) that signed the etcd members' certificates.
    #[arg(long, value_name = "FILE", requires_all = ["etcd_cert", "etcd_key"])]
    etcd_ca: Option<PathBuf>,
    /// This node's client certificate (PEM) for etcd.
    #[arg(long, value_name = "FILE", requires = "etcd_ca")]
    etcd_cert: Option<PathBuf>,
    /// This node's client key (PEM) for etcd.
    #[arg(long, value_name = "FILE", requires = "etcd_ca")]
    etcd_key: Option<PathBuf>,
    /// The longest one etcd call may take; past it the answer counts as
    /// unknown and the artifact is refused `cluster-store-unavailable`.
    #[arg(long, value_name = "DURATION", default_value = "2s", value_parser = humantime::parse_duration)]
    etcd_timeout: Duration,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check that this node can enforce: BPF LSM active, kernel BTF,
    /// cgroup v2, bpffs, and the kernel accepts the exec gate. Exit status
    /// 0 when ready, 1 when not.
    CheckNode,
    /// Remove the pinned state: enforcement on this node ends.
    Uninstall,
}

fn hostname() -> anyhow::Result<String> {
    let name =
        std::fs::read_to_string("/proc/sys/kernel/hostname").context("reading the hostname")?;
    Ok(name.trim().to_owned())
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> anyhow::Result<std::process::ExitCode> {
    acelogic_domain::init_tracing();
    let args = Args::parse();
    if let Some(Command::CheckNode) = args.command {
        let report = NodeReport::inspect_every_program();
        if report.ready() {
            println!("{report}node is ready to enforce");
            return Ok(std::process::ExitCode::SUCCESS);
        }
        println!("{report}node is NOT ready to enforce");
        return Ok(std::process::ExitCode::from(1));
    }
    if let Some(Command::Uninstall) = args.command {
        let done = kernel::uninstall(&args.pin_dir)?;
        println!(
            "acelogic-agent: removed {} link(s) and {} map(s) from {}; enforcement is off",
            done.links.len(),
            done.maps.len(),
            args.pin_dir.display()
        );
        return Ok(std::process::ExitCode::SUCCESS);
    }
    let node = match args.node_name {
        Some(n) => n,
        None => hostname()?,
    };
    daemon::run(daemon::Config {
        trust: args
            .trust
            .unwrap_or_else(|| args.policies.join("trust.yaml")),
        policies: args.policies,
        pin_dir: args.pin_dir,
        state_dir: args.state_dir,
        socket: args.socket,
        socket_gid: args.socket_gid,
        settings: Settings {
            audience: args.audience,
            node,
            clock_skew: args.clock_skew,
        },
        tick: args.tick,
        journal_cap: args.journal_cap,
        collector: args.collector,
        collector_ca: args.collector_ca,
        authority: args.authority,
        authority_ca: args.authority_ca,
        cgroup_root: args.cgroup_root,
        metrics_listen: args.metrics_listen,
        cluster: (!args.etcd_endpoints.is_empty()).then_some(acelogic_cluster::Config {
            endpoints: args.etcd_endpoints,
            prefix: args.etcd_prefix,
            tls: match (args.etcd_ca, args.etcd_cert, args.etcd_key) {
                (Some(ca), Some(cert), Some(key)) => {
                    Some(acelogic_cluster::TlsFiles { ca, cert, key })
                }
                _ => None,
            },
            timeout: args.etcd_timeout,
        }),
    })
    .await?;
    Ok(std::process::ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cgroup_root_is_optional_and_taken_as_given() {
        let args = Args::try_parse_from(["acelogic-agent"]).unwrap();
        assert_eq!(args.cgroup_root, None);
        let args = Args::try_parse_from(["acelogic-agent", "--cgroup-root", "/host/sys/fs/cgroup"])
            .unwrap();
        assert_eq!(
            args.cgroup_root.as_deref(),
            Some(std::path::Path::new("/host/sys/fs/cgroup"))
        );
    }

    #[test]
    fn etcd_takes_a_list_of_endpoints_and_tls_needs_all_three_files() {
        let args = Args::try_parse_from([
            "acelogic-agent",
            "--etcd-endpoints",
            "https://10.0.0.1:2379,https://10.0.0.2:2379",
            "--etcd-ca",
            "ca.pem",
            "--etcd-cert",
            "node.pem",
            "--etcd-key",
            "node.key",
        ])
        .unwrap();
        assert_eq!(args.etcd_endpoints.len(), 2);
        assert_eq!(args.etcd_prefix, "/acelogic/");
        assert_eq!(args.etcd_timeout, Duration::from_secs(2));
        let e = Args::try_parse_from([
            "acelogic-agent",
            "--etcd-endpoints",
            "https://10.0.0.1:2379",
            "--etcd-ca",
            "ca.pem",
        ])
        .unwrap_err();
        assert!(e.to_string().contains("--etcd-cert"), "{e}");
        let none = Args::try_parse_from(["acelogic-agent"]).unwrap();
        assert!(none.etcd_endpoints.is_empty());
    }
}
