//! The network gates, end to end: a governed process reaches the IPv4 and
//! IPv6 destinations its baseline or a live grant names and nothing else,
//! by connect or by sendto; AF_UNIX sockets bound to files by a baseline
//! rule on the socket file. Every denial is checked for its errno and its
//! record, and the same action is run ungoverned, where it must work.

use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, UdpSocket},
    os::unix::net::UnixListener,
    time::Duration,
};

use acelogic_common::{
    rules::rights,
    user::{Event, Hook, NetDecisionEvent, Reason, Verdict},
};
use acelogic_domain::{
    capability::Protocol,
    grant::{GrantObject, GrantSpec, NetTarget, boot_ns_in, file_identity},
};
use anyhow::{Context as _, bail, ensure};

use crate::{
    fixtures::{Scratch, Setup, errno_if, in_cgroup, render_all},
    harness::{Case, Need},
};

pub(crate) const CASES: &[Case] = &[
    case(
        "connect_allowed_endpoint_only",
        connect_allowed_endpoint_only,
    ),
    case("connect_ipv6", connect_ipv6),
    case("udp_connect_and_sendto", udp_connect_and_sendto),
    case("connect_grant_one_use", connect_grant_one_use),
    case("unix_socket_by_baseline", unix_socket_by_baseline),
];

const fn case(name: &'static str, run: fn() -> anyhow::Result<()>) -> Case {
    Case {
        name,
        needs: &[Need::BpfLsm],
        run,
    }
}

/// `IPPROTO_TCP` and `IPPROTO_UDP` as the records carry them.
const TCP: u16 = 6;
const UDP: u16 = 17;

/// A `struct sockaddr` for an IP destination, built before fork so the
/// forked child only makes raw calls.
#[derive(Clone, Copy)]
pub(crate) enum RawAddr {
    V4(libc::sockaddr_in),
    V6(libc::sockaddr_in6),
}

impl std::fmt::Debug for RawAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::V4(_) => "RawAddr::V4",
            Self::V6(_) => "RawAddr::V6",
        })
    }
}

fn family(af: libc::c_int) -> libc::sa_family_t {
    libc::sa_family_t::try_from(af).expect("address families fit in sa_family_t")
}

fn socklen<T>() -> libc::socklen_t {
    libc::socklen_t::try_from(size_of::<T>()).expect("sockaddr sizes fit in socklen_t")
}

impl RawAddr {
    pub(crate) fn new(addr: SocketAddr) -> Self {
        match addr {
            SocketAddr::V4(a) => Self::V4(libc::sockaddr_in {
                sin_family: family(libc::AF_INET),
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            }),
            SocketAddr::V6(a) => Self::V6(libc::sockaddr_in6 {
                sin6_family: family(libc::AF_INET6),
                sin6_port: a.port().to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: 0,
            }),
        }
    }

    const fn domain(&self) -> libc::c_int {
        match self {
            Self::V4(_) => libc::AF_INET,
            Self::V6(_) => libc::AF_INET6,
        }
    }

    const fn ptr(&self) -> *const libc::sockaddr {
        match self {
            Self::V4(a) => std::ptr::from_ref(a).cast(),
            Self::V6(a) => std::ptr::from_ref(a).cast(),
        }
    }

    fn len(&self) -> libc::socklen_t {
        match self {
            Self::V4(_) => socklen::<libc::sockaddr_in>(),
            Self::V6(_) => socklen::<libc::sockaddr_in6>(),
        }
    }
}

