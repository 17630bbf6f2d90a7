//! The `file` transport: each mail becomes `<dir>/<outbox id>.eml`, written to
//! a temporary name and renamed, so a reader never sees half a mail and a
//! retry after a crash rewrites the same file instead of adding a second one.
//! Hand-written rather than lettre's file transport because that one names
//! files by random UUID, which would duplicate mail on a retry.

use std::path::PathBuf;

use super::{SendError, Transport};
use crate::store::OutboxRow;

pub struct FileTransport {
    dir: PathBuf,
}

impl FileTransport {
    pub fn new(dir: PathBuf) -> FileTransport {
        FileTransport { dir }
    }

    fn write(&self, mail: &OutboxRow) -> Result<(), SendError> {
        let temporary =
            |e: std::io::Error| SendError::Temporary(format!("{}: {e}", self.dir.display()));
        if !self.dir.is_dir() {
            std::fs::create_dir_all(&self.dir).map_err(temporary)?;
        }
        let path = self.dir.join(format!("{:08}.eml", mail.id));
        let tmp = self.dir.join(format!(".{:08}.eml.tmp", mail.id));
        std::fs::write(&tmp, &mail.raw).map_err(temporary)?;
        std::fs::rename(&tmp, &path).map_err(temporary)
    }
}

impl Transport for FileTransport {
    async fn send(&self, mail: &OutboxRow) -> Result<(), SendError> {
        // Local disk: a blocking write in place is cheaper than three
        // thread-pool hops, and concurrent writers only contend on the
        // directory lock.
        tokio::task::block_in_place(|| self.write(mail))
    }
}
