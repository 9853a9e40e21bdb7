//! Types shared by ACELOGIC's BPF programs and its userspace.
//!
//! Everything that crosses the kernel boundary is defined here once:
//! map and program names, map keys and values, the event envelope and its
//! bodies, kernel offsets, and the numbered codes (hooks, verdicts,
//! reasons, counters). Kernel-side values are plain integers; userspace
//! converts them with `TryFrom` so an unknown code is an error, never a
//! silent default.
//!
//! The `user` feature adds what only userspace needs: `aya::Pod` impls,
//! `Display`, and decoding of ring-buffer records.
#![no_std]

pub mod codes;
pub mod event;
pub mod names;
pub mod offsets;
pub mod rules;
pub mod scope;

#[cfg(feature = "user")]
pub mod user;
