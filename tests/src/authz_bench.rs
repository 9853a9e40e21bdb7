//! Verify-and-decide benchmark (native, no kernel): `cargo xtask bench`
//! runs it before the VM benchmark. Each artifact is a fresh, distinct
//! envelope; latencies are per artifact, on one core.
//!
//! Rows: one bare Ed25519 `verify_strict` (the baseline, same run); the
//! envelope verified against the trust store (parse, PAE, signatures);
//! verify and decide (plus time, audience, subject, policy and terms);
//! and a full submit (plus the durable claim in SQLite with
//! `synchronous=FULL` and a grant table in memory in place of the kernel).
//!
//! Throughput "on one core" is artifacts per second of this thread's CPU
//! time: on a machine shared with other work the wall clock also counts
//! the time the thread waited for a core. The wall-clock rate and every
//! latency (p50, p99) are printed too, with the load average before and
//! after, since preemption by other work lands in the p99.

use std::{
    collections::{BTreeSet, HashMap},
    time::{Duration, Instant, SystemTime},
};

use acelogic_authz::{
    Authorizer, GrantTable, Inputs, Usage,
    check::{self, Context, Settings},
    digest::{self, DigestCache},
    state::State,
};
use acelogic_domain::{
    PortError,
    artifact::{self, Artifact, ArtifactId, Role, SecretKey, Subject, TrustStore},
    capability::{Capability, ExecCap},
    grant::GrantSpec,
    policy,
};
use anyhow::Context as _;
use sha2::{Digest as _, Sha256};
use std::os::unix::fs::PermissionsExt as _;

use crate::summary::{Row, Target, Unit, rows_json};

/// Grants kept in memory: the kernel's part is measured in the VM.
#[derive(Debug, Default)]
pub(crate) struct Memory(Vec<GrantSpec>);

impl GrantTable for Memory {
    fn install(&mut self, set: &[GrantSpec]) -> Result<(), PortError> {
        self.0.extend_from_slice(set);
        Ok(())
    }
    fn remove(&mut self, grant_id: u64) -> Result<usize, PortError> {
        let n = self.0.len();
        self.0.retain(|g| g.grant_id != grant_id);
        Ok(n - self.0.len())
    }
    fn usage(&mut self) -> Result<HashMap<u64, Usage>, PortError> {
        Ok(HashMap::new())
    }
}

