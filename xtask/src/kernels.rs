//! The VM kernel matrix: Debian cloud kernels resolved at run time from the
//! Debian mirror the system already uses, downloaded with `apt-get download`
//! through a private apt configuration, cached per package version.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result, bail};

use crate::util::{cache_dir, capture, is_root};

/// One kernel of the matrix.
#[derive(Debug, Clone)]
pub(crate) struct Kernel {
    /// The kernel release, as `uname -r` prints it in the guest.
    pub(crate) label: String,
    pub(crate) vmlinuz: PathBuf,
    /// [`GUEST_MODULES`] and what they depend on, uncompressed, in load
    /// order (dependencies first): `NN-<name>.ko` files.
    pub(crate) modules: Vec<PathBuf>,
}

/// Modules the guest loads at boot: overlayfs, for the container-root
/// cases (a module on Debian's cloud kernels, as on most distributions').
const GUEST_MODULES: &[&str] = &["overlay"];

/// The cache entry's directory of extracted modules (written whole, then
/// renamed, so its presence means complete).
const MODULES_DIR: &str = "modules";

impl Kernel {
    /// The cached kernel in `dir`, when its entry is complete: the image
    /// and the extracted modules (an entry from before modules were
    /// extracted is downloaded again).
    fn at(dir: &Path, label: String) -> Option<Self> {
        let vmlinuz = dir.join("vmlinuz");
        let listing = std::fs::read_dir(dir.join(MODULES_DIR)).ok()?;
        let mut modules: Vec<PathBuf> = listing
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "ko"))
            .collect();
        modules.sort();
        vmlinuz.is_file().then_some(Self {
            label,
            vmlinuz,
            modules,
        })
    }
}

/// A kernel line of the matrix: which suite, which package names.
struct Flavour {
    suite: &'static str,
    /// Whether `<suite>-security` is searched too: off for a release's
    /// point-release kernel as its main archive ships it.
    security: bool,
    /// Package name with `{n}` for the numbers that change (digits and
    /// dots: `7.{n}` is any 7.x.y).
    pattern: &'static str,
    layout: Layout,
}

/// Where a kernel package keeps its image.
#[derive(Clone, Copy)]
enum Layout {
    /// `boot/vmlinuz-<release>` (and `boot/config-<release>`).
    Boot,
    /// `usr/lib/modules/<release>/vmlinuz`: Debian's packaging from 7.0,
    /// where `linux-binary-*` holds the image and no `-unsigned` image
    /// package exists.
    Modules,
}

/// Oldest first. Debian 12's 6.1 twice, as its point release ships it and
/// with the security updates (the two differ in what the verifier
/// accepts); Debian 13's 6.12; its backports' 6.18 (the current long-term
/// line) and the newest 7.x they carry. Debian 11's 5.10 is not a line:
/// the programs do not load there (see the README's "Running on a node").
const MATRIX: [Flavour; 5] = [
    Flavour {
        suite: "bookworm",
        security: false,
        pattern: "linux-image-6.1.0-{n}-cloud-amd64-unsigned",
        layout: Layout::Boot,
    },
    Flavour {
        suite: "bookworm",
        security: true,
        pattern: "linux-image-6.1.0-{n}-cloud-amd64-unsigned",
        layout: Layout::Boot,
    },
    Flavour {
        suite: "trixie",
        security: true,
        pattern: "linux-image-6.12.{n}+deb13-cloud-amd64-unsigned",
        layout: Layout::Boot,
    },
    Flavour {
        suite: "trixie-backports",
        security: false,
        pattern: "linux-image-6.18.{n}+deb13-cloud-amd64",
        layout: Layout::Boot,
    },
    Flavour {
        suite: "trixie-backports",
        security: false,
        pattern: "linux-binary-7.{n}+deb13-cloud-amd64",
        layout: Layout::Modules,
    },
];

pub(crate) const KEYRING: &str = "/usr/share/keyrings/debian-archive-keyring.gpg";
/// How many packages of a line, newest first, a download is tried with.
const DOWNLOAD_TRIES: usize = 4;
const LISTS_MAX_AGE: Duration = Duration::from_secs(24 * 3600);

