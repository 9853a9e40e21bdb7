//! A real etcd server for the tests (Debian's `etcd-server`, installed by
//! `cargo xtask setup`), and engines that act as nodes against it.

use std::{
    collections::{BTreeSet, HashMap, HashSet},
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant, SystemTime},
};

use acelogic_authz::{
    Accepted, Authorizer, GrantTable, Inputs, Usage, check::Settings, state::State,
};
use acelogic_cluster::{ClusterAnswer, Config, EtcdStore};
use acelogic_domain::{
    PortError, Refusal,
    artifact::{Artifact, ArtifactId, Name, Role, SecretKey, Subject, TrustStore, sign},
    capability::Capability,
    grant::GrantSpec,
    policy::{self, PolicySet},
};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One etcd member on loopback, with its data in a temporary directory.
pub(crate) struct Etcd {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) client_url: String,
    peer_url: String,
    /// Server certificate, key and the CA clients must be signed by.
    tls: Option<[PathBuf; 3]>,
    child: Option<Child>,
}

/// Where the etcd binary is: `ACELOGIC_ETCD`, else `etcd` on PATH.
pub(crate) fn etcd_binary() -> PathBuf {
    std::env::var_os("ACELOGIC_ETCD").map_or_else(|| PathBuf::from("etcd"), PathBuf::from)
}

impl Etcd {
    /// Starts a member and waits until it answers. Panics with what to do
    /// when etcd is not installed: this test needs the real server.
    pub(crate) fn start() -> Self {
        Self::with(None)
    }

    /// A member that serves clients over TLS only and requires a client
    /// certificate signed by `ca` (`--client-cert-auth`).
    pub(crate) fn start_tls(cert: PathBuf, key: PathBuf, ca: PathBuf) -> Self {
        Self::with(Some([cert, key, ca]))
    }

    fn with(tls: Option<[PathBuf; 3]>) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("acelogic-etcd-")
            .tempdir()
            .unwrap();
        let scheme = if tls.is_some() { "https" } else { "http" };
        let mut me = Self {
            dir,
            client_url: format!("{scheme}://127.0.0.1:{}", free_port()),
            peer_url: format!("http://127.0.0.1:{}", free_port()),
            tls,
            child: None,
        };
        me.spawn();
        me
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("etcd.log"))
            .unwrap();
        let child = Command::new(etcd_binary())
            .args(["--name", "t", "--data-dir"])
            .arg(self.dir.path().join("data"))
            .args(["--listen-client-urls", &self.client_url])
            .args(["--advertise-client-urls", &self.client_url])
            .args(["--listen-peer-urls", &self.peer_url])
            .args(["--initial-advertise-peer-urls", &self.peer_url])
            .args(["--initial-cluster", &format!("t={}", self.peer_url)])
            .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
            .args(self.tls.iter().flat_map(|[cert, key, ca]| {
                [
                    "--cert-file".into(),
                    cert.clone().into_os_string(),
                    "--key-file".into(),
                    key.clone().into_os_string(),
                    "--trusted-ca-file".into(),
                    ca.clone().into_os_string(),
                    "--client-cert-auth".into(),
                ]
            }))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "starting {}: {e}; install etcd with `cargo xtask setup` (Debian package \
                     etcd-server) or set ACELOGIC_ETCD",
                    etcd_binary().display()
                )
            });
        self.child = Some(child);
        self.wait_ready();
    }

    /// Waits until the member serves its health endpoint (over TLS:
    /// until it accepts connections).
    fn wait_ready(&self) {
        let addr = self
            .client_url
            .trim_start_matches("http://")
            .trim_start_matches("https://")
            .to_owned();
        if self.tls.is_some() {
            let deadline = Instant::now() + Duration::from_secs(30);
            while std::net::TcpStream::connect(&addr).is_err() {
                assert!(Instant::now() < deadline, "etcd did not listen on {addr}");
                std::thread::sleep(Duration::from_millis(50));
            }
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(mut s) = std::net::TcpStream::connect(&addr) {
                use std::io::{Read as _, Write as _};
                let _ = s.set_read_timeout(Some(Duration::from_secs(1)));
                let _ = s.write_all(b"GET /health HTTP/1.0\r\n\r\n");
                let mut body = String::new();
                let _ = s.read_to_string(&mut body);
                if body.contains("\"health\":\"true\"") {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let log = std::fs::read_to_string(self.dir.path().join("etcd.log")).unwrap_or_default();
        panic!(
            "etcd at {} did not become healthy in 30 s:\n{log}",
            self.client_url
        );
    }

    fn pid(&self) -> i32 {
        i32::try_from(self.child.as_ref().expect("etcd is running").id()).unwrap()
    }

    fn signal(&self, sig: i32) {
        // SAFETY: kill(2) with a pid this test started and still owns.
        let rc = unsafe { libc::kill(self.pid(), sig) };
        assert_eq!(rc, 0, "kill({}, {sig})", self.pid());
    }

    /// SIGKILL: gone mid-request, nothing flushed beyond what etcd synced.
    pub(crate) fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: as in `signal`.
            unsafe { libc::kill(i32::try_from(c.id()).unwrap(), libc::SIGKILL) };
            let _ = c.wait();
        }
    }

    /// Starts again on the same data and ports.
    pub(crate) fn restart(&mut self) {
        self.kill();
        self.spawn();
    }

    /// SIGSTOP: the member holds connections and answers nothing.
    pub(crate) fn pause(&self) {
        self.signal(libc::SIGSTOP);
    }

    pub(crate) fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    pub(crate) fn config(&self, prefix: &str) -> Config {
        Config {
            endpoints: vec![self.client_url.clone()],
            prefix: prefix.to_owned(),
            tls: None,
            timeout: Duration::from_millis(1500),
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.resume();
        }
        self.kill();
    }
}

