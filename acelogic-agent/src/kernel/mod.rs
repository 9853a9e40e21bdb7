//! The kernel half of ACELOGIC as seen from userspace: load the BPF object,
//! attach its programs, register governed cgroups, read records and
//! counters.

pub mod compat;
pub mod object;
mod records;
pub mod tracefs;

use std::{
    io,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

use acelogic_common::{codes::counter, names, scope::ScopeEntry};
use aya::{
    Btf, Ebpf, EbpfLoader,
    maps::{HashMap, MapData, PerCpuArray, RingBuf},
    programs::{Lsm, TracePoint},
};
use compat::{Attach, ProgramSpec};
pub use records::Records;

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
    #[error("loading program `{program}` into the kernel: {source}")]
    Load {
        program: &'static str,
        #[source]
        source: aya::programs::ProgramError,
    },
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
    #[error("pinning map `{map}` at {path}: {source}")]
    Pin {
        map: &'static str,
        path: PathBuf,
        #[source]
        source: aya::pin::PinError,
    },
    #[error("{path} is not a cgroup v2 directory: {why}")]
    NotCgroup { path: PathBuf, why: String },
    #[error(transparent)]
    Tracefs(#[from] tracefs::FormatError),
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
}

/// Load-time settings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoadOptions {
    /// Size of the record ring buffer in bytes (a power of two, at least a
    /// page); `None` keeps the object's 1 MiB.
    pub ring_bytes: Option<u32>,
}

/// The loaded BPF object. Dropping it detaches every program it attached
/// (pinning, so that enforcement outlives the agent, is issue 3).
#[derive(Debug)]
pub struct Kernel {
    ebpf: Ebpf,
}

impl Kernel {
    /// Loads the embedded object into the kernel, with tracepoint layouts
    /// resolved from this kernel's tracefs. Attaches nothing.
    pub fn load() -> Result<Self, KernelError> {
        Self::load_with(&LoadOptions::default())
    }

    /// [`Kernel::load`] with non-default sizes.
    pub fn load_with(options: &LoadOptions) -> Result<Self, KernelError> {
        raise_memlock_rlimit();
        // Without tracefs the lineage record carries no file name; that is
        // visible in the record, and attaching the tracepoint fails anyway.
        let filename_off =
            match tracefs::field_offset(names::TP_PROC_EXEC.0, names::TP_PROC_EXEC.1, "filename") {
                Ok(off) => off,
                Err(tracefs::FormatError::NoTracefs) => 0,
                Err(e) => return Err(e.into()),
            };
        let mut loader = EbpfLoader::new();
        loader.override_global(names::GLOBAL_TP_EXEC_FILENAME_OFF, &filename_off, true);
        if let Some(bytes) = options.ring_bytes {
            loader.map_max_entries(names::MAP_EVENTS, bytes);
        }
        let ebpf = loader
            .load(object::BPF_OBJECT)
            .map_err(|e| KernelError::Object(Box::new(e)))?;
        Ok(Self { ebpf })
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
        match spec.attach {
            Attach::Lsm { hook } => {
                let btf = Btf::from_sys_fs().map_err(KernelError::Btf)?;
                let lsm: &mut Lsm = program.try_into().map_err(load)?;
                lsm.load(hook, &btf).map_err(load)
            }
            Attach::TracePoint { .. } => {
                let tp: &mut TracePoint = program.try_into().map_err(load)?;
                tp.load().map_err(load)
            }
        }
    }

    /// Loads and attaches one program of the compatibility table.
    pub fn attach(&mut self, spec: &ProgramSpec) -> Result<(), KernelError> {
        self.probe(spec)?;
        let attach = |source| KernelError::Attach {
            program: spec.name,
            source,
        };
        let program = self.program(spec)?;
        match spec.attach {
            Attach::Lsm { .. } => {
                let lsm: &mut Lsm = program.try_into().map_err(attach)?;
                lsm.attach().map_err(attach)?;
            }
            Attach::TracePoint { category, name } => {
                let tp: &mut TracePoint = program.try_into().map_err(attach)?;
                tp.attach(category, name).map_err(attach)?;
            }
        }
        tracing::debug!(program = spec.name, "attached");
        Ok(())
    }

