//! The kernel half of ACELOGIC as seen from userspace: load (or adopt) the
//! BPF object, attach its programs, and the API the daemon drives it with:
//! scopes (`scopes.rs`), baselines and grants (`rules.rs`), records and
//! counters. Pinned state under a bpffs directory (`pins.rs`) keeps
//! enforcement alive when the loader exits. Node checks (`check.rs`) say
//! whether this kernel can enforce at all.
//!
//! This is the only crate that builds the BPF object (`build.rs`, aya-build
//! with the nightly toolchain and bpf-linker) and embeds it; nothing above
//! it needs the BPF toolchain to build.

pub mod baseline;
pub mod btf;
pub mod check;
pub mod compat;
pub mod object;
pub mod offsets;
mod pins;
mod program_stats;
mod records;
pub mod rules;
pub mod scopes;

use std::{
    io,
    os::{
        fd::{AsFd as _, OwnedFd},
        unix::fs::MetadataExt as _,
    },
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
};

use acelogic_common::{codes::counter, names};
use aya::{
    Ebpf, EbpfLoader,
    maps::{Map, MapData, PerCpuArray},
    programs::{
        BtfTracePoint, Lsm,
        links::{FdLink, PinnedLink},
    },
};
use compat::{Attach, ProgramSpec};
pub use pins::{DEFAULT_PIN_DIR, Uninstalled, uninstall};
pub use program_stats::{ProgramStats, RunTimeStats};
pub use records::{Batch, CommitError, RawRecord, Records};

