//! Sending to an explicit destination without `connect`: UDP `sendto`,
//! TCP Fast Open (`sendto` with `MSG_FASTOPEN`).
//!
//! Kernel prototype: `LSM_HOOK(int, 0, socket_sendmsg, struct socket
//! *sock, struct msghdr *msg, int size)`; previous return value at index
//! 3. Messages without a destination address go where `connect` (already
//! decided) pointed the socket. IPv4 and IPv6 destinations are decided as
//! in `connect.rs`; AF_UNIX by `unix_send.rs`; other families (netlink)
//! are not governed here.

use acelogic_common::{codes::hook, event::NetDecision, rules::family};
use aya_ebpf::{macros::lsm, programs::LsmContext};

use crate::{
    gate,
    kobj::{self, Kptr},
    net, scope,
};

#[lsm(hook = "socket_sendmsg")]
pub(crate) fn sendmsg_gate(ctx: LsmContext) -> i32 {
    let sock: Kptr = ctx.arg(0);
    let msg: Kptr = ctx.arg(1);
    let prev: i32 = ctx.arg(3);
    if prev != 0 {
        return prev;
    }
    // The scope before reading the message: ungoverned sends pay only the
    // scope lookup.
    let Some(g) = scope::current() else {
        return 0;
    };
    let addr = match kobj::msghdr_name(msg) {
        Ok((name, len)) if name.is_null() || len <= 0 => return 0,
        Ok((name, _)) => match net::family_of(name) {
            Ok(f) if f == u16::from(family::INET) || f == u16::from(family::INET6) => name,
            Ok(_) => return 0,
            Err(_) => core::ptr::null(),
        },
        // Unreadable: decided (governed: denied by the failing read).
        Err(_) => core::ptr::null(),
    };
    gate::governed::<NetDecision>(&g, hook::SOCKET_SENDMSG, |g, rec| {
        net::inet(g, rec, sock, addr)
    })
}
