//! ACELOGIC's BPF programs.
//!
//! LSM hooks decide; tracepoints record. Each hook lives in its own file
//! under `hooks/`; all maps are in `maps.rs`; record emission is in
//! `record.rs`. Names and types shared with userspace come from
//! `acelogic-common`.
#![no_std]
#![no_main]

mod hooks;
mod maps;
mod record;
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
