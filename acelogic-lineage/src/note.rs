//! Signed chain heads: what a node or the collector vouches a chain held
//! at a time, as a [C2SP signed note] whose text follows the
//! [C2SP tlog-checkpoint] layout, so the stores they vouch for are not the
//! only place that knows how far a chain went.
//!
//! ```text
//! acelogic.dev/lineage/<journal id, 32 hex digits>/<node>
//! <seq>
//! <head hash, base64>
//! time <unix ns>
//! checkpoint <index> <sha256 of the previous checkpoint's text, base64>
//!
//! — acelogic-collector <base64 of key id (4 bytes) and signature>
//! ```
//!
//! - A **node head** (signer `acelogic-node`, no `checkpoint` line) is
//!   made by the node's shipper each time the collector acknowledges a
//!   batch, signed with the node key and kept on the node
//!   (`acelogicctl lineage head`). The collector acknowledged everything
//!   up to `seq`; a store that ends before it was cut.
//! - A **checkpoint** (signer `acelogic-collector`) is signed by the
//!   collector over a chain's head. Checkpoints of a chain form their own
//!   log: index 1, 2, ... each naming the hash of the one before, so one
//!   removed from the middle breaks the log, and an auditor who keeps a
//!   copy of the newest (`acelogicctl lineage checkpoints`) detects the
//!   newest ones removed.
//!
//! Both are checked by `acelogicctl lineage verify --anchors FILE`.
//!
//! [C2SP signed note]: https://c2sp.org/signed-note
//! [C2SP tlog-checkpoint]: https://c2sp.org/tlog-checkpoint

use acelogic_domain::artifact::SecretKey;
use base64::{Engine as _, engine::general_purpose::STANDARD};
use ed25519_dalek::VerifyingKey;
use sha2::{Digest as _, Sha256};

use crate::chain::{Hash, JOURNAL_ID_LEN};

/// The origin line's prefix.
pub const ORIGIN_PREFIX: &str = "acelogic.dev/lineage/";

/// Who signs a note, by the signer name on its signature line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signer {
    /// A node over the head the collector acknowledged.
    Node,
    /// The collector over a chain head it stored.
    Collector,
}

impl Signer {
    /// The signer name on the note's signature line.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Node => "acelogic-node",
            Self::Collector => "acelogic-collector",
        }
    }
}

/// A checkpoint's place in its chain's checkpoint log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogLink {
    /// 1 for a chain's first checkpoint.
    pub index: u64,
    /// [`text_hash`] of the previous checkpoint's text; zeros for index 1.
    pub prev: Hash,
}

/// What a note says: chain `journal_id` of `node` held `seq` entries, the
/// last hashing to `hash`, at `time_unix_nano`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Head {
    pub node: String,
    pub journal_id: [u8; JOURNAL_ID_LEN],
    pub seq: u64,
    pub hash: Hash,
    pub time_unix_nano: u64,
    /// Present on collector checkpoints only.
    pub log: Option<LogLink>,
}

/// Why a note was not accepted.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NoteError {
    #[error("not a signed note: {0}")]
    Format(String),
    #[error("the note's text is not a lineage head: {0}")]
    Text(String),
    #[error("the note carries no valid signature of {signer} with the expected key: {why}")]
    Signature { signer: &'static str, why: String },
}

fn text_err(why: impl Into<String>) -> NoteError {
    NoteError::Text(why.into())
}

/// SHA-256 of a note's text (what the next checkpoint links to).
#[must_use]
pub fn text_hash(text: &str) -> Hash {
    Sha256::digest(text.as_bytes()).into()
}

impl Head {
    /// The note text (each line ends in a newline).
    #[must_use]
    pub fn text(&self) -> String {
        let mut t = format!(
            "{ORIGIN_PREFIX}{}/{}\n{}\n{}\ntime {}\n",
            hex::encode(self.journal_id),
            self.node,
            self.seq,
            STANDARD.encode(self.hash),
            self.time_unix_nano
        );
        if let Some(l) = &self.log {
            t.push_str(&format!(
                "checkpoint {} {}\n",
                l.index,
                STANDARD.encode(l.prev)
            ));
        }
        t
    }

