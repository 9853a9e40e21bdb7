//! The vocabulary shared by artifacts and policies: the three governed
//! actions (exec, write, connect) and the values that name their objects.
//!
//! Artifacts grant [`Capability`] values; policies list patterns of them
//! (baseline, grantable, never). Every scalar here parses from one string
//! form, used alike in artifact JSON and policy YAML, and refuses anything
//! ambiguous: relative paths, `..`, ports out of range, host bits in a
//! prefix that would silently widen it.

use std::{
    fmt,
    net::IpAddr,
    path::{Component, Path, PathBuf},
    str::FromStr,
};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};

/// Longest path accepted anywhere (Linux `PATH_MAX`).
pub const MAX_PATH_BYTES: usize = 4096;
/// Longest DNS name accepted.
pub const MAX_HOST_BYTES: usize = 253;
/// A port range wider than this (other than `*`) is refused: the kernel
/// holds one entry per port.
pub const MAX_PORT_RANGE: u32 = 64;

/// A value that did not parse, with what was wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {value:?}: {why}")]
pub struct ValueError {
    pub what: &'static str,
    pub value: String,
    pub why: &'static str,
}

fn bad(what: &'static str, value: &str, why: &'static str) -> ValueError {
    let mut value = value.to_owned();
    if value.len() > 80 {
        let mut cut = 80;
        while !value.is_char_boundary(cut) {
            cut -= 1;
        }
        value.truncate(cut);
        value.push('…');
    }
    ValueError { what, value, why }
}

/// An absolute, normalized path: starts with `/`, no `.` or `..`
/// components, no empty components, no trailing `/` (except `/` itself),
/// no NUL, at most [`MAX_PATH_BYTES`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AbsPath(PathBuf);

impl AbsPath {
    #[must_use]
    pub fn as_path(&self) -> &Path {
        &self.0
    }

    /// True when `self` is `other` or lies below it.
    #[must_use]
    pub fn is_within(&self, other: &Self) -> bool {
        self.0.starts_with(&other.0)
    }
}

impl FromStr for AbsPath {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const WHAT: &str = "path";
        if s.len() > MAX_PATH_BYTES {
            return Err(bad(WHAT, s, "longer than 4096 bytes"));
        }
        if s.contains('\0') {
            return Err(bad(WHAT, s, "contains a NUL byte"));
        }
        if !s.starts_with('/') {
            return Err(bad(WHAT, s, "must be absolute (start with /)"));
        }
        if s.len() > 1 && s.ends_with('/') {
            return Err(bad(WHAT, s, "must not end with /"));
        }
        if s.contains("//") {
            return Err(bad(WHAT, s, "has an empty component (//)"));
        }
        for c in Path::new(s).components() {
            match c {
                Component::RootDir | Component::Normal(_) => {}
                Component::CurDir | Component::ParentDir | Component::Prefix(_) => {
                    return Err(bad(WHAT, s, "must not contain . or .. components"));
                }
            }
        }
        // `Path::components` hides a `.` in the middle ("/a/./b").
        if s.split('/').any(|part| part == "." || part == "..") {
            return Err(bad(WHAT, s, "must not contain . or .. components"));
        }
        Ok(Self(PathBuf::from(s)))
    }
}

impl TryFrom<String> for AbsPath {
    type Error = ValueError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<AbsPath> for String {
    fn from(p: AbsPath) -> Self {
        p.to_string()
    }
}

impl fmt::Display for AbsPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0.display())
    }
}

/// A path in a policy: one exact path (`/usr/bin/git`) or a subtree
/// (`/srv/repo/**`: the directory and everything below it).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum PathPattern {
    Exact(AbsPath),
    Under(AbsPath),
}

impl PathPattern {
    /// True when `path` is matched by this pattern.
    #[must_use]
    pub fn matches(&self, path: &AbsPath) -> bool {
        match self {
            Self::Exact(p) => p == path,
            Self::Under(dir) => path.is_within(dir),
        }
    }

    /// True when everything below `path` (a write grant covers its
    /// subtree) is matched by this pattern.
    #[must_use]
    pub fn covers_subtree(&self, path: &AbsPath) -> bool {
        match self {
            Self::Exact(_) => false,
            Self::Under(dir) => path.is_within(dir),
        }
    }