impl Flavour {
    /// The line's private apt directory: one per suite and archive set.
    fn apt_dir(&self) -> String {
        let only_main = if self.security { "" } else { "-main" };
        format!("apt-{}{only_main}", self.suite)
    }

    fn parts(&self) -> (&'static str, &'static str) {
        self.pattern.split_once("{n}").unwrap_or((self.pattern, ""))
    }

    fn matches(&self, name: &str) -> bool {
        let (pre, post) = self.parts();
        name.strip_prefix(pre)
            .and_then(|r| r.strip_suffix(post))
            .is_some_and(|n| {
                n.bytes().next().is_some_and(|b| b.is_ascii_digit())
                    && n.bytes().all(|b| b.is_ascii_digit() || b == b'.')
            })
    }

    /// A POSIX regex for `apt-cache search --names-only`.
    fn regex(&self) -> String {
        let escape = |s: &str| s.replace('.', r"\.").replace('+', r"\+");
        let (pre, post) = self.parts();
        format!("^{}[0-9][0-9.]*{}$", escape(pre), escape(post))
    }
}

/// `linux-image-6.1.0-56-cloud-amd64-unsigned` → `6.1.0-56-cloud-amd64`,
/// `linux-binary-7.3.4+deb13-cloud-amd64` → `7.3.4+deb13-cloud-amd64`.
fn label_of(package: &str) -> String {
    let s = package
        .strip_prefix("linux-image-")
        .or_else(|| package.strip_prefix("linux-binary-"))
        .unwrap_or(package);
    s.strip_suffix("-unsigned").unwrap_or(s).to_owned()
}

/// Orders package names and versions by their numbers.
fn version_key(s: &str) -> Vec<u64> {
    s.split(|c: char| !c.is_ascii_digit())
        .filter_map(|n| n.parse().ok())
        .collect()
}

/// The Debian mirror URIs the system uses: (main archive, security archive).
pub(crate) fn system_mirrors() -> Result<(String, Option<String>)> {
    let mut entries: Vec<(String, String)> = Vec::new(); // (uri, suite)
    let mut files = vec![PathBuf::from("/etc/apt/sources.list")];
    if let Ok(dir) = std::fs::read_dir("/etc/apt/sources.list.d") {
        let mut more: Vec<PathBuf> = dir.filter_map(|e| e.ok().map(|e| e.path())).collect();
        more.sort();
        files.extend(more);
    }
    for file in files {
        let Ok(text) = std::fs::read_to_string(&file) else {
            continue;
        };
        match file.extension().and_then(|e| e.to_str()) {
            Some("sources") => entries.extend(parse_deb822(&text)),
            _ if file.ends_with("sources.list")
                || file.extension().is_some_and(|e| e == "list") =>
            {
                entries.extend(parse_one_line(&text));
            }
            _ => {}
        }
    }
    let is_security = |suite: &str| suite.ends_with("-security") || suite.ends_with("/updates");
    let main = entries
        .iter()
        .find(|(_, s)| !is_security(s))
        .map(|(u, _)| u.clone());
    let security = entries
        .iter()
        .find(|(_, s)| is_security(s))
        .map(|(u, _)| u.clone());
    let Some(main) = main else {
        bail!(
            "found no Debian mirror (a `deb` entry) in /etc/apt/sources.list or \
             /etc/apt/sources.list.d/; add the system's Debian sources so kernels can be downloaded"
        );
    };
    Ok((main, security))
}

/// (uri, suite) pairs of the `deb` entries of a deb822 `.sources` file.
fn parse_deb822(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for stanza in text.split("\n\n") {
        let mut fields: Vec<(String, String)> = Vec::new();
        for line in stanza.lines() {
            if line.starts_with('#') || line.trim().is_empty() {
                continue;
            }
            if line.starts_with([' ', '\t']) {
                if let Some(last) = fields.last_mut() {
                    last.1.push(' ');
                    last.1.push_str(line.trim());
                }
            } else if let Some((k, v)) = line.split_once(':') {
                fields.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
            }
        }
        let get = |k: &str| fields.iter().find(|(f, _)| f == k).map(|(_, v)| v.as_str());
        let is_deb = get("types").is_some_and(|t| t.split_whitespace().any(|t| t == "deb"));
        if !is_deb || get("enabled").is_some_and(|e| e.eq_ignore_ascii_case("no")) {
            continue;
        }
        let (Some(uris), Some(suites)) = (get("uris"), get("suites")) else {
            continue;
        };
        for uri in uris.split_whitespace() {
            for suite in suites.split_whitespace() {
                out.push((uri.to_owned(), suite.to_owned()));
            }
        }
    }
    out
}

