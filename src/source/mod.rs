//! Sources of inbound mail behind one small trait: a batch of messages, each
//! with a stable `source_ref`, and an acknowledgement the daemon sends only
//! after the intake transaction committed. Maildir (`maildir.rs`) and IMAP
//! (`imap.rs`).
//!
//! Sources never touch the store and never decide anything about the mail.

pub mod imap;
pub mod maildir;

use std::fmt;
use std::path::PathBuf;

/// One message as read from a source.
pub struct Incoming {
    /// Stable identity within the mailbox (Maildir unique name, IMAP UIDVALIDITY:UID).
    pub source_ref: String,
    pub raw: Vec<u8>,
    /// Where the source finds it again to acknowledge it.
    pub location: Location,
    /// The source may have handed this message over before under another
    /// `source_ref` (an IMAP folder rescanned after its UIDVALIDITY changed):
    /// the daemon looks it up by Message-ID before taking it in.
    pub may_be_reread: bool,
}

/// Where a message lives in its source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A Maildir entry.
    File(PathBuf),
    /// A message of the selected IMAP folder.
    Uid(u32),
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::File(path) => write!(f, "{}", path.display()),
            Location::Uid(uid) => write!(f, "UID {uid}"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Imap(#[from] imap::ImapError),
}

pub trait Source: Send {
    /// Up to `max` messages not yet acknowledged.
    fn fetch(
        &mut self,
        max: usize,
    ) -> impl std::future::Future<Output = Result<Vec<Incoming>, SourceError>> + Send;
    /// Marks a committed message as processed in the source.
    fn acknowledge(
        &mut self,
        message: &Incoming,
    ) -> impl std::future::Future<Output = Result<(), SourceError>> + Send;
    /// Marks committed messages as processed, in order; a source that can
    /// tell its server about many at once (IMAP) does so in one command.
    fn acknowledge_all(
        &mut self,
        messages: &[Incoming],
    ) -> impl std::future::Future<Output = Result<(), SourceError>> + Send {
        async move {
            for message in messages {
                self.acknowledge(message).await?;
            }
            Ok(())
        }
    }
}
