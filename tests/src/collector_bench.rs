//! Collector ingest benchmark (native, no kernel): `cargo xtask bench`
//! runs it after the verify-and-decide benchmark.
//!
//! The records are a realistic node mix (`lineage::sample::bulk`: per
//! process a fork, an exec with argv, six decisions over files and
//! connections, an exit), chained and signed in batches of 1024 as a node
//! journal ships them, prepared before timing. Rows, each a rate in
//! records per second measured in this run:
//!
//! - baseline: decode each record and recompute its chain hash, one core;
//! - verify: the collector's whole stateless check of every batch
//!   (signature, hashes, decoding, node, derived columns);
//! - store: verified batches written by the store alone (SQLite WAL,
//!   `synchronous=FULL`, one transaction per batch, every index);
//! - ingest: the real collector (`collector::start`) fed over gRPC on
//!   loopback by a client keeping 8 batches in flight, timed from the first
//!   batch sent to the last acknowledgement (verification, storage and
//!   durable commit included).
//!
//! Also reported: the store's bytes per record once the collector closed
//! it (records, columns, indexes, chain and checkpoint rows).

use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

use acelogic_collector::{
    self as collector, now_unix_nano,
    pb::{self, ingest_client::IngestClient},
    store::Store,
    verify::{self, Limits},
};
use acelogic_domain::artifact::{Role, SecretKey};
use acelogic_lineage::{
    chain::{self, GENESIS},
    pb as lpb, sample, wire,
};
use anyhow::{Context as _, bail};
use prost::Message as _;

use crate::summary::{Row, Target, Unit, rows_json};

const NODE: &str = "bench-node";
const BATCH: usize = 1024;
const WINDOW: usize = 8;

fn per_second(n: usize, d: Duration) -> f64 {
    #[expect(clippy::cast_precision_loss, reason = "report")]
    let n = n as f64;
    n / d.as_secs_f64()
}

/// CPU time of the whole process so far (user + system).
fn cpu() -> Duration {
    // SAFETY: getrusage writes the struct it is given, nothing else.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above; RUSAGE_SELF is always valid.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &raw mut u) };
    let tv = |t: libc::timeval| {
        Duration::from_secs(u64::try_from(t.tv_sec).unwrap_or(0))
            + Duration::from_micros(u64::try_from(t.tv_usec).unwrap_or(0))
    };
    tv(u.ru_utime) + tv(u.ru_stime)
}

/// A phase's wall and CPU time.
#[derive(Debug, Clone, Copy)]
struct Timed {
    wall: Duration,
    cpu: Duration,
}

fn timed<T>(f: impl FnOnce() -> T) -> (T, Timed) {
    let (t, c) = (Instant::now(), cpu());
    let out = f();
    (
        out,
        Timed {
            wall: t.elapsed(),
            cpu: cpu().saturating_sub(c),
        },
    )
}

fn row(name: &str, n: usize, t: Timed, base: f64) -> serde_json::Value {
    let rate = per_second(n, t.wall);
    println!(
        "| {name} | {rate:.0} | {:.2}x | {:.2} s | {:.2} s |",
        rate / base,
        t.wall.as_secs_f64(),
        t.cpu.as_secs_f64()
    );
    serde_json::json!({"name": name, "per_second": rate, "ratio": rate / base,
        "seconds": t.wall.as_secs_f64(), "cpu_seconds": t.cpu.as_secs_f64()})
}

/// Runs the benchmark over `n` records; returns the JSON document.
pub fn run(n: usize) -> anyhow::Result<serde_json::Value> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(run_async(n))
}

