//! The store's layout under its prefix, and the JSON of each value.
//!
//! | key | value | lease |
//! |---|---|---|
//! | `<prefix>spent/<artifact id>` | [`Spent`]: who spent it, when | until the artifact's expiry plus [`SPENT_MARGIN_S`] |
//! | `<prefix>ops/<key>/holder` | [`Holder`]: the live artifact holding the operation key | until the artifact's expiry |
//! | `<prefix>ops/<key>/intent` | [`Intent`]: a one-use holder that has not reported its use yet | none: it stays until the holder settles or an administrator releases the key |
//! | `<prefix>ops/<key>/completed` | [`Completed`]: the operation ran | the retention of the rule that granted it |
//! | `<prefix>cancelled/<artifact id>/<attempt>` | [`Cancelled`]: a claim attempt whose answer never arrived, undone; the claim itself can no longer apply | until the artifact's expiry plus [`SPENT_MARGIN_S`] |
//!
//! `<key>` is the operation key with `%` and `/` percent-encoded, so one
//! key's entries are one directory. The fencing token of a claim is the
//! revision at which its holder (and intent) were created.

use serde::{Deserialize, Serialize};

/// How long a spent id outlives its artifact: covers nodes whose clocks
/// run behind (their expiry check would pass a little longer).
pub const SPENT_MARGIN_S: i64 = 600;

/// Who spent an artifact id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spent {
    pub node: String,
    pub workload: String,
    /// Unix seconds.
    pub at: i64,
    /// The claim attempt that spent it (`ClusterClaim::attempt`).
    #[serde(default)]
    pub attempt: u64,
}

/// The live holder of an operation key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Holder {
    pub artifact: String,
    pub node: String,
    pub workload: String,
    /// Unix seconds: the artifact's expiry, when the lease ends.
    pub until: i64,
    pub at: i64,
    /// The claim attempt that took the key (`ClusterClaim::attempt`).
    #[serde(default)]
    pub attempt: u64,
}

/// A one-use holder's promise to report whether it used the artifact.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Intent {
    pub artifact: String,
    pub node: String,
    pub since: i64,
}

/// A completed operation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Completed {
    pub artifact: String,
    pub node: String,
    pub at: i64,
    /// The fencing token the completing holder had.
    pub token: u64,
}

/// A claim attempt undone because its answer never arrived. Its claim
/// transaction requires this key absent, so a claim that reaches the store
/// late (held in a paused member's queue) cannot apply after the undo.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cancelled {
    /// Unix seconds of the undo.
    pub at: i64,
}

/// Encodes an operation key as one path segment.
#[must_use]
pub fn segment(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for c in key.chars() {
        match c {
            '%' => out.push_str("%25"),
            '/' => out.push_str("%2F"),
            c => out.push(c),
        }
    }
    out
}

/// Decodes [`segment`]; `None` for text it never produces.
#[must_use]
pub fn unsegment(seg: &str) -> Option<String> {
    let mut out = String::with_capacity(seg.len());
    let mut rest = seg;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        match rest.get(i..i + 3) {
            Some("%25") => out.push('%'),
            Some("%2F") => out.push('/'),
            _ => return None,
        }
        rest = &rest[i + 3..];
    }
    if rest.contains('/') {
        return None;
    }
    out.push_str(rest);
    Some(out)
}

/// The keys of one prefix.
#[derive(Debug, Clone)]
pub struct Layout {
    prefix: String,
}

/// Which entry of an operation key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Entry {
    Holder,
    Intent,
    Completed,
}

impl Entry {
    fn name(self) -> &'static str {
        match self {
            Self::Holder => "holder",
            Self::Intent => "intent",
            Self::Completed => "completed",
        }
    }
}

impl Layout {
    /// `prefix` ends with `/` (added when missing).
    #[must_use]
    pub fn new(prefix: &str) -> Self {
        let mut prefix = prefix.to_owned();
        if !prefix.ends_with('/') {
            prefix.push('/');
        }
        Self { prefix }
    }

    #[must_use]
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The tombstone of one claim attempt of `artifact`.
    #[must_use]
    pub fn cancelled(&self, artifact: &str, attempt: u64) -> String {
        format!("{}cancelled/{artifact}/{attempt:016x}", self.prefix)
    }

