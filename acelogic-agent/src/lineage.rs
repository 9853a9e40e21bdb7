//! The daemon's lineage side: the journal, the pump from the ring buffer
//! into it, and what the pump needs to know about the node (workloads,
//! governed cgroups).

use std::{path::Path, sync::Arc};

use anyhow::Context as _;

use acelogic_authz::Authorizer;
use acelogic_domain::{PortError, policy::PolicySet};
use acelogic_kernel::{self, Counters, Records};
use acelogic_lineage::{
    enrich::Enricher,
    journal::{Journal, Shared},
    pump::{KernelLosses, Observer, Pump, RawRecord, Ring},
};

use crate::{
    JournalSink,
    metrics::{CountedSink, Metrics},
};

/// The kernel's ring buffer as the pump's [`Ring`] port.
#[derive(Debug)]
pub struct KernelRing<'a>(pub &'a mut Records);

impl Ring for KernelRing<'_> {
    fn ring_id(&self) -> u32 {
        self.0.ring_id()
    }
    fn consumer_pos(&self) -> u64 {
        self.0.consumer_pos()
    }
    fn peek(&mut self, max: usize) -> Vec<RawRecord> {
        self.0
            .peek(max)
            .into_records()
            .into_iter()
            .map(|r| RawRecord {
                end: r.pos(),
                bytes: r.into_bytes(),
            })
            .collect()
    }
    fn commit(&mut self, pos: u64) -> Result<(), PortError> {
        self.0.commit(pos).map_err(PortError::new)
    }
}

/// Records moved per journal transaction.
const BATCH: usize = 4096;

/// What one bounded drain did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drained {
    pub moved: usize,
    /// Records were left in the ring buffer (the bound was reached).
    pub more: bool,
}

/// The journal and the pump that fills it.
#[derive(Debug)]
pub struct Lineage {
    pub journal: Arc<Shared>,
    pub pump: Pump,
    /// The journal refused the last batch for want of room.
    pub blocked: bool,
}

impl Lineage {
    /// Opens `<state_dir>/journal.db` for `node`, points the engine's
    /// records at it, and consumes what an earlier run had journaled but
    /// not yet consumed. `metrics` counts the decisions and authorization
    /// records journaled from now on.
    pub fn open(
        state_dir: &Path,
        node: &str,
        epoch: u64,
        cap_bytes: u64,
        authz: &mut Authorizer,
        ring: &mut Records,
        metrics: &Arc<Metrics>,
    ) -> anyhow::Result<Self> {
        let path = state_dir.join("journal.db");
        let journal = Shared::new(
            Journal::open(&path, node, cap_bytes)
                .with_context(|| format!("opening the journal {}", path.display()))?,
        );
        let enricher = Enricher::new(node, epoch).context("reading the boot id")?;
        let grants = enricher.grant_directory();
        {
            let mut known = grants
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for row in authz.state().active()? {
                known.insert(row.grant_id, row.id);
            }
        }
        let sink = JournalSink::new(
            Arc::clone(&journal),
            node,
            epoch,
            enricher.boot_id(),
            grants,
        );
        authz.set_sink(Box::new(CountedSink::new(sink, Arc::clone(metrics))));
        let mut pump = Pump::new(enricher, BATCH);
        pump.set_echo(true);
        pump.set_observer(Arc::clone(metrics) as Arc<dyn Observer>);
        let skipped = pump.resume(&journal, &mut KernelRing(ring))?;
        if skipped > 0 {
            println!(
                "acelogic-agent: {skipped} byte(s) of ring-buffer records were journaled before \
                 the last stop; consumed them"
            );
        }
        let (head, _) = journal.lock().head();
        println!(
            "acelogic-agent: journal {} at seq {head}; {} byte(s) await the collector (cap {})",
            path.display(),
            journal.lock().pending_bytes(),
            cap_bytes
        );
        Ok(Self {
            journal,
            pump,
            blocked: false,
        })
    }

    /// What the enricher knows of the policy: workload names and the
    /// cgroups governed for them.
    pub fn learn_policy(
        &mut self,
        set: &PolicySet,
        cgroups: &std::collections::HashMap<String, Vec<std::path::PathBuf>>,
    ) {
        let e = self.pump.enricher();
        e.set_workloads(set.workloads.values().map(|w| (w.scope_id, w.name.clone())));
        for (name, dirs) in cgroups {
            let Some(w) = set.workloads.get(name) else {
                continue;
            };
            for dir in dirs {
                if let Ok(id) = acelogic_kernel::cgroup_id(dir) {
                    e.set_cgroup_scope(id, w.scope_id);
                }
            }
        }
    }

    /// Moves everything the ring buffer holds into the journal, batch by
    /// batch, until it is empty or the journal is full (start-up and
    /// shutdown, when nothing else waits).
    pub fn drain(&mut self, ring: &mut Records) -> anyhow::Result<usize> {
        Ok(self.drain_some(ring, usize::MAX)?.moved)
    }

    /// Moves at most `batches` batches from the ring buffer into the
    /// journal. The serving loop drains with a bound and comes back for
    /// the rest: under a flood the ring never empties, and an unbounded
    /// drain would never give the loop back to the API.
    pub fn drain_some(&mut self, ring: &mut Records, batches: usize) -> anyhow::Result<Drained> {
        let mut moved = 0;
        for _ in 0..batches {
            let step = self.pump.step(&self.journal, &mut KernelRing(ring))?;
            moved += step.journaled;
            if step.blocked != self.blocked {
                self.blocked = step.blocked;
                if step.blocked {
                    let j = self.journal.lock();
                    tracing::error!(
                        pending = j.pending_bytes(),
                        cap = j.cap_bytes(),
                        "journal full: records wait in the ring buffer; governed actions are \
                         denied once it fills, until the collector acknowledges"
                    );
                } else {
                    tracing::info!("journal has room again");
                }
            }
            if step.journaled == 0 || ring.peek(1).into_records().is_empty() {
                return Ok(Drained { moved, more: false });
            }
        }
        Ok(Drained { moved, more: true })
    }

    /// Turns growth of the kernel's loss counters into loss records. When
    /// they cannot be written now (journal full), the counters keep the
    /// count and the next tick tries again.
    pub fn account_losses(&mut self, counters: Counters) {
        match self.pump.losses(
            &self.journal,
            KernelLosses {
                lineage_lost: counters.lineage_lost,
                lineage_missed: counters.lineage_missed,
                record_unavailable: counters.record_unavailable,
            },
        ) {
            Ok(0) => {}
            Ok(lost) => tracing::warn!(
                lost,
                "records the kernel could not make; loss records written"
            ),
            Err(e) => tracing::error!(error = %e, "writing loss records; will retry"),
        }
    }
}
