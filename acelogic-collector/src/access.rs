//! Who may ask what: client certificates and their roles.
//!
//! With `--client-ca FILE`, every query and every web page needs a client
//! certificate signed by that CA, and the certificate's role decides what
//! it may ask. The role is a URI subject alternative name in the
//! certificate, `acelogic:role:<role>`, written by `acelogicctl certs
//! issue --role`:
//!
//! | role | may |
//! |---|---|
//! | `reader` | Tree, Artifact, Denials; the web pages but the verify page |
//! | `auditor` | all of `reader`, Verify, Checkpoints, Export; every web page |
//! | `node` | nothing here: nodes ship (Ingest), authenticated by their signed Hello |
//!
//! Why the certificate carries the role rather than a file mapping names to
//! roles on the collector: the CA that issues the certificate is then the
//! one place that grants access, a certificate says by itself what it
//! allows (no second file to keep in step, no name that means another thing
//! after a rename), and taking a role away is the same act as taking the
//! certificate away (short validity, or a new CA).
//!
//! The TLS handshake asks for a client certificate but does not require
//! one, and does not judge its chain ([`DeferChain`]): it only checks that
//! the client holds the key of the certificate it presents. The chain is
//! checked here, per request, with the same WebPKI verifier, so a missing
//! certificate or one from another CA becomes a refusal with a reason code
//! (`unauthenticated-client`) that the client can read, is counted and is
//! audited, rather than a handshake failure nobody records.

use std::{fmt, net::SocketAddr, path::Path, sync::Arc};

use acelogic_domain::{Reason, Refusal};
use sha2::{Digest as _, Sha256};
use tokio_rustls::rustls::{
    self, DigitallySignedStruct, DistinguishedName, RootCertStore, SignatureScheme,
    client::danger::HandshakeSignatureValid,
    pki_types::{CertificateDer, UnixTime, pem::PemObject as _},
    server::{
        WebPkiClientVerifier,
        danger::{ClientCertVerified, ClientCertVerifier},
    },
};

use super::refusal;

/// The URI prefix of a role in a client certificate.
pub const ROLE_URI: &str = "acelogic:role:";

/// A client certificate's role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Reader,
    Auditor,
    /// A node identity: ships, never queries.
    Node,
}

impl Role {
    pub const ALL: [Self; 3] = [Self::Reader, Self::Auditor, Self::Node];

    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Reader => "reader",
            Self::Auditor => "auditor",
            Self::Node => "node",
        }
    }

    /// Whether the role may ask `method`.
    #[must_use]
    pub const fn allows(self, method: Method) -> bool {
        match (self, method.needs()) {
            (Self::Auditor, _) | (Self::Reader, Need::Reader) => true,
            (Self::Reader, Need::Auditor) | (Self::Node, _) => false,
        }
    }
}

impl std::str::FromStr for Role {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Self::ALL.into_iter().find(|r| r.as_str() == s).ok_or(())
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The least role a method needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    Reader,
    Auditor,
}

/// Everything a client can ask the collector, as the audit table names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Tree,
    Artifact,
    Denials,
    Verify,
    Checkpoints,
    Export,
    WebIndex,
    WebTree,
    WebArtifact,
    WebDenials,
    WebVerify,
}

impl Method {
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Tree => "Tree",
            Self::Artifact => "Artifact",
            Self::Denials => "Denials",
            Self::Verify => "Verify",
            Self::Checkpoints => "Checkpoints",
            Self::Export => "Export",
            Self::WebIndex => "web /",
            Self::WebTree => "web /tree",
            Self::WebArtifact => "web /artifact",
            Self::WebDenials => "web /denials",
            Self::WebVerify => "web /verify",
        }
    }

    #[must_use]
    pub const fn needs(self) -> Need {
        match self {
            Self::Tree
            | Self::Artifact
            | Self::Denials
            | Self::WebIndex
            | Self::WebTree
            | Self::WebArtifact
            | Self::WebDenials => Need::Reader,
            Self::Verify | Self::Checkpoints | Self::Export | Self::WebVerify => Need::Auditor,
        }
    }
}

/// Who asked: what the audit table records about the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// The certificate's common name; `anonymous` without one.
    pub who: String,
    /// The role, `none` without a usable one, `open` when the collector
    /// runs without `--client-ca`.
    pub role: String,
    /// SHA-256 of the certificate presented (DER), hex.
    pub cert_sha256: Option<String>,
    pub peer: Option<SocketAddr>,
}

/// The access policy of a running collector.
#[derive(Debug, Clone)]
pub struct Access {
    /// `None`: queries are open (no `--client-ca`).
    verifier: Option<Arc<dyn ClientCertVerifier>>,
}

impl Access {
    /// Queries open to anyone who reaches the port.
    #[must_use]
    pub fn open() -> Self {
        Self { verifier: None }
    }

