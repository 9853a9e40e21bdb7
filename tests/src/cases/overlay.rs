//! A container-like root on overlayfs, as every container runtime gives a
//! pod: a read-only lower layer holding the image, a writable upper layer,
//! the merged view the workload sees. A governed process runs the image's
//! binaries by baseline, writes inside its writable directory (the first
//! write to a file of the image copies it up into the upper layer), and is
//! refused writes and metadata changes elsewhere in the view and in the
//! layers themselves. Decisions are made on the merged view; overlayfs's
//! own operations on its layers, done with the mounter's credentials on
//! the workload's behalf, are not decided again.
//!
//! Each attempt runs ungoverned first on a twin file (it must succeed, or
//! the case proves nothing), then governed, with the errno, the effect on
//! the view and on both layers, and the records checked.

use std::{
    fs,
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
};

use acelogic_common::{
    rules::rights,
    user::{Event, Hook, Reason, Verdict},
};
use anyhow::{Context as _, bail, ensure};

use crate::{
    cases::{
        exec_gate::allow_libraries,
        files::{append_errno as append, open_errno},
    },
    fixtures::{
        Exec, Scratch, Setup, TestCgroup, c_path, errno_if, exec_in, expect_decision, in_cgroup,
        render_all,
    },
    harness::{Case, Need},
};

pub(crate) const CASES: &[Case] = &[Case {
    name: "overlayfs_container_root_decided_on_the_merged_view",
    needs: &[Need::BpfLsm],
    run: overlayfs_container_root_decided_on_the_merged_view,
}];

const ORIGINAL: &[u8] = b"original";

/// An overlay mount over a scratch directory: `lower/` (the image),
/// `upper/`, `work/`, and the merged view at `root/`. Unmounted on drop.
struct Overlay {
    dir: Scratch,
}

impl Overlay {
    /// The image: `bin/sh` (the shell), `sbin/sh` (the same binary, not
    /// allowed; both named `sh` so that busybox runs as the shell), and
    /// `data/` and `etc/` holding a file per name in `files`, all in the
    /// lower layer.
    fn new(name: &str, files: &[&str]) -> anyhow::Result<Self> {
        ensure!(
            fs::read_to_string("/proc/filesystems")?.contains("\toverlay\n"),
            "this kernel has no overlayfs (the guest loads it at boot from \
             /lib/acelogic/modules; on a host, `modprobe overlay`)"
        );
        let dir = Scratch::new(name)?;
        for d in [
            "lower/bin",
            "lower/sbin",
            "lower/data",
            "lower/etc",
            "upper",
            "work",
            "root",
        ] {
            fs::create_dir_all(dir.join(d))?;
        }
        let sh = fs::canonicalize("/bin/sh")?;
        for bin in ["bin", "sbin"] {
            let to = dir.join(&format!("lower/{bin}/sh"));
            fs::copy(&sh, &to).with_context(|| format!("copying {}", sh.display()))?;
            fs::set_permissions(&to, fs::Permissions::from_mode(0o755))?;
        }
        for d in ["data", "etc"] {
            for f in files {
                fs::write(dir.join(&format!("lower/{d}/{f}")), ORIGINAL)?;
            }
        }
        let opts = format!(
            "lowerdir={},upperdir={},workdir={}",
            dir.join("lower").display(),
            dir.join("upper").display(),
            dir.join("work").display()
        );
        let (src, target, fstype, data) = (
            c_path(Path::new("overlay")),
            c_path(&dir.join("root")),
            c_path(Path::new("overlay")),
            c_path(Path::new(&opts)),
        );
        // SAFETY: valid NUL-terminated strings that outlive the call.
        let rc = unsafe {
            libc::mount(
                src.as_ptr(),
                target.as_ptr(),
                fstype.as_ptr(),
                0,
                data.as_ptr().cast(),
            )
        };
        ensure!(
            rc == 0,
            "mounting overlayfs ({opts}): errno {}",
            errno_if(-1)
        );
        Ok(Self { dir })
    }

    /// A path in the merged view.
    fn view(&self, rel: &str) -> PathBuf {
        self.dir.join(&format!("root/{rel}"))
    }

    /// A path in a layer (`lower` or `upper`).
    fn layer(&self, layer: &str, rel: &str) -> PathBuf {
        self.dir.join(&format!("{layer}/{rel}"))
    }
}

impl Drop for Overlay {
    fn drop(&mut self) {
        let target = c_path(&self.dir.join("root"));
        // SAFETY: valid NUL-terminated path.
        unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
    }
}

fn chmod(path: &Path) -> i32 {
    let p = c_path(path);
    // SAFETY: valid NUL-terminated path.
    errno_if(i64::from(unsafe { libc::chmod(p.as_ptr(), 0o600) }))
}

fn contents(path: &Path) -> Vec<u8> {
    fs::read(path).unwrap_or_default()
}

/// Runs `f` on the ungoverned twin path (it must succeed), then on the
/// governed one; the governed errno.
fn twin(s: &Setup, f: fn(&Path) -> i32, free: &Path, governed: &Path) -> anyhow::Result<i32> {
    let got = in_cgroup(&s.free, || f(free))?;
    ensure!(
        got == 0,
        "ungoverned, on {}: errno {got}; the case proves nothing",
        free.display()
    );
    in_cgroup(&s.governed, || f(governed))
}

