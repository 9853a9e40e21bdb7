//! Deciding a network destination from a `struct sockaddr` the kernel
//! copied in, for the connect and sendmsg gates, and AF_UNIX peers by the
//! inode of their bound socket file.

use acelogic_common::{
    codes::reason,
    event::NetDecision,
    rules::{family, rights},
};

use crate::{
    kobj::{self, Kptr},
    rules::{self, Use},
    scope::Governed,
    verdict::{Error, Verdict},
};

pub(crate) const AF_UNSPEC: u16 = 0;
pub(crate) const AF_UNIX: u16 = 1;
const AF_INET: u16 = family::INET as u16;
const AF_INET6: u16 = family::INET6 as u16;

/// The address family of a `struct sockaddr`.
#[inline(always)]
pub(crate) fn family_of(addr: Kptr) -> Result<u16, Error> {
    kobj::read_at(addr, 0)
}

/// An IPv4 or IPv6 destination of socket `sock`. IPv4-mapped IPv6
/// addresses are decided as the IPv4 address they carry.
#[inline(always)]
pub(crate) fn inet(
    g: &Governed,
    rec: *mut NetDecision,
    sock: Kptr,
    addr: Kptr,
) -> Result<Verdict, Error> {
    let fam = family_of(addr)?;
    // sockaddr_in and sockaddr_in6 both carry the port at offset 2.
    let port_be: u16 = kobj::read_at(addr, 2)?;
    let mut ip = [0u8; 16];
    let (fam, bits) = match fam {
        AF_INET => {
            let v4: [u8; 4] = kobj::read_at(addr, 4)?;
            ip[..4].copy_from_slice(&v4);
            (AF_INET, 32)
        }
        AF_INET6 => {
            let v6: [u8; 16] = kobj::read_at(addr, 8)?;
            if v6[..10] == [0; 10] && v6[10] == 0xff && v6[11] == 0xff {
                ip[..4].copy_from_slice(&v6[12..]);
                (AF_INET, 32)
            } else {
                ip = v6;
                (AF_INET6, 128)
            }
        }
        _ => (fam, 0),
    };
    let protocol = kobj::sock_protocol(kobj::socket_sk(sock)?)?;
    // SAFETY: `rec` is the gate's exclusively owned ring-buffer slot.
    unsafe {
        (*rec).family = fam;
        (*rec).protocol = protocol;
        (*rec).port = u16::from_be(port_be);
        (*rec).addr = ip;
    }
    if bits == 0 {
        g.open()?;
        return Ok(Verdict::deny(reason::UNSUPPORTED_FAMILY));
    }
    #[expect(
        clippy::cast_possible_truncation,
        reason = "IPPROTO_* and AF_* fit in u8"
    )]
    rules::net(g, protocol as u8, fam as u8, port_be, ip, bits)
}

/// An AF_UNIX peer `other` (a `struct sock`). A peer bound to a file is
/// allowed by a baseline rule on that file's inode; an abstract address
/// has no identity to match and is denied; an unnamed peer (a socketpair)
/// was reached without an address and is allowed.
#[inline(always)]
pub(crate) fn unix(g: &Governed, rec: *mut NetDecision, other: Kptr) -> Result<Verdict, Error> {
    // SAFETY: `rec` is the gate's exclusively owned ring-buffer slot.
    unsafe { (*rec).family = AF_UNIX };
    let dentry = kobj::unix_sock_dentry(other)?;
    if dentry.is_null() {
        g.open()?;
        return Ok(if kobj::unix_sock_named(other)? {
            Verdict::deny(reason::NO_GRANT)
        } else {
            Verdict::allow(reason::UNNAMED_PEER, 0)
        });
    }
    let id = kobj::inode_id(kobj::dentry_inode(dentry)?)?;
    // SAFETY: as above.
    unsafe { (*rec).unix = id };
    rules::file(g, id, rights::UNIX_CONNECT, Use::Check)
}