    /// Client certificates signed by the CA(s) in the PEM file `ca`.
    pub fn from_ca_file(ca: &Path) -> anyhow::Result<Self> {
        let pem = std::fs::read(ca).map_err(|e| anyhow::anyhow!("{}: {e}", ca.display()))?;
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| anyhow::anyhow!("{}: {e}", ca.display()))?;
            roots.add(cert).map_err(|e| {
                anyhow::anyhow!("{}: not a usable CA certificate: {e}", ca.display())
            })?;
        }
        if roots.is_empty() {
            anyhow::bail!("{}: holds no PEM certificate", ca.display());
        }
        let verifier = WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(rustls::crypto::ring::default_provider()),
        )
        .allow_unauthenticated()
        .build()
        .map_err(|e| anyhow::anyhow!("{}: {e}", ca.display()))?;
        Ok(Self {
            verifier: Some(verifier),
        })
    }

    /// Whether client certificates are required.
    #[must_use]
    pub fn enforced(&self) -> bool {
        self.verifier.is_some()
    }

    /// The verifier the TLS handshake uses: asks for a certificate, checks
    /// possession of its key, leaves the chain to [`Self::admit`].
    #[must_use]
    pub fn handshake_verifier(&self) -> Option<Arc<dyn ClientCertVerifier>> {
        self.verifier
            .as_ref()
            .map(|v| Arc::new(DeferChain(Arc::clone(v))) as Arc<dyn ClientCertVerifier>)
    }

    /// Decides whether the peer that presented `certs` may ask `method`.
    /// A refusal comes with the caller as far as it is known (for the
    /// audit record).
    pub fn admit(
        &self,
        certs: Option<&[CertificateDer<'static>]>,
        peer: Option<SocketAddr>,
        method: Method,
    ) -> Result<Caller, Box<(Caller, Refusal)>> {
        let mut caller = Caller {
            who: "anonymous".to_owned(),
            role: "none".to_owned(),
            cert_sha256: None,
            peer,
        };
        let Some(verifier) = &self.verifier else {
            caller.role = "open".to_owned();
            return Ok(caller);
        };
        let refuse =
            |caller: Caller, code, why: String| Err(Box::new((caller, refusal(code, why))));
        let Some((leaf, intermediates)) = certs.and_then(<[_]>::split_first) else {
            return refuse(
                caller,
                Reason::UnauthenticatedClient,
                format!(
                    "{} needs a client certificate signed by the collector's client CA \
                     (acelogicctl lineage --collector-cert FILE --collector-key FILE)",
                    method.as_str()
                ),
            );
        };
        caller.cert_sha256 = Some(hex::encode(Sha256::digest(leaf.as_ref())));
        let parsed = x509_parser::parse_x509_certificate(leaf.as_ref()).ok();
        if let Some((_, cert)) = &parsed {
            caller.who = common_name(cert).unwrap_or_else(|| cert.subject().to_string());
        }
        if let Err(e) = verifier.verify_client_cert(leaf, intermediates, UnixTime::now()) {
            return refuse(
                caller,
                Reason::UnauthenticatedClient,
                format!(
                    "the client certificate is not accepted ({e}): it must be signed by the \
                     collector's client CA (--client-ca) and be within its validity"
                ),
            );
        }
        let roles = parsed.as_ref().map(|(_, c)| roles(c)).unwrap_or_default();
        let role = match roles.as_slice() {
            [one] => one,
            [] => {
                return refuse(
                    caller,
                    Reason::RoleForbids,
                    format!(
                        "the client certificate carries no role (a URI name {ROLE_URI}reader or \
                         {ROLE_URI}auditor; acelogicctl certs issue --role)"
                    ),
                );
            }
            several => {
                return refuse(
                    caller,
                    Reason::RoleForbids,
                    format!(
                        "the client certificate carries {} roles; it must carry one",
                        several.len()
                    ),
                );
            }
        };
        caller.role.clone_from(role);
        let Ok(parsed_role) = role.parse::<Role>() else {
            return refuse(
                caller,
                Reason::RoleForbids,
                format!("unknown role {role:?} (reader, auditor or node)"),
            );
        };
        if !parsed_role.allows(method) {
            let why = match parsed_role {
                Role::Node => format!(
                    "role node ships records and never queries; {} needs role reader or auditor",
                    method.as_str()
                ),
                Role::Reader | Role::Auditor => {
                    format!(
                        "role {parsed_role} may not ask {}: it needs role auditor",
                        method.as_str()
                    )
                }
            };
            return refuse(caller, Reason::RoleForbids, why);
        }
        Ok(caller)
    }
}

fn common_name(cert: &x509_parser::certificate::X509Certificate<'_>) -> Option<String> {
    cert.subject()
        .iter_common_name()
        .next()
        .and_then(|cn| cn.as_str().ok())
        .map(str::to_owned)
}

/// The role URIs of a certificate (`acelogic:role:` removed), deduplicated.
fn roles(cert: &x509_parser::certificate::X509Certificate<'_>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::URI(uri) = name
                && let Some(role) = uri.strip_prefix(ROLE_URI)
                && !out.iter().any(|r| r == role)
            {
                out.push(role.to_owned());
            }
        }
    }
    out
}

/// Asks for a client certificate and checks the client holds its key;
/// leaves the chain to [`Access::admit`] (see the module docs).
#[derive(Debug)]
struct DeferChain(Arc<dyn ClientCertVerifier>);

impl ClientCertVerifier for DeferChain {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        false
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.0.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_allow_what_the_table_says() {
        use Method::*;
        let reader = [
            Tree,
            Artifact,
            Denials,
            WebIndex,
            WebTree,
            WebArtifact,
            WebDenials,
        ];
        let auditor_only = [Verify, Checkpoints, Export, WebVerify];
        for m in reader {
            assert!(Role::Reader.allows(m) && Role::Auditor.allows(m) && !Role::Node.allows(m));
        }
        for m in auditor_only {
            assert!(!Role::Reader.allows(m) && Role::Auditor.allows(m) && !Role::Node.allows(m));
        }
    }

    #[test]
    fn open_access_admits_anyone_as_open() {
        let c = Access::open().admit(None, None, Method::Export).unwrap();
        assert_eq!((c.who.as_str(), c.role.as_str()), ("anonymous", "open"));
    }
}
