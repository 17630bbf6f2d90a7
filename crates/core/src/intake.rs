//! Intake (SPEC §4): what happens to one inbound message. [`read`] turns raw
//! bytes into a [`Reading`] (size limit, parse, quarantine); [`decide`] takes
//! the reading, the mailbox, the config, a [`DeskView`] and `now`, and
//! returns the one [`Decision`] the shell applies in a single transaction
//! together with the inbound-log row and the mail it causes.
//!
//! Never does I/O and never reads the clock.

use chrono::{DateTime, Duration, Utc};

use crate::agent_commands;
use crate::body::{cut_at_marker, cut_quoted_history};
use crate::config::{Config, ForeignReplies, Mailbox, UnknownSenders};
use crate::duplicates::{self, Fingerprint};
use crate::machine::{machine_reason, suppresses_auto_reply};
use crate::mail::{Defect, DeliveryReport, InboundMail};
use crate::outgoing::{About, AutoSubmitted, Notice, admit};
use crate::subject::TagMatcher;
use crate::text::{fold, normalize_address};
use crate::ticket::{Disposition, MessageKind, Priority, Status, TicketType};
use crate::units::Span;
use crate::view::{DeskView, TicketSnapshot};
use crate::workflow::{self, Change, Plan};

/// Raw bytes as intake reads them.
#[derive(Debug, Clone)]
pub enum Reading {
    /// A mail, with what intake derives from its text.
    Mail(Box<InboundMail>, Box<MailText>),
    /// Over `max_message_size`; headers only, when they could be read.
    Oversize {
        size: usize,
        headers: Option<Box<InboundMail>>,
    },
    Defective(Defect),
}

impl Reading {
    pub fn mail(&self) -> Option<&InboundMail> {
        match self {
            Reading::Mail(m, _) => Some(m),
            Reading::Oversize { headers, .. } => headers.as_deref(),
            Reading::Defective(_) => None,
        }
    }
}

/// What intake derives from a mail's text, worked out once when the mail is
/// read (in parallel, off the thread that writes the store) rather than while
/// deciding, and at most once per mail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailText {
    /// The body without a reply's quoted history: what a follow-up adds.
    pub reply: String,
    /// Subject and body as the duplicate rule compares them.
    pub fingerprint: Fingerprint,
}

impl MailText {
    /// `mail.body` must already be cut at the reply marker (as [`read`] does).
    pub fn of(mail: &InboundMail, tags: &TagMatcher) -> MailText {
        let reply = cut_quoted_history(&mail.body);
        let fingerprint = Fingerprint::of_reply(&mail.subject, &reply, tags);
        MailText { reply, fingerprint }
    }
}

/// Step 1: size limit first (only the header block of an oversize mail is
/// parsed), then the parse.
pub fn read(raw: &[u8], config: &Config) -> Reading {
    let raw = strip_mbox_postmark(raw);
    let limit = config.intake.max_message_size.0;
    if raw.len() as u64 > limit {
        let head_end = find_header_end(raw).unwrap_or(raw.len().min(64 * 1024));
        let headers = InboundMail::parse(&raw[..head_end.min(raw.len())])
            .ok()
            .map(Box::new);
        return Reading::Oversize {
            size: raw.len(),
            headers,
        };
    }
    match InboundMail::parse(raw) {
        Ok(mut mail) => {
            mail.body = cut_at_marker(&mail.body);
            let text = MailText::of(&mail, &config.tags);
            Reading::Mail(Box::new(mail), Box::new(text))
        }
        Err(defect) => Reading::Defective(defect),
    }
}

/// What comes before the header block and is not part of the message: an
/// mbox `From sender date` line (Postfix pipe `F` flag, procmail) and blank
/// or white-space-only lines (a header block cannot start with white space,
/// and a parser would take the first empty line as the end of the headers).
fn strip_mbox_postmark(raw: &[u8]) -> &[u8] {
    let mut raw = raw;
    loop {
        let start = raw
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .unwrap_or(raw.len());
        // Only whole lines: never eat the indentation of a first header.
        let line_start = raw[..start]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |p| p + 1);
        raw = &raw[line_start..];
        if raw.starts_with(b"From ") {
            let end = raw
                .iter()
                .position(|&b| b == b'\n')
                .map_or(raw.len(), |p| p + 1);
            raw = &raw[end..];
            continue;
        }
        return raw;
    }
}

