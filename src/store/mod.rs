//! The store: one SQLite database (WAL) holding tickets, messages, events,
//! the inbound log, the outbox and per-source state. All SQL of postdesk lives
//! in this module; callers get typed rows and typed errors.
//!
//! The store never decides anything: it answers [`DeskView`] questions and
//! writes what a decision says, inside the transaction the caller opened.
//!
//! [`DeskView`]: postdesk_core::view::DeskView

pub mod backup;
mod checkpoint;
pub mod mailbox_state;
mod migrations;
pub mod monitoring;
mod report;
mod view;

use std::path::Path;
use std::sync::LazyLock;

use chrono::{DateTime, TimeZone, Utc};
use postdesk_core::duplicates::Fingerprint;
use rusqlite::{Connection, OptionalExtension, Row, Transaction, TransactionBehavior, params};

pub use report::ReportTicket;
pub use view::{Queued, TxView};

/// A fault of the store. `is_transient` tells "try again later" (locked,
/// busy, disk I/O) from a bug or a corrupt database.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database migration: {0}")]
    Migration(#[from] rusqlite_migration::Error),
    #[error("cannot create the database directory {path}: {source}")]
    Directory {
        path: String,
        source: std::io::Error,
    },
    #[error("stored data is not valid: {0}")]
    Corrupt(String),
    /// The copy taken before a migration failed; the database was left as
    /// it was, unmigrated.
    #[error("backing up the database before migrating it: {0}")]
    Backup(#[from] backup::BackupError),
    #[error("cannot start the checkpoint thread: {0}")]
    Thread(std::io::Error),
}

impl StoreError {
    pub fn is_transient(&self) -> bool {
        use rusqlite::ErrorCode::*;
        match self {
            StoreError::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => {
                matches!(
                    e.code,
                    DatabaseBusy
                        | DatabaseLocked
                        | SystemIoFailure
                        | DiskFull
                        | CannotOpen
                        | OutOfMemory
                )
            }
            StoreError::Directory { .. } => true,
            StoreError::Backup(e) => e.is_transient(),
            _ => false,
        }
    }
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// Seconds since the epoch to a UTC instant.
pub fn to_time(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(secs, 0).single().unwrap_or_default()
}

/// One connection to the database.
pub struct Store {
    conn: Connection,
    /// Set during a burst of intake ([`Store::start_background_checkpoints`]).
    checkpointer: Option<checkpoint::Checkpointer>,
}

impl Store {
    /// Opens (creating if needed) and migrates the database at `path`.
    pub fn open(path: &Path) -> Result<Store> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StoreError::Directory {
                path: dir.display().to_string(),
                source,
            })?;
        }
        // Two processes creating a new database at the same moment (the
        // daemon starting, an MTA's `ingest`, an admin's command) contend for
        // the switch to WAL, which does not wait on the busy handler: a lock
        // error here is tried again, briefly, before it is reported.
        let mut attempt = 0u64;
        loop {
            match Store::connect(path) {
                Ok(store) => return Ok(store),
                Err(e) if e.is_transient() && attempt < 8 => {
                    attempt += 1;
                    std::thread::sleep(std::time::Duration::from_millis(25 * attempt));
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn connect(path: &Path) -> Result<Store> {
        let mut conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        // Intake alone runs ~25 distinct statements per message; rusqlite's
        // default cache of 16 would re-prepare them every time.
        conn.set_prepared_statement_cache_capacity(128);
        // A new database gets 16 KiB pages: the raw mail and composed mail
        // it mostly holds fit a page instead of overflowing a 4 KiB one, and
        // a batch commit writes a quarter of the WAL frames (on ext4 each
        // frame is a write that extends the log). No effect on an existing
        // database.
        conn.pragma_update(None, "page_size", 16_384)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        // The per-message SAVEPOINT's sub-journal stays in memory, not a temp file.
        conn.pragma_update(None, "temp_store", "MEMORY")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        migrate(&mut conn, path, &migrations::all())?;
        Ok(Store {
            conn,
            checkpointer: None,
        })
    }

    /// For a burst of batch intake (a mailbox's backlog, `ingest`): commits
    /// leave the copying of the write-ahead log to a thread of its own (see
    /// [`checkpoint`]), and the page cache may hold a whole batch's writes
    /// (up to 8 MiB) instead of spilling them to the log before the commit.
    /// [`Store::stop_background_checkpoints`] ends the burst.
    pub fn start_background_checkpoints(&mut self) -> Result<()> {
        if self.checkpointer.is_some() {
            return Ok(());
        }
        let Some(path) = self.conn.path().map(std::path::PathBuf::from) else {
            return Ok(());
        };
        self.checkpointer = Some(checkpoint::Checkpointer::start(&path)?);
        self.conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        self.conn.pragma_update(None, "cache_size", -8_192)?;
        Ok(())
    }

    /// Back to SQLite's own checkpoints and cache after a burst: waits for
    /// the checkpoint in progress, stops its thread, and gives the page cache
    /// back, so an idle daemon stays small.
    pub fn stop_background_checkpoints(&mut self) -> Result<()> {
        if self.checkpointer.take().is_some() {
            self.conn.pragma_update(None, "wal_autocheckpoint", 1000)?;
            self.conn.pragma_update(None, "cache_size", -2000)?;
            self.release_memory();
        }
        Ok(())
    }

    /// Gives the page cache back (best effort) when a burst of work is over,
    /// so an idle daemon stays small.
    pub fn release_memory(&self) {
        let _ = self.conn.release_memory();
    }

    /// Starts the write transaction one intake or delivery step runs in.
    /// IMMEDIATE: the decision and its effects see one state, even with a
    /// daemon and an `ingest` writing at once.
    pub fn begin(&mut self) -> Result<Tx<'_>> {
        Ok(Tx {
            tx: self
                .conn
                .transaction_with_behavior(TransactionBehavior::Immediate)?,
            checkpointer: self.checkpointer.as_ref(),
        })
    }
}

/// Applies pending `migrations`; an existing database (schema version > 0)
/// is first copied to `<db>.pre-v<N>.bak`, and left unmigrated if that copy
/// fails.
fn migrate(
    conn: &mut Connection,
    path: &Path,
    migrations: &rusqlite_migration::Migrations<'_>,
) -> Result<()> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > 0
        && migrations.pending_migrations(conn)? > 0
        && let Some(report) = backup::backup_before_migration(conn, path, version)?
    {
        tracing::info!(
            backup = %report.path.display(),
            from_version = version,
            pages = report.pages,
            bytes = report.bytes,
            tickets = report.tickets,
            "database backed up before migrating its schema"
        );
    }
    // Two processes opening a new database at once (the daemon and an
    // MTA's `ingest`, or an admin's `ticket list`) both see it unmigrated,
    // and the loser's migration fails half-way (rolled back). It looks
    // again: when the winner brought the schema up to date, all is well.
    let mut attempt = 0u64;
    loop {
        match migrations.to_latest(conn) {
            Ok(()) => return Ok(()),
            Err(e) => {
                attempt += 1;
                if migrations.pending_migrations(conn)? == 0 {
                    return Ok(());
                }
                if attempt >= 5 {
                    return Err(e.into());
                }
                std::thread::sleep(std::time::Duration::from_millis(50 * attempt));
            }
        }
    }
}

/// An open write transaction; dropped without `commit` it rolls back.
pub struct Tx<'a> {
    tx: Transaction<'a>,
    checkpointer: Option<&'a checkpoint::Checkpointer>,
}