    /// Parses a note text made by [`Self::text`]; anything else is refused.
    pub fn parse_text(text: &str) -> Result<Self, NoteError> {
        let body = text
            .strip_suffix('\n')
            .ok_or_else(|| text_err("it does not end in a newline"))?;
        let lines: Vec<&str> = body.split('\n').collect();
        if !(4..=5).contains(&lines.len()) {
            return Err(text_err(format!("{} lines, not 4 or 5", lines.len())));
        }
        let origin = lines[0]
            .strip_prefix(ORIGIN_PREFIX)
            .ok_or_else(|| text_err(format!("origin {:?} is not {ORIGIN_PREFIX}...", lines[0])))?;
        let (jid, node) = origin
            .split_once('/')
            .ok_or_else(|| text_err("the origin names no node"))?;
        let journal_id: [u8; JOURNAL_ID_LEN] = hex::decode(jid)
            .ok()
            .and_then(|b| b.try_into().ok())
            .filter(|_| jid.len() == 2 * JOURNAL_ID_LEN && jid == jid.to_lowercase())
            .ok_or_else(|| text_err(format!("journal id {jid:?} is not 32 hex digits")))?;
        if node.is_empty() || node.chars().any(char::is_control) {
            return Err(text_err("the node name is empty or has control characters"));
        }
        let seq = decimal(lines[1]).ok_or_else(|| text_err(format!("seq {:?}", lines[1])))?;
        let hash = hash32(lines[2]).ok_or_else(|| text_err(format!("hash {:?}", lines[2])))?;
        let time_unix_nano = lines[3]
            .strip_prefix("time ")
            .and_then(decimal)
            .ok_or_else(|| text_err(format!("time line {:?}", lines[3])))?;
        let log = match lines.get(4) {
            None => None,
            Some(l) => {
                let (index, prev) = l
                    .strip_prefix("checkpoint ")
                    .and_then(|r| r.split_once(' '))
                    .ok_or_else(|| text_err(format!("checkpoint line {l:?}")))?;
                let index = decimal(index)
                    .filter(|i| *i >= 1)
                    .ok_or_else(|| text_err(format!("checkpoint index {index:?}")))?;
                let prev =
                    hash32(prev).ok_or_else(|| text_err(format!("previous hash {prev:?}")))?;
                Some(LogLink { index, prev })
            }
        };
        let head = Self {
            node: node.to_owned(),
            journal_id,
            seq,
            hash,
            time_unix_nano,
            log,
        };
        // One spelling per head: what we print is what we accept.
        if head.text() != text {
            return Err(text_err("not in canonical form"));
        }
        Ok(head)
    }

    /// Who signs this kind of head.
    #[must_use]
    pub fn signer(&self) -> Signer {
        if self.log.is_some() {
            Signer::Collector
        } else {
            Signer::Node
        }
    }

    /// The signed note, signed by `key` as [`Self::signer`].
    #[must_use]
    pub fn sign(&self, key: &SecretKey) -> String {
        let text = self.text();
        let signer = KeySigner {
            name: self.signer().name(),
            key,
        };
        let mut note = signed_note::Note::new(text.as_bytes(), &[])
            .expect("a head's text is a valid note text");
        note.add_sigs(&[&signer])
            .expect("signer names are valid and signing does not fail");
        String::from_utf8(note.to_bytes()).expect("a note of UTF-8 text and base64 is UTF-8")
    }
}

fn decimal(s: &str) -> Option<u64> {
    // No sign, no leading zeros (but "0"), no spaces.
    if s.is_empty() || (s.len() > 1 && s.starts_with('0')) || !s.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    s.parse().ok()
}

fn hash32(s: &str) -> Option<Hash> {
    STANDARD.decode(s).ok()?.try_into().ok()
}

/// The key id C2SP recommends for an Ed25519 key named `name`.
#[must_use]
pub fn key_id(name: &str, key: &VerifyingKey) -> u32 {
    let mut k = Vec::with_capacity(33);
    k.push(1);
    k.extend_from_slice(key.as_bytes());
    signed_note::key_id(name, &k)
}

struct KeySigner<'a> {
    name: &'static str,
    key: &'a SecretKey,
}

impl signed_note::Signer for KeySigner<'_> {
    fn name(&self) -> &str {
        self.name
    }
    fn key_id(&self) -> u32 {
        key_id(self.name, &self.key.public())
    }
    fn sign(&self, msg: &[u8]) -> Result<Vec<u8>, ed25519_dalek::SignatureError> {
        Ok(self.key.sign_bytes(msg).to_vec())
    }
}

struct KeyVerifier {
    name: &'static str,
    id: u32,
    key: VerifyingKey,
}

impl signed_note::Verifier for KeyVerifier {
    fn name(&self) -> &str {
        self.name
    }
    fn key_id(&self) -> u32 {
        self.id
    }
    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        ed25519_dalek::Signature::from_slice(sig)
            .is_ok_and(|s| self.key.verify_strict(msg, &s).is_ok())
    }
}

/// Parses a signed note without checking its signature: what it claims
/// and who it says signed it. Use [`open`] before trusting it.
pub fn peek(note: &str) -> Result<Head, NoteError> {
    let parsed = signed_note::Note::from_bytes(note.as_bytes())
        .map_err(|e| NoteError::Format(e.to_string()))?;
    let text = std::str::from_utf8(parsed.text())
        .map_err(|_| NoteError::Format("the text is not UTF-8".into()))?;
    Head::parse_text(text)
}

