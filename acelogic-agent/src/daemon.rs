//! The node daemon: check the node, load and attach the programs, open the
//! authorization state, apply the policies, serve the API on a Unix
//! socket, drop privileges, then stream records and reload policies until
//! told to stop. With `--metrics-listen` it also serves health probes and
//! Prometheus metrics ([`metrics`]).

use std::{
    collections::HashMap,
    net::SocketAddr,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, SystemTime},
};

use anyhow::{Context as _, bail};
use tokio::{
    io::unix::AsyncFd,
    net::UnixListener,
    signal::unix::{SignalKind, signal},
};
use tokio_stream::wrappers::UnixListenerStream;

use acelogic_authz::{
    Authorizer,
    check::Settings,
    state::{Outcome, Record, State},
};
use acelogic_domain::{Reason, cgroupfs, policy, policy::PolicySet};
use acelogic_kernel::{Counters, Kernel, LoadOptions, Records, check::NodeReport};

use crate::{
    api,
    cluster::Cluster,
    lineage, metrics,
    node::{KernelGrants, Node},
    owner::Owner,
    privileges,
};

/// What the daemon runs with.
#[derive(Debug, Clone)]
pub struct Config {
    /// Directory of `CapabilityPolicy` files (hot-reloaded).
    pub policies: PathBuf,
    /// The trust store (default `<policies>/trust.yaml`; hot-reloaded).
    pub trust: PathBuf,
    /// bpffs directory of the pinned state (adopted when present).
    pub pin_dir: PathBuf,
    /// Directory of the durable authorization state (`state.db`).
    pub state_dir: PathBuf,
    /// The API socket.
    pub socket: PathBuf,
    /// Group given the socket (mode 0660), if any.
    pub socket_gid: Option<u32>,
    pub settings: Settings,
    /// How often policies are checked for changes, cgroup patterns
    /// rescanned and expired artifacts retired.
    pub tick: Duration,
    /// Bytes of records the journal keeps for the collector before
    /// governed actions are denied.
    pub journal_cap: u64,
    /// Where to ship the journal (`http://` or `https://`), and the CA
    /// that signed the collector's certificate; none keeps records local.
    pub collector: Option<String>,
    pub collector_ca: Option<PathBuf>,
    /// The authority agents' requests are relayed to, and the CA that
    /// signed its certificate; none: `RequestArtifact` is refused.
    pub authority: Option<String>,
    pub authority_ca: Option<PathBuf>,
    /// The cgroup v2 root workloads' cgroups are made and governed under;
    /// `None`: the first cgroup2 mount. A container names the host's
    /// hierarchy mounted in (see [`crate::node::cgroup_root`]).
    pub cgroup_root: Option<PathBuf>,
    /// Where to serve `/metrics`, `/healthz` and `/readyz`; none serves
    /// nothing.
    pub metrics_listen: Option<SocketAddr>,
    /// The cluster authorization store; none: this node's state decides
    /// alone (single use and operation keys hold on this node only).
    pub cluster: Option<acelogic_cluster::Config>,
}

/// Names, sizes and mtimes of the policy inputs, and the trust store's
/// contents.
pub(crate) type Fingerprint = Vec<(PathBuf, u64, Option<SystemTime>, Option<Vec<u8>>)>;

/// A cheap fingerprint of the policy inputs: names, sizes, mtimes; for the
/// trust store (a small file) also its contents, so a key removed or
/// rotated is noticed even when the new file has the old size and mtime
/// (copied with `cp -p`, a backup restored): a removed key must revoke
/// what it signed at the next tick.
fn fingerprint(policies: &Path, trust: &Path) -> Fingerprint {
    let mut out = Vec::new();
    let mut add = |p: PathBuf, contents: bool| {
        let m = std::fs::metadata(&p).ok();
        // Bounded: a file over the trust store's size limit does not load.
        let text = (contents && m.as_ref().is_some_and(|m| m.len() <= 1 << 20))
            .then(|| std::fs::read(&p).ok())
            .flatten();
        out.push((
            p,
            m.as_ref().map_or(0, std::fs::Metadata::len),
            m.and_then(|m| m.modified().ok()),
            text,
        ));
    };
    if let Ok(rd) = std::fs::read_dir(policies) {
        for e in rd.flatten() {
            let p = e.path();
            let is_trust = p == trust;
            add(p, is_trust);
        }
    }
    add(trust.to_path_buf(), true);
    out.sort();
    out
}

