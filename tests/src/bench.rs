//! Kernel hook overhead, measured inside one kernel: the same workload
//! with no programs loaded, with programs loaded but the process
//! ungoverned, governed and allowed by baseline, and governed and allowed
//! by grant. Only ratios to the no-programs baseline of the same run mean
//! anything (under emulation absolute times do not).
//!
//! Configurations with programs are measured in interleaved rounds; the
//! no-programs baseline before loading and after unloading, and the median
//! of every round is reported.

use std::{
    fs,
    io::Read as _,
    net::{Ipv4Addr, TcpListener},
    os::fd::{FromRawFd as _, OwnedFd},
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
    time::Instant,
};

use acelogic_agent::kernel::{
    Kernel,
    rules::{GrantObject, GrantSpec, NetTarget, Protocol, boot_ns_in},
    scopes::Mode,
};
use acelogic_common::rules::rights;
use anyhow::{Context as _, bail, ensure};

use crate::fixtures::{TestCgroup, c_path, real};

/// One measured workload.
#[derive(Debug, Clone, Copy)]
enum Workload {
    OpenClose,
    ForkExec,
    Connect,
}

impl Workload {
    const ALL: [Self; 3] = [Self::OpenClose, Self::ForkExec, Self::Connect];

    const fn name(self) -> &'static str {
        match self {
            Self::OpenClose => "open+close (write)",
            Self::ForkExec => "fork+exec+wait",
            Self::Connect => "tcp connect+close",
        }
    }

    const fn iterations(self) -> u32 {
        match self {
            Self::OpenClose => 5_000,
            Self::ForkExec => 200,
            Self::Connect => 2_000,
        }
    }
}

const CONFIGS: [&str; 4] = [
    "no programs",
    "loaded, ungoverned",
    "governed, baseline",
    "governed, grant",
];

const ROUNDS: usize = 5;

struct Bench {
    file: std::path::PathBuf,
    dir: std::path::PathBuf,
    shell: std::path::PathBuf,
    port: u16,
}

/// Runs `w` in a child forked into `cg` and returns nanoseconds per
/// iteration, measured by the child.
fn measure(b: &Bench, cg: &TestCgroup, w: Workload) -> anyhow::Result<f64> {
    let mut fds = [0; 2];
    // SAFETY: valid out-array for two fds.
    ensure!(unsafe { libc::pipe(fds.as_mut_ptr()) } == 0, "pipe");
    let file = c_path(&b.file);
    let shell = c_path(&b.shell);
    let procs = c_path(&cg.path.join("cgroup.procs"));
    // SAFETY: the benchmark runs single-threaded apart from the acceptor
    // thread, which never allocates; the child uses raw calls and `_exit`.
    let pid = unsafe { libc::fork() };
    ensure!(pid >= 0, "fork");
    if pid == 0 {
        // SAFETY: child side; raw calls only.
        unsafe {
            let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
            if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                libc::_exit(2);
            }
            libc::close(fd);
            let start = Instant::now();
            let out = match run(w, &file, &shell, b.port) {
                Ok(()) => u64::try_from(start.elapsed().as_nanos()).unwrap_or(1 << 62),
                Err(errno) => FAILED | u64::from(errno.unsigned_abs()),
            };
            libc::write(fds[1], (&raw const out).cast(), 8);
            libc::_exit(0);
        }
    }
    // SAFETY: we own the read end; the write end is closed here.
    let mut rd = unsafe {
        libc::close(fds[1]);
        fs::File::from(OwnedFd::from_raw_fd(fds[0]))
    };
    let mut buf = [0u8; 8];
    rd.read_exact(&mut buf)
        .context("reading the child's result")?;
    let mut status = 0;
    // SAFETY: our own child.
    unsafe { libc::waitpid(pid, &raw mut status, 0) };
    let ns = u64::from_ne_bytes(buf);
    if ns & FAILED != 0 {
        bail!(
            "{} failed in {}: errno {}",
            w.name(),
            cg.path.display(),
            ns & !FAILED
        );
    }
    #[expect(clippy::cast_precision_loss, reason = "a ratio of timings")]
    Ok(ns as f64 / f64::from(w.iterations()))
}

