//! ACELOGIC's BPF programs.
//!
//! LSM hooks decide; tracepoints record. Each hook lives in its own file
//! under `hooks/` and is a thin adapter onto the one decision flow in
//! `gate.rs`: scope (`scope.rs`), object (`objects.rs`, `net.rs`, read
//! through `kobj.rs` with offsets from the running kernel's BTF), rules
//! (`rules.rs`: baseline, then grants), record (`record.rs`). All maps are
//! in `maps.rs`. Names and types shared with userspace come from
//! `acelogic-common`.
#![no_std]
#![no_main]
// Atomic read-modify-write for grant uses (see `rules.rs`).
#![expect(
    internal_features,
    reason = "the BPF target offers atomic RMW only through intrinsics"
)]
#![feature(core_intrinsics)]
// Map keys go to aya's helpers by reference, as the verifier has seen
// them: a key by value is another instantiation of the helper, so other
// code, for a lint about style.
#![expect(
    clippy::needless_borrows_for_generic_args,
    reason = "a key by value changes the BPF code the verifier checks"
)]

mod floor;
mod gate;
mod hooks;
mod kobj;
mod kpath;
mod maps;
mod net;
mod objects;
mod record;
mod rules;
mod scope;
mod verdict;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // The verifier rejects any reachable panic, so this is never called.
    loop {}
}

/// LSM and tracepoint programs that use GPL-only helpers need a GPL
/// compatible licence.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 4] = *b"GPL\0";
