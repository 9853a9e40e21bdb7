//! `cargo xtask setup`: everything the build and the tests need that is not
//! a crate dependency. Idempotent; every step prints one line.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::kernels::{self, Kernel};
use crate::util::{cache_dir, capture, cargo, elf_is_dynamic, is_root, run, secs};

const BPF_LINKER_VERSION: &str = "0.13.0";
/// `systemd` for `systemd-analyze verify` of the units in deploy/systemd.
/// QEMU's packages follow the machine's `qemu-utils` (see
/// [`matching_backports`]).
const PACKAGES: [&str; 4] = ["qemu-system-x86", "busybox-static", "cpio", "systemd"];
/// From the release itself, never a backport: `etcd-server` for the
/// cluster store's tests (each starts its own member, on loopback or in
/// the guest); `protobuf-compiler` and `libprotobuf-dev` (protoc and its
/// well-known types) for etcd-client's build script; `xz-utils` and `zstd`
/// to unpack the kernel modules the guests load.
const RELEASE_PACKAGES: [&str; 5] = [
    "etcd-server",
    "protobuf-compiler",
    "libprotobuf-dev",
    "xz-utils",
    "zstd",
];
/// The collector's web view test drives a real browser: Debian's
/// `chromium` (headless; never a browser downloaded by a test tool), with
/// the client certificate in an NSS database made by `certutil` and
/// `pk12util` (`libnss3-tools`) from a PKCS#12 file `openssl` writes.
const BROWSER_PACKAGES: [&str; 3] = ["chromium", "libnss3-tools", "openssl"];
const NIGHTLY_HINT: &str = "install the nightly toolchain: `rustup toolchain install nightly`";

/// What setup found: the kernel matrix.
#[derive(Debug)]
pub(crate) struct Ready {
    pub(crate) kernels: Vec<Kernel>,
}

/// Runs every setup step; prints one line per step and the time taken.
pub(crate) fn setup() -> Result<Ready> {
    let start = Instant::now();
    rust_src()?;
    bpf_linker()?;
    packages()?;
    crate::deploy::install_validator()?;
    let kernels = kernels::ensure_matrix()?;
    println!("setup: done in {}", secs(start.elapsed()));
    Ok(Ready { kernels })
}

fn nightly_sysroot() -> Result<PathBuf> {
    static SYSROOT: OnceLock<PathBuf> = OnceLock::new();
    if let Some(dir) = SYSROOT.get() {
        return Ok(dir.clone());
    }
    let out = capture(
        Command::new("rustc").args(["+nightly", "--print", "sysroot"]),
        NIGHTLY_HINT,
    )?;
    Ok(SYSROOT.get_or_init(|| PathBuf::from(out.trim())).clone())
}

/// The nightly toolchain's commit hash, the cache key for bpf-linker.
fn nightly_commit() -> Result<String> {
    let out = capture(
        Command::new("rustc").args(["+nightly", "-vV"]),
        NIGHTLY_HINT,
    )?;
    out.lines()
        .find_map(|l| l.strip_prefix("commit-hash: "))
        .map(|h| h.trim().to_owned())
        .context("`rustc +nightly -vV` printed no `commit-hash:` line")
}

/// The directory holding the `bpf-linker` built for the current nightly.
/// Every cargo invocation that builds acelogic-agent needs it on PATH.
pub(crate) fn bpf_linker_dir() -> Result<PathBuf> {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    if let Some(dir) = DIR.get() {
        return Ok(dir.clone());
    }
    let dir = cache_dir()?
        .join("bpf-linker")
        .join(nightly_commit()?)
        .join("bin");
    Ok(DIR.get_or_init(|| dir).clone())
}

/// `cargo` with the bpf-linker directory first on PATH.
pub(crate) fn cargo_with_linker() -> Result<Command> {
    let mut cmd = cargo();
    cmd.env("PATH", crate::util::path_with(&bpf_linker_dir()?)?);
    // The workspace root (xtask is one of its members), wherever we are run from.
    if let Some(root) = Path::new(env!("CARGO_MANIFEST_DIR")).parent() {
        cmd.current_dir(root);
    }
    Ok(cmd)
}

/// The nightly `cargo`, as aya-build runs it for the BPF crate (`rustup
/// run nightly cargo`), with bpf-linker first on PATH. `CARGO` and
/// `RUSTC` name the stable toolchain xtask runs under, so they go (as
/// aya-build drops them).
pub(crate) fn nightly_cargo() -> Result<Command> {
    let mut cmd = Command::new("rustup");
    cmd.args(["run", "nightly", "cargo"])
        .env("PATH", crate::util::path_with(&bpf_linker_dir()?)?);
    for key in ["CARGO", "RUSTC", "RUSTC_WORKSPACE_WRAPPER"] {
        cmd.env_remove(key);
    }
    if let Some(root) = Path::new(env!("CARGO_MANIFEST_DIR")).parent() {
        cmd.current_dir(root);
    }
    Ok(cmd)
}

