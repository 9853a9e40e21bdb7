//! Reading records from the kernel's ring buffer, consuming them only when
//! the reader says so.
//!
//! # Why not aya's `RingBuf`
//!
//! aya's `RingBuf` hands out items that advance the ring's consumer
//! position when they are dropped. The consumer position is what tells the
//! kernel (and, with the map pinned, the next daemon) which records are
//! gone, so a daemon killed between reading a record and writing it to its
//! journal loses that record for good. [`Records`] reads the ring through
//! its own mapping instead: [`Records::peek`] copies records out without
//! moving anything, and the position moves only on [`Records::commit`],
//! which the caller issues once the records are durable. A restarted
//! daemon that adopts the pinned ring (see `pins.rs`) sees everything not
//! committed again.
//!
//! # The ring's layout (the kernel's `BPF_MAP_TYPE_RINGBUF` ABI)
//!
//! ```text
//! mmap offset 0          consumer page: consumer_pos (u64), read-write
//! mmap offset page_size  producer page: producer_pos (u64), read-only
//!             2*page_size  data area, `max_entries` bytes, mapped twice in
//!                          a row so a record that wraps reads contiguously
//! ```
//!
//! Positions are byte counters that only grow; `pos & (size - 1)` is the
//! offset in the data area. Each record starts with an 8-byte header: a
//! `u32` length with `BUSY` (bit 31: reserved, not yet submitted) and
//! `DISCARD` (bit 30: reserved, then dropped), then a `u32` page offset the
//! kernel uses to find its ring. Records are 8-byte aligned.
//!
//! # Waking up
//!
//! The fd polls readable while any byte lies between the consumer and the
//! producer position, committed by us or not. The kernel, however, wakes
//! waiters only when it submits a record *at* the consumer position, i.e.
//! when the reader had caught up. A reader that holds records back without
//! committing therefore gets no wakeup for newer records (with
//! edge-triggered waiting such as tokio's `AsyncFd`, none at all) until it
//! commits; and after a commit it must [`Records::peek`] again before it
//! waits, because records submitted while it was behind raised no wakeup.

use std::{
    io,
    os::fd::{AsFd as _, AsRawFd as _},
    ptr::NonNull,
    sync::atomic::{self, AtomicU32, AtomicUsize, Ordering},
    time::{Duration, Instant},
};

use acelogic_common::user::{DecodeError, Event};
use aya::maps::MapData;

use super::KernelError;

/// Bit 31 of a record header: reserved but not yet submitted.
const BUSY: u32 = 1 << 31;
/// Bit 30 of a record header: reserved, then discarded by the program.
const DISCARD: u32 = 1 << 30;
/// Size of a record header (`struct bpf_ringbuf_hdr`).
const HEADER: u64 = 8;

/// One record copied out of the ring, not yet consumed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRecord {
    bytes: Vec<u8>,
    start: u64,
    pos: u64,
}

impl RawRecord {
    /// The record as the BPF program wrote it (header and body).
    #[must_use]
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The record's bytes, owned.
    #[must_use]
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// Ring position of the record's header.
    #[must_use]
    pub const fn start(&self) -> u64 {
        self.start
    }

    /// Ring position just after the record: [`Records::commit`] this once
    /// the record (and everything before it) is durable.
    #[must_use]
    pub const fn pos(&self) -> u64 {
        self.pos
    }

    /// Decodes the record.
    pub fn decode(&self) -> Result<Event, DecodeError> {
        Event::decode(&self.bytes)
    }
}

/// What one [`Records::peek`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Batch {
    records: Vec<RawRecord>,
    start: u64,
    end: u64,
    busy: bool,
}

impl Batch {
    /// The records, oldest first.
    #[must_use]
    pub fn records(&self) -> &[RawRecord] {
        &self.records
    }

    /// The records, owned.
    #[must_use]
    pub fn into_records(self) -> Vec<RawRecord> {
        self.records
    }

