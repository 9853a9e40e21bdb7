//! Shipping and ingest: crash recovery, refusals, gaps.

use std::time::Duration;

use acelogic_collector::pb;
use acelogic_domain::artifact::{Role, SecretKey};
use acelogic_lineage::{
    chain::Hash,
    pb::{self as lpb, record::Body},
    sample,
};
use prost::Message as _;

use crate::support::*;

const MIN: Duration = Duration::from_secs(60);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_collector_resumes_and_stores_every_seq_exactly_once() {
    let dir = Dir::new("kill");
    let node = TestNode::new(&dir, "node-a");
    let nodes = nodes_file(&dir, &[&node]);
    let n: u64 = 100_000;
    node.append(&sample::bulk("node-a", now() - 3_600_000_000_000, 100_000));
    let nodes_arg = nodes.to_str().unwrap();
    let mut c = Collector::start(&dir, &["--nodes", nodes_arg]);
    let addr = c.addr();
    let mut shipper = node.ship(&c.url, None);

    // SIGKILL while the backlog ships: no shutdown path runs.
    shipper.acked(4_000, MIN).await;
    c.kill();
    // One look at the journal: an acknowledgement already in flight when
    // the collector died can still reach the shipper and prune more.
    let (acked, first, head, kept) = {
        let j = node.journal.lock();
        let acked = j.acked();
        let kept = j.read_after(acked, usize::MAX, usize::MAX).unwrap();
        (acked, j.first_stored().unwrap(), j.head().0, kept.len())
    };
    assert_eq!(head, n);
    assert!(
        acked < n,
        "the kill came after the backlog shipped (acked {acked})"
    );
    let stored: i64 = c.count("SELECT COALESCE(MAX(seq), 0) FROM records");
    assert!(
        i64::try_from(acked).unwrap() <= stored,
        "the node pruned up to seq {acked} but the collector stored only up to {stored}"
    );
    assert_eq!(
        first,
        acked + 1,
        "nothing after the acknowledged seq was pruned"
    );
    assert_eq!(kept as u64, n - acked);

    // Restart on the same address; the shipper reconnects by itself.
    let c = Collector::start_on(&dir, &addr, &["--nodes", nodes_arg]);
    shipper.acked(n, Duration::from_secs(240)).await;
    let (n_u64, n) = (n, i64::try_from(n).unwrap());
    assert_eq!(c.count("SELECT COUNT(*) FROM records"), n);
    assert_eq!(c.count("SELECT COUNT(DISTINCT seq) FROM records"), n);
    assert_eq!(c.count("SELECT MIN(seq) FROM records"), 1);
    assert_eq!(c.count("SELECT MAX(seq) FROM records"), n);
    assert_eq!(c.count("SELECT COUNT(*) FROM gaps"), 0);
    assert_eq!(c.count("SELECT COUNT(*) FROM chains"), 1);
    let (code, out, err) = ctl_async(&[
        "lineage",
        "--collector",
        &c.url,
        "verify",
        "--node",
        "node-a",
    ])
    .await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(&format!("seq 1..={n}")), "{out}");
    let j = node.journal.lock();
    assert_eq!((j.acked(), j.pending_bytes()), (n_u64, 0));
    assert_eq!(j.first_stored().unwrap(), n_u64, "only the head stays");
}

