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
}

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

/// The unique part of a Maildir name (before `:2,`).
fn unique(name: &str) -> &str {
    name.split(':').next().unwrap_or(name)
}

fn flags(name: &str) -> &str {
    name.split_once(":2,").map_or("", |(_, f)| f)
}

impl Source for Maildir {
    async fn fetch(&mut self, max: usize) -> Result<Vec<Incoming>, SourceError> {
        if self.pending.is_empty() {
            self.list()?;
        }
        let mut batch = Vec::new();
        while batch.len() < max {
            let Some(path) = self.pending.pop_front() else {
                break;
            };
            let raw = match std::fs::read(&path) {
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

    #[test]
    fn names_and_flags() {
        assert_eq!(unique("1700000000.M1P2.host:2,RS"), "1700000000.M1P2.host");
        assert_eq!(flags("1700000000.M1P2.host:2,RS"), "RS");
        assert_eq!(flags("1700000000.M1P2.host"), "");
    }
}