/// Errors of the kernel module, each naming the object involved.
#[derive(Debug, thiserror::Error)]
pub enum KernelError {
    #[error("loading the BPF object: {0}")]
    Object(#[source] Box<aya::EbpfError>),
    #[error("the BPF object has no {what} `{name}` (build mismatch)")]
    Missing {
        what: &'static str,
        name: &'static str,
    },
    #[error("reading kernel BTF from /sys/kernel/btf/vmlinux: {0}")]
    Btf(#[source] aya::BtfError),
    #[error(transparent)]
    KernelBtf(#[from] btf::BtfError),
    #[error(transparent)]
    Offsets(#[from] offsets::OffsetError),
    #[error(transparent)]
    HookChanged(#[from] compat::HookChanged),
    #[error("loading program `{program}` into the kernel: {source}")]
    Load {
        program: &'static str,
        #[source]
        source: aya::programs::ProgramError,
    },
    #[error("attaching program `{program}`: failure injected by a test")]
    Injected { program: &'static str },
    #[error("attaching program `{program}`: {source}")]
    Attach {
        program: &'static str,
        #[source]
        source: aya::programs::ProgramError,
    },
    #[error("map `{map}`: {source}")]
    Map {
        map: &'static str,
        #[source]
        source: aya::maps::MapError,
    },
    #[error("pinning `{name}` at {path}: {source}")]
    Pin {
        name: &'static str,
        path: PathBuf,
        #[source]
        source: aya::pin::PinError,
    },
    #[error("reading the kernel's counts of program `{program}`: {source}")]
    ProgramStats {
        program: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("pinned state at {path}: {why}")]
    Pinned { path: PathBuf, why: String },
    #[error("{path} is not a cgroup v2 directory: {why}")]
    NotCgroup { path: PathBuf, why: String },
    #[error(transparent)]
    Scope(#[from] scopes::ScopeError),
    #[error(transparent)]
    Rule(#[from] rules::RuleError),
    #[error("ring buffer `{map}`: {what}: {source}", map = names::MAP_EVENTS)]
    Ring {
        what: &'static str,
        #[source]
        source: io::Error,
    },
}

impl KernelError {
    const fn missing_map(name: &'static str) -> Self {
        Self::Missing { what: "map", name }
    }

    /// Wraps a map operation's error with the map's name.
    fn on_map(map: &'static str) -> impl Fn(aya::maps::MapError) -> Self {
        move |source| Self::Map { map, source }
    }

    /// The OS error behind a failed program load, if any: `EPERM` from
    /// `BPF_PROG_LOAD` is how a kernel without usable BPF LSM answers.
    #[must_use]
    pub fn load_errno(&self) -> Option<i32> {
        match self {
            Self::Load {
                source: aya::programs::ProgramError::LoadError { io_error, .. },
                ..
            } => io_error.raw_os_error(),
            _ => None,
        }
    }
}

/// Counters summed over all CPUs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    pub denied: u64,
    pub allowed: u64,
    pub record_unavailable: u64,
    pub lineage_lost: u64,
    /// Lifecycle records the kernel skipped because their recorder was
    /// already running on the CPU (preempted there, from 7.0 on; see the
    /// `program_stats` module): the recorders' `recursion_misses`.
    pub lineage_missed: u64,
    pub audited: u64,
}

impl Counters {
    /// Lifecycle records that were never made, for any reason.
    #[must_use]
    pub fn lineage_unrecorded(&self) -> u64 {
        self.lineage_lost + self.lineage_missed
    }
}

/// Load-time settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Size of the record ring buffer in bytes (a power of two, at least a
    /// page); `None` keeps the object's 4 MiB. Ignored for a ring buffer
    /// adopted from pinned state.
    pub ring_bytes: Option<u32>,
    /// bpffs directory for pinned state ([`DEFAULT_PIN_DIR`] in
    /// production). Maps pinned there are reused, links pinned there are
    /// adopted, and everything attached is pinned, so enforcement outlives
    /// this process. `None`: nothing is pinned and dropping the `Kernel`
    /// detaches everything (tests, probes).
    pub pin_dir: Option<PathBuf>,
    /// The cgroup v2 root that governed cgroups are measured against (the
    /// kernel's walk is bounded by level). `None`: the first cgroup2 mount.
    pub cgroup_root: Option<PathBuf>,
    /// Select each program's floor in its place (`names::FLOORS`): the
    /// same hooks with programs that return at once. For the benchmark's
    /// floor configuration only; a floor enforces and records nothing.
    pub floor: bool,
}

/// What [`Kernel::attach_all`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attached {
    /// Programs this process attached.
    pub attached: Vec<&'static str>,
    /// Programs found attached through pinned links and kept as they were.
    pub adopted: Vec<&'static str>,
}

/// A link attached without a pin directory: its program holds it.
#[derive(Debug)]
enum UnpinnedLink {
    Lsm(aya::programs::lsm::LsmLinkId),
    BtfTracePoint(aya::programs::tp_btf::BtfTracePointLinkId),
}

/// The loaded BPF object.
#[derive(Debug)]
pub struct Kernel {
    ebpf: Ebpf,
    pin_dir: Option<PathBuf>,
    cgroup_root: Option<PathBuf>,
    /// Links pinned by this process, kept open for its lifetime.
    pinned: Vec<PinnedLink>,
    /// Links attached without a pin directory; their programs hold them
    /// ([`Kernel::detach_all`]).
    unpinned: Vec<(&'static str, UnpinnedLink)>,
    /// The programs that match this kernel (`compat::select`).
    selected: Vec<ProgramSpec>,
    /// Fault injection for tests ([`Kernel::inject_attach_failure`]).
    fail_attach: Option<&'static str>,
    /// The programs of adopted pinned links, opened when adopted (while
    /// the process still may: `BPF_PROG_GET_FD_BY_ID` needs
    /// `CAP_SYS_ADMIN`), for their counts ([`Kernel::program_stats`]).
    adopted: std::collections::HashMap<&'static str, OwnedFd>,
    /// The recorders' recursion misses as last read, kept when a read
    /// fails so the count never goes backwards.
    last_missed: AtomicU64,
}

impl Kernel {
    /// Loads the embedded object into the kernel, with member offsets from
    /// this kernel's BTF. Nothing is pinned; attaches nothing.
    pub fn load() -> Result<Self, KernelError> {
        Self::load_with(&LoadOptions::default())
    }

    /// [`Kernel::load`] with options (sizes, pinned state).
    pub fn load_with(options: &LoadOptions) -> Result<Self, KernelError> {
        raise_memlock_rlimit();
        let kernel_btf = btf::Btf::from_sys_fs()?;
        let offsets = offsets::resolve(&kernel_btf)?;
        let mut selected =
            compat::select(|hook| kernel_btf.func_param_count(&format!("bpf_lsm_{hook}")).ok())?;
        if options.floor {
            for spec in &mut selected {
                spec.name = names::floor(spec.name).ok_or(KernelError::Missing {
                    what: "floor of program",
                    name: spec.name,
                })?;
            }
        }
        let mut loader = EbpfLoader::new();
        loader.override_global(names::GLOBAL_OFFSETS, &offsets, true);
        if let Some(bytes) = options.ring_bytes {
            loader.map_max_entries(names::MAP_EVENTS, bytes);
        }
        let map_pins: Vec<(&str, PathBuf)> = match &options.pin_dir {
            Some(dir) => pins::prepare(dir)?,
            None => Vec::new(),
        };
        for (name, path) in &map_pins {
            loader.map_pin_path(name, path.as_path());
        }
        let ebpf = loader
            .load(object::BPF_OBJECT)
            .map_err(|e| KernelError::Object(Box::new(e)))?;
        Ok(Self {
            ebpf,
            pin_dir: options.pin_dir.clone(),
            cgroup_root: options.cgroup_root.clone(),
            pinned: Vec::new(),
            unpinned: Vec::new(),
            selected,
            fail_attach: None,
            adopted: std::collections::HashMap::new(),
            last_missed: AtomicU64::new(0),
        })
    }

    /// Loads one program of the compatibility table into the kernel
    /// without attaching it. For LSM programs this is the real test of
    /// BPF LSM support: some kernels list `bpf` as an active LSM yet refuse
    /// trampoline programs with `EPERM`.
    pub fn probe(&mut self, spec: &ProgramSpec) -> Result<(), KernelError> {
        let load = |source| KernelError::Load {
            program: spec.name,
            source,
        };
        let program = self.program(spec)?;
        if program.fd().is_ok() {
            // Loaded (and verified) before; attached again after a detach.
            return Ok(());
        }
        match spec.attach {
            Attach::Lsm { hook, .. } => {
                let btf = aya::Btf::from_sys_fs().map_err(KernelError::Btf)?;
                let lsm: &mut Lsm = program.try_into().map_err(load)?;
                lsm.load(hook, &btf).map_err(load)
            }
            Attach::BtfTracePoint { name } => {
                let btf = aya::Btf::from_sys_fs().map_err(KernelError::Btf)?;
                let tp: &mut BtfTracePoint = program.try_into().map_err(load)?;
                tp.load(name, &btf).map_err(load)
            }
        }
    }

    /// Loads and attaches one program of the compatibility table. With a
    /// pin directory the link is pinned there (or, if one is already
    /// pinned, adopted: the attached program is left as it is and `false`
    /// is returned).
    pub fn attach(&mut self, spec: &ProgramSpec) -> Result<bool, KernelError> {
        if let Some(dir) = &self.pin_dir
            && let Some(link) = pins::link_path(dir, spec.name)
        {
            match program_stats::program_of_pinned_link(&link) {
                Ok(fd) => {
                    self.adopted.insert(spec.name, fd);
                }
                // Its counts are then read from the pin, which needs the
                // privilege this process may not keep.
                Err(e) => {
                    tracing::warn!(program = spec.name, error = %e, "opening an adopted program");
                }
            }
            tracing::debug!(program = spec.name, "adopted pinned link");
            return Ok(false);
        }
        self.probe(spec)?;
        let attach = |source| KernelError::Attach {
            program: spec.name,
            source,
        };
        let pin_dir = self.pin_dir.clone();
        let program = self.program(spec)?;
        // With a pin directory the link is taken from its program (to be
        // pinned); without one the program keeps it, known by its id.
        match (spec.attach, pin_dir) {
            (Attach::Lsm { .. }, Some(dir)) => {
                let lsm: &mut Lsm = program.try_into().map_err(attach)?;
                let id = lsm.attach().map_err(attach)?;
                let link: FdLink = lsm.take_link(id).map_err(attach)?.into();
                self.pinned.push(pins::pin_link(&dir, spec.name, link)?);
            }
            (Attach::Lsm { .. }, None) => {
                let lsm: &mut Lsm = program.try_into().map_err(attach)?;
                let id = lsm.attach().map_err(attach)?;
                self.unpinned.push((spec.name, UnpinnedLink::Lsm(id)));
            }
            (Attach::BtfTracePoint { .. }, Some(dir)) => {
                let tp: &mut BtfTracePoint = program.try_into().map_err(attach)?;
                let id = tp.attach().map_err(attach)?;
                let link: FdLink = tp.take_link(id).map_err(attach)?.into();
                self.pinned.push(pins::pin_link(&dir, spec.name, link)?);
            }
            (Attach::BtfTracePoint { .. }, None) => {
                let tp: &mut BtfTracePoint = program.try_into().map_err(attach)?;
                let id = tp.attach().map_err(attach)?;
                self.unpinned
                    .push((spec.name, UnpinnedLink::BtfTracePoint(id)));
            }
        }
        tracing::debug!(program = spec.name, "attached");
        Ok(true)
    }

    /// The programs chosen for this kernel, in attach order.
    #[must_use]
    pub fn programs(&self) -> &[ProgramSpec] {
        &self.selected
    }

    /// Attaches (or adopts) every program chosen for this kernel, the
    /// recorder first. All or nothing: when one program fails, what this
    /// call attached and pinned is removed again, so the node is left as
    /// it was (nothing installed, or the adopted install untouched).
    pub fn attach_all(&mut self) -> Result<Attached, KernelError> {
        let fresh = match &self.pin_dir {
            Some(dir) => !self.selected.iter().any(|s| pins::link_pinned(dir, s.name)),
            None => true,
        };
        let held = self.pinned.len();
        let held_unpinned = self.unpinned.len();
        let mut done = Attached::default();
        for spec in self.selected.clone() {
            let result = match self.fail_attach {
                Some(name) if name == spec.name => Err(KernelError::Injected { program: name }),
                _ => self.attach(&spec),
            };
            match result {
                Ok(true) => done.attached.push(spec.name),
                Ok(false) => done.adopted.push(spec.name),
                Err(e) => {
                    self.roll_back(&done.attached, held, fresh);
                    if let Err(detach) = self.detach_after(held_unpinned) {
                        tracing::error!(error = %detach, "detaching what the failed attach attached");
                    }
                    return Err(e);
                }
            }
        }
        Ok(done)
    }

    /// Undoes a failed [`Kernel::attach_all`]: unpins the links it pinned
    /// and closes them (their programs detach), and on a node where
    /// nothing was installed before, removes the pinned maps too.
    fn roll_back(&mut self, attached: &[&'static str], held: usize, fresh: bool) {
        if let Some(dir) = &self.pin_dir {
            let result = if fresh {
                uninstall(dir).map(drop)
            } else {
                attached
                    .iter()
                    .try_for_each(|name| pins::unpin_link(dir, name))
            };
            if let Err(e) = result {
                tracing::error!(error = %e, "removing what the failed attach pinned");
            }
        }
        // Dropping a link detaches its program (nothing else holds it now).
        self.pinned.truncate(held);
        tracing::warn!(
            programs = ?attached,
            "attaching failed midway; detached what this attempt had attached"
        );
    }

    /// Detaches every program this process attached without a pin
    /// directory, leaving them loaded: a later [`Kernel::attach_all`]
    /// attaches them again without another verification. How the
    /// benchmark measures the same hooks with and without programs in one
    /// run. Pinned links are not touched.
    pub fn detach_all(&mut self) -> Result<(), KernelError> {
        self.detach_after(0)
    }

    /// Detaches the unpinned links after the first `kept`.
    fn detach_after(&mut self, kept: usize) -> Result<(), KernelError> {
        while self.unpinned.len() > kept {
            let Some((name, id)) = self.unpinned.pop() else {
                break;
            };
            let detach = |source| KernelError::Attach {
                program: name,
                source,
            };
            let program = self.ebpf.program_mut(name).ok_or(KernelError::Missing {
                what: "program",
                name,
            })?;
            match id {
                UnpinnedLink::Lsm(id) => {
                    let p: &mut Lsm = program.try_into().map_err(detach)?;
                    p.detach(id).map_err(detach)?;
                }
                UnpinnedLink::BtfTracePoint(id) => {
                    let p: &mut BtfTracePoint = program.try_into().map_err(detach)?;
                    p.detach(id).map_err(detach)?;
                }
            }
        }
        Ok(())
    }

    /// Makes [`Kernel::attach_all`] fail at `program` as if the kernel had
    /// refused it: how the tests prove that a failed attach leaves nothing
    /// behind. Never set in production.
    #[doc(hidden)]
    pub fn inject_attach_failure(&mut self, program: &'static str) {
        self.fail_attach = Some(program);
    }

    fn program(&mut self, spec: &ProgramSpec) -> Result<&mut aya::programs::Program, KernelError> {
        self.ebpf
            .program_mut(spec.name)
            .ok_or(KernelError::Missing {
                what: "program",
                name: spec.name,
            })
    }

    fn map_mut(&mut self, name: &'static str) -> Result<&mut Map, KernelError> {
        self.ebpf
            .map_mut(name)
            .ok_or(KernelError::missing_map(name))
    }

    fn map(&self, name: &'static str) -> Result<&Map, KernelError> {
        self.ebpf.map(name).ok_or(KernelError::missing_map(name))
    }

    /// Takes the consumer side of the record ring buffer (once). With a
    /// pin directory this is the pinned ring: a restarted loader resumes at
    /// the consumer position the previous one committed.
    pub fn records(&mut self) -> Result<Records, KernelError> {
        let map = self
            .ebpf
            .take_map(names::MAP_EVENTS)
            .ok_or(KernelError::missing_map(names::MAP_EVENTS))?;
        let Map::RingBuf(data) = map else {
            return Err(KernelError::Ring {
                what: "checking its type",
                source: io::Error::new(
                    io::ErrorKind::InvalidData,
                    "the object's map is not a ring buffer (build mismatch)",
                ),
            });
        };
        Records::new(data)
    }

    /// Current counter values, summed over CPUs.
    pub fn counters(&self) -> Result<Counters, KernelError> {
        let err = KernelError::on_map(names::MAP_COUNTERS);
        let array: PerCpuArray<&MapData, u64> =
            PerCpuArray::try_from(self.map(names::MAP_COUNTERS)?).map_err(&err)?;
        let sum = |index: u32| -> Result<u64, KernelError> {
            Ok(array.get(&index, 0).map_err(&err)?.iter().sum())
        };
        Ok(Counters {
            denied: sum(counter::DENIED)?,
            allowed: sum(counter::ALLOWED)?,
            record_unavailable: sum(counter::RECORD_UNAVAILABLE)?,
            lineage_lost: sum(counter::LINEAGE_LOST)?,
            lineage_missed: self.lineage_missed(),
            audited: sum(counter::AUDITED)?,
        })
    }

    /// The recursion misses of the attached lifecycle recorders. A read
    /// that fails keeps the last value (logged): the count is late, never
    /// lower, and the ring's counters are read all the same.
    fn lineage_missed(&self) -> u64 {
        let mut total = 0;
        for name in names::ALL_LINEAGE {
            match self.program_stats(name) {
                Ok(s) => total += s.recursion_misses,
                Err(e) => {
                    tracing::warn!(error = %e, "the recorders' recursion misses");
                    return self.last_missed.load(Ordering::Relaxed);
                }
            }
        }
        self.last_missed
            .fetch_max(total, Ordering::Relaxed)
            .max(total)
    }

    /// What the kernel counted for program `name`: the program of the
    /// pinned link this process adopted, or the one it loaded itself, or
    /// else the one a link pinned by another process attaches (that read
    /// needs `CAP_SYS_ADMIN`); zeros when there is none (not selected for
    /// this kernel, or not attached).
    pub fn program_stats(&self, name: &'static str) -> Result<ProgramStats, KernelError> {
        let own = self
            .ebpf
            .program(name)
            .and_then(|p| p.fd().ok())
            .map(|fd| fd.as_fd());
        let stats = match (self.adopted.get(name), own, &self.pin_dir) {
            (Some(fd), _, _) => program_stats::of_program(fd.as_fd()),
            (None, Some(fd), _) => program_stats::of_program(fd),
            (None, None, Some(dir)) => match pins::link_path(dir, name) {
                Some(path) => program_stats::of_pinned_link(&path),
                None => Ok(ProgramStats::default()),
            },
            (None, None, None) => Ok(ProgramStats::default()),
        };
        stats.map_err(|source| KernelError::ProgramStats {
            program: name,
            source,
        })
    }
}

/// The cgroup v2 id of the cgroup directory at `path` (its inode number),
/// after checking that it is one.
pub fn cgroup_id(path: &Path) -> Result<u64, KernelError> {
    let not_cgroup = |why: String| KernelError::NotCgroup {
        path: path.to_path_buf(),
        why,
    };
    let meta = std::fs::metadata(path).map_err(|e| not_cgroup(e.to_string()))?;
    if !meta.is_dir() {
        return Err(not_cgroup("not a directory".into()));
    }
    let fs_type = statfs_type(path).map_err(|e| not_cgroup(e.to_string()))?;
    if fs_type != libc::CGROUP2_SUPER_MAGIC {
        return Err(not_cgroup(format!(
            "filesystem type {fs_type:#x} is not cgroup2"
        )));
    }
    Ok(meta.ino())
}

/// The filesystem type (`f_type` of statfs) of `path`.
fn statfs_type(path: &Path) -> io::Result<i64> {
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains a NUL byte"))?;
    // SAFETY: `statfs` is plain old data; zeroed is a valid initial value.
    let mut sfs: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c_path` is NUL-terminated and `sfs` is a valid out-pointer.
    if unsafe { libc::statfs(c_path.as_ptr(), &raw mut sfs) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(sfs.f_type)
}

/// Kernels before 5.11 charge BPF memory to RLIMIT_MEMLOCK; lift it so a
/// large ring buffer loads there too. Failure is logged, not fatal: newer
/// kernels account BPF memory to the cgroup instead.
fn raise_memlock_rlimit() {
    let rlim = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: `rlim` is a valid rlimit for the duration of the call.
    if unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &raw const rlim) } != 0 {
        tracing::debug!(error = %io::Error::last_os_error(), "could not raise RLIMIT_MEMLOCK");
    }
}
