//! Reading records from the kernel's ring buffer.

use std::{
    os::fd::{AsFd as _, AsRawFd as _},
    time::{Duration, Instant},
};

use acelogic_common::user::{DecodeError, Event};
use aya::maps::{MapData, RingBuf};

/// The consumer side of the `EVENTS` ring buffer.
pub struct Records {
    ring: RingBuf<MapData>,
}

impl std::fmt::Debug for Records {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Records").finish_non_exhaustive()
    }
}

impl Records {
    pub(super) const fn new(ring: RingBuf<MapData>) -> Self {
        Self { ring }
    }

    /// The next record, waiting up to `timeout` for one to arrive. `None`
    /// when none arrived in time.
    pub fn next_within(&mut self, timeout: Duration) -> Option<Result<Event, DecodeError>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(item) = self.ring.next() {
                return Some(Event::decode(&item));
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            let mut pfd = libc::pollfd {
                fd: self.ring.as_fd().as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = libc::c_int::try_from(left.as_millis().max(1)).unwrap_or(libc::c_int::MAX);
            // SAFETY: `pfd` is a valid pollfd for the duration of the call.
            let n = unsafe { libc::poll(&raw mut pfd, 1, ms) };
            if n < 0 && std::io::Error::last_os_error().kind() != std::io::ErrorKind::Interrupted {
                return None;
            }
        }
    }

    /// Every record available now, without waiting.
    pub fn drain(&mut self) -> Vec<Result<Event, DecodeError>> {
        let mut out = Vec::new();
        while let Some(item) = self.ring.next() {
            out.push(Event::decode(&item));
        }
        out
    }
}

impl std::os::fd::AsRawFd for Records {
    /// The ring buffer's fd, readable when records are waiting; for
    /// `poll`/`tokio::io::unix::AsyncFd`.
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.ring.as_fd().as_raw_fd()
    }
}