fn overlayfs_container_root_decided_on_the_merged_view() -> anyhow::Result<()> {
    let o = Overlay::new("overlay-root", &["free", "gov"])?;
    let mut s = Setup::new("overlay-root")?;
    allow_libraries(&mut s)?;
    s.kernel
        .allow_file(s.scope, &o.view("bin/sh"), rights::EXEC)?;
    s.kernel
        .allow_file(s.scope, &o.view("data"), rights::WRITE)?;

    // The image's binaries: the allowed one runs, the other is refused.
    let tool = o.view("bin/sh");
    let other = o.view("sbin/sh");
    let run =
        |cg: &TestCgroup, p: &Path| exec_in(cg, p.to_str().unwrap_or_default(), &["-c", "exit 7"]);
    let got = run(&s.free, &other)?;
    ensure!(got == Exec::Ran(7), "ungoverned sbin/sh: {got:?}");
    let got = run(&s.governed, &tool)?;
    ensure!(
        got == Exec::Ran(7),
        "governed bin/sh (allowed by baseline): {got:?}"
    );
    let got = run(&s.governed, &other)?;
    ensure!(
        got == Exec::Refused(libc::EPERM),
        "governed sbin/sh (no rule): {got:?}, expected EPERM"
    );

    // Inside the writable directory: the first write to an image file
    // copies it up, then lands there; the lower layer never changes.
    let got = twin(&s, append, &o.view("data/free"), &o.view("data/gov"))?;
    ensure!(
        got == 0,
        "governed append to data/gov (copy-up): errno {got}"
    );
    ensure!(
        contents(&o.view("data/gov")) == b"originalx",
        "data/gov reads {:?} after the append",
        String::from_utf8_lossy(&contents(&o.view("data/gov")))
    );
    ensure!(
        contents(&o.layer("upper", "data/gov")) == b"originalx",
        "the copy-up is not in the upper layer"
    );
    ensure!(
        contents(&o.layer("lower", "data/gov")) == ORIGINAL,
        "the lower layer changed"
    );
    // A new file, and a second write to the copied-up one.
    let create = |p: &Path| open_errno(p, libc::O_WRONLY | libc::O_CREAT | libc::O_EXCL);
    let got = in_cgroup(&s.free, || create(&o.view("data/new-free")))?;
    ensure!(got == 0, "ungoverned create in data/: errno {got}");
    let got = in_cgroup(&s.governed, || create(&o.view("data/new-gov")))?;
    ensure!(got == 0, "governed create in data/: errno {got}");
    let got = in_cgroup(&s.governed, || append(&o.view("data/gov")))?;
    ensure!(got == 0, "governed second append to data/gov: errno {got}");

    // Outside it: refused, nothing copied up, nothing changed.
    let got = twin(&s, append, &o.view("etc/free"), &o.view("etc/gov"))?;
    ensure!(
        got == libc::EPERM,
        "governed append to etc/gov: errno {got}, expected EPERM"
    );
    let got = twin(&s, chmod, &o.view("etc/free"), &o.view("etc/gov"))?;
    ensure!(
        got == libc::EPERM,
        "governed chmod of etc/gov: errno {got}, expected EPERM"
    );
    ensure!(contents(&o.view("etc/gov")) == ORIGINAL, "etc/gov changed");
    ensure!(
        fs::metadata(o.layer("upper", "etc/gov")).is_err(),
        "a refused write left a copy of etc/gov in the upper layer"
    );
    // Nor through the layers themselves.
    let got = twin(
        &s,
        append,
        &o.layer("lower", "etc/free"),
        &o.layer("lower", "etc/gov"),
    )?;
    ensure!(
        got == libc::EPERM,
        "governed append to the lower layer: errno {got}"
    );
    ensure!(
        contents(&o.layer("lower", "etc/gov")) == ORIGINAL,
        "the lower etc/gov changed"
    );

    // The records: each refusal, and no refusal of what was allowed (an
    // operation overlayfs did on its layers refused would show here).
    let events = s.decisions()?;
    let denied: Vec<&Event> = events
        .iter()
        .filter(|e| e.decision().is_some_and(|d| d.verdict == Verdict::Deny))
        .collect();
    // Exec records name the path the process gave, the others the file.
    let named = |e: &Event, hooks: &[Hook], name: &str| match e {
        Event::File(f) => {
            hooks.contains(&f.decision.hook)
                && (f.name() == name.as_bytes() || f.name().ends_with(name.as_bytes()))
        }
        _ => false,
    };
    let expect = [
        (&[Hook::Exec][..], "/root/sbin/sh"),
        (&[Hook::FileOpen][..], "gov"),
        (&[Hook::PathChmod][..], "gov"),
    ];
    for (hooks, name) in expect {
        let found = denied
            .iter()
            .find(|e| named(e, hooks, name))
            .with_context(|| {
                format!(
                    "no {hooks:?} denial naming {name:?}: {}",
                    render_all(&events)
                )
            })?;
        expect_decision(found, Verdict::Deny, Reason::NoGrant)?;
    }
    let unexpected: Vec<&&Event> = denied
        .iter()
        .filter(|e| !expect.iter().any(|(hooks, name)| named(e, hooks, name)))
        .collect();
    if !unexpected.is_empty() {
        let shown: Vec<Event> = unexpected.iter().map(|e| (**e).clone()).collect();
        bail!(
            "denials of allowed operations (overlayfs's own work on its layers?): {}",
            render_all(&shown)
        );
    }
    Ok(())
}
