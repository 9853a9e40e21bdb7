//! From the kernel's ring buffer into the journal, losing nothing.
//!
//! A record leaves the ring buffer only after the journal committed it:
//! the pump reads records without consuming them, appends them (and the
//! ring position after them) in one transaction, and only then moves the
//! ring's consumer position. A daemon killed at any point finds the
//! records it had not journaled still in the pinned ring buffer, and the
//! stored position tells it which ones it had (so none is journaled
//! twice).
//!
//! A record is enriched once. Enriching teaches the enricher (a fork
//! record names a child's parent, an exit forgets it), so records the
//! journal had no room for are kept as enriched, with the kernel bytes
//! they came from, and journaled as such when they come round again;
//! enriching them a second time, after the enricher learned from records
//! behind them, would describe them with what it knows later (an exit
//! already processed has forgotten the exiting process's parent).
//!
//! When the journal is full, the pump stops consuming. The ring buffer
//! fills, and the kernel denies every governed action whose record it can
//! no longer reserve (no record, no allow). Lifecycle records the kernel
//! could not reserve, decisions it denied for want of room, and records
//! that do not decode become explicit `Loss` records from the kernel's
//! counters; the baselines move in the same transaction as those records,
//! so a restart neither repeats nor skips a loss.

use std::sync::Arc;

use acelogic_common::user::Event;
use acelogic_domain::PortError;

use super::{
    enrich::Enricher,
    journal::{JournalError, RingCursor, Shared},
    pb::{self, record::Body},
};

/// One record as the kernel wrote it, and the ring position after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawRecord {
    pub bytes: Vec<u8>,
    pub end: u64,
}

/// A ring buffer read without consuming, then consumed up to a position.
pub trait Ring {
    /// Kernel id of the ring buffer map.
    fn ring_id(&self) -> u32;
    /// Current consumer position.
    fn consumer_pos(&self) -> u64;
    /// Up to `max` records from the consumer position on, not consumed.
    fn peek(&mut self, max: usize) -> Vec<RawRecord>;
    /// Consumes everything before `pos`.
    fn commit(&mut self, pos: u64) -> Result<(), PortError>;
}

/// Why a step stopped.
#[derive(Debug, thiserror::Error)]
pub enum PumpError {
    #[error(transparent)]
    Journal(#[from] JournalError),
    /// The records are journaled but the ring buffer refused the new
    /// position; they would be journaled again, so the daemon must stop.
    #[error("ring buffer commit: {0}")]
    Ring(#[source] PortError),
}

/// What one step did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Step {
    /// Records moved from the ring buffer into the journal.
    pub journaled: usize,
    /// The journal had no room: records wait in the ring buffer.
    pub blocked: bool,
}

/// Kernel counters of records that were never made.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KernelLosses {
    /// Lifecycle records the ring buffer had no room for.
    pub lineage_lost: u64,
    /// Lifecycle records the kernel skipped because their recorder was
    /// already running on the CPU (the recorders' recursion misses; they
    /// start from zero again when the programs are loaded anew, apart
    /// from the ring's counters, hence a baseline of their own).
    pub lineage_missed: u64,
    /// Decisions denied because their record could not be reserved.
    pub record_unavailable: u64,
}

/// Told about each kernel record once the journal has committed it (the
/// daemon counts decisions for its metrics), so it never sees a record
/// that was not made durable.
pub trait Observer: std::fmt::Debug + Send + Sync {
    fn journaled(&self, event: &Event);
}

/// A record enriched but not yet journaled.
#[derive(Debug)]
struct Held {
    /// The kernel record it was made from, and the ring position after it.
    raw: RawRecord,
    record: pb::Record,
}

/// Drains the ring buffer into the journal.
#[derive(Debug)]
pub struct Pump {
    enricher: Enricher,
    /// Records enriched by an earlier step that the journal did not take,
    /// oldest first: the records at the consumer position, unless the
    /// ring shows something else there (then they are dropped).
    held: Vec<Held>,
    batch: usize,
    /// Print each journaled kernel record as a line (the daemon does).
    echo: bool,
    observer: Option<Arc<dyn Observer>>,
}

const LOSS_KEYS: [(&str, &str, &str); 3] = [
    (
        "loss.kernel-lineage",
        "kernel-lineage",
        "process lifecycle records the kernel ring buffer had no room for",
    ),
    (
        "loss.kernel-lineage-missed",
        "kernel-lineage",
        "process lifecycle records the kernel skipped: their recorder was already running on \
         the CPU (preempted there)",
    ),
    (
        "loss.record-unavailable",
        "record-unavailable",
        "governed actions denied because their decision record could not be reserved",
    ),
];

impl Pump {
    /// A pump moving at most `batch` records per transaction.
    #[must_use]
    pub fn new(enricher: Enricher, batch: usize) -> Self {
        Self {
            enricher,
            held: Vec::new(),
            batch: batch.max(1),
            echo: false,
            observer: None,
        }
    }

    /// Tells `observer` about every kernel record journaled from now on.
    pub fn set_observer(&mut self, observer: Arc<dyn Observer>) {
        self.observer = Some(observer);
    }