fn rust_src() -> Result<()> {
    if nightly_sysroot()?.join("lib/rustlib/src").is_dir() {
        println!("setup: rust-src for nightly: already installed");
    } else {
        println!("setup: rust-src for nightly: installing (rustup component add)");
        run(
            Command::new("rustup").args(["component", "add", "rust-src", "--toolchain", "nightly"]),
            "check that rustup can reach its distribution server, or install rust-src by hand",
        )?;
    }
    // The lint suite runs clippy on the BPF crate with nightly.
    let clippy = Command::new("rustup")
        .args(["run", "nightly", "cargo-clippy", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if clippy {
        println!("setup: clippy for nightly: already installed");
        return Ok(());
    }
    println!("setup: clippy for nightly: installing (rustup component add)");
    run(
        Command::new("rustup").args(["component", "add", "clippy", "--toolchain", "nightly"]),
        "check that rustup can reach its distribution server, or install clippy by hand",
    )
}

/// Finds `libLLVM.so.<ver>` in the nightly sysroot; returns it and its major
/// version.
fn nightly_libllvm() -> Result<(PathBuf, u32)> {
    let lib = nightly_sysroot()?.join("lib");
    let mut found: Vec<PathBuf> = std::fs::read_dir(&lib)
        .with_context(|| format!("listing {}", lib.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libLLVM.so."))
        })
        .collect();
    found.sort();
    let Some(path) = found.pop() else {
        bail!(
            "no libLLVM.so.* in {}; bpf-linker is built against the nightly toolchain's own LLVM \
             (reinstall nightly: `rustup toolchain install nightly --force`)",
            lib.display()
        );
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let major = llvm_major(&name)
        .with_context(|| format!("cannot read an LLVM major version from `{name}`"))?;
    Ok((path, major))
}

/// `libLLVM.so.22.1-rust-1.97.0-nightly` → 22.
fn llvm_major(file_name: &str) -> Option<u32> {
    let rest = file_name.strip_prefix("libLLVM.so.")?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

fn bpf_linker() -> Result<()> {
    let bin_dir = bpf_linker_dir()?;
    let bin = bin_dir.join("bpf-linker");
    if bin.is_file() {
        println!(
            "setup: bpf-linker {BPF_LINKER_VERSION}: already built ({})",
            bin.display()
        );
        return Ok(());
    }
    let root = bin_dir
        .parent()
        .context("bpf-linker dir has no parent")?
        .to_path_buf();
    let (libllvm, major) = nightly_libllvm()?;
    println!(
        "setup: bpf-linker {BPF_LINKER_VERSION}: building against {} (1-2 minutes, once per nightly)",
        libllvm.display()
    );
    let prefix = root.join("llvm");
    let lib = prefix.join("lib");
    if lib.exists() {
        std::fs::remove_dir_all(&lib).with_context(|| format!("removing {}", lib.display()))?;
    }
    std::fs::create_dir_all(&lib).with_context(|| format!("creating {}", lib.display()))?;
    let own_name = libllvm
        .file_name()
        .context("libLLVM path has no file name")?;
    for link in [lib.join("libLLVM.so"), lib.join(own_name)] {
        std::os::unix::fs::symlink(&libllvm, &link)
            .with_context(|| format!("symlinking {} -> {}", link.display(), libllvm.display()))?;
    }
    run(
        cargo()
            .env("LLVM_PREFIX", &prefix)
            .args(["install", "bpf-linker", "--version", BPF_LINKER_VERSION])
            .args([
                "--no-default-features",
                "--features",
                &format!("llvm-{major}"),
            ])
            .arg("--root")
            .arg(&root),
        "bpf-linker builds against the nightly toolchain's libLLVM; check that crates.io is \
         reachable and that `rustup toolchain install nightly` is current",
    )?;
    check_linker(&bin)
}

fn check_linker(bin: &Path) -> Result<()> {
    let version = capture(
        Command::new(bin).arg("--version"),
        "delete the bpf-linker cache directory and run `cargo xtask setup` again",
    )?;
    println!("setup: bpf-linker: built {}", version.trim());
    Ok(())
}

fn package_installed(name: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", name])
        .output()
        .is_ok_and(|o| {
            o.status.success() && String::from_utf8_lossy(&o.stdout).ends_with(" installed")
        })
}

/// The installed version of a Debian package, or `?`.
fn package_version(name: &str) -> String {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Version}", name])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map_or_else(
            || "?".to_owned(),
            |o| String::from_utf8_lossy(&o.stdout).into_owned(),
        )
}

fn packages() -> Result<()> {
    install(&PACKAGES, true)?;
    install(&RELEASE_PACKAGES, false)?;
    println!(
        "setup: chromium (headless), libnss3-tools and openssl: for the collector's web view \
         browser test (acelogic-collector/tests/collector/web.rs)"
    );
    install(&BROWSER_PACKAGES, false)?;
    let busybox = Path::new("/bin/busybox");
    if !busybox.is_file() || elf_is_dynamic(busybox)? {
        bail!(
            "/bin/busybox is missing or dynamically linked, so it cannot run alone in the VM; \
             install the static one: `apt-get install -y busybox-static`"
        );
    }
    Ok(())
}

/// Installs what of `packages` is missing; QEMU's packages from the
/// backports suite that matches `qemu-utils` when `backports` is set.
fn install(packages: &[&str], backports: bool) -> Result<()> {
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| !package_installed(p))
        .collect();
    if missing.is_empty() {
        println!(
            "setup: Debian packages {}: already installed",
            packages.join(" ")
        );
    } else {
        let list = missing.join(" ");
        if !is_root() {
            bail!(
                "Debian packages missing: {list}. As root, run:\n  \
                 apt-get update && apt-get install -y --no-remove --no-install-recommends {list}"
            );
        }
        println!("setup: Debian packages {list}: installing (apt-get)");
        let hint = format!(
            "check that the Debian mirror in /etc/apt/sources.list.d/ is reachable, then try \
             `apt-get update && apt-get install -y --no-remove --no-install-recommends {list}` by hand"
        );
        let matched = if backports {
            matching_backports()?
        } else {
            None
        };
        let mut apt = match matched {
            Some(apt) => apt,
            None => {
                run(Command::new("apt-get").args(["-q", "update"]), &hint)?;
                Command::new("apt-get")
            }
        };
        // `--no-remove`: an install that would take another package off
        // the machine (QEMU's dependencies once replaced `qemu-utils`)
        // fails with apt's list of what it would remove, instead of doing it.
        run(
            apt.env("DEBIAN_FRONTEND", "noninteractive")
                .args([
                    "install",
                    "-q",
                    "-y",
                    "--no-remove",
                    "--no-install-recommends",
                ])
                .args(&missing),
            &format!(
                "{hint}; if apt refused because it would remove packages, install {list} \
                 yourself, choosing what to keep"
            ),
        )?;
        for p in &missing {
            println!("setup: installed {p} {}", package_version(p));
        }
    }
    Ok(())
}

/// When the machine's `qemu-utils` is a backport, QEMU's system packages
/// must come from the same backports suite: the release's own
/// `qemu-system-x86` replaces a newer `qemu-utils`. Returns an `apt-get`
/// whose sources are the system's plus `<codename>-backports` (private
/// sources and lists under `~/.cache/acelogic/apt-setup/`; the system's apt
/// configuration is untouched), targeting that suite, with fresh lists.
fn matching_backports() -> Result<Option<Command>> {
    if !package_installed("qemu-utils") || !package_version("qemu-utils").contains("~bpo") {
        return Ok(None);
    }
    let release = std::fs::read_to_string("/etc/os-release").context("reading /etc/os-release")?;
    let codename = release
        .lines()
        .find_map(|l| l.strip_prefix("VERSION_CODENAME="))
        .map(|c| c.trim_matches('"').to_owned())
        .filter(|c| !c.is_empty())
        .context("/etc/os-release names no VERSION_CODENAME")?;
    let suite = format!("{codename}-backports");
    let (mirror, _) = kernels::system_mirrors()?;
    let dir = cache_dir()?.join("apt-setup");
    let parts = dir.join("sources");
    if parts.exists() {
        std::fs::remove_dir_all(&parts).with_context(|| format!("clearing {}", parts.display()))?;
    }
    for sub in ["sources", "lists/partial"] {
        let d = dir.join(sub);
        std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
    }
    // The system's own source parts, as they are, beside the backports.
    if let Ok(entries) = std::fs::read_dir("/etc/apt/sources.list.d") {
        for e in entries.filter_map(|e| e.ok()) {
            let name = e.file_name();
            let keep = name
                .to_str()
                .is_some_and(|n| n.ends_with(".sources") || n.ends_with(".list"));
            if keep {
                std::os::unix::fs::symlink(e.path(), parts.join(&name))
                    .with_context(|| format!("linking {}", e.path().display()))?;
            }
        }
    }
    std::fs::write(
        parts.join("acelogic-backports.sources"),
        format!(
            "Types: deb\nURIs: {mirror}\nSuites: {suite}\nComponents: main\nSigned-By: {}\n",
            kernels::KEYRING
        ),
    )
    .context("writing the backports source")?;
    println!(
        "setup: qemu-utils {} is a backport: QEMU comes from {suite} (private apt lists in {})",
        package_version("qemu-utils"),
        dir.display()
    );
    let apt = |tool: &str| {
        let mut cmd = Command::new(tool);
        cmd.args(["-o", &format!("Dir::Etc::SourceParts={}", parts.display())])
            .args(["-o", &format!("Dir::State::Lists={}/lists", dir.display())])
            // Lists live under root's home, which apt's `_apt` user cannot write.
            .args(["-o", "APT::Sandbox::User=root"]);
        cmd
    };
    run(
        apt("apt-get").args(["-q", "update"]),
        &format!("check that {mirror} serves {suite}"),
    )?;
    let mut install = apt("apt-get");
    install.args(["-t", &suite]);
    Ok(Some(install))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn llvm_major_from_file_name() {
        assert_eq!(llvm_major("libLLVM.so.22.1-rust-1.97.0-nightly"), Some(22));
        assert_eq!(llvm_major("libLLVM-22.so"), None);
    }
}
