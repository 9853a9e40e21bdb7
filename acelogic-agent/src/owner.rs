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

/// A command: runs on the owner's thread with the state.
type Command<S> = Box<dyn FnOnce(&mut S) + Send>;

enum Message<S> {
    Run(Command<S>),
    /// Ends the thread after the commands queued before it; handles still
    /// held (a connection the API server has not closed yet) get [`Gone`].
    Stop,
}

/// Commands queued before the sender waits (API calls and ticks).
const QUEUE: usize = 256;

/// The owner's thread is gone (it panicked, or the daemon is stopping).
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the daemon's state owner is not running")]
pub struct Gone;

/// A handle to the owner: cheap to clone, one per API connection.
#[derive(Debug)]
pub struct Handle<S> {
    tx: mpsc::Sender<Message<S>>,
}

impl<S> Clone for Handle<S> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
        }
    }
}

/// The daemon's handle: to the node state.
pub type NodeHandle = Handle<Node>;

/// The owner's thread; [`Owner::stop`] ends it and gives the state back.
#[derive(Debug)]
pub struct Owner<S = Node> {
    handle: Handle<S>,
    thread: JoinHandle<S>,
}

impl<S: Send + 'static> Owner<S> {
    /// Moves `node` onto its own thread.
    pub fn spawn(mut node: S) -> std::io::Result<Self> {
        let (tx, mut rx) = mpsc::channel::<Message<S>>(QUEUE);
        let thread = std::thread::Builder::new()
            .name("acelogic-node".to_owned())
            .spawn(move || {
                while let Some(Message::Run(command)) = rx.blocking_recv() {
                    command(&mut node);
                }
                node
            })?;
        Ok(Self {
            handle: Handle { tx },
            thread,
        })
    }

    #[must_use]
    pub fn handle(&self) -> Handle<S> {
        self.handle.clone()
    }

    /// Lets queued commands finish, then returns the state (for the
    /// records of a clean stop). Handles may outlive it: their calls fail
    /// with [`Gone`].
    pub async fn stop(self) -> Result<S, Gone> {
        let Self { handle, thread } = self;
        // Fails only when the thread is gone already; join says how.
        let _ = handle.tx.send(Message::Stop).await;
        drop(handle);
        tokio::task::spawn_blocking(move || thread.join())
            .await
            .map_err(|_| Gone)?
            .map_err(|_| Gone)
    }
}

impl<S: 'static> Handle<S> {
    /// Runs `f` on the owner's thread and returns its result.
    pub async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut S) -> T + Send + 'static,
    ) -> Result<T, Gone> {
        let (reply_tx, reply_rx) = oneshot::channel();
        self.tx
            .send(Message::Run(Box::new(move |node: &mut S| {
                let _ = reply_tx.send(f(node));
            })))
            .await
            .map_err(|_| Gone)?;
        reply_rx.await.map_err(|_| Gone)
    }

    /// Queues `f` without waiting for it (the tick: its results come back
    /// as events, so the loop never waits on the owner). `false` when the
    /// queue is full or the owner is gone; the next tick tries again.
    pub fn cast(&self, f: impl FnOnce(&mut S) + Send + 'static) -> bool {
        self.tx.try_send(Message::Run(Box::new(f))).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn commands_run_in_order_and_stop_does_not_wait_for_handles() {
        let owner = Owner::spawn(Vec::<u32>::new()).unwrap();
        let held = owner.handle();
        assert!(held.cast(|v| v.push(1)));
        assert_eq!(
            held.call(|v| {
                v.push(2);
                v.len()
            })
            .await
            .unwrap(),
            2
        );
        // A connection the server has not closed yet still holds a handle.
        let state = owner.stop().await.unwrap();
        assert_eq!(state, [1, 2]);
        assert!(held.call(|v| v.len()).await.is_err(), "the owner is gone");
        assert!(!held.cast(|v| v.push(3)));
    }
}