fn bind(socket: &Path, gid: Option<u32>) -> anyhow::Result<UnixListener> {
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    match std::fs::remove_file(socket) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(e).with_context(|| format!("removing the stale {}", socket.display()));
        }
    }
    let listener =
        UnixListener::bind(socket).with_context(|| format!("binding {}", socket.display()))?;
    std::fs::set_permissions(socket, std::fs::Permissions::from_mode(0o660))
        .with_context(|| format!("chmod 0660 {}", socket.display()))?;
    if let Some(gid) = gid {
        std::os::unix::fs::chown(socket, None, Some(gid))
            .with_context(|| format!("chown :{gid} {}", socket.display()))?;
    }
    Ok(listener)
}

/// Journal batches per drain in the serving loop: about a full default
/// ring buffer, then the loop serves the API before draining on.
const DRAIN_BATCHES: usize = 4;

/// How long the serving loop lets records gather after it emptied the
/// ring buffer, before it waits for the next. The kernel wakes a reader
/// only for the first record after the ring was emptied, so a steady
/// trickle of governed actions costs one wake-up and one journal
/// transaction (one fsync) per linger instead of per action. Records
/// reach the journal up to this much later; the decision itself never
/// waits (it was made when the record was reserved).
pub const RING_LINGER: Duration = Duration::from_millis(5);

/// How long a stop waits for API calls in flight.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// What start-up leaves for the serving loop.
struct Started {
    node: Node,
    cluster: Option<Cluster>,
    relay: Option<Arc<crate::relay::Relay>>,
    lineage: lineage::Lineage,
    records: Records,
    metrics: Arc<metrics::Metrics>,
    metrics_server: Option<metrics::Server>,
    listener: UnixListener,
    epoch: u64,
}

/// What the serving loop hands back for a clean stop.
struct Stopped {
    node: Node,
    lineage: lineage::Lineage,
    records: Records,
    epoch: u64,
}

/// What a tick did on the state's owner, for the loop that owns lineage.
#[derive(Debug, Default)]
struct TickOutcome {
    /// The policy changed: the workloads and cgroups records are named by.
    learned: Option<(PolicySet, HashMap<String, Vec<PathBuf>>)>,
    counters: Option<Counters>,
}

/// Runs the daemon until SIGINT or SIGTERM.
pub async fn run(config: Config) -> anyhow::Result<()> {
    // Lazy: a store that is down now is refused per call, not at start.
    let cluster = match &config.cluster {
        Some(c) => Some(Cluster::new(
            acelogic_cluster::EtcdStore::connect(c)
                .await
                .context("the cluster store (--etcd-endpoints)")?,
            c,
        )),
        None => None,
    };
    let started = start(&config, cluster)?;
    let stopped = serve(Arc::new(config.clone()), started).await?;
    shutdown(&config, stopped)
}

