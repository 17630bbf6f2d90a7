//! [`DeskView`] over an open transaction: the questions intake asks, answered
//! from the same state its decision will be applied to. A read that fails is
//! answered conservatively and remembered, so the caller can abort the
//! transaction instead of acting on a half-read state.

use std::cell::{OnceCell, RefCell};

use chrono::{DateTime, Utc};
use postdesk_core::duplicates::{Candidate, Fingerprint};
use postdesk_core::ticket::{Priority, Status, TicketType};
use postdesk_core::view::{DeskView, TicketSnapshot};
use rusqlite::{Connection, params};

use super::{StoreError, load_ticket, to_time};

pub struct TxView<'a> {
    conn: &'a Connection,
    /// Mail queued earlier in this transaction whose recipients are not
    /// written yet (intake's batch writes them once the mail is composed).
    queued: &'a [Queued],
    /// Whether any address is under a bounce stop at all (usually none): one
    /// query per view instead of one per recipient.
    any_bounce_stop: OnceCell<bool>,
    failure: RefCell<Option<StoreError>>,
}

/// One recipient of a mail queued but not yet written to the outbox: what
/// the rate limit and once-a-day notices count.
#[derive(Debug, Clone)]
pub struct Queued {
    pub address: String,
    pub template: String,
    pub automatic: bool,
    pub created_at: i64,
}

impl<'a> TxView<'a> {
    pub fn new(conn: &'a Connection, queued: &'a [Queued]) -> Self {
        TxView {
            conn,
            queued,
            any_bounce_stop: OnceCell::new(),
            failure: RefCell::new(None),
        }
    }

    /// The first read error, if any: the decision must then be discarded.
    pub fn into_failure(self) -> Option<StoreError> {
        self.failure.into_inner()
    }

    fn answer<T>(&self, result: Result<T, StoreError>, fallback: T) -> T {
        result.unwrap_or_else(|e| {
            self.failure.borrow_mut().get_or_insert(e);
            fallback
        })
    }

    fn exists(&self, sql: &str, args: impl rusqlite::Params) -> bool {
        let r = self
            .conn
            .prepare_cached(sql)
            .and_then(|mut s| s.exists(args))
            .map_err(StoreError::from);
        self.answer(r, false)
    }
}

