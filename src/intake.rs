//! Takes one inbound message in: opens the write transaction, asks the core
//! for a decision against the state inside it, and writes the ticket change,
//! the message and its attachments, the events, the inbound-log row (with the
//! raw bytes) and every mail it causes (the transactional outbox) before one
//! commit. Sources acknowledge a message only after this returns.
//!
//! Never talks to a mail server; never decides anything itself.

use std::borrow::Cow;
use std::collections::HashSet;
use std::io::Write;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, mpsc};

use chrono::{DateTime, Utc};
use postdesk_core::config::Config;
use postdesk_core::config::Mailbox;
use postdesk_core::intake::{self, Append, Decision, Reading, TicketAction, Transition};
use postdesk_core::mail::InboundMail;
use postdesk_core::outgoing::{About, AutoSubmitted, Notice};
use postdesk_core::sla;
use postdesk_core::ticket::{Disposition, Status};
use postdesk_core::ticket::{Priority, TicketType};
use postdesk_core::workflow::Plan;
use sha2::{Digest, Sha256};
use tracing::{debug, info, warn};

use crate::compose::{Shared, Subject, compose};
use crate::desk::Desk;
use crate::store::{
    AttachmentRow, EventRow, InboundRow, MessageRow, OutboxRow, Queued, Store, StoreError,
    TicketRow, Tx, to_time,
};

#[derive(Debug, thiserror::Error)]
pub enum IntakeError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot store attachment in {path}: {source}")]
    Attachment {
        path: String,
        source: std::io::Error,
    },
}

impl IntakeError {
    /// Worth retrying later (the MTA's exit 75, the daemon's next pass).
    pub fn is_transient(&self) -> bool {
        match self {
            IntakeError::Store(e) => e.is_transient(),
            IntakeError::Attachment { .. } => true,
        }
    }
}

/// What happened to one source message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Taken {
    /// Processed now, with its disposition and ticket.
    Processed {
        inbound: i64,
        disposition: Disposition,
        ticket: Option<i64>,
    },
    /// Committed earlier (before a crash): only the source must be told.
    AlreadyTaken,
}

/// Processes a batch of messages with one commit (group commit): each message
/// is applied whole or not at all, and a failing message is rolled back
/// alone (the batch is then done again with a SAVEPOINT per message).
/// Returns the outcome of the leading messages that were committed, in
/// order; the caller acknowledges exactly
/// those to the source, and retries the rest later. Fails only when not even
/// the first message could be taken in.
///
/// The pure work goes to helper threads (see ARCHITECTURE.md, "Intake"): they
/// parse the messages ahead of this thread, which decides and writes each
/// message in turn; then they compose the mail each causes and write its
/// attachment files, and their results are written before the one commit.
/// Should any of that fail, the batch is rolled back and done again on this
/// thread alone, exactly as one message after another.
pub fn take_in_batch(
    store: &mut Store,
    desk: &Desk,
    mailbox: &Mailbox,
    batch: &[(&str, &[u8])],
    now: DateTime<Utc>,
) -> Result<Vec<Taken>, IntakeError> {
    let readings = Readings::new(batch, &desk.config);
    let outcomes = if batch.len() > 1 {
        match take_in_with_helpers(store, desk, mailbox, &readings, now)? {
            Some(outcomes) => outcomes,
            None => take_in_sequentially(store, desk, mailbox, &readings, now)?,
        }
    } else {
        take_in_sequentially(store, desk, mailbox, &readings, now)?
    };
    // One line per message, after the commit: what happened to it, where.
    for (taken, (source_ref, _)) in outcomes.iter().zip(batch) {
        if let Taken::Processed {
            inbound,
            disposition,
            ticket,
        } = taken
        {
            info!(mailbox = %mailbox.name, ticket, inbound, source_ref, disposition = %disposition, "message taken in");
        }
    }
    Ok(outcomes)
}

/// Helper threads besides the calling one: one per further core, at most 3.
fn helper_count() -> usize {
    std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .saturating_sub(1)
        .clamp(1, 3)
}

/// The batch's messages, each parsed once (pure, independent per message):
/// by a helper thread running ahead, or by the thread that needs it first.
struct Readings<'b> {
    batch: &'b [(&'b str, &'b [u8])],
    config: &'b Config,
    parsed: Vec<OnceLock<Reading>>,
    /// The next message no helper has taken up yet.
    next: AtomicUsize,
}