/// Kernel grants in memory: all or none; uses counted by the test.
#[derive(Debug, Default)]
pub(crate) struct Table {
    pub(crate) grants: Vec<GrantSpec>,
    /// Grant ids whose every use the "kernel" consumed.
    pub(crate) used: HashSet<u64>,
}

impl GrantTable for Table {
    fn install(&mut self, set: &[GrantSpec]) -> Result<(), PortError> {
        self.grants.extend_from_slice(set);
        Ok(())
    }

    fn remove(&mut self, grant_id: u64) -> Result<usize, PortError> {
        let before = self.grants.len();
        self.grants.retain(|g| g.grant_id != grant_id);
        Ok(before - self.grants.len())
    }

    fn usage(&mut self) -> Result<HashMap<u64, Usage>, PortError> {
        let mut out: HashMap<u64, Usage> = HashMap::new();
        for g in &self.grants {
            let used = self.used.contains(&g.grant_id);
            let e = out.entry(g.grant_id).or_insert(Usage {
                entries: 0,
                uses_left: g.max_uses.map(|m| if used { 0 } else { u64::from(m) }),
                used_up: true,
                scope_id: g.scope_id,
            });
            e.entries += 1;
            e.used_up &= used && g.max_uses.is_some();
        }
        Ok(out)
    }
}

