//! Online backups of the database with SQLite's backup API: `db backup` and
//! the copy taken before a schema migration (`<db>.pre-v<N>.bak`).
//!
//! The copy is one consistent snapshot even while a daemon writes: the
//! source connection opens a read transaction first (the ticket count we
//! report is read inside it), and the backup steps through the pages of that
//! same snapshot. Because the backup's own connection holds the snapshot,
//! other connections' commits never restart it (SQLite restarts a backup
//! whose source changed under it, which under a busy daemon could go on for
//! ever). In WAL mode that reader blocks no writer; it only keeps the WAL
//! from being checkpointed past the snapshot until the copy is done. Pages
//! are copied in chunks with a short pause between them so a large copy does
//! not monopolise the disk the daemon commits to.
//!
//! The copy is written to a temporary file next to the target, switched to
//! the rollback journal (one self-contained file, readable anywhere),
//! fsynced, then moved into place (and the directory fsynced): the target
//! is either absent/its old content or the complete new copy, never half.
//!
//! This module never decides when a backup is due; callers do.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rusqlite::backup::{Backup, StepResult};
use rusqlite::{Connection, OpenFlags, Transaction};

/// Pages copied per step (4 MiB with SQLite's default 4 KiB pages).
const PAGES_PER_STEP: i32 = 1024;
/// Pause between steps.
const PAUSE: Duration = Duration::from_millis(5);
/// A step that keeps failing with BUSY/LOCKED this long gives up.
const BUSY_LIMIT: Duration = Duration::from_secs(30);

/// What to do when the target file already exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// Fail with [`BackupError::TargetExists`] (the default of `db backup`).
    Refuse,
    /// Replace it atomically once the new copy is complete.
    Replace,
}

/// What a backup wrote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupReport {
    pub path: PathBuf,
    pub pages: u64,
    pub bytes: u64,
    /// Tickets in the snapshot copied.
    pub tickets: i64,
    /// The copy's schema version (`PRAGMA user_version`).
    pub schema_version: i64,
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("there is no database at {0}")]
    MissingDatabase(PathBuf),
    #[error("{0} already exists (pass --force to replace it)")]
    TargetExists(PathBuf),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("backing up the database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("the copy stayed in journal mode {0}")]
    JournalMode(String),
    #[error("the backup stayed blocked for {0:?}")]
    Busy(Duration),
}

impl BackupError {
    fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
        move |source| BackupError::Io {
            path: path.to_path_buf(),
            source,
        }
    }

    /// Worth retrying later (disk full, a lock), as opposed to a wrong path.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            BackupError::Io { .. } | BackupError::Sqlite(_) | BackupError::Busy(_)
        )
    }
}

/// Copies the database at `database` (which must exist: it is never created
/// here, and never migrated) to `target`.
pub fn backup_database(
    database: &Path,
    target: &Path,
    existing: Existing,
) -> Result<BackupReport, BackupError> {
    if !database.is_file() {
        return Err(BackupError::MissingDatabase(database.to_path_buf()));
    }
    // Read-write without CREATE: a WAL database needs its -shm even to read.
    let source = Connection::open_with_flags(
        database,
        OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    source.busy_timeout(Duration::from_secs(30))?;
    let snapshot = source.unchecked_transaction()?;
    copy_snapshot(&snapshot, target, existing)
}

/// The copy taken before migrating an existing database at schema version
/// `version`: `<db>.pre-v<version>.bak`, replacing an older one of the same
/// name (the newest state before this migration is the one to roll back
/// to). Returns `None`, writing nothing, when the database is no longer at
/// `version` (another process migrated it first).
pub(super) fn backup_before_migration(
    conn: &Connection,
    database: &Path,
    version: i64,
) -> Result<Option<BackupReport>, BackupError> {
    let snapshot = conn.unchecked_transaction()?;
    if user_version(&snapshot)? != version {
        return Ok(None);
    }
    copy_snapshot(
        &snapshot,
        &pre_migration_path(database, version),
        Existing::Replace,
    )
    .map(Some)
}

/// `<db>.pre-v<version>.bak`, next to the database.
pub fn pre_migration_path(database: &Path, version: i64) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(format!(".pre-v{version}.bak"));
    PathBuf::from(name)
}

fn user_version(conn: &Connection) -> rusqlite::Result<i64> {
    conn.pragma_query_value(None, "user_version", |r| r.get(0))
}