/// Marks a failed measurement; the low bits carry the errno.
const FAILED: u64 = 1 << 63;

/// The errno of the last failed call.
fn last_errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(-1)
}

/// The workload loop; `Err(errno)` when an operation failed (for exec, the
/// child's exit status).
unsafe fn run(
    w: Workload,
    file: &std::ffi::CStr,
    shell: &std::ffi::CStr,
    port: u16,
) -> Result<(), i32> {
    // SAFETY: raw calls with valid pointers and lengths throughout.
    unsafe {
        match w {
            Workload::OpenClose => {
                for _ in 0..w.iterations() {
                    let fd = libc::open(file.as_ptr(), libc::O_WRONLY);
                    if fd < 0 {
                        return Err(last_errno());
                    }
                    libc::close(fd);
                }
            }
            Workload::ForkExec => {
                let argv = [
                    c"sh".as_ptr(),
                    c"-c".as_ptr(),
                    c"exit 0".as_ptr(),
                    std::ptr::null(),
                ];
                let envp = [std::ptr::null()];
                for _ in 0..w.iterations() {
                    let pid = libc::fork();
                    if pid == 0 {
                        libc::execve(shell.as_ptr(), argv.as_ptr(), envp.as_ptr());
                        libc::_exit(127);
                    }
                    let mut st = 0;
                    libc::waitpid(pid, &raw mut st, 0);
                    if st != 0 {
                        return Err(st);
                    }
                }
            }
            Workload::Connect => {
                let addr = libc::sockaddr_in {
                    sin_family: libc::sa_family_t::try_from(libc::AF_INET).unwrap_or(2),
                    sin_port: port.to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from(Ipv4Addr::LOCALHOST).to_be(),
                    },
                    sin_zero: [0; 8],
                };
                for _ in 0..w.iterations() {
                    let s = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
                    let rc = libc::connect(
                        s,
                        (&raw const addr).cast(),
                        libc::socklen_t::try_from(size_of::<libc::sockaddr_in>()).unwrap_or(16),
                    );
                    let errno = last_errno();
                    libc::close(s);
                    if rc != 0 {
                        return Err(errno);
                    }
                }
            }
        }
    }
    Ok(())
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Runs the benchmark; prints one `ACELOGIC-BENCH {json}` line per
/// workload and a markdown table.
pub fn main() -> anyhow::Result<()> {
    crate::fixtures::ensure_mounts()?;
    let scratch = crate::fixtures::Scratch::new("bench")?;
    let file = scratch.join("target");
    fs::write(&file, b"x")?;
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    let port = listener.local_addr()?.port();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            drop(conn);
        }
    });
    let b = Bench {
        file,
        dir: scratch.path.clone(),
        shell: real("/bin/sh")?,
        port,
    };
    let free = TestCgroup::new("bench-free")?;
    let base = TestCgroup::new("bench-baseline")?;
    let grant = TestCgroup::new("bench-grant")?;
    let mut samples = vec![[Vec::new(), Vec::new(), Vec::new(), Vec::new()]; Workload::ALL.len()];

    let none = |samples: &mut Vec<[Vec<f64>; 4]>| -> anyhow::Result<()> {
        for _ in 0..ROUNDS {
            for (i, w) in Workload::ALL.iter().enumerate() {
                samples[i][0].push(measure(&b, &free, *w)?);
            }
        }
        Ok(())
    };
    none(&mut samples)?;
    {
        let mut kernel = Kernel::load()?;
        kernel.attach_all()?;
        let records = kernel.records()?;
        setup_scopes(&mut kernel, &b, &base, &grant)?;
        // Drain the ring buffer while measuring, as the daemon does: an
        // undrained buffer fills and then governed actions are denied.
        let stop = Arc::new(AtomicBool::new(false));
        let drainer = {
            let stop = Arc::clone(&stop);
            let mut records = records;
            std::thread::spawn(move || {
                let mut seen = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    if records.next_within(Duration::from_millis(5)).is_some() {
                        seen += 1;
                    }
                }
                seen += records.drain().len() as u64;
                seen
            })
        };
        let measured = (|| -> anyhow::Result<()> {
            for _ in 0..ROUNDS {
                for (i, w) in Workload::ALL.iter().enumerate() {
                    for (c, cg) in [(1, &free), (2, &base), (3, &grant)] {
                        samples[i][c].push(measure(&b, cg, *w)?);
                    }
                }
            }
            Ok(())
        })();
        stop.store(true, Ordering::Relaxed);
        let seen = drainer
            .join()
            .map_err(|_| anyhow::anyhow!("drain thread panicked"))?;
        measured?;
        println!("records drained during the benchmark: {seen}");
        let counters = kernel.counters()?;
        ensure!(
            counters.denied == 0 && counters.record_unavailable == 0,
            "the benchmark was denied something: {counters:?}"
        );
    }
    none(&mut samples)?;

    println!("| workload | {} |", CONFIGS.join(" | "));
    println!("|---|---|---|---|---|");
    for (i, w) in Workload::ALL.iter().enumerate() {
        let med: Vec<f64> = samples[i].iter_mut().map(|s| median(s)).collect();
        let cells: Vec<String> = med
            .iter()
            .map(|m| format!("{:.0} ns ({:.3}x)", m, m / med[0]))
            .collect();
        println!("| {} | {} |", w.name(), cells.join(" | "));
        println!(
            "ACELOGIC-BENCH {{\"workload\":\"{}\",\"iterations\":{},\"rounds\":{ROUNDS},\"ns_per_op\":{{\"none\":{:.1},\"ungoverned\":{:.1},\"baseline\":{:.1},\"grant\":{:.1}}},\"ratio\":{{\"ungoverned\":{:.4},\"baseline\":{:.4},\"grant\":{:.4}}}}}",
            w.name(),
            w.iterations(),
            med[0],
            med[1],
            med[2],
            med[3],
            med[1] / med[0],
            med[2] / med[0],
            med[3] / med[0],
        );
    }
    Ok(())
}