/// (uri, suite) pairs of the `deb` lines of a one-line-style sources file.
fn parse_one_line(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let Some(rest) = line.strip_prefix("deb ") else {
            continue;
        };
        let rest = rest.trim_start();
        let rest = match rest.strip_prefix('[') {
            Some(r) => r.split_once(']').map_or("", |(_, r)| r),
            None => rest,
        };
        let mut words = rest.split_whitespace();
        if let (Some(uri), Some(suite)) = (words.next(), words.next()) {
            out.push((uri.to_owned(), suite.to_owned()));
        }
    }
    out
}

/// A private apt configuration for one suite: its own sources, lists and
/// cache under `~/.cache/acelogic/apt-<suite>/`; the system's are untouched.
struct Apt {
    dir: PathBuf,
    suite: &'static str,
}

impl Apt {
    fn command(&self, tool: &str) -> Command {
        let mut cmd = Command::new(tool);
        let d = self.dir.display();
        cmd.args(["-o", "Dir::Etc::SourceList=/dev/null"])
            .args(["-o", &format!("Dir::Etc::SourceParts={d}/sources")])
            .args(["-o", &format!("Dir::State::Lists={d}/lists")])
            .args(["-o", &format!("Dir::Cache={d}/cache")])
            // Some images turn apt's binary caches off; they make look-ups ~10x faster.
            .args(["-o", "Dir::Cache::pkgcache=pkgcache.bin"])
            .args(["-o", "Dir::Cache::srcpkgcache=srcpkgcache.bin"]);
        if is_root() {
            // Files live under root's home, which apt's `_apt` user cannot write.
            cmd.args(["-o", "APT::Sandbox::User=root"]);
        }
        cmd
    }

