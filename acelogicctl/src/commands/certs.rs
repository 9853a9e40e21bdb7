//! `acelogicctl certs`: the CA that signs the collector's client
//! certificates, and the certificates it issues. A client certificate
//! carries its role as a URI name, `acelogic:role:<role>`, which the
//! collector reads (`--client-ca`); `--role server` issues the collector's
//! own TLS certificate instead.
//!
//! Files: `<out-dir>/ca.pem` and `ca.key` for the CA, `<out-dir>/<name>.pem`
//! and `<name>.key` for a certificate. Keys are ECDSA P-256, written mode
//! 0600; no file is ever overwritten.

use std::{
    io::Write as _,
    net::IpAddr,
    os::unix::fs::OpenOptionsExt as _,
    path::{Path, PathBuf},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use clap::{Subcommand, ValueEnum};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType,
};

use crate::{CtlError, CtlResult};
use acelogic_domain::Reason;

/// The URI prefix of a role (as the collector reads it).
pub const ROLE_URI: &str = "acelogic:role:";

#[derive(Debug, Subcommand)]
pub enum Command {
    /// A new CA for client certificates: OUT_DIR/ca.pem (give it to the
    /// collector as --client-ca) and OUT_DIR/ca.key (keep it offline).
    Ca(CaArgs),
    /// A certificate signed by the CA in CA_DIR: OUT_DIR/NAME.pem and
    /// OUT_DIR/NAME.key.
    Issue(IssueArgs),
}

#[derive(Debug, clap::Args)]
pub struct CaArgs {
    #[arg(long, value_name = "DIR")]
    out_dir: PathBuf,
    /// The CA's common name.
    #[arg(long, default_value = "ACELOGIC collector client CA")]
    name: String,
    /// Days the CA is valid.
    #[arg(long, default_value_t = 3650, value_parser = clap::value_parser!(u32).range(1..=36500))]
    days: u32,
}

#[derive(Debug, clap::Args)]
pub struct IssueArgs {
    /// The directory holding ca.pem and ca.key.
    #[arg(long, value_name = "DIR")]
    ca_dir: PathBuf,
    /// Who the certificate is for (its common name, and the file names);
    /// for `--role server`, also its DNS name unless `--dns` is given.
    #[arg(long)]
    name: String,
    #[arg(long, value_enum)]
    role: RoleArg,
    #[arg(long, value_name = "DIR")]
    out_dir: PathBuf,
    /// Days the certificate is valid.
    #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u32).range(1..=3650))]
    days: u32,
    /// `--role server`: a DNS name or IP address of the collector (repeat
    /// for several).
    #[arg(long, value_name = "NAME")]
    dns: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum RoleArg {
    /// Tree, Artifact, Denials and the web pages but verify.
    Reader,
    /// Everything `reader` may, and Verify, Checkpoints, Export, the verify page.
    Auditor,
    /// A node identity: ships, never queries.
    Node,
    /// The collector's own TLS certificate (--tls-cert), not a client.
    Server,
}

impl RoleArg {
    const fn as_str(self) -> &'static str {
        match self {
            Self::Reader => "reader",
            Self::Auditor => "auditor",
            Self::Node => "node",
            Self::Server => "server",
        }
    }
}

pub fn exec(command: &Command) -> CtlResult<String> {
    match command {
        Command::Ca(a) => ca(a),
        Command::Issue(a) => issue(a),
    }
}

fn crypto(e: impl std::fmt::Display) -> CtlError {
    CtlError::internal(format!("making the certificate: {e}"))
}

/// Validity from now (minus a minute of clock skew) for `days`.
fn validity(params: &mut CertificateParams, days: u32) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    params.not_before = epoch + now.saturating_sub(Duration::from_secs(60));
    params.not_after = epoch + now + Duration::from_secs(u64::from(days) * 86_400);
}

fn check_name(name: &str) -> CtlResult<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(CtlError::refused(
            Reason::BadName,
            format!("--name {name:?}: 1-64 of [A-Za-z0-9._-], not starting with '.'"),
        ))
    }
}

/// Writes `text` to a new file (never over one), mode `mode`.
fn write_new(path: &Path, text: &str, mode: u32) -> CtlResult<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                CtlError::refused(
                    Reason::KeyFileExists,
                    format!("{} exists already; nothing was written", path.display()),
                )
            } else {
                CtlError::refused(Reason::Io, format!("{}: {e}", path.display()))
            }
        })?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| CtlError::refused(Reason::Io, format!("{}: {e}", path.display())))
}