/// A ticket as stored.
#[derive(Debug, Clone, Default)]
pub struct TicketRow {
    pub id: i64,
    pub subject: String,
    pub status: String,
    pub priority: String,
    pub ticket_type: Option<String>,
    pub categories: Vec<String>,
    pub queue: String,
    pub mailbox: String,
    pub requester: String,
    pub customer: Option<String>,
    pub assignee: Option<String>,
    pub participants: Vec<String>,
    pub duplicate_of: Option<i64>,
    pub continues: Option<i64>,
    pub created_at: i64,
    pub updated_at: i64,
    pub last_update_at: Option<i64>,
    pub first_response_due: Option<i64>,
    pub first_response_at: Option<i64>,
    pub resolution_due: Option<i64>,
    pub resolved_at: Option<i64>,
    pub resolved_by: Option<String>,
    pub closed_at: Option<i64>,
    pub sla_state: String,
    pub escalation_level: i64,
    pub sla_policy: Option<String>,
    /// When the ticket entered `waiting` (the resolution clock is paused).
    pub waiting_since: Option<i64>,
    /// Working seconds spent waiting so far.
    pub paused_seconds: i64,
    /// The earliest instant one of its timers comes due (`None`: none can).
    pub next_timer_at: Option<i64>,
}

const TICKET_COLUMNS: &str = "id, subject, status, priority, type, categories, queue, mailbox, requester, customer, assignee, duplicate_of, continues, created_at, updated_at, last_update_at, first_response_due, first_response_at, resolution_due, resolved_at, resolved_by, closed_at, sla_state, escalation_level, sla_policy, waiting_since, paused_seconds, next_timer_at";

fn ticket_from_row(r: &Row<'_>) -> rusqlite::Result<TicketRow> {
    let categories: String = r.get(5)?;
    Ok(TicketRow {
        id: r.get(0)?,
        subject: r.get(1)?,
        status: r.get(2)?,
        priority: r.get(3)?,
        ticket_type: r.get(4)?,
        categories: serde_json::from_str(&categories).unwrap_or_default(),
        queue: r.get(6)?,
        mailbox: r.get(7)?,
        requester: r.get(8)?,
        customer: r.get(9)?,
        assignee: r.get(10)?,
        participants: Vec::new(),
        duplicate_of: r.get(11)?,
        continues: r.get(12)?,
        created_at: r.get(13)?,
        updated_at: r.get(14)?,
        last_update_at: r.get(15)?,
        first_response_due: r.get(16)?,
        first_response_at: r.get(17)?,
        resolution_due: r.get(18)?,
        resolved_at: r.get(19)?,
        resolved_by: r.get(20)?,
        closed_at: r.get(21)?,
        sla_state: r.get(22)?,
        escalation_level: r.get(23)?,
        sla_policy: r.get(24)?,
        waiting_since: r.get(25)?,
        paused_seconds: r.get(26)?,
        next_timer_at: r.get(27)?,
    })
}