/// Checks `note` is signed by `key` as the signer its kind calls for, and
/// returns what it says.
pub fn open(note: &str, key: &VerifyingKey) -> Result<Head, NoteError> {
    let head = peek(note)?;
    let signer = head.signer();
    let verifier = KeyVerifier {
        name: signer.name(),
        id: key_id(signer.name(), key),
        key: *key,
    };
    let parsed = signed_note::Note::from_bytes(note.as_bytes())
        .map_err(|e| NoteError::Format(e.to_string()))?;
    parsed
        .verify(&signed_note::VerifierList::new(vec![Box::new(verifier)]))
        .map_err(|e| NoteError::Signature {
            signer: signer.name(),
            why: e.to_string(),
        })?;
    Ok(head)
}

/// Splits a file of notes written one after another into the notes: each
/// ends after the signature lines (`— ...`) that follow its blank line.
#[must_use]
pub fn split(text: &str) -> Vec<String> {
    let mut notes = Vec::new();
    let mut cur = String::new();
    let mut in_sigs = false;
    for line in text.split_inclusive('\n') {
        if in_sigs && !line.starts_with("\u{2014} ") {
            notes.push(std::mem::take(&mut cur));
            in_sigs = false;
        }
        if line.trim().is_empty() && cur.is_empty() {
            continue;
        }
        cur.push_str(line);
        if line == "\n" {
            in_sigs = true;
        }
    }
    if !cur.trim().is_empty() {
        notes.push(cur);
    }
    notes
}

#[cfg(test)]
mod tests {
    use acelogic_domain::artifact::Role;

    use super::*;

    fn head(log: Option<LogLink>) -> Head {
        Head {
            node: "node-a".into(),
            journal_id: [0xab; JOURNAL_ID_LEN],
            seq: 1200,
            hash: [9; 32],
            time_unix_nano: 1_700_000_000_000_000_000,
            log,
        }
    }

    fn key(name: &str) -> SecretKey {
        SecretKey::from_seed(name, Role::Lineage, [u8::try_from(name.len()).unwrap(); 32]).unwrap()
    }

    #[test]
    fn a_signed_head_opens_with_its_key_only() {
        let k = key("node-a");
        let note = head(None).sign(&k);
        assert!(note.contains("\n\n\u{2014} acelogic-node "), "{note}");
        assert_eq!(open(&note, &k.public()).unwrap(), head(None));
        let other = key("collector");
        assert!(matches!(
            open(&note, &other.public()),
            Err(NoteError::Signature { .. })
        ));
    }

    #[test]
    fn a_checkpoint_carries_its_log_link() {
        let k = key("collector");
        let h = head(Some(LogLink {
            index: 3,
            prev: [1; 32],
        }));
        let note = h.sign(&k);
        assert!(note.contains("\ncheckpoint 3 "), "{note}");
        assert_eq!(open(&note, &k.public()).unwrap(), h);
        assert_eq!(h.signer(), Signer::Collector);
    }

    #[test]
    fn every_edit_of_a_signed_note_is_refused() {
        let k = key("node-a");
        let note = head(None).sign(&k);
        for (from, to) in [("1200", "1100"), ("node-a", "node-b"), ("time 1", "time 2")] {
            let edited = note.replacen(from, to, 1);
            assert!(open(&edited, &k.public()).is_err(), "{edited}");
        }
        // Swapping the kind (adding a checkpoint line) changes the text.
        let text = head(None).text();
        let forged = note.replacen(
            &text,
            &format!("{text}checkpoint 1 {}\n", STANDARD.encode([0; 32])),
            1,
        );
        assert!(open(&forged, &k.public()).is_err());
    }

    #[test]
    fn texts_are_parsed_strictly() {
        let good = head(None).text();
        assert_eq!(Head::parse_text(&good).unwrap(), head(None));
        for bad in [
            good.trim_end().to_owned(),
            good.replace("acelogic.dev", "example.com"),
            good.replace("1200", "01200"),
            good.replace("1200", "+1200"),
            good.replace("time ", "time  "),
            good.replace(&hex::encode([0xab; 16]), &hex::encode([0xab; 15])),
            good.replace(
                &hex::encode([0xab; 16]),
                &hex::encode([0xab; 16]).to_uppercase(),
            ),
            format!("{good}extra\n"),
            format!("{good}checkpoint 0 {}\n", STANDARD.encode([0; 32])),
        ] {
            assert!(Head::parse_text(&bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn a_file_of_notes_splits_into_notes() {
        let n = key("node-a");
        let c = key("collector");
        let a = head(None).sign(&n);
        let b = head(Some(LogLink {
            index: 1,
            prev: [0; 32],
        }))
        .sign(&c);
        let file = format!("{a}{b}\n{a}");
        let notes = split(&file);
        assert_eq!(notes, vec![a.clone(), b, a]);
        assert!(open(&notes[1], &c.public()).is_ok());
    }
}