impl<'b> Readings<'b> {
    fn new(batch: &'b [(&'b str, &'b [u8])], config: &'b Config) -> Self {
        Readings {
            batch,
            config,
            parsed: batch.iter().map(|_| OnceLock::new()).collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// Message `i` as read; parsed now unless a helper already did (or is
    /// doing it: then this waits for it).
    fn get(&self, i: usize) -> &Reading {
        self.parsed[i].get_or_init(|| intake::read(self.batch[i].1, self.config))
    }

    /// A helper's turn: parses the next message nobody took up; false once
    /// every message has been taken up.
    fn read_ahead(&self) -> bool {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        if i >= self.batch.len() {
            return false;
        }
        self.get(i);
        true
    }

    /// (source_ref, raw bytes, reading) of each message, in order.
    fn iter(&self) -> impl Iterator<Item = (&'b str, &'b [u8], &Reading)> {
        self.batch
            .iter()
            .enumerate()
            .map(|(i, (source_ref, raw))| (*source_ref, *raw, self.get(i)))
    }
}

/// One message after another on this thread: mail composed and attachments
/// written as each message is applied.
fn take_in_sequentially(
    store: &mut Store,
    desk: &Desk,
    mailbox: &Mailbox,
    readings: &Readings<'_>,
    now: DateTime<Utc>,
) -> Result<Vec<Taken>, IntakeError> {
    let tx = store.begin()?;
    let mut outcomes = Vec::with_capacity(readings.batch.len());
    for (source_ref, raw, reading) in readings.iter() {
        tx.savepoint()?;
        match take_one(&tx, desk, mailbox, source_ref, raw, reading, now, None) {
            Ok(taken) => {
                tx.release_savepoint()?;
                outcomes.push(taken);
            }
            Err(e) => {
                tx.rollback_to_savepoint()?;
                if outcomes.is_empty() {
                    return Err(e);
                }
                warn!(mailbox = %mailbox.name, source_ref, error = %e, "message left for the next pass");
                break;
            }
        }
    }
    tx.commit()?;
    Ok(outcomes)
}

/// Work handed to the helper threads: pure, or a content-addressed file.
enum Job<'a> {
    Compose {
        /// Index of the message in the batch that causes this mail.
        message: usize,
        /// Its outbox row, to write once the mail is composed.
        outbox: Box<OutboxRow>,
        /// A team notification (no recipients recorded).
        to_team: bool,
        message_id: String,
        notice: Notice,
        ticket: Option<Arc<TicketRow>>,
        inbound: Option<Arc<Cow<'a, InboundMail>>>,
        thread_root: Option<Arc<str>>,
        /// One for every mail the same message causes.
        shared: Arc<Shared>,
    },
    Attachment {
        message: usize,
        hash: String,
        data: &'a [u8],
    },
}

enum Done {
    Composed {
        message: usize,
        outbox: Box<OutboxRow>,
        to_team: bool,
        result: Result<crate::compose::Composed, crate::compose::ComposeError>,
    },
    Saved {
        message: usize,
        result: Result<(), IntakeError>,
    },
}

/// What the batch's thread hands to the helpers while it applies messages.
struct Deferred<'a> {
    jobs: mpsc::Sender<Job<'a>>,
    /// The message being applied.
    message: usize,
    /// Attachments already handed over in this batch (by hash).
    saving: HashSet<String>,
    /// A job could not be handed over: do the batch again sequentially.
    broken: bool,
    /// The id the next outbox row of the batch gets: rows are written once
    /// their mail is composed, numbered in the order the mail was queued.
    next_outbox: Option<i64>,
    /// Recipients of the mail queued so far, not yet written: the decisions
    /// on the messages that follow count them (rate limit, daily notices).
    queued: Vec<Queued>,
}

impl<'a> Deferred<'a> {
    fn send(&mut self, job: Job<'a>) {
        if self.jobs.send(job).is_err() {
            self.broken = true;
        }
    }
}

/// A helper thread: reads messages ahead of the batch's thread, then does
/// the jobs that thread hands over until it closes the queue.
fn work(
    readings: &Readings<'_>,
    jobs: &Mutex<mpsc::Receiver<Job<'_>>>,
    desk: &Desk,
    mailbox: &Mailbox,
    now: DateTime<Utc>,
) -> Vec<Done> {
    while readings.read_ahead() {}
    let mut done = Vec::new();
    loop {
        let job = match jobs.lock() {
            Ok(jobs) => jobs.recv(),
            Err(poisoned) => poisoned.into_inner().recv(),
        };
        let Ok(job) = job else {
            return done;
        };
        done.push(match job {
            Job::Compose {
                message,
                outbox,
                to_team,
                message_id,
                notice,
                ticket,
                inbound,
                thread_root,
                shared,
            } => {
                let subject = Subject {
                    ticket: ticket.as_deref(),
                    inbound: inbound.as_deref().map(|m| &**m),
                    thread_root: thread_root.as_deref(),
                    shared: &shared,
                };
                Done::Composed {
                    message,
                    outbox,
                    to_team,
                    result: crate::compose::compose_as(
                        &notice,
                        &subject,
                        mailbox,
                        &desk.config,
                        &desk.templates,
                        now,
                        message_id,
                    ),
                }
            }
            Job::Attachment {
                message,
                hash,
                data,
            } => Done::Saved {
                message,
                result: write_attachment(&desk.attachments_dir(), &hash, data),
            },
        });
    }
}