/// A stored message of a ticket.
#[derive(Debug, Clone, Default)]
pub struct MessageRow {
    pub id: i64,
    pub ticket: i64,
    pub kind: String,
    pub from: String,
    pub to: Vec<String>,
    pub cc: Vec<String>,
    pub subject: String,
    pub message_id: Option<String>,
    pub date: Option<i64>,
    pub received_at: i64,
    pub body: String,
    pub inbound: Option<i64>,
    pub attachments: Vec<AttachmentRow>,
}

#[derive(Debug, Clone, Default)]
pub struct AttachmentRow {
    pub filename: String,
    pub content_type: String,
    pub size: i64,
    pub sha256: String,
}

#[derive(Debug, Clone, Default)]
pub struct EventRow {
    pub at: i64,
    pub kind: String,
    pub from: Option<String>,
    pub to: Option<String>,
    pub by: Option<String>,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct InboundRow {
    pub id: i64,
    pub mailbox: String,
    pub source_ref: String,
    pub received_at: i64,
    pub message_id: Option<String>,
    pub from: Option<String>,
    pub subject: Option<String>,
    pub size: i64,
    pub disposition: String,
    pub ticket: Option<i64>,
    pub reason: String,
}

/// A mail to deliver, fully rendered.
#[derive(Debug, Clone, Default)]
pub struct OutboxRow {
    pub id: i64,
    pub ticket: Option<i64>,
    pub template: String,
    pub mailbox: String,
    pub sender: String,
    pub to: Vec<String>,
    pub subject: String,
    pub message_id: String,
    pub raw: Vec<u8>,
    pub automatic: bool,
    pub status: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub next_attempt_at: i64,
    pub created_at: i64,
    pub sent_at: Option<i64>,
}

fn json_list(list: &[String]) -> String {
    serde_json::to_string(list).unwrap_or_else(|_| "[]".into())
}

fn parse_list(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}

/// Reads shared by transactions and plain connections.
pub fn load_ticket(conn: &Connection, id: i64) -> Result<Option<TicketRow>> {
    static SQL: LazyLock<String> =
        LazyLock::new(|| format!("SELECT {TICKET_COLUMNS} FROM tickets WHERE id = ?1"));
    let mut stmt = conn.prepare_cached(&SQL)?;
    let Some(mut t) = stmt.query_row([id], ticket_from_row).optional()? else {
        return Ok(None);
    };
    t.participants = participants(conn, id)?;
    Ok(Some(t))
}

fn participants(conn: &Connection, ticket: i64) -> Result<Vec<String>> {
    let mut stmt = conn
        .prepare_cached("SELECT address FROM participants WHERE ticket = ?1 ORDER BY position")?;
    let rows = stmt.query_map([ticket], |r| r.get(0))?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

impl Tx<'_> {
    pub fn commit(self) -> Result<()> {
        self.tx.commit()?;
        if let Some(checkpointer) = self.checkpointer {
            checkpointer.wake();
        }
        Ok(())
    }

    pub fn conn(&self) -> &Connection {
        &self.tx
    }

    /// Opens a nested unit inside the transaction (one message of a batch).
    pub fn savepoint(&self) -> Result<()> {
        self.tx.prepare_cached("SAVEPOINT message")?.execute([])?;
        Ok(())
    }

    pub fn release_savepoint(&self) -> Result<()> {
        self.tx.prepare_cached("RELEASE message")?.execute([])?;
        Ok(())
    }

    /// Undoes everything since `savepoint` and closes it.
    pub fn rollback_to_savepoint(&self) -> Result<()> {
        Ok(self
            .tx
            .execute_batch("ROLLBACK TO message; RELEASE message")?)
    }

    pub fn view(&self) -> TxView<'_> {
        TxView::new(&self.tx, &[])
    }

    /// [`Tx::view`], counting `queued` recipients as if already written.
    pub fn view_with<'v>(&'v self, queued: &'v [Queued]) -> TxView<'v> {
        TxView::new(&self.tx, queued)
    }

    /// True when this source message was already taken in (crash recovery:
    /// committed, but the source was not yet told).
    pub fn inbound_taken(&self, mailbox: &str, source_ref: &str) -> Result<bool> {
        let mut stmt = self
            .tx
            .prepare_cached("SELECT 1 FROM inbound WHERE mailbox = ?1 AND source_ref = ?2")?;
        Ok(stmt.exists(params![mailbox, source_ref])?)
    }

    pub fn ticket(&self, id: i64) -> Result<Option<TicketRow>> {
        load_ticket(&self.tx, id)
    }

    /// The number the next ticket gets.
    pub fn next_ticket_id(&self, first: i64) -> Result<i64> {
        let max: Option<i64> = self
            .tx
            .prepare_cached("SELECT MAX(id) FROM tickets")?
            .query_row([], |r| r.get(0))?;
        Ok(max.map_or(first, |m| (m + 1).max(first)))
    }

