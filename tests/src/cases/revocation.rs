//! Incident response against the real daemon: a key removed from (or
//! rotated in) the trust store revokes at once the live artifacts it
//! signed, and `never` binaries cannot be granted under another name, as a
//! hard link or as a copy.

use std::{fs, path::Path, process::Command};

use anyhow::{Context as _, ensure};

use crate::{
    daemon::{Daemon, binary},
    fixtures::{Exec, TestCgroup, exec_in},
    harness::{Case, Need},
};

pub(crate) const CASES: &[Case] = &[
    Case {
        name: "revocation_removing_the_issuer_key_revokes_live_grants",
        needs: &[Need::BpfLsm],
        run: removing_the_issuer_key_revokes_live_grants,
    },
    Case {
        name: "revocation_links_and_copies_of_never_binaries_refused",
        needs: &[Need::BpfLsm],
        run: links_and_copies_of_never_binaries_refused,
    },
];

const EPERM: i32 = libc::EPERM;

fn expect(got: Exec, want: Exec, what: &str) -> anyhow::Result<()> {
    ensure!(got == want, "{what}: {got:?}, expected {want:?}");
    Ok(())
}

/// One workload owning `cg`; `exec` lists what artifacts from `ci` may
/// grant; `never` the never exec entries.
fn policy(cg: &TestCgroup, exec: &[&str], never: &[&str]) -> String {
    let pid = std::process::id();
    format!(
        "apiVersion: acelogic.dev/v1
kind: CapabilityPolicy
metadata:
  name: revocation-test
spec:
  workloads:
    - name: agent-{pid}
      cgroups: [/{}]
  baseline:
    libraries: [/lib/**, /lib64/**]
  grantable:
    - name: tools
      exec: [{}]
      issuers: [ci]
      maxTtl: 1h
  never:
    exec: [{}]
    write: [/etc/**]
",
        cg.name(),
        exec.join(", "),
        never.join(", ")
    )
}

fn request(exec: &str) -> String {
    let pid = std::process::id();
    format!(
        "issuer: ci
subject: {{workload: agent-{pid}}}
audience: test
ttl: 10m
capabilities:
  - exec: {{path: {exec}}}
reason: revocation test
"
    )
}

/// The trust store's entry (`  - name: ...` block) for `name`, and the
/// text without it.
fn split_entry(trust: &str, name: &str) -> anyhow::Result<(String, String)> {
    let head = format!("  - name: {name}\n");
    let start = trust
        .find(&head)
        .with_context(|| format!("no entry for {name} in:\n{trust}"))?;
    let rest = &trust[start + head.len()..];
    let end = rest
        .find("  - name: ")
        .map_or(trust.len(), |i| start + head.len() + i);
    let entry = trust[start..end].to_owned();
    let without = format!("{}{}", &trust[..start], &trust[end..]);
    Ok((entry, without))
}

fn key_id(entry: &str) -> anyhow::Result<String> {
    entry
        .lines()
        .find_map(|l| l.trim().strip_prefix("keyId: "))
        .map(str::to_owned)
        .with_context(|| format!("no keyId in {entry}"))
}

/// Grant an exec, use it, then rotate the issuer's key in trust.yaml (the
/// old key removed, a new one for the same name added). After the reload
/// the governed exec is refused again (EPERM) while its ungoverned twin
/// runs, the artifact is gone from the live grants, the record says
/// `revoked [key-revoked]` with the old key's id, the old envelope no
/// longer verifies, and the new key's artifacts are granted.
fn removing_the_issuer_key_revokes_live_grants() -> anyhow::Result<()> {
    let cg = TestCgroup::new("revoke-key")?;
    let free = TestCgroup::new("revoke-key-free")?;
    let ctl = binary("acelogicctl")?.display().to_string();
    let mut d = Daemon::prepare("revoke-key", &policy(&cg, &[&ctl], &[]))?;
    d.start()?;

    expect(
        exec_in(&cg, &ctl, &["--version"])?,
        Exec::Refused(EPERM),
        "before any artifact",
    )?;
    let old_env = d.sign("old", &request(&ctl), false)?;
    let (id, _) = d.accept(&old_env)?;
    expect(exec_in(&cg, &ctl, &["--version"])?, Exec::Ran(0), "granted")?;

    // Rotate: a new issuer key for `ci` in place of the old one.
    let trust_path = d.policies.join("trust.yaml");
    let trust = fs::read_to_string(&trust_path)?;
    let (old_entry, without) = split_entry(&trust, "ci")?;
    let old_key = key_id(&old_entry)?;
    let keys = d.dir.join("keys");
    fs::rename(keys.join("ci.key"), keys.join("ci-old.key"))?;
    let out = Command::new(&ctl)
        .args(["keygen", "--name", "ci", "--role", "issuer", "--out"])
        .arg(keys.join("ci.key"))
        .output()?;
    ensure!(out.status.success(), "keygen: {out:?}");
    let new_entry = String::from_utf8(out.stdout)?;
    let new_key = key_id(&new_entry)?;
    ensure!(new_key != old_key, "keygen gave the old key again");
    // Replaced whole (a rename), as a careful operator or a ConfigMap does.
    let staged = d.dir.join("trust.yaml.new");
    fs::write(&staged, format!("{without}{new_entry}"))?;
    fs::rename(&staged, &trust_path)?;

    let line = d.wait_log(&["revoked [key-revoked]", &format!("artifact={id}")])?;
    ensure!(
        line.contains(&format!("issuer key {old_key} (ci) was removed")),
        "the record does not name the removed key {old_key}: {line}"
    );
    expect(
        exec_in(&cg, &ctl, &["--version"])?,
        Exec::Refused(EPERM),
        "after the issuer key was removed",
    )?;
    expect(
        exec_in(&free, &ctl, &["--version"])?,
        Exec::Ran(0),
        "the ungoverned twin",
    )?;
    let live = d.grants()?;
    ensure!(
        !live.iter().any(|g| g["artifactId"] == id.as_str()),
        "the revoked artifact is still listed: {live:?}"
    );
    d.submit(&old_env)?
        .refused("the old key's envelope", "no-issuer-signature")?;

    // The new key issues as `ci` from now on.
    let (new_id, _) = d.accept(&d.sign("new", &request(&ctl), false)?)?;
    expect(
        exec_in(&cg, &ctl, &["--version"])?,
        Exec::Ran(0),
        "granted by the new key",
    )?;
    ensure!(
        d.grants()?
            .iter()
            .any(|g| g["artifactId"] == new_id.as_str()),
        "the new artifact is not live"
    );
    d.stop()
}

/// The policy's never binary (a busybox at `<dir>/sbin/nsenter`) with a
/// grantable directory beside it: a hard link to it and a copy of it
/// placed there are refused `never` at submission, nothing is granted and
/// their governed exec stays refused while it runs ungoverned; another
/// binary in the same directory is granted.
fn links_and_copies_of_never_binaries_refused() -> anyhow::Result<()> {
    let cg = TestCgroup::new("never-ident")?;
    let free = TestCgroup::new("never-ident-free")?;
    let mut d = Daemon::prepare("never-ident", "")?;
    let root = d.dir.path.clone();
    let never_bin = root.join("sbin/nsenter");
    let tools = root.join("tools");
    for dir in ["sbin", "tools/link", "tools/copy", "tools/other"] {
        fs::create_dir_all(root.join(dir))?;
    }
    fs::copy("/bin/busybox", &never_bin)?;
    // Named `busybox` so the applet comes from the first argument.
    let link = tools.join("link/busybox");
    let copy = tools.join("copy/busybox");
    fs::hard_link(&never_bin, &link)?;
    fs::copy(&never_bin, &copy)?;
    let other = tools.join("other/acelogicctl");
    fs::copy(binary("acelogicctl")?, &other)?;
    let shown = |p: &Path| p.display().to_string();
    fs::write(
        d.policies.join("policy.yaml"),
        policy(
            &cg,
            &[&format!("{}/**", shown(&tools))],
            &[&shown(&never_bin)],
        ),
    )?;
    d.start()?;

    for (what, path, says) in [
        ("a hard link", &link, "is a hard link to never-automated"),
        ("a copy", &copy, "is a copy of never-automated"),
    ] {
        let env = d.sign(
            what.replace(' ', "-").as_str(),
            &request(&shown(path)),
            false,
        )?;
        let refused = d.submit(&env)?.refused(what, "never")?;
        ensure!(
            refused.stderr.contains(says) && refused.stderr.contains(&shown(&never_bin)),
            "{what}: the refusal does not say {says:?} {}: {}",
            never_bin.display(),
            refused.stderr
        );
        d.wait_log(&["refused [never]", &shown(path), says])?;
        expect(
            exec_in(&cg, &shown(path), &["true"])?,
            Exec::Refused(EPERM),
            &format!("{what} governed"),
        )?;
        expect(
            exec_in(&free, &shown(path), &["true"])?,
            Exec::Ran(0),
            &format!("{what} ungoverned"),
        )?;
    }
    ensure!(d.grants()?.is_empty(), "grants: {:?}", d.grants()?);

    // The directory is grantable: another binary in it is granted.
    d.accept(&d.sign("other", &request(&shown(&other)), false)?)?;
    expect(
        exec_in(&cg, &shown(&other), &["--version"])?,
        Exec::Ran(0),
        "another binary in the grantable directory",
    )?;
    d.stop()
}