/// The batch with helper threads; `None` when it must be done again
/// sequentially (a mail could not be composed, an attachment not written:
/// the sequential pass decides what that means for each message).
fn take_in_with_helpers<'r>(
    store: &mut Store,
    desk: &Desk,
    mailbox: &Mailbox,
    readings: &'r Readings<'r>,
    now: DateTime<Utc>,
) -> Result<Option<Vec<Taken>>, IntakeError> {
    let (sender, receiver) = mpsc::channel();
    let receiver = Mutex::new(receiver);
    let (applied, done) = std::thread::scope(|scope| {
        // The helpers start reading while the write transaction is opened.
        let helpers: Vec<_> = (0..helper_count())
            .map(|_| scope.spawn(|| work(readings, &receiver, desk, mailbox, now)))
            .collect();
        let mut deferred = Deferred {
            jobs: sender,
            message: 0,
            saving: HashSet::new(),
            broken: false,
            next_outbox: None,
            queued: Vec::new(),
        };
        let applied = store.begin().map(|tx| {
            let outcomes = apply_in_order(&tx, desk, mailbox, readings, now, &mut deferred);
            (tx, outcomes)
        });
        let broken = deferred.broken;
        // No more jobs: the helpers stop once the queue is empty, and this
        // thread helps empty it.
        drop(deferred);
        let mut done = work(readings, &receiver, desk, mailbox, now);
        for helper in helpers {
            match helper.join() {
                Ok(part) => done.extend(part),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        (applied.map(|(tx, outcomes)| (tx, outcomes, broken)), done)
    });
    let (tx, outcomes, broken) = applied?;
    let Some(outcomes) = outcomes.filter(|_| !broken) else {
        return Ok(None);
    };
    // Only what the messages kept (not rolled back) caused counts.
    let kept = outcomes.len();
    for d in done {
        match d {
            Done::Composed {
                message,
                mut outbox,
                to_team,
                result,
            } if message < kept => match result {
                Ok(composed) => {
                    outbox.subject = composed.subject;
                    outbox.raw = composed.raw;
                    let id = tx.insert_outbox_row(&outbox)?;
                    tx.insert_outbox_recipients(id, &outbox, to_team)?;
                }
                Err(e) => {
                    debug!(mailbox = %mailbox.name, error = %e, "a mail could not be composed: batch done again sequentially");
                    return Ok(None);
                }
            },
            Done::Saved {
                message,
                result: Err(e),
            } if message < kept => {
                debug!(mailbox = %mailbox.name, error = %e, "an attachment could not be written: batch done again sequentially");
                return Ok(None);
            }
            _ => {}
        }
    }
    tx.commit()?;
    Ok(Some(outcomes))
}

/// Every message in order, handing the pure work to the helpers, with no
/// savepoint per message (each would copy every page the message touches
/// first into a sub-journal): `None` as soon as one message fails, and the
/// caller then rolls the batch back and does it again one message after
/// another, each in its own savepoint, where the message at fault fails
/// alone.
fn apply_in_order<'r>(
    tx: &Tx<'_>,
    desk: &Desk,
    mailbox: &Mailbox,
    readings: &'r Readings<'r>,
    now: DateTime<Utc>,
    deferred: &mut Deferred<'r>,
) -> Option<Vec<Taken>> {
    let mut outcomes = Vec::with_capacity(readings.batch.len());
    for (i, (source_ref, raw, reading)) in readings.iter().enumerate() {
        deferred.message = i;
        match take_one(
            tx,
            desk,
            mailbox,
            source_ref,
            raw,
            reading,
            now,
            Some(&mut *deferred),
        ) {
            Ok(taken) => outcomes.push(taken),
            Err(e) => {
                debug!(mailbox = %mailbox.name, source_ref, error = %e, "a message failed: batch done again one message at a time");
                return None;
            }
        }
    }
    Some(outcomes)
}

#[allow(clippy::too_many_arguments)]
fn take_one<'a>(
    tx: &Tx<'_>,
    desk: &Desk,
    mailbox: &Mailbox,
    source_ref: &str,
    raw: &[u8],
    reading: &'a Reading,
    now: DateTime<Utc>,
    deferred: Option<&mut Deferred<'a>>,
) -> Result<Taken, IntakeError> {
    if tx.inbound_taken(&mailbox.name, source_ref)? {
        return Ok(Taken::AlreadyTaken);
    }
    let view = match &deferred {
        Some(deferred) => tx.view_with(&deferred.queued),
        None => tx.view(),
    };
    let decision = intake::decide(reading, mailbox, &desk.config, &view, now);
    if let Some(failure) = view.into_failure() {
        return Err(failure.into());
    }
    apply(
        tx, desk, mailbox, source_ref, raw, reading, decision, now, deferred,
    )
}

