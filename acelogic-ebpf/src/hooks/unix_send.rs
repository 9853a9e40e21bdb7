//! Sending on an AF_UNIX datagram socket.
//!
//! Kernel prototype: `LSM_HOOK(int, 0, unix_may_send, struct socket
//! *sock, struct socket *other)`; previous return value at index 2. Called
//! for datagram connects and sends with the peer resolved.

use acelogic_common::{codes::hook, event::NetDecision};
use aya_ebpf::{macros::lsm, programs::LsmContext};

use crate::{
    gate,
    kobj::{self, Kptr},
    net,
};

#[lsm(hook = "unix_may_send")]
pub(crate) fn unix_send_gate(ctx: LsmContext) -> i32 {
    let other: Kptr = ctx.arg(1);
    gate::run::<NetDecision>(ctx.arg(2), hook::UNIX_SEND, |g, rec| {
        net::unix(g, rec, kobj::socket_sk(other)?)
    })
}
