//! Wiring: read the inputs and the issuer key, open the store and the
//! journal, serve `Authority` (TLS when given a certificate), expire
//! pending requests and reload changed inputs on a tick, ship the journal
//! to the collector; stop on SIGTERM or SIGINT.

use std::{
    collections::BTreeMap,
    net::SocketAddr,
    os::unix::fs::DirBuilderExt as _,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, SystemTime},
};

use anyhow::{Context as _, bail};
use tokio::{
    net::TcpListener,
    signal::unix::{SignalKind, signal},
    sync::watch,
};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Identity, Server, ServerTlsConfig};

use acelogic_domain::{
    artifact::{Role, TrustStore},
    issuing, policy,
};
use acelogic_lineage::{
    enrollment,
    journal::{Journal, Shared},
    ship,
};

use crate::{
    engine::{Engine, Inputs},
    service::Service,
    signer::{KeyFileSigner, Signer},
    store::Store,
};

/// What the authority runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// `authority.db`, `journal.db` and the lineage key live here.
    pub state_dir: PathBuf,
    /// The issuer key file (0600).
    pub issuer_key: PathBuf,
    /// The issuing policy (`kind: IssuingPolicy`), hot-reloaded.
    pub issuing_policy: PathBuf,
    /// The nodes' capability policies (a directory), hot-reloaded.
    pub policies: Option<PathBuf>,
    /// The trust store (approver keys), hot-reloaded.
    pub trust: PathBuf,
    /// Node enrollment (`kind: NodeEnrollment`), hot-reloaded.
    pub nodes: PathBuf,
    /// PEM certificate chain and key: serve https.
    pub tls: Option<(PathBuf, PathBuf)>,
    pub collector: Option<String>,
    pub collector_ca: Option<PathBuf>,
    /// The name of the authority's lineage chain.
    pub name: String,
    pub journal_cap: u64,
    pub tick: Duration,
}

/// A cheap fingerprint of the inputs: names, sizes, mtimes.
fn fingerprint(config: &Config) -> Vec<(PathBuf, u64, Option<SystemTime>)> {
    let mut paths = vec![
        config.issuing_policy.clone(),
        config.trust.clone(),
        config.nodes.clone(),
    ];
    if let Some(dir) = &config.policies
        && let Ok(rd) = std::fs::read_dir(dir)
    {
        paths.extend(rd.flatten().map(|e| e.path()));
    }
    let mut out: Vec<_> = paths
        .into_iter()
        .map(|p| {
            let m = std::fs::metadata(&p).ok();
            let len = m.as_ref().map_or(0, std::fs::Metadata::len);
            let mtime = m.and_then(|m| m.modified().ok());
            (p, len, mtime)
        })
        .collect();
    out.sort();
    out
}

/// Reads every input; the issuer key must be the one the policy names and
/// the trust store lists, or nodes would refuse everything issued.
pub fn load_inputs(config: &Config, signer: &dyn Signer) -> anyhow::Result<Inputs> {
    let issuing = issuing::load_file(&config.issuing_policy)
        .map_err(|e| anyhow::anyhow!("the issuing policy:\n{e}"))?;
    let policies = match &config.policies {
        Some(dir) => Some(
            policy::load_dir(dir)
                .map_err(|e| anyhow::anyhow!("the capability policies:\n{e}"))?
                .set,
        ),
        None => None,
    };
    let trust = TrustStore::load(&config.trust).map_err(|e| anyhow::anyhow!("{e}"))?;
    let nodes: BTreeMap<_, _> = enrollment::load(&config.nodes)
        .map_err(anyhow::Error::msg)?
        .into_iter()
        .collect();
    if issuing.issuer != signer.name() {
        bail!(
            "the issuing policy issues as {:?} but the issuer key is {:?}'s",
            issuing.issuer,
            signer.name()
        );
    }
    match trust.key(&signer.key_id()) {
        Some(k) if k.role == Role::Issuer && !trust.is_revoked(&signer.key_id()) => {}
        _ => bail!(
            "the trust store {} does not list the issuer key {} as a current issuer key; nodes \
             would refuse everything this authority issues",
            config.trust.display(),
            signer.key_id()
        ),
    }
    Ok(Inputs {
        issuing,
        policies,
        trust,
        nodes,
    })
}

fn open_journal(config: &Config) -> anyhow::Result<(Arc<Shared>, u64)> {
    let path = config.state_dir.join("journal.db");
    let mut journal = Journal::open(&path, &config.name, config.journal_cap)
        .with_context(|| format!("opening the journal {}", path.display()))?;
    let epoch = journal.meta_u64("epoch")?.unwrap_or(0) + 1;
    journal.set_meta_u64("epoch", epoch)?;
    Ok((Shared::new(journal), epoch))
}

/// A started authority.
#[derive(Debug)]
pub struct Running {
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
    done: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    pub async fn stop(self) -> anyhow::Result<()> {
        self.stop.send_replace(true);
        self.done.await.context("the authority task")?
    }
}