#[allow(clippy::too_many_arguments)]
fn apply<'a>(
    tx: &Tx<'_>,
    desk: &Desk,
    mailbox: &Mailbox,
    source_ref: &str,
    raw: &[u8],
    reading: &'a Reading,
    decision: Decision,
    now: DateTime<Utc>,
    mut deferred: Option<&mut Deferred<'a>>,
) -> Result<Taken, IntakeError> {
    let at = now.timestamp();
    let mail = reading.mail();
    let mut reason = decision.reason.clone();
    // The ticket this message files onto, known before the inbound row is
    // written, so the row is written once.
    let ticket_id = match &decision.ticket {
        TicketAction::None => None,
        TicketAction::Create(_) => Some(tx.next_ticket_id(desk.config.desk.first_ticket_number)?),
        TicketAction::Append(append) => Some(append.ticket),
    };
    let inbound = tx.insert_inbound(
        &InboundRow {
            mailbox: mailbox.name.clone(),
            source_ref: source_ref.to_string(),
            received_at: at,
            message_id: mail.and_then(|m| m.message_id.clone()),
            from: mail.map(|m| m.from.clone()),
            subject: mail.map(|m| m.subject.clone()),
            size: raw.len() as i64,
            disposition: decision.disposition.code().to_string(),
            ticket: ticket_id,
            reason: reason.clone(),
            ..Default::default()
        },
        raw,
    )?;

    // The ticket as it stands after this message, and the Message-ID its
    // thread starts with, for the mail the message causes.
    let (ticket, thread_root): (Option<TicketRow>, Option<Arc<str>>) =
        match (&decision.ticket, ticket_id) {
            (TicketAction::Create(new), Some(id)) => {
                let row = TicketRow {
                    id,
                    subject: new.subject.clone(),
                    status: new.status.code().into(),
                    priority: new.priority.code().into(),
                    ticket_type: new.ticket_type.map(|t| t.code().to_string()),
                    categories: new.categories.clone(),
                    queue: new.queue.clone(),
                    mailbox: new.mailbox.clone(),
                    requester: new.requester.clone(),
                    customer: new.customer.clone(),
                    assignee: new.assignee.clone(),
                    participants: new.participants.clone(),
                    duplicate_of: new.duplicate_of,
                    continues: new.continues,
                    created_at: at,
                    updated_at: at,
                    last_update_at: Some(at),
                    closed_at: None,
                    sla_state: "none".into(),
                    ..Default::default()
                };
                let mut row = row;
                settle_sla(&desk.config, &mut row, None, at);
                tx.insert_ticket(&row, &new.fingerprint)?;
                let detail = new
                    .continues
                    .map(|old| format!("continues closed ticket {old}"));
                tx.add_event(
                    id,
                    &EventRow {
                        at,
                        kind: "created".into(),
                        to: Some(Status::New.code().into()),
                        by: Some(new.requester.clone()),
                        detail,
                        ..Default::default()
                    },
                )?;
                if new.status == Status::Cancelled {
                    tx.add_event(
                        id,
                        &EventRow {
                            at,
                            kind: "status".into(),
                            from: Some("new".into()),
                            to: Some("cancelled".into()),
                            by: Some("postdesk".into()),
                            detail: new.cancel_reason.clone(),
                        },
                    )?;
                }
                if let (Some(original), Some(m)) = (new.duplicate_of, mail) {
                    // SPEC §5: the new information goes to the oldest ticket as a note.
                    tx.add_event(
                        id,
                        &EventRow {
                            at,
                            kind: "duplicate".into(),
                            to: Some(original.to_string()),
                            by: Some("postdesk".into()),
                            ..Default::default()
                        },
                    )?;
                    let text = format!(
                        "Ticket {id} from {} was cancelled as a duplicate of this one:\n\n{}",
                        m.from, m.body
                    );
                    add_merged_note(tx, original, id, &m.from, &m.subject, text, at)?;
                    let mut original_row = tx.ticket(original)?;
                    if let Some(row) = original_row.as_mut() {
                        row.updated_at = at;
                        tx.update_ticket(row)?;
                    }
                }
                if let Some(m) = mail {
                    store_message(
                        tx,
                        desk,
                        id,
                        new.kind.code(),
                        m,
                        None,
                        inbound,
                        at,
                        deferred.as_deref_mut(),
                    )?;
                }
                let root = mail.and_then(|m| m.message_id.as_deref()).map(Arc::from);
                (Some(row), root)
            }
            (TicketAction::Append(append), Some(id)) => {
                if let Some(m) = mail {
                    store_message(
                        tx,
                        desk,
                        id,
                        append.kind.code(),
                        m,
                        append.body.as_deref(),
                        inbound,
                        at,
                        deferred.as_deref_mut(),
                    )?;
                }
                for p in &append.new_participants {
                    tx.add_participant(id, p)?;
                }
                let mut ticket = tx.ticket(id)?;
                if let Some(row) = ticket.as_mut() {
                    row.updated_at = at;
                    let before = row.status.clone();
                    let by = mail.map_or("postdesk", |m| m.from.as_str());
                    if let Some(plan) = &append.plan {
                        apply_plan(tx, row, plan, by, at)?;
                    }
                    if let Some(t) = &append.transition {
                        apply_transition(tx, row, t, at)?;
                    }
                    if append.support_update {
                        row.last_update_at = Some(at);
                    }
                    if append.first_response && row.first_response_at.is_none() {
                        row.first_response_at = Some(at);
                    }
                    settle_sla(&desk.config, row, Some(&before), at);
                    tx.update_ticket(row)?;
                }
                if let Some(report) = &append.bounce {
                    let detail = format!(
                        "{} for {}",
                        report.status.as_deref().unwrap_or("unknown status"),
                        report
                            .failed_recipient
                            .as_deref()
                            .unwrap_or("unknown recipient")
                    );
                    tx.add_event(
                        id,
                        &EventRow {
                            at,
                            kind: "bounce".into(),
                            by: mail.map(|m| m.from.clone()),
                            detail: Some(detail.clone()),
                            ..Default::default()
                        },
                    )?;
                    if let Some(original) = &report.original_message_id {
                        tx.fail_outbox_by_message_id(original, &format!("bounced: {detail}"))?;
                    }
                    if report.is_permanent()
                        && let Some(address) = &report.failed_recipient
                    {
                        tx.stop_automatic_mail(
                            address,
                            at + 60 * 86_400,
                            &format!("permanent bounce {detail}"),
                        )?;
                    }
                }
                let root = crate::store::first_message_id(tx.conn(), id)?.map(Arc::from);
                (ticket, root)
            }
            _ => (None, None),
        };
    if let Some(message_id) = mail.and_then(|m| m.message_id.as_deref()) {
        tx.record_message_id(message_id, "in", ticket_id)?;
    }

    // The mail this message causes, in the same transaction.
    // Notifications quote the text as stored (commands and quoted history cut).
    let mail_for_notices = match &decision.ticket {
        TicketAction::Append(Append {
            body: Some(body), ..
        }) => mail.map(|m| {
            Cow::Owned(InboundMail {
                body: body.clone(),
                ..m.clone()
            })
        }),
        _ => mail.map(Cow::Borrowed),
    };
    let skipped = queue_notices_via(
        tx,
        desk,
        mailbox,
        ticket.map(Arc::new),
        thread_root,
        mail_for_notices.map(Arc::new),
        &decision.notices,
        now,
        deferred,
    )?;
    for s in skipped {
        reason.push_str("; ");
        reason.push_str(&s);
    }
    if reason != decision.reason {
        tx.conn()
            .execute(
                "UPDATE inbound SET reason = ?2 WHERE id = ?1",
                rusqlite::params![inbound, reason],
            )
            .map_err(StoreError::from)?;
    }
    Ok(Taken::Processed {
        inbound,
        disposition: decision.disposition,
        ticket: ticket_id,
    })
}

