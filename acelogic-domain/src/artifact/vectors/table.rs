//! The vectors: one entry per outcome `verify` can have, each built from
//! the full payload with one change.

use serde_json::{Value, json};

use super::{
    Keys, Vector, edited, envelope_value, flip, full_payload, minimal_payload, reject, signed,
};
use crate::artifact::*;

#[expect(
    clippy::too_many_lines,
    reason = "one table of vectors reads best in one place"
)]
pub(super) fn vectors(k: &Keys) -> Vec<Vector> {
    use base64::{Engine as _, engine::general_purpose::STANDARD};
    let full = full_payload();
    let by_issuer = |payload: Vec<u8>| signed(&payload, &[&k.issuer]);
    let mut v = vec![
        Vector {
            name: "valid-approved",
            expect: "ok",
            about: "every payload field set; issuer plus approvers alice and bob",
            bytes: signed(&full, &[&k.issuer, &k.alice, &k.bob]),
            approvers: Some(vec!["alice", "bob"]),
            ignored: Some(vec![]),
        },
        Vector {
            name: "valid-minimal",
            expect: "ok",
            about: "required fields only; issuer signature only",
            bytes: signed(
                &minimal_payload("5e1fc0ffee00000000000000000000b1"),
                &[&k.issuer],
            ),
            approvers: Some(vec![]),
            ignored: Some(vec![]),
        },
        Vector {
            name: "valid-rotated-key",
            expect: "ok",
            about: "signed by the issuer's second current key (rotation)",
            bytes: signed(
                &minimal_payload("5e1fc0ffee00000000000000000000b2"),
                &[&k.issuer_next],
            ),
            approvers: Some(vec![]),
            ignored: Some(vec![]),
        },
        Vector {
            name: "valid-ignored-signatures",
            expect: "ok",
            about: "extra signatures by an unknown key (mallory) and a revoked key do not count and do not reject",
            bytes: signed(&full, &[&k.mallory, &k.issuer, &k.issuer_revoked, &k.alice]),
            approvers: Some(vec!["alice"]),
            ignored: Some(vec!["unknown-key", "revoked-key"]),
        },
    ];

    // Envelope structure.
    let mut e = envelope_value(k);
    e["extra"] = json!(1);
    v.push(reject(
        "envelope-unknown-field",
        "unknown-field",
        "envelope has a field DSSE does not define",
        serde_json::to_vec(&e).unwrap(),
    ));
    let mut e = envelope_value(k);
    e["signatures"][0]["cert"] = json!("x");
    v.push(reject(
        "signature-unknown-field",
        "unknown-field",
        "a signature entry has an extra field",
        serde_json::to_vec(&e).unwrap(),
    ));
    let mut e = envelope_value(k);
    e.as_object_mut().unwrap().remove("signatures");
    v.push(reject(
        "envelope-missing-field",
        "missing-field",
        "envelope without signatures",
        serde_json::to_vec(&e).unwrap(),
    ));
    let text = String::from_utf8(by_issuer(full.clone())).unwrap();
    let dup = text.replacen(
        "{\"payloadType\":",
        "{\"payloadType\":\"text/plain\",\"payloadType\":",
        1,
    );
    v.push(reject(
        "envelope-duplicate-field",
        "duplicate-field",
        "payloadType given twice (parsers disagree on which wins)",
        dup.into_bytes(),
    ));
    v.push(reject(
        "envelope-not-json",
        "bad-json",
        "truncated envelope",
        text.as_bytes()[..text.len() / 2].to_vec(),
    ));
    v.push(reject(
        "envelope-trailing-data",
        "bad-json",
        "a second JSON value after the envelope",
        format!("{text}{{}}").into_bytes(),
    ));
    v.push(reject(
        "envelope-not-utf8",
        "bad-encoding",
        "a byte that is not UTF-8",
        [&text.as_bytes()[..10], &[0xff], &text.as_bytes()[10..]].concat(),
    ));
    let mut e = sign(&full, &[&k.issuer]);
    e.payload_type = "application/vnd.in-toto+json".into();
    let message = pae(&e.payload_type, &e.payload);
    e.signatures[0].sig = k.issuer.sign_bytes(&message).to_vec();
    v.push(reject(
        "wrong-payload-type",
        "bad-payload-type",
        "a validly signed envelope of another type",
        e.to_json(),
    ));
    let mut e = envelope_value(k);
    let p = e["payload"].as_str().unwrap().replacen('e', "!", 1);
    e["payload"] = json!(p);
    v.push(reject(
        "bad-base64-payload",
        "bad-encoding",
        "payload is not base64",
        serde_json::to_vec(&e).unwrap(),
    ));
    let mut e = envelope_value(k);
    let p = e["payload"]
        .as_str()
        .unwrap()
        .trim_end_matches('=')
        .to_owned();
    e["payload"] = json!(p);
    v.push(reject(
        "unpadded-base64-payload",
        "bad-encoding",
        "payload base64 without its padding (one encoding only)",
        serde_json::to_vec(&e).unwrap(),
    ));
    let mut e = envelope_value(k);
    e["signatures"][0]["sig"] = json!("not base64!");
    v.push(reject(
        "bad-base64-signature",
        "bad-encoding",
        "signature is not base64",
        serde_json::to_vec(&e).unwrap(),
    ));
    let mut big = by_issuer(full.clone());
    big.splice(1..1, std::iter::repeat_n(b' ', MAX_ENVELOPE_BYTES));
    v.push(reject(
        "oversized-envelope",
        "too-large",
        "over 64 KiB (whitespace padding)",
        big,
    ));
    let mut padded = full.clone();
    padded.splice(1..1, std::iter::repeat_n(b' ', MAX_PAYLOAD_BYTES));
    v.push(reject(
        "oversized-payload",
        "too-large",
        "decoded payload over 32 KiB, envelope under 64 KiB",
        by_issuer(padded),
    ));
    let mut e = envelope_value(k);
    e["signatures"] = json!([]);
    v.push(reject(
        "no-signatures",
        "no-signatures",
        "empty signature list",
        serde_json::to_vec(&e).unwrap(),
    ));
    let mut e = sign(&full, &[&k.issuer]);
    for i in 0..MAX_SIGNATURES {
        e.signatures.push(Signature {
            keyid: format!("ed25519:00000000000000{i:02}"),
            sig: vec![0; 64],
        });
    }
    v.push(reject(
        "too-many-signatures",
        "too-many-signatures",
        "nine signatures",
        e.to_json(),
    ));
    let mut e = sign(&full, &[&k.issuer]);
    e.signatures.push(e.signatures[0].clone());
    v.push(reject(
        "duplicate-keyid",
        "duplicate-keyid",
        "the issuer's signature twice",
        e.to_json(),
    ));
    let mut e = sign(&full, &[&k.issuer]);
    e.signatures[0].keyid = "release authority".into();
    v.push(reject(
        "bad-keyid",
        "bad-value",
        "keyid with a space",
        e.to_json(),
    ));

    // Signatures.
    let mut e = envelope_value(k);
    let tampered = String::from_utf8(full.clone())
        .unwrap()
        .replace("\"443\"", "\"444\"");
    e["payload"] = json!(STANDARD.encode(tampered));
    v.push(reject(
        "tampered-payload",
        "bad-signature",
        "payload changed after signing (port 443 to 444)",
        serde_json::to_vec(&e).unwrap(),
    ));
    let mut e = sign(&full, &[&k.issuer, &k.alice]);
    flip(&mut e.signatures[0].sig);
    v.push(reject(
        "tampered-signature",
        "bad-signature",
        "one bit of the issuer's signature flipped",
        e.to_json(),
    ));
    let mut e = sign(&full, &[&k.issuer, &k.alice]);
    flip(&mut e.signatures[1].sig);
    v.push(reject(
        "tampered-approver-signature",
        "bad-signature",
        "an approver's signature does not verify: tampering, not ignorable",
        e.to_json(),
    ));
    let mut e = sign(&full, &[&k.issuer]);
    e.signatures[0].sig.truncate(32);
    v.push(reject(
        "truncated-signature",
        "bad-signature",
        "issuer signature of 32 bytes",
        e.to_json(),
    ));
    v.push(reject(
        "revoked-issuer-key",
        "revoked-key",
        "signed only by the issuer's revoked key",
        signed(&full, &[&k.issuer_revoked, &k.alice]),
    ));
    v.push(reject(
        "unknown-key-only",
        "no-issuer-signature",
        "signed only by a key not in the trust store",
        signed(&full, &[&k.mallory]),
    ));
    let alice_issues = edited(|m| drop(m.insert("issuer".into(), json!("alice"))));
    v.push(reject(
        "issuer-signed-by-approver-role",
        "no-issuer-signature",
        "payload issuer alice, signed by alice's approver-role key",
        signed(&alice_issues, &[&k.alice]),
    ));
    let other = edited(|m| drop(m.insert("issuer".into(), json!("other-authority"))));
    v.push(reject(
        "wrong-issuer-name",
        "no-issuer-signature",
        "payload names another issuer than the key that signed",
        by_issuer(other),
    ));

    // Payload.
    let field =
        |name: &'static str, value: Value| edited(move |m| drop(m.insert(name.into(), value)));
    let cases: Vec<(&'static str, &'static str, &'static str, Vec<u8>)> = vec![
        (
            "payload-unknown-field",
            "unknown-field",
            "payload has a field the format does not define",
            field("comment", json!("hi")),
        ),
        (
            "subject-unknown-field",
            "unknown-field",
            "subject has a field the format does not define",
            edited(|m| m["subject"]["pod"] = json!("p")),
        ),
        (
            "payload-missing-field",
            "missing-field",
            "payload without reason",
            edited(|m| drop(m.remove("reason"))),
        ),
        (
            "payload-duplicate-field",
            "duplicate-field",
            "issuer given twice",
            String::from_utf8(full)
                .unwrap()
                .replacen("\"issuer\":", "\"issuer\":\"alice\",\"issuer\":", 1)
                .into_bytes(),
        ),
        (
            "payload-not-json",
            "bad-json",
            "signed bytes that are not JSON",
            b"scale checkout please".to_vec(),
        ),
        (
            "bad-version",
            "bad-version",
            "version 2",
            field("version", json!(2)),
        ),
        (
            "zero-id",
            "bad-value",
            "id of all zero bits",
            field("id", json!("00000000000000000000000000000000")),
        ),
        (
            "short-id",
            "bad-value",
            "id of 64 bits",
            field("id", json!("5e1fc0ffee0000a1")),
        ),
        (
            "bad-name",
            "bad-value",
            "issuer name with uppercase and underscore",
            field("issuer", json!("Release_Authority")),
        ),
        (
            "bad-path",
            "bad-value",
            "exec path with a .. component",
            edited(|m| m["capabilities"][0]["exec"]["path"] = json!("/usr/bin/../sbin/kubectl")),
        ),
        (
            "relative-path",
            "bad-value",
            "write path not absolute",
            edited(|m| m["capabilities"][1]["write"]["path"] = json!("srv/checkout")),
        ),
        (
            "bad-port",
            "bad-value",
            "port 70000",
            edited(|m| m["capabilities"][2]["connect"]["ports"] = json!("70000")),
        ),
        (
            "bad-host",
            "bad-value",
            "prefix with host bits set (10.0.0.1/8)",
            edited(|m| m["capabilities"][2]["connect"]["host"] = json!("10.0.0.1/8")),
        ),
        (
            "bad-sha256",
            "bad-value",
            "uppercase digest",
            edited(|m| {
                m["capabilities"][0]["exec"]["sha256"] =
                    json!("9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08");
            }),
        ),
        (
            "unknown-capability",
            "bad-value",
            "a capability kind that does not exist",
            edited(|m| m["capabilities"][0] = json!({"mount": {"path": "/"}})),
        ),
        (
            "no-capabilities",
            "bad-value",
            "empty capability list",
            field("capabilities", json!([])),
        ),
        (
            "too-many-capabilities",
            "bad-value",
            "33 capabilities",
            field(
                "capabilities",
                json!(vec![
                    json!({"write": {"path": "/tmp/x"}});
                    MAX_CAPABILITIES + 1
                ]),
            ),
        ),
        (
            "bad-timestamp",
            "bad-value",
            "notBefore with a +01:00 offset",
            field("notBefore", json!("2026-01-15T11:00:00+01:00")),
        ),
        (
            "expires-before-not-before",
            "bad-time-window",
            "expires an hour before notBefore",
            field("expires", json!("2026-01-15T09:00:00Z")),
        ),
        (
            "window-over-24h",
            "bad-time-window",
            "valid for 24h and one second",
            field("expires", json!("2026-01-16T10:00:01Z")),
        ),
        (
            "max-uses-zero",
            "bad-value",
            "maxUses 0",
            field("maxUses", json!(0)),
        ),
        (
            "bad-operation-key",
            "bad-value",
            "operationKey with a space",
            field("operationKey", json!("scale checkout")),
        ),
        (
            "reason-control-char",
            "bad-value",
            "reason with an escape sequence",
            field("reason", json!("ok\u{1b}[2J")),
        ),
    ];
    for (name, expect, about, payload) in cases {
        v.push(reject(name, expect, about, by_issuer(payload)));
    }
    v
}
