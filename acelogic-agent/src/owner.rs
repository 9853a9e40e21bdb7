//! The one owner of the node's state.
//!
//! [`Node`] (the kernel handle, the engine with its SQLite state, the
//! policy in force) lives on a thread of its own. Everything that reads or
//! changes it (API calls, the tick's reload and housekeeping, shutdown)
//! sends that thread a command and awaits the reply on a oneshot, so the
//! slow parts of a decision (the sha256 of a binary, the fsync of the
//! spent id) never run on the event loop, and the loop that drains the
//! kernel's ring buffer never waits for an API call. Commands run one at a
//! time, in the order they arrive: the same serialisation the old state
//! lock gave, without blocking the loop.

use std::thread::JoinHandle;

use tokio::sync::{mpsc, oneshot};

use crate::node::Node;

/// A command: runs on the owner's thread with the node state.
type Command = Box<dyn FnOnce(&mut Node) + Send>;

/// Commands queued before the sender waits (API calls and ticks).
const QUEUE: usize = 256;

/// The owner's thread is gone (it panicked, or the daemon is stopping).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the daemon's state owner is not running")]
pub struct Gone;

/// A handle to the owner: cheap to clone, one per API connection.
#[derive(Debug, Clone)]
pub struct NodeHandle {
    tx: mpsc::Sender<Command>,
}

/// The owner's thread; [`Owner::stop`] ends it and gives the state back.
#[derive(Debug)]
pub struct Owner {
    handle: NodeHandle,
    thread: JoinHandle<Node>,
}

impl Owner {
    /// Moves `node` onto its own thread.
    pub fn spawn(mut node: Node) -> std::io::Result<Self> {
        let (tx, mut rx) = mpsc::channel::<Command>(QUEUE);
        let thread = std::thread::Builder::new()
            .name("acelogic-node".to_owned())
            .spawn(move || {
                while let Some(command) = rx.blocking_recv() {
                    command(&mut node);
                }
                node
            })?;
        Ok(Self {
            handle: NodeHandle { tx },
            thread,
        })
    }

    #[must_use]
    pub fn handle(&self) -> NodeHandle {
        self.handle.clone()
    }

    /// Lets queued commands finish, then returns the state (for the
    /// records of a clean stop). Every handle must be dropped first, or
    /// this waits for them.
    pub async fn stop(self) -> Result<Node, Gone> {
        let Self { handle, thread } = self;
        drop(handle);
        tokio::task::spawn_blocking(move || thread.join())
            .await
            .map_err(|_| Gone)?
            .map_err(|_| Gone)
    }
}

impl NodeHandle {
    /// Runs `f` on the owner's thread and returns its result.
    pub async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Node) -> T + Send + 'static,
    ) -> Result<T, Gone> {
        let (reply_tx, reply_rx) = oneshot::channel();
        self.tx
            .send(Box::new(move |node: &mut Node| {
                let _ = reply_tx.send(f(node));
            }))
            .await
            .map_err(|_| Gone)?;
        reply_rx.await.map_err(|_| Gone)
    }

    /// Queues `f` without waiting for it (the tick: its results come back
    /// as events, so the loop never waits on the owner). `false` when the
    /// queue is full or the owner is gone; the next tick tries again.
    pub fn cast(&self, f: impl FnOnce(&mut Node) + Send + 'static) -> bool {
        self.tx.try_send(Box::new(f)).is_ok()
    }
}