    /// Writes the sources file and refreshes the lists at most once a day.
    /// An error means no lists could be had at all.
    fn refresh(&self, main: &str, security: Option<&str>) -> Result<()> {
        for sub in ["sources", "lists/partial", "cache/archives/partial"] {
            let d = self.dir.join(sub);
            std::fs::create_dir_all(&d).with_context(|| format!("creating {}", d.display()))?;
        }
        let suite = self.suite;
        let mut sources = format!(
            "Types: deb\nURIs: {main}\nSuites: {suite}\nComponents: main\nSigned-By: {KEYRING}\n"
        );
        if let Some(sec) = security {
            sources.push_str(&format!(
                "\nTypes: deb\nURIs: {sec}\nSuites: {suite}-security\nComponents: main\nSigned-By: {KEYRING}\n"
            ));
        }
        let file = self.dir.join("sources/acelogic.sources");
        let changed = std::fs::read_to_string(&file).ok().as_deref() != Some(sources.as_str());
        if changed {
            std::fs::write(&file, &sources)
                .with_context(|| format!("writing {}", file.display()))?;
        }
        let stamp = self.dir.join("lists/.acelogic-updated");
        let age = std::fs::metadata(&stamp)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| SystemTime::now().duration_since(t).ok());
        if let (false, Some(age)) = (changed, age)
            && age < LISTS_MAX_AGE
        {
            println!(
                "setup: apt lists for {suite}: already fresh (updated {} h ago)",
                age.as_secs() / 3600
            );
            return Ok(());
        }
        println!(
            "setup: apt lists for {suite}: refreshing (private apt config in {})",
            self.dir.display()
        );
        let updated = capture(
            self.command("apt-get")
                .args(["-q", "-o", "APT::Update::Error-Mode=any", "update"]),
            &format!("check that {main} is reachable"),
        );
        match (updated, age) {
            (Ok(_), _) => {
                std::fs::write(&stamp, b"").with_context(|| format!("writing {}", stamp.display()))
            }
            (Err(err), Some(_)) => {
                println!(
                    "setup: warning: refreshing the {suite} lists failed, using the old ones ({})",
                    gist(&err)
                );
                Ok(())
            }
            (Err(err), None) => Err(err),
        }
    }

    /// The packages of `flavour`, newest first.
    fn resolve(&self, flavour: &Flavour) -> Result<Vec<String>> {
        let found = capture(
            self.command("apt-cache")
                .args(["search", "--names-only", &flavour.regex()]),
            "delete the apt-<suite> directory in ~/.cache/acelogic and run `cargo xtask setup` again",
        )?;
        let mut names: Vec<String> = found
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|n| flavour.matches(n))
            .map(str::to_owned)
            .collect();
        if names.is_empty() {
            bail!("no package like {} in {}", flavour.pattern, self.suite);
        }
        names.sort_by_key(|n| std::cmp::Reverse(version_key(n)));
        Ok(names)
    }

    /// Downloads `package=version` and extracts its vmlinuz into `dest`.
    fn download(&self, package: &str, version: &str, layout: Layout, dest: &Path) -> Result<()> {
        let parent = dest.parent().context("kernel cache dir has no parent")?;
        let work = parent.join(format!(".download-{}", std::process::id()));
        if work.exists() {
            std::fs::remove_dir_all(&work).ok();
        }
        std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
        let result = self.download_in(package, version, layout, dest, &work);
        std::fs::remove_dir_all(&work).ok();
        result
    }

    /// Downloads `package=version` into `work` and unpacks it into `root`.
    fn unpack(&self, package: &str, version: &str, work: &Path, root: &Path) -> Result<()> {
        let debs = work.join(format!("{package}.debs"));
        std::fs::create_dir_all(&debs).with_context(|| format!("creating {}", debs.display()))?;
        capture(
            self.command("apt-get").current_dir(&debs).args([
                "-q",
                "download",
                &format!("{package}={version}"),
            ]),
            "the mirror may have dropped this version; delete ~/.cache/acelogic/apt-* to force \
             fresh lists, or check network access to the Debian mirror",
        )?;
        let deb = find_file(&debs, |n| n.ends_with(".deb"))?
            .with_context(|| format!("`apt-get download {package}` produced no .deb"))?;
        capture(
            Command::new("dpkg-deb").arg("-x").arg(&deb).arg(root),
            "the downloaded package may be corrupt; run `cargo xtask setup` again",
        )?;
        Ok(())
    }

    fn download_in(
        &self,
        package: &str,
        version: &str,
        layout: Layout,
        dest: &Path,
        work: &Path,
    ) -> Result<()> {
        let root = work.join("x");
        self.unpack(package, version, work, &root)?;
        if let Layout::Modules = layout {
            // From 7.0 the modules are a package of their own.
            let modules = package.replacen("linux-binary-", "linux-modules-", 1);
            self.unpack(&modules, version, work, &root)?;
        }
        let release = [root.join("usr/lib/modules"), root.join("lib/modules")]
            .into_iter()
            .filter(|d| d.is_dir())
            .find_map(|d| find_file(&d, |_| true).ok().flatten())
            .with_context(|| format!("{package} contains no lib/modules/<release>"))?;
        let modules = dest.join(MODULES_DIR);
        let modules_part = dest.join(format!("{MODULES_DIR}.part"));
        if modules_part.exists() {
            std::fs::remove_dir_all(&modules_part)
                .with_context(|| format!("removing {}", modules_part.display()))?;
        }
        std::fs::create_dir_all(&modules_part)
            .with_context(|| format!("creating {}", modules_part.display()))?;
        extract_modules(&release, GUEST_MODULES, &modules_part)?;
        let (vmlinuz, config) = match layout {
            Layout::Boot => {
                let boot = root.join("boot");
                let vmlinuz = find_file(&boot, |n| n.starts_with("vmlinuz-"))?
                    .with_context(|| format!("{package} contains no boot/vmlinuz-*"))?;
                (vmlinuz, find_file(&boot, |n| n.starts_with("config-"))?)
            }
            Layout::Modules => {
                let vmlinuz = release.join("vmlinuz");
                if !vmlinuz.is_file() {
                    bail!("{package} contains no {}", vmlinuz.display());
                }
                (vmlinuz, None)
            }
        };
        std::fs::create_dir_all(dest).with_context(|| format!("creating {}", dest.display()))?;
        if let Some(config) = config {
            std::fs::copy(&config, dest.join("config")).context("copying the kernel config")?;
        }
        let part = dest.join("vmlinuz.part");
        std::fs::copy(&vmlinuz, &part).with_context(|| format!("copying {}", vmlinuz.display()))?;
        std::fs::rename(&part, dest.join("vmlinuz")).context("renaming vmlinuz.part")?;
        if modules.exists() {
            std::fs::remove_dir_all(&modules)
                .with_context(|| format!("removing {}", modules.display()))?;
        }
        std::fs::rename(&modules_part, &modules).context("renaming modules.part")?;
        Ok(())
    }
}