    /// True when a grant of the subtree `path` would reach anything this
    /// pattern matches (either lies within the other).
    #[must_use]
    pub fn overlaps_subtree(&self, path: &AbsPath) -> bool {
        match self {
            Self::Exact(p) => p.is_within(path),
            Self::Under(dir) => path.is_within(dir) || dir.is_within(path),
        }
    }

    /// The path without the `/**`.
    #[must_use]
    pub fn base(&self) -> &AbsPath {
        match self {
            Self::Exact(p) | Self::Under(p) => p,
        }
    }
}

impl FromStr for PathPattern {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "/**" {
            return Ok(Self::Under(AbsPath(PathBuf::from("/"))));
        }
        if let Some(dir) = s.strip_suffix("/**") {
            return Ok(Self::Under(dir.parse()?));
        }
        if s.contains('*') {
            return Err(bad(
                "path pattern",
                s,
                "`*` is only allowed as a final `/**` (the subtree)",
            ));
        }
        Ok(Self::Exact(s.parse()?))
    }
}

impl TryFrom<String> for PathPattern {
    type Error = ValueError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<PathPattern> for String {
    fn from(p: PathPattern) -> Self {
        p.to_string()
    }
}

impl fmt::Display for PathPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exact(p) => write!(f, "{p}"),
            Self::Under(p) if p.as_path() == Path::new("/") => f.write_str("/**"),
            Self::Under(p) => write!(f, "{p}/**"),
        }
    }
}

/// A SHA-256 digest, written as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Sha256Digest(pub [u8; 32]);

impl FromStr for Sha256Digest {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.len() != 64 {
            return Err(bad("sha256", s, "must be 64 hex digits"));
        }
        if s.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(bad("sha256", s, "must be lowercase hex"));
        }
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|_| bad("sha256", s, "not hex"))?;
        Ok(Self(out))
    }
}

impl TryFrom<String> for Sha256Digest {
    type Error = ValueError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Sha256Digest> for String {
    fn from(d: Sha256Digest) -> Self {
        d.to_string()
    }
}

impl fmt::Display for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for Sha256Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Sha256Digest({self})")
    }
}

/// A connect destination: one address, a prefix (`10.0.0.0/8`,
/// `2001:db8::/32`) or a DNS name (resolved when a grant is installed).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Host {
    Net(IpNet),
    Name(String),
}

impl Host {
    /// True when every address `addr` could be is inside this host.
    /// Names contain only themselves; compare resolved addresses against
    /// prefixes with [`Host::contains_addr`].
    #[must_use]
    pub fn contains(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Net(a), Self::Net(b)) => a.contains(b),
            (Self::Name(a), Self::Name(b)) => a.eq_ignore_ascii_case(b),
            _ => false,
        }
    }

    /// True when `addr` is inside this prefix (names: never).
    #[must_use]
    pub fn contains_addr(&self, addr: IpAddr) -> bool {
        match self {
            Self::Net(n) => n.contains(&addr),
            Self::Name(_) => false,
        }
    }

    /// True when the two share any address (names: equal names).
    #[must_use]
    pub fn overlaps(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Net(a), Self::Net(b)) => a.contains(b) || b.contains(a),
            (Self::Name(a), Self::Name(b)) => a.eq_ignore_ascii_case(b),
            _ => false,
        }
    }
}

fn valid_dns_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= MAX_HOST_BYTES
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

impl FromStr for Host {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const WHAT: &str = "host";
        if let Ok(addr) = s.parse::<IpAddr>() {
            return Ok(Self::Net(IpNet::from(addr)));
        }
        if s.contains('/') {
            let net: IpNet = s
                .parse()
                .map_err(|_| bad(WHAT, s, "not an address prefix like 10.0.0.0/8"))?;
            if net.trunc() != net {
                return Err(bad(
                    WHAT,
                    s,
                    "has host bits set past the prefix length; write the network address",
                ));
            }
            return Ok(Self::Net(net));
        }
        if s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            return Err(bad(WHAT, s, "not a valid IPv4 address"));
        }
        if !valid_dns_name(s) {
            return Err(bad(
                WHAT,
                s,
                "not an IP address, a prefix or a DNS name (letters, digits, - and _ in \
                 dot-separated labels of at most 63 bytes)",
            ));
        }
        Ok(Self::Name(s.to_ascii_lowercase()))
    }
}

