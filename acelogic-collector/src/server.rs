//! Wiring: open the store and keys, start the writer, serve `Ingest`,
//! `Query` and the web view on one listener (plaintext or TLS, with client
//! certificates when `--client-ca` is set), metrics on another, sign
//! checkpoints on a timer, export OTLP; on SIGTERM or SIGINT stop taking
//! sessions, sign a last checkpoint and close the store.

use std::{
    net::SocketAddr, os::unix::fs::DirBuilderExt as _, path::PathBuf, sync::Arc, time::Duration,
};

use anyhow::{Context as _, bail};
use tokio::{
    net::TcpListener,
    signal::unix::{SignalKind, signal},
    sync::watch,
};
use tokio_stream::{StreamExt as _, wrappers::TcpListenerStream};
use tonic::{service::Routes, transport::Server};

use super::{
    access::Access, audit_log::Gate, checkpoint, ingest::Ingest, metrics::Metrics, nodes,
    now_unix_nano, otlp, query::Query, store::Store, tls, verify::Limits, web, writer::Writer,
};

/// What the collector runs with.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    pub db: PathBuf,
    /// Checkpoint signing key (created, mode 0600, when missing).
    pub key: PathBuf,
    /// Enrollment file of node keys.
    pub nodes: Option<PathBuf>,
    /// Enroll unknown nodes on first contact (trust on first use).
    pub accept_new_nodes: bool,
    /// PEM certificate chain and key for TLS.
    pub tls: Option<(PathBuf, PathBuf)>,
    pub checkpoint_interval: Duration,
    pub otlp_endpoint: Option<String>,
    /// CA for an `https://` OTLP endpoint.
    pub otlp_ca: Option<PathBuf>,
    pub metrics_listen: Option<SocketAddr>,
    pub limits: Limits,
    /// How far a Hello's time may be from the collector's.
    pub clock_skew: Duration,
}

async fn checkpoints(
    writer: Writer,
    metrics: Arc<Metrics>,
    every: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        match writer.checkpoint().await {
            Ok(n) => metrics.checkpoints(n as u64),
            Err(e) => tracing::error!(error = %e, "signing checkpoints failed"),
        }
    }
}

/// A started collector.
#[derive(Debug)]
pub struct Running {
    /// Where it serves Ingest and Query.
    pub addr: SocketAddr,
    /// Where it serves /metrics, if asked to.
    pub metrics_addr: Option<SocketAddr>,
    stop: Arc<watch::Sender<bool>>,
    done: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Running {
    /// Stops taking sessions, signs a last checkpoint and closes the store.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.stop.send_replace(true);
        self.done.await.context("the collector task")?
    }

    /// Waits until the gRPC server ends by itself (it does not unless it
    /// fails) or `stop` is called.
    async fn wait(&mut self) {
        let mut rx = self.stop.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }
}

/// Runs the collector until SIGTERM or SIGINT; prints
/// `acelogic-collector: listening on URL` when ready. `client_ca` as in
/// [`start_with_client_ca`].
pub async fn run(config: Config, client_ca: Option<PathBuf>) -> anyhow::Result<()> {
    let tls = config.tls.is_some();
    let mut running = start_with_client_ca(config, client_ca).await?;
    let scheme = if tls { "https" } else { "http" };
    println!(
        "acelogic-collector: listening on {scheme}://{}",
        running.addr
    );
    if let Some(m) = running.metrics_addr {
        println!("acelogic-collector: metrics on http://{m}/metrics");
    }
    {
        use std::io::Write as _;
        let _ = std::io::stdout().flush();
    }
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
        () = running.wait() => {}
    }
    running.stop().await
}

/// Starts the collector: store, writer, listeners and background tasks;
/// queries and the web view are open (a warning says so).
pub async fn start(config: Config) -> anyhow::Result<Running> {
    start_with_client_ca(config, None).await
}