    #[must_use]
    pub fn len(&self) -> usize {
        self.records.len()
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// The position the peek started from.
    #[must_use]
    pub const fn start(&self) -> u64 {
        self.start
    }

    /// The position just after everything the peek walked over: the last
    /// record and any discarded ones after it. Committing it consumes the
    /// whole batch.
    #[must_use]
    pub const fn end(&self) -> u64 {
        self.end
    }

    /// The peek stopped at a record a program has reserved but not yet
    /// submitted; records after it wait for it (the ring is ordered).
    #[must_use]
    pub const fn busy(&self) -> bool {
        self.busy
    }
}

impl IntoIterator for Batch {
    type Item = RawRecord;
    type IntoIter = std::vec::IntoIter<RawRecord>;
    fn into_iter(self) -> Self::IntoIter {
        self.records.into_iter()
    }
}

/// A position [`Records::commit`] refused; the consumer position is
/// unchanged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CommitError {
    #[error("position {pos} is past the producer position {producer}")]
    BeyondProducer { pos: u64, producer: u64 },
    #[error("position {pos} is not the end of a record (the records from {from} end at {next})")]
    NotABoundary { pos: u64, from: u64, next: u64 },
    #[error("position {pos} lies past a record at {at} that is not yet submitted")]
    Unsubmitted { pos: u64, at: u64 },
}

/// A `mmap`ed region, unmapped on drop.
#[derive(Debug)]
struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
}

impl Mapping {
    fn new(fd: i32, len: usize, prot: i32, offset: usize) -> io::Result<Self> {
        let offset = libc::off_t::try_from(offset)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "mmap offset overflows"))?;
        // SAFETY: a fresh shared mapping of a BPF map fd; the kernel checks
        // the length, offset and protection against the map.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                prot,
                libc::MAP_SHARED,
                fd,
                offset,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr = NonNull::new(ptr.cast::<u8>()).ok_or_else(io::Error::last_os_error)?;
        Ok(Self { ptr, len })
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: unmapping exactly the region `new` mapped, once.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
    }
}

/// The data area: `2 * size` readable bytes (the ring mapped twice) at an
/// 8-byte-aligned address. Only read through raw pointers: the kernel
/// writes it concurrently.
#[derive(Debug, Clone, Copy)]
struct Area {
    ptr: *const u8,
    /// Bytes of the ring (a power of two); the area holds twice this.
    size: u64,
}

impl Area {
    fn offset(self, pos: u64) -> usize {
        usize::try_from(pos & (self.size - 1)).unwrap_or(usize::MAX)
    }

    /// The header word of the record at `pos`, read with `Acquire`: the
    /// kernel clears `BUSY` with a fully ordered exchange after writing the
    /// record, so the body is visible once the bit reads clear.
    fn header(self, pos: u64) -> u32 {
        let off = self.offset(pos);
        // SAFETY: `off < size` and the area is `2 * size` bytes, so the
        // word lies inside it; `slot`, the only caller, checked that `pos`
        // is a multiple of 8 and the area is page-aligned, so the word is
        // aligned; `AtomicU32` has the layout of `u32`.
        unsafe { &*self.ptr.add(off).cast::<AtomicU32>() }.load(Ordering::Acquire)
    }

    /// Copies `len` bytes starting `HEADER` bytes after `pos`. The caller
    /// checked that `HEADER + len <= size`.
    fn body(self, pos: u64, len: usize) -> Vec<u8> {
        let mut out = vec![0u8; len];
        // SAFETY: `off + 8 + len <= size + size` (offset below `size`, record
        // at most `size`), inside the doubly mapped area; a submitted record
        // is not written again until the consumer position passes it.
        unsafe {
            std::ptr::copy_nonoverlapping(
                self.ptr.add(self.offset(pos) + 8),
                out.as_mut_ptr(),
                len,
            );
        };
        out
    }