    /// Prints every kernel record to stdout once it is journaled.
    pub fn set_echo(&mut self, echo: bool) {
        self.echo = echo;
    }

    pub fn enricher(&mut self) -> &mut Enricher {
        &mut self.enricher
    }

    /// After a restart: consumes the records the journal already holds
    /// (a crash between the journal's commit and the ring's). Returns how
    /// many bytes were skipped.
    pub fn resume(&self, journal: &Shared, ring: &mut dyn Ring) -> Result<u64, PumpError> {
        let Some(c) = journal.lock().ring_cursor()? else {
            return Ok(0);
        };
        let at = ring.consumer_pos();
        if c.ring_id == ring.ring_id() && c.pos > at {
            ring.commit(c.pos).map_err(PumpError::Ring)?;
            return Ok(c.pos - at);
        }
        Ok(0)
    }

    /// Moves what the ring buffer holds now into the journal, one batch.
    pub fn step(&mut self, journal: &Shared, ring: &mut dyn Ring) -> Result<Step, PumpError> {
        let raws = ring.peek(self.batch);
        if raws.is_empty() {
            return Ok(Step::default());
        }
        let events: Vec<_> = raws.iter().map(|raw| Event::decode(&raw.bytes)).collect();
        let mut held = std::mem::take(&mut self.held).into_iter();
        let mut reuse = true;
        let records: Vec<pb::Record> = events
            .iter()
            .zip(&raws)
            .map(|(event, raw)| {
                if reuse {
                    match held.next() {
                        Some(h) if h.raw == *raw => return h.record,
                        // Not the records held (none left, or another
                        // ring): enrich from here on.
                        _ => reuse = false,
                    }
                }
                match event {
                    Ok(event) => self.enricher.record(event),
                    Err(e) => self.enricher.now(Body::Loss(pb::Loss {
                        what: "undecodable".into(),
                        count: 1,
                        detail: format!("{e} ({} bytes)", raw.bytes.len()),
                    })),
                }
            })
            .collect();
        // Held records past this batch (a smaller batch than before) come
        // after it in the ring: keep them.
        let beyond: Vec<Held> = if reuse { held.collect() } else { Vec::new() };
        let ring_id = ring.ring_id();
        let mut n = records.len();
        loop {
            let cursor = RingCursor {
                ring_id,
                pos: raws[n - 1].end,
            };
            match journal.append_with(&records[..n], Some(cursor), &[]) {
                Ok(_) => {
                    if let Some(o) = &self.observer {
                        for event in events[..n].iter().flatten() {
                            o.journaled(event);
                        }
                    }
                    self.hold(&raws[n..], &records[n..], beyond);
                    ring.commit(cursor.pos).map_err(PumpError::Ring)?;
                    if self.echo {
                        for event in &events[..n] {
                            match event {
                                Ok(event) => println!("{}", super::render(event)),
                                Err(e) => println!("undecodable record: {e}"),
                            }
                        }
                    }
                    return Ok(Step {
                        journaled: n,
                        blocked: false,
                    });
                }
                // Take what fits; the rest waits in the ring buffer, and
                // its records, as enriched now, in `held`.
                Err(JournalError::Full { .. }) if n > 1 => n /= 2,
                Err(JournalError::Full { .. }) => {
                    self.hold(&raws, &records, beyond);
                    return Ok(Step {
                        journaled: 0,
                        blocked: true,
                    });
                }
                Err(e) => {
                    self.hold(&raws, &records, beyond);
                    return Err(e.into());
                }
            }
        }
    }

    /// Keeps enriched records the journal did not take (and any held
    /// records after them), for the next step.
    fn hold(&mut self, raws: &[RawRecord], records: &[pb::Record], beyond: Vec<Held>) {
        self.held = raws
            .iter()
            .zip(records)
            .map(|(raw, record)| Held {
                raw: raw.clone(),
                record: record.clone(),
            })
            .chain(beyond)
            .collect();
    }

    /// Turns growth of the kernel's loss counters into `Loss` records.
    /// Counters that went backwards belong to a new BPF object: counted
    /// from zero again.
    pub fn losses(&mut self, journal: &Shared, now: KernelLosses) -> Result<u64, JournalError> {
        let values = [now.lineage_lost, now.lineage_missed, now.record_unavailable];
        let mut records = Vec::new();
        let mut meta = Vec::new();
        {
            let j = journal.lock();
            for ((key, what, detail), value) in LOSS_KEYS.iter().zip(values) {
                let base = j.meta_u64(key)?.unwrap_or(0);
                let base = if value < base { 0 } else { base };
                if value > base {
                    records.push(self.enricher.now(Body::Loss(pb::Loss {
                        what: (*what).into(),
                        count: value - base,
                        detail: (*detail).into(),
                    })));
                    meta.push((*key, value));
                }
            }
        }
        if records.is_empty() {
            return Ok(0);
        }
        let total = records
            .iter()
            .map(|r| match &r.body {
                Some(Body::Loss(l)) => l.count,
                _ => 0,
            })
            .sum();
        journal.append_with(&records, None, &meta)?;
        Ok(total)
    }
}

#[cfg(test)]
mod tests;