/// A new socket of `kind` for `to`'s family, passed to `f`, closed after.
/// 0, or the errno of whatever failed.
fn with_socket(to: &RawAddr, kind: libc::c_int, f: impl FnOnce(libc::c_int) -> i32) -> i32 {
    // SAFETY: plain system call.
    let fd = unsafe { libc::socket(to.domain(), kind | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return errno_if(-1);
    }
    let got = f(fd);
    // SAFETY: closing the socket opened above.
    unsafe { libc::close(fd) };
    got
}

/// Connects a new socket of `kind` to `to` (for the forked child).
fn connect_kind(to: &RawAddr, kind: libc::c_int) -> i32 {
    with_socket(to, kind, |fd| {
        // SAFETY: `to` points at a sockaddr of `to.len()` bytes.
        errno_if(unsafe { libc::connect(fd, to.ptr(), to.len()) }.into())
    })
}

/// A TCP connect to `to`: 0, or its errno (for the forked child).
pub(crate) fn tcp_connect(to: &RawAddr) -> i32 {
    connect_kind(to, libc::SOCK_STREAM)
}

/// A UDP connect to `to` (for the forked child).
fn udp_connect(to: &RawAddr) -> i32 {
    connect_kind(to, libc::SOCK_DGRAM)
}

/// A UDP `sendto` of one byte to `to`, without connect (for the forked
/// child).
fn udp_sendto(to: &RawAddr) -> i32 {
    with_socket(to, libc::SOCK_DGRAM, |fd| {
        // SAFETY: a one-byte buffer and a sockaddr of `to.len()` bytes.
        let n = unsafe { libc::sendto(fd, b"x".as_ptr().cast(), 1, 0, to.ptr(), to.len()) };
        errno_if(n.try_into().unwrap_or(-1))
    })
}

/// A TCP listener on `ip`, port chosen by the kernel; its address.
pub(crate) fn tcp_listener(ip: IpAddr) -> anyhow::Result<(TcpListener, SocketAddr)> {
    let l = TcpListener::bind(SocketAddr::new(ip, 0))
        .with_context(|| format!("binding TCP on {ip}"))?;
    let addr = l.local_addr()?;
    Ok((l, addr))
}

/// The network decisions of `hook`, in order.
pub(crate) fn net_decisions(events: &[Event], hook: Hook) -> Vec<&NetDecisionEvent> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Net(n) if n.decision.hook == hook => Some(n),
            _ => None,
        })
        .collect()
}

/// What a network decision record must say.
#[derive(Debug, Clone, Copy)]
pub(crate) struct NetExpect {
    pub(crate) verdict: Verdict,
    pub(crate) reason: Reason,
    pub(crate) to: SocketAddr,
    pub(crate) protocol: u16,
    pub(crate) cgroup_id: u64,
}

impl NetExpect {
    pub(crate) fn check(&self, e: &NetDecisionEvent) -> anyhow::Result<()> {
        let d = &e.decision;
        ensure!(
            d.verdict == self.verdict
                && d.reason == self.reason
                && e.ip() == Some(self.to.ip())
                && e.port == self.to.port()
                && e.protocol == self.protocol
                && e.header.cgroup_id == self.cgroup_id,
            "expected {}/{} to {} proto {} from cgroup {}, got {}",
            self.verdict,
            self.reason,
            self.to,
            self.protocol,
            self.cgroup_id,
            acelogic_lineage::render(&Event::Net(e.clone()))
        );
        Ok(())
    }
}

/// Connect to the allowed port works, to the other port is refused; both
/// recorded with the destination.
fn connect_to_two(name: &str, ip: IpAddr) -> anyhow::Result<()> {
    let mut s = Setup::new(name)?;
    let (_l1, a1) = tcp_listener(ip)?;
    let (_l2, a2) = tcp_listener(ip)?;
    s.kernel
        .allow_net(s.scope, &NetTarget::host(Protocol::Tcp, ip, a1.port()))?;
    let (r1, r2) = (RawAddr::new(a1), RawAddr::new(a2));

    let ok = s.governed_and_free(|| tcp_connect(&r1))?;
    ensure!(ok == 0, "governed connect to the allowed {a1}: errno {ok}");
    let denied = s.governed_and_free(|| tcp_connect(&r2))?;
    ensure!(
        denied == libc::EPERM,
        "governed connect to {a2} (no rule): errno {denied}, expected EPERM"
    );

    let events = s.decisions()?;
    let [allowed, refused] = net_decisions(&events, Hook::SocketConnect)[..] else {
        bail!(
            "expected two connect decisions, got {}",
            render_all(&events)
        );
    };
    let expect = |verdict, reason, to| NetExpect {
        verdict,
        reason,
        to,
        protocol: TCP,
        cgroup_id: s.governed.id,
    };
    expect(Verdict::Allow, Reason::Baseline, a1).check(allowed)?;
    expect(Verdict::Deny, Reason::NoGrant, a2).check(refused)?;
    Ok(())
}

fn connect_allowed_endpoint_only() -> anyhow::Result<()> {
    connect_to_two("net-v4", IpAddr::V4(Ipv4Addr::LOCALHOST))
}

fn connect_ipv6() -> anyhow::Result<()> {
    let ip = IpAddr::V6(Ipv6Addr::LOCALHOST);
    if let Err(e) = TcpListener::bind(SocketAddr::new(ip, 0))
        && e.raw_os_error() == Some(libc::EADDRNOTAVAIL)
    {
        bail!(
            "cannot bind [::1] (EADDRNOTAVAIL): this machine has no IPv6 loopback, so the IPv6 \
             gate cannot be tested here; bring up IPv6 on lo"
        );
    }
    connect_to_two("net-v6", ip)
}

