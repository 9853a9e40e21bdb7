//! Cluster store benchmark (native, real etcd on loopback): `cargo xtask
//! bench` runs it. The same engine submits artifacts with operation keys
//! against the node-local store alone (the baseline, same run), then
//! against etcd (prepare, claim in etcd, commit), one at a time; then
//! eight engines, as eight nodes, submit at once against the one etcd.

use std::{
    collections::{BTreeSet, HashMap},
    time::{Duration, Instant, SystemTime},
};

use acelogic_authz::{Authorizer, Inputs, check::Settings, state::State};
use acelogic_cluster::{ClusterAnswer, Config, EtcdStore};
use acelogic_domain::{
    artifact::{self, Artifact, ArtifactId, Role, SecretKey, Subject, TrustStore},
    capability::{Capability, ExecCap},
    policy::{self, PolicySet},
};
use anyhow::Context as _;

use crate::{
    authz_bench::Memory,
    etcd::Etcd,
    summary::{Row, Unit, rows_json},
};

const POLICY: &str = "apiVersion: acelogic.dev/v1
kind: CapabilityPolicy
metadata: {name: bench}
spec:
  workloads:
    - {name: agent, cgroups: [/bench]}
  grantable:
    - name: tools
      exec: [/bin/sh]
      issuers: [ci]
      maxTtl: 1h
";

/// Submitters at once, and artifacts each.
const NODES: usize = 8;

struct World {
    set: PolicySet,
    trust: TrustStore,
    issuer: SecretKey,
    dir: crate::fixtures::Scratch,
}

impl World {
    fn envelopes(&self, n: usize, tag: &str) -> anyhow::Result<Vec<Vec<u8>>> {
        let secs = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)?
            .as_secs();
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(secs);
        (0..n)
            .map(|i| {
                let a = Artifact {
                    version: 1,
                    id: ArtifactId::generate()?,
                    issuer: "ci".parse().map_err(|e: String| anyhow::anyhow!(e))?,
                    subject: Subject {
                        workload: "agent".parse().map_err(|e: String| anyhow::anyhow!(e))?,
                        node: None,
                        cgroup: None,
                    },
                    audience: "bench".parse().map_err(|e: String| anyhow::anyhow!(e))?,
                    not_before: now - Duration::from_secs(5),
                    expires: now + Duration::from_secs(600),
                    capabilities: vec![Capability::Exec(ExecCap {
                        path: "/bin/sh".parse()?,
                        sha256: None,
                    })],
                    max_uses: None,
                    operation_key: Some(format!("{tag}/{i}")),
                    approval_ref: None,
                    reason: "bench".to_owned(),
                    parent: None,
                };
                Ok(artifact::sign(&a.to_json()?, &[&self.issuer]).to_json())
            })
            .collect()
    }

    fn engine(&self, node: &str, clustered: bool) -> anyhow::Result<Authorizer> {
        let mut a = Authorizer::new(
            State::open(&self.dir.join(&format!("{node}.db")))?,
            Settings {
                audience: "bench".into(),
                node: node.into(),
                clock_skew: Duration::from_secs(30),
            },
        );
        if clustered {
            a.set_clustered();
        }
        Ok(a)
    }
}

/// One submission as the daemon makes it; its latency in ns.
async fn submit(
    w: &World,
    authz: &mut Authorizer,
    table: &mut Memory,
    store: Option<&EtcdStore>,
    env: &[u8],
) -> anyhow::Result<u64> {
    let frozen = BTreeSet::new();
    let cgroups = HashMap::new();
    let t = Instant::now();
    let now = SystemTime::now();
    let inputs = Inputs {
        policy: &w.set,
        trust: &w.trust,
        frozen: &frozen,
        cgroups: &cgroups,
        now,
    };
    let p = authz
        .prepare(env, None, &inputs)
        .map_err(|r| anyhow::anyhow!("{r}"))?;
    let answer = match (&p.cluster, store) {
        (Some(c), Some(s)) => Some(s.claim(c).await),
        _ => None,
    };
    if let Some(ClusterAnswer::Unavailable { why }) = &answer {
        anyhow::bail!("etcd did not answer: {why}");
    }
    authz
        .commit(p, answer, table, now)
        .map_err(|r| anyhow::anyhow!("{r}"))?;
    Ok(u64::try_from(t.elapsed().as_nanos())?)
}