/// A codec that sends and receives raw bytes as gRPC messages.
mod raw {
    use prost::bytes::{Buf as _, BufMut as _};
    use tonic::{
        Status,
        codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder},
    };

    #[derive(Debug, Default, Clone)]
    pub(super) struct Raw;

    #[derive(Debug)]
    pub(super) struct RawEncoder;
    #[derive(Debug)]
    pub(super) struct RawDecoder;

    impl Encoder for RawEncoder {
        type Item = Vec<u8>;
        type Error = Status;
        fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
            dst.put_slice(&item);
            Ok(())
        }
    }

    impl Decoder for RawDecoder {
        type Item = Vec<u8>;
        type Error = Status;
        fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
            let v = src.chunk().to_vec();
            src.advance(v.len());
            Ok(Some(v))
        }
    }

    impl Codec for Raw {
        type Encode = Vec<u8>;
        type Decode = Vec<u8>;
        type Encoder = RawEncoder;
        type Decoder = RawDecoder;
        fn encoder(&mut self) -> RawEncoder {
            RawEncoder
        }
        fn decoder(&mut self) -> RawDecoder {
            RawDecoder
        }
    }

    /// Sends `body` as the first message of a Ship call; the final status.
    pub(super) async fn ship(url: &str, body: Vec<u8>) -> Status {
        let channel = tonic::transport::Endpoint::from_shared(url.to_owned())
            .unwrap()
            .connect()
            .await
            .unwrap();
        let mut grpc = tonic::client::Grpc::new(channel);
        grpc.ready().await.unwrap();
        let path = tonic::codegen::http::uri::PathAndQuery::from_static(
            "/acelogic.collector.v1.Ingest/Ship",
        );
        let mut inbound = match grpc
            .streaming(
                tonic::Request::new(tokio_stream::iter(vec![body])),
                path,
                Raw,
            )
            .await
        {
            Ok(r) => r.into_inner(),
            Err(s) => return s,
        };
        loop {
            match inbound.message().await {
                Ok(Some(_)) => {}
                Ok(None) => panic!("the collector accepted a raw body"),
                Err(s) => return s,
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_with_its_reason_and_nothing_is_stored() {
    let dir = Dir::new("bad");
    let node = TestNode::new(&dir, "node-a");
    let nodes = nodes_file(&dir, &[&node]);
    let c = Collector::start(
        &dir,
        &[
            "--nodes",
            nodes.to_str().unwrap(),
            "--max-batch-entries",
            "100",
        ],
    );
    let key = &node.key;
    let other = SecretKey::from_seed("node-a", Role::Lineage, [9; 32]).unwrap();
    let jid = [7u8; 16];
    let (records, _) = sample::session("node-a", now());
    let enc = encoded(&records);
    let good = chain_entries("node-a", &jid, genesis(), &enc);
    let hello = |k: &SecretKey, name: &str| {
        hello_msg(acelogic_lineage::wire::make_hello(k, name, &jid, now()))
    };
    let signed = |es: Vec<lpb::Entry>| {
        let sig = acelogic_lineage::wire::sign_batch(key, "node-a", &jid, &es);
        batch_msg(es, sig)
    };

    let mut cases: Vec<(&str, &str, Vec<pb::ShipRequest>)> = Vec::new();
    // prev_hash of seq 4 does not link to seq 3 (the rest is consistent).
    let mut broken = chain_entries("node-a", &jid, genesis(), &enc[..3]);
    broken.extend(chain_entries("node-a", &jid, (3, [9; 32]), &enc[3..]));
    cases.push((
        "broken chain",
        "broken-chain",
        vec![hello(key, "node-a"), signed(broken)],
    ));
    // A record's bytes changed after it was chained.
    let mut altered = good.clone();
    let mut r = records[4].clone();
    if let Some(Body::Decision(d)) = &mut r.body {
        d.verdict = "allow".into();
    }
    altered[4].record = r.encode_to_vec();
    cases.push((
        "altered bytes",
        "altered",
        vec![hello(key, "node-a"), signed(altered)],
    ));
    // node-b's records in node-a's chain.
    let (foreign, _) = sample::session("node-b", now());
    let foreign = chain_entries("node-a", &jid, genesis(), &encoded(&foreign));
    cases.push((
        "record of another node",
        "wrong-node",
        vec![hello(key, "node-a"), signed(foreign)],
    ));
    let stranger = SecretKey::from_seed("node-z", Role::Lineage, [5; 32]).unwrap();
    cases.push((
        "unknown node",
        "unknown-node",
        vec![hello(&stranger, "node-z")],
    ));
    cases.push((
        "enrolled node, other key",
        "wrong-node-key",
        vec![hello(&other, "node-a")],
    ));
    let forged = batch_msg(
        good.clone(),
        acelogic_lineage::wire::sign_batch(&other, "node-a", &jid, &good),
    );
    cases.push((
        "batch signed by another key",
        "bad-signature",
        vec![hello(key, "node-a"), forged],
    ));
    let big = chain_entries(
        "node-a",
        &jid,
        genesis(),
        &encoded(&sample::bulk("node-a", now(), 101)),
    );
    cases.push((
        "101 entries",
        "oversized",
        vec![hello(key, "node-a"), signed(big)],
    ));
    let junk = chain_entries(
        "node-a",
        &jid,
        genesis(),
        &[vec![0xff, 0xff, 0xff, 0xff, 0x0f]],
    );
    cases.push((
        "record that is not a Record",
        "undecodable",
        vec![hello(key, "node-a"), signed(junk)],
    ));
    let mut stale =
        acelogic_lineage::wire::make_hello(key, "node-a", &jid, now() - 3_600_000_000_000);
    cases.push((
        "hour-old Hello",
        "stale-hello",
        vec![hello_msg(stale.clone())],
    ));
    stale.time_unix_nano = now();
    cases.push((
        "Hello proof for another time",
        "bad-proof",
        vec![hello_msg(stale)],
    ));
    cases.push((
        "batch before Hello",
        "bad-request",
        vec![signed(good.clone())],
    ));

    for (what, want, msgs) in cases {
        let (answers, status) = raw_session(&c.url, msgs).await;
        let status = status.unwrap_or_else(|| panic!("{what}: not refused"));
        assert_eq!(reason(&status), want, "{what}: {status:?}");
        assert!(
            answers
                .iter()
                .all(|a| matches!(a.msg, Some(pb::ship_response::Msg::Welcome(_)))),
            "{what}: acknowledged something: {answers:?}"
        );
        assert_eq!(
            c.count("SELECT COUNT(*) FROM records"),
            0,
            "{what}: stored records"
        );
        assert_eq!(
            c.count("SELECT COUNT(*) FROM chains"),
            0,
            "{what}: made a chain"
        );
    }

    // Raw gRPC bodies: not protobuf at all, and larger than any batch.
    let s = raw::ship(&c.url, vec![0xff; 64]).await;
    assert_eq!(reason(&s), "undecodable", "{s:?}");
    let s = raw::ship(&c.url, vec![0x0a; 6 << 20]).await;
    assert_eq!(reason(&s), "oversized", "{s:?}");
    assert_eq!(c.count("SELECT COUNT(*) FROM records"), 0);

    // The same session done right is stored: the checks above could fail.
    let n = good.len() as u64;
    let (answers, status) =
        raw_session(&c.url, vec![hello(key, "node-a"), signed(good.clone())]).await;
    assert!(status.is_none(), "{status:?}");
    assert!(
        matches!(answers.last().and_then(|a| a.msg.clone()), Some(pb::ship_response::Msg::Ack(a)) if a.seq == n),
        "{answers:?}"
    );
    assert_eq!(
        c.count("SELECT COUNT(*) FROM records"),
        i64::try_from(n).unwrap()
    );
    // A resend after reconnecting is skipped, not duplicated; Welcome
    // says where to resume.
    let (answers, status) =
        raw_session(&c.url, vec![hello(key, "node-a"), signed(good.clone())]).await;
    assert!(status.is_none(), "{status:?}");
    let Some(pb::ship_response::Msg::Welcome(w)) = answers[0].msg.clone() else {
        panic!("{answers:?}");
    };
    let head: Hash = good.last().unwrap().hash.as_slice().try_into().unwrap();
    assert_eq!(
        (w.next_seq, w.head_hash.as_slice()),
        (n + 1, head.as_slice())
    );
    assert_eq!(
        c.count("SELECT COUNT(*) FROM records"),
        i64::try_from(n).unwrap()
    );
    // The same seqs with other content are altered, and still nothing changes.
    let (_, status) = raw_session(
        &c.url,
        vec![hello(key, "node-a"), {
            let mut es = good.clone();
            es.truncate(6);
            let mut r = records[5].clone();
            r.epoch = 99;
            es[5].record = r.encode_to_vec();
            es[5].hash = acelogic_lineage::chain::entry_hash(
                "node-a",
                &jid,
                6,
                &es[4].hash.as_slice().try_into().unwrap(),
                &es[5].record,
            )
            .to_vec();
            signed(es)
        }],
    )
    .await;
    assert_eq!(reason(&status.unwrap()), "altered");
    assert_eq!(
        c.count("SELECT COUNT(*) FROM records"),
        i64::try_from(n).unwrap()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_pruned_past_the_collector_head_is_a_recorded_gap() {
    let dir = Dir::new("gap");
    let node = TestNode::new(&dir, "node-a");
    let c = Collector::start(&dir, &["--accept-new-nodes"]);
    let (records, _) = sample::session("node-a", now() - 60_000_000_000);
    let first = records.len() as u64;
    node.append(&records);
    let mut shipper = node.ship(&c.url, None);
    shipper.acked(first, MIN).await;
    drop(shipper);
    // The node goes on journaling, and loses entries the collector never
    // saw (simulated: acknowledged locally, so pruned).
    node.append(&sample::bulk("node-a", now() - 30_000_000_000, 30));
    node.journal.lock().acknowledge(first + 20).unwrap();
    let mut shipper = node.ship(&c.url, None);
    shipper.acked(first + 30, MIN).await;
    let (from, to) = (first + 1, first + 20);
    assert_eq!(
        c.count(&format!(
            "SELECT COUNT(*) FROM gaps WHERE from_seq = {from} AND to_seq = {to}"
        )),
        1
    );
    assert_eq!(c.count("SELECT COUNT(*) FROM gaps"), 1);
    assert_eq!(c.count("SELECT COUNT(*) FROM alarms WHERE kind = 'gap'"), 1);
    assert_eq!(
        c.count("SELECT COUNT(*) FROM records"),
        i64::try_from(first + 10).unwrap()
    );
    let args = [
        "lineage",
        "--collector",
        &c.url,
        "verify",
        "--node",
        "node-a",
    ];
    let (code, out, err) = ctl_async(&args).await;
    assert_eq!(code, 0, "the chain verifies around the gap: {out}{err}");
    assert!(out.contains(&format!("gap: seq {from}..={to}")), "{out}");
    let (code, _, err) = ctl_async(&[&args[..], &["--strict"]].concat()).await;
    assert_eq!(code, 1, "--strict fails on a gap: {err}");
    assert!(c.log_text().contains("gap"), "the gap is logged");
}