/// Copies the modules `names` and, first, what each depends on (its
/// `.modinfo` `depends=`), from the package's `lib/modules/<release>` into
/// `dest` as uncompressed `NN-<name>.ko`, numbered in load order.
fn extract_modules(release: &Path, names: &[&str], dest: &Path) -> Result<()> {
    let mut files = Vec::new();
    walk_files(release, &mut files)?;
    // A module built into the image needs no loading.
    let builtin = std::fs::read_to_string(release.join("modules.builtin")).unwrap_or_default();
    let is_builtin = |name: &str| {
        builtin
            .lines()
            .any(|l| l.rsplit('/').next() == Some(&format!("{name}.ko")))
    };
    let mut loaded: Vec<String> = Vec::new();
    let mut pending: Vec<(String, bool)> = names
        .iter()
        .rev()
        .map(|n| ((*n).to_owned(), false))
        .collect();
    while let Some((name, expanded)) = pending.pop() {
        if loaded.contains(&name) || is_builtin(&name) {
            continue;
        }
        let bytes = module_bytes(&files, &name)?;
        if !expanded {
            let deps = module_depends(&bytes);
            let todo: Vec<String> = deps.into_iter().filter(|d| !loaded.contains(d)).collect();
            if !todo.is_empty() {
                pending.push((name, true));
                pending.extend(todo.into_iter().rev().map(|d| (d, false)));
                continue;
            }
        }
        let file = dest.join(format!("{:02}-{name}.ko", loaded.len()));
        std::fs::write(&file, &bytes).with_context(|| format!("writing {}", file.display()))?;
        loaded.push(name);
    }
    Ok(())
}