    /// A new ticket with its participants and what the duplicate rule
    /// compares it on.
    pub fn insert_ticket(&self, t: &TicketRow, fingerprint: &Fingerprint) -> Result<()> {
        static SQL: LazyLock<String> = LazyLock::new(|| {
            format!(
                "INSERT INTO tickets ({TICKET_COLUMNS}, dedup_subject, dedup_body) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29, ?30)"
            )
        });
        self.tx.prepare_cached(&SQL)?.execute(params![
            t.id,
            t.subject,
            t.status,
            t.priority,
            t.ticket_type,
            json_list(&t.categories),
            t.queue,
            t.mailbox,
            t.requester,
            t.customer,
            t.assignee,
            t.duplicate_of,
            t.continues,
            t.created_at,
            t.updated_at,
            t.last_update_at,
            t.first_response_due,
            t.first_response_at,
            t.resolution_due,
            t.resolved_at,
            t.resolved_by,
            t.closed_at,
            t.sla_state,
            t.escalation_level,
            t.sla_policy,
            t.waiting_since,
            t.paused_seconds,
            t.next_timer_at,
            fingerprint.subject,
            fingerprint.body
        ])?;
        for p in &t.participants {
            self.add_participant(t.id, p)?;
        }
        Ok(())
    }

    /// Writes back the mutable fields of a ticket.
    pub fn update_ticket(&self, t: &TicketRow) -> Result<()> {
        self.tx.prepare_cached("UPDATE tickets SET subject = ?2, status = ?3, priority = ?4, type = ?5, categories = ?6, queue = ?7, customer = ?8, assignee = ?9, duplicate_of = ?10, updated_at = ?11, last_update_at = ?12, first_response_due = ?13, first_response_at = ?14, resolution_due = ?15, resolved_at = ?16, resolved_by = ?17, closed_at = ?18, sla_state = ?19, escalation_level = ?20, sla_policy = ?21, waiting_since = ?22, paused_seconds = ?23, next_timer_at = ?24 WHERE id = ?1")?
            .execute(params![
                t.id, t.subject, t.status, t.priority, t.ticket_type, json_list(&t.categories), t.queue, t.customer,
                t.assignee, t.duplicate_of, t.updated_at, t.last_update_at, t.first_response_due, t.first_response_at,
                t.resolution_due, t.resolved_at, t.resolved_by, t.closed_at, t.sla_state, t.escalation_level,
                t.sla_policy, t.waiting_since, t.paused_seconds, t.next_timer_at
            ])?;
        Ok(())
    }

    /// When the ticket's next timer comes due (after a timer pass looked at it).
    pub fn set_next_timer(&self, ticket: i64, at: Option<i64>) -> Result<()> {
        self.tx
            .prepare_cached("UPDATE tickets SET next_timer_at = ?2 WHERE id = ?1")?
            .execute(params![ticket, at])?;
        Ok(())
    }

    /// Records a timer firing; false when this key already fired.
    pub fn timer_fire(&self, key: &str, at: i64) -> Result<bool> {
        Ok(self
            .tx
            .prepare_cached("INSERT OR IGNORE INTO timers (key, fired_at) VALUES (?1, ?2)")?
            .execute(params![key, at])?
            == 1)
    }

    /// What duplicate detection compares later mail with.
    pub fn add_participant(&self, ticket: i64, address: &str) -> Result<()> {
        self.tx.prepare_cached("INSERT OR IGNORE INTO participants (ticket, address, position) VALUES (?1, ?2, (SELECT COUNT(*) FROM participants WHERE ticket = ?1))")?
            .execute(params![ticket, address])?;
        self.add_ticket_address(ticket, address)
    }

    pub fn add_ticket_address(&self, ticket: i64, address: &str) -> Result<()> {
        self.tx
            .prepare_cached(
                "INSERT OR IGNORE INTO ticket_addresses (ticket, address) VALUES (?1, ?2)",
            )?
            .execute(params![ticket, address])?;
        Ok(())
    }

    pub fn insert_message(&self, m: &MessageRow) -> Result<i64> {
        self.tx.prepare_cached("INSERT INTO messages (ticket, kind, from_addr, to_addrs, cc_addrs, subject, message_id, date, received_at, body, inbound) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)")?
            .execute(params![m.ticket, m.kind, m.from, json_list(&m.to), json_list(&m.cc), m.subject, m.message_id, m.date, m.received_at, m.body, m.inbound])?;
        let id = self.tx.last_insert_rowid();
        for a in &m.attachments {
            self.tx.prepare_cached("INSERT INTO attachments (message, filename, content_type, size, sha256) VALUES (?1, ?2, ?3, ?4, ?5)")?
                .execute(params![id, a.filename, a.content_type, a.size, a.sha256])?;
        }
        Ok(id)
    }

    pub fn add_event(&self, ticket: i64, e: &EventRow) -> Result<()> {
        self.tx.prepare_cached("INSERT INTO events (ticket, at, kind, from_value, to_value, by, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")?
            .execute(params![ticket, e.at, e.kind, e.from, e.to, e.by, e.detail])?;
        Ok(())
    }

