//! Eight engines as eight nodes race 200 submissions with overlapping
//! ids and operation keys while etcd is killed, restarted and paused at
//! random. Every step is checked against what the cluster promised.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use acelogic_cluster::ClusterAnswer;
use acelogic_domain::Reason;

use crate::common::{Etcd, Node, Signed, artifact};

const NODES: usize = 8;
const SUBMISSIONS: usize = 200;
const ARTIFACTS: usize = 120;
const KEYS: usize = 12;

/// xorshift64*: a reproducible stream from a printed seed.
#[derive(Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap()
    }
}

/// What the test knows happened, to check each step against.
#[derive(Default)]
struct Ledger {
    accepted: HashMap<String, String>,
    /// key -> (node, artifact, token) of the live holder.
    live: HashMap<String, (String, String, u64)>,
    /// key -> artifact that completed it.
    completed: HashMap<String, String>,
    last_token: HashMap<String, u64>,
    outcomes: BTreeMap<&'static str, usize>,
    violations: Vec<String>,
}

struct Plan {
    signed: Signed,
    key: Option<String>,
    one_use: bool,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_nodes_race_while_etcd_is_killed_and_paused() {
    let seed = std::env::var("ACELOGIC_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            u64::try_from(
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_nanos()
                    % u128::from(u64::MAX),
            )
            .unwrap()
                | 1
        });
    println!("chaos seed {seed} (ACELOGIC_CHAOS_SEED={seed} repeats the plan)");
    let mut rng = Rng(seed);
    let etcd = Arc::new(Mutex::new(Etcd::start()));
    let config = etcd.lock().unwrap().config("/chaos/");

    // 120 artifacts over 12 keys (a quarter with none, a third one-use);
    // 200 submissions pick among them, so ids repeat across nodes.
    let plans: Arc<Vec<Plan>> = Arc::new(
        (0..ARTIFACTS)
            .map(|i| {
                let key = (i % 4 != 0).then(|| format!("op/{}", rng.below(KEYS)));
                let one_use = key.is_some() && i % 3 == 0;
                Plan {
                    signed: artifact(
                        443,
                        key.as_deref(),
                        one_use.then_some(1),
                        None,
                        Duration::from_secs(3600),
                    ),
                    key,
                    one_use,
                }
            })
            .collect(),
    );
    let picks: Vec<usize> = (0..SUBMISSIONS).map(|_| rng.below(ARTIFACTS)).collect();
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));

    let chaos = {
        let etcd = Arc::clone(&etcd);
        let done = Arc::clone(&done);
        let mut rng = rng.clone();
        std::thread::spawn(move || {
            let mut kills = 0;
            let mut pauses = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(300 + 100 * rng.below(8) as u64));
                if rng.below(2) == 0 {
                    etcd.lock().unwrap().restart();
                    kills += 1;
                } else {
                    etcd.lock().unwrap().pause();
                    std::thread::sleep(Duration::from_millis(1000 + 500 * rng.below(5) as u64));
                    etcd.lock().unwrap().resume();
                    pauses += 1;
                }
            }
            (kills, pauses)
        })
    };

    let started = Instant::now();
    let mut tasks = Vec::new();
    for n in 0..NODES {
        let mine: Vec<usize> = picks.iter().copied().skip(n).step_by(NODES).collect();
        let plans = Arc::clone(&plans);
        let ledger = Arc::clone(&ledger);
        let config = config.clone();
        let mut rng = Rng(seed ^ (n as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
        tasks.push(tokio::spawn(async move {
            let mut node = Node::new(&format!("node-{n}"), &config).await;
            for i in mine {
                let plan = &plans[i];
                let (out, answer) = node.submit(&plan.signed.envelope).await;
                step(plan, out, answer, &ledger, &mut node, &mut rng).await;
            }
            node
        }));
    }
    let mut nodes = Vec::new();
    for t in tasks {
        nodes.push(t.await.unwrap());
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let (kills, pauses) = chaos.join().unwrap();
    let elapsed = started.elapsed();

    // The store is back for good: every queued settlement goes through.
    etcd.lock().unwrap().resume();
    let deadline = Instant::now() + Duration::from_secs(60);
    for node in &mut nodes {
        while node.flush().await > 0 {
            assert!(
                Instant::now() < deadline,
                "{}: outbox never drained",
                node.name
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    // The store agrees with the ledger, key by key.
    let l = std::mem::take(&mut *ledger.lock().unwrap());
    let ops = nodes[0].store.operations().await.unwrap();
    let mut violations = l.violations.clone();
    for op in &ops {
        let want = l.live.get(&op.key).map(|(_, a, t)| (a.clone(), *t));
        let have = op.holder.as_ref().map(|(h, t)| (h.artifact.clone(), *t));
        if want != have {
            violations.push(format!(
                "key {}: store holder {have:?}, ledger {want:?}",
                op.key
            ));
        }
        let done = op.completed.as_ref().map(|c| c.artifact.clone());
        if done.as_ref() != l.completed.get(&op.key) {
            violations.push(format!(
                "key {}: store completed {done:?}, ledger {:?}",
                op.key,
                l.completed.get(&op.key)
            ));
        }
    }
    for (id, node) in &l.accepted {
        match nodes[0].store.spent(id).await.unwrap() {
            Some(s) if s.node == *node => {}
            other => violations.push(format!("accepted {id} on {node}; store spent {other:?}")),
        }
    }
    println!(
        "chaos: {SUBMISSIONS} submissions on {NODES} nodes in {elapsed:.1?}, etcd killed {kills} \
         and paused {pauses} times; outcomes {:?}; {} ids accepted, {} keys held, {} completed",
        l.outcomes,
        l.accepted.len(),
        l.live.len(),
        l.completed.len()
    );
    assert!(
        violations.is_empty(),
        "violations:\n{}",
        violations.join("\n")
    );
    assert!(kills + pauses > 0, "the chaos thread never struck");
    assert!(
        l.outcomes
            .get("cluster-store-unavailable")
            .copied()
            .unwrap_or(0)
            > 0,
        "no submission ever met an unavailable store: the chaos did not bite"
    );
    assert!(
        l.outcomes.get("accepted").copied().unwrap_or(0) > 0,
        "nothing was ever accepted"
    );
}

/// Checks one submission's outcome against the ledger, then sometimes
/// uses up or revokes what was accepted.
async fn step(
    plan: &Plan,
    out: Result<acelogic_authz::Accepted, acelogic_domain::Refusal>,
    answer: Option<ClusterAnswer>,
    ledger: &Mutex<Ledger>,
    node: &mut Node,
    rng: &mut Rng,
) {
    let id = &plan.signed.id;
    let name = node.name.clone();
    let name = name.as_str();
    let accepted = {
        let mut guard = ledger.lock().unwrap();
        let l = &mut *guard;
        match &out {
            Ok(a) => {
                *l.outcomes.entry("accepted").or_default() += 1;
                if !matches!(answer, Some(ClusterAnswer::Claimed { .. })) {
                    l.violations
                        .push(format!("{name} accepted {id} on answer {answer:?}"));
                }
                if let Some(other) = l.accepted.insert(id.clone(), name.to_owned()) {
                    l.violations
                        .push(format!("{id} accepted on {other} and {name}"));
                }
                if let Some(key) = &plan.key {
                    let token = a.fencing_token.unwrap_or(0);
                    if let Some(h) = l.live.get(key) {
                        l.violations
                            .push(format!("{key}: {name} holds {id} while {h:?} is live"));
                    }
                    if let Some(c) = l.completed.get(key) {
                        l.violations.push(format!(
                            "{key}: {name} accepted {id} after {c} completed it"
                        ));
                    }
                    if let Some(last) = l.last_token.get(key).filter(|t| **t >= token) {
                        l.violations
                            .push(format!("{key}: token {token} after {last}"));
                    }
                    l.last_token.insert(key.clone(), token);
                    l.live
                        .insert(key.clone(), (name.to_owned(), id.clone(), token));
                }
                Some(a.grant_id)
            }
            Err(r) => {
                let allowed = [
                    Reason::Replayed,
                    Reason::OperationConflict,
                    Reason::OperationCompleted,
                    Reason::ClusterStoreUnavailable,
                ];
                if !allowed.contains(&r.code) {
                    l.violations.push(format!("{name}: {id} refused {r}"));
                }
                *l.outcomes.entry(r.code.as_str()).or_default() += 1;
                None
            }
        }
    };
    let Some(grant_id) = accepted else { return };
    let Some(key) = &plan.key else { return };
    match rng.below(3) {
        // The holder's last use: completed (one-use) or held on.
        0 if plan.one_use => {
            {
                let mut l = ledger.lock().unwrap();
                l.live.remove(key);
                l.completed.insert(key.clone(), id.clone());
            }
            node.use_up(grant_id).await;
        }
        // Revoked: the key is free again once the store hears of it.
        1 => {
            ledger.lock().unwrap().live.remove(key);
            node.revoke(id).await.unwrap();
        }
        _ => {}
    }
}