fn out_dir(dir: &Path) -> CtlResult<()> {
    std::fs::create_dir_all(dir)
        .map_err(|e| CtlError::refused(Reason::Io, format!("{}: {e}", dir.display())))
}

/// Writes `<dir>/<stem>.pem` and `<dir>/<stem>.key`, the key first (so a
/// refused key leaves no certificate without its key).
fn write_pair(dir: &Path, stem: &str, cert: &str, key: &str) -> CtlResult<(PathBuf, PathBuf)> {
    let (cert_path, key_path) = (
        dir.join(format!("{stem}.pem")),
        dir.join(format!("{stem}.key")),
    );
    if cert_path.exists() {
        return Err(CtlError::refused(
            Reason::KeyFileExists,
            format!(
                "{} exists already; nothing was written",
                cert_path.display()
            ),
        ));
    }
    write_new(&key_path, key, 0o600)?;
    write_new(&cert_path, cert, 0o644)?;
    Ok((cert_path, key_path))
}

fn ca(a: &CaArgs) -> CtlResult<String> {
    out_dir(&a.out_dir)?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(crypto)?;
    params.distinguished_name.push(DnType::CommonName, &a.name);
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    validity(&mut params, a.days);
    let key = KeyPair::generate().map_err(crypto)?;
    let cert = params.self_signed(&key).map_err(crypto)?;
    let (cert_path, key_path) = write_pair(&a.out_dir, "ca", &cert.pem(), &key.serialize_pem())?;
    Ok(format!(
        "wrote {} and {} (mode 0600)\ngive the collector --client-ca {}; keep the key off the collector",
        cert_path.display(),
        key_path.display(),
        cert_path.display()
    ))
}

fn read(path: &Path) -> CtlResult<String> {
    std::fs::read_to_string(path)
        .map_err(|e| CtlError::refused(Reason::Io, format!("{}: {e}", path.display())))
}

fn issue(a: &IssueArgs) -> CtlResult<String> {
    check_name(&a.name)?;
    let ca_key = KeyPair::from_pem(&read(&a.ca_dir.join("ca.key"))?).map_err(|e| {
        CtlError::input(format!(
            "{}: not a PEM private key: {e}",
            a.ca_dir.join("ca.key").display()
        ))
    })?;
    let ca_pem = read(&a.ca_dir.join("ca.pem"))?;
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key).map_err(|e| {
        CtlError::input(format!(
            "{}: not a PEM CA certificate: {e}",
            a.ca_dir.join("ca.pem").display()
        ))
    })?;
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(crypto)?;
    params.distinguished_name.push(DnType::CommonName, &a.name);
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    validity(&mut params, a.days);
    if a.role == RoleArg::Server {
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let names = if a.dns.is_empty() {
            std::slice::from_ref(&a.name)
        } else {
            a.dns.as_slice()
        };
        for n in names {
            params.subject_alt_names.push(match n.parse::<IpAddr>() {
                Ok(ip) => SanType::IpAddress(ip),
                Err(_) => SanType::DnsName(
                    n.clone()
                        .try_into()
                        .map_err(|e| CtlError::input(format!("--dns {n:?}: {e}")))?,
                ),
            });
        }
    } else {
        if !a.dns.is_empty() {
            return Err(CtlError::input("--dns is for --role server"));
        }
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let uri = format!("{ROLE_URI}{}", a.role.as_str());
        params
            .subject_alt_names
            .push(SanType::URI(uri.try_into().map_err(crypto)?));
    }
    let key = KeyPair::generate().map_err(crypto)?;
    let cert = params.signed_by(&key, &issuer).map_err(crypto)?;
    out_dir(&a.out_dir)?;
    let (cert_path, key_path) = write_pair(&a.out_dir, &a.name, &cert.pem(), &key.serialize_pem())?;
    let usage = match a.role {
        RoleArg::Server => format!(
            "give the collector --tls-cert {} --tls-key {}",
            cert_path.display(),
            key_path.display()
        ),
        RoleArg::Reader | RoleArg::Auditor | RoleArg::Node => format!(
            "role {}: acelogicctl lineage --collector-cert {} --collector-key {} ...",
            a.role.as_str(),
            cert_path.display(),
            key_path.display()
        ),
    };
    Ok(format!(
        "wrote {} and {} (mode 0600), valid {} days\n{usage}",
        cert_path.display(),
        key_path.display(),
        a.days
    ))
}