/// [`start`], with `client_ca`: the PEM CA of client certificates, which
/// queries and the web view then need (see `access.rs`); needs TLS.
/// (Beside [`Config`] rather than in it, so that code that builds a
/// `Config` today keeps building.)
pub async fn start_with_client_ca(
    config: Config,
    client_ca: Option<PathBuf>,
) -> anyhow::Result<Running> {
    if config.checkpoint_interval.is_zero() {
        bail!("--checkpoint-interval must be more than zero");
    }
    if let Some(endpoint) = &config.otlp_endpoint {
        // A bad URL is a startup error, not a background log line.
        acelogic_lineage::ship::endpoint(endpoint, config.otlp_ca.as_deref())
            .map_err(|e| anyhow::anyhow!("--otlp-endpoint: {e}"))?;
    }
    // The default paths are under /var/lib/acelogic-collector: make the
    // directories on first start (0700: the key directory holds the
    // private checkpoint key).
    for path in [&config.key, &config.db] {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .with_context(|| format!("creating {}", parent.display()))?;
        }
    }
    let (key, created) = checkpoint::load_or_create_key(&config.key)
        .with_context(|| format!("checkpoint key {}", config.key.display()))?;
    if created {
        tracing::warn!(path = %config.key.display(), key_id = %key.key_id(), "created a new checkpoint key");
    }
    let enrolled = match &config.nodes {
        Some(p) => nodes::load(p).map_err(anyhow::Error::msg)?,
        None => Vec::new(),
    };
    if enrolled.is_empty() && !config.accept_new_nodes {
        tracing::warn!(
            "no node is enrolled and --accept-new-nodes is off: every session will be refused"
        );
    }
    let access = match &client_ca {
        Some(ca) => {
            if config.tls.is_none() {
                bail!("--client-ca needs TLS (--tls-cert and --tls-key)");
            }
            Access::from_ca_file(ca).context("--client-ca")?
        }
        None => {
            tracing::warn!(
                "queries and the web view are open to anyone who reaches the listener: \
                 run with --tls-cert, --tls-key and --client-ca to require client certificates"
            );
            Access::open()
        }
    };
    let tls = match &config.tls {
        Some((cert, tls_key)) => Some(tls::server_config(
            cert,
            tls_key,
            access.handshake_verifier(),
        )?),
        None => None,
    };
    let mut store = Store::open(&config.db)
        .with_context(|| format!("opening the store {}", config.db.display()))?;
    store
        .enroll_file(&enrolled, now_unix_nano())
        .context("recording the enrollment file")?;
    let (writer, writer_thread) =
        Writer::spawn(store, key.clone()).context("starting the writer")?;
    let metrics = Arc::new(Metrics::new());
    let (stop_tx, stop) = watch::channel(false);
    let stop_tx = Arc::new(stop_tx);

    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("listening on {}", config.listen))?;
    let addr = listener.local_addr()?;
    let metrics_listener = match config.metrics_listen {
        Some(a) => Some(
            TcpListener::bind(a)
                .await
                .with_context(|| format!("metrics listener on {a}"))?,
        ),
        None => None,
    };

    let ingest = Ingest {
        writer: writer.clone(),
        metrics: Arc::clone(&metrics),
        limits: config.limits,
        accept_new_nodes: config.accept_new_nodes,
        clock_skew: config.clock_skew,
        shutdown: stop.clone(),
    };
    let query = Query {
        db: config.db.clone(),
        key: key.public(),
        key_id: key.key_id().to_string(),
        gate: Gate::new(access, writer.clone(), Arc::clone(&metrics)),
    };
    // gRPC and the web pages on one listener: HTTP/1.1 is accepted for
    // browsers; paths that are no gRPC method go to the pages.
    let mut routes = Routes::new(ingest.server()).add_service(query.clone().server());
    let grpc_router = std::mem::take(routes.axum_router_mut());
    *routes.axum_router_mut() = grpc_router.merge(web::router(query));
    let mut builder = Server::builder()
        .accept_http1(true)
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(20)));
    let mut grpc_stop = stop.clone();
    let shutdown = async move {
        let _ = grpc_stop.wait_for(|s| *s).await;
    };
    let grpc = match tls {
        Some(tls) => tokio::spawn(
            builder
                .add_routes(routes)
                .serve_with_incoming_shutdown(tls::incoming(listener, tls, stop.clone()), shutdown),
        ),
        None => tokio::spawn(builder.add_routes(routes).serve_with_incoming_shutdown(
            TcpListenerStream::new(listener).map(|tcp| tcp.inspect(tls::no_delay)),
            shutdown,
        )),
    };
    let mut tasks = Vec::new();
    let metrics_addr = metrics_listener
        .as_ref()
        .map(TcpListener::local_addr)
        .transpose()?;
    if let Some(l) = metrics_listener {
        let mut s = stop.clone();
        tasks.push(tokio::spawn({
            let (m, w) = (Arc::clone(&metrics), writer.clone());
            async move {
                if let Err(e) = super::metrics::serve(l, m, w, async move {
                    let _ = s.wait_for(|s| *s).await;
                })
                .await
                {
                    tracing::error!(error = %e, "metrics listener failed");
                }
            }
        }));
    }
    tasks.push(tokio::spawn(checkpoints(
        writer.clone(),
        Arc::clone(&metrics),
        config.checkpoint_interval,
        stop.clone(),
    )));
    if let Some(endpoint) = &config.otlp_endpoint {
        let exporter = otlp::Exporter {
            db: config.db.clone(),
            endpoint: endpoint.clone(),
            ca: config.otlp_ca.clone(),
            writer: writer.clone(),
            metrics: Arc::clone(&metrics),
        };
        let s = stop.clone();
        tasks.push(tokio::spawn(async move {
            if let Err(e) = exporter.run(s).await {
                tracing::error!(error = %e, "OTLP export stopped");
            }
        }));
    }
    tracing::info!(
        %addr,
        tls = config.tls.is_some(),
        client_certificates = client_ca.is_some(),
        key_id = %key.key_id(),
        "collector ready"
    );
    let stop_rx = stop.clone();
    let stop_all = Arc::clone(&stop_tx);
    let done = tokio::spawn(async move {
        let mut grpc = grpc;
        let mut stop = stop_rx;
        let served = tokio::select! {
            _ = stop.wait_for(|s| *s) => None,
            r = &mut grpc => Some(r),
        };
        tracing::info!("collector stopping");
        stop_all.send_replace(true);
        let served = match served {
            Some(r) => Some(r),
            // Sessions end on the stop signal; give the server a moment to
            // close connections, then go on regardless.
            None => tokio::time::timeout(Duration::from_secs(5), &mut grpc)
                .await
                .ok(),
        };
        let result = match served {
            Some(r) => r
                .context("the gRPC server task")
                .and_then(|r| r.context("the gRPC server")),
            None => {
                grpc.abort();
                Ok(())
            }
        };
        for t in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
        }
        match writer.checkpoint().await {
            Ok(n) => tracing::info!(checkpoints = n, "final checkpoints signed"),
            Err(e) => tracing::error!(error = %e, "final checkpoints failed"),
        }
        writer.shutdown().await;
        drop(writer);
        tokio::task::spawn_blocking(move || writer_thread.join())
            .await?
            .map_err(|_| anyhow::anyhow!("the writer thread panicked"))?;
        tracing::info!("collector stopped");
        result
    });
    Ok(Running {
        addr,
        metrics_addr,
        stop: stop_tx,
        done,
    })
}
