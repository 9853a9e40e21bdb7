//! Scalar values of the artifact format. Each one parses from exactly one
//! string form and refuses everything else, so two parsers (ours, an
//! auditor's script) cannot read one payload two ways.

use std::{
    fmt,
    str::FromStr,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use serde::{Deserialize, Deserializer, Serialize, Serializer, de};

/// Longest name (one DNS label).
pub(crate) const MAX_NAME_BYTES: usize = 63;
/// Longest operation key.
pub(crate) const MAX_OPERATION_KEY_BYTES: usize = 128;
/// Longest approval reference.
pub(crate) const MAX_APPROVAL_REF_BYTES: usize = 128;
/// Longest reason.
pub(crate) const MAX_REASON_BYTES: usize = 1024;

/// A name of an authority, approver, workload, node or audience:
/// 1–63 bytes of `[a-z0-9]([a-z0-9._-]*[a-z0-9])?`. Lowercase only, so a
/// name compares equal exactly when it is spelled the same.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Name(String);

impl Name {
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Name {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let edge = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        let inner = |b: u8| edge(b) || matches!(b, b'.' | b'_' | b'-');
        let bytes = s.as_bytes();
        let ok = !bytes.is_empty()
            && bytes.len() <= MAX_NAME_BYTES
            && bytes.first().copied().is_some_and(edge)
            && bytes.last().copied().is_some_and(edge)
            && bytes.iter().copied().all(inner);
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(format!(
                "name {:?} is not 1-63 bytes of lowercase letters, digits, '.', '_' and '-' \
                 starting and ending with a letter or digit",
                shorten(s)
            ))
        }
    }
}

impl TryFrom<String> for Name {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Name> for String {
    fn from(n: Name) -> Self {
        n.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<str> for Name {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

/// An artifact id: 128 random bits, written as 32 lowercase hex digits.
/// All zero is refused: it is what a forgotten initialisation looks like.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ArtifactId(pub [u8; 16]);

impl ArtifactId {
    /// A fresh id from the operating system's random source.
    pub fn generate() -> Result<Self, getrandom::Error> {
        let mut bytes = [0u8; 16];
        getrandom::fill(&mut bytes)?;
        // 2^-128: a zero draw means the random source is broken.
        if bytes == [0; 16] {
            return Err(getrandom::Error::UNEXPECTED);
        }
        Ok(Self(bytes))
    }
}

impl FromStr for ArtifactId {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let valid = s.len() == 32
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        let mut out = [0u8; 16];
        if !valid || hex::decode_to_slice(s, &mut out).is_err() {
            return Err(format!(
                "id {:?} is not 32 lowercase hex digits (128 bits)",
                shorten(s)
            ));
        }
        if out == [0; 16] {
            return Err("id is all zero; use 128 random bits".to_owned());
        }
        Ok(Self(out))
    }
}

impl TryFrom<String> for ArtifactId {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<ArtifactId> for String {
    fn from(id: ArtifactId) -> Self {
        id.to_string()
    }
}

impl fmt::Display for ArtifactId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for ArtifactId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ArtifactId({self})")
    }
}

/// Parses `2026-11-21T10:00:00Z`: UTC, whole seconds, nothing else. The
/// round trip through the formatter rejects every other spelling of the
/// same instant (fractions, `+00:00`, a space for `T`, leap second 60).
pub fn parse_timestamp(s: &str) -> Result<SystemTime, String> {
    let err = || {
        format!(
            "timestamp {:?} is not RFC 3339 UTC with whole seconds, like 2026-11-21T10:00:00Z",
            shorten(s)
        )
    };
    if s.len() != 20 || !s.is_ascii() {
        return Err(err());
    }
    let t = humantime::parse_rfc3339(s).map_err(|_| err())?;
    if format_timestamp(t) != s {
        return Err(err());
    }
    Ok(t)
}

/// Formats a time as `2026-11-21T10:00:00Z`, dropping sub-second parts.
#[must_use]
pub fn format_timestamp(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// `t` with the sub-second part dropped (the format has whole seconds).
#[must_use]
pub(crate) fn whole_seconds(t: SystemTime) -> SystemTime {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    UNIX_EPOCH + Duration::from_secs(secs)
}

/// Serde adapter for [`SystemTime`] fields in the timestamp form above.
pub(crate) mod timestamp {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(t: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format_timestamp(*t))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let s = String::deserialize(d)?;
        parse_timestamp(&s).map_err(de::Error::custom)
    }
}

fn check_operation_key(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= MAX_OPERATION_KEY_BYTES
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'/' | b'-'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "operation key {:?} is not 1-128 bytes of letters, digits and . _ : / -",
            shorten(s)
        ))
    }
}

fn check_approval_ref(s: &str) -> Result<(), String> {
    let ok = !s.is_empty()
        && s.len() <= MAX_APPROVAL_REF_BYTES
        && s.bytes().all(|b| (0x20..=0x7e).contains(&b));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "approval reference {:?} is not 1-128 printable ASCII characters",
            shorten(s)
        ))
    }
}