    pub fn record_message_id(
        &self,
        message_id: &str,
        direction: &str,
        ticket: Option<i64>,
    ) -> Result<()> {
        self.tx.prepare_cached("INSERT OR IGNORE INTO message_ids (message_id, direction, ticket) VALUES (?1, ?2, ?3)")?
            .execute(params![message_id, direction, ticket])?;
        Ok(())
    }

    pub fn insert_inbound(&self, i: &InboundRow, raw: &[u8]) -> Result<i64> {
        self.tx.prepare_cached("INSERT INTO inbound (mailbox, source_ref, received_at, message_id, from_addr, subject, size, disposition, ticket, reason) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)")?
            .execute(params![i.mailbox, i.source_ref, i.received_at, i.message_id, i.from, i.subject, i.size, i.disposition, i.ticket, i.reason])?;
        let id = self.tx.last_insert_rowid();
        self.tx
            .prepare_cached("INSERT INTO inbound_raw (inbound, raw) VALUES (?1, ?2)")?
            .execute(params![id, raw])?;
        Ok(id)
    }

    /// Queues a mail: its outbox row, its recipients and its Message-ID
    /// (what later decisions look at; see [`Tx::insert_outbox_recipients`]).
    pub fn insert_outbox(&self, o: &OutboxRow, to_team: bool) -> Result<i64> {
        let id = self.insert_outbox_row(o)?;
        self.insert_outbox_recipients(id, o, to_team)?;
        self.record_message_id(&o.message_id, "out", o.ticket)?;
        Ok(id)
    }

    /// Writes the outbox row itself, with `o.id` (0: the next free one).
    pub fn insert_outbox_row(&self, o: &OutboxRow) -> Result<i64> {
        let id = (o.id != 0).then_some(o.id);
        self.tx.prepare_cached("INSERT INTO outbox (id, ticket, template, mailbox, sender, to_addrs, subject, message_id, raw, automatic, status, attempts, next_attempt_at, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 'pending', 0, ?11, ?12)")?
            .execute(params![id, o.ticket, o.template, o.mailbox, o.sender, json_list(&o.to), o.subject, o.message_id, o.raw, o.automatic, o.next_attempt_at, o.created_at])?;
        Ok(self.tx.last_insert_rowid())
    }

    /// Per recipient of outbox row `id`: template and time, which the rate
    /// limit of automatic mail and the once-a-day notices count. A team
    /// notification's agents are not recorded: nothing limits those.
    pub fn insert_outbox_recipients(&self, id: i64, o: &OutboxRow, to_team: bool) -> Result<()> {
        if !to_team {
            for to in &o.to {
                self.tx.prepare_cached("INSERT INTO outbox_recipients (outbox, address, template, automatic, created_at) VALUES (?1, ?2, ?3, ?4, ?5)")?
                    .execute(params![id, to, o.template, o.automatic, o.created_at])?;
            }
        }
        Ok(())
    }

    /// The id the next outbox row gets when none is given.
    pub fn next_outbox_id(&self) -> Result<i64> {
        Ok(self
            .tx
            .prepare_cached("SELECT COALESCE(MAX(id), 0) + 1 FROM outbox")?
            .query_row([], |r| r.get(0))?)
    }

    /// A bounce answered this mail of ours: it will not be delivered.
    pub fn fail_outbox_by_message_id(&self, message_id: &str, error: &str) -> Result<Option<i64>> {
        let id: Option<i64> = self
            .tx
            .query_row(
                "SELECT id FROM outbox WHERE message_id = ?1",
                [message_id],
                |r| r.get(0),
            )
            .optional()?;
        if let Some(id) = id {
            self.tx.execute(
                "UPDATE outbox SET status = 'failed', last_error = ?2 WHERE id = ?1",
                params![id, error],
            )?;
        }
        Ok(id)
    }

    pub fn stop_automatic_mail(&self, address: &str, until: i64, reason: &str) -> Result<()> {
        self.tx.execute(
            "INSERT INTO bounce_stops (address, until, reason) VALUES (?1, ?2, ?3) ON CONFLICT(address) DO UPDATE SET until = MAX(until, excluded.until), reason = excluded.reason",
            params![address, until, reason],
        )?;
        Ok(())
    }

    /// Delivery outcome of one outbox row.
    pub fn mark_sent(&self, id: i64, now: i64) -> Result<()> {
        self.tx.prepare_cached("UPDATE outbox SET status = 'sent', attempts = attempts + 1, sent_at = ?2, last_error = NULL WHERE id = ?1 AND status = 'pending'")?.execute(params![id, now])?;
        Ok(())
    }

    pub fn mark_retry(&self, id: i64, error: &str, next_attempt_at: i64) -> Result<()> {
        self.tx.prepare_cached("UPDATE outbox SET attempts = attempts + 1, last_error = ?2, next_attempt_at = ?3 WHERE id = ?1 AND status = 'pending'")?.execute(params![id, error, next_attempt_at])?;
        Ok(())
    }