/// Checks the node, loads or adopts the programs, opens the state and the
/// journal, applies the policy, binds the socket and drops privileges.
fn start(config: &Config, cluster: Option<Cluster>) -> anyhow::Result<Started> {
    let report = NodeReport::inspect();
    if !report.ready() {
        bail!("this node cannot enforce; refusing to start in enforce mode:\n{report}");
    }
    privileges::check_start()?;
    // Probes answer from here on (503 with the reason until ready).
    let metrics = Arc::new(metrics::Metrics::new(config.tick));
    let metrics_server = match config.metrics_listen {
        Some(addr) => {
            let server = metrics::Server::start(addr, Arc::clone(&metrics))?;
            println!("acelogic-agent: metrics on http://{}", server.addr);
            Some(server)
        }
        None => None,
    };
    // Before reading them: a change made while starting is seen by the
    // first tick, not missed.
    let inputs_seen = fingerprint(&config.policies, &config.trust);
    let (loaded, trust) = policy::load_inputs(&config.policies, &config.trust)
        .map_err(|e| anyhow::anyhow!("the policies do not load; nothing was started:\n{e}"))?;
    let cgroup_root = cgroupfs::cgroup_root(config.cgroup_root.as_deref())
        .context("the cgroup v2 root to govern under")?;

    // Verification of every program can take a while on a slow machine
    // (over a minute in an emulated guest): say what start-up is doing.
    println!("acelogic-agent: loading the programs");
    let mut kernel = Kernel::load_with(&LoadOptions {
        pin_dir: Some(config.pin_dir.clone()),
        cgroup_root: Some(cgroup_root.clone()),
        ..LoadOptions::default()
    })
    .context("loading the BPF object")?;
    let attached = kernel.attach_all().context("attaching the programs")?;
    println!(
        "acelogic-agent: {} program(s) attached, {} adopted from {}",
        attached.attached.len(),
        attached.adopted.len(),
        config.pin_dir.display()
    );
    metrics.attached(attached.attached.len() + attached.adopted.len());
    let mut records = kernel.records()?;

    std::fs::create_dir_all(&config.state_dir)
        .with_context(|| format!("creating {}", config.state_dir.display()))?;
    std::fs::set_permissions(&config.state_dir, std::fs::Permissions::from_mode(0o700))?;
    let mut state = State::open(&config.state_dir.join("state.db"))?;
    let epoch = state.next_epoch()?;
    let frozen = state.frozen()?.into_iter().collect();
    let mut authz = Authorizer::new(state, config.settings.clone());
    match &config.cluster {
        Some(c) => {
            authz.set_clustered();
            println!(
                "acelogic-agent: cluster store {} (prefix {}): artifact ids and operation keys \
                 are claimed there",
                c.endpoints.join(","),
                c.prefix
            );
        }
        None => println!(
            "acelogic-agent: no --etcd-endpoints: single use and operation keys hold on this \
             node only"
        ),
    }
    let mut lineage = lineage::Lineage::open(
        &config.state_dir,
        &config.settings.node,
        epoch,
        config.journal_cap,
        &mut authz,
        &mut records,
        &metrics,
    )?;
    let policy_hash = hex::encode(loaded.set.sha256);
    // Not fatal: a daemon that cannot record its start (journal full)
    // must still run, or nothing would ever drain the journal.
    if let Err(e) = authz.note(&Record {
        detail: &format!("epoch {epoch}, node {}", config.settings.node),
        policy_sha256: Some(&policy_hash),
        ..Record::new(Outcome::DaemonStart, Reason::Start)
    }) {
        tracing::error!(error = %e, "could not record the daemon's start");
    }

    // The node key signs lineage for the collector and requests for the
    // authority.
    let key = config.state_dir.join("node.key");
    if config.collector.is_some() || config.authority.is_some() {
        let (_, created) = acelogic_lineage::ship::load_or_create_key(&key, &config.settings.node)
            .with_context(|| format!("the node key {}", key.display()))?;
        if created {
            println!(
                "acelogic-agent: created the node key {}; the collector enrolls it on first \
                 contact (--accept-new-nodes) or from its --nodes file, the authority from its \
                 --nodes file",
                key.display()
            );
        }
    }
    let relay = match &config.authority {
        Some(url) => Some(Arc::new(crate::relay::Relay::new(
            url,
            config.authority_ca.as_deref(),
            &key,
            &config.settings.node,
        )?)),
        None => None,
    };
    let shipping = match &config.collector {
        Some(url) => {
            let mut ship = acelogic_lineage::ship::ShipConfig::new(url.clone(), key);
            ship.ca.clone_from(&config.collector_ca);
            // Fail at start on a bad URL or CA, not in the background.
            acelogic_lineage::ship::endpoint(url, ship.ca.as_deref())
                .map_err(|e| anyhow::anyhow!("--collector: {e}"))?;
            Some(ship)
        }
        None => {
            println!(
                "acelogic-agent: no --collector: lineage stays in the journal, up to {} bytes",
                config.journal_cap
            );
            None
        }
    };

    let listener = bind(&config.socket, config.socket_gid)?;
    let mut node = Node {
        kernel,
        authz,
        policy: loaded.set.clone(),
        trust,
        frozen,
        cgroups: Default::default(),
        cgroup_root,
        socket: config.socket.clone(),
        epoch,
        policy_loaded: SystemTime::now(),
        policy_error: String::new(),
        warnings: Vec::new(),
        journal: Some(Arc::clone(&lineage.journal)),
        shipping: None,
        inputs_seen: Vec::new(),
    };
    let set = loaded.set;
    node.warnings = node.apply(&set, None)?;
    node.warnings
        .extend(loaded.warnings.iter().map(ToString::to_string));
    note_policy_loaded(&mut node);
    let now = SystemTime::now();
    let scopes = set.workloads.values().map(|w| w.scope_id).collect();
    node.authz
        .settle(&mut KernelGrants(&mut node.kernel), &scopes, now)?;
    node.recheck(now)?;
    node.authz
        .expire(&mut KernelGrants(&mut node.kernel), now)?;
    for w in &node.warnings {
        tracing::warn!(warning = %w, "policy");
    }
    lineage.learn_policy(&node.policy, &node.cgroups);
    lineage.drain(&mut records)?;

    let dropped = privileges::drop_after_setup()?;
    println!(
        "acelogic-agent: epoch {epoch}; {} workload(s) governed; API on {}; kept capabilities \
         [{}], dropped the rest",
        set.workloads.len(),
        config.socket.display(),
        dropped.kept.join(", ")
    );

    if let Some(ship) = shipping {
        let (tx, rx) = tokio::sync::watch::channel(acelogic_lineage::ship::ShipStatus::default());
        node.shipping = Some((ship.endpoint.clone(), rx));
        let journal = Arc::clone(&lineage.journal);
        tokio::spawn(async move {
            if let Err(e) = acelogic_lineage::ship::run(ship, journal, tx).await {
                tracing::error!(error = %e, "shipping to the collector stopped");
            }
        });
    }
    node.inputs_seen = inputs_seen;
    Ok(Started {
        node,
        cluster,
        lineage,
        records,
        metrics,
        metrics_server,
        listener,
        epoch,
        relay,
    })
}