    fn program(&mut self, spec: &ProgramSpec) -> Result<&mut aya::programs::Program, KernelError> {
        self.ebpf
            .program_mut(spec.name)
            .ok_or(KernelError::Missing {
                what: "program",
                name: spec.name,
            })
    }

    fn scopes(&mut self) -> Result<HashMap<&mut MapData, u64, ScopeEntry>, KernelError> {
        let map = self
            .ebpf
            .map_mut(names::MAP_SCOPES)
            .ok_or(KernelError::missing_map(names::MAP_SCOPES))?;
        HashMap::try_from(map).map_err(KernelError::on_map(names::MAP_SCOPES))
    }

    /// Governs the cgroup at `path` as part of scope `scope_id`. Returns the
    /// cgroup id the kernel will see.
    pub fn govern(&mut self, path: &Path, scope_id: u32) -> Result<u64, KernelError> {
        let id = cgroup_id(path)?;
        self.scopes()?
            .insert(id, ScopeEntry::new(scope_id), 0)
            .map_err(KernelError::on_map(names::MAP_SCOPES))?;
        tracing::info!(cgroup = %path.display(), cgroup_id = id, scope_id, "governed");
        Ok(id)
    }

    /// Stops governing cgroup `id`.
    pub fn release(&mut self, id: u64) -> Result<(), KernelError> {
        self.scopes()?
            .remove(&id)
            .map_err(KernelError::on_map(names::MAP_SCOPES))
    }

    /// Takes the consumer side of the record ring buffer (once).
    pub fn records(&mut self) -> Result<Records, KernelError> {
        let map = self
            .ebpf
            .take_map(names::MAP_EVENTS)
            .ok_or(KernelError::missing_map(names::MAP_EVENTS))?;
        let ring = RingBuf::try_from(map).map_err(KernelError::on_map(names::MAP_EVENTS))?;
        Ok(Records::new(ring))
    }

    /// Current counter values, summed over CPUs.
    pub fn counters(&self) -> Result<Counters, KernelError> {
        let err = KernelError::on_map(names::MAP_COUNTERS);
        let map = self
            .ebpf
            .map(names::MAP_COUNTERS)
            .ok_or(KernelError::missing_map(names::MAP_COUNTERS))?;
        let array: PerCpuArray<&MapData, u64> = PerCpuArray::try_from(map).map_err(&err)?;
        let sum = |index: u32| -> Result<u64, KernelError> {
            Ok(array.get(&index, 0).map_err(&err)?.iter().sum())
        };
        Ok(Counters {
            denied: sum(counter::DENIED)?,
            allowed: sum(counter::ALLOWED)?,
            record_unavailable: sum(counter::RECORD_UNAVAILABLE)?,
            lineage_lost: sum(counter::LINEAGE_LOST)?,
        })
    }

    /// Pins every map that is still owned by this object under `dir` (a
    /// bpffs directory), each under its name.
    pub fn pin_maps(&self, dir: &Path) -> Result<(), KernelError> {
        for name in names::ALL_MAPS {
            if let Some(map) = self.ebpf.map(name) {
                let path = dir.join(name);
                map.pin(&path).map_err(|source| KernelError::Pin {
                    map: name,
                    path,
                    source,
                })?;
            }
        }
        Ok(())
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
    let c_path = std::ffi::CString::new(path.as_os_str().as_encoded_bytes())
        .map_err(|_| not_cgroup("path contains a NUL byte".into()))?;
    // SAFETY: `statfs` is plain old data; zeroed is a valid initial value.
    let mut sfs: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c_path` is NUL-terminated and `sfs` is a valid out-pointer.
    if unsafe { libc::statfs(c_path.as_ptr(), &raw mut sfs) } != 0 {
        return Err(not_cgroup(io::Error::last_os_error().to_string()));
    }
    if sfs.f_type != libc::CGROUP2_SUPER_MAGIC {
        return Err(not_cgroup(format!(
            "filesystem type {:#x} is not cgroup2",
            sfs.f_type
        )));
    }
    Ok(meta.ino())
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