fn walk_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    for e in std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = e?.path();
        if path.is_dir() {
            walk_files(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

/// The uncompressed image of module `name` (`name.ko`, `.ko.xz` or
/// `.ko.zst`; `-` and `_` are the same in module names).
fn module_bytes(files: &[PathBuf], name: &str) -> Result<Vec<u8>> {
    let norm = |s: &str| s.replace('-', "_");
    let want = norm(name);
    let found = files.iter().find_map(|p| {
        let file = p.file_name()?.to_str()?;
        let (stem, kind) = [
            (".ko", None),
            (".ko.xz", Some("xz")),
            (".ko.zst", Some("zstd")),
        ]
        .into_iter()
        .find_map(|(ext, tool)| file.strip_suffix(ext).map(|s| (s, tool)))?;
        (norm(stem) == want).then_some((p, kind))
    });
    let (path, tool) = found.with_context(|| format!("the kernel package has no module {name}"))?;
    match tool {
        None => std::fs::read(path).with_context(|| format!("reading {}", path.display())),
        Some(tool) => {
            let out = Command::new(tool)
                .args(["-dc"])
                .arg(path)
                .output()
                .with_context(|| format!("running {tool}; install it (`cargo xtask setup`)"))?;
            if !out.status.success() {
                bail!(
                    "{tool} -dc {}: {}",
                    path.display(),
                    String::from_utf8_lossy(&out.stderr).trim()
                );
            }
            Ok(out.stdout)
        }
    }
}

/// The `depends=` list of a module image's `.modinfo` strings.
fn module_depends(image: &[u8]) -> Vec<String> {
    const KEY: &[u8] = b"depends=";
    image
        .split(|&b| b == 0)
        .find_map(|s| s.strip_prefix(KEY))
        .map(|list| {
            String::from_utf8_lossy(list)
                .split(',')
                .filter(|d| !d.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

impl Apt {
    /// The candidate version of `package`.
    fn candidate(&self, package: &str) -> Result<String> {
        let shown = capture(
            self.command("apt-cache")
                .args(["show", "--no-all-versions", package]),
            "delete the apt-<suite> directory in ~/.cache/acelogic and run `cargo xtask setup` again",
        )?;
        Ok(shown
            .lines()
            .find_map(|l| l.strip_prefix("Version: "))
            .with_context(|| format!("`apt-cache show {package}` printed no Version"))?
            .trim()
            .to_owned())
    }

    /// Downloads `package=version` and extracts the whole package into
    /// `dest` (created only when complete).
    fn extract(&self, package: &str, version: &str, dest: &Path) -> Result<()> {
        let parent = dest.parent().context("package cache dir has no parent")?;
        let work = parent.join(format!(".download-{}", std::process::id()));
        std::fs::remove_dir_all(&work).ok();
        std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
        let result = (|| {
            capture(
                self.command("apt-get").current_dir(&work).args([
                    "-q",
                    "download",
                    &format!("{package}={version}"),
                ]),
                "check network access to the Debian mirror, or delete ~/.cache/acelogic/apt-* \
                 to force fresh lists",
            )?;
            let deb = find_file(&work, |n| n.ends_with(".deb"))?
                .with_context(|| format!("`apt-get download {package}` produced no .deb"))?;
            let root = work.join("x");
            capture(
                Command::new("dpkg-deb").arg("-x").arg(&deb).arg(&root),
                "the downloaded package may be corrupt; try again",
            )?;
            std::fs::rename(&root, dest)
                .with_context(|| format!("moving the extracted {package} to {}", dest.display()))
        })();
        std::fs::remove_dir_all(&work).ok();
        result
    }
}

/// The Debian release whose packages run on this host's libraries (Debian
/// 12): binaries taken from it are shipped into the guest with the host's
/// shared libraries, like every other guest binary.
const HOST_SUITE: &str = "bookworm";

/// The newest `package` of the host's Debian release, extracted (not
/// installed) under `~/.cache/acelogic/debs/<package>_<version>/`; returns
/// that directory. Cached per version; offline, the newest cached copy.
pub(crate) fn host_package(package: &str) -> Result<PathBuf> {
    let debs = cache_dir()?.join("debs");
    std::fs::create_dir_all(&debs).with_context(|| format!("creating {}", debs.display()))?;
    let apt = Apt {
        dir: cache_dir()?.join(format!("apt-{HOST_SUITE}")),
        suite: HOST_SUITE,
    };
    let fetched = system_mirrors().and_then(|(main, security)| {
        apt.refresh(&main, security.as_deref())?;
        let version = apt.candidate(package)?;
        let dir = debs.join(format!("{package}_{version}"));
        if dir.is_dir() {
            println!("setup: {package} {version}: already cached");
        } else {
            println!("setup: {package} {version}: downloading (extracted, not installed)");
            apt.extract(package, &version, &dir)?;
        }
        Ok(dir)
    });
    fetched.or_else(|err| {
        let prefix = format!("{package}_");
        let cached = std::fs::read_dir(&debs)
            .ok()
            .into_iter()
            .flatten()
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&prefix))
            })
            .max_by_key(|p| version_key(&p.to_string_lossy()));
        match cached {
            Some(dir) => {
                println!(
                    "setup: warning: could not fetch {package} ({}); using {}",
                    gist(&err),
                    dir.display()
                );
                Ok(dir)
            }
            None => Err(err.context(format!(
                "the Debian package {package} could not be downloaded and none is cached"
            ))),
        }
    })
}

fn find_file(dir: &Path, want: impl Fn(&str) -> bool) -> Result<Option<PathBuf>> {
    let entries = std::fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))?;
    Ok(entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(&want)))
}

/// The newest cached kernel of `flavour`, for working offline.
fn cached(kernels: &Path, flavour: &Flavour) -> Option<Kernel> {
    let entries = std::fs::read_dir(kernels).ok()?;
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let (package, version) = name.split_once('_')?;
            if !flavour.matches(package) {
                return None;
            }
            let kernel = Kernel::at(&e.path(), label_of(package))?;
            Some(((version_key(package), version_key(version)), kernel))
        })
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, kernel)| kernel)
}