/// Serves the API and drains the ring buffer until a signal. The node
/// state moves to its owner's thread ([`Owner`]); this loop owns only the
/// lineage side, so an API call never delays a drain.
async fn serve(config: Arc<Config>, started: Started) -> anyhow::Result<Stopped> {
    let Started {
        node,
        cluster,
        mut lineage,
        records,
        metrics,
        metrics_server,
        listener,
        epoch,
        relay,
    } = started;
    let owner = Owner::spawn(node).context("starting the state owner")?;
    if let Some(c) = &cluster {
        // Before serving: a lease released or lost while this daemon was
        // down ends its grants now (bounded by the store's timeout; a store
        // that does not answer is checked again when the watch starts).
        c.reconcile(&owner.handle()).await;
        c.spawn(
            owner.handle(),
            config.settings.node.clone(),
            Arc::clone(&metrics),
        );
    }
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(api::Service::new(owner.handle(), cluster.clone(), relay).server())
            .serve_with_incoming_shutdown(UnixListenerStream::new(listener), async {
                let _ = stop_rx.await;
            }),
    );

    // SAFETY: `Records` owns the ring buffer's fd; it stays open and the
    // same for as long as the `AsyncFd` owns the `Records`.
    let mut ring = unsafe { AsyncFd::register(records) }
        .map_err(|e| anyhow::anyhow!("watching the ring buffer: {e}"))?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut tick = tokio::time::interval(config.tick);
    let (outcome_tx, mut outcomes) = tokio::sync::mpsc::unbounded_channel::<TickOutcome>();
    let handle = owner.handle();
    let mut gaps = metrics::DrainGaps::default();
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = tick.tick() => {
                let (cfg, m, tx) = (Arc::clone(&config), Arc::clone(&metrics), outcome_tx.clone());
                let refresh = metrics_server.is_some();
                if !handle.cast(move |node| {
                    let _ = tx.send(on_tick(node, &cfg, &m, refresh));
                }) {
                    tracing::warn!("the state owner is busy; housekeeping waits for the next tick");
                }
                // Retry a blocked journal.
                let drained = lineage.drain_some(ring.get_mut(), DRAIN_BATCHES)?;
                gaps.drained(drained.moved);
                if refresh {
                    metrics.refresh_lineage(&lineage, &gaps);
                }
            }
            Some(outcome) = outcomes.recv() => {
                if let Some((policy, cgroups)) = outcome.learned {
                    lineage.learn_policy(&policy, &cgroups);
                }
                if let Some(counters) = outcome.counters {
                    lineage.account_losses(counters);
                }
            }
            ready = ring.readable_mut() => {
                let mut guard = ready.context("waiting for records")?;
                let drained = lineage.drain_some(guard.get_inner_mut(), DRAIN_BATCHES)?;
                gaps.drained(drained.moved);
                if drained.more {
                    // Still readable: come back at once, after the API and
                    // the tick had their turn.
                    drop(guard);
                    tokio::task::yield_now().await;
                } else {
                    guard.clear_ready();
                    drop(guard);
                    if drained.moved > 0 {
                        tokio::time::sleep(RING_LINGER).await;
                    }
                }
            }
        }
    }
    if let Some(m) = metrics_server {
        m.stop();
    }
    let _ = stop_tx.send(());
    // Graceful: calls in flight finish. A client that keeps an idle
    // connection open would hold the stop forever; after the grace period
    // the server is dropped, closing what is left.
    let mut server = server;
    if tokio::time::timeout(STOP_GRACE, &mut server).await.is_err() {
        tracing::warn!(
            grace = ?STOP_GRACE,
            "API clients still connected at stop; closing their connections"
        );
        server.abort();
        let _ = server.await;
    }
    let _ = std::fs::remove_file(&config.socket);
    drop(handle);
    let node = owner.stop().await?;
    Ok(Stopped {
        node,
        lineage,
        records: ring.into_inner(),
        epoch,
    })
}

