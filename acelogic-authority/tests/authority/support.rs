//! The harness: keys, trust store, enrollment, policies, a TLS CA, the
//! authority process, a node that relays requests, and `acelogicctl`.

use std::{
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use acelogic_domain::artifact::{ArtifactId, Role, SecretKey, TrustStore};
use acelogic_proto::{
    authority::{ArtifactRequest, RequestState, authority_client::AuthorityClient},
    relay,
};

pub(crate) struct Dir(pub(crate) tempfile::TempDir);

impl Dir {
    pub(crate) fn new(tag: &str) -> Self {
        Self(
            tempfile::Builder::new()
                .prefix(&format!("acelogic-authority-it-{tag}-"))
                .tempdir()
                .unwrap(),
        )
    }
    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }
    pub(crate) fn s(&self, name: &str) -> String {
        self.path(name).display().to_string()
    }
}

/// The issuing policy most cases use.
pub(crate) const ISSUING: &str = "\
apiVersion: acelogic.dev/v1
kind: IssuingPolicy
metadata: {name: test}
spec:
  issuer: release-authority
  audience: test-cluster
  approverGroups:
    change: [alice, bob]
    sre: [carol]
  rules:
    - name: never-nsenter
      workloads: [\"*\"]
      exec: [/usr/bin/nsenter]
      tier: never
    - name: scale
      workloads: [scaler]
      exec: [/usr/local/bin/**]
      tier: auto
      maxTtl: 10m
      maxUses: 1
    - name: deploy
      workloads: [deployer]
      exec: [/usr/local/bin/kubectl]
      tier: approve
      approvals: {count: 2, groups: [change, sre]}
      maxTtl: 30m
    - name: quick
      workloads: [deployer]
      exec: [/usr/local/bin/helm]
      tier: approve
      approvals: {count: 1, groups: [change]}
      pendingTimeout: 2s
      maxTtl: 10m
  rates:
    - workloads: [scaler]
      issuedPerHour: 3
";

/// The nodes' capability policy: `scale` only (not `scale-all`), kubectl
/// and helm with one approval.
const CAPABILITY: &str = "\
apiVersion: acelogic.dev/v1
kind: CapabilityPolicy
metadata: {name: test-agents}
spec:
  workloads:
    - {name: scaler, cgroups: [/test/scaler]}
    - {name: deployer, cgroups: [/test/deployer]}
  grantable:
    - name: scale
      exec: [/usr/local/bin/scale]
      issuers: [release-authority]
      maxTtl: 10m
      maxUses: 1
    - name: deploy
      exec: [/usr/local/bin/kubectl, /usr/local/bin/helm]
      issuers: [release-authority]
      maxTtl: 30m
      approvals: 1
";

/// Everything on disk an authority needs.
pub(crate) struct Setup {
    pub(crate) dir: Dir,
    pub(crate) node_key: SecretKey,
    pub(crate) trust: TrustStore,
    pub(crate) ca: PathBuf,
}

impl Setup {
    pub(crate) fn new(tag: &str) -> Self {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
        let dir = Dir::new(tag);
        let key = |name: &str, role| {
            let k = SecretKey::generate(name, role).unwrap();
            k.write_new(&dir.path(&format!("{name}.key"))).unwrap();
            k
        };
        let issuer = key("release-authority", Role::Issuer);
        let approvers: Vec<SecretKey> = ["alice", "bob", "carol", "mallory"]
            .iter()
            .map(|n| key(n, Role::Approver))
            .collect();
        let node_key = key("node-1", Role::Lineage);
        // mallory is an approver key nobody listed in a group.
        let trust = TrustStore::new(
            std::iter::once(issuer.trusted()).chain(approvers.iter().map(SecretKey::trusted)),
            [],
        )
        .unwrap();
        std::fs::write(dir.path("trust.yaml"), trust.to_yaml()).unwrap();
        std::fs::write(
            dir.path("nodes.yaml"),
            format!(
                "apiVersion: acelogic.dev/v1\nkind: NodeEnrollment\nnodes:\n{}",
                acelogic_lineage::wire::entry_yaml("node-1", &node_key.public())
            ),
        )
        .unwrap();
        std::fs::write(dir.path("issuing.yaml"), ISSUING).unwrap();
        std::fs::create_dir(dir.path("policies")).unwrap();
        std::fs::write(dir.path("policies/agents.yaml"), CAPABILITY).unwrap();

        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
        let server_key = KeyPair::generate().unwrap();
        let server = CertificateParams::new(vec!["localhost".to_owned()])
            .unwrap()
            .signed_by(&server_key, &ca)
            .unwrap();
        std::fs::write(dir.path("ca.pem"), ca.pem()).unwrap();
        std::fs::write(dir.path("tls.pem"), server.pem()).unwrap();
        std::fs::write(dir.path("tls.key"), server_key.serialize_pem()).unwrap();
        let ca = dir.path("ca.pem");
        Self {
            dir,
            node_key,
            trust,
            ca,
        }
    }
}

/// A running authority.
pub(crate) struct Authority {
    child: Option<Child>,
    /// `https://localhost:PORT`.
    pub(crate) url: String,
}

impl Authority {
    pub(crate) fn start(s: &Setup, extra: &[&str]) -> Self {
        let d = &s.dir;
        let n = (1..)
            .find(|n| !d.path(&format!("authority-{n}.log")).exists())
            .unwrap();
        let log = d.path(&format!("authority-{n}.log"));
        let mut child = Command::new(env!("CARGO_BIN_EXE_acelogic-authority"))
            .args(["--listen", "127.0.0.1:0", "--state-dir", &d.s("state")])
            .args(["--issuer-key", &d.s("release-authority.key")])
            .args(["--issuing-policy", &d.s("issuing.yaml")])
            .args(["--policies", &d.s("policies")])
            .args(["--trust", &d.s("trust.yaml"), "--nodes", &d.s("nodes.yaml")])
            .args(["--tls-cert", &d.s("tls.pem"), "--tls-key", &d.s("tls.key")])
            .args(["--tick", "200ms"])
            .args(extra)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("starting acelogic-authority");
        let (tx, rx) = mpsc::channel();
        let out = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let url = loop {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(line) => {
                    if let Some(u) = line.strip_prefix("acelogic-authority: listening on ") {
                        break u.to_owned();
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    panic!(
                        "the authority did not start: {}",
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                }
            }
        };
        let port = url.rsplit(':').next().unwrap();
        Self {
            child: Some(child),
            url: format!("https://localhost:{port}"),
        }
    }

    /// SIGKILL: no clean stop.
    pub(crate) fn kill(mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().unwrap();
            c.wait().unwrap();
        }
    }
}

impl Drop for Authority {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub(crate) fn now_ns() -> u64 {
    u64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos(),
    )
    .unwrap()
}

/// A request as the daemon builds it for a caller it attested.
pub(crate) fn request(workload: &str, caps: &[&str], reason: &str) -> ArtifactRequest {
    ArtifactRequest {
        request_id: ArtifactId::generate().unwrap().to_string(),
        node: "node-1".to_owned(),
        workload: workload.to_owned(),
        exec_id: format!("exec-of-{workload}"),
        pid: 4242,
        uid: 1000,
        capabilities: caps
            .iter()
            .map(|p| format!("{{\"exec\":{{\"path\":\"{p}\"}}}}"))
            .collect(),
        reason: reason.to_owned(),
        time_unix_nano: now_ns(),
        ..ArtifactRequest::default()
    }
}

/// Sends `req` signed with `key`, as a node relays it.
pub(crate) async fn ask(
    a: &Authority,
    ca: &Path,
    key: &SecretKey,
    req: &ArtifactRequest,
    wait_ms: u32,
) -> Result<RequestState, tonic::Status> {
    let ep = acelogic_lineage::ship::endpoint(&a.url, Some(ca)).unwrap();
    let mut c = AuthorityClient::new(ep.connect().await.unwrap());
    c.request(relay::sign_request(key, req, wait_ms))
        .await
        .map(tonic::Response::into_inner)
}

/// A node waiting (up to 30 s) on `req` in the background, as a daemon
/// does for `request --wait`: what it heard, and after how long.
pub(crate) fn wait_in_background(
    a: &Authority,
    s: &Setup,
    req: &ArtifactRequest,
) -> tokio::task::JoinHandle<(RequestState, Duration)> {
    let (ca, key, req, url) = (s.ca.clone(), s.node_key.clone(), req.clone(), a.url.clone());
    tokio::spawn(async move {
        let ep = acelogic_lineage::ship::endpoint(&url, Some(&ca)).unwrap();
        let mut c = AuthorityClient::new(ep.connect().await.unwrap());
        let t = Instant::now();
        let st = c
            .request(relay::sign_request(&key, &req, 30_000))
            .await
            .unwrap()
            .into_inner();
        (st, t.elapsed())
    })
}

/// The `acelogicctl` binary of this build (beside this test's binaries;
/// `cargo test --workspace` builds it).
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

/// `acelogicctl approvals --authority URL --authority-ca CA ARGS...` off
/// the runtime: (exit code, stdout, stderr).
pub(crate) async fn approvals(a: &Authority, ca: &Path, args: &[&str]) -> (i32, String, String) {
    let mut all: Vec<String> = vec![
        "approvals".into(),
        "--authority".into(),
        a.url.clone(),
        "--authority-ca".into(),
        ca.display().to_string(),
    ];
    all.extend(args.iter().map(|s| (*s).to_owned()));
    ctl(all).await
}

pub(crate) async fn ctl(args: Vec<String>) -> (i32, String, String) {
    tokio::task::spawn_blocking(move || {
        let out = Command::new(acelogicctl()).args(&args).output().unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    })
    .await
    .unwrap()
}
