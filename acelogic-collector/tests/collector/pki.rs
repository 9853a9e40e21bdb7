//! Certificates made by `acelogicctl certs` as an operator makes them, a
//! collector that requires client certificates, and clients that present
//! them (gRPC through tonic, HTTPS through a plain rustls stream).

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use acelogic_collector::pb::query_client::QueryClient;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio_rustls::rustls::{
    self, ClientConfig, RootCertStore,
    pki_types::{CertificateDer, PrivateKeyDer, ServerName, pem::PemObject as _},
};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

use crate::support::*;

/// A client certificate and its key.
#[derive(Clone, Debug)]
pub(crate) struct Cert {
    pub(crate) pem: PathBuf,
    pub(crate) key: PathBuf,
}

/// The fleet's certificates.
pub(crate) struct Pki {
    /// The CA of client certificates (`--client-ca`); it also signed the
    /// collector's server certificate, so clients trust it (`--collector-ca`).
    pub(crate) ca: PathBuf,
    pub(crate) server: Cert,
    pub(crate) reader: Cert,
    pub(crate) auditor: Cert,
    pub(crate) node: Cert,
    /// Role auditor, signed by another CA.
    pub(crate) foreign: Cert,
}

fn ctl_ok(args: &[&str]) -> String {
    let (code, out, err) = ctl(args);
    assert_eq!(code, 0, "acelogicctl {args:?}: {out}{err}");
    out
}

fn issue(ca_dir: &Path, out: &Path, name: &str, role: &str, extra: &[&str]) -> Cert {
    let mut args = vec![
        "certs",
        "issue",
        "--ca-dir",
        ca_dir.to_str().unwrap(),
        "--name",
        name,
        "--role",
        role,
        "--out-dir",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let said = ctl_ok(&args);
    assert!(said.contains(&format!("{name}.pem")), "{said}");
    Cert {
        pem: out.join(format!("{name}.pem")),
        key: out.join(format!("{name}.key")),
    }
}

impl Pki {
    /// Makes everything with `acelogicctl certs` under `dir`.
    pub(crate) fn new(dir: &Dir) -> Self {
        let (ca_dir, other_ca, out) = (dir.path("ca"), dir.path("other-ca"), dir.path("certs"));
        let said = ctl_ok(&["certs", "ca", "--out-dir", ca_dir.to_str().unwrap()]);
        assert!(said.contains("--client-ca"), "{said}");
        ctl_ok(&[
            "certs",
            "ca",
            "--out-dir",
            other_ca.to_str().unwrap(),
            "--name",
            "Somebody else's CA",
        ]);
        let server = issue(
            &ca_dir,
            &out,
            "collector",
            "server",
            &["--dns", "localhost", "--dns", "127.0.0.1"],
        );
        let foreign_dir = dir.path("foreign");
        Self {
            ca: ca_dir.join("ca.pem"),
            server,
            reader: issue(&ca_dir, &out, "rita", "reader", &[]),
            auditor: issue(&ca_dir, &out, "alice", "auditor", &[]),
            node: issue(&ca_dir, &out, "node-a", "node", &[]),
            foreign: issue(&other_ca, &foreign_dir, "mallory", "auditor", &[]),
        }
    }

    /// Collector flags: TLS with the server certificate, client
    /// certificates from the CA.
    pub(crate) fn collector_args(&self) -> Vec<String> {
        [
            "--tls-cert",
            self.server.pem.to_str().unwrap(),
            "--tls-key",
            self.server.key.to_str().unwrap(),
            "--client-ca",
            self.ca.to_str().unwrap(),
        ]
        .map(str::to_owned)
        .to_vec()
    }
}

/// `https://localhost:PORT` of a TLS collector.
pub(crate) fn https_url(c: &Collector) -> String {
    format!("https://localhost:{}", c.addr().rsplit(':').next().unwrap())
}

/// A Query client over TLS, presenting `cert` if given.
pub(crate) async fn query_client(
    url: &str,
    ca: &Path,
    cert: Option<&Cert>,
) -> QueryClient<Channel> {
    let mut tls =
        ClientTlsConfig::new().ca_certificate(Certificate::from_pem(std::fs::read(ca).unwrap()));
    if let Some(c) = cert {
        tls = tls.identity(Identity::from_pem(
            std::fs::read(&c.pem).unwrap(),
            std::fs::read(&c.key).unwrap(),
        ));
    }
    let channel = Endpoint::from_shared(url.to_owned())
        .unwrap()
        .tls_config(tls)
        .unwrap()
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .expect("the TLS connection (the handshake never refuses a client certificate)");
    QueryClient::new(channel)
}

/// One HTTPS GET over HTTP/1.1; (status, `acelogic-reason` header, body).
pub(crate) async fn https_get(
    addr: &str,
    path: &str,
    ca: &Path,
    cert: Option<&Cert>,
) -> (u16, Option<String>, String) {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let builder =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
    let mut config = match cert {
        Some(c) => builder
            .with_client_auth_cert(
                CertificateDer::pem_file_iter(&c.pem)
                    .unwrap()
                    .map(Result::unwrap)
                    .collect(),
                PrivateKeyDer::from_pem_file(&c.key).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut tls = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .expect("the TLS handshake");
    tls.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut raw = Vec::new();
    let _ = tls.read_to_end(&mut raw).await;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let reason = head.lines().find_map(|l| {
        l.to_ascii_lowercase()
            .strip_prefix("acelogic-reason:")
            .map(|v| v.trim().to_owned())
    });
    (status, reason, body.to_owned())
}
