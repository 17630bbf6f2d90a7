//! Maildir source: reads entries of `new/` and entries of `cur/` without the
//! `S` flag; after the intake commit renames them to `cur/<name>:2,<flags>S`.
//! The unique part of the name (before `:`) is the `source_ref`, so an entry
//! committed but not yet renamed before a crash is recognised, not re-read.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use super::{Incoming, Location, Source, SourceError};

pub struct Maildir {
    root: PathBuf,
    pending: VecDeque<PathBuf>,
    /// The next batch's files, read on a thread of their own while the
    /// current batch is taken in (a backlog is read at disk speed, not
    /// after each commit). Only entries already listed and not handed out
    /// are read ahead, so acknowledging never races with it.
    read_ahead: Option<std::thread::JoinHandle<Vec<FileRead>>>,
}

/// A Maildir entry and what reading it gave.
type FileRead = (PathBuf, std::io::Result<Vec<u8>>);

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> SourceError {
    let what = what.into();
    move |source| SourceError::Io { what, source }
}

impl Maildir {
    pub fn open(root: &Path) -> Result<Maildir, SourceError> {
        for sub in ["new", "cur", "tmp"] {
            let dir = root.join(sub);
            std::fs::create_dir_all(&dir).map_err(io(format!("create {}", dir.display())))?;
        }
        Ok(Maildir {
            root: root.to_path_buf(),
            pending: VecDeque::new(),
            read_ahead: None,
        })
    }

    fn list(&mut self) -> Result<(), SourceError> {
        let mut found = Vec::new();
        for sub in ["new", "cur"] {
            let dir = self.root.join(sub);
            for entry in std::fs::read_dir(&dir).map_err(io(format!("read {}", dir.display())))? {
                let entry = entry.map_err(io(format!("read {}", dir.display())))?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') || (sub == "cur" && flags(&name).contains('S')) {
                    continue;
                }
                if entry.file_type().map(|t| t.is_file()).unwrap_or(false) {
                    found.push((unique(&name).to_string(), entry.path()));
                }
            }
        }
        // Maildir names start with the delivery time: sorting keeps arrival order.
        found.sort();
        self.pending = found.into_iter().map(|(_, p)| p).collect();
        Ok(())
    }
}

/// The first `max` of `pending`.
fn take(pending: &mut VecDeque<PathBuf>, max: usize) -> Vec<PathBuf> {
    let n = max.min(pending.len());
    pending.drain(..n).collect()
}

fn read_files(paths: Vec<PathBuf>) -> Vec<FileRead> {
    paths
        .into_iter()
        .map(|path| {
            let raw = std::fs::read(&path);
            (path, raw)
        })
        .collect()
}

/// The unique part of a Maildir name (before `:2,`).
fn unique(name: &str) -> &str {
    name.split(':').next().unwrap_or(name)
}

fn flags(name: &str) -> &str {
    name.split_once(":2,").map_or("", |(_, f)| f)
}

impl Source for Maildir {
    async fn fetch(&mut self, max: usize) -> Result<Vec<Incoming>, SourceError> {
        let read = match self.read_ahead.take().map(|reader| reader.join()) {
            Some(Ok(read)) => read,
            // The reader thread died (it cannot panic on I/O): read them here.
            Some(Err(_)) | None => {
                if self.pending.is_empty() {
                    self.list()?;
                }
                read_files(take(&mut self.pending, max))
            }
        };
        // While the caller takes this batch in, read the next one.
        if !self.pending.is_empty() {
            let next = take(&mut self.pending, max);
            self.read_ahead = std::thread::Builder::new()
                .name("maildir-read".into())
                .spawn(move || read_files(next))
                .ok();
        }
        let mut batch = Vec::with_capacity(read.len());
        for (path, raw) in read {
            let raw = match raw {
                Ok(raw) => raw,
                // Taken away by another reader meanwhile: nothing to do.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io(format!("read {}", path.display()))(e)),
            };
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            batch.push(Incoming {
                source_ref: unique(&name).to_string(),
                raw,
                location: Location::File(path),
                may_be_reread: false,
            });
        }
        Ok(batch)
    }

    async fn acknowledge(&mut self, message: &Incoming) -> Result<(), SourceError> {
        let Location::File(location) = &message.location else {
            return Ok(());
        };
        let name = location
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut flags: Vec<char> = flags(&name)
            .chars()
            .filter(|c| c.is_ascii_alphabetic())
            .collect();
        flags.push('S');
        flags.sort_unstable();
        flags.dedup();
        let target = self.root.join("cur").join(format!(
            "{}:2,{}",
            unique(&name),
            flags.into_iter().collect::<String>()
        ));
        match std::fs::rename(location, &target) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && target.exists() => Ok(()),
            Err(e) => Err(io(format!(
                "rename {} to {}",
                location.display(),
                target.display()
            ))(e)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_backlog_comes_in_order_batch_after_batch_while_the_next_is_read_ahead() {
        let dir = tempfile::tempdir().unwrap();
        let mut maildir = Maildir::open(dir.path()).unwrap();
        for i in 0..5 {
            std::fs::write(
                dir.path().join(format!("new/170000000{i}.M{i}P1.host")),
                format!("mail {i}"),
            )
            .unwrap();
        }
        let mut seen = Vec::new();
        for expected in [2, 2, 1] {
            let batch = maildir.fetch(2).await.unwrap();
            assert_eq!(batch.len(), expected);
            for m in &batch {
                seen.push(String::from_utf8(m.raw.clone()).unwrap());
                maildir.acknowledge(m).await.unwrap();
            }
            if expected == 2 && seen.len() == 2 {
                // Arrives during the backlog: read after it, once listed again.
                std::fs::write(dir.path().join("new/1700000009.M9P1.host"), "mail 9").unwrap();
            }
        }
        let late = maildir.fetch(2).await.unwrap();
        assert_eq!(late.len(), 1);
        seen.push(String::from_utf8(late[0].raw.clone()).unwrap());
        maildir.acknowledge(&late[0]).await.unwrap();
        assert!(maildir.fetch(2).await.unwrap().is_empty());
        assert_eq!(
            seen,
            ["mail 0", "mail 1", "mail 2", "mail 3", "mail 4", "mail 9"]
        );
        assert_eq!(
            std::fs::read_dir(dir.path().join("cur")).unwrap().count(),
            6
        );
    }

    #[tokio::test]
    async fn a_file_taken_away_before_it_is_read_is_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let mut maildir = Maildir::open(dir.path()).unwrap();
        for i in 0..4 {
            std::fs::write(
                dir.path().join(format!("new/170000000{i}.M{i}P1.host")),
                format!("mail {i}"),
            )
            .unwrap();
        }
        maildir.list().unwrap();
        // Gone (another reader took it) before this source reads it.
        std::fs::remove_file(dir.path().join("new/1700000001.M1P1.host")).unwrap();
        let first = maildir.fetch(2).await.unwrap();
        assert_eq!(first.len(), 1);
        let second = maildir.fetch(2).await.unwrap();
        assert_eq!(second.len(), 2);
    }

    #[test]
    fn names_and_flags() {
        assert_eq!(unique("1700000000.M1P2.host:2,RS"), "1700000000.M1P2.host");
        assert_eq!(flags("1700000000.M1P2.host:2,RS"), "RS");
        assert_eq!(flags("1700000000.M1P2.host"), "");
    }
}