fn find_header_end(raw: &[u8]) -> Option<usize> {
    let window = &raw[..raw.len().min(1024 * 1024)];
    window
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4)
        .or_else(|| window.windows(2).position(|w| w == b"\n\n").map(|p| p + 2))
}

/// A status change with the event it records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub from: Status,
    pub to: Status,
    /// `status`, `reopened` or `validated`.
    pub event: &'static str,
    pub by: String,
    pub detail: Option<String>,
}

/// A ticket to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTicket {
    pub subject: String,
    pub status: Status,
    pub priority: Priority,
    pub ticket_type: Option<TicketType>,
    pub categories: Vec<String>,
    pub queue: String,
    pub mailbox: String,
    pub requester: String,
    pub customer: Option<String>,
    pub assignee: Option<String>,
    pub participants: Vec<String>,
    pub kind: MessageKind,
    /// A closed ticket this one continues (mail after the reopen window).
    pub continues: Option<i64>,
    /// Set when the ticket is a cancelled duplicate (SPEC §5).
    pub duplicate_of: Option<i64>,
    pub cancel_reason: Option<String>,
    /// What later mail is compared on for duplicates (SPEC §5).
    pub fingerprint: Fingerprint,
}

/// A message to add to an existing ticket.
#[derive(Debug, Clone, PartialEq)]
pub struct Append {
    pub ticket: i64,
    pub kind: MessageKind,
    pub new_participants: Vec<String>,
    pub transition: Option<Transition>,
    pub bounce: Option<DeliveryReport>,
    /// The text to store when it differs from the mail's (commands stripped).
    pub body: Option<String>,
    /// Changes an agent's commands make (events, fields, notices).
    pub plan: Option<Box<Plan>>,
    /// A relayed agent reply: sets `first_response_at` if unset.
    pub first_response: bool,
    /// A support-side update (reply, note, change): resets `last_update_at`.
    pub support_update: bool,
}

