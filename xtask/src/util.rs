//! Running commands with errors that say what failed and how to fix it,
//! streaming their output line by line, and small host facts.

use std::ffi::OsString;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};

/// The command line of `cmd`, quoted enough to be pasted into a shell.
pub(crate) fn describe(cmd: &Command) -> String {
    let mut out = String::new();
    // Show variables set for this command, except the long PATH.
    for (key, value) in cmd.get_envs() {
        if let (Some(value), false) = (value, key == "PATH") {
            out.push_str(&format!(
                "{}={} ",
                key.to_string_lossy(),
                value.to_string_lossy()
            ));
        }
    }
    out.push_str(&cmd.get_program().to_string_lossy());
    for arg in cmd.get_args() {
        let arg = arg.to_string_lossy();
        out.push(' ');
        if arg.is_empty() || arg.contains([' ', '\'', '"', '$', '*', '?', ';', '|']) {
            out.push('\'');
            out.push_str(&arg.replace('\'', r"'\''"));
            out.push('\'');
        } else {
            out.push_str(&arg);
        }
    }
    out
}

fn spawn(cmd: &mut Command, hint: &str) -> Result<Child> {
    cmd.spawn().map_err(|err| {
        let program = cmd.get_program().to_string_lossy().into_owned();
        if err.kind() == std::io::ErrorKind::NotFound {
            anyhow!(
                "`{program}` was not found on PATH (running `{}`); {hint}",
                describe(cmd)
            )
        } else {
            anyhow!("could not start `{}`: {err}; {hint}", describe(cmd))
        }
    })
}

fn check_status(cmd: &Command, status: ExitStatus, stderr: &str, hint: &str) -> Result<()> {
    if status.success() {
        return Ok(());
    }
    let stderr = stderr.trim();
    let tail = if stderr.is_empty() {
        String::new()
    } else {
        format!("\n--- its stderr ---\n{stderr}\n---")
    };
    bail!("`{}` failed ({status}){tail}\nhint: {hint}", describe(cmd))
}

/// Runs `cmd` with the terminal as its stdout and stderr; fails unless it
/// exits 0.
pub(crate) fn run(cmd: &mut Command, hint: &str) -> Result<()> {
    let status = spawn(cmd.stdin(Stdio::null()), hint)?
        .wait()
        .with_context(|| format!("waiting for `{}`", describe(cmd)))?;
    check_status(cmd, status, "", hint)
}

/// Runs `cmd` and returns its stdout; fails (showing its stderr) unless it
/// exits 0.
pub(crate) fn capture(cmd: &mut Command, hint: &str) -> Result<String> {
    let out = spawn(
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped()),
        hint,
    )?
    .wait_with_output()
    .with_context(|| format!("waiting for `{}`", describe(cmd)))?;
    check_status(cmd, out.status, &String::from_utf8_lossy(&out.stderr), hint)?;
    String::from_utf8(out.stdout).with_context(|| format!("`{}` printed non-UTF-8", describe(cmd)))
}

/// How a streamed command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StreamEnd {
    Exited(ExitStatus),
    TimedOut,
}

fn forward_lines(reader: impl Read + Send + 'static, tx: mpsc::Sender<String>) {
    drop(thread::spawn(move || {
        let mut reader = BufReader::new(reader);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            match reader.read_until(b'\n', &mut buf) {
                Ok(0) | Err(_) => break,
                Ok(_) => {
                    while buf.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
                        buf.pop();
                    }
                    let line = String::from_utf8_lossy(&buf).replace('\r', "");
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            }
        }
    }));
}

/// Runs `cmd` with stdin closed and stdout piped, calling `on_line` for each
/// line of stdout (and of stderr if the caller set `.stderr(Stdio::piped())`),
/// without trailing `\r`/`\n`. Kills the command after `timeout`.
pub(crate) fn stream_lines(
    cmd: &mut Command,
    timeout: Option<Duration>,
    hint: &str,
    mut on_line: impl FnMut(&str),
) -> Result<StreamEnd> {
    let mut child = spawn(cmd.stdin(Stdio::null()).stdout(Stdio::piped()), hint)?;
    let (tx, rx) = mpsc::channel();
    if let Some(out) = child.stdout.take() {
        forward_lines(out, tx.clone());
    }
    if let Some(err) = child.stderr.take() {
        forward_lines(err, tx.clone());
    }
    drop(tx);
    let deadline = timeout.map(|t| Instant::now() + t);
    loop {
        let next = match deadline {
            None => rx.recv().map_err(|_| mpsc::RecvTimeoutError::Disconnected),
            Some(deadline) => rx.recv_timeout(deadline.saturating_duration_since(Instant::now())),
        };
        match next {
            Ok(line) => on_line(&line),
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => {
                // Already exited or not, make sure it is gone.
                child.kill().ok();
                child.wait().ok();
                return Ok(StreamEnd::TimedOut);
            }
        }
    }
    // Output closed; the process is exiting. Still honour the deadline.
    loop {
        if let Some(status) = child.try_wait().context("waiting for child")? {
            return Ok(StreamEnd::Exited(status));
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            child.kill().ok();
            child.wait().ok();
            return Ok(StreamEnd::TimedOut);
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// `$XDG_CACHE_HOME/acelogic` or `~/.cache/acelogic`.
pub(crate) fn cache_dir() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join("acelogic"));
    }
    let home = std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .context("neither XDG_CACHE_HOME nor HOME is set; set HOME to choose the cache location")?;
    Ok(PathBuf::from(home).join(".cache").join("acelogic"))
}