    /// The record at `pos` (below `producer`): its length and flags, or
    /// `None` when its header is impossible (a length past the ring or the
    /// producer position), which is treated like `BUSY`: stop, consume
    /// nothing.
    fn slot(self, pos: u64, producer: u64) -> Slot {
        if !pos.is_multiple_of(8) {
            return Slot::Busy;
        }
        let hdr = self.header(pos);
        if hdr & BUSY != 0 {
            return Slot::Busy;
        }
        let len = hdr & !(BUSY | DISCARD);
        let total = (u64::from(len) + HEADER).next_multiple_of(8);
        if total > self.size || pos.saturating_add(total) > producer {
            return Slot::Busy;
        }
        Slot::Ready {
            len: usize::try_from(len).unwrap_or(usize::MAX),
            next: pos + total,
            discarded: hdr & DISCARD != 0,
        }
    }

    /// Up to `max` submitted records from `from` up to `producer`.
    #[cfg(test)]
    fn scan(self, from: u64, producer: u64, max: usize) -> Batch {
        self.scan_after(from, from, producer, max)
    }

    /// Like [`Area::scan`] from `from`, a record boundary, but returning
    /// only the records that start at or after `skip_to`.
    fn scan_after(self, from: u64, skip_to: u64, producer: u64, max: usize) -> Batch {
        let mut pos = from;
        let mut busy = false;
        while pos < skip_to.min(producer) {
            match self.slot(pos, producer) {
                Slot::Busy => {
                    busy = true;
                    break;
                }
                Slot::Ready { next, .. } => pos = next,
            }
        }
        let mut batch = Batch {
            start: pos,
            end: pos,
            busy,
            ..Batch::default()
        };
        while !batch.busy && pos < producer && batch.records.len() < max {
            match self.slot(pos, producer) {
                Slot::Busy => {
                    batch.busy = true;
                    break;
                }
                Slot::Ready {
                    len,
                    next,
                    discarded,
                } => {
                    if !discarded {
                        batch.records.push(RawRecord {
                            bytes: self.body(pos, len),
                            start: pos,
                            pos: next,
                        });
                    }
                    pos = next;
                    batch.end = next;
                }
            }
        }
        batch
    }
}

enum Slot {
    Busy,
    Ready {
        len: usize,
        next: u64,
        discarded: bool,
    },
}

/// The consumer side of the `EVENTS` ring buffer.
///
/// - [`Records::peek`] copies out the records after the consumer position
///   without consuming them; each [`RawRecord`] has its bytes and the
///   position just after it.
/// - [`Records::commit`] consumes everything before a position.
/// - [`Records::consumer_pos`], [`Records::producer_pos`] and
///   [`Records::ring_id`] (the map's kernel id: a restarted daemon that
///   sees the same id adopted the same pinned ring) for bookkeeping.
/// - [`Records::next_within`] and [`Records::drain`] read and commit at
///   once, for callers with nothing to make durable (tests, probes).
///
/// See the module documentation for wakeups.
pub struct Records {
    map: MapData,
    id: u32,
    consumer: Mapping,
    /// Producer page then the doubly mapped data area.
    producer: Mapping,
    area: Area,
}

// SAFETY: the mappings are plain shared memory owned by this value; the
// raw pointers are only dereferenced through atomics or bounded copies, as
// they would be from any thread.
unsafe impl Send for Records {}
// SAFETY: `&self` methods only load atomics; every write (`commit`) takes
// `&mut self`.
unsafe impl Sync for Records {}

impl std::fmt::Debug for Records {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Records")
            .field("ring_id", &self.id)
            .field("size", &self.area.size)
            .field("consumer_pos", &self.consumer_pos())
            .field("producer_pos", &self.producer_pos())
            .finish_non_exhaustive()
    }
}