    pub fn mark_failed(&self, id: i64, error: &str) -> Result<()> {
        self.tx.prepare_cached("UPDATE outbox SET status = 'failed', attempts = attempts + 1, last_error = ?2 WHERE id = ?1 AND status = 'pending'")?.execute(params![id, error])?;
        Ok(())
    }

    pub fn record_poll(&self, mailbox: &str, now: i64, error: Option<&str>) -> Result<()> {
        if error.is_none() {
            self.tx.prepare_cached("INSERT INTO mailbox_state (mailbox, last_poll_at) VALUES (?1, ?2) ON CONFLICT(mailbox) DO UPDATE SET last_poll_at = excluded.last_poll_at, last_error = NULL")?.execute(params![mailbox, now])?;
        } else {
            self.tx.prepare_cached("INSERT INTO mailbox_state (mailbox, last_error) VALUES (?1, ?2) ON CONFLICT(mailbox) DO UPDATE SET last_error = excluded.last_error")?.execute(params![mailbox, error])?;
        }
        Ok(())
    }
}

/// Filters of `ticket list`.
#[derive(Debug, Clone, Default)]
pub struct TicketFilter {
    pub statuses: Vec<String>,
    pub queue: Option<String>,
    pub customer: Option<String>,
}

impl Store {
    pub fn ticket(&self, id: i64) -> Result<Option<TicketRow>> {
        load_ticket(&self.conn, id)
    }

    pub fn list_tickets(&self, filter: &TicketFilter) -> Result<Vec<TicketRow>> {
        let mut sql = format!("SELECT {TICKET_COLUMNS} FROM tickets WHERE 1=1");
        let mut args: Vec<String> = Vec::new();
        if !filter.statuses.is_empty() {
            let marks: Vec<String> = filter
                .statuses
                .iter()
                .map(|s| {
                    args.push(s.clone());
                    format!("?{}", args.len())
                })
                .collect();
            sql.push_str(&format!(" AND status IN ({})", marks.join(",")));
        }
        if let Some(q) = &filter.queue {
            args.push(q.clone());
            sql.push_str(&format!(" AND queue = ?{}", args.len()));
        }
        if let Some(c) = &filter.customer {
            args.push(c.clone());
            sql.push_str(&format!(" AND customer = ?{} COLLATE NOCASE", args.len()));
        }
        sql.push_str(" ORDER BY id");
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map(rusqlite::params_from_iter(args.iter()), ticket_from_row)?;
        let mut tickets: Vec<TicketRow> = rows.collect::<rusqlite::Result<_>>()?;
        for t in &mut tickets {
            t.participants = participants(&self.conn, t.id)?;
        }
        Ok(tickets)
    }

