//! Numbered schema migrations, applied in order at open (rusqlite_migration
//! tracks them in `PRAGMA user_version`). Never edit a released migration:
//! add the next number.

use rusqlite_migration::{M, Migrations};

pub fn all() -> Migrations<'static> {
    Migrations::new(vec![
        M::up(V1),
        M::up(V2),
        M::up(V3),
        M::up(V4),
        M::up(V5),
        M::up(V6),
        M::up(V7),
    ])
}

/// 1: tickets, messages, participants, attachments, events, inbound log,
/// outbox, per-source state, bounce stops and fired timers.
/// Times are UTC Unix seconds.
const V1: &str = r#"
CREATE TABLE tickets (
    id INTEGER PRIMARY KEY,
    subject TEXT NOT NULL,
    status TEXT NOT NULL,
    priority TEXT NOT NULL,
    type TEXT,
    categories TEXT NOT NULL DEFAULT '[]',
    queue TEXT NOT NULL,
    mailbox TEXT NOT NULL,
    requester TEXT NOT NULL,
    customer TEXT,
    assignee TEXT,
    duplicate_of INTEGER REFERENCES tickets(id),
    continues INTEGER REFERENCES tickets(id),
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    last_update_at INTEGER,
    first_response_due INTEGER,
    first_response_at INTEGER,
    resolution_due INTEGER,
    resolved_at INTEGER,
    resolved_by TEXT,
    closed_at INTEGER,
    sla_policy TEXT,
    sla_state TEXT NOT NULL DEFAULT 'none',
    escalation_level INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX tickets_status ON tickets(status);
CREATE INDEX tickets_requester ON tickets(requester, created_at);

CREATE TABLE participants (
    ticket INTEGER NOT NULL REFERENCES tickets(id),
    address TEXT NOT NULL,
    position INTEGER NOT NULL,
    PRIMARY KEY (ticket, address)
) WITHOUT ROWID;

-- Every address seen on a message of the ticket: who may follow up.
CREATE TABLE ticket_addresses (
    ticket INTEGER NOT NULL,
    address TEXT NOT NULL,
    PRIMARY KEY (ticket, address)
) WITHOUT ROWID;

CREATE TABLE messages (
    id INTEGER PRIMARY KEY,
    ticket INTEGER NOT NULL REFERENCES tickets(id),
    kind TEXT NOT NULL,
    from_addr TEXT NOT NULL,
    to_addrs TEXT NOT NULL DEFAULT '[]',
    cc_addrs TEXT NOT NULL DEFAULT '[]',
    subject TEXT NOT NULL,
    message_id TEXT,
    date INTEGER,
    received_at INTEGER NOT NULL,
    body TEXT NOT NULL,
    inbound INTEGER
);
CREATE INDEX messages_ticket ON messages(ticket, id);

CREATE TABLE attachments (
    id INTEGER PRIMARY KEY,
    message INTEGER NOT NULL REFERENCES messages(id),
    filename TEXT NOT NULL,
    content_type TEXT NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL
);
CREATE INDEX attachments_message ON attachments(message);

CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    ticket INTEGER NOT NULL REFERENCES tickets(id),
    at INTEGER NOT NULL,
    kind TEXT NOT NULL,
    from_value TEXT,
    to_value TEXT,
    by TEXT,
    detail TEXT
);
CREATE INDEX events_ticket ON events(ticket, id);

-- Message-IDs we read (direction 'in') or sent ('out'), for de-duplication
-- and header threading.
CREATE TABLE message_ids (
    message_id TEXT NOT NULL,
    direction TEXT NOT NULL,
    ticket INTEGER,
    PRIMARY KEY (message_id, direction)
) WITHOUT ROWID;

CREATE TABLE inbound (
    id INTEGER PRIMARY KEY,
    mailbox TEXT NOT NULL,
    source_ref TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    message_id TEXT,
    from_addr TEXT,
    subject TEXT,
    size INTEGER NOT NULL,
    disposition TEXT NOT NULL,
    ticket INTEGER,
    reason TEXT NOT NULL,
    UNIQUE (mailbox, source_ref)
);
CREATE INDEX inbound_received ON inbound(received_at);