/// Whether this process runs with effective uid 0.
pub(crate) fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The running kernel's release (`uname -r`).
pub(crate) fn kernel_release() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or_else(|_| "unknown".to_owned(), |s| s.trim().to_owned())
}

/// `PATH` with `dir` in front.
pub(crate) fn path_with(dir: &Path) -> Result<OsString> {
    let old = std::env::var_os("PATH").unwrap_or_default();
    let mut dirs = vec![dir.to_path_buf()];
    dirs.extend(std::env::split_paths(&old));
    std::env::join_paths(dirs).context("PATH contains a directory name with ':' in it")
}

/// The workspace root and target directory, as cargo reports them.
#[derive(Debug, Clone)]
pub(crate) struct Workspace {
    pub(crate) root: PathBuf,
    pub(crate) target_dir: PathBuf,
}

/// The `cargo` that runs xtask (so the same toolchain builds everything).
pub(crate) fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Asks `cargo metadata` where the workspace and its target directory are.
pub(crate) fn workspace() -> Result<Workspace> {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
    let out = capture(
        cargo()
            .args([
                "metadata",
                "--format-version",
                "1",
                "--no-deps",
                "--manifest-path",
            ])
            .arg(&manifest),
        "run `cargo metadata` yourself to see what is wrong with the workspace manifests",
    )?;
    let meta: serde_json::Value =
        serde_json::from_str(&out).context("parsing the output of `cargo metadata`")?;
    let field = |name: &str| -> Result<PathBuf> {
        meta.get(name)
            .and_then(serde_json::Value::as_str)
            .map(PathBuf::from)
            .with_context(|| format!("`cargo metadata` printed no `{name}`"))
    };
    Ok(Workspace {
        root: field("workspace_root")?,
        target_dir: field("target_directory")?,
    })
}

/// Seconds with one decimal, for timing lines.
pub(crate) fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

/// Whether `path` is an ELF file.
pub(crate) fn is_elf(path: &Path) -> Result<bool> {
    let mut magic = [0_u8; 4];
    let mut file =
        std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    Ok(file.read_exact(&mut magic).is_ok() && magic == *b"\x7fELF")
}

/// Whether an ELF file has a `PT_INTERP` program header (needs a dynamic
/// loader). Only 64-bit little-endian ELF is understood.
pub(crate) fn elf_is_dynamic(path: &Path) -> Result<bool> {
    let data = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let bad = || anyhow!("{} is not a 64-bit little-endian ELF file", path.display());
    if data.get(..6) != Some(b"\x7fELF\x02\x01".as_slice()) {
        return Err(bad());
    }
    let u16_at = |off: usize| -> Option<usize> {
        Some(usize::from(u16::from_le_bytes(
            data.get(off..off + 2)?.try_into().ok()?,
        )))
    };
    let phoff = data
        .get(0x20..0x28)
        .and_then(|b| b.try_into().ok())
        .map(u64::from_le_bytes)
        .and_then(|v| usize::try_from(v).ok())
        .ok_or_else(bad)?;
    let phentsize = u16_at(0x36).ok_or_else(bad)?;
    let phnum = u16_at(0x38).ok_or_else(bad)?;
    for i in 0..phnum {
        let off = phoff + i * phentsize;
        let p_type = data
            .get(off..off + 4)
            .and_then(|b| b.try_into().ok())
            .map(u32::from_le_bytes)
            .ok_or_else(bad)?;
        if p_type == 3 {
            return Ok(true);
        }
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describe_quotes_spaces() {
        let mut cmd = Command::new("echo");
        cmd.args(["a b", "c"]);
        assert_eq!(describe(&cmd), "echo 'a b' c");
    }

    #[test]
    fn stream_lines_reports_lines_and_timeout() -> Result<()> {
        let mut lines = Vec::new();
        let end = stream_lines(
            Command::new("sh").args(["-c", "printf 'a\\r\\nb\\n'"]),
            Some(Duration::from_secs(20)),
            "",
            |l| lines.push(l.to_owned()),
        )?;
        assert!(matches!(end, StreamEnd::Exited(s) if s.success()));
        assert_eq!(lines, ["a", "b"]);
        let end = stream_lines(
            Command::new("sleep").arg("20"),
            Some(Duration::from_millis(200)),
            "",
            |_| {},
        )?;
        assert_eq!(end, StreamEnd::TimedOut);
        Ok(())
    }
}
