//! A real etcd member for the privileged cases and the benchmarks
//! (Debian's `etcd-server`; the VM guest gets `/usr/bin/etcd` from the
//! host), on loopback with its data in a scratch directory.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

fn free_port() -> anyhow::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// One member; killed when dropped.
#[derive(Debug)]
pub struct Etcd {
    dir: PathBuf,
    pub url: String,
    peer: String,
    child: Option<Child>,
}

/// `/usr/bin/etcd`, or `etcd` on PATH.
fn binary() -> PathBuf {
    let usr = Path::new("/usr/bin/etcd");
    if usr.is_file() {
        usr.to_path_buf()
    } else {
        PathBuf::from("etcd")
    }
}

impl Etcd {
    /// Starts a member with its data in `dir` and waits until it is
    /// healthy.
    pub fn start(dir: &Path) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let mut me = Self {
            dir: dir.to_path_buf(),
            url: format!("http://127.0.0.1:{}", free_port()?),
            peer: format!("http://127.0.0.1:{}", free_port()?),
            child: None,
        };
        me.spawn()?;
        Ok(me)
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("etcd.log"))?;
        let child = Command::new(binary())
            .args(["--name", "t", "--data-dir"])
            .arg(self.dir.join("data"))
            .args(["--listen-client-urls", &self.url])
            .args(["--advertise-client-urls", &self.url])
            .args(["--listen-peer-urls", &self.peer])
            .args(["--initial-advertise-peer-urls", &self.peer])
            .args(["--initial-cluster", &format!("t={}", self.peer)])
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .with_context(|| {
                format!(
                    "starting {}: install etcd-server (`cargo xtask setup`)",
                    binary().display()
                )
            })?;
        self.child = Some(child);
        self.wait_ready()
    }

    fn wait_ready(&self) -> anyhow::Result<()> {
        let addr = self.url.trim_start_matches("http://").to_owned();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(mut s) = std::net::TcpStream::connect(&addr) {
                use std::io::{Read as _, Write as _};
                let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
                let _ = s.write_all(b"GET /health HTTP/1.0\r\n\r\n");
                let mut body = String::new();
                let _ = s.read_to_string(&mut body);
                if body.contains("\"health\":\"true\"") {
                    return Ok(());
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!(
            "etcd at {} was not healthy within 60 s:\n{}",
            self.url,
            std::fs::read_to_string(self.dir.join("etcd.log")).unwrap_or_default()
        )
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts again on the same data and ports.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.kill();
        self.spawn()
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.kill();
    }
}
