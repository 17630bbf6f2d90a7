//! Checkpoints on a thread of their own. SQLite copies the write-ahead log
//! back into the database file inside whichever commit finds the log over
//! 1,000 pages; for intake that is a batch commit, which then also reads and
//! writes a few megabytes before the source may be told. With a
//! [`Checkpointer`], the intake connection never checkpoints itself: each
//! commit wakes a thread with its own connection that runs a PASSIVE
//! checkpoint (it never blocks the writer, nor waits for it) while the next
//! batch is taken in.

use std::path::Path;
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::thread::JoinHandle;

use rusqlite::Connection;
use tracing::debug;

use super::Result;

pub struct Checkpointer {
    wake: Option<SyncSender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts the thread for the database at `path` (already open and in
    /// WAL mode). The caller's connection should then stop checkpointing
    /// itself (`PRAGMA wal_autocheckpoint = 0`).
    pub fn start(path: &Path) -> Result<Checkpointer> {
        let conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // This connection never commits, so it never checkpoints on its own.
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        // One pending wake is enough: a checkpoint copies everything committed.
        let (wake, woken) = mpsc::sync_channel::<()>(1);
        let thread = std::thread::Builder::new()
            .name("checkpoint".into())
            .spawn(move || {
                while woken.recv().is_ok() {
                    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                    {
                        // Nothing is lost: the next checkpoint (or the last
                        // connection's close) copies the same frames.
                        debug!(error = %e, "background checkpoint failed");
                    }
                }
            })
            .map_err(super::StoreError::Thread)?;
        Ok(Checkpointer {
            wake: Some(wake),
            thread: Some(thread),
        })
    }

    /// After a commit: copy it over soon (a wake already pending covers it).
    pub fn wake(&self) {
        if let Some(wake) = &self.wake
            && let Err(TrySendError::Disconnected(())) = wake.try_send(())
        {
            debug!("checkpoint thread is gone; SQLite's own checkpoints take over at close");
        }
    }
}

impl Drop for Checkpointer {
    /// Lets the checkpoint in progress finish, then stops the thread.
    fn drop(&mut self) {
        self.wake.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