impl TryFrom<String> for Host {
    type Error = ValueError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Host> for String {
    fn from(h: Host) -> Self {
        h.to_string()
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Net(n) if n.prefix_len() == n.max_prefix_len() => write!(f, "{}", n.addr()),
            Self::Net(n) => write!(f, "{n}"),
            Self::Name(n) => f.write_str(n),
        }
    }
}

/// Ports: one (`443`), an inclusive range (`8000-8010`, at most
/// [`MAX_PORT_RANGE`] ports) or any (`*`). Port 0 is not a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl PortRange {
    pub const ANY: Self = Self {
        first: 1,
        last: u16::MAX,
    };

    #[must_use]
    pub fn is_any(self) -> bool {
        self == Self::ANY
    }

    #[must_use]
    pub fn contains(self, other: Self) -> bool {
        self.first <= other.first && other.last <= self.last
    }

    #[must_use]
    pub fn overlaps(self, other: Self) -> bool {
        self.first <= other.last && other.first <= self.last
    }

    /// The kernel entries: `[0]` for any port, else each port.
    #[must_use]
    pub fn kernel_ports(self) -> Vec<u16> {
        if self.is_any() {
            vec![0]
        } else {
            (self.first..=self.last).collect()
        }
    }
}

impl FromStr for PortRange {
    type Err = ValueError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        const WHAT: &str = "ports";
        if s == "*" {
            return Ok(Self::ANY);
        }
        let port = |p: &str| -> Result<u16, ValueError> {
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad(WHAT, s, "ports are decimal numbers 1-65535, a-b, or *"));
            }
            match p.parse::<u16>() {
                Ok(0) | Err(_) => Err(bad(WHAT, s, "a port is between 1 and 65535")),
                Ok(n) => Ok(n),
            }
        };
        let (first, last) = match s.split_once('-') {
            Some((a, b)) => (port(a)?, port(b)?),
            None => {
                let p = port(s)?;
                (p, p)
            }
        };
        if first > last {
            return Err(bad(WHAT, s, "range starts after it ends"));
        }
        let range = Self { first, last };
        if !range.is_any() && u32::from(last - first) + 1 > MAX_PORT_RANGE {
            return Err(bad(WHAT, s, "a range holds at most 64 ports (or write *)"));
        }
        Ok(range)
    }
}

impl TryFrom<String> for PortRange {
    type Error = ValueError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<PortRange> for String {
    fn from(p: PortRange) -> Self {
        p.to_string()
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_any() {
            f.write_str("*")
        } else if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

/// Transport protocol, written `tcp` or `udp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    /// The IP protocol number (IANA), as the kernel's rules carry it.
    #[must_use]
    pub const fn number(self) -> u8 {
        match self {
            Self::Tcp => 6,
            Self::Udp => 17,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Tcp => "tcp",
            Self::Udp => "udp",
        })
    }
}

/// Run one binary: matched by the file's identity (device, inode) at
/// install time, after its digest is checked when `sha256` is given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecCap {
    pub path: AbsPath,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<Sha256Digest>,
}

/// Write to a file or anywhere below a directory (create, modify, delete,
/// rename within).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WriteCap {
    pub path: AbsPath,
}

/// Connect to (or send to) a destination.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectCap {
    pub host: Host,
    pub ports: PortRange,
    pub protocol: Protocol,
}

