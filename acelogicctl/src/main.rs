//! The operator CLI. Exit codes: 0 done; 1 refused or invalid (the reason
//! code is printed as `[code]`); 2 usage or unreadable input; 3 daemon
//! unreachable; 4 internal error; 126 `run` could not exec its command.
use acelogic_domain::Reason;
use std::{path::PathBuf, process::ExitCode};

use acelogic_domain::artifact::Role;
use acelogic_proto::DEFAULT_SOCKET;
use acelogicctl::{CtlError, CtlResult, lineage, offline, remote, run};
use clap::{Parser, Subcommand, ValueEnum};

/// ACELOGIC control: keys, signed artifacts, the node daemon, governed
/// runs, policy checks.
#[derive(Debug, Parser)]
#[command(name = "acelogicctl", version)]
struct Args {
    /// The node daemon's API socket.
    #[arg(long, global = true, value_name = "PATH", default_value = DEFAULT_SOCKET)]
    socket: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum RoleArg {
    Issuer,
    Approver,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Generate an Ed25519 key (file mode 0600); prints its trust-store entry.
    Keygen {
        #[arg(long)]
        name: String,
        #[arg(long, value_enum)]
        role: RoleArg,
        /// Where to write the secret key (refuses to overwrite).
        #[arg(long, short)]
        out: PathBuf,
    },
    /// Signed artifacts.
    #[command(subcommand)]
    Artifact(ArtifactCmd),
    /// Remove a live artifact's grants now.
    Revoke {
        artifact_id: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// List live grants.
    Grants {
        #[arg(long, default_value = "")]
        workload: String,
        #[arg(long)]
        json: bool,
    },
    /// Deny every action of a workload, its baseline included.
    Freeze {
        workload: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// Lift a freeze.
    Unfreeze {
        workload: String,
        #[arg(long, default_value = "")]
        reason: String,
    },
    /// The daemon's state: policy, workloads, warnings.
    Status {
        #[arg(long)]
        json: bool,
    },
    /// Run CMD governed as WORKLOAD (new cgroup, inherited descriptors closed).
    Run {
        #[arg(long)]
        workload: String,
        #[arg(last = true, required = true)]
        cmd: Vec<String>,
    },
    /// Capability policies.
    #[command(subcommand)]
    Policy(PolicyCmd),
    /// Execution lineage, asked of the collector.
    Lineage(LineageArgs),
}

#[derive(Debug, clap::Args)]
struct LineageArgs {
    /// The collector (http:// or https://).
    #[arg(long, global = true, value_name = "URL", default_value = lineage::DEFAULT_COLLECTOR)]
    collector: String,
    /// CA certificate (PEM) of an https collector.
    #[arg(long, global = true, value_name = "FILE")]
    collector_ca: Option<PathBuf>,
    /// JSON output (export always prints JSON lines).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: LineageCmd,
}

#[derive(Debug, Subcommand)]
enum LineageCmd {
    /// The process tree around EXEC_ID: ancestors, descendants, and every
    /// exec, fork, exit and decision of each.
    Tree { exec_id: String },
    /// The exec id of a live process on this node (from procfs; asks no
    /// collector): what `tree` takes.
    ExecId { pid: u32 },
    /// An artifact: issuer, approvers, its authorization records and every
    /// decision that used it.
    Artifact { id: String },
    /// Denied decisions of a workload.
    Denials {
        #[arg(long)]
        workload: String,
        /// RFC 3339 time or a duration ago (1h, 30m).
        #[arg(long, default_value = "24h")]
        since: String,
        /// RFC 3339 time or a duration ago [default: now].
        #[arg(long)]
        until: Option<String>,
    },
    /// Recompute a node's chains and check the collector's checkpoints;
    /// exit 1 when a record was altered or removed.
    Verify {
        #[arg(long)]
        node: String,
        /// Also exit 1 when the chain has recorded gaps.
        #[arg(long)]
        strict: bool,
        /// Signed heads kept outside the collector's store (files of notes
        /// from `lineage head` on the node and `lineage checkpoints`): the
        /// store must still hold each, so removing the newest records or
        /// checkpoints is found.
        #[arg(long = "anchors", value_name = "FILE")]
        anchors: Vec<PathBuf>,
    },
    /// On the node: the newest head the collector acknowledged, signed by
    /// the node key (asks no collector). Keep it; `verify --anchors` takes it.
    Head {
        /// The daemon's state directory.
        #[arg(long, value_name = "DIR", default_value = "/var/lib/acelogic")]
        state_dir: PathBuf,
    },
    /// The newest signed checkpoint of each of a node's chains, for an
    /// auditor to keep outside the collector (append it to a file).
    Checkpoints {
        #[arg(long)]
        node: String,
    },
    /// Stored records as JSON lines.
    Export {
        #[arg(long, default_value = "")]
        node: String,
        /// RFC 3339 time or a duration ago [default: everything].
        #[arg(long)]
        since: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
enum ArtifactCmd {
    /// Build a payload from a request file (YAML) and sign it.
    Sign {
        #[arg(long)]
        request: PathBuf,
        /// Secret key files: the issuer's first, then approvers'.
        #[arg(long = "key", required = true)]
        keys: Vec<PathBuf>,
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
    /// Add an approver's signature to an envelope.
    Cosign {
        envelope: PathBuf,
        #[arg(long)]
        key: PathBuf,
        #[arg(long, short)]
        out: Option<PathBuf>,
    },
    /// Decode and verify an envelope offline against a trust store.
    Inspect {
        envelope: PathBuf,
        #[arg(long)]
        trust: PathBuf,
        #[arg(long)]
        json: bool,
    },
    /// Submit an envelope to the node daemon.
    Submit {
        envelope: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum PolicyCmd {
    /// Load a policy directory as the daemon would; exit 1 with
    /// file:line:column errors when it is invalid.
    Check {
        dir: PathBuf,
        /// [default: DIR/trust.yaml]
        #[arg(long)]
        trust: Option<PathBuf>,
    },
}

fn runtime() -> CtlResult<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(CtlError::internal)
}

fn block<T>(f: impl Future<Output = CtlResult<T>>) -> CtlResult<T> {
    runtime()?.block_on(f)
}

fn main_inner(args: Args) -> CtlResult<String> {
    let socket = args.socket;
    match args.command {
        Command::Keygen { name, role, out } => {
            let role = match role {
                RoleArg::Issuer => Role::Issuer,
                RoleArg::Approver => Role::Approver,
            };
            let entry = offline::keygen(&name, role, &out)?;
            eprintln!(
                "wrote {} (mode 0600); add this entry to the trust store's keys:",
                out.display()
            );
            Ok(entry.trim_end().to_owned())
        }
        Command::Artifact(ArtifactCmd::Sign { request, keys, out }) => {
            let refs: Vec<&std::path::Path> = keys.iter().map(PathBuf::as_path).collect();
            let id = offline::sign(&request, &refs, out.as_deref())?;
            eprintln!("signed artifact {id}");
            Ok(String::new())
        }
        Command::Artifact(ArtifactCmd::Cosign { envelope, key, out }) => {
            offline::cosign(&envelope, &key, out.as_deref())?;
            Ok(String::new())
        }
        Command::Artifact(ArtifactCmd::Inspect {
            envelope,
            trust,
            json,
        }) => offline::inspect(&envelope, &trust, json),
        Command::Artifact(ArtifactCmd::Submit { envelope, json }) => {
            block(remote::submit(&socket, &envelope, json))
        }
        Command::Revoke {
            artifact_id,
            reason,
        } => block(remote::revoke(&socket, &artifact_id, &reason)),
        Command::Grants { workload, json } => block(remote::grants(&socket, &workload, json)),
        Command::Freeze { workload, reason } => {
            block(remote::freeze(&socket, &workload, &reason, true))
        }
        Command::Unfreeze { workload, reason } => {
            block(remote::freeze(&socket, &workload, &reason, false))
        }
        Command::Status { json } => {
            let s = block(remote::status(&socket))?;
            if json {
                Ok(serde_json::json!({
                    "version": s.version, "node": s.node, "audience": s.audience, "epoch": s.epoch,
                    "policySha256": s.policy_sha256, "policyLoadedUnix": s.policy_loaded_unix,
                    "policyError": s.policy_error, "liveArtifacts": s.live_artifacts,
                    "trustedKeys": s.trusted_keys, "warnings": s.warnings, "cgroupRoot": s.cgroup_root,
                    "workloads": s.workloads.iter().map(|w| serde_json::json!({
                        "name": w.name, "scopeId": w.scope_id, "mode": w.mode, "frozen": w.frozen,
                        "cgroups": w.cgroups, "policy": w.policy})).collect::<Vec<_>>(),
                    "lineage": s.lineage.as_ref().map(|l| serde_json::json!({
                        "headSeq": l.head_seq, "ackedSeq": l.acked_seq,
                        "pendingBytes": l.pending_bytes, "capBytes": l.cap_bytes,
                        "collector": l.collector, "connected": l.connected,
                        "lastError": l.last_error})),
                })
                .to_string())
            } else {
                Ok(remote::render_status(&s))
            }
        }
        Command::Run { workload, cmd } => {
            let s = block(remote::status(&socket))?;
            let Some(w) = s.workloads.iter().find(|w| w.name == workload) else {
                return Err(CtlError::refused(
                    Reason::UnknownWorkload,
                    format!("the daemon governs no workload {workload:?}"),
                ));
            };
            let Some(dir) = w.cgroups.first() else {
                return Err(CtlError::refused(
                    Reason::NoCgroup,
                    format!("workload {workload:?} has no governed cgroup on this node"),
                ));
            };
            let dir = run::local_dir(
                std::path::Path::new(dir),
                std::path::Path::new(&s.cgroup_root),
                acelogic_domain::cgroupfs::cgroup2_mount().as_deref(),
            );
            run::enter(&dir)?;
            run::close_inherited()?;
            Err(run::exec(&cmd))
        }
        Command::Policy(PolicyCmd::Check { dir, trust }) => {
            offline::policy_check(&dir, trust.as_deref())
        }
        Command::Lineage(l) => lineage_cmd(l),
    }
}

fn lineage_cmd(l: LineageArgs) -> CtlResult<String> {
    let t = lineage::Target {
        url: l.collector,
        ca: l.collector_ca,
    };
    let json = l.json;
    match l.command {
        LineageCmd::Tree { exec_id } => block(lineage::tree(&t, &exec_id, json)),
        LineageCmd::ExecId { pid } => lineage::exec_id_of(pid),
        LineageCmd::Artifact { id } => block(lineage::artifact(&t, &id, json)),
        LineageCmd::Denials {
            workload,
            since,
            until,
        } => {
            let since = lineage::parse_since(&since)?;
            let until = until.as_deref().map(lineage::parse_since).transpose()?;
            block(lineage::denials(
                &t,
                &workload,
                since,
                until.unwrap_or(0),
                json,
            ))
        }
        LineageCmd::Verify {
            node,
            strict,
            anchors,
        } => {
            let anchors = lineage::read_anchors(&anchors)?;
            block(lineage::verify(&t, &node, anchors, json, strict))
        }
        LineageCmd::Head { state_dir } => lineage::head(&state_dir),
        LineageCmd::Checkpoints { node } => block(lineage::checkpoints(&t, &node)),
        LineageCmd::Export { node, since } => {
            let since = since.as_deref().map(lineage::parse_since).transpose()?;
            block(lineage::export(&t, &node, since.unwrap_or(0)))?;
            Ok(String::new())
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    match main_inner(args) {
        Ok(out) => {
            if !out.is_empty() {
                println!("{}", out.trim_end());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("acelogicctl: {e}");
            ExitCode::from(e.exit)
        }
    }
}