/// Renders `notices` about `ticket_id` and writes them to the outbox: one mail
/// per customer recipient (delivery, bounces and the rate limit are per
/// address), and one mail to all the agents a team notification addresses.
/// Returns what could not be queued, for the log.
pub fn queue_notices(
    tx: &Tx<'_>,
    desk: &Desk,
    mailbox: &Mailbox,
    ticket_id: Option<i64>,
    inbound: Option<&InboundMail>,
    notices: &[Notice],
    now: DateTime<Utc>,
) -> Result<Vec<String>, StoreError> {
    let ticket = match ticket_id {
        Some(id) => tx.ticket(id)?.map(Arc::new),
        None => None,
    };
    let thread_root = match ticket_id {
        Some(id) => crate::store::first_message_id(tx.conn(), id)?.map(Arc::from),
        None => None,
    };
    queue_notices_via(
        tx,
        desk,
        mailbox,
        ticket,
        thread_root,
        inbound.map(|m| Arc::new(Cow::Borrowed(m))),
        notices,
        now,
        None,
    )
}

/// [`queue_notices`] for `ticket` as it stands (and the Message-ID its thread
/// starts with), composing now or (`deferred`) on a helper thread: then the
/// Message-ID is recorded now, the recipients are kept in `deferred.queued`
/// (what later decisions look at), and the outbox row with its recipients is
/// written once the mail is composed, before the commit.
#[allow(clippy::too_many_arguments)]
fn queue_notices_via<'a>(
    tx: &Tx<'_>,
    desk: &Desk,
    mailbox: &Mailbox,
    ticket: Option<Arc<TicketRow>>,
    thread_root: Option<Arc<str>>,
    inbound: Option<Arc<Cow<'a, InboundMail>>>,
    notices: &[Notice],
    now: DateTime<Utc>,
    mut deferred: Option<&mut Deferred<'a>>,
) -> Result<Vec<String>, StoreError> {
    let at = now.timestamp();
    let shared = Arc::new(Shared::default());
    let mut skipped = Vec::new();
    for notice in notices {
        let about_ticket = match notice.about {
            About::Nothing => None,
            About::NewTicket | About::Ticket(_) => ticket.as_ref(),
        };
        let to_agents = notice.to.iter().all(|a| desk.config.agent(a).is_some());
        // A relayed reply is one mail (To: requester, Cc: participants), as
        // the customer would send it; team notifications are one mail too.
        let groups: Vec<Vec<String>> = if to_agents || notice.auto == AutoSubmitted::No {
            vec![notice.to.clone()]
        } else {
            notice.to.iter().map(|a| vec![a.clone()]).collect()
        };
        for to in groups {
            let mut single = notice.clone();
            single.to = to.clone();
            let row =
                |to: Vec<String>, subject: String, message_id: String, raw: Vec<u8>| OutboxRow {
                    ticket: about_ticket.map(|t| t.id),
                    template: notice.template.to_string(),
                    mailbox: mailbox.name.clone(),
                    sender: mailbox.address.clone(),
                    to,
                    subject,
                    message_id,
                    raw,
                    automatic: notice.auto != AutoSubmitted::No,
                    next_attempt_at: at,
                    created_at: at,
                    ..Default::default()
                };
            if let Some(deferred) = deferred.as_deref_mut() {
                let message_id =
                    crate::compose::new_message_id(about_ticket.map(|t| t.id), mailbox, now);
                // Envelope recipients, as `compose` gives them: To and Cc.
                let mut recipients = single.to.clone();
                recipients.extend(single.cc.iter().cloned());
                let id = match deferred.next_outbox {
                    Some(id) => id,
                    None => tx.next_outbox_id()?,
                };
                deferred.next_outbox = Some(id + 1);
                let outbox = Box::new(OutboxRow {
                    id,
                    ..row(recipients, String::new(), message_id.clone(), Vec::new())
                });
                // Replies thread by the Message-ID at once; the rest of what
                // later decisions look at is counted from `queued`.
                tx.record_message_id(&outbox.message_id, "out", outbox.ticket)?;
                if !to_agents {
                    deferred
                        .queued
                        .extend(outbox.to.iter().map(|address| Queued {
                            address: address.clone(),
                            template: outbox.template.clone(),
                            automatic: outbox.automatic,
                            created_at: outbox.created_at,
                        }));
                }
                let message = deferred.message;
                deferred.send(Job::Compose {
                    message,
                    outbox,
                    to_team: to_agents,
                    message_id,
                    notice: single,
                    // The notice says whether it is about the ticket.
                    ticket: ticket.clone(),
                    inbound: inbound.clone(),
                    thread_root: thread_root.clone(),
                    shared: shared.clone(),
                });
                continue;
            }
            let subject = Subject {
                ticket: ticket.as_deref(),
                inbound: inbound.as_deref().map(|m| &**m),
                thread_root: thread_root.as_deref(),
                shared: &shared,
            };
            let to = to.join(", ");
            match compose(
                &single,
                &subject,
                mailbox,
                &desk.config,
                &desk.templates,
                now,
            ) {
                Ok(composed) => {
                    tx.insert_outbox(
                        &row(
                            composed.to,
                            composed.subject,
                            composed.message_id,
                            composed.raw,
                        ),
                        to_agents,
                    )?;
                }
                Err(e) => {
                    warn!(mailbox = %mailbox.name, template = notice.template, to = %to, error = %e, "mail not queued");
                    skipped.push(format!("{} not queued to {to}: {e}", notice.template));
                }
            }
        }
    }
    Ok(skipped)
}