CREATE TABLE inbound_raw (
    inbound INTEGER PRIMARY KEY REFERENCES inbound(id),
    raw BLOB NOT NULL
);

CREATE TABLE outbox (
    id INTEGER PRIMARY KEY,
    ticket INTEGER,
    template TEXT NOT NULL,
    mailbox TEXT NOT NULL,
    sender TEXT NOT NULL,
    to_addrs TEXT NOT NULL,
    subject TEXT NOT NULL,
    message_id TEXT NOT NULL,
    raw BLOB NOT NULL,
    automatic INTEGER NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    next_attempt_at INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    sent_at INTEGER
);
CREATE INDEX outbox_due ON outbox(status, next_attempt_at);
CREATE INDEX outbox_message_id ON outbox(message_id);

CREATE TABLE outbox_recipients (
    outbox INTEGER NOT NULL REFERENCES outbox(id),
    address TEXT NOT NULL,
    template TEXT NOT NULL,
    automatic INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE INDEX outbox_recipients_address ON outbox_recipients(address, created_at);

CREATE TABLE bounce_stops (
    address TEXT PRIMARY KEY,
    until INTEGER NOT NULL,
    reason TEXT NOT NULL
);

CREATE TABLE mailbox_state (
    mailbox TEXT PRIMARY KEY,
    uidvalidity INTEGER,
    last_uid INTEGER,
    last_poll_at INTEGER,
    last_error TEXT
);

CREATE TABLE timers (
    key TEXT PRIMARY KEY,
    fired_at INTEGER NOT NULL
);
"#;

/// 2: what duplicate detection compares (SPEC §5), stored with each ticket,
/// and the index its window query uses per customer.
const V2: &str = r#"
ALTER TABLE tickets ADD COLUMN dedup_subject TEXT NOT NULL DEFAULT '';
ALTER TABLE tickets ADD COLUMN dedup_body TEXT NOT NULL DEFAULT '';
CREATE INDEX tickets_customer ON tickets(customer, created_at);
"#;

/// 3: IMAP sources. `mailbox_state` remembers which folder its UIDVALIDITY
/// and last UID belong to, and up to which UID a folder whose UIDVALIDITY
/// changed is being rescanned (mail below it may have been taken in before
/// under its old UID). The index finds such re-read mail by Message-ID.
const V3: &str = r#"
ALTER TABLE mailbox_state ADD COLUMN folder TEXT;
ALTER TABLE mailbox_state ADD COLUMN rescan_below INTEGER;
CREATE INDEX inbound_mailbox_message_id ON inbound(mailbox, message_id);
"#;

/// 4: the resolution clock's pause while a ticket waits on the customer, and
/// the index the SLA listing uses.
const V4: &str = r#"
ALTER TABLE tickets ADD COLUMN waiting_since INTEGER;
ALTER TABLE tickets ADD COLUMN paused_seconds INTEGER NOT NULL DEFAULT 0;
CREATE INDEX tickets_resolution_due ON tickets(status, resolution_due);
"#;

/// 5: the earliest instant one of a ticket's timers comes due, so a timer
/// pass reads only the tickets whose instant has come, by index. Existing
/// active and resolved tickets are looked at once by the next pass.
const V5: &str = r#"
ALTER TABLE tickets ADD COLUMN next_timer_at INTEGER;
UPDATE tickets SET next_timer_at = 0 WHERE status IN ('new', 'open', 'waiting', 'resolved');
CREATE INDEX tickets_next_timer ON tickets(next_timer_at);
"#;

/// 6: events by kind and instant: what `/metrics` counts (SLA breaches) and
/// what reports count per period (resolved, closed, cancelled).
const V6: &str = r#"
CREATE INDEX events_kind ON events(kind, at);
"#;

/// 7: bounce stops by expiry, so intake asks once per message whether any
/// stop is in force (usually none) instead of once per recipient.
const V7: &str = r#"
CREATE INDEX bounce_stops_until ON bounce_stops(until);
"#;
