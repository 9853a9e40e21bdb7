//! Tamper evidence that survives a store edit: an attacker with write
//! access to the collector's database removes the newest records, moves
//! the chain head back and removes the checkpoints above, or removes one
//! checkpoint. The store alone still verifies after the first; the heads
//! kept outside it (the node's signed acknowledged head, an auditor's copy
//! of the newest checkpoint) do not.

use std::time::Duration;

use acelogic_lineage::sample;

use crate::support::*;

const MIN: Duration = Duration::from_secs(60);

/// Ships `records` and waits for their acknowledgement and for `checkpoints`
/// checkpoints of the chain.
async fn ship_and_checkpoint(
    c: &Collector,
    node: &TestNode,
    shipper: &mut Shipper,
    records: &[acelogic_lineage::pb::Record],
    checkpoints: i64,
) -> u64 {
    node.append(records);
    let head = node.journal.lock().head().0;
    shipper.acked(head, MIN).await;
    eventually("a checkpoint of the head", MIN, || {
        c.count(&format!(
            "SELECT COUNT(*) FROM checkpoints WHERE seq = {head} AND log_index = {checkpoints}"
        )) == 1
    })
    .await;
    head
}

fn write(dir: &Dir, name: &str, text: &str) -> String {
    let p = dir.path(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_tail_is_found_by_heads_kept_outside_the_store() {
    let dir = Dir::new("anchors-cut");
    let node = TestNode::new(&dir, "node-a");
    let c = Collector::start(
        &dir,
        &["--accept-new-nodes", "--checkpoint-interval", "100ms"],
    );
    let mut shipper = node.ship(&c.url, None);
    let (first, _) = sample::session("node-a", now());
    let kept_seq = ship_and_checkpoint(&c, &node, &mut shipper, &first, 1).await;
    let (more, _) = sample::session("node-a", now());
    let n = ship_and_checkpoint(&c, &node, &mut shipper, &more, 2).await;
    drop(shipper);
    let base = ["lineage", "--collector", &c.url];

    // What the node kept (its shipper signs each acknowledged head) and
    // what an auditor kept of the collector's checkpoints.
    let state_dir = dir.0.path().display().to_string();
    let (code, node_head, err) = ctl_async(&["lineage", "head", "--state-dir", &state_dir]).await;
    assert_eq!(code, 0, "{err}");
    assert!(node_head.contains(&format!("\n{n}\n")), "{node_head}");
    assert!(node_head.contains("\u{2014} acelogic-node "), "{node_head}");
    let node_head = write(&dir, "node-head.note", &node_head);
    let (code, kept, err) =
        ctl_async(&[&base[..], &["checkpoints", "--node", "node-a"]].concat()).await;
    assert_eq!(code, 0, "{err}");
    assert!(kept.contains("\ncheckpoint 2 "), "{kept}");
    let kept = write(&dir, "auditor.notes", &kept);

    let verify = |anchors: &[&str]| {
        let mut args: Vec<String> = base.iter().map(|s| (*s).to_owned()).collect();
        args.extend(["verify", "--node", "node-a"].map(String::from));
        for a in anchors {
            args.extend(["--anchors".to_owned(), (*a).to_owned()]);
        }
        async move {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            ctl_async(&refs).await
        }
    };
    let (code, out, err) = verify(&[&node_head, &kept]).await;
    assert_eq!(code, 0, "before the cut: {out}{err}");
    assert!(out.contains("2 anchor(s)"), "{out}");

    // The cut: the newest records, the head and the checkpoints above.
    let db = c.sql();
    let kept_hash: Vec<u8> = db
        .query_row(
            "SELECT hash FROM records WHERE seq = ?1",
            [kept_seq as i64],
            |r| r.get(0),
        )
        .unwrap();
    db.execute("DELETE FROM records WHERE seq > ?1", [kept_seq as i64])
        .unwrap();
    db.execute(
        "UPDATE chains SET head_seq = ?1, head_hash = ?2",
        rusqlite::params![kept_seq as i64, kept_hash],
    )
    .unwrap();
    db.execute("DELETE FROM checkpoints WHERE seq > ?1", [kept_seq as i64])
        .unwrap();
    drop(db);

    // The store alone cannot tell: what is left is consistent.
    let (code, out, err) = verify(&[]).await;
    assert_eq!(code, 0, "the store alone: {out}{err}");

    // The node's signed head names what was removed.
    let (code, out, err) = verify(&[&node_head]).await;
    assert_eq!(code, 1, "{out}{err}");
    let want = format!("seq {}..={n} were removed", kept_seq + 1);
    assert!(out.contains("[tail-cut]") && out.contains(&want), "{out}");
    assert!(err.contains("[verify-failed]"), "{err}");

    // So does the auditor's copy of the newest checkpoint, and it names
    // the checkpoint that went missing too.
    let (code, out, _) = verify(&[&kept]).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("[tail-cut]") && out.contains(&want) && out.contains("[checkpoint-missing]"),
        "{out}"
    );
    assert!(out.contains("checkpoint 2 "), "{out}");

    // An anchor edited to hide the cut is not signed by the node any more.
    let text = std::fs::read_to_string(&node_head).unwrap();
    let forged = write(
        &dir,
        "forged.note",
        &text.replacen(&format!("\n{n}\n"), &format!("\n{kept_seq}\n"), 1),
    );
    let (code, out, _) = verify(&[&forged]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("[bad-anchor]"), "{out}");

    // A file that holds no note is bad input, named, and nothing is asked.
    let junk = write(&dir, "junk.note", "not a note\n\n\u{2014} x y\n");
    let (code, _, err) = verify(&[&junk]).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("junk.note: note 1"), "{err}");

    // The node comes back: its Hello carries the head it had acknowledged,
    // the collector stores a tail-cut alarm, and verify fails on the store
    // alone from then on.
    let _shipper = node.ship(&c.url, None);
    eventually("the collector's tail-cut alarm", MIN, || {
        c.count("SELECT COUNT(*) FROM alarms WHERE kind = 'tail-cut'") == 1
    })
    .await;
    // The alarm is stored before it is logged.
    eventually("the collector's log of the tail-cut", MIN, || {
        c.log_text().contains("were removed after they were stored")
    })
    .await;
    // The node still keeps the head it had acknowledged, not the lower one.
    let (_, still, _) = ctl_async(&["lineage", "head", "--state-dir", &state_dir]).await;
    assert!(still.contains(&format!("\n{n}\n")), "{still}");
    let (code, out, _) = verify(&[]).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("[tail-cut]") && out.contains(&want), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_checkpoint_breaks_the_checkpoint_log() {
    let dir = Dir::new("anchors-log");
    let node = TestNode::new(&dir, "node-a");
    let c = Collector::start(
        &dir,
        &["--accept-new-nodes", "--checkpoint-interval", "100ms"],
    );
    let mut shipper = node.ship(&c.url, None);
    for i in 1..=3 {
        let (records, _) = sample::session("node-a", now());
        ship_and_checkpoint(&c, &node, &mut shipper, &records, i).await;
    }
    drop(shipper);
    let base = ["lineage", "--collector", &c.url];
    let args = [&base[..], &["verify", "--node", "node-a"]].concat();
    let (code, out, err) = ctl_async(&args).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("3 checkpoint(s)"), "{out}");
    let (_, kept, _) = ctl_async(&[&base[..], &["checkpoints", "--node", "node-a"]].concat()).await;
    let kept = write(&dir, "auditor.notes", &kept);

    // One from the middle: the log has a hole.
    let db = c.sql();
    db.execute_batch(
        "CREATE TABLE saved AS SELECT * FROM checkpoints WHERE log_index = 2;
         DELETE FROM checkpoints WHERE log_index = 2;",
    )
    .unwrap();
    let (code, out, _) = ctl_async(&args).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("[checkpoint-missing]") && out.contains("checkpoint(s) 2..=2"),
        "{out}"
    );
    // Put back, it verifies again.
    db.execute_batch("INSERT INTO checkpoints SELECT * FROM saved; DROP TABLE saved;")
        .unwrap();
    assert_eq!(ctl_async(&args).await.0, 0);

    // The first one.
    db.execute_batch(
        "CREATE TABLE saved AS SELECT * FROM checkpoints WHERE log_index = 1;
         DELETE FROM checkpoints WHERE log_index = 1;",
    )
    .unwrap();
    let (code, out, _) = ctl_async(&args).await;
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("checkpoint(s) 1..=1"), "{out}");
    db.execute_batch("INSERT INTO checkpoints SELECT * FROM saved; DROP TABLE saved;")
        .unwrap();

    // The newest: the log the store holds is whole again, so only the
    // auditor's copy can tell.
    db.execute("DELETE FROM checkpoints WHERE log_index = 3", [])
        .unwrap();
    drop(db);
    assert_eq!(ctl_async(&args).await.0, 0, "the store alone");
    let with_kept = [&args[..], &["--anchors", &kept]].concat();
    let (code, out, _) = ctl_async(&with_kept).await;
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("[checkpoint-missing]") && out.contains("checkpoint 3 "),
        "{out}"
    );
}
