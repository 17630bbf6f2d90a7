//! `postdesk db backup` (SPEC §9): a backup taken during a running ingest
//! restores to a database that passes `PRAGMA integrity_check` and holds
//! every ticket committed before the backup started; a missing database and
//! an existing target are refused with a clear message.
//!
//! The copies are checked with SQL of the test's own (rusqlite), not through
//! postdesk, so a backup cannot pass by being read the way it was written.

mod common;

use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{Desk, mail};
use rusqlite::{Connection, OpenFlags};

/// Mails in the backlog: enough that the daemon is still taking them in when
/// the backup runs (a debug build takes several seconds for them).
const MESSAGES: usize = 2_000;
/// Longest wait for the daemon's first commit.
const FIRST_COMMIT_WITHIN: Duration = Duration::from_secs(60);

/// A daemon SIGKILLed when dropped, so a failing test leaves no process.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn names_in(dir: &Path) -> Vec<String> {
    match std::fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| {
                e.expect("dir entry")
                    .file_name()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => panic!("read {}: {e}", dir.display()),
    }
}

fn log_of(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn count(conn: &Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0))
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Tickets committed in the live database, read in one read transaction.
fn committed_tickets(database: &Path) -> Option<i64> {
    if !database.exists() {
        return None;
    }
    let mut conn = Connection::open(database).ok()?;
    conn.busy_timeout(Duration::from_secs(10)).ok()?;
    let tx = conn.transaction().ok()?;
    // Before the first migration there is no table yet.
    let n = tx
        .query_row("SELECT count(*) FROM tickets", [], |r| r.get(0))
        .ok();
    tx.commit().ok()?;
    n
}