/// The most telling line of a failed apt command, for one-line warnings.
fn gist(err: &anyhow::Error) -> String {
    let text = format!("{err:#}");
    let line = text
        .lines()
        .find(|l| l.starts_with("E: "))
        .or_else(|| text.lines().next())
        .unwrap_or_default();
    line.trim_start_matches("E: ").to_owned()
}

fn ensure(flavour: &Flavour, kernels: &Path, main: &str, security: Option<&str>) -> Result<Kernel> {
    let apt = Apt {
        dir: cache_dir()?.join(flavour.apt_dir()),
        suite: flavour.suite,
    };
    let security = security.filter(|_| flavour.security);
    let fetched = apt.refresh(main, security).and_then(|()| {
        let mut last = None;
        // A mirror's index can list a package its pool no longer (or not
        // yet) serves: then the next newest, said aloud.
        for package in apt.resolve(flavour)?.into_iter().take(DOWNLOAD_TRIES) {
            let version = apt.candidate(&package)?;
            let label = label_of(&package);
            let dir = kernels.join(format!("{package}_{version}"));
            if let Some(kernel) = Kernel::at(&dir, label.clone()) {
                println!("setup: kernel {label} ({version}): already cached");
                return Ok(kernel);
            }
            println!("setup: kernel {label} ({version}): downloading {package}");
            let got = apt
                .download(&package, &version, flavour.layout, &dir)
                .and_then(|()| {
                    Kernel::at(&dir, label.clone())
                        .with_context(|| format!("{} is incomplete", dir.display()))
                });
            match got {
                Ok(kernel) => return Ok(kernel),
                Err(err) => {
                    println!(
                        "setup: warning: {package} {version} could not be downloaded ({}); trying \
                         the next newest",
                        gist(&err)
                    );
                    last = Some(err);
                }
            }
        }
        Err(last.unwrap_or_else(|| anyhow::anyhow!("no package like {}", flavour.pattern)))
    });
    match fetched {
        Ok(kernel) => Ok(kernel),
        Err(err) => match cached(kernels, flavour) {
            Some(kernel) => {
                println!(
                    "setup: warning: could not resolve or download the newest {} ({})",
                    flavour.pattern,
                    gist(&err)
                );
                println!("setup: kernel {}: using the cached copy", kernel.label);
                Ok(kernel)
            }
            None => Err(err.context(format!(
                "no {} kernel ({} from {}) could be downloaded and none is cached; check network \
                 access to {main}, then run `cargo xtask setup` again",
                flavour.suite, flavour.pattern, flavour.suite
            ))),
        },
    }
}

/// Makes sure every kernel of the matrix is downloaded; oldest first. Two
/// lines that resolve to the same kernel (a point release that ships the
/// security archive's newest) count once.
pub(crate) fn ensure_matrix() -> Result<Vec<Kernel>> {
    let (main, security) = system_mirrors()?;
    let kernels = cache_dir()?.join("kernels");
    std::fs::create_dir_all(&kernels).with_context(|| format!("creating {}", kernels.display()))?;
    let mut matrix: Vec<Kernel> = Vec::with_capacity(MATRIX.len());
    for flavour in &MATRIX {
        let kernel = ensure(flavour, &kernels, &main, security.as_deref())?;
        if !matrix.iter().any(|k| k.label == kernel.label) {
            matrix.push(kernel);
        }
    }
    Ok(matrix)
}

/// Whether `filter` occurs in `label` not inside a longer number, so that
/// `6.1` picks `6.1.0-56-cloud-amd64` but not `6.12.117+deb13-cloud-amd64`.
fn label_matches(label: &str, filter: &str) -> bool {
    let digit_at = |i: usize| label.as_bytes().get(i).is_some_and(u8::is_ascii_digit);
    let starts_digit = filter.as_bytes().first().is_some_and(u8::is_ascii_digit);
    let ends_digit = filter.as_bytes().last().is_some_and(u8::is_ascii_digit);
    label.match_indices(filter).any(|(i, m)| {
        let glued_before = starts_digit && i > 0 && digit_at(i - 1);
        let glued_after = ends_digit && digit_at(i + m.len());
        !glued_before && !glued_after
    })
}