/// SPEC §5: the text of duplicate ticket `duplicate` goes to the `original`
/// (oldest) ticket as an internal note, with a `merged_note` event.
fn add_merged_note(
    tx: &Tx<'_>,
    original: i64,
    duplicate: i64,
    by: &str,
    subject: &str,
    text: String,
    at: i64,
) -> Result<(), StoreError> {
    tx.insert_message(&MessageRow {
        ticket: original,
        kind: "note".into(),
        from: by.into(),
        subject: subject.into(),
        received_at: at,
        body: text,
        ..Default::default()
    })?;
    tx.add_event(
        original,
        &EventRow {
            at,
            kind: "merged_note".into(),
            by: Some(by.into()),
            detail: Some(format!("text of duplicate ticket {duplicate}")),
            ..Default::default()
        },
    )?;
    Ok(())
}

/// Applies a workflow plan (agent commands, `ticket update`) to the row and
/// records its events; every change is a support-side update.
pub fn apply_plan(
    tx: &Tx<'_>,
    row: &mut TicketRow,
    plan: &Plan,
    by: &str,
    at: i64,
) -> Result<(), StoreError> {
    let id = row.id;
    for f in &plan.fields {
        tx.add_event(
            id,
            &EventRow {
                at,
                kind: f.kind.into(),
                from: f.from.clone(),
                to: f.to.clone(),
                by: Some(by.into()),
                detail: None,
            },
        )?;
        row.last_update_at = Some(at);
    }
    if let Some(p) = plan.priority {
        row.priority = p.code().into();
    }
    if let Some(t) = plan.ticket_type {
        row.ticket_type = Some(t.code().into());
    }
    if let Some(a) = &plan.assignee {
        row.assignee = Some(a.clone());
    }
    row.categories.extend(plan.categories_added.iter().cloned());
    if let Some(original) = plan.duplicate_of {
        row.duplicate_of = Some(original);
        // SPEC §5: the duplicate's text goes to the oldest ticket as a note.
        let text = crate::store::first_message(tx.conn(), id)?
            .map(|(from, body)| {
                format!("Ticket {id} ({from}) was closed as a duplicate of this one:\n\n{body}")
            })
            .unwrap_or_else(|| format!("Ticket {id} was closed as a duplicate of this one."));
        add_merged_note(tx, original, id, by, &row.subject, text, at)?;
    }
    if let Some(text) = &plan.note {
        tx.insert_message(&MessageRow {
            ticket: id,
            kind: "note".into(),
            from: by.into(),
            subject: row.subject.clone(),
            received_at: at,
            body: text.clone(),
            ..Default::default()
        })?;
        row.last_update_at = Some(at);
    }
    if let Some(t) = &plan.transition {
        apply_transition(tx, row, t, at)?;
        row.last_update_at = Some(at);
    }
    Ok(())
}

