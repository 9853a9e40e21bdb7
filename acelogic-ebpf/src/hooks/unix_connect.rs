//! Connecting to a bound AF_UNIX stream socket.
//!
//! Kernel prototype: `LSM_HOOK(int, 0, unix_stream_connect, struct sock
//! *sock, struct sock *other, struct sock *newsk)`; previous return value
//! at index 3. The peer is already resolved, so it is matched by the inode
//! of its socket file; AF_UNIX is baseline-only (see `net::unix`).

use acelogic_common::{codes::hook, event::NetDecision};
use aya_ebpf::{macros::lsm, programs::LsmContext};

use crate::{gate, kobj::Kptr, net};

#[lsm(hook = "unix_stream_connect")]
pub(crate) fn unix_conn_gate(ctx: LsmContext) -> i32 {
    let other: Kptr = ctx.arg(1);
    gate::run::<NetDecision>(ctx.arg(3), hook::UNIX_CONNECT, |g, rec| {
        net::unix(g, rec, other)
    })
}
