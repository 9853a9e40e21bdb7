//! The harness: a real `acelogic-collector` process, real node journals
//! and the real shipper, `acelogicctl` as a user runs it.

use std::{
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, mpsc},
    time::{Duration, Instant},
};

use acelogic_collector::pb::{self, ingest_client::IngestClient};
use acelogic_domain::artifact::SecretKey;
use acelogic_lineage::{
    chain::{self, GENESIS, Hash},
    journal::{Journal, Shared},
    pb as lpb,
    ship::{self, ShipConfig, ShipStatus},
};
use prost::Message as _;
use tokio::sync::watch;

/// A temporary directory, removed when dropped (whether the test passed
/// or not).
pub(crate) struct Dir(pub(crate) tempfile::TempDir);

impl Dir {
    pub(crate) fn new(tag: &str) -> Self {
        Self(
            tempfile::Builder::new()
                .prefix(&format!("acelogic-collector-it-{tag}-"))
                .tempdir()
                .unwrap(),
        )
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }
}

/// A running collector.
pub(crate) struct Collector {
    child: Option<Child>,
    /// `http://127.0.0.1:PORT` (or https).
    pub(crate) url: String,
    /// `http://127.0.0.1:PORT/metrics`, when asked for.
    pub(crate) metrics: Option<String>,
    pub(crate) db: PathBuf,
    pub(crate) log: PathBuf,
}

impl Collector {
    /// Starts a collector with its store in `dir` on a free port.
    pub(crate) fn start(dir: &Dir, extra: &[&str]) -> Self {
        Self::start_on(dir, "127.0.0.1:0", extra)
    }

