//! Sources of inbound mail behind one small trait: a batch of messages, each
//! with a stable `source_ref`, and an acknowledgement the daemon sends only
//! after the intake transaction committed. Maildir here; IMAP joins it.

pub mod maildir;

/// One message as read from a source.
pub struct Incoming {
    /// Stable identity within the mailbox (Maildir unique name, IMAP UIDVALIDITY:UID).
    pub source_ref: String,
    pub raw: Vec<u8>,
    /// Where the source finds it again to acknowledge it.
    pub location: std::path::PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
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
}