/// One action an artifact grants. Serialized externally tagged:
/// `{"exec": {"path": "/usr/bin/kubectl"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum Capability {
    Exec(ExecCap),
    Write(WriteCap),
    Connect(ConnectCap),
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exec(c) => {
                write!(f, "exec {}", c.path)?;
                if let Some(d) = c.sha256 {
                    write!(f, " (sha256 {d})")?;
                }
                Ok(())
            }
            Self::Write(c) => write!(f, "write {}", c.path),
            Self::Connect(c) => write!(f, "connect {} {}:{}", c.protocol, c.host, c.ports),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_absolute_and_normal() {
        for ok in ["/", "/usr/bin/git", "/srv/repo"] {
            assert_eq!(
                ok.parse::<AbsPath>().map(|p| p.to_string()),
                Ok(ok.to_owned())
            );
        }
        for (input, why) in [
            ("usr/bin", "absolute"),
            ("/usr/", "end with /"),
            ("/a//b", "empty component"),
            ("/a/../b", ". or .."),
            ("/a/./b", ". or .."),
            ("/a/.", ". or .."),
            ("/a\0b", "NUL"),
        ] {
            let err = input.parse::<AbsPath>().expect_err(input);
            assert!(err.why.contains(why), "{input}: {err}");
        }
        assert!("/x".repeat(2049).parse::<AbsPath>().is_err());
    }

    #[test]
    fn patterns_match_exact_and_subtree() {
        let exact: PathPattern = "/usr/bin/git".parse().unwrap();
        let under: PathPattern = "/srv/repo/**".parse().unwrap();
        let p = |s: &str| s.parse::<AbsPath>().unwrap();
        assert!(exact.matches(&p("/usr/bin/git")));
        assert!(!exact.matches(&p("/usr/bin/gitk")));
        assert!(under.matches(&p("/srv/repo")));
        assert!(under.matches(&p("/srv/repo/src/main.rs")));
        assert!(!under.matches(&p("/srv/repository")));
        assert!(under.overlaps_subtree(&p("/srv")));
        assert!(!under.overlaps_subtree(&p("/srv/other")));
        assert!("/**".parse::<PathPattern>().unwrap().matches(&p("/etc")));
        assert!("/usr/*/git".parse::<PathPattern>().is_err());
        assert_eq!(under.to_string(), "/srv/repo/**");
    }

    #[test]
    fn hosts_parse_and_contain() {
        let h = |s: &str| s.parse::<Host>().unwrap();
        assert!(h("10.0.0.0/8").contains(&h("10.1.2.3")));
        assert!(!h("10.0.0.0/8").contains(&h("11.0.0.1")));
        assert!(h("10.0.0.0/8").contains(&h("10.2.0.0/16")));
        assert!(!h("10.2.0.0/16").contains(&h("10.0.0.0/8")));
        assert!(h("API.example.com").contains(&h("api.example.com")));
        assert!(h("::/0").contains_addr("2001:db8::1".parse().unwrap()));
        assert_eq!(h("10.0.0.1").to_string(), "10.0.0.1");
        assert!("10.0.0.1/8".parse::<Host>().is_err(), "host bits");
        assert!("300.1.1.1".parse::<Host>().is_err());
        assert!("bad host".parse::<Host>().is_err());
        assert!("-x.example".parse::<Host>().is_err());
    }

    #[test]
    fn ports_parse_with_limits() {
        let p = |s: &str| s.parse::<PortRange>();
        assert_eq!(p("443").unwrap().kernel_ports(), vec![443]);
        assert_eq!(p("*").unwrap().kernel_ports(), vec![0]);
        assert_eq!(p("8000-8003").unwrap().kernel_ports().len(), 4);
        assert!(p("1-65535").unwrap().is_any());
        assert!(
            p("1000-1064").is_err(),
            "65 ports: wider than a range may be"
        );
        for bad in ["0", "65536", "", "-1", "10-5", "a", "+80"] {
            assert!(p(bad).is_err(), "{bad}");
        }
        assert!(p("1-60").unwrap().contains(p("50-60").unwrap()));
        assert!(p("*").unwrap().overlaps(p("22").unwrap()));
    }

    #[test]
    fn capability_json_is_strict() {
        let c: Capability = serde_json::from_str(
            r#"{"connect":{"host":"10.0.0.1","ports":"443","protocol":"tcp"}}"#,
        )
        .unwrap();
        assert_eq!(c.to_string(), "connect tcp 10.0.0.1:443");
        for bad in [
            r#"{"exec":{"path":"/bin/sh","extra":1}}"#,
            r#"{"exec":{"path":"bin/sh"}}"#,
            r#"{"run":{"path":"/bin/sh"}}"#,
            r#"{"exec":{"path":"/bin/sh","sha256":"AB"}}"#,
        ] {
            assert!(serde_json::from_str::<Capability>(bad).is_err(), "{bad}");
        }
    }
}