    pub(crate) fn start_on(dir: &Dir, listen: &str, extra: &[&str]) -> Self {
        // In directories that do not exist yet: the collector makes them,
        // as it must for its default paths on a fresh host.
        let db = dir.path("store/collector.db");
        // One log file per start, so a restart does not hide the first.
        let n = (1..)
            .find(|n| !dir.path(&format!("collector-{n}.log")).exists())
            .unwrap();
        let log = dir.path(&format!("collector-{n}.log"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_acelogic-collector"))
            .args(["--listen", listen, "--db"])
            .arg(&db)
            .arg("--key")
            .arg(dir.path("keys/collector.key"))
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("starting acelogic-collector");
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let wants_metrics = extra.contains(&"--metrics-listen");
        let mut url = None;
        let mut metrics = None;
        let deadline = Instant::now() + Duration::from_secs(60);
        while url.is_none() || (wants_metrics && metrics.is_none()) {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if let Some(u) = line.strip_prefix("acelogic-collector: listening on ") {
                        url = Some(u.to_owned());
                    } else if let Some(m) = line.strip_prefix("acelogic-collector: metrics on ") {
                        metrics = Some(m.to_owned());
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    panic!(
                        "the collector did not start: {}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                }
            }
        }
        Self {
            child: Some(child),
            url: url.unwrap(),
            metrics,
            db,
            log,
        }
    }

    /// `127.0.0.1:PORT`.
    pub(crate) fn addr(&self) -> String {
        self.url.split("://").nth(1).unwrap().to_owned()
    }

    /// SIGKILL: no shutdown path runs.
    pub(crate) fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }

    /// SIGTERM; the exit status.
    pub(crate) fn term(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        // SAFETY: signalling our own child by its pid.
        unsafe { libc::kill(i32::try_from(c.id()).unwrap(), libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(s) = c.try_wait().unwrap() {
                return s;
            }
            if Instant::now() > deadline {
                let _ = c.kill();
                panic!("the collector did not stop on SIGTERM: {}", self.log_text());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub(crate) fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A read connection to the store (plain SQL, as forensics would).
    pub(crate) fn sql(&self) -> rusqlite::Connection {
        rusqlite::Connection::open(&self.db).unwrap()
    }

    pub(crate) fn count(&self, sql: &str) -> i64 {
        self.sql().query_row(sql, [], |r| r.get(0)).unwrap()
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A node: its key file and its journal.
pub(crate) struct TestNode {
    pub(crate) name: String,
    pub(crate) key_path: PathBuf,
    pub(crate) key: SecretKey,
    pub(crate) journal: Arc<Shared>,
}

impl TestNode {
    pub(crate) fn new(dir: &Dir, name: &str) -> Self {
        let key_path = dir.path(&format!("{name}.key"));
        let (key, _) = ship::load_or_create_key(&key_path, name).unwrap();
        let journal =
            Journal::open(&dir.path(&format!("{name}.journal.db")), name, 1 << 30).unwrap();
        Self {
            name: name.to_owned(),
            key_path,
            key,
            journal: Shared::new(journal),
        }
    }

    /// Appends in chunks (one durable transaction each).
    pub(crate) fn append(&self, records: &[lpb::Record]) {
        for chunk in records.chunks(2000) {
            self.journal.append(chunk).unwrap();
        }
    }

    pub(crate) fn journal_id(&self) -> [u8; 16] {
        self.journal.lock().identity().journal_id
    }

    /// Starts the real shipper.
    pub(crate) fn ship(&self, url: &str, ca: Option<&Path>) -> Shipper {
        let mut config = ShipConfig::new(url, &self.key_path);
        config.ca = ca.map(Path::to_path_buf);
        config.backoff_max = Duration::from_millis(500);
        let (tx, status) = watch::channel(ShipStatus::default());
        let journal = Arc::clone(&self.journal);
        let task = tokio::spawn(async move {
            if let Err(e) = ship::run(config, journal, tx).await {
                panic!("shipper cannot run: {e}");
            }
        });
        Shipper { task, status }
    }

    /// The enrollment entry of this node's key.
    pub(crate) fn entry(&self) -> String {
        acelogic_lineage::wire::entry_yaml(&self.name, &self.key.public())
    }
}

/// A running shipper; stopped when dropped.
pub(crate) struct Shipper {
    task: tokio::task::JoinHandle<()>,
    pub(crate) status: watch::Receiver<ShipStatus>,
}

impl Shipper {
    /// Waits until the collector acknowledged `seq`.
    pub(crate) async fn acked(&mut self, seq: u64, within: Duration) {
        let r = tokio::time::timeout(within, self.status.wait_for(|s| s.acked_seq >= seq))
            .await
            .map(|r| r.is_ok());
        assert!(
            r.is_ok(),
            "seq {seq} not acknowledged within {within:?}: {:?}",
            *self.status.borrow()
        );
    }
}

impl Drop for Shipper {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Writes an enrollment file for `nodes`.
pub(crate) fn nodes_file(dir: &Dir, nodes: &[&TestNode]) -> PathBuf {
    let mut text = "apiVersion: acelogic.dev/v1\nkind: NodeEnrollment\nnodes:\n".to_owned();
    for n in nodes {
        text.push_str(&n.entry());
    }
    let p = dir.path("nodes.yaml");
    std::fs::write(&p, text).unwrap();
    p
}

/// The `acelogicctl` binary of this build. It belongs to another package,
/// so cargo gives no `CARGO_BIN_EXE_` for it: it sits beside this test's
/// own binaries, where `cargo test --workspace` builds it (acelogicctl's
/// own CLI tests make cargo build it).
fn acelogicctl() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|dir| dir.join("acelogicctl"))
        .unwrap();
    assert!(
        bin.is_file(),
        "{} is missing: run these tests with `cargo test --workspace` (or build acelogicctl first)",
        bin.display()
    );
    bin
}

/// Runs acelogicctl; (exit code, stdout, stderr).
pub(crate) fn ctl(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(acelogicctl()).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs acelogicctl off the async runtime.
pub(crate) async fn ctl_async(args: &[&str]) -> (i32, String, String) {
    let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        ctl(&refs)
    })
    .await
    .unwrap()
}

/// Chains `records` (encoded) after `(seq, prev)` the way a journal does.
pub(crate) fn chain_entries(
    node: &str,
    jid: &[u8; 16],
    after: (u64, Hash),
    records: &[Vec<u8>],
) -> Vec<lpb::Entry> {
    let (mut seq, mut prev) = after;
    records
        .iter()
        .map(|r| {
            seq += 1;
            let hash = chain::entry_hash(node, jid, seq, &prev, r);
            let e = lpb::Entry {
                seq,
                prev_hash: prev.to_vec(),
                hash: hash.to_vec(),
                record: r.clone(),
            };
            prev = hash;
            e
        })
        .collect()
}

pub(crate) fn encoded(records: &[lpb::Record]) -> Vec<Vec<u8>> {
    records.iter().map(prost::Message::encode_to_vec).collect()
}

pub(crate) fn genesis() -> (u64, Hash) {
    (0, GENESIS)
}

pub(crate) fn hello_msg(h: pb::Hello) -> pb::ShipRequest {
    pb::ShipRequest {
        msg: Some(pb::ship_request::Msg::Hello(h)),
    }
}

pub(crate) fn batch_msg(entries: Vec<lpb::Entry>, signature: Vec<u8>) -> pb::ShipRequest {
    pb::ShipRequest {
        msg: Some(pb::ship_request::Msg::Batch(pb::Batch {
            entries,
            signature,
        })),
    }
}

/// A hand-made session: sends `msgs`, closes, and collects the answers
/// and the final status, if the collector ended with one.
pub(crate) async fn raw_session(
    url: &str,
    msgs: Vec<pb::ShipRequest>,
) -> (Vec<pb::ShipResponse>, Option<tonic::Status>) {
    let mut client = IngestClient::connect(url.to_owned()).await.unwrap();
    let outbound = tokio_stream::iter(msgs);
    let mut inbound = match client.ship(outbound).await {
        Ok(r) => r.into_inner(),
        Err(s) => return (Vec::new(), Some(s)),
    };
    let mut answers = Vec::new();
    loop {
        match inbound.message().await {
            Ok(Some(m)) => answers.push(m),
            Ok(None) => return (answers, None),
            Err(s) => return (answers, Some(s)),
        }
    }
}

/// The reason code of a collector refusal (and its message's form).
pub(crate) fn reason(s: &tonic::Status) -> String {
    let code = acelogic_proto::reason_of(s).unwrap_or_default();
    assert!(
        s.message().starts_with(&format!("{code}: ")),
        "message {:?} does not start with its code {code:?}",
        s.message()
    );
    code
}

/// Polls `f` until it holds.
pub(crate) async fn eventually(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Decodes a stored record.
pub(crate) fn decode(bytes: &[u8]) -> lpb::Record {
    lpb::Record::decode(bytes).unwrap()
}

/// Now, ns since the epoch.
pub(crate) fn now() -> u64 {
    acelogic_lineage::wire::now_unix_nano()
}

/// One GET over HTTP/1.1; (status code, body).
pub(crate) fn http_get(url: &str) -> (u16, String) {
    use std::io::{Read as _, Write as _};
    let rest = url.strip_prefix("http://").unwrap();
    let (host, path) = rest.split_once('/').map_or((rest, "/"), |(h, p)| (h, p));
    let mut s = std::net::TcpStream::connect(host).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(
        s,
        "GET /{} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n",
        path.trim_start_matches('/')
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let code = resp
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = resp
        .split_once("\r\n\r\n")
        .map_or("", |(_, b)| b)
        .to_owned();
    (code, body)
}
