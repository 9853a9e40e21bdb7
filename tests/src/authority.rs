//! A running `acelogic-authority` for the cases that request artifacts
//! through a daemon: it issues as the daemon fixture's issuer (`ci`),
//! enrolls the nodes' keys made with `acelogicctl keygen --role node`, and
//! serves TLS with a CA made here (the daemon relays over https).

use std::{
    fs,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{bail, ensure};

use crate::daemon::{Ctl, Daemon, binary};

#[derive(Debug)]
pub struct Authority {
    /// `https://127.0.0.1:PORT`.
    pub url: String,
    pub ca: PathBuf,
    pub log: PathBuf,
    /// The approvers' key files (`alice` is the daemon fixture's).
    pub keys: PathBuf,
    child: Child,
}

/// Makes `daemon`'s node key (`<state>/node.key`, which the daemon uses as
/// it finds it) and returns its NodeEnrollment entry.
pub fn node_key(daemon: &Daemon) -> anyhow::Result<String> {
    let state = daemon.dir.join("state");
    fs::create_dir_all(&state)?;
    let out = Command::new(binary("acelogicctl")?)
        .args([
            "keygen",
            "--role",
            "node",
            "--name",
            &daemon.node_name,
            "--out",
        ])
        .arg(state.join("node.key"))
        .output()?;
    let ctl = Ctl::of(&out).ok("keygen --role node")?;
    Ok(format!("{}\n", ctl.stdout.trim_end()))
}

/// A self-signed CA and a certificate for 127.0.0.1 signed by it, in
/// `dir`: (ca.pem, cert.pem, key.pem).
fn tls(dir: &Path) -> anyhow::Result<(PathBuf, PathBuf, PathBuf)> {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;
    let key = KeyPair::generate()?;
    let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])?.signed_by(&key, &ca)?;
    let paths = (dir.join("ca.pem"), dir.join("tls.pem"), dir.join("tls.key"));
    fs::write(&paths.0, ca.pem())?;
    fs::write(&paths.1, cert.pem())?;
    fs::write(&paths.2, key.serialize_pem())?;
    Ok(paths)
}

impl Authority {
    /// Starts an authority beside `daemon` (its trust store, issuer key
    /// and capability policies) with `issuing` as the issuing policy and
    /// `nodes` (NodeEnrollment entries) enrolled. Point the daemon at it
    /// with [`Self::daemon_args`] before starting the daemon.
    pub fn start(daemon: &Daemon, issuing: &str, nodes: &str) -> anyhow::Result<Self> {
        let dir = daemon.dir.join("authority");
        fs::create_dir_all(&dir)?;
        let (ca, cert, key) = tls(&dir)?;
        fs::write(dir.join("issuing.yaml"), issuing)?;
        fs::write(
            dir.join("nodes.yaml"),
            format!("apiVersion: acelogic.dev/v1\nkind: NodeEnrollment\nnodes:\n{nodes}"),
        )?;
        let log = dir.join("authority.log");
        let out = fs::File::create(&log)?;
        let child = Command::new(binary("acelogic-authority")?)
            .args(["--listen", "127.0.0.1:0", "--tick", "200ms"])
            .arg("--state-dir")
            .arg(dir.join("state"))
            .arg("--issuer-key")
            .arg(daemon.dir.join("keys/ci.key"))
            .arg("--issuing-policy")
            .arg(dir.join("issuing.yaml"))
            .arg("--policies")
            .arg(&daemon.policies)
            .arg("--trust")
            .arg(daemon.policies.join("trust.yaml"))
            .arg("--nodes")
            .arg(dir.join("nodes.yaml"))
            .arg("--tls-cert")
            .arg(&cert)
            .arg("--tls-key")
            .arg(&key)
            .stdout(out.try_clone()?)
            .stderr(out)
            .stdin(Stdio::null())
            .spawn()?;
        let mut me = Self {
            url: String::new(),
            ca,
            log,
            keys: daemon.dir.join("keys"),
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = me.log_text();
            if let Some(url) = text
                .lines()
                .find_map(|l| l.strip_prefix("acelogic-authority: listening on "))
            {
                me.url = url.trim().to_owned();
                return Ok(me);
            }
            if let Some(st) = me.child.try_wait()? {
                bail!("the authority exited ({st}) while starting:\n{text}");
            }
            ensure!(
                Instant::now() < deadline,
                "the authority did not start in 30 s:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `--authority URL --authority-ca CA` for the daemon.
    #[must_use]
    pub fn daemon_args(&self) -> Vec<String> {
        vec![
            "--authority".to_owned(),
            self.url.clone(),
            "--authority-ca".to_owned(),
            self.ca.display().to_string(),
        ]
    }

    /// `acelogicctl approvals --authority <ours> --authority-ca <ca> ARGS`,
    /// run by this (ungoverned) process.
    pub fn approvals(&self, args: &[&str]) -> anyhow::Result<Ctl> {
        let out = Command::new(binary("acelogicctl")?)
            .args(["approvals", "--authority", &self.url, "--authority-ca"])
            .arg(&self.ca)
            .args(args)
            .stdin(Stdio::null())
            .output()?;
        Ok(Ctl::of(&out))
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Authority {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