/// One tick on the owner's thread: reload changed policies, retire and
/// govern, read the kernel's counters, refresh the node's metrics.
fn on_tick(
    node: &mut Node,
    config: &Config,
    metrics: &metrics::Metrics,
    refresh: bool,
) -> TickOutcome {
    let mut outcome = TickOutcome::default();
    let seen = fingerprint(&config.policies, &config.trust);
    if seen != node.inputs_seen {
        node.inputs_seen = seen;
        reload(node, config, metrics);
        outcome.learned = Some((node.policy.clone(), node.cgroups.clone()));
    }
    housekeeping(node);
    outcome.counters = match node.kernel.counters() {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::error!(error = %e, "reading the kernel's counters");
            None
        }
    };
    if refresh {
        metrics.refresh_node(node, outcome.counters);
    }
    metrics.ticked();
    outcome
}

/// Journals what is left in the ring and the daemon's stop.
fn shutdown(config: &Config, stopped: Stopped) -> anyhow::Result<()> {
    let Stopped {
        mut node,
        mut lineage,
        mut records,
        epoch,
    } = stopped;
    if let Err(e) = lineage.drain(&mut records) {
        tracing::error!(error = %e, "journaling the last records; they stay in the ring buffer");
    }
    if let Ok(c) = node.kernel.counters() {
        lineage.account_losses(c);
    }
    let _ = node.authz.note(&Record {
        detail: &format!("epoch {epoch}"),
        ..Record::new(Outcome::DaemonStop, Reason::Signal)
    });
    match node.kernel.counters() {
        Ok(c) => println!(
            "acelogic-agent: stopping; denied={} allowed={} audited={} record_unavailable={} \
             lineage_lost={} lineage_missed={}; enforcement stays pinned at {} \
             (`acelogic-agent uninstall` removes it)",
            c.denied,
            c.allowed,
            c.audited,
            c.record_unavailable,
            c.lineage_lost,
            c.lineage_missed,
            config.pin_dir.display()
        ),
        Err(e) => println!(
            "acelogic-agent: stopping (the kernel's counters: {e}); enforcement stays pinned at \
             {} (`acelogic-agent uninstall` removes it)",
            config.pin_dir.display()
        ),
    }
    Ok(())
}

