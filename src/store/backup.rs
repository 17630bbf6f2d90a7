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
//! The copy gets the database file's permissions (it holds customers' mail),
//! and the database itself is never a target.
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

/// How a copy advances: pages per step, and what runs between two steps
/// (a short sleep; in tests, commits by another connection).
struct Pace<'a> {
    pages: i32,
    between: &'a mut dyn FnMut(),
}

fn with_default_pace<T>(f: impl FnOnce(&mut Pace<'_>) -> T) -> T {
    let mut pause = || std::thread::sleep(PAUSE);
    f(&mut Pace {
        pages: PAGES_PER_STEP,
        between: &mut pause,
    })
}

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
    #[error("{0} is the database itself")]
    SameFile(PathBuf),
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
    with_default_pace(|pace| copy_snapshot(&snapshot, database, target, existing, pace))
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
    let target = pre_migration_path(database, version);
    with_default_pace(|pace| copy_snapshot(&snapshot, database, &target, Existing::Replace, pace))
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
    database: &Path,
    target: &Path,
    existing: Existing,
    pace: &mut Pace<'_>,
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
    if same_file(database, target) {
        return Err(BackupError::SameFile(target.to_path_buf()));
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
    let result = write_copy(snapshot, database, &temp, pace).and_then(|pages| {
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

/// Whether `a` and `b` name the same existing file (also through links).
fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        #[cfg(unix)]
        (Ok(a), Ok(b)) => {
            use std::os::unix::fs::MetadataExt;
            (a.dev(), a.ino()) == (b.dev(), b.ino())
        }
        #[cfg(not(unix))]
        (Ok(_), Ok(_)) => matches!(
            (a.canonicalize(), b.canonicalize()),
            (Ok(a), Ok(b)) if a == b
        ),
        _ => false,
    }
}

/// Creates the empty file `path` with the permissions of `like`.
fn create_like(path: &Path, like: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let mode = std::fs::metadata(like).map_or(0o600, |m| m.permissions().mode() & 0o777);
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = like;
    options.open(path).map(drop)
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
fn write_copy(
    snapshot: &Connection,
    database: &Path,
    temp: &Path,
    pace: &mut Pace<'_>,
) -> Result<u64, BackupError> {
    // A stale file of a dead process with our pid: never copy onto it.
    for stale in [temp.to_path_buf(), journal_of(temp)] {
        match std::fs::remove_file(&stale) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(BackupError::io(&stale)(e)),
        }
    }
    // Created here, not by SQLite (0644 less the umask): the copy holds
    // customers' mail, so it gets the database's own permissions.
    create_like(temp, database).map_err(BackupError::io(temp))?;
    let mut copy = Connection::open(temp)?;
    let pages = {
        let backup = Backup::new(snapshot, &mut copy)?;
        let mut blocked_since: Option<Instant> = None;
        loop {
            match backup.step(pace.pages)? {
                StepResult::Done => break,
                StepResult::More => {
                    blocked_since = None;
                    (pace.between)();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Store, StoreError, migrations};

    /// A database left by an older postdesk: only the first `version`
    /// migrations applied, with one ticket in it.
    fn database_at(path: &Path, version: usize) {
        let mut conn = Connection::open(path).unwrap();
        conn.pragma_update(None, "journal_mode", "WAL").unwrap();
        migrations::all().to_version(&mut conn, version).unwrap();
        conn.execute(
            "INSERT INTO tickets (id, subject, status, priority, queue, mailbox, requester, created_at, updated_at)
             VALUES (7, 'Old ticket', 'open', 'medium', 'general', 'soporte', 'ana@cliente.com', 0, 0)",
            [],
        )
        .unwrap();
    }

    fn version_and_tickets(path: &Path) -> (i64, i64) {
        let conn = Connection::open(path).unwrap();
        let tickets = conn
            .query_row("SELECT count(*) FROM tickets", [], |r| r.get(0))
            .unwrap();
        (user_version(&conn).unwrap(), tickets)
    }

    fn latest() -> i64 {
        let mut conn = Connection::open_in_memory().unwrap();
        migrations::all().to_latest(&mut conn).unwrap();
        user_version(&conn).unwrap()
    }

    #[test]
    fn an_older_database_is_backed_up_then_migrated() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("postdesk.db");
        database_at(&db, 3);
        let bak = dir.path().join("postdesk.db.pre-v3.bak");
        assert_eq!(pre_migration_path(&db, 3), bak);

        let store = Store::open(&db).unwrap();
        assert_eq!(
            version_and_tickets(&bak),
            (3, 1),
            "the copy is the old database"
        );
        let conn = Connection::open(&bak).unwrap();
        let check: String = conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok");
        assert!(latest() > 3);
        assert_eq!(
            version_and_tickets(&db),
            (latest(), 1),
            "then it is migrated"
        );
        assert_eq!(store.ticket(7).unwrap().unwrap().subject, "Old ticket");

        // Opening the migrated database again copies nothing more.
        drop(store);
        std::fs::remove_file(&bak).unwrap();
        Store::open(&db).unwrap();
        assert!(!bak.exists());
    }

    /// The property the design rests on: commits by other connections
    /// between steps neither restart the copy nor leak into it.
    #[test]
    fn commits_during_a_copy_neither_restart_it_nor_enter_it() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("postdesk.db");
        drop(Store::open(&db).unwrap());
        let insert = |conn: &Connection, id: i64| {
            conn.execute(
                "INSERT INTO tickets (id, subject, status, priority, queue, mailbox, requester, created_at, updated_at)
                 VALUES (?1, ?2, 'new', 'medium', 'general', 'soporte', 'ana@cliente.com', 0, 0)",
                rusqlite::params![id, "x".repeat(10_000)],
            )
            .unwrap();
        };
        let writer = Connection::open(&db).unwrap();
        for id in 1..=200 {
            insert(&writer, id);
        }
        let source = Connection::open(&db).unwrap();
        let snapshot = source.unchecked_transaction().unwrap();
        let (mut steps, mut next_id) = (0, 201);
        let mut commit_one = || {
            steps += 1;
            assert!(steps < 10_000, "the copy keeps restarting");
            insert(&writer, next_id);
            next_id += 1;
        };
        let target = dir.path().join("copy.db");
        let report = copy_snapshot(
            &snapshot,
            &db,
            &target,
            Existing::Refuse,
            &mut Pace {
                pages: 1,
                between: &mut commit_one,
            },
        )
        .unwrap();
        drop(snapshot);
        assert_eq!(report.tickets, 200);
        assert!(report.pages > 100, "{report:?}");
        assert_eq!(version_and_tickets(&target).1, 200, "only the snapshot");
        let live = version_and_tickets(&db).1;
        assert_eq!(live, 200 + steps, "a commit between every two steps");
        assert_eq!(steps as u64, report.pages - 1, "one pass, no restart");
        let check: String = Connection::open(&target)
            .unwrap()
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))
            .unwrap();
        assert_eq!(check, "ok");
    }

    #[test]
    fn a_new_database_is_not_backed_up() {
        let dir = tempfile::tempdir().unwrap();
        Store::open(&dir.path().join("postdesk.db")).unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".bak"))
            .collect();
        assert!(names.is_empty(), "{names:?}");
    }

    #[test]
    fn no_migration_without_its_backup() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("postdesk.db");
        database_at(&db, 2);
        // A directory in the way: the copy cannot be moved into place.
        std::fs::create_dir_all(dir.path().join("postdesk.db.pre-v2.bak/x")).unwrap();
        match Store::open(&db) {
            Err(StoreError::Backup(_)) => {}
            Err(e) => panic!("wrong error: {e}"),
            Ok(_) => panic!("migrated without a backup"),
        }
        assert_eq!(version_and_tickets(&db), (2, 1), "left unmigrated");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.contains(".tmp-"))
            .collect();
        assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
    }

    #[test]
    fn a_database_migrated_meanwhile_is_not_copied_as_the_old_version() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("postdesk.db");
        database_at(&db, 3);
        let conn = Connection::open(&db).unwrap();
        // Another process migrated after this one read version 3.
        assert_eq!(backup_before_migration(&conn, &db, 2).unwrap(), None);
        assert!(!pre_migration_path(&db, 2).exists());
    }

    #[test]
    fn an_existing_target_is_refused_unless_replacing() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("postdesk.db");
        database_at(&db, 3);
        let target = dir.path().join("copy.db");
        std::fs::write(&target, b"precious").unwrap();
        match backup_database(&db, &target, Existing::Refuse) {
            Err(BackupError::TargetExists(p)) => assert_eq!(p, target),
            other => panic!("{other:?}"),
        }
        assert_eq!(std::fs::read(&target).unwrap(), b"precious");
        let report = backup_database(&db, &target, Existing::Replace).unwrap();
        assert_eq!((report.tickets, report.schema_version), (1, 3));
        assert_eq!(report.bytes, std::fs::metadata(&target).unwrap().len());
        assert_eq!(version_and_tickets(&target), (3, 1));
    }

    #[test]
    fn the_database_itself_is_never_a_target() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("postdesk.db");
        database_at(&db, 3);
        let link = dir.path().join("link.db");
        std::fs::hard_link(&db, &link).unwrap();
        for target in [&db, &link] {
            match backup_database(&db, target, Existing::Replace) {
                Err(BackupError::SameFile(p)) => assert_eq!(&p, target),
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(version_and_tickets(&db), (3, 1));
    }

    #[cfg(unix)]
    #[test]
    fn the_copy_is_as_private_as_the_database() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("postdesk.db");
        database_at(&db, 3);
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o600)).unwrap();
        let target = dir.path().join("copy.db");
        backup_database(&db, &target, Existing::Refuse).unwrap();
        let mode = std::fs::metadata(&target).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
    }

    #[test]
    fn a_missing_database_is_not_created() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("postdesk.db");
        match backup_database(&db, &dir.path().join("copy.db"), Existing::Refuse) {
            Err(BackupError::MissingDatabase(p)) => assert_eq!(p, db),
            other => panic!("{other:?}"),
        }
        assert!(!db.exists());
        assert!(!dir.path().join("copy.db").exists());
    }
}