impl Records {
    /// Maps the ring buffer `map` (the loader's or an adopted pinned one).
    pub(super) fn new(map: MapData) -> Result<Self, KernelError> {
        let err = |what| move |source| KernelError::Ring { what, source };
        let info = map
            .info()
            .map_err(KernelError::on_map(acelogic_common::names::MAP_EVENTS))?;
        let size = info.max_entries();
        // SAFETY: sysconf has no preconditions.
        let page = usize::try_from(unsafe { libc::sysconf(libc::_SC_PAGESIZE) })
            .map_err(|_| io::Error::last_os_error())
            .map_err(err("reading the page size"))?;
        if !size.is_power_of_two() || (size as usize) < page {
            return Err(err("checking its size")(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{size} bytes is not a power-of-two multiple of the page size"),
            )));
        }
        let fd = map.fd().as_fd().as_raw_fd();
        let consumer = Mapping::new(fd, page, libc::PROT_READ | libc::PROT_WRITE, 0)
            .map_err(err("mapping the consumer page"))?;
        let data = 2 * size as usize;
        let producer = Mapping::new(fd, page + data, libc::PROT_READ, page)
            .map_err(err("mapping the producer page and data"))?;
        // SAFETY: `page` is inside the producer mapping, which is `page +
        // data` bytes long.
        let area_ptr = unsafe { producer.ptr.as_ptr().add(page) };
        Ok(Self {
            id: info.id(),
            map,
            consumer,
            producer,
            area: Area {
                ptr: area_ptr,
                size: u64::from(size),
            },
        })
    }

    fn consumer_word(&self) -> &AtomicUsize {
        // SAFETY: the consumer page is page-aligned, at least a word long,
        // mapped for as long as `self`, and the kernel only reads it.
        unsafe { &*self.consumer.ptr.as_ptr().cast::<AtomicUsize>() }
    }

    /// Everything before this position is consumed (loaded with `Acquire`).
    #[must_use]
    pub fn consumer_pos(&self) -> u64 {
        self.consumer_word().load(Ordering::Acquire) as u64
    }

    /// Everything before this position is reserved by a program (submitted
    /// or not). The kernel stores it with `Release`; loaded with `Acquire`.
    #[must_use]
    pub fn producer_pos(&self) -> u64 {
        // SAFETY: the producer page starts the read-only mapping, is
        // page-aligned and mapped for as long as `self`.
        let word = unsafe { &*self.producer.ptr.as_ptr().cast::<AtomicUsize>() };
        word.load(Ordering::Acquire) as u64
    }

    /// The ring's map id in the kernel (`bpf_map_info.id`). Ids are not
    /// reused while a map exists: the same id after a restart means the
    /// same pinned ring, and positions committed before still apply.
    #[must_use]
    pub const fn ring_id(&self) -> u32 {
        self.id
    }

    /// Bytes of the ring's data area.
    #[must_use]
    pub const fn ring_bytes(&self) -> u64 {
        self.area.size
    }

    /// Up to `max_records` submitted records from the consumer position on,
    /// without consuming anything. Discarded records are skipped; the batch
    /// stops at a record still being written.
    #[must_use]
    pub fn peek(&self, max_records: usize) -> Batch {
        self.peek_from(self.consumer_pos(), max_records)
    }

    /// [`Records::peek`], but only the records that start at or after
    /// `from` (say, the [`Batch::end`] of the last peek), for a reader with
    /// records in flight that wants only newer ones. Nothing is consumed;
    /// [`Batch::start`] is where the returned records begin.
    #[must_use]
    pub fn peek_from(&self, from: u64, max_records: usize) -> Batch {
        self.area
            .scan_after(self.consumer_pos(), from, self.producer_pos(), max_records)
    }

    /// Consumes everything before `pos`, the [`RawRecord::pos`] of a record
    /// or a [`Batch::end`]: the kernel may reuse that space and no later
    /// reader of this ring sees those records again. A position at or
    /// behind the consumer position is already consumed (no-op). The
    /// position is checked to end a submitted record, so a stale or
    /// made-up one cannot leave the reader mid-record.
    pub fn commit(&mut self, pos: u64) -> Result<(), CommitError> {
        let from = self.consumer_pos();
        if pos <= from {
            return Ok(());
        }
        let producer = self.producer_pos();
        if pos > producer {
            return Err(CommitError::BeyondProducer { pos, producer });
        }
        let mut at = from;
        while at < pos {
            match self.area.slot(at, producer) {
                Slot::Busy => return Err(CommitError::Unsubmitted { pos, at }),
                Slot::Ready { next, .. } => at = next,
            }
        }
        if at != pos {
            return Err(CommitError::NotABoundary {
                pos,
                from,
                next: at,
            });
        }
        self.store(pos);
        Ok(())
    }

    /// Stores the consumer position (`Release`: our reads of the records
    /// before it happen before the kernel reuses their space), then a full
    /// fence so that a following producer check pairs with the kernel's
    /// wakeup check.
    fn store(&self, pos: u64) {
        let pos = usize::try_from(pos).unwrap_or(usize::MAX);
        self.consumer_word().store(pos, Ordering::Release);
        atomic::fence(Ordering::SeqCst);
    }

    /// The next record, waiting up to `timeout` for one to arrive, and
    /// consumed at once. `None` when none arrived in time.
    pub fn next_within(&mut self, timeout: Duration) -> Option<Result<Event, DecodeError>> {
        let deadline = Instant::now() + timeout;
        loop {
            let batch = self.peek(1);
            if batch.end > batch.start {
                self.store(batch.end);
            }
            if let Some(record) = batch.records.first() {
                return Some(record.decode());
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            if batch.busy {
                // A program is between reserve and submit: moments.
                std::thread::sleep(left.min(Duration::from_micros(200)));
                continue;
            }
            let mut pfd = libc::pollfd {
                fd: self.as_raw_fd_inner(),
                events: libc::POLLIN,
                revents: 0,
            };
            let ms = libc::c_int::try_from(left.as_millis().max(1)).unwrap_or(libc::c_int::MAX);
            // SAFETY: `pfd` is a valid pollfd for the duration of the call.
            let n = unsafe { libc::poll(&raw mut pfd, 1, ms) };
            if n < 0 && io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
                return None;
            }
        }
    }

    /// Every record available now, without waiting, consumed at once.
    pub fn drain(&mut self) -> Vec<Result<Event, DecodeError>> {
        let mut out = Vec::new();
        loop {
            let batch = self.peek(usize::MAX);
            if batch.end == batch.start {
                return out;
            }
            self.store(batch.end);
            out.extend(batch.records.iter().map(RawRecord::decode));
        }
    }

    fn as_raw_fd_inner(&self) -> std::os::fd::RawFd {
        self.map.fd().as_fd().as_raw_fd()
    }
}