fn note_policy_loaded(node: &mut Node) {
    let detail = format!(
        "policy sha256 {} ({} workload(s), {} file(s))",
        hex::encode(node.policy.sha256),
        node.policy.workloads.len(),
        node.policy.files.len()
    );
    if let Err(e) = node.authz.note(&Record {
        detail: &detail,
        ..Record::new(Outcome::PolicyLoaded, Reason::Loaded)
    }) {
        tracing::error!(error = %e, "could not record the policy load");
    }
}

/// Loads changed policies. A policy that fails to load or apply keeps the
/// one in force and says why; a good one is applied, then every live
/// artifact is re-checked and those it no longer permits are revoked.
fn reload(node: &mut Node, config: &Config, metrics: &metrics::Metrics) {
    let (loaded, trust) = match policy::load_inputs(&config.policies, &config.trust) {
        Ok(ok) => ok,
        Err(why) => {
            tracing::error!(%why, "policy reload refused; keeping the policy in force");
            metrics.reload_failed();
            node.policy_error = why.to_string();
            let _ = node.authz.note(&Record {
                detail: &format!("kept policy {}: {why}", hex::encode(node.policy.sha256)),
                ..Record::new(Outcome::PolicyRejected, Reason::InvalidPolicy)
            });
            return;
        }
    };
    let previous = std::mem::replace(&mut node.policy, loaded.set);
    node.trust = trust;
    let set = node.policy.clone();
    match node.apply(&set, Some(&previous)) {
        Ok(mut warnings) => {
            warnings.extend(loaded.warnings.iter().map(ToString::to_string));
            node.warnings = warnings;
            node.policy_error.clear();
            node.policy_loaded = SystemTime::now();
            note_policy_loaded(node);
        }
        Err(e) => {
            tracing::error!(error = %e, "applying the new policy failed");
            metrics.reload_failed();
            node.policy_error = format!("applying: {e}");
        }
    }
    if let Err(e) = node.recheck(SystemTime::now()) {
        tracing::error!(error = %e, "re-checking live artifacts");
    }
}

/// Retires expired and used-up artifacts and governs cgroups that
/// appeared under a workload's patterns.
fn housekeeping(node: &mut Node) {
    node.retire(SystemTime::now());
    let workloads: Vec<_> = node.policy.workloads.values().cloned().collect();
    for w in workloads {
        if w.cgroups.iter().all(|c| c.literal().is_some()) {
            continue;
        }
        for dir in w.cgroup_dirs(&node.cgroup_root) {
            let known = node.cgroups.get(&w.name).is_some_and(|d| d.contains(&dir));
            if known {
                continue;
            }
            match node.kernel.govern(&dir, w.scope_id) {
                Ok(_) => node.cgroups.entry(w.name.clone()).or_default().push(dir),
                Err(e) => {
                    tracing::warn!(cgroup = %dir.display(), error = %e, "governing a new cgroup");
                }
            }
        }
    }
}