/// Copies what `snapshot` sees to `target`. The first read below starts the
/// snapshot; the backup then copies exactly that state.
fn copy_snapshot(
    snapshot: &Transaction<'_>,
    target: &Path,
    existing: Existing,
) -> Result<BackupReport, BackupError> {
    let schema_version = user_version(snapshot)?;
    let has_tickets: bool = snapshot.query_row(
        "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'tickets')",
        [],
        |r| r.get(0),
    )?;
    let tickets: i64 = if has_tickets {
        snapshot.query_row("SELECT count(*) FROM tickets", [], |r| r.get(0))?
    } else {
        0
    };
    if existing == Existing::Refuse && target.symlink_metadata().is_ok() {
        return Err(BackupError::TargetExists(target.to_path_buf()));
    }
    let dir = directory_of(target);
    if !dir.is_dir() {
        return Err(BackupError::Io {
            path: target.to_path_buf(),
            source: std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("no directory {}", dir.display()),
            ),
        });
    }
    let temp = temp_path(target);
    let result = write_copy(snapshot, &temp).and_then(|pages| {
        publish(&temp, target, existing)?;
        let bytes = std::fs::metadata(target)
            .map_err(BackupError::io(target))?
            .len();
        Ok(BackupReport {
            path: target.to_path_buf(),
            pages,
            bytes,
            tickets,
            schema_version,
        })
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&temp);
        let _ = std::fs::remove_file(journal_of(&temp));
    }
    result
}

/// `.NAME.tmp-PID` in the target's directory, so the final rename stays on
/// one file system.
fn temp_path(target: &Path) -> PathBuf {
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "backup".to_string());
    target.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

fn directory_of(path: &Path) -> &Path {
    path.parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."))
}

fn journal_of(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push("-journal");
    PathBuf::from(name)
}

/// Copies every page into a new database at `temp`, fsynced; returns the
/// number of pages.
fn write_copy(snapshot: &Connection, temp: &Path) -> Result<u64, BackupError> {
    // A stale file of a dead process with our pid: never copy onto it.
    for stale in [temp.to_path_buf(), journal_of(temp)] {
        match std::fs::remove_file(&stale) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(BackupError::io(&stale)(e)),
        }
    }
    let mut copy = Connection::open(temp)?;
    let pages = {
        let backup = Backup::new(snapshot, &mut copy)?;
        let mut blocked_since: Option<Instant> = None;
        loop {
            match backup.step(PAGES_PER_STEP)? {
                StepResult::Done => break,
                StepResult::More => {
                    blocked_since = None;
                    std::thread::sleep(PAUSE);
                }
                // BUSY or LOCKED: not expected while we hold the snapshot,
                // but never spin.
                _ => {
                    let since = *blocked_since.get_or_insert_with(Instant::now);
                    if since.elapsed() > BUSY_LIMIT {
                        return Err(BackupError::Busy(BUSY_LIMIT));
                    }
                    std::thread::sleep(PAUSE * 10);
                }
            }
        }
        u64::try_from(backup.progress().pagecount).unwrap_or(0)
    };
    // The source's WAL flag came along with page 1: make the copy one
    // self-contained file, then flush it.
    let mode: String =
        copy.pragma_update_and_check(None, "journal_mode", "DELETE", |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("delete") {
        return Err(BackupError::JournalMode(mode));
    }
    copy.close().map_err(|(_, e)| e)?;
    File::open(temp)
        .and_then(|f| f.sync_all())
        .map_err(BackupError::io(temp))?;
    Ok(pages)
}

/// Moves the complete copy at `temp` to `target` and makes that durable.
fn publish(temp: &Path, target: &Path, existing: Existing) -> Result<(), BackupError> {
    match existing {
        Existing::Replace => std::fs::rename(temp, target).map_err(BackupError::io(target))?,
        // A hard link fails if the target appeared meanwhile: no clobbering,
        // even racing another backup. Where links are not supported, check
        // again and rename.
        Existing::Refuse => match std::fs::hard_link(temp, target) {
            Ok(()) => std::fs::remove_file(temp).map_err(BackupError::io(temp))?,
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(BackupError::TargetExists(target.to_path_buf()));
            }
            Err(_) => {
                if target.symlink_metadata().is_ok() {
                    return Err(BackupError::TargetExists(target.to_path_buf()));
                }
                std::fs::rename(temp, target).map_err(BackupError::io(target))?;
            }
        },
    }
    let dir = directory_of(target);
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(BackupError::io(dir))
}