async fn run_async(n: usize) -> anyhow::Result<serde_json::Value> {
    let dir = std::env::temp_dir().join(format!("acelogic-collector-bench-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let key = SecretKey::from_seed(NODE, Role::Lineage, [7; 32])?;
    let jid = [0x42; 16];

    // A node's journal, chained and cut into signed batches.
    let records: Vec<Vec<u8>> = sample::bulk(NODE, now_unix_nano() - 3_600_000_000_000, n)
        .iter()
        .map(prost::Message::encode_to_vec)
        .collect();
    let record_bytes: usize = records.iter().map(Vec::len).sum();
    let mut prev = GENESIS;
    let entries: Vec<lpb::Entry> = records
        .into_iter()
        .zip(1u64..)
        .map(|(record, seq)| {
            let hash = chain::entry_hash(NODE, &jid, seq, &prev, &record);
            let e = lpb::Entry {
                seq,
                prev_hash: prev.to_vec(),
                hash: hash.to_vec(),
                record,
            };
            prev = hash;
            e
        })
        .collect();
    let batches: Vec<pb::Batch> = entries
        .chunks(BATCH)
        .map(|es| pb::Batch {
            signature: wire::sign_batch(&key, NODE, &jid, es),
            entries: es.to_vec(),
        })
        .collect();

    // Baseline: decode and rehash, nothing else.
    let (decoded, base_time) = timed(|| {
        let mut prev = GENESIS;
        for e in &entries {
            let r = lpb::Record::decode(e.record.as_slice())?;
            std::hint::black_box(&r);
            prev = chain::entry_hash(NODE, &jid, e.seq, &prev, &e.record);
        }
        std::hint::black_box(prev);
        Ok::<_, prost::DecodeError>(())
    });
    decoded.context("decode")?;
    let base = per_second(n, base_time.wall);

    // The collector's stateless checks of every batch, one core.
    let hello = verify::check_hello(
        &wire::make_hello(&key, NODE, &jid, now_unix_nano()),
        now_unix_nano(),
        Duration::from_secs(300),
    )
    .map_err(|r| anyhow::anyhow!("{r}"))?;
    let (checked, verify_time) = timed(|| {
        batches
            .iter()
            .map(|b| verify::check_batch(&hello, b.clone(), Limits::default()))
            .collect::<Result<Vec<verify::CheckedBatch>, _>>()
    });
    let checked = checked.map_err(|r| anyhow::anyhow!("{r}"))?;

    // The store alone.
    let mut store = Store::open(&dir.join("store-only.db"))?;
    let (stored, store_time) = timed(|| {
        for (i, b) in checked.iter().enumerate() {
            let r = store.commit_group(&[(b, i > 0)], now_unix_nano())?;
            if let Some(Err(e)) = r.first() {
                bail!("store refused a batch: {e}");
            }
        }
        Ok(())
    });
    stored?;
    drop(store);
    drop(checked);

    // The real collector over gRPC on loopback.
    let db = dir.join("collector.db");
    let running = collector::start(collector::Config {
        listen: "127.0.0.1:0".parse()?,
        db: db.clone(),
        key: dir.join("collector.key"),
        nodes: None,
        accept_new_nodes: true,
        tls: None,
        checkpoint_interval: Duration::from_secs(10),
        otlp_endpoint: None,
        otlp_ca: None,
        metrics_listen: None,
        limits: Limits::default(),
        clock_skew: Duration::from_secs(300),
    })
    .await?;
    let mut client = IngestClient::connect(format!("http://{}", running.addr)).await?;
    let (tx, rx) = tokio::sync::mpsc::channel(WINDOW + 2);
    tx.send(pb::ShipRequest {
        msg: Some(pb::ship_request::Msg::Hello(wire::make_hello(
            &key,
            NODE,
            &jid,
            now_unix_nano(),
        ))),
    })
    .await?;
    let mut inbound = client
        .ship(tokio_stream::wrappers::ReceiverStream::new(rx))
        .await?
        .into_inner();
    match inbound.message().await? {
        Some(pb::ShipResponse {
            msg: Some(pb::ship_response::Msg::Welcome(w)),
        }) if w.next_seq == 1 => {}
        other => bail!("no Welcome: {other:?}"),
    }
    let last = entries.last().map_or(0, |e| e.seq);
    drop(entries);
    let (t, c) = (Instant::now(), cpu());
    let mut pending = batches.into_iter();
    let mut in_flight = VecDeque::new();
    loop {
        while in_flight.len() < WINDOW {
            let Some(b) = pending.next() else { break };
            in_flight.push_back(b.entries.last().map_or(0, |e| e.seq));
            tx.send(pb::ShipRequest {
                msg: Some(pb::ship_request::Msg::Batch(b)),
            })
            .await?;
        }
        match inbound.message().await? {
            Some(pb::ShipResponse {
                msg: Some(pb::ship_response::Msg::Ack(a)),
            }) => {
                if in_flight.pop_front() != Some(a.seq) {
                    bail!("acknowledged seq {} out of order", a.seq);
                }
                if a.seq == last {
                    break;
                }
            }
            other => bail!("unexpected answer: {other:?}"),
        }
    }
    let ingest_time = Timed {
        wall: t.elapsed(),
        cpu: cpu().saturating_sub(c),
    };
    drop(tx);
    drop(inbound);
    running.stop().await?;
    let db_bytes = std::fs::metadata(&db)?.len()
        + std::fs::metadata(db.with_extension("db-wal")).map_or(0, |m| m.len());
    let stored: i64 =
        rusqlite::Connection::open(&db)?
            .query_row("SELECT COUNT(*) FROM records", [], |r| r.get(0))?;
    if usize::try_from(stored)? != n {
        bail!("the collector stored {stored} records, not {n}");
    }
    let _ = std::fs::remove_dir_all(&dir);

    #[expect(clippy::cast_precision_loss, reason = "report")]
    let (per_record, avg) = (db_bytes as f64 / n as f64, record_bytes as f64 / n as f64);
    println!(
        "| collector ingest, {n} records (avg {avg:.0} bytes encoded), batches of {BATCH} | records/s | vs baseline | wall | CPU (2 cores) |"
    );
    println!("|---|---|---|---|---|");
    let rows = vec![
        row(
            "decode + chain hash only (baseline, one core)",
            n,
            base_time,
            base,
        ),
        row(
            "stateless batch checks (signature, hashes, decode, columns), one core",
            n,
            verify_time,
            base,
        ),
        row(
            "store only (SQLite WAL, synchronous=FULL, indexes)",
            n,
            store_time,
            base,
        ),
        row(
            "full ingest over gRPC loopback, verified and durably stored",
            n,
            ingest_time,
            base,
        ),
    ];
    println!(
        "collector store: {per_record:.0} bytes per record on disk ({avg:.0} bytes of encoded record)"
    );
    Ok(serde_json::json!({
        "records": n,
        "batch_entries": BATCH,
        "avg_record_bytes": avg,
        "store_bytes_per_record": per_record,
        "ingest_per_second": per_second(n, ingest_time.wall),
        "baseline_per_second": base,
        "ingest_vs_baseline": per_second(n, ingest_time.wall) / base,
        "rows": rows,
        "summary": rows_json(&[
            Row::new(
                "collector ingest (native)",
                "full ingest over gRPC loopback, verified and durably stored",
                per_second(n, ingest_time.wall),
                Unit::PerSecond,
            )
            .against("decode + chain hash only, one core", base)
            .target(Target::AtLeast(150_000.0)),
            Row::new(
                "collector ingest (native)",
                "store only (SQLite WAL, synchronous=FULL)",
                per_second(n, store_time.wall),
                Unit::PerSecond,
            )
            .against("decode + chain hash only, one core", base),
        ]),
    }))
}
