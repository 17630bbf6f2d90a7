//! What intake and workflow may ask about the desk's current state. The store
//! implements [`DeskView`] over the open write transaction, so a decision is
//! taken on exactly the state it will be applied to.
//!
//! Only read questions; a view never changes anything.

use chrono::{DateTime, Utc};

use crate::ticket::{Priority, Status, TicketType};

/// The fields of a ticket decisions depend on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TicketSnapshot {
    pub id: i64,
    pub subject: String,
    pub status: Status,
    pub priority: Priority,
    pub ticket_type: Option<TicketType>,
    pub queue: String,
    pub mailbox: String,
    pub requester: String,
    pub participants: Vec<String>,
    pub categories: Vec<String>,
    pub customer: Option<String>,
    pub assignee: Option<String>,
    pub duplicate_of: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub closed_at: Option<DateTime<Utc>>,
    /// Who set the ticket to `resolved` most recently.
    pub resolved_by: Option<String>,
}

/// Read access to the desk's state.
pub trait DeskView {
    fn ticket(&self, id: i64) -> Option<TicketSnapshot>;
    /// The ticket a Message-ID belongs to, among mail we stored or sent.
    fn ticket_for_message_id(&self, message_id: &str) -> Option<i64>;
    /// True when an inbound mail with this Message-ID was already read.
    fn message_id_seen(&self, message_id: &str) -> bool;
    /// Requester, participants, or any address on an earlier message of the ticket.
    fn is_participant(&self, ticket: i64, address: &str) -> bool;
    /// Automatic mails queued to `address` since `since` (rate limit).
    fn automatic_mail_count(&self, address: &str, since: DateTime<Utc>) -> u32;
    /// True when automatic mail to `address` is stopped after a permanent bounce.
    fn bounce_stopped(&self, address: &str, now: DateTime<Utc>) -> bool;
    /// The Message-ID of the ticket's latest customer message (what a relayed
    /// agent reply answers).
    fn latest_customer_message_id(&self, ticket: i64) -> Option<String>;
    /// Active tickets (new, open, waiting) created since `since` by
    /// `requester`, or by anyone of `customer` when given; oldest first.
    fn duplicate_candidates(
        &self,
        requester: &str,
        customer: Option<&str>,
        since: DateTime<Utc>,
    ) -> Vec<crate::duplicates::Candidate>;
    /// True when `template` was already queued to `address` since `since`.
    fn notice_sent(&self, address: &str, template: &str, since: DateTime<Utc>) -> bool;
}