/// Starts serving.
pub async fn start(config: Config) -> anyhow::Result<Running> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&config.state_dir)
        .with_context(|| format!("creating {}", config.state_dir.display()))?;
    let signer = KeyFileSigner::open(&config.issuer_key)
        .with_context(|| format!("the issuer key {}", config.issuer_key.display()))?;
    let inputs = load_inputs(&config, &signer)?;
    let tls = match &config.tls {
        Some((cert, key)) => {
            let cert = std::fs::read(cert)
                .with_context(|| format!("TLS certificate {}", cert.display()))?;
            let key = std::fs::read(key).with_context(|| format!("TLS key {}", key.display()))?;
            Some(ServerTlsConfig::new().identity(Identity::from_pem(cert, key)))
        }
        None => None,
    };
    let shipping = match &config.collector {
        Some(url) => {
            let key = config.state_dir.join("lineage.key");
            let (_, created) = ship::load_or_create_key(&key, &config.name)
                .with_context(|| format!("the lineage key {}", key.display()))?;
            if created {
                println!(
                    "acelogic-authority: created the lineage key {}; enroll it at the collector",
                    key.display()
                );
            }
            let mut s = ship::ShipConfig::new(url.clone(), key);
            s.ca.clone_from(&config.collector_ca);
            ship::endpoint(url, s.ca.as_deref())
                .map_err(|e| anyhow::anyhow!("--collector: {e}"))?;
            Some(s)
        }
        None => None,
    };
    let store_path = config.state_dir.join("authority.db");
    let store =
        Store::open(&store_path).with_context(|| format!("opening {}", store_path.display()))?;
    let (journal, epoch) = open_journal(&config)?;
    let sha = inputs.issuing.sha256;
    let engine = Engine::new(
        store,
        Arc::clone(&journal),
        Box::new(signer),
        inputs,
        &config.name,
        epoch,
    );
    engine
        .lifecycle(
            "authority-start",
            &sha,
            &format!(
                "epoch {epoch}, issuing as {}",
                engine.inputs().issuing.issuer
            ),
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let engine = Arc::new(Mutex::new(engine));
    let changed = Arc::new(watch::channel(0u64).0);

    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let (stop_tx, stop) = watch::channel(false);
    let mut server = Server::builder();
    if let Some(tls) = tls {
        server = server.tls_config(tls).context("TLS configuration")?;
    }
    let service = Service::new(Arc::clone(&engine), Arc::clone(&changed));
    let mut stop_serving = stop.clone();
    let serve = server
        .add_service(service.server())
        .serve_with_incoming_shutdown(TcpListenerStream::new(listener), async move {
            let _ = stop_serving.wait_for(|s| *s).await;
        });
    if let Some(s) = shipping {
        let (tx, _rx) = watch::channel(ship::ShipStatus::default());
        let journal = Arc::clone(&journal);
        tokio::spawn(async move {
            if let Err(e) = ship::run(s, journal, tx).await {
                tracing::error!(error = %e, "shipping to the collector stopped");
            }
        });
    }
    let ticker = tokio::spawn(tick(config, engine, changed, stop));
    let done = tokio::spawn(async move {
        serve.await.context("serving")?;
        ticker.abort();
        Ok(())
    });
    Ok(Running {
        addr,
        stop: stop_tx,
        done,
    })
}

/// Expires pending requests and reloads inputs that changed.
async fn tick(
    config: Config,
    engine: Arc<Mutex<Engine>>,
    changed: Arc<watch::Sender<u64>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut seen = fingerprint(&config);
    let mut interval = tokio::time::interval(config.tick);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let now_seen = fingerprint(&config);
        let reload = now_seen != seen;
        seen = now_seen;
        let engine = Arc::clone(&engine);
        let config = config.clone();
        let expired = tokio::task::spawn_blocking(move || {
            let mut e = engine
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if reload {
                reload_inputs(&config, &mut e);
            }
            e.expire(SystemTime::now())
        })
        .await;
        match expired {
            Ok(Ok(ids)) if !ids.is_empty() => {
                for id in &ids {
                    tracing::info!(request = %id, "expired while pending");
                }
                changed.send_modify(|n| *n += 1);
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "expiring pending requests"),
            Err(e) => tracing::error!(error = %e, "the tick's worker failed"),
        }
    }
}

fn reload_inputs(config: &Config, engine: &mut Engine) {
    let signer = match KeyFileSigner::open(&config.issuer_key) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "reload: the issuer key; keeping the inputs in force");
            return;
        }
    };
    match load_inputs(config, &signer) {
        Ok(inputs) => {
            let sha = inputs.issuing.sha256;
            engine.set_inputs(inputs);
            println!("acelogic-authority: reloaded the issuing policy, trust store and node keys");
            if let Err(e) = engine.lifecycle("policy-loaded", &sha, "") {
                tracing::error!(error = %e, "recording the reload");
            }
        }
        Err(e) => {
            println!("acelogic-authority: reload refused, keeping the inputs in force: {e:#}");
            let sha = engine.inputs().issuing.sha256;
            if let Err(e) = engine.lifecycle("policy-rejected", &sha, &format!("{e:#}")) {
                tracing::error!(error = %e, "recording the refused reload");
            }
        }
    }
}

/// Runs until SIGTERM or SIGINT; prints `acelogic-authority: listening on
/// URL` when ready.
pub async fn run(config: Config) -> anyhow::Result<()> {
    let scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let running = start(config).await?;
    println!(
        "acelogic-authority: listening on {scheme}://{}",
        running.addr
    );
    {
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
    }
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    running.stop().await
}