/// The kernels whose label contains `filter` (see [`label_matches`]) (all if `None`), oldest first.
pub(crate) fn select(mut kernels: Vec<Kernel>, filter: Option<&str>) -> Result<Vec<Kernel>> {
    kernels.sort_by_key(|k| version_key(&k.label));
    let Some(filter) = filter else {
        return Ok(kernels);
    };
    let labels: Vec<String> = kernels.iter().map(|k| k.label.clone()).collect();
    let chosen: Vec<Kernel> = kernels
        .into_iter()
        .filter(|k| label_matches(&k.label, filter))
        .collect();
    if chosen.is_empty() {
        bail!(
            "no kernel label contains `{filter}`; the matrix is: {}",
            labels.join(", ")
        );
    }
    Ok(chosen)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_module_dependencies() {
        let image = b"\x7fELF\0license=GPL\0depends=exportfs,fuse\0vermagic=6.1\0";
        assert_eq!(module_depends(image), ["exportfs", "fuse"]);
        assert!(module_depends(b"\0license=GPL\0depends=\0").is_empty());
        assert!(module_depends(b"no modinfo here").is_empty());
    }

    #[test]
    fn flavours_match_names() {
        let line = |id: &str| {
            let (suite, version) = id.rsplit_once(' ').unwrap();
            MATRIX
                .iter()
                .find(|f| f.suite == suite && f.pattern.contains(version))
                .unwrap()
        };
        assert!(line("bookworm 6.1.0").matches("linux-image-6.1.0-56-cloud-amd64-unsigned"));
        assert!(!line("bookworm 6.1.0").matches("linux-image-6.1.0-56-cloud-amd64"));
        assert!(line("trixie 6.12").matches("linux-image-6.12.107+deb13-cloud-amd64-unsigned"));
        assert_eq!(
            line("trixie 6.12").regex(),
            r"^linux-image-6\.12\.[0-9][0-9.]*\+deb13-cloud-amd64-unsigned$"
        );
        let seven = line("trixie-backports -7.");
        assert!(seven.matches("linux-binary-7.3.4+deb13-cloud-amd64"));
        assert!(!seven.matches("linux-binary-unsigned-7.3.4+deb13-cloud-amd64"));
        assert!(!seven.matches("linux-binary-7.+deb13-cloud-amd64"));
        assert!(
            !line("trixie-backports 6.18").matches("linux-image-6.18.15+deb13-cloud-amd64-dbg")
        );
        assert_eq!(
            label_of("linux-binary-7.3.4+deb13-cloud-amd64"),
            "7.3.4+deb13-cloud-amd64"
        );
        assert!(version_key("7.2.12+deb13") < version_key("7.3.4+deb13"));
        assert_eq!(
            label_of("linux-image-6.1.0-56-cloud-amd64-unsigned"),
            "6.1.0-56-cloud-amd64"
        );
        assert!(version_key("6.1.0-9-x") < version_key("6.1.0-56-x"));
        assert!(label_matches("6.1.0-56-cloud-amd64", "6.1"));
        assert!(!label_matches("6.12.117+deb13-cloud-amd64", "6.1"));
        assert!(label_matches("6.12.117+deb13-cloud-amd64", "6.12"));
        assert!(label_matches("6.12.117+deb13-cloud-amd64", "cloud"));
        assert!(!label_matches("6.12.117+deb13-cloud-amd64", "11"));
    }

    #[test]
    fn parses_sources() {
        let deb822 = "Types: deb\n# c\nURIs: http://m.example/debian\nSuites: bookworm bookworm-updates\n\
                      Components: main\n\nTypes: deb\nURIs: http://m.example/debian-security\n\
                      Suites: bookworm-security\nComponents: main\n";
        let e = parse_deb822(deb822);
        assert_eq!(e[0], ("http://m.example/debian".into(), "bookworm".into()));
        assert_eq!(
            e[2],
            (
                "http://m.example/debian-security".into(),
                "bookworm-security".into()
            )
        );
        let one = "deb [arch=amd64] http://m.example/debian bookworm main\n# deb http://x y z\n";
        assert_eq!(
            parse_one_line(one),
            [("http://m.example/debian".into(), "bookworm".into())]
        );
    }
}
