//! Network connects.
//!
//! Kernel prototype: `LSM_HOOK(int, 0, socket_connect, struct socket
//! *sock, struct sockaddr *address, int addrlen)`; previous return value
//! at index 3. The address is the kernel's copy, so it cannot change after
//! the check. IPv4 and IPv6 (TCP and UDP) are decided by rule; AF_UNIX is
//! decided by `unix_connect.rs` and `unix_send.rs` on the resolved peer;
//! `AF_UNSPEC` (dissolving a UDP association) goes through; every other
//! family is denied.

use acelogic_common::{codes::hook, event::NetDecision};
use aya_ebpf::{macros::lsm, programs::LsmContext};

use crate::{
    gate,
    kobj::Kptr,
    net::{self, AF_UNIX, AF_UNSPEC},
    scope,
};

#[lsm(hook = "socket_connect")]
pub(crate) fn connect_gate(ctx: LsmContext) -> i32 {
    let sock: Kptr = ctx.arg(0);
    let addr: Kptr = ctx.arg(1);
    let prev: i32 = ctx.arg(3);
    if prev != 0 {
        return prev;
    }
    // The scope before reading the address: ungoverned connects pay only
    // the scope lookup.
    let Some(g) = scope::current() else {
        return 0;
    };
    if matches!(net::family_of(addr), Ok(AF_UNSPEC | AF_UNIX)) {
        return 0;
    }
    gate::governed::<NetDecision>(&g, hook::SOCKET_CONNECT, |g, rec| {
        net::inet(g, rec, sock, addr)
    })
}