/// Brings a ticket's SLA fields up to date after any change (SPEC §7): the
/// policy is chosen again from priority, type, plan and queue, deadlines are
/// computed from creation, and time spent `waiting` (when the policy pauses)
/// or `resolved` is added to the pause when the ticket leaves it. `previous_status` is the status before the
/// change (`None` for a new ticket).
pub fn settle_sla(config: &Config, row: &mut TicketRow, previous_status: Option<&str>, at: i64) {
    let policy = sla_policy_of(config, row);
    // The resolution clock stops while the ticket waits on the customer (when
    // the policy says so) and while it is resolved; reopening resumes it.
    let paused = |status: &str| {
        status == Status::Resolved.code()
            || (status == Status::Waiting.code() && policy.is_some_and(|p| p.pause_when_waiting))
    };
    let was_paused = previous_status.is_some_and(paused);
    let is_paused = paused(&row.status);
    if is_paused && !was_paused {
        row.waiting_since = Some(at);
    } else if !is_paused && was_paused {
        if let (Some(since), Some(p)) = (row.waiting_since, policy) {
            row.paused_seconds += sla::working_time(config, p, to_time(since), to_time(at));
        }
        row.waiting_since = None;
    }
    match policy {
        Some(p) => {
            let d = sla::deadlines(config, p, to_time(row.created_at), row.paused_seconds);
            row.sla_policy = Some(d.policy);
            row.first_response_due = d.first_response_due.map(|t| t.timestamp());
            row.resolution_due = d.resolution_due.map(|t| t.timestamp());
        }
        None => {
            row.sla_policy = None;
            row.first_response_due = None;
            row.resolution_due = None;
        }
    }
    row.sla_state = sla_state(config, row, to_time(at)).code().to_string();
    // A support-side update (this change set last_update_at) ends the silence.
    if row.last_update_at == Some(at) {
        row.escalation_level = 0;
    }
    // When a timer pass must look at it next (a past instant: the next pass).
    let ticket = crate::timers::timer_ticket(config, row);
    row.next_timer_at =
        postdesk_core::timers::next_instant(config, &ticket, None).map(|t| t.timestamp());
}

/// Agents to tell about a stored ticket: its assignee, else its queue's agents.
pub fn notify_agents_of(config: &Config, row: &TicketRow) -> Vec<String> {
    postdesk_core::intake::notify_agents(row.assignee.as_deref(), &row.queue, config)
}

/// The `[[sla]]` policy that applies to a stored ticket now.
pub fn sla_policy_of<'c>(
    config: &'c Config,
    row: &TicketRow,
) -> Option<&'c postdesk_core::config::SlaPolicy> {
    let plan = row
        .customer
        .as_deref()
        .and_then(|name| config.customers.iter().find(|c| c.name == name))
        .and_then(|c| c.plan.as_deref());
    sla::choose(
        config,
        sla::PolicyKey {
            priority: Priority::parse(&row.priority).unwrap_or(Priority::Medium),
            ticket_type: row.ticket_type.as_deref().and_then(TicketType::parse),
            plan,
            queue: &row.queue,
        },
    )
}

/// The SLA clock of a stored ticket.
pub fn sla_clock<'c>(config: &'c Config, row: &TicketRow) -> sla::Clock<'c> {
    sla::Clock {
        policy: sla_policy_of(config, row),
        status: Status::parse(&row.status).unwrap_or(Status::Open),
        received_at: to_time(row.created_at),
        first_response_due: row.first_response_due.map(to_time),
        first_response_at: row.first_response_at.map(to_time),
        resolution_due: row.resolution_due.map(to_time),
    }
}

/// The SLA state of a stored ticket at `now` (what JSON shows: always current).
pub fn sla_state(config: &Config, row: &TicketRow, now: DateTime<Utc>) -> sla::SlaState {
    sla::state(config, &sla_clock(config, row), now)
}