fn check_reason(s: &str) -> Result<(), String> {
    if s.is_empty() || s.len() > MAX_REASON_BYTES {
        return Err(format!("reason is {} bytes; write 1-1024", s.len()));
    }
    if s.chars().any(|c| c.is_control() && c != '\n' && c != '\t') {
        return Err(
            "reason contains a control character (only newline and tab are allowed)".to_owned(),
        );
    }
    Ok(())
}

/// Serde adapters that check string fields as they are read, so a
/// rejection carries the field's path.
pub(crate) mod checked {
    use super::*;

    fn string<'de, D: Deserializer<'de>>(
        d: D,
        check: fn(&str) -> Result<(), String>,
    ) -> Result<String, D::Error> {
        let s = String::deserialize(d)?;
        check(&s).map_err(de::Error::custom)?;
        Ok(s)
    }

    pub(crate) fn reason<'de, D: Deserializer<'de>>(d: D) -> Result<String, D::Error> {
        string(d, check_reason)
    }

    fn optional<'de, D: Deserializer<'de>>(
        d: D,
        check: fn(&str) -> Result<(), String>,
    ) -> Result<Option<String>, D::Error> {
        let s = String::deserialize(d)?;
        check(&s).map_err(de::Error::custom)?;
        Ok(Some(s))
    }

    /// Present means a valid key; `null` is refused (absent is the way to
    /// say "none"), so each payload has one spelling.
    pub(crate) fn operation_key<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<String>, D::Error> {
        optional(d, check_operation_key)
    }

    pub(crate) fn approval_ref<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<String>, D::Error> {
        optional(d, check_approval_ref)
    }
}

/// Checks the string fields of a payload built in code (a request), the
/// same way the deserializer does.
pub(crate) fn check_strings(
    operation_key: Option<&str>,
    approval_ref: Option<&str>,
    reason: &str,
) -> Result<(), (&'static str, String)> {
    if let Some(k) = operation_key {
        check_operation_key(k).map_err(|e| ("operationKey", e))?;
    }
    if let Some(r) = approval_ref {
        check_approval_ref(r).map_err(|e| ("approvalRef", e))?;
    }
    check_reason(reason).map_err(|e| ("reason", e))
}

/// Cuts a quoted value in a message so a hostile 32 KiB string does not
/// end up in every log line.
pub(crate) fn shorten(s: &str) -> String {
    const MAX: usize = 80;
    if s.len() <= MAX {
        return s.to_owned();
    }
    let mut cut = MAX;
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}…", &s[..cut])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_dns_label_like() {
        for ok in ["a", "release-authority", "node-1.eu", "x_y", "0"] {
            assert_eq!(ok.parse::<Name>().unwrap().as_str(), ok);
        }
        for bad in ["", "A", "-a", "a-", ".a", "a.", "a b", "é", &"a".repeat(64)] {
            assert!(bad.parse::<Name>().is_err(), "{bad:?}");
        }
        assert!("a".repeat(63).parse::<Name>().is_ok());
    }

    #[test]
    fn ids_are_lowercase_hex_and_not_zero() {
        let s = "0123456789abcdef0123456789abcdef";
        assert_eq!(s.parse::<ArtifactId>().unwrap().to_string(), s);
        for bad in [
            "0123456789ABCDEF0123456789abcdef",
            "0123456789abcdef",
            "00000000000000000000000000000000",
            "0123456789abcdef0123456789abcdeg",
            "+123456789abcdef0123456789abcdef",
        ] {
            assert!(bad.parse::<ArtifactId>().is_err(), "{bad}");
        }
        let a = ArtifactId::generate().unwrap();
        assert_ne!(a, ArtifactId::generate().unwrap());
    }

    #[test]
    fn timestamps_have_one_spelling() {
        let t = parse_timestamp("2026-11-21T10:00:00Z").unwrap();
        assert_eq!(format_timestamp(t), "2026-11-21T10:00:00Z");
        for bad in [
            "2026-11-21T10:00:00.5Z",
            "2026-11-21T10:00:00+00:00",
            "2026-11-21 10:00:00Z",
            "2026-11-21t10:00:00z",
            "2026-11-21T10:00:60Z",
            "2026-02-30T10:00:00Z",
            "2026-11-21T10:00Z",
            "1969-12-31T23:59:59Z",
            "２026-11-21T10:00:00Z",
        ] {
            assert!(parse_timestamp(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn string_fields_have_charsets() {
        assert!(check_operation_key("scale/checkout:v1").is_ok());
        assert!(check_operation_key("a b").is_err());
        assert!(check_operation_key("").is_err());
        assert!(check_approval_ref("CHG-1234 (emergency)").is_ok());
        assert!(check_approval_ref("CHG\u{7f}").is_err());
        assert!(check_reason("line one\n\tline two").is_ok());
        assert!(check_reason("bell\u{7}").is_err());
        assert!(check_reason("c1\u{85}").is_err());
        assert!(check_reason(&"x".repeat(1025)).is_err());
    }
}