    /// Tickets with a timer due at or before `now`, by the `next_timer_at` index.
    pub fn timer_tickets(&self, now: i64) -> Result<Vec<TicketRow>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {TICKET_COLUMNS} FROM tickets WHERE next_timer_at <= ?1"
        ))?;
        let rows = stmt.query_map([now], ticket_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Resolved tickets (the weekly reminder's scan), by the status index.
    pub fn resolved_tickets(&self) -> Result<Vec<TicketRow>> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {TICKET_COLUMNS} FROM tickets WHERE status = 'resolved'"
        ))?;
        let rows = stmt.query_map([], ticket_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// The earliest stored timer instant (the timer task sleeps until then).
    pub fn next_timer_due(&self) -> Result<Option<i64>> {
        Ok(self
            .conn
            .query_row("SELECT MIN(next_timer_at) FROM tickets", [], |r| r.get(0))?)
    }

    /// True when this timer key has fired.
    pub fn timer_fired(&self, key: &str) -> Result<bool> {
        Ok(self
            .conn
            .prepare_cached("SELECT 1 FROM timers WHERE key = ?1")?
            .exists([key])?)
    }

    pub fn messages(&self, ticket: i64) -> Result<Vec<MessageRow>> {
        let mut stmt = self.conn.prepare_cached("SELECT id, ticket, kind, from_addr, to_addrs, cc_addrs, subject, message_id, date, received_at, body, inbound FROM messages WHERE ticket = ?1 ORDER BY id")?;
        let rows = stmt.query_map([ticket], |r| {
            Ok(MessageRow {
                id: r.get(0)?,
                ticket: r.get(1)?,
                kind: r.get(2)?,
                from: r.get(3)?,
                to: parse_list(&r.get::<_, String>(4)?),
                cc: parse_list(&r.get::<_, String>(5)?),
                subject: r.get(6)?,
                message_id: r.get(7)?,
                date: r.get(8)?,
                received_at: r.get(9)?,
                body: r.get(10)?,
                inbound: r.get(11)?,
                attachments: Vec::new(),
            })
        })?;
        let mut messages: Vec<MessageRow> = rows.collect::<rusqlite::Result<_>>()?;
        let mut att = self.conn.prepare_cached("SELECT filename, content_type, size, sha256 FROM attachments WHERE message = ?1 ORDER BY id")?;
        for m in &mut messages {
            m.attachments = att
                .query_map([m.id], |r| {
                    Ok(AttachmentRow {
                        filename: r.get(0)?,
                        content_type: r.get(1)?,
                        size: r.get(2)?,
                        sha256: r.get(3)?,
                    })
                })?
                .collect::<rusqlite::Result<_>>()?;
        }
        Ok(messages)
    }

    pub fn events(&self, ticket: i64) -> Result<Vec<EventRow>> {
        let mut stmt = self.conn.prepare_cached("SELECT at, kind, from_value, to_value, by, detail FROM events WHERE ticket = ?1 ORDER BY id")?;
        let rows = stmt.query_map([ticket], |r| {
            Ok(EventRow {
                at: r.get(0)?,
                kind: r.get(1)?,
                from: r.get(2)?,
                to: r.get(3)?,
                by: r.get(4)?,
                detail: r.get(5)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn inbound_log(&self, since: Option<i64>) -> Result<Vec<InboundRow>> {
        let mut stmt = self.conn.prepare_cached("SELECT id, mailbox, source_ref, received_at, message_id, from_addr, subject, size, disposition, ticket, reason FROM inbound WHERE received_at >= ?1 ORDER BY id")?;
        let rows = stmt.query_map([since.unwrap_or(i64::MIN)], |r| {
            Ok(InboundRow {
                id: r.get(0)?,
                mailbox: r.get(1)?,
                source_ref: r.get(2)?,
                received_at: r.get(3)?,
                message_id: r.get(4)?,
                from: r.get(5)?,
                subject: r.get(6)?,
                size: r.get(7)?,
                disposition: r.get(8)?,
                ticket: r.get(9)?,
                reason: r.get(10)?,
            })
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    pub fn outbox(&self, status: Option<&str>) -> Result<Vec<OutboxRow>> {
        let mut stmt = self.conn.prepare_cached("SELECT id, ticket, template, mailbox, sender, to_addrs, subject, message_id, automatic, status, attempts, last_error, next_attempt_at, created_at, sent_at FROM outbox WHERE ?1 IS NULL OR status = ?1 ORDER BY id")?;
        let rows = stmt.query_map([status], outbox_from_row)?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Pending mail due for (another) attempt, oldest first, with its bytes.
    pub fn due_outbox(&self, now: i64, limit: usize) -> Result<Vec<OutboxRow>> {
        let mut stmt = self.conn.prepare_cached("SELECT id, ticket, template, mailbox, sender, to_addrs, subject, message_id, automatic, status, attempts, last_error, next_attempt_at, created_at, sent_at, raw FROM outbox WHERE status = 'pending' AND next_attempt_at <= ?1 ORDER BY next_attempt_at, id LIMIT ?2")?;
        let rows = stmt.query_map(params![now, limit as i64], |r| {
            let mut o = outbox_from_row(r)?;
            o.raw = r.get(15)?;
            Ok(o)
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }
}

fn outbox_from_row(r: &Row<'_>) -> rusqlite::Result<OutboxRow> {
    Ok(OutboxRow {
        id: r.get(0)?,
        ticket: r.get(1)?,
        template: r.get(2)?,
        mailbox: r.get(3)?,
        sender: r.get(4)?,
        to: parse_list(&r.get::<_, String>(5)?),
        subject: r.get(6)?,
        message_id: r.get(7)?,
        raw: Vec::new(),
        automatic: r.get(8)?,
        status: r.get(9)?,
        attempts: r.get(10)?,
        last_error: r.get(11)?,
        next_attempt_at: r.get(12)?,
        created_at: r.get(13)?,
        sent_at: r.get(14)?,
    })
}

/// Sender and text of a ticket's first message (what a duplicate contributes).
pub fn first_message(conn: &Connection, ticket: i64) -> Result<Option<(String, String)>> {
    Ok(conn
        .prepare_cached(
            "SELECT from_addr, body FROM messages WHERE ticket = ?1 ORDER BY id LIMIT 1",
        )?
        .query_row([ticket], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?)
}

/// The Message-ID of a ticket's first message with one, to thread mail to it.
pub fn first_message_id(conn: &Connection, ticket: i64) -> Result<Option<String>> {
    Ok(conn
        .prepare_cached("SELECT message_id FROM messages WHERE ticket = ?1 AND message_id IS NOT NULL ORDER BY id LIMIT 1")?
        .query_row([ticket], |r| r.get(0))
        .optional()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_database_has_16_kib_pages_and_an_old_one_keeps_its_own() {
        let dir = tempfile::tempdir().unwrap();
        let page_size = |store: &Store| -> i64 {
            store
                .conn
                .pragma_query_value(None, "page_size", |r| r.get(0))
                .unwrap()
        };
        let fresh = dir.path().join("new.sqlite");
        assert_eq!(page_size(&Store::open(&fresh).unwrap()), 16_384);
        let old = dir.path().join("old.sqlite");
        {
            let conn = Connection::open(&old).unwrap();
            conn.pragma_update(None, "page_size", 4096).unwrap();
            conn.execute_batch("CREATE TABLE t (x); DROP TABLE t;")
                .unwrap();
        }
        assert_eq!(page_size(&Store::open(&old).unwrap()), 4096);
    }

    #[test]
    fn migrations_are_valid() {
        assert!(migrations::all().validate().is_ok());
    }

    fn queued(message_id: &str) -> OutboxRow {
        OutboxRow {
            template: "ack".into(),
            mailbox: "soporte".into(),
            sender: "soporte@example.com".into(),
            to: vec!["ana@cliente.com".into()],
            message_id: message_id.into(),
            automatic: true,
            created_at: 100,
            next_attempt_at: 100,
            ..Default::default()
        }
    }

    #[test]
    fn an_outbox_row_written_with_a_reserved_id_keeps_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("db.sqlite")).unwrap();
        let tx = store.begin().unwrap();
        let id = tx.next_outbox_id().unwrap();
        assert_eq!(id, 1);
        // The second reserved number is written first.
        let second = OutboxRow {
            id: id + 1,
            ..queued("b@example.com")
        };
        assert_eq!(tx.insert_outbox_row(&second).unwrap(), 2);
        tx.insert_outbox_recipients(2, &second, false).unwrap();
        let first = OutboxRow {
            id,
            ..queued("a@example.com")
        };
        assert_eq!(tx.insert_outbox_row(&first).unwrap(), 1);
        // A row written the ordinary way afterwards takes the next number.
        assert_eq!(
            tx.insert_outbox(&queued("c@example.com"), false).unwrap(),
            3
        );
        tx.commit().unwrap();
    }

    #[test]
    fn a_view_counts_recipients_queued_but_not_yet_written() {
        use postdesk_core::view::DeskView;
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("db.sqlite")).unwrap();
        let tx = store.begin().unwrap();
        tx.insert_outbox(&queued("a@example.com"), false).unwrap();
        let queued = [Queued {
            address: "ana@cliente.com".into(),
            template: "unknown_sender".into(),
            automatic: true,
            created_at: 150,
        }];
        let since = to_time(100);
        let view = tx.view_with(&queued);
        assert_eq!(view.automatic_mail_count("ana@cliente.com", since), 2);
        assert_eq!(
            view.automatic_mail_count("ana@cliente.com", to_time(120)),
            1
        );
        assert!(view.notice_sent("ana@cliente.com", "unknown_sender", since));
        assert!(!view.notice_sent("ana@cliente.com", "unknown_sender", to_time(151)));
        assert!(view.notice_sent("ana@cliente.com", "ack", since));
        let plain = tx.view();
        assert_eq!(plain.automatic_mail_count("ana@cliente.com", since), 1);
        assert!(!plain.notice_sent("ana@cliente.com", "unknown_sender", since));
    }

    #[test]
    fn bounce_stops_in_force_are_told_from_expired_ones() {
        use postdesk_core::view::DeskView;
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("db.sqlite")).unwrap();
        let tx = store.begin().unwrap();
        tx.stop_automatic_mail("old@cliente.com", 100, "5.1.1")
            .unwrap();
        assert!(!tx.view().bounce_stopped("old@cliente.com", to_time(200)));
        assert!(tx.view().bounce_stopped("old@cliente.com", to_time(50)));
        tx.stop_automatic_mail("new@cliente.com", 500, "5.1.1")
            .unwrap();
        let view = tx.view();
        assert!(view.bounce_stopped("new@cliente.com", to_time(200)));
        assert!(!view.bounce_stopped("old@cliente.com", to_time(200)));
        assert!(!view.bounce_stopped("other@cliente.com", to_time(200)));
    }

    #[test]
    fn a_team_notification_records_its_message_id_but_not_its_agents() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("db.sqlite")).unwrap();
        let tx = store.begin().unwrap();
        let id = tx.insert_outbox(&queued("team@example.com"), true).unwrap();
        let recipients: i64 = tx
            .conn()
            .query_row(
                "SELECT COUNT(*) FROM outbox_recipients WHERE outbox = ?1",
                [id],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(recipients, 0);
        let ids: i64 = tx
            .conn()
            .query_row("SELECT COUNT(*) FROM message_ids WHERE message_id = 'team@example.com' AND direction = 'out'", [], |r| r.get(0))
            .unwrap();
        assert_eq!(ids, 1);
    }

    #[test]
    fn ticket_numbers_start_at_the_configured_first() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("db.sqlite")).unwrap();
        let tx = store.begin().unwrap();
        assert_eq!(tx.next_ticket_id(1000).unwrap(), 1000);
        tx.insert_ticket(
            &TicketRow {
                id: 1000,
                subject: "s".into(),
                status: "new".into(),
                priority: "medium".into(),
                queue: "general".into(),
                mailbox: "m".into(),
                requester: "a@b.c".into(),
                sla_state: "none".into(),
                participants: vec!["a@b.c".into()],
                ..Default::default()
            },
            &Fingerprint::default(),
        )
        .unwrap();
        assert_eq!(tx.next_ticket_id(1000).unwrap(), 1001);
        tx.commit().unwrap();
        let t = store.ticket(1000).unwrap().unwrap();
        assert_eq!(t.participants, vec!["a@b.c"]);
    }
}