impl DeskView for TxView<'_> {
    fn ticket(&self, id: i64) -> Option<TicketSnapshot> {
        let row = self.answer(load_ticket(self.conn, id), None)?;
        let status = Status::parse(&row.status);
        let priority = Priority::parse(&row.priority);
        let (Some(status), Some(priority)) = (status, priority) else {
            self.answer::<()>(
                Err(StoreError::Corrupt(format!(
                    "ticket {id} has status {:?} priority {:?}",
                    row.status, row.priority
                ))),
                (),
            );
            return None;
        };
        Some(TicketSnapshot {
            id: row.id,
            subject: row.subject,
            status,
            priority,
            ticket_type: row.ticket_type.as_deref().and_then(TicketType::parse),
            queue: row.queue,
            mailbox: row.mailbox,
            requester: row.requester,
            participants: row.participants,
            categories: row.categories,
            customer: row.customer,
            assignee: row.assignee,
            duplicate_of: row.duplicate_of,
            created_at: to_time(row.created_at),
            resolved_at: row.resolved_at.map(to_time),
            closed_at: row.closed_at.map(to_time),
            resolved_by: row.resolved_by,
        })
    }

    fn ticket_for_message_id(&self, message_id: &str) -> Option<i64> {
        let r = self
            .conn
            .prepare_cached("SELECT ticket FROM message_ids WHERE message_id = ?1 AND ticket IS NOT NULL ORDER BY direction DESC LIMIT 1")
            .and_then(|mut s| s.query_row([message_id], |r| r.get(0)))
            .map(Some)
            .or_else(|e| if e == rusqlite::Error::QueryReturnedNoRows { Ok(None) } else { Err(e) })
            .map_err(StoreError::from);
        self.answer(r, None)
    }

    fn latest_customer_message_id(&self, ticket: i64) -> Option<String> {
        let r = self
            .conn
            .prepare_cached("SELECT message_id FROM messages WHERE ticket = ?1 AND kind = 'customer' AND message_id IS NOT NULL ORDER BY id DESC LIMIT 1")
            .and_then(|mut s| s.query_row([ticket], |r| r.get(0)))
            .map(Some)
            .or_else(|e| if e == rusqlite::Error::QueryReturnedNoRows { Ok(None) } else { Err(e) })
            .map_err(StoreError::from);
        self.answer(r, None)
    }

    fn duplicate_candidates(
        &self,
        requester: &str,
        customer: Option<&str>,
        since: DateTime<Utc>,
    ) -> Vec<Candidate> {
        let sql = match customer {
            Some(_) => {
                "SELECT id, dedup_subject, dedup_body FROM tickets WHERE customer = ?1 AND created_at >= ?2 AND status IN ('new', 'open', 'waiting') ORDER BY created_at, id"
            }
            None => {
                "SELECT id, dedup_subject, dedup_body FROM tickets WHERE requester = ?1 AND created_at >= ?2 AND status IN ('new', 'open', 'waiting') ORDER BY created_at, id"
            }
        };
        let key = customer.unwrap_or(requester);
        let r = self
            .conn
            .prepare_cached(sql)
            .and_then(|mut s| {
                s.query_map(params![key, since.timestamp()], |r| {
                    Ok(Candidate {
                        id: r.get(0)?,
                        fingerprint: Fingerprint {
                            subject: r.get(1)?,
                            body: r.get(2)?,
                        },
                    })
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .map_err(StoreError::from);
        self.answer(r, Vec::new())
    }

    fn message_id_seen(&self, message_id: &str) -> bool {
        self.exists(
            "SELECT 1 FROM message_ids WHERE message_id = ?1 AND direction = 'in'",
            [message_id],
        )
    }

    fn is_participant(&self, ticket: i64, address: &str) -> bool {
        self.exists(
            "SELECT 1 FROM ticket_addresses WHERE ticket = ?1 AND address = ?2",
            params![ticket, address],
        )
    }

    fn automatic_mail_count(&self, address: &str, since: DateTime<Utc>) -> u32 {
        let r = self
            .conn
            .prepare_cached("SELECT COUNT(*) FROM outbox_recipients WHERE address = ?1 AND created_at >= ?2 AND automatic = 1")
            .and_then(|mut s| s.query_row(params![address, since.timestamp()], |r| r.get::<_, u32>(0)))
            .map_err(StoreError::from);
        let queued = self
            .queued
            .iter()
            .filter(|q| q.automatic && q.address == address && q.created_at >= since.timestamp())
            .count() as u32;
        self.answer(r, u32::MAX).saturating_add(queued)
    }

    fn bounce_stopped(&self, address: &str, now: DateTime<Utc>) -> bool {
        let any = *self.any_bounce_stop.get_or_init(|| {
            // MAX on the `until` index: one step, however many stops expired.
            self.exists(
                "SELECT 1 FROM bounce_stops WHERE until = (SELECT MAX(until) FROM bounce_stops) AND until > ?1",
                params![now.timestamp()],
            ) || self.failure.borrow().is_some()
        });
        any && self.exists(
            "SELECT 1 FROM bounce_stops WHERE address = ?1 AND until > ?2",
            params![address, now.timestamp()],
        )
    }

    fn notice_sent(&self, address: &str, template: &str, since: DateTime<Utc>) -> bool {
        let since_at = since.timestamp();
        self.queued.iter().any(|q| {
            q.address == address && q.template == template && q.created_at >= since_at
        }) || self.exists(
            "SELECT 1 FROM outbox_recipients WHERE address = ?1 AND template = ?2 AND created_at >= ?3",
            params![address, template, since.timestamp()],
        )
    }
}