fn quantiles(mut ns: Vec<u64>) -> (f64, f64) {
    ns.sort_unstable();
    let at = |q: f64| {
        #[expect(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss,
            reason = "index"
        )]
        let i = ((ns.len() as f64 - 1.0) * q).round() as usize;
        #[expect(clippy::cast_precision_loss, reason = "report")]
        let v = ns[i] as f64;
        v
    };
    (at(0.5), at(0.99))
}

/// Runs the benchmark with `n` artifacts per row; returns the JSON document.
pub fn run(n: usize) -> anyhow::Result<serde_json::Value> {
    let dir = crate::fixtures::Scratch::new("cluster-bench")?;
    std::fs::create_dir_all(dir.join("policies"))?;
    std::fs::write(dir.join("policies/p.yaml"), POLICY)?;
    let set = policy::load_dir(&dir.join("policies"))
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .set;
    let issuer = SecretKey::from_seed("ci", Role::Issuer, [3; 32])?;
    let trust = TrustStore::new([issuer.trusted()], [])?;
    let etcd = Etcd::start(&dir.join("etcd"))?;
    let w = World {
        set,
        trust,
        issuer,
        dir,
    };
    let config = Config {
        endpoints: vec![etcd.url.clone()],
        prefix: "/bench/".to_owned(),
        tls: None,
        timeout: Duration::from_secs(5),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let local_env = w.envelopes(n, "local")?;
        let mut local = w.engine("local", false)?;
        let mut table = Memory::default();
        let mut local_ns = Vec::with_capacity(n);
        for e in &local_env {
            local_ns.push(submit(&w, &mut local, &mut table, None, e).await?);
        }
        let store = EtcdStore::connect(&config).await?;
        let etcd_env = w.envelopes(n, "one")?;
        let mut clustered = w.engine("one", true)?;
        let mut table = Memory::default();
        let mut etcd_ns = Vec::with_capacity(n);
        for e in &etcd_env {
            etcd_ns.push(submit(&w, &mut clustered, &mut table, Some(&store), e).await?);
        }
        // Eight nodes at once.
        let mut work = Vec::new();
        for i in 0..NODES {
            work.push((
                w.engine(&format!("node-{i}"), true)?,
                w.envelopes(n / NODES, &format!("n{i}"))?,
                EtcdStore::connect(&config).await?,
            ));
        }
        let w = std::sync::Arc::new(w);
        let t = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for (mut authz, envs, store) in work {
            let w = std::sync::Arc::clone(&w);
            tasks.spawn(async move {
                let mut table = Memory::default();
                for e in &envs {
                    submit(&w, &mut authz, &mut table, Some(&store), e).await?;
                }
                anyhow::Ok(envs.len())
            });
        }
        let mut claims = 0;
        while let Some(r) = tasks.join_next().await {
            claims += r??;
        }
        #[expect(clippy::cast_precision_loss, reason = "report")]
        let per_second = claims as f64 / t.elapsed().as_secs_f64();
        let (lp50, lp99) = quantiles(local_ns);
        let (ep50, ep99) = quantiles(etcd_ns);
        println!("| submit ({n} artifacts with an operation key) | p50 | p99 |");
        println!("|---|---|---|");
        println!(
            "| node-local store only (baseline) | {:.2} ms | {:.2} ms |",
            lp50 / 1e6,
            lp99 / 1e6
        );
        println!(
            "| claimed in etcd first | {:.2} ms | {:.2} ms |",
            ep50 / 1e6,
            ep99 / 1e6
        );
        println!("{NODES} submitters at once: {claims} claims in etcd at {per_second:.0}/s");
        const BENCH: &str = "cluster store (etcd on loopback, native)";
        let base = "node-local store only";
        anyhow::Ok(serde_json::json!({
            "artifacts": n,
            "summary": rows_json(&[
                Row::new(BENCH, "submit with etcd, p50", ep50, Unit::Nanos).against(base, lp50),
                Row::new(BENCH, "submit with etcd, p99", ep99, Unit::Nanos).against(base, lp99),
                Row::new(
                    BENCH,
                    &format!("claims per second, {NODES} submitters"),
                    per_second,
                    Unit::PerSecond,
                ),
            ]),
        }))
    })
    .context("the cluster benchmark")
}