fn udp_connect_and_sendto() -> anyhow::Result<()> {
    let mut s = Setup::new("net-udp")?;
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let bind = || -> anyhow::Result<(UdpSocket, SocketAddr)> {
        let u = UdpSocket::bind(SocketAddr::new(ip, 0))?;
        let a = u.local_addr()?;
        Ok((u, a))
    };
    let (_u1, a1) = bind()?;
    let (_u2, a2) = bind()?;
    s.kernel
        .allow_net(s.scope, &NetTarget::host(Protocol::Udp, ip, a1.port()))?;
    let (r1, r2) = (RawAddr::new(a1), RawAddr::new(a2));

    let ok = s.governed_and_free(|| udp_sendto(&r1))?;
    ensure!(ok == 0, "governed sendto the allowed {a1}: errno {ok}");
    let to_other = s.governed_and_free(|| udp_sendto(&r2))?;
    ensure!(
        to_other == libc::EPERM,
        "governed sendto {a2} (no rule): errno {to_other}, expected EPERM"
    );
    let connect_other = s.governed_and_free(|| udp_connect(&r2))?;
    ensure!(
        connect_other == libc::EPERM,
        "governed UDP connect to {a2} (no rule): errno {connect_other}, expected EPERM"
    );

    let events = s.decisions()?;
    let expect = |verdict, reason, to| NetExpect {
        verdict,
        reason,
        to,
        protocol: UDP,
        cgroup_id: s.governed.id,
    };
    let [sent, refused] = net_decisions(&events, Hook::SocketSendmsg)[..] else {
        bail!(
            "expected two sendmsg decisions, got {}",
            render_all(&events)
        );
    };
    expect(Verdict::Allow, Reason::Baseline, a1).check(sent)?;
    expect(Verdict::Deny, Reason::NoGrant, a2).check(refused)?;
    let [connect] = net_decisions(&events, Hook::SocketConnect)[..] else {
        bail!("expected one connect decision, got {}", render_all(&events));
    };
    expect(Verdict::Deny, Reason::NoGrant, a2).check(connect)?;
    Ok(())
}

fn connect_grant_one_use() -> anyhow::Result<()> {
    const GRANT: u64 = 9001;
    let mut s = Setup::new("net-grant")?;
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let (_l, a) = tcp_listener(ip)?;
    s.kernel.install_grants(&[GrantSpec {
        grant_id: GRANT,
        scope_id: s.scope,
        expires_boot_ns: boot_ns_in(Duration::from_secs(600)),
        max_uses: Some(1),
        object: GrantObject::Net(NetTarget::host(Protocol::Tcp, ip, a.port())),
    }])?;
    let r = RawAddr::new(a);
    let first = s.governed_and_free(|| tcp_connect(&r))?;
    ensure!(
        first == 0,
        "first governed connect under a one-use grant: errno {first}"
    );
    let second = s.governed_and_free(|| tcp_connect(&r))?;
    ensure!(
        second == libc::EPERM,
        "second governed connect: errno {second}, expected EPERM (the grant's one use is spent)"
    );

    let events = s.decisions()?;
    let [allowed, refused] = net_decisions(&events, Hook::SocketConnect)[..] else {
        bail!(
            "expected two connect decisions, got {}",
            render_all(&events)
        );
    };
    let expect = |verdict, reason| NetExpect {
        verdict,
        reason,
        to: a,
        protocol: TCP,
        cgroup_id: s.governed.id,
    };
    expect(Verdict::Allow, Reason::Grant).check(allowed)?;
    ensure!(
        allowed.decision.grant_id == GRANT,
        "allowed by grant {}, expected {GRANT}",
        allowed.decision.grant_id
    );
    expect(Verdict::Deny, Reason::GrantUsedUp).check(refused)?;
    ensure!(
        refused.decision.grant_id == 0,
        "a denial names grant {}",
        refused.decision.grant_id
    );
    s.kernel.remove_grant(GRANT)?;
    Ok(())
}

/// A `sockaddr_un` for a path (built before fork).
fn unix_addr(path: &std::path::Path) -> anyhow::Result<libc::sockaddr_un> {
    use std::os::unix::ffi::OsStrExt as _;
    let bytes = path.as_os_str().as_bytes();
    let mut addr = libc::sockaddr_un {
        sun_family: family(libc::AF_UNIX),
        sun_path: [0; 108],
    };
    ensure!(bytes.len() < addr.sun_path.len(), "socket path too long");
    for (dst, &b) in addr.sun_path.iter_mut().zip(bytes) {
        *dst = libc::c_char::from_ne_bytes([b]);
    }
    Ok(addr)
}