/// Scope 1 allows by baseline, scope 2 by grant: the file's directory
/// (write), the shell (exec) with the libraries, the listener's port.
fn setup_scopes(
    kernel: &mut Kernel,
    b: &Bench,
    base: &TestCgroup,
    grant: &TestCgroup,
) -> anyhow::Result<()> {
    let target = NetTarget::host(Protocol::Tcp, Ipv4Addr::LOCALHOST.into(), b.port);
    for (scope, cg) in [(1, base), (2, grant)] {
        kernel.define_scope(scope, Mode::Enforce)?;
        kernel.govern(&cg.path, scope)?;
        for lib in ["/lib", "/lib64", "/usr/lib", "/usr/lib64"] {
            if Path::new(lib).exists() {
                kernel.allow_file(scope, &real(lib)?, rights::MAP)?;
            }
        }
    }
    kernel.allow_file(1, &b.dir, rights::WRITE)?;
    kernel.allow_file(1, &b.shell, rights::EXEC)?;
    kernel.allow_net(1, &target)?;
    let expires = boot_ns_in(Duration::from_secs(3600));
    let g = |id, object| GrantSpec {
        grant_id: id,
        scope_id: 2,
        expires_boot_ns: expires,
        max_uses: None,
        object,
    };
    kernel.install_grants(&[
        g(
            1,
            GrantObject::File {
                path: b.dir.clone(),
                rights: rights::WRITE,
            },
        ),
        g(
            2,
            GrantObject::File {
                path: b.shell.clone(),
                rights: rights::EXEC,
            },
        ),
        g(3, GrantObject::Net(target)),
    ])?;
    Ok(())
}