/// Applies a status change to the row and records its event.
pub fn apply_transition(
    tx: &Tx<'_>,
    row: &mut TicketRow,
    t: &Transition,
    at: i64,
) -> Result<(), StoreError> {
    row.status = t.to.code().into();
    match t.to {
        Status::Resolved => {
            row.resolved_at = Some(at);
            row.resolved_by = Some(t.by.clone());
        }
        Status::Closed => row.closed_at = Some(at),
        Status::Open | Status::New | Status::Waiting => row.closed_at = None,
        Status::Cancelled => {}
    }
    tx.add_event(
        row.id,
        &EventRow {
            at,
            kind: t.event.into(),
            from: Some(t.from.code().into()),
            to: Some(t.to.code().into()),
            by: Some(t.by.clone()),
            detail: t.detail.clone(),
        },
    )
}

#[allow(clippy::too_many_arguments)]
fn store_message<'a>(
    tx: &Tx<'_>,
    desk: &Desk,
    ticket: i64,
    kind: &str,
    m: &'a InboundMail,
    body: Option<&str>,
    inbound: i64,
    at: i64,
    mut deferred: Option<&mut Deferred<'a>>,
) -> Result<(), IntakeError> {
    let mut attachments = Vec::with_capacity(m.attachments.len());
    for a in &m.attachments {
        let sha256 = match deferred.as_deref_mut() {
            // Written by a helper before the commit.
            Some(deferred) => {
                let hash = hex(&Sha256::digest(&a.data));
                if deferred.saving.insert(hash.clone()) {
                    let message = deferred.message;
                    deferred.send(Job::Attachment {
                        message,
                        hash: hash.clone(),
                        data: &a.data,
                    });
                }
                hash
            }
            None => save_attachment(&desk.attachments_dir(), &a.data)?,
        };
        attachments.push(AttachmentRow {
            filename: safe_filename(&a.filename),
            content_type: a.content_type.clone(),
            size: a.data.len() as i64,
            sha256,
        });
    }
    for address in std::iter::once(&m.from).chain(&m.to).chain(&m.cc) {
        tx.add_ticket_address(ticket, address)?;
    }
    tx.insert_message(&MessageRow {
        ticket,
        kind: kind.into(),
        from: m.from.clone(),
        to: m.to.clone(),
        cc: m.cc.clone(),
        subject: m.subject.clone(),
        message_id: m.message_id.clone(),
        date: m.date.map(|d| d.timestamp()),
        received_at: at,
        body: body.map_or_else(|| m.body.clone(), str::to_string),
        inbound: Some(inbound),
        attachments,
        ..Default::default()
    })?;
    Ok(())
}

/// Stores content once, named by its SHA-256 (`ab/abcdef…`); returns the hash.
/// The file name never comes from the mail, so no name can escape the directory.
pub fn save_attachment(dir: &Path, data: &[u8]) -> Result<String, IntakeError> {
    let hash = hex(&Sha256::digest(data));
    write_attachment(dir, &hash, data)?;
    Ok(hash)
}

/// Writes `data` under its SHA-256 `hash` unless it is there already.
fn write_attachment(dir: &Path, hash: &str, data: &[u8]) -> Result<(), IntakeError> {
    let folder = dir.join(&hash[..2]);
    let path = folder.join(hash);
    if path.exists() {
        return Ok(());
    }
    let err = |source| IntakeError::Attachment {
        path: path.display().to_string(),
        source,
    };
    if !folder.is_dir() {
        std::fs::create_dir_all(&folder).map_err(err)?;
    }
    let tmp = folder.join(format!(".{hash}.{}.tmp", std::process::id()));
    let mut file = std::fs::File::create(&tmp).map_err(err)?;
    // No fsync: like the database (WAL, synchronous=NORMAL), a crashed process
    // loses nothing; only a power cut may lose the last moments of both.
    file.write_all(data).map_err(err)?;
    std::fs::rename(&tmp, &path).map_err(err)?;
    Ok(())
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A display name that is safe anywhere: no directories, no control
/// characters, no leading dots, at most 200 characters.
pub fn safe_filename(name: &str) -> String {
    let base = name.rsplit(['/', '\\']).next().unwrap_or("");
    let cleaned: String = base
        .chars()
        .map(|c| {
            if c.is_control() || matches!(c, ':' | '*' | '?' | '"' | '<' | '>' | '|') {
                '_'
            } else {
                c
            }
        })
        .collect();
    let cleaned = cleaned.trim().trim_start_matches('.').trim();
    let cleaned: String = cleaned.chars().take(200).collect();
    if cleaned.is_empty() {
        "attachment".into()
    } else {
        cleaned
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filenames_cannot_escape() {
        assert_eq!(safe_filename("../../etc/passwd"), "passwd");
        assert_eq!(safe_filename("..\\..\\win.ini"), "win.ini");
        assert_eq!(safe_filename("...."), "attachment");
        assert_eq!(safe_filename(".bashrc"), "bashrc");
        assert_eq!(safe_filename("a\u{0}b.pdf"), "a_b.pdf");
        assert_eq!(safe_filename("informe final.pdf"), "informe final.pdf");
    }
}