/// Connects a new AF_UNIX stream socket to `addr` (for the forked child).
fn unix_connect(addr: &libc::sockaddr_un) -> i32 {
    // SAFETY: plain system call.
    let fd = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return errno_if(-1);
    }
    // SAFETY: `addr` is a whole sockaddr_un.
    let rc = unsafe {
        libc::connect(
            fd,
            std::ptr::from_ref(addr).cast(),
            socklen::<libc::sockaddr_un>(),
        )
    };
    let got = errno_if(rc.into());
    // SAFETY: closing the socket opened above.
    unsafe { libc::close(fd) };
    got
}

/// A socketpair of `kind` carries one byte from one end to the other (for
/// the forked child). `EIO` when the byte does not arrive intact.
fn socketpair_works(kind: libc::c_int) -> i32 {
    let mut fds = [-1; 2];
    // SAFETY: `fds` has room for the two descriptors.
    if unsafe {
        libc::socketpair(
            libc::AF_UNIX,
            kind | libc::SOCK_CLOEXEC,
            0,
            fds.as_mut_ptr(),
        )
    } != 0
    {
        return errno_if(-1);
    }
    let mut got = [0u8; 1];
    // SAFETY: one-byte buffers on descriptors created above.
    let (sent, received) = unsafe {
        let sent = libc::send(fds[0], b"z".as_ptr().cast(), 1, 0);
        let sent_errno = errno_if(sent.try_into().unwrap_or(-1));
        let received = if sent == 1 {
            libc::recv(fds[1], got.as_mut_ptr().cast(), 1, 0)
        } else {
            -1
        };
        libc::close(fds[0]);
        libc::close(fds[1]);
        (sent_errno, received)
    };
    if sent != 0 {
        return sent;
    }
    if received != 1 || got != *b"z" {
        return libc::EIO;
    }
    0
}

fn unix_socket_by_baseline() -> anyhow::Result<()> {
    let mut s = Setup::new("net-unix")?;
    let dir = Scratch::new("unix")?;
    let path = dir.join("sock");
    let _listener =
        UnixListener::bind(&path).with_context(|| format!("binding {}", path.display()))?;
    let addr = unix_addr(&path)?;
    let (dev, ino) = file_identity(&path)?;

    let denied = s.governed_and_free(|| unix_connect(&addr))?;
    ensure!(
        denied == libc::EPERM,
        "governed connect to {} without a rule: errno {denied}, expected EPERM",
        path.display()
    );
    let events = s.decisions()?;
    let [refused] = net_decisions(&events, Hook::UnixConnect)[..] else {
        bail!(
            "expected one unix-connect decision, got {}",
            render_all(&events)
        );
    };
    let governed_id = s.governed.id;
    let check = |e: &NetDecisionEvent, verdict, reason| {
        ensure!(
            e.decision.verdict == verdict
                && e.decision.reason == reason
                && e.family == 1
                && (e.unix.dev, e.unix.ino) == (dev, ino)
                && e.header.cgroup_id == governed_id,
            "expected {verdict}/{reason} naming socket file {dev}:{ino}, got {}",
            acelogic_lineage::render(&Event::Net(e.clone()))
        );
        Ok(())
    };
    check(refused, Verdict::Deny, Reason::NoGrant)?;

    s.kernel.allow_file(s.scope, &path, rights::UNIX_CONNECT)?;
    let allowed = s.governed_and_free(|| unix_connect(&addr))?;
    ensure!(
        allowed == 0,
        "governed connect with a baseline rule: errno {allowed}"
    );
    let events = s.decisions()?;
    let [allowed] = net_decisions(&events, Hook::UnixConnect)[..] else {
        bail!(
            "expected one unix-connect decision, got {}",
            render_all(&events)
        );
    };
    check(allowed, Verdict::Allow, Reason::Baseline)?;

    // Unnamed sockets: a socketpair was never connected by name.
    for (kind, what) in [
        (libc::SOCK_STREAM, "stream"),
        (libc::SOCK_DGRAM, "datagram"),
    ] {
        let got = in_cgroup(&s.governed, || socketpair_works(kind))?;
        ensure!(got == 0, "governed {what} socketpair: errno {got}");
    }
    let events = s.decisions()?;
    for e in &events {
        let Some(d) = e.decision() else { continue };
        ensure!(
            d.hook == Hook::UnixSend
                && d.verdict == Verdict::Allow
                && d.reason == Reason::UnnamedPeer,
            "socketpair traffic decided as {}",
            render_all(&events)
        );
    }
    Ok(())
}