    #[must_use]
    pub fn spent(&self, artifact: &str) -> String {
        format!("{}spent/{artifact}", self.prefix)
    }

    #[must_use]
    pub fn ops(&self) -> String {
        format!("{}ops/", self.prefix)
    }

    /// Every entry of one operation key lives below this.
    #[must_use]
    pub fn op_dir(&self, key: &str) -> String {
        format!("{}ops/{}/", self.prefix, segment(key))
    }

    #[must_use]
    pub fn op(&self, key: &str, entry: Entry) -> String {
        format!("{}{}", self.op_dir(key), entry.name())
    }

    /// The operation key and entry of a key below [`Layout::ops`].
    #[must_use]
    pub fn parse_op(&self, full: &[u8]) -> Option<(String, Entry)> {
        let full = std::str::from_utf8(full).ok()?;
        let rest = full.strip_prefix(&self.ops())?;
        let (seg, name) = rest.split_once('/')?;
        let entry = match name {
            "holder" => Entry::Holder,
            "intent" => Entry::Intent,
            "completed" => Entry::Completed,
            _ => return None,
        };
        Some((unsegment(seg)?, entry))
    }
}

/// A value the store holds that this code cannot read: someone wrote the
/// prefix by hand, or a newer version wrote it.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {source}")]
pub struct BadValue {
    pub key: String,
    #[source]
    pub source: serde_json::Error,
}

/// Reads one value.
pub fn decode<T: for<'de> Deserialize<'de>>(key: &[u8], value: &[u8]) -> Result<T, BadValue> {
    serde_json::from_slice(value).map_err(|source| BadValue {
        key: String::from_utf8_lossy(key).into_owned(),
        source,
    })
}

/// Writes one value (field order fixed, so the same value gives the same
/// bytes: a cancel compares them).
#[must_use]
pub fn encode<T: Serialize>(v: &T) -> Vec<u8> {
    serde_json::to_vec(v).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_round_trip_and_reject_what_they_never_write() {
        for key in ["deploy/checkout", "a%2Fb", "%", "plain", "", "x//y"] {
            let s = segment(key);
            assert!(!s.contains('/'), "{s}");
            assert_eq!(unsegment(&s).as_deref(), Some(key));
        }
        assert_eq!(unsegment("%zz"), None);
        assert_eq!(unsegment("a/b"), None);
        assert_eq!(unsegment("%2"), None);
    }

    #[test]
    fn op_keys_parse_back() {
        let l = Layout::new("/acelogic");
        let k = l.op("deploy/checkout", Entry::Intent);
        assert_eq!(k, "/acelogic/ops/deploy%2Fcheckout/intent");
        assert_eq!(
            l.parse_op(k.as_bytes()),
            Some(("deploy/checkout".to_owned(), Entry::Intent))
        );
        assert_eq!(l.parse_op(b"/acelogic/ops/x/other"), None);
        assert_eq!(l.parse_op(b"/elsewhere/ops/x/holder"), None);
    }

    /// Whatever another writer left under the prefix, parsing it gives an
    /// answer or a precise error, never a panic.
    #[test]
    fn arbitrary_keys_and_values_never_panic() {
        let l = Layout::new("/p/");
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let alphabet: Vec<char> = "%2F5/aé€\u{0}{}\":,holderintentcompleted".chars().collect();
        for _ in 0..20_000 {
            let mut text = String::new();
            for _ in 0..(x % 24) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                text.push(alphabet[usize::try_from(x % alphabet.len() as u64).unwrap()]);
            }
            let _ = unsegment(&text);
            let _ = l.parse_op(format!("/p/ops/{text}").as_bytes());
            let _ = decode::<Holder>(b"k", text.as_bytes());
            let _ = decode::<Completed>(b"k", text.as_bytes());
        }
        for raw in [
            &b"/p/ops/\xff\xfe/holder"[..],
            b"/p/ops/%",
            b"/p/ops//holder",
            b"",
        ] {
            let _ = l.parse_op(raw);
        }
    }

    #[test]
    fn a_value_with_unknown_fields_is_refused_with_its_key() {
        let e = decode::<Spent>(
            b"/p/spent/1",
            br#"{"node":"a","workload":"w","at":1,"x":2}"#,
        )
        .unwrap_err();
        assert!(
            e.to_string().starts_with("/p/spent/1: unknown field `x`"),
            "{e}"
        );
    }
}
