//! Fixtures for end-to-end authorization tests: the real `acelogic-agent`
//! daemon and `acelogicctl` binaries, keys made with `acelogicctl keygen`,
//! artifacts signed with `acelogicctl artifact sign`.

use std::{
    fs,
    io::Read as _,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail, ensure};

use crate::{fixtures::Scratch, harness::SHARED_PIN_DIR};

/// An installed binary of the workspace: next to this test binary (host
/// runs from `target/release`), else in `/usr/bin` (the VM).
pub fn binary(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let beside = exe.parent().map(|d| d.join(name));
    if let Some(p) = beside.filter(|p| p.is_file()) {
        return Ok(p);
    }
    let usr = Path::new("/usr/bin").join(name);
    ensure!(
        usr.is_file(),
        "{name} is neither beside {} nor in /usr/bin",
        exe.display()
    );
    Ok(usr)
}

/// What `acelogicctl` did.
#[derive(Debug)]
pub struct Ctl {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Ctl {
    pub fn of(out: &Output) -> Self {
        Self {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Fails unless the command exited 0.
    pub fn ok(self, what: &str) -> anyhow::Result<Self> {
        ensure!(
            self.code == 0,
            "{what}: acelogicctl exited {}: {}{}",
            self.code,
            self.stdout,
            self.stderr
        );
        Ok(self)
    }

    /// Fails unless the command was refused (exit 1) with `[code]`.
    pub fn refused(self, what: &str, code: &str) -> anyhow::Result<Self> {
        ensure!(
            self.code == 1 && self.stderr.contains(&format!("[{code}]")),
            "{what}: expected exit 1 with [{code}], got exit {}: {}{}",
            self.code,
            self.stdout,
            self.stderr
        );
        Ok(self)
    }
}

/// How long [`Daemon::start`] waits for the API to answer.
const START_DEADLINE: Duration = Duration::from_secs(240);

/// A running daemon with its own policies, trust store, state and socket,
/// adopting the suite's shared pinned programs.
#[derive(Debug)]
pub struct Daemon {
    pub dir: Scratch,
    pub policies: PathBuf,
    pub socket: PathBuf,
    pub log: PathBuf,
    /// Extra daemon arguments (`--journal-cap`, `--collector`, ...).
    pub args: Vec<String>,
    /// Where the daemon pins (and adopts) its programs; `None`: the
    /// privileged suite's shared install (`SHARED_PIN_DIR`).
    pub pin_dir: Option<PathBuf>,
    /// `--node-name` (default `vm`).
    pub node_name: String,
    child: Option<Child>,
    /// Length of the log when the running daemon started: what it printed
    /// comes after.
    log_from: usize,
}

impl Daemon {
    /// Keys `ci` (issuer) and `alice` (approver) in `dir/keys`, the trust
    /// store in `dir/policies/trust.yaml`, and `policy` as
    /// `dir/policies/policy.yaml`.
    pub fn prepare(name: &str, policy: &str) -> anyhow::Result<Self> {
        let dir = Scratch::new(name)?;
        let policies = dir.join("policies");
        let keys = dir.join("keys");
        fs::create_dir_all(&policies)?;
        fs::create_dir_all(&keys)?;
        let mut trust = "apiVersion: acelogic.dev/v1\nkind: TrustStore\nkeys:\n".to_owned();
        for (who, role) in [("ci", "issuer"), ("alice", "approver")] {
            let out = Command::new(binary("acelogicctl")?)
                .args(["keygen", "--name", who, "--role", role, "--out"])
                .arg(keys.join(format!("{who}.key")))
                .output()?;
            let ctl = Ctl::of(&out).ok("keygen")?;
            trust.push_str(&ctl.stdout);
        }
        fs::write(policies.join("trust.yaml"), trust)?;
        fs::write(policies.join("policy.yaml"), policy)?;
        Ok(Self {
            socket: dir.join("agent.sock"),
            log: dir.join("agent.log"),
            policies,
            dir,
            args: Vec::new(),
            pin_dir: None,
            node_name: "vm".to_owned(),
            child: None,
            log_from: 0,
        })
    }

    /// Starts the daemon and waits until its API answers (at most
    /// [`START_DEADLINE`]).
    pub fn start(&mut self) -> anyhow::Result<()> {
        ensure!(self.child.is_none(), "already running");
        let pin = match &self.pin_dir {
            Some(dir) => dir.clone().into_os_string(),
            None => std::env::var_os(SHARED_PIN_DIR)
                .context("the shared pinned programs are missing (run through the harness)")?,
        };
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        self.log_from = self.log_text().len();
        let child = Command::new(binary("acelogic-agent")?)
            .arg("--policies")
            .arg(&self.policies)
            .arg("--pin-dir")
            .arg(pin)
            .arg("--state-dir")
            .arg(self.dir.join("state"))
            .arg("--socket")
            .arg(&self.socket)
            .args(["--audience", "test", "--node-name", &self.node_name])
            // A short tick unless the case sets its own.
            .args(if self.args.iter().any(|a| a == "--tick") {
                &[][..]
            } else {
                &["--tick", "200ms"][..]
            })
            .args(&self.args)
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        self.child = Some(child);
        // A daemon on private pins loads and verifies every program
        // first: on 6.1's verifier, in a TCG guest sharing two host cores
        // with another guest, that alone has taken over a minute.
        let deadline = Instant::now() + START_DEADLINE;
        loop {
            if self.ctl(&["status"])?.code == 0 {
                return Ok(());
            }
            if let Some(c) = self.child.as_mut()
                && let Some(st) = c.try_wait()?
            {
                bail!(
                    "the daemon exited ({st}) while starting:\n{}",
                    self.log_tail()
                );
            }
            ensure!(
                Instant::now() < deadline,
                "the daemon did not answer in {} s:\n{}",
                START_DEADLINE.as_secs(),
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The daemon's capability set `field` (`CapEff`, `CapBnd`, ...)
    /// from `/proc/PID/status`.
    pub fn capabilities(&self, field: &str) -> anyhow::Result<u64> {
        let pid = self.child.as_ref().context("not running")?.id();
        let status = fs::read_to_string(format!("/proc/{pid}/status"))?;
        let hex = status
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{field}:")))
            .with_context(|| format!("no {field} in /proc/{pid}/status"))?;
        Ok(u64::from_str_radix(hex.trim(), 16)?)
    }

    /// SIGTERM and wait.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(mut c) = self.child.take() {
            let pid = i32::try_from(c.id())?;
            // SAFETY: plain kill(2) on our own child.
            unsafe { libc::kill(pid, libc::SIGTERM) };
            let st = c.wait()?;
            ensure!(
                st.success(),
                "the daemon exited with {st}:\n{}",
                self.log_tail()
            );
        }
        Ok(())
    }

    /// Sends `signal` to the daemon; after SIGKILL it is reaped and gone.
    pub fn signal(&mut self, signal: i32) -> anyhow::Result<()> {
        let c = self.child.as_mut().context("not running")?;
        let pid = i32::try_from(c.id())?;
        // SAFETY: plain kill(2) on our own child.
        let rc = unsafe { libc::kill(pid, signal) };
        ensure!(rc == 0, "kill({pid}, {signal})");
        if signal == libc::SIGKILL {
            c.wait()?;
            self.child = None;
        }
        Ok(())
    }

    /// Where the running daemon serves its metrics and probes (it was
    /// started with `--metrics-listen`).
    pub fn metrics_addr(&self) -> anyhow::Result<std::net::SocketAddr> {
        const PREFIX: &str = "acelogic-agent: metrics on http://";
        let text = self.log_text();
        let line = text
            .get(self.log_from..)
            .unwrap_or_default()
            .lines()
            .find_map(|l| l.strip_prefix(PREFIX))
            .with_context(|| format!("no {PREFIX:?} line since the start:\n{text}"))?;
        line.trim()
            .parse()
            .with_context(|| format!("the metrics address {line:?}"))
    }

    /// The daemon's journal (`<state>/journal.db`).
    pub fn journal_path(&self) -> PathBuf {
        self.dir.join("state/journal.db")
    }

    /// `acelogicctl --socket <ours> ARGS`.
    pub fn ctl(&self, args: &[&str]) -> anyhow::Result<Ctl> {
        let out = Command::new(binary("acelogicctl")?)
            .arg("--socket")
            .arg(&self.socket)
            .args(args)
            .stdin(Stdio::null())
            .output()?;
        Ok(Ctl::of(&out))
    }

    /// Signs `request` (YAML) with the issuer key, and the approver's
    /// when `approve`; returns the envelope path.
    pub fn sign(&self, name: &str, request: &str, approve: bool) -> anyhow::Result<PathBuf> {
        let req = self.dir.join(&format!("{name}.request.yaml"));
        fs::write(&req, request)?;
        let out = self.dir.join(&format!("{name}.dsse.json"));
        let mut args = vec![
            "artifact".to_owned(),
            "sign".to_owned(),
            "--request".to_owned(),
        ];
        args.push(req.display().to_string());
        args.push("--key".to_owned());
        args.push(self.dir.join("keys/ci.key").display().to_string());
        if approve {
            args.push("--key".to_owned());
            args.push(self.dir.join("keys/alice.key").display().to_string());
        }
        args.push("--out".to_owned());
        args.push(out.display().to_string());
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        self.ctl(&refs)?.ok("artifact sign")?;
        Ok(out)
    }

    /// Submits an envelope.
    pub fn submit(&self, envelope: &Path) -> anyhow::Result<Ctl> {
        self.ctl(&[
            "artifact",
            "submit",
            "--json",
            &envelope.display().to_string(),
        ])
    }

    /// Submits and returns (artifact id, grant id), failing on refusal.
    pub fn accept(&self, envelope: &Path) -> anyhow::Result<(String, u64)> {
        let ctl = self.submit(envelope)?.ok("submit")?;
        let v: serde_json::Value = serde_json::from_str(ctl.stdout.trim())
            .with_context(|| format!("submit output: {}", ctl.stdout))?;
        Ok((
            v["artifactId"].as_str().unwrap_or_default().to_owned(),
            v["grantId"].as_u64().unwrap_or_default(),
        ))
    }

    /// Live grants as JSON.
    pub fn grants(&self) -> anyhow::Result<Vec<serde_json::Value>> {
        let ctl = self.ctl(&["grants", "--json"])?.ok("grants")?;
        Ok(serde_json::from_str(ctl.stdout.trim())?)
    }

    /// Status as JSON.
    pub fn status(&self) -> anyhow::Result<serde_json::Value> {
        let ctl = self.ctl(&["status", "--json"])?.ok("status")?;
        Ok(serde_json::from_str(ctl.stdout.trim())?)
    }

    /// Everything the daemon printed so far.
    pub fn log_text(&self) -> String {
        let mut s = String::new();
        if let Ok(mut f) = fs::File::open(&self.log) {
            let _ = f.read_to_string(&mut s);
        }
        s
    }

    /// The end of the daemon's log, for an error message.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log_text(), &self.log)
    }

    /// Waits until the daemon's log has a line containing every one of
    /// `needles`; returns that line.
    pub fn wait_log(&self, needles: &[&str]) -> anyhow::Result<String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = self.log_text();
            if let Some(line) = text.lines().find(|l| needles.iter().all(|n| l.contains(n))) {
                return Ok(line.to_owned());
            }
            ensure!(
                Instant::now() < deadline,
                "no daemon log line with {needles:?} in 10 s:\n{}",
                log_tail(&text, &self.log)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Polls `check` for up to 10 s.
    pub fn eventually(
        &self,
        what: &str,
        mut check: impl FnMut() -> anyhow::Result<bool>,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !check()? {
            ensure!(
                Instant::now() < deadline,
                "{what}: not within 10 s:\n{}",
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// sha256 of a file, hex.
pub fn sha256_of(path: &Path) -> anyhow::Result<String> {
    let out = Command::new("sha256sum").arg(path).output()?;
    ensure!(out.status.success(), "sha256sum {} failed", path.display());
    let text = String::from_utf8(out.stdout)?;
    Ok(text
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_owned())
}

/// A running `acelogic-collector` on a free loopback port, enrolling nodes
/// on first contact, with its store in `dir`.
#[derive(Debug)]
pub struct Collector {
    pub url: String,
    pub log: PathBuf,
    child: Child,
}

impl Collector {
    pub fn start(dir: &Scratch) -> anyhow::Result<Self> {
        let log_path = dir.join("collector.log");
        let log = fs::File::create(&log_path)?;
        let child = Command::new(binary("acelogic-collector")?)
            .args(["--listen", "127.0.0.1:0", "--accept-new-nodes"])
            .arg("--db")
            .arg(dir.join("collector.db"))
            .arg("--key")
            .arg(dir.join("collector.key"))
            .args(["--checkpoint-interval", "1s"])
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        let mut me = Self {
            url: String::new(),
            log: log_path,
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let text = fs::read_to_string(&me.log).unwrap_or_default();
            if let Some(url) = text
                .lines()
                .find_map(|l| l.strip_prefix("acelogic-collector: listening on "))
            {
                me.url = url.trim().to_owned();
                return Ok(me);
            }
            if let Some(st) = me.child.try_wait()? {
                bail!(
                    "the collector exited ({st}) while starting:\n{}",
                    log_tail(&text, &me.log)
                );
            }
            ensure!(
                Instant::now() < deadline,
                "the collector did not start in 30 s:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `acelogicctl lineage --collector <ours> ARGS`.
    pub fn lineage(&self, args: &[&str]) -> anyhow::Result<Ctl> {
        let mut cmd = Command::new(binary("acelogicctl")?);
        cmd.arg("lineage");
        if let Some((sub, rest)) = args.split_first() {
            cmd.arg(sub).args(["--collector", &self.url]).args(rest);
        }
        Ok(Ctl::of(&cmd.stdin(Stdio::null()).output()?))
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The end of the collector's log, for an error message.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log_text(), &self.log)
    }
}

/// The last lines of a log, for an error message: a daemon prints every
/// record it journals, and a whole log would bury the error.
fn log_tail(text: &str, path: &Path) -> String {
    const LINES: usize = 80;
    let lines: Vec<&str> = text.lines().collect();
    let skip = lines.len().saturating_sub(LINES);
    let mut out = String::new();
    if skip > 0 {
        out.push_str(&format!("({skip} earlier lines in {})\n", path.display()));
    }
    out.push_str(&lines[skip..].join("\n"));
    out
}

impl Drop for Collector {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