/// The policy; `{dir}` is the benchmark's directory, where the binary
/// pinned by sha256 lives.
const POLICY: &str = "apiVersion: acelogic.dev/v1
kind: CapabilityPolicy
metadata: {name: bench}
spec:
  workloads:
    - {name: agent, cgroups: [/bench]}
  grantable:
    - name: tools
      exec: [/bin/sh, /usr/bin/**, {dir}/bin/**]
      issuers: [ci]
      maxTtl: 1h
      approvals: 1
  never:
    exec: [/usr/bin/nsenter]
";

/// Size of the binary the digest rows hash: about the shell the VM's
/// submit benchmark grants.
const PINNED_BYTES: usize = 2 << 20;
/// Submissions of the pinned binary.
const PINNED_SUBMITS: usize = 200;

fn name(s: &str) -> anyhow::Result<artifact::Name> {
    s.parse().map_err(|e: String| anyhow::anyhow!(e))
}

fn whole(t: SystemTime) -> SystemTime {
    let s = t
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    SystemTime::UNIX_EPOCH + Duration::from_secs(s)
}

/// The load average (1, 5, 15 minutes) as `/proc/loadavg` has it.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .take(3)
        .collect::<Vec<_>>()
        .join(" ")
}

/// CPU time this thread has used.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec it is given, nothing else;
    // CLOCK_THREAD_CPUTIME_ID is always valid for the calling thread.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &raw mut ts) };
    Duration::new(
        u64::try_from(ts.tv_sec).unwrap_or(0),
        u32::try_from(ts.tv_nsec).unwrap_or(0),
    )
}

/// One loop's samples (wall-clock ns per artifact) and the thread's CPU
/// time over the whole loop.
struct Samples {
    ns: Vec<u64>,
    cpu: Duration,
}

/// Runs `f` once per item of `items`, timing each call (wall clock) and
/// the loop (thread CPU time).
fn measure<T>(items: &[T], mut f: impl FnMut(&T) -> anyhow::Result<()>) -> anyhow::Result<Samples> {
    let mut ns = Vec::with_capacity(items.len());
    let cpu = thread_cpu();
    for item in items {
        let t = Instant::now();
        f(item)?;
        ns.push(u64::try_from(t.elapsed().as_nanos())?);
    }
    Ok(Samples {
        ns,
        cpu: thread_cpu().saturating_sub(cpu),
    })
}

fn summary(name: &str, s: Samples, base_p50: f64) -> serde_json::Value {
    let Samples { mut ns, cpu } = s;
    ns.sort_unstable();
    let at = |q: f64| {
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "index"
        )]
        let i = ((ns.len() as f64 - 1.0) * q).round() as usize;
        ns[i]
    };
    let (p50, p99) = (at(0.5), at(0.99));
    let total: u64 = ns.iter().sum();
    #[expect(clippy::cast_precision_loss, reason = "report")]
    let per_sec = ns.len() as f64 / (total as f64 / 1e9);
    #[expect(clippy::cast_precision_loss, reason = "report")]
    let per_cpu_sec = ns.len() as f64 / cpu.as_secs_f64();
    #[expect(clippy::cast_precision_loss, reason = "report")]
    let ratio = p50 as f64 / base_p50;
    println!(
        "| {name} | {:.1} µs | {:.1} µs | {per_cpu_sec:.0} | {per_sec:.0} | {ratio:.2}x |",
        p50 as f64 / 1e3,
        p99 as f64 / 1e3
    );
    serde_json::json!({
        "name": name,
        "p50_ns": p50,
        "p99_ns": p99,
        "per_second": per_sec,
        "per_cpu_second": per_cpu_sec,
        "ratio_p50": ratio,
    })
}

/// Runs the benchmark; returns the JSON document.
pub fn run(n: usize) -> anyhow::Result<serde_json::Value> {
    let dir = std::env::temp_dir().join(format!("acelogic-authz-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("policies"))?;
    std::fs::write(
        dir.join("policies/p.yaml"),
        POLICY.replace("{dir}", &dir.display().to_string()),
    )?;
    let set = policy::load_dir(&dir.join("policies"))
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .set;
    let issuer = SecretKey::from_seed("ci", Role::Issuer, [3; 32])?;
    let approver = SecretKey::from_seed("alice", Role::Approver, [4; 32])?;
    let trust = TrustStore::new([issuer.trusted(), approver.trusted()], [])?;
    let now = whole(SystemTime::now());
    let sign_exec = |path: &str, sha256: Option<[u8; 32]>| -> anyhow::Result<Vec<u8>> {
        let a = Artifact {
            version: 1,
            id: ArtifactId::generate()?,
            issuer: name("ci")?,
            subject: Subject {
                workload: name("agent")?,
                node: None,
                cgroup: None,
            },
            audience: name("bench")?,
            not_before: now - Duration::from_secs(5),
            expires: now + Duration::from_secs(600),
            capabilities: vec![Capability::Exec(ExecCap {
                path: path.parse()?,
                sha256: sha256.map(acelogic_domain::capability::Sha256Digest),
            })],
            max_uses: None,
            operation_key: None,
            approval_ref: None,
            reason: "bench".to_owned(),
            parent: None,
        };
        Ok(artifact::sign(&a.to_json()?, &[&issuer, &approver]).to_json())
    };
    let envelopes: Vec<Vec<u8>> = (0..n)
        .map(|_| sign_exec("/bin/sh", None))
        .collect::<anyhow::Result<_>>()?;
    let settings = Settings {
        audience: "bench".into(),
        node: "n".into(),
        clock_skew: Duration::from_secs(30),
    };
    let frozen = BTreeSet::new();
    let cgroups = HashMap::new();

    // Baseline: one bare signature check over the first envelope's PAE.
    let env = artifact::Envelope::from_json(&envelopes[0])?;
    let pae = env.pae();
    let sig = ed25519_dalek::Signature::from_slice(&env.signatures[0].sig)?;
    let key = issuer.public();
    let load_start = loadavg();
    let base = measure(&envelopes, |_| {
        key.verify_strict(&pae, &sig).context("baseline verify")?;
        Ok(())
    })?;
    let mut sorted = base.ns.clone();
    sorted.sort_unstable();
    #[expect(clippy::cast_precision_loss, reason = "report")]
    let base_p50 = sorted[sorted.len() / 2] as f64;

    let verify = measure(&envelopes, |e| {
        artifact::verify(e, &trust)?;
        Ok(())
    })?;
    let decide = measure(&envelopes, |e| {
        let v = artifact::verify(e, &trust)?;
        let resolved = check::resolve_names(&v.artifact.capabilities);
        let cx = Context {
            settings: &settings,
            policy: &set,
            frozen: &frozen,
            now,
            resolved: &resolved,
            cgroups: &cgroups,
        };
        check::admit(&v.artifact, v.approvers.len(), &cx).map_err(|r| anyhow::anyhow!("{r}"))?;
        Ok(())
    })?;

    let authz_settings = settings.clone();
    let mut authz = Authorizer::new(State::open(&dir.join("state.db"))?, settings);
    let mut table = Memory::default();
    let inputs = Inputs {
        policy: &set,
        trust: &trust,
        frozen: &frozen,
        cgroups: &cgroups,
        now,
    };
    let submit = measure(&envelopes, |e| {
        authz
            .submit(e, None, &inputs, &mut table)
            .map_err(|r| anyhow::anyhow!("{r}"))?;
        Ok(())
    })?;

    // A binary pinned by sha256: its digest uncached and from the cache,
    // then a submission of it in its two halves.
    std::fs::create_dir_all(dir.join("bin"))?;
    let pinned = dir.join("bin/tool");
    let content: Vec<u8> = (0..PINNED_BYTES)
        .map(|i| u8::try_from(i % 251).unwrap_or(0))
        .collect();
    std::fs::write(&pinned, &content)?;
    std::fs::set_permissions(&pinned, std::fs::Permissions::from_mode(0o755))?;
    let sha: [u8; 32] = Sha256::digest(&content).into();
    // Until its ctime is older than this, the cache hashes it every time.
    std::thread::sleep(digest::SETTLE + Duration::from_millis(200));
    let pinned_path = pinned.display().to_string();
    let pinned_envelopes: Vec<Vec<u8>> = (0..PINNED_SUBMITS)
        .map(|_| sign_exec(&pinned_path, Some(sha)))
        .collect::<anyhow::Result<_>>()?;
    let uncached = measure(&pinned_envelopes, |_| {
        let got = DigestCache::new(1, digest::SETTLE).sha256(&std::fs::File::open(&pinned)?)?;
        anyhow::ensure!(got == sha, "digest");
        Ok(())
    })?;
    digest::sha256(&std::fs::File::open(&pinned)?)?;
    let before = digest::stats();
    let cached = measure(&pinned_envelopes, |_| {
        let got = digest::sha256(&std::fs::File::open(&pinned)?)?;
        anyhow::ensure!(got == sha, "digest");
        Ok(())
    })?;
    let mut authz = Authorizer::new(State::open(&dir.join("pinned.db"))?, authz_settings);
    let mut prepared = Vec::with_capacity(PINNED_SUBMITS);
    let prepare = measure(&pinned_envelopes, |e| {
        prepared.push(
            authz
                .prepare(e, None, &inputs)
                .map_err(|r| anyhow::anyhow!("{r}"))?,
        );
        Ok(())
    })?;
    let hits = digest::stats().hits - before.hits;
    let mut prepared = prepared.into_iter();
    let commit = measure(&pinned_envelopes, |_| {
        let p = prepared.next().context("prepared")?;
        authz
            .commit(p, None, &mut table, now)
            .map_err(|r| anyhow::anyhow!("{r}"))?;
        Ok(())
    })?;
    let load_end = loadavg();
    let _ = std::fs::remove_dir_all(&dir);
    println!("load average {load_start} before, {load_end} after (other work shares this machine)");
    println!(
        "| per artifact ({n} distinct envelopes) | p50 | p99 | per CPU-second, one core | per wall-clock second | p50 vs baseline |"
    );
    println!("|---|---|---|---|---|---|");
    let rows = [
        summary(
            "ed25519 verify_strict, one signature (baseline)",
            base,
            base_p50,
        ),
        summary(
            "verify envelope (issuer + approver signatures)",
            verify,
            base_p50,
        ),
        summary(
            "verify and decide (time, audience, subject, policy, terms)",
            decide,
            base_p50,
        ),
        summary(
            "full submit (+ durable claim in SQLite, grants in memory)",
            submit,
            base_p50,
        ),
    ];
    println!();
    println!(
        "| a {} MiB binary pinned by sha256 ({PINNED_SUBMITS} submissions; {hits} digests from the cache) | p50 | p99 | per CPU-second | per wall-clock second | p50 vs baseline |",
        PINNED_BYTES >> 20
    );
    println!("|---|---|---|---|---|---|");
    let pinned_rows = [
        summary(
            "sha256 of the binary, not cached (read and hash)",
            uncached,
            base_p50,
        ),
        summary(
            "sha256 of the binary from the digest cache",
            cached,
            base_p50,
        ),
        summary(
            "prepare: verify, decide, resolve the binary (digest cached)",
            prepare,
            base_p50,
        ),
        summary(
            "commit: retire, durable claim, install, record",
            commit,
            base_p50,
        ),
    ];
    Ok(serde_json::json!({
        "pinned_rows": pinned_rows,
        "artifacts": n,
        "load_start": load_start,
        "load_end": load_end,
        "rows": rows,
        "summary": summary_rows(&rows),
    }))
}

/// The headline rows of the combined table, with the targets: p99 verify
/// and decide under 1 ms, and over 10,000 artifacts per second on one
/// core (per second of the thread's CPU time; the wall-clock rate is a row
/// of its own, without a target, as other work on the machine lowers it).
fn summary_rows(rows: &[serde_json::Value; 4]) -> serde_json::Value {
    const BENCH: &str = "verify and decide (native, two-signature artifacts)";
    let f = |i: usize, k: &str| rows[i][k].as_f64().unwrap_or(f64::NAN);
    let base = "ed25519 verify_strict, one signature";
    rows_json(&[
        Row::new(BENCH, "verify and decide, p50", f(2, "p50_ns"), Unit::Nanos)
            .against(base, f(0, "p50_ns")),
        Row::new(BENCH, "verify and decide, p99", f(2, "p99_ns"), Unit::Nanos)
            .against(base, f(0, "p99_ns"))
            .target(Target::AtMost(1e6)),
        Row::new(
            BENCH,
            "verify and decide, one core (per CPU-second)",
            f(2, "per_cpu_second"),
            Unit::PerSecond,
        )
        .against(base, f(0, "per_cpu_second"))
        .target(Target::AtLeast(10_000.0)),
        Row::new(
            BENCH,
            "verify and decide, per wall-clock second",
            f(2, "per_second"),
            Unit::PerSecond,
        )
        .against(base, f(0, "per_second")),
        Row::new(
            BENCH,
            "full submit (durable claim in SQLite), p50",
            f(3, "p50_ns"),
            Unit::Nanos,
        )
        .against(base, f(0, "p50_ns")),
    ])
}