pub(crate) const POLICY: &str = "apiVersion: acelogic.dev/v1
kind: CapabilityPolicy
metadata: {name: t}
spec:
  workloads:
    - {name: agent, cgroups: [/t]}
  grantable:
    - name: deploy
      connect: [{host: 127.0.0.1, ports: \"1-65535\", protocol: tcp}]
      issuers: [ci]
      maxTtl: 2h
    - name: forgetful
      connect: [{host: 127.0.0.2, ports: \"1-65535\", protocol: tcp}]
      issuers: [ci]
      maxTtl: 2h
      completedRetention: 3s
";

/// The issuer every node trusts.
pub(crate) fn issuer() -> SecretKey {
    SecretKey::from_seed("ci", Role::Issuer, [1; 32]).unwrap()
}

pub(crate) fn whole_now() -> SystemTime {
    let secs = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

/// A signed artifact for the `agent` workload to connect to `port`.
pub(crate) struct Signed {
    pub(crate) id: String,
    pub(crate) envelope: Vec<u8>,
}

pub(crate) fn artifact(
    port: u16,
    key: Option<&str>,
    max_uses: Option<u32>,
    parent: Option<&str>,
    ttl: Duration,
) -> Signed {
    artifact_to("127.0.0.1", port, key, max_uses, parent, ttl)
}

/// [`artifact`] to `host` (127.0.0.2 falls under a rule with a short
/// `completedRetention`).
pub(crate) fn artifact_to(
    host: &str,
    port: u16,
    key: Option<&str>,
    max_uses: Option<u32>,
    parent: Option<&str>,
    ttl: Duration,
) -> Signed {
    let now = whole_now();
    let a = Artifact {
        version: 1,
        id: ArtifactId::generate().unwrap(),
        issuer: "ci".parse::<Name>().unwrap(),
        subject: Subject {
            workload: "agent".parse().unwrap(),
            node: None,
            cgroup: None,
        },
        audience: "test".parse().unwrap(),
        not_before: now - Duration::from_secs(1),
        expires: now + ttl,
        capabilities: vec![
            serde_json::from_value::<Capability>(serde_json::json!(
                {"connect": {"host": host, "ports": port.to_string(), "protocol": "tcp"}}
            ))
            .unwrap(),
        ],
        max_uses: max_uses.and_then(std::num::NonZeroU32::new),
        operation_key: key.map(str::to_owned),
        approval_ref: None,
        reason: "test".to_owned(),
        parent: parent.map(|p| p.parse().unwrap()),
    };
    Signed {
        id: a.id.to_string(),
        envelope: sign(&a.to_json().unwrap(), &[&issuer()]).to_json(),
    }
}

/// One node: an engine with its own state directory and kernel table,
/// asking the shared store.
pub(crate) struct Node {
    pub(crate) name: String,
    pub(crate) authz: Authorizer,
    pub(crate) table: Table,
    pub(crate) store: EtcdStore,
    policy: PolicySet,
    trust: TrustStore,
    _dir: tempfile::TempDir,
}

pub(crate) fn load_policy(dir: &Path) -> PolicySet {
    std::fs::create_dir_all(dir.join("policies")).unwrap();
    std::fs::write(dir.join("policies/p.yaml"), POLICY).unwrap();
    policy::load_dir(&dir.join("policies")).unwrap().set
}

impl Node {
    pub(crate) async fn new(name: &str, config: &Config) -> Self {
        let dir = tempfile::Builder::new()
            .prefix(&format!("acelogic-node-{name}-"))
            .tempdir()
            .unwrap();
        let mut authz = Authorizer::new(
            State::open(&dir.path().join("state.db")).unwrap(),
            Settings {
                audience: "test".to_owned(),
                node: name.to_owned(),
                clock_skew: Duration::from_secs(30),
            },
        );
        authz.set_clustered();
        Self {
            name: name.to_owned(),
            authz,
            table: Table::default(),
            store: EtcdStore::connect(config).await.unwrap(),
            policy: load_policy(dir.path()),
            trust: TrustStore::new([issuer().trusted()], []).unwrap(),
            _dir: dir,
        }
    }

    /// Submits as the daemon does: prepare, ask the store, commit; then
    /// carries out queued settlements. Also returns the store's answer.
    pub(crate) async fn submit(
        &mut self,
        env: &[u8],
    ) -> (Result<Accepted, Refusal>, Option<ClusterAnswer>) {
        let frozen = BTreeSet::new();
        let cgroups = HashMap::new();
        let now = SystemTime::now();
        let inputs = Inputs {
            policy: &self.policy,
            trust: &self.trust,
            frozen: &frozen,
            cgroups: &cgroups,
            now,
        };
        let p = match self.authz.prepare(env, None, &inputs) {
            Ok(p) => p,
            Err(r) => return (Err(r), None),
        };
        let answer = match &p.cluster {
            Some(c) => Some(self.store.claim(c).await),
            None => None,
        };
        let out = self.authz.commit(p, answer.clone(), &mut self.table, now);
        self.flush().await;
        (out, answer)
    }

    /// Sends the outbox; what the store does not confirm stays queued.
    pub(crate) async fn flush(&mut self) -> usize {
        let mut left = 0;
        for (seq, s) in self.authz.outbox().unwrap() {
            match self.store.settle(&s).await {
                Ok(()) => self.authz.settled(seq).unwrap(),
                Err(_) => left += 1,
            }
        }
        left
    }

    /// The "kernel" consumed every use of `grant_id`; the tick retires it.
    pub(crate) async fn use_up(&mut self, grant_id: u64) {
        self.table.used.insert(grant_id);
        self.authz.retire(&mut self.table, SystemTime::now());
        self.flush().await;
    }

    pub(crate) async fn revoke(&mut self, id: &str) -> Result<usize, Refusal> {
        let r = self
            .authz
            .revoke(id, "test", None, &mut self.table, SystemTime::now());
        self.flush().await;
        r
    }
}