impl Default for Append {
    fn default() -> Self {
        Append {
            ticket: 0,
            kind: MessageKind::Customer,
            new_participants: Vec::new(),
            transition: None,
            bounce: None,
            body: None,
            plan: None,
            first_response: false,
            support_update: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum TicketAction {
    None,
    Create(NewTicket),
    Append(Append),
}

/// Everything intake decided about one message.
#[derive(Debug, Clone, PartialEq)]
#[must_use]
pub struct Decision {
    pub disposition: Disposition,
    pub ticket: TicketAction,
    pub reason: String,
    pub notices: Vec<Notice>,
}

impl Decision {
    fn only(disposition: Disposition, reason: impl Into<String>) -> Decision {
        Decision {
            disposition,
            ticket: TicketAction::None,
            reason: reason.into(),
            notices: Vec::new(),
        }
    }
}

/// Decides what to do with one message read from `mailbox`.
pub fn decide(
    reading: &Reading,
    mailbox: &Mailbox,
    config: &Config,
    view: &impl DeskView,
    now: DateTime<Utc>,
) -> Decision {
    let mut decision = decide_inner(reading, mailbox, config, view, now);
    // Every automatic mail passes the per-recipient cap and the bounce stop.
    let notices = std::mem::take(&mut decision.notices);
    for notice in notices {
        let (admitted, skipped) = admit(notice, config, view, now);
        decision.notices.extend(admitted);
        for s in skipped {
            decision.reason.push_str("; ");
            decision.reason.push_str(&s);
        }
    }
    decision
}

fn decide_inner(
    reading: &Reading,
    mailbox: &Mailbox,
    config: &Config,
    view: &impl DeskView,
    now: DateTime<Utc>,
) -> Decision {
    let mail = match reading {
        Reading::Defective(defect) => {
            return Decision::only(Disposition::Quarantined, format!("malformed: {defect}"));
        }
        Reading::Oversize { size, headers } => {
            return decide_oversize(*size, headers.as_deref(), config, view, now);
        }
        Reading::Mail(mail, text) => (&**mail, &**text),
    };
    let (mail, text) = mail;

    // 2. The same message twice (e.g. sent to two monitored mailboxes).
    if let Some(id) = &mail.message_id
        && view.message_id_seen(id)
    {
        return Decision::only(
            Disposition::Ignored,
            format!("Message-ID <{id}> was already read"),
        );
    }

    // 3. Our own mail and loops.
    if config.is_own_address(&mail.from) {
        return Decision::only(
            Disposition::Ignored,
            format!("sent from our own address {}", mail.from),
        );
    }
    if let Some(own) = mail
        .signals
        .x_loop
        .iter()
        .find(|a| config.is_own_address(a))
    {
        return Decision::only(
            Disposition::Ignored,
            format!("mail loop: carries our X-Loop {own}"),
        );
    }

    // 4. Machine mail.
    let machine = machine_reason(mail, &config.intake.human_senders);

    // 5. Threading.
    let tags = &config.tags;
    if let Some((ticket, how)) = find_thread(mail, tags, view) {
        let ticket = follow_duplicates(ticket, view);
        if let Some(reason) = &machine {
            return Decision {
                disposition: Disposition::FollowUp,
                ticket: TicketAction::Append(Append {
                    ticket: ticket.id,
                    kind: MessageKind::Auto,
                    new_participants: Vec::new(),
                    transition: None,
                    bounce: mail.report.clone(),
                    ..Default::default()
                }),
                reason: format!(
                    "machine mail ({reason}) attached to ticket {} by {how}; no reply, no status change",
                    ticket.id
                ),
                notices: Vec::new(),
            };
        }
        return decide_follow_up(mail, text, ticket, &how, mailbox, config, view, now, tags);
    }

    if let Some(reason) = &machine {
        if mail.signals.report || mail.report.is_some() {
            return Decision::only(
                Disposition::Ignored,
                format!("machine mail ({reason}) about no mail of ours"),
            );
        }
        let mut decision = decide_new_ticket(mail, text, mailbox, config, view, None, tags, now);
        decision.notices.clear();
        decision.reason = format!(
            "machine mail ({reason}): ticket created without acknowledgement or notification"
        );
        return decision;
    }

    // 6. Duplicates (SPEC §5).
    if config.duplicates.enabled
        && let Some(decision) = decide_duplicate(mail, text, mailbox, config, view, now, tags)
    {
        return decision;
    }

    // 7. New ticket.
    decide_new_ticket(mail, text, mailbox, config, view, None, tags, now)
}

fn decide_oversize(
    size: usize,
    headers: Option<&InboundMail>,
    config: &Config,
    view: &impl DeskView,
    now: DateTime<Utc>,
) -> Decision {
    let limit = config.intake.max_message_size.0;
    let mut decision = Decision::only(
        Disposition::Rejected,
        format!("message of {size} bytes exceeds max_message_size ({limit} bytes)"),
    );
    if let Some(mail) = headers
        && machine_reason(mail, &config.intake.human_senders).is_none()
        && !config.is_own_address(&mail.from)
    {
        let to = mail.requester().to_string();
        if view.notice_sent(&to, "message_rejected", now - Duration::days(1)) {
            decision
                .reason
                .push_str("; message_rejected already sent to this sender today");
        } else {
            decision.notices.push(
                Notice::new(
                    "message_rejected",
                    vec![to],
                    About::Nothing,
                    AutoSubmitted::AutoReplied,
                )
                .with("size", size as u64)
                .with("max_size", human_size(limit))
                .with("original_subject", mail.subject.clone()),
            );
        }
    }
    decision
}

fn human_size(bytes: u64) -> String {
    if bytes >= 1024 * 1024 && bytes.is_multiple_of(1024 * 1024) {
        format!("{}MB", bytes / (1024 * 1024))
    } else if bytes >= 1024 && bytes.is_multiple_of(1024) {
        format!("{}KB", bytes / 1024)
    } else {
        format!("{bytes} bytes")
    }
}

/// Step 5: the first tag naming an existing ticket, else the right-most
/// In-Reply-To/References id we stored or sent.
fn find_thread(
    mail: &InboundMail,
    tags: &TagMatcher,
    view: &impl DeskView,
) -> Option<(TicketSnapshot, String)> {
    for n in tags.numbers(&mail.subject) {
        if let Some(t) = view.ticket(n) {
            return Some((t, format!("tag {}", tags.format(n))));
        }
    }
    let ids = mail
        .in_reply_to
        .iter()
        .rev()
        .chain(mail.references.iter().rev());
    let bounced = mail
        .report
        .as_ref()
        .and_then(|r| r.original_message_id.as_ref());
    for id in bounced.into_iter().chain(ids) {
        if let Some(n) = view.ticket_for_message_id(id)
            && let Some(t) = view.ticket(n)
        {
            return Some((t, format!("header reference <{id}>")));
        }
    }
    None
}

/// Mail to a cancelled duplicate goes to the ticket it duplicates.
fn follow_duplicates(mut ticket: TicketSnapshot, view: &impl DeskView) -> TicketSnapshot {
    for _ in 0..16 {
        match ticket
            .duplicate_of
            .filter(|_| ticket.status == Status::Cancelled)
            .and_then(|id| view.ticket(id))
        {
            Some(original) => ticket = original,
            None => break,
        }
    }
    ticket
}

fn is_participant(
    mail: &InboundMail,
    ticket: &TicketSnapshot,
    config: &Config,
    view: &impl DeskView,
) -> bool {
    let from = &mail.from;
    if config.agent(from).is_some()
        || view.is_participant(ticket.id, from)
        || normalize_address(&ticket.requester) == *from
    {
        return true;
    }
    match (config.customer_for(from), &ticket.customer) {
        (Some(c), Some(name)) => !c.domains.is_empty() && &c.name == name,
        _ => false,
    }
}

#[allow(clippy::too_many_arguments)]
fn decide_follow_up(
    mail: &InboundMail,
    text: &MailText,
    ticket: TicketSnapshot,
    how: &str,
    mailbox: &Mailbox,
    config: &Config,
    view: &impl DeskView,
    now: DateTime<Utc>,
    tags: &TagMatcher,
) -> Decision {
    if !is_participant(mail, &ticket, config, view) {
        let who = &mail.from;
        return match config.intake.foreign_replies {
            ForeignReplies::NewTicket => {
                let mut d = decide_new_ticket(mail, text, mailbox, config, view, None, tags, now);
                d.reason = format!(
                    "{who} is not a participant of ticket {} ({how}): new ticket (foreign_replies = new_ticket); {}",
                    ticket.id, d.reason
                );
                d
            }
            ForeignReplies::Note => Decision {
                disposition: Disposition::Note,
                ticket: TicketAction::Append(Append {
                    ticket: ticket.id,
                    kind: MessageKind::Note,
                    new_participants: Vec::new(),
                    transition: None,
                    bounce: None,
                    ..Default::default()
                }),
                reason: format!(
                    "{who} is not a participant of ticket {} ({how}): kept as an internal note (foreign_replies = note)",
                    ticket.id
                ),
                notices: Vec::new(),
            },
            ForeignReplies::Reject => Decision::only(
                Disposition::Rejected,
                format!(
                    "{who} is not a participant of ticket {} ({how}): rejected (foreign_replies = reject)",
                    ticket.id
                ),
            ),
        };
    }

    if let Some(agent) = config.agent(&mail.from) {
        return decide_agent_mail(mail, text, &ticket, how, agent, mailbox, config, view);
    }

    let by = mail.from.clone();
    let mut notices = Vec::new();
    let transition = match ticket.status {
        Status::Waiting => Some(Transition {
            from: Status::Waiting,
            to: Status::Open,
            event: "status",
            by: by.clone(),
            detail: None,
        }),
        Status::Resolved => Some(if is_validation(&mail.body, &config.validation.keywords) {
            Transition {
                from: Status::Resolved,
                to: Status::Closed,
                event: "validated",
                by: by.clone(),
                detail: None,
            }
        } else {
            Transition {
                from: Status::Resolved,
                to: Status::Open,
                event: "reopened",
                by: by.clone(),
                detail: ticket
                    .resolved_by
                    .as_ref()
                    .map(|r| format!("resolved by {r}")),
            }
        }),
        Status::Closed => {
            let window = match config.intake.reopen_window.0 {
                Span::Seconds(s) => Duration::seconds(s),
                Span::BusinessDays(d) => Duration::days(i64::from(d)),
            };
            let closed_at = ticket.closed_at.unwrap_or(ticket.created_at);
            if now - closed_at <= window {
                Some(Transition {
                    from: Status::Closed,
                    to: Status::Open,
                    event: "reopened",
                    by: by.clone(),
                    detail: Some("follow-up within the reopen window".into()),
                })
            } else {
                let mut d = decide_new_ticket(
                    mail,
                    text,
                    mailbox,
                    config,
                    view,
                    Some(ticket.id),
                    tags,
                    now,
                );
                d.reason = format!(
                    "ticket {} is closed since {} (past reopen_window): new ticket that continues it",
                    ticket.id,
                    closed_at.to_rfc3339()
                );
                return d;
            }
        }
        Status::New | Status::Open | Status::Cancelled => None,
    };
    if let Some(t) = &transition
        && t.event == "reopened"
    {
        notices.push(
            Notice::new(
                "reopened",
                vec![ticket.requester.clone()],
                About::Ticket(ticket.id),
                AutoSubmitted::AutoReplied,
            )
            .with("by", by.clone())
            .with("resolved_by", ticket.resolved_by.clone()),
        );
    }
    let agents = notify_agents(ticket.assignee.as_deref(), &ticket.queue, config);
    if !agents.is_empty() && ticket.status != Status::Cancelled {
        notices.push(Notice::new(
            "agent_follow_up",
            agents,
            About::Ticket(ticket.id),
            AutoSubmitted::AutoReplied,
        ));
    }
    let mut new_participants = Vec::new();
    for a in std::iter::once(&mail.from).chain(mail.cc.iter()) {
        if !config.is_own_address(a) && config.agent(a).is_none() && !new_participants.contains(a) {
            new_participants.push(a.clone());
        }
    }
    let change = transition
        .as_ref()
        .map(|t| format!("; {} → {}", t.from, t.to))
        .unwrap_or_default();
    Decision {
        disposition: Disposition::FollowUp,
        ticket: TicketAction::Append(Append {
            ticket: ticket.id,
            kind: MessageKind::Customer,
            new_participants,
            transition,
            bounce: None,
            // A reply's quoted history is the ticket's own past: keep the new text.
            body: Some(text.reply.clone()),
            ..Default::default()
        }),
        reason: format!("follow-up on ticket {} by {how}{change}", ticket.id),
        notices,
    }
}

/// An agent's mail onto a ticket (SPEC §6): commands at the top are parsed
/// and planned; the rest is relayed to the requester and participants from
/// the mailbox address, or kept as an internal note (`#note`, or mail to the
/// mailbox's `notes_address`). A relay with text carries the status change
/// it makes (a `resolved` relay is the solution mail), so the customer gets
/// one mail per change, not a reply plus a notice.
#[allow(clippy::too_many_arguments)]
fn decide_agent_mail(
    mail: &InboundMail,
    text: &MailText,
    ticket: &TicketSnapshot,
    how: &str,
    agent: &crate::config::Agent,
    mailbox: &Mailbox,
    config: &Config,
    view: &impl DeskView,
) -> Decision {
    let body = &text.reply;
    let parsed = agent_commands::parse(body);
    let to_notes = mailbox
        .notes_address
        .as_deref()
        .is_some_and(|n| mail.to.iter().chain(&mail.cc).any(|a| a == n));
    let is_note = parsed.is_note() || to_notes;
    let mut errors = parsed.errors.clone();
    let mut changes = Vec::new();
    let mut original = None;
    for (line, command) in &parsed.commands {
        let Some(change) = command.change(&agent.email) else {
            continue;
        };
        // Check what the workflow would refuse, so one bad line never blocks the rest.
        let problem = match &change {
            Change::Assign(who)
                if !config.agents.iter().any(|a| {
                    a.email == normalize_address(who) || a.name.eq_ignore_ascii_case(who.trim())
                }) =>
            {
                Some(format!("no agent with e-mail or name `{who}`"))
            }
            Change::DuplicateOf(n) if *n == ticket.id => {
                Some("a ticket cannot be a duplicate of itself".to_string())
            }
            Change::DuplicateOf(n) => match view.ticket(*n) {
                Some(o) => {
                    original = Some(o);
                    None
                }
                None => Some(format!("ticket {n} does not exist")),
            },
            _ => None,
        };
        match problem {
            Some(error) => errors.push(agent_commands::CommandError {
                line: *line,
                text: body.lines().nth(line - 1).unwrap_or("").trim().to_string(),
                error,
            }),
            None => changes.push(change),
        }
    }
    let relay_text = parsed.text.clone();
    let relay = !is_note && !relay_text.trim().is_empty() && original.is_none();
    // Answering moves a new ticket to open unless the agent set a status.
    if relay
        && ticket.status == Status::New
        && !changes.iter().any(|c| matches!(c, Change::Status(_)))
    {
        changes.push(Change::Status(Status::Open));
    }
    let mut plan = workflow::plan(ticket, &changes, &agent.email, original.as_ref(), config)
        .unwrap_or_default();
    let mut notices = Vec::new();
    if !errors.is_empty() {
        let list: Vec<serde_json::Value> = errors
            .iter()
            .map(|e| serde_json::json!({"line": e.line, "text": e.text, "error": e.error}))
            .collect();
        notices.push(
            Notice::new(
                "command_error",
                vec![agent.email.clone()],
                About::Ticket(ticket.id),
                AutoSubmitted::AutoReplied,
            )
            .with("errors", list)
            .with("accepted", agent_commands::accepted_forms()),
        );
    }
    if relay {
        let to_status = plan.transition.as_ref().map(|t| t.to);
        // The relay is the notification of the status change it makes.
        plan.notices.retain(|n| {
            !matches!(
                n.template,
                "status_changed" | "resolved" | "cancelled" | "reopened"
            )
        });
        let mut cc: Vec<String> = ticket
            .participants
            .iter()
            .filter(|p| {
                **p != ticket.requester && config.agent(p).is_none() && !config.is_own_address(p)
            })
            .cloned()
            .collect();
        cc.dedup();
        let template = match to_status {
            Some(Status::Resolved) => "resolved",
            Some(Status::Cancelled) => "cancelled",
            _ => "agent_reply",
        };
        let mut reply = Notice::new(template, vec![ticket.requester.clone()], About::Ticket(ticket.id), AutoSubmitted::No)
            .with("reply", serde_json::json!({"body": relay_text, "agent_name": agent.name, "agent_email": agent.email}))
            .with("solution", relay_text.clone())
            .with("reason", relay_text.clone())
            .with("keywords", config.validation.keywords.clone());
        reply.cc = cc;
        reply.answers_inbound = false;
        reply.thread_to = view.latest_customer_message_id(ticket.id);
        reply.with_attachments = true;
        notices.push(reply);
    } else if is_note {
        // A note never leaks into a customer mail as a solution or reason.
        for n in &mut plan.notices {
            n.extra.remove("solution");
            n.extra.remove("reason");
        }
    }
    notices.append(&mut plan.notices);
    let disposition = if is_note {
        Disposition::Note
    } else {
        Disposition::FollowUp
    };
    let mut reason = if is_note {
        format!(
            "internal note from agent {} on ticket {} by {how}",
            agent.email, ticket.id
        )
    } else if relay {
        format!(
            "reply from agent {} on ticket {} by {how}: relayed to the customer",
            agent.email, ticket.id
        )
    } else {
        format!(
            "commands from agent {} on ticket {} by {how}",
            agent.email, ticket.id
        )
    };
    if !parsed.commands.is_empty() {
        reason.push_str(&format!("; {} command(s)", parsed.commands.len()));
    }
    if !errors.is_empty() {
        reason.push_str(&format!(
            "; {} command error(s) reported to the agent",
            errors.len()
        ));
    }
    let transition = plan.transition.take();
    Decision {
        disposition,
        ticket: TicketAction::Append(Append {
            ticket: ticket.id,
            kind: if is_note || original.is_some() {
                MessageKind::Note
            } else {
                MessageKind::Agent
            },
            transition,
            body: Some(relay_text),
            plan: Some(Box::new(plan)),
            first_response: relay,
            support_update: true,
            ..Default::default()
        }),
        reason,
        notices,
    }
}

/// A new mail that repeats an active ticket of the same sender (or customer,
/// with `scope = "customer"`) within the window: the new ticket is created
/// `cancelled` with `duplicate_of` the oldest match, its text goes to that
/// ticket as a note, and the customer is told which ticket to follow.
fn decide_duplicate(
    mail: &InboundMail,
    text: &MailText,
    mailbox: &Mailbox,
    config: &Config,
    view: &impl DeskView,
    now: DateTime<Utc>,
    tags: &TagMatcher,
) -> Option<Decision> {
    let window = match config.duplicates.window.0 {
        Span::Seconds(s) => Duration::seconds(s),
        Span::BusinessDays(d) => Duration::days(i64::from(d)),
    };
    let requester = normalize_address(mail.requester());
    let customer = match config.duplicates.scope {
        crate::config::DuplicateScope::Customer => {
            config.customer_for(&mail.from).map(|c| c.name.as_str())
        }
        crate::config::DuplicateScope::Sender => None,
    };
    let fingerprint = &text.fingerprint;
    let candidates = view.duplicate_candidates(&requester, customer, now - window);
    let original_id = duplicates::find_original(fingerprint, &candidates)?;
    let original = view.ticket(original_id)?;
    let mut decision = decide_new_ticket(mail, text, mailbox, config, view, None, tags, now);
    let TicketAction::Create(ticket) = &mut decision.ticket else {
        return None;
    };
    if ticket.status != Status::New {
        return None;
    }
    ticket.status = Status::Cancelled;
    ticket.duplicate_of = Some(original_id);
    ticket.cancel_reason = Some(format!("duplicate of ticket {original_id}"));
    let same = if fingerprint.subject
        == candidates
            .iter()
            .find(|c| c.id == original_id)
            .map(|c| c.fingerprint.subject.clone())
            .unwrap_or_default()
    {
        "subject"
    } else {
        "text"
    };
    let who = customer.map_or_else(
        || format!("sender {requester}"),
        |c| format!("customer {c}"),
    );
    decision.disposition = Disposition::Duplicate;
    decision.reason = format!(
        "duplicate of ticket {original_id} (same {same}, {who}, within {}): cancelled, its text added to ticket {original_id} as a note",
        config.duplicates.window.0
    );
    decision.notices = vec![
        Notice::new(
            "duplicate_notice",
            vec![requester],
            About::NewTicket,
            AutoSubmitted::AutoReplied,
        )
        .with(
            "original",
            serde_json::json!({"id": original.id, "subject": original.subject}),
        ),
    ];
    Some(decision)
}

/// The first non-empty line is a validation keyword and nothing else.
pub fn is_validation(body: &str, keywords: &[String]) -> bool {
    let Some(first) = body.lines().map(str::trim).find(|l| !l.is_empty()) else {
        return false;
    };
    let line = fold(first.trim_end_matches(['.', '!', ',', ';']).trim());
    keywords.iter().any(|k| fold(k.trim()) == line)
}

/// Agents to notify: the assignee if set, else every agent of the queue.
pub fn notify_agents(assignee: Option<&str>, queue: &str, config: &Config) -> Vec<String> {
    match assignee {
        Some(a) => vec![a.to_string()],
        None => config
            .agents
            .iter()
            .filter(|a| a.serves(queue))
            .map(|a| a.email.clone())
            .collect(),
    }
}

#[allow(clippy::too_many_arguments)]
fn decide_new_ticket(
    mail: &InboundMail,
    text: &MailText,
    mailbox: &Mailbox,
    config: &Config,
    view: &impl DeskView,
    continues: Option<i64>,
    tags: &TagMatcher,
    now: DateTime<Utc>,
) -> Decision {
    let requester = normalize_address(mail.requester());
    let customer = config.customer_for(&mail.from);
    if customer.is_none() && config.intake.unknown_senders == UnknownSenders::Reject {
        return Decision {
            disposition: Disposition::Rejected,
            ticket: TicketAction::None,
            reason: format!(
                "{} matches no customer (unknown_senders = reject)",
                mail.from
            ),
            // Once per sender per day: a stranger's mail loop stays quiet.
            notices: if view.notice_sent(&requester, "unknown_sender", now - Duration::days(1)) {
                Vec::new()
            } else {
                vec![
                    Notice::new(
                        "unknown_sender",
                        vec![requester.clone()],
                        About::Nothing,
                        AutoSubmitted::AutoReplied,
                    )
                    .with("sender", mail.from.clone()),
                ]
            },
        };
    }

    let mut subject = tags.strip(&mail.subject);
    if subject.is_empty() {
        subject = "(sin asunto)".into();
    }
    let mut ticket = NewTicket {
        subject,
        status: Status::New,
        priority: Priority::Medium,
        ticket_type: None,
        categories: Vec::new(),
        queue: mailbox.queue.clone(),
        mailbox: mailbox.name.clone(),
        requester: requester.clone(),
        customer: customer.map(|c| c.name.clone()),
        assignee: None,
        participants: Vec::new(),
        kind: MessageKind::Customer,
        continues,
        duplicate_of: None,
        cancel_reason: None,
        fingerprint: text.fingerprint.clone(),
    };
    for a in [&requester, &mail.from].into_iter().chain(mail.cc.iter()) {
        if !config.is_own_address(a) && !ticket.participants.contains(a) {
            ticket.participants.push(a.clone());
        }
    }
    let mut applied = Vec::new();
    for rule in &config.rules {
        let hit = |p: &Option<crate::config::Pattern>, text: &str| {
            p.as_ref().is_none_or(|p| p.0.is_match(text))
        };
        if hit(&rule.subject, &mail.subject)
            && hit(&rule.body, &mail.body)
            && hit(&rule.from, &mail.from)
            && hit(&rule.mailbox, &mailbox.name)
        {
            let set = &rule.set;
            if let Some(p) = set.priority {
                ticket.priority = p;
            }
            if let Some(t) = set.ticket_type {
                ticket.ticket_type = Some(t);
            }
            for c in &set.categories {
                if !ticket.categories.contains(c) {
                    ticket.categories.push(c.clone());
                }
            }
            if let Some(q) = &set.queue {
                ticket.queue = q.clone();
            }
            if let Some(a) = &set.assignee {
                ticket.assignee = config
                    .agents
                    .iter()
                    .find(|ag| ag.email == normalize_address(a) || ag.name.eq_ignore_ascii_case(a))
                    .map(|ag| ag.email.clone());
            }
            applied.push(format!("rule at line {}", rule.line));
        }
    }

    let mut notices = Vec::new();
    let mut reason = match continues {
        Some(old) => format!("new ticket continuing closed ticket {old}"),
        None => "new ticket".to_string(),
    };
    if !applied.is_empty() {
        reason.push_str(&format!(" ({} applied)", applied.join(", ")));
    }
    if customer.is_some_and(|c| !c.active) {
        ticket.status = Status::Cancelled;
        ticket.cancel_reason = Some("contract_inactive".into());
        reason.push_str(&format!(
            "; customer {} has no active contract: cancelled",
            ticket.customer.as_deref().unwrap_or("")
        ));
        notices.push(Notice::new(
            "contract_inactive",
            vec![requester.clone()],
            About::NewTicket,
            AutoSubmitted::AutoReplied,
        ));
    } else {
        if suppresses_auto_reply(mail) {
            reason.push_str("; no acknowledgement: X-Auto-Response-Suppress");
        } else {
            notices.push(Notice::new(
                "ack",
                vec![requester.clone()],
                About::NewTicket,
                AutoSubmitted::AutoReplied,
            ));
        }
        let agents = notify_agents(ticket.assignee.as_deref(), &ticket.queue, config);
        if !agents.is_empty() {
            notices.push(Notice::new(
                "agent_new_ticket",
                agents,
                About::NewTicket,
                AutoSubmitted::AutoReplied,
            ));
        }
    }
    Decision {
        disposition: Disposition::NewTicket,
        ticket: TicketAction::Create(ticket),
        reason,
        notices,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mbox_postmark_is_not_part_of_the_message() {
        assert_eq!(
            strip_mbox_postmark(b"From ana@x Mon Nov 23 10:00:00 2026\nFrom: ana@x\n\nhi"),
            b"From: ana@x\n\nhi"
        );
        assert_eq!(
            strip_mbox_postmark(b"From: ana@x\n\nhi"),
            b"From: ana@x\n\nhi"
        );
        assert_eq!(
            strip_mbox_postmark(b"   \n\r\nFrom: ana@x\n\nhi"),
            b"From: ana@x\n\nhi"
        );
    }

    #[test]
    fn validation_keywords() {
        let k: Vec<String> = ["conforme", "ok"].map(String::from).to_vec();
        assert!(is_validation("\n  Conforme.\nGracias", &k));
        assert!(is_validation("CONFORME", &k));
        assert!(is_validation("ok", &k));
        assert!(!is_validation("No conforme", &k));
        assert!(!is_validation("Conforme pero falta algo", &k));
        assert!(!is_validation("", &k));
    }
}