/// The checks every copy must pass: SQLite's own, then ours — each ticket
/// arrived with its inbound row and its ack (one transaction), and no row
/// points at a ticket the copy lacks.
fn assert_consistent(copy: &Path) -> i64 {
    let conn = Connection::open_with_flags(copy, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("open the copy read-only");
    let integrity: String = conn
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .expect("integrity_check");
    assert_eq!(integrity, "ok", "PRAGMA integrity_check of the copy");
    let mut fk = conn.prepare("PRAGMA foreign_key_check").expect("prepare");
    let violations = fk
        .query_map([], |r| r.get::<_, String>(0))
        .expect("foreign_key_check")
        .count();
    assert_eq!(violations, 0, "foreign key violations in the copy");
    for (what, sql) in [
        (
            "inbound rows pointing at a missing ticket",
            "SELECT count(*) FROM inbound WHERE ticket IS NOT NULL AND ticket NOT IN (SELECT id FROM tickets)",
        ),
        (
            "outbox rows pointing at a missing ticket",
            "SELECT count(*) FROM outbox WHERE ticket IS NOT NULL AND ticket NOT IN (SELECT id FROM tickets)",
        ),
        (
            "messages of a missing ticket",
            "SELECT count(*) FROM messages WHERE ticket NOT IN (SELECT id FROM tickets)",
        ),
        (
            "tickets without their inbound row",
            "SELECT count(*) FROM tickets WHERE id NOT IN (SELECT ticket FROM inbound WHERE ticket IS NOT NULL AND disposition = 'new_ticket')",
        ),
        (
            "tickets without their ack",
            "SELECT count(*) FROM tickets WHERE id NOT IN (SELECT ticket FROM outbox WHERE ticket IS NOT NULL AND template = 'ack')",
        ),
        (
            "inbound rows without their raw bytes",
            "SELECT count(*) FROM inbound WHERE id NOT IN (SELECT inbound FROM inbound_raw)",
        ),
    ] {
        assert_eq!(count(&conn, sql), 0, "{what}");
    }
    count(&conn, "SELECT count(*) FROM tickets")
}

#[test]
fn backup_during_a_running_ingest_restores_every_committed_ticket() {
    let started = Instant::now();
    let desk = Desk::new();
    let new = desk.path("mail/new");
    for sub in ["new", "cur", "tmp"] {
        std::fs::create_dir_all(desk.path("mail").join(sub)).expect("create maildir");
    }
    // Distinct senders and subjects: every mail is a new ticket with an ack
    // (no rate limit, no duplicate rule).
    for i in 0..MESSAGES {
        let raw = mail(
            &format!("c{i}@cliente.com"),
            &format!("Consulta {i:04} sobre facturas"),
            &format!("backup-{i:04}@cliente.com"),
            "",
            &format!("No puedo emitir la factura {i}.\r\nUn saludo."),
        );
        std::fs::write(new.join(format!("1700000000.M{i:04}P1.test")), raw).expect("write mail");
    }
    let database = desk.path("var/postdesk.db");
    let log = desk.path("daemon.log");
    let stderr = std::fs::File::create(&log).expect("create log");
    let mut daemon = Running(
        desk.cmd()
            .arg("run")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("spawn postdesk run"),
    );

    // Wait for the first group commit (bounded).
    let deadline = Instant::now() + FIRST_COMMIT_WITHIN;
    let before = loop {
        if let Some(n) = committed_tickets(&database).filter(|n| *n > 0) {
            break n;
        }
        if let Some(status) = daemon.0.try_wait().expect("try_wait") {
            panic!("the daemon exited with {status}; log:\n{}", log_of(&log));
        }
        assert!(
            Instant::now() < deadline,
            "no ticket committed within {FIRST_COMMIT_WITHIN:?}; log:\n{}",
            log_of(&log)
        );
        std::thread::sleep(Duration::from_millis(20));
    };

    let copy = desk.path("backups/copy.db");
    std::fs::create_dir_all(desk.path("backups")).expect("create backups dir");
    let backup_started = Instant::now();
    let printed = desk.ok(&["db", "backup", copy.to_str().expect("utf-8 path")]);
    let backup_took = backup_started.elapsed();
    // Mid-ingest: the daemon had committed some mail before the backup
    // started and still had mail left to take in when it ended.
    let left = names_in(&new).len();
    assert!(
        left > 0,
        "the daemon took in all {MESSAGES} mails before the backup ended: \
         nothing ran concurrently (make the backlog bigger)"
    );
    assert!(before < MESSAGES as i64);

    // The daemon was not disturbed: it stops cleanly, having logged no error.
    let pid = i32::try_from(daemon.0.id()).expect("pid");
    // SAFETY: signalling our own child, which we have not reaped yet.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0, "SIGTERM");
    let status = daemon.0.wait().expect("wait for the daemon");
    assert!(
        status.success(),
        "daemon exit {status}; log:\n{}",
        log_of(&log)
    );
    let daemon_log = log_of(&log);
    assert!(
        !daemon_log.contains("ERROR") && !daemon_log.contains("WARN"),
        "the daemon logged problems during the backup:\n{daemon_log}"
    );
    let live_after = committed_tickets(&database).expect("live tickets");

    // The copy: consistent, and holding every ticket committed before.
    let in_copy = assert_consistent(&copy);
    assert!(
        in_copy >= before,
        "the copy has {in_copy} tickets; {before} were committed before the backup started"
    );
    let conn = Connection::open_with_flags(&copy, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .expect("open the copy");
    assert_eq!(
        count(
            &conn,
            &format!("SELECT count(*) FROM tickets WHERE id BETWEEN 1 AND {before}")
        ),
        before,
        "tickets 1..={before} are all in the copy"
    );
    assert!(
        printed.contains(&format!(", {in_copy} tickets,")),
        "`db backup` reports the tickets it copied ({in_copy}): {printed}"
    );
    let bytes = std::fs::metadata(&copy).expect("copy").len();
    assert!(
        printed.contains(&format!(" {bytes} bytes")),
        "`db backup` reports the bytes written ({bytes}): {printed}"
    );
    drop(conn);
    assert_eq!(
        names_in(&desk.path("backups")),
        vec!["copy.db".to_string()],
        "only the copy is left next to it: no temp file, journal or WAL"
    );

    // Restore: the copy as the database of a fresh desk.
    let restored = Desk::new();
    std::fs::create_dir_all(restored.path("var")).expect("create var");
    std::fs::copy(&copy, restored.path("var/postdesk.db")).expect("restore the copy");
    let tickets = restored.tickets();
    assert_eq!(
        tickets.len() as i64,
        in_copy,
        "`ticket list` on the restore"
    );
    let ids: Vec<i64> = tickets.iter().filter_map(|t| t["id"].as_i64()).collect();
    assert!((1..=before).all(|id| ids.contains(&id)));
    assert_eq!(
        restored.inbound().as_array().map(Vec::len),
        Some(in_copy as usize)
    );
    println!(
        "backup of a running ingest: {before} tickets committed when it started, {in_copy} in the copy \
         ({bytes} bytes, {backup_took:.1?} incl. process start), {live_after} when the daemon stopped, \
         {left} of {MESSAGES} mails still in new/; {:.1} s in all",
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn backup_of_a_missing_database_is_a_clear_error() {
    let desk = Desk::new();
    let copy = desk.path("copy.db");
    let out = desk.run(&["db", "backup", copy.to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let database = desk.path("var/postdesk.db");
    assert!(
        stderr.contains(&format!("there is no database at {}", database.display())),
        "{stderr}"
    );
    assert!(!database.exists(), "a backup never creates the database");
    assert!(!copy.exists());
}

#[test]
fn backup_to_an_existing_file_is_refused_unless_forced() {
    let desk = Desk::new();
    desk.ingest_fixture("new-ticket.eml");
    let copy = desk.path("copy.db");
    std::fs::write(&copy, b"yesterday's backup").expect("write");
    let args = ["db", "backup", copy.to_str().expect("utf-8 path")];

    let out = desk.run(&args);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("already exists (pass --force to replace it)"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&copy).expect("read"), b"yesterday's backup");

    desk.ok(&[args[0], args[1], "--force", args[2]]);
    assert_eq!(assert_consistent(&copy), 1);
    let leftovers: Vec<String> = names_in(desk.dir.path())
        .into_iter()
        .filter(|n| n.contains(".tmp-"))
        .collect();
    assert!(leftovers.is_empty(), "temp files left: {leftovers:?}");
}