impl std::os::fd::AsRawFd for Records {
    /// The ring buffer's fd, for `poll`/`tokio::io::unix::AsyncFd`. It
    /// polls readable while uncommitted bytes remain; see the module
    /// documentation for when the kernel wakes waiters.
    fn as_raw_fd(&self) -> std::os::fd::RawFd {
        self.as_raw_fd_inner()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fake data area: `size` bytes of ring, held twice like the kernel's
    /// double mapping, in `u64`s for alignment.
    struct Fake {
        words: Vec<u64>,
        size: u64,
        producer: u64,
    }

    impl Fake {
        fn new(size: u64) -> Self {
            Self {
                words: vec![0; usize::try_from(2 * size / 8).unwrap()],
                size,
                producer: 0,
            }
        }

        fn area(&self) -> Area {
            Area {
                ptr: self.words.as_ptr().cast(),
                size: self.size,
            }
        }

        /// Writes a record at the producer position, as the kernel would,
        /// into both copies of the ring.
        fn push(&mut self, body: &[u8], flags: u32) -> u64 {
            let len = u32::try_from(body.len()).unwrap();
            let mut rec = (len | flags).to_ne_bytes().to_vec();
            rec.extend_from_slice(&[0; 4]);
            rec.extend_from_slice(body);
            rec.resize(rec.len().next_multiple_of(8), 0);
            let bytes: &mut [u8] = bytemuck_words(&mut self.words);
            let size = usize::try_from(self.size).unwrap();
            for (i, b) in rec.iter().enumerate() {
                let off = (usize::try_from(self.producer).unwrap() + i) % size;
                bytes[off] = *b;
                bytes[off + size] = *b;
            }
            self.producer += rec.len() as u64;
            self.producer
        }
    }

    fn bytemuck_words(words: &mut [u64]) -> &mut [u8] {
        // SAFETY: u64 storage viewed as bytes; same length in bytes.
        unsafe { std::slice::from_raw_parts_mut(words.as_mut_ptr().cast(), words.len() * 8) }
    }

    #[test]
    fn peek_skips_discarded_and_stops_at_busy() {
        let mut ring = Fake::new(256);
        let a = ring.push(b"first", 0);
        let b = ring.push(b"dropped!", DISCARD);
        let c = ring.push(b"third record", 0);
        ring.push(b"writing", BUSY);
        ring.push(b"after busy", 0);
        let batch = ring.area().scan(0, ring.producer, usize::MAX);
        let got: Vec<_> = batch.records.iter().map(|r| (r.bytes(), r.pos())).collect();
        assert_eq!(got, [(&b"first"[..], a), (&b"third record"[..], c)]);
        assert!(b < c && batch.busy && batch.end == c);

        // The bound on records stops before the next one; discarded records
        // after the last returned one are walked over.
        let one = ring.area().scan(0, ring.producer, 1);
        assert_eq!((one.len(), one.end, one.busy), (1, a, false));
        let rest = ring.area().scan(a, b, usize::MAX);
        assert_eq!((rest.len(), rest.end), (0, b));
    }

    #[test]
    fn scan_after_returns_only_newer_records() {
        let mut ring = Fake::new(256);
        let a = ring.push(b"one", 0);
        let b = ring.push(b"two", 0);
        let c = ring.push(b"three", 0);
        let newer = ring.area().scan_after(0, a, ring.producer, usize::MAX);
        let got: Vec<_> = newer.records.iter().map(RawRecord::bytes).collect();
        assert_eq!(got, [&b"two"[..], &b"three"[..]]);
        assert_eq!((newer.start, newer.end), (a, c));
        // Inside a record: the next boundary.
        let mid = ring.area().scan_after(0, a + 1, ring.producer, usize::MAX);
        assert_eq!((mid.start, mid.len()), (b, 1));
        let none = ring.area().scan_after(0, c, ring.producer, usize::MAX);
        assert!(none.is_empty() && none.start == c && !none.busy);
    }

    #[test]
    fn records_that_wrap_read_whole() {
        let mut ring = Fake::new(64);
        ring.push(&[1; 32], 0); // 40 bytes
        let start = ring.producer;
        // The consumer has passed the first record; the next wraps.
        let end = ring.push(&[7; 30], 0); // 40 bytes from 40: wraps at 64
        let batch = ring.area().scan(start, ring.producer, usize::MAX);
        assert_eq!(batch.records[0].bytes(), &[7; 30]);
        assert_eq!((batch.records[0].start(), batch.end), (start, end));
    }

    #[test]
    fn impossible_lengths_stop_the_scan() {
        let mut ring = Fake::new(64);
        ring.push(&[1; 8], 0);
        // A header claiming more than the ring holds.
        bytemuck_words(&mut ring.words)[0..4].copy_from_slice(&1000u32.to_ne_bytes());
        let batch = ring.area().scan(0, ring.producer, usize::MAX);
        assert!(batch.is_empty() && batch.busy && batch.end == 0);
    }
}
