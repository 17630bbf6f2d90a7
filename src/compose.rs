//! Composition of outgoing mail (SPEC §8): a [`Notice`] from the core plus the
//! ticket as stored becomes a complete RFC 5322 message (built with lettre)
//! with every header the spec names: From with `from_name`, the tag in the
//! subject, `X-Postdesk-Ticket`, a Message-ID under the mailbox's domain,
//! In-Reply-To/References, `X-Loop`, `Auto-Submitted`,
//! `X-Auto-Response-Suppress` and Outlook's `Thread-Topic`/`Thread-Index`.
//!
//! Pure apart from the template engine: no store, no network.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use base64::Engine;
use chrono::{DateTime, Utc};
use lettre::message::Mailbox as Address;
use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::{Attachment, MultiPart, SinglePart};
use postdesk_core::body::marker;
use postdesk_core::config::{Config, Mailbox};
use postdesk_core::mail::InboundMail;
use postdesk_core::outgoing::{About, Notice};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::store::TicketRow;
use crate::templates::{TemplateError, Templates};

#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("`{0}` is not a deliverable address")]
    Address(String),
    #[error("cannot build the mail: {0}")]
    Build(String),
}

/// A mail ready for the outbox.
pub struct Composed {
    pub to: Vec<String>,
    pub subject: String,
    pub message_id: String,
    pub raw: Vec<u8>,
}

/// What a mail is about and answers.
pub struct Subject<'a> {
    pub ticket: Option<&'a TicketRow>,
    pub inbound: Option<&'a InboundMail>,
    /// The Message-ID of the ticket's first message, to thread mail that
    /// answers no particular inbound message.
    pub thread_root: Option<&'a str>,
}

static SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// The language a mail to `recipient` is written in: the customer's, else the desk's.
pub fn language_for(config: &Config, recipient: &str) -> &'static str {
    if config.agent(recipient).is_none()
        && let Some(lang) = config.customer_for(recipient).and_then(|c| c.language)
    {
        return lang.code();
    }
    config.desk.language.code()
}

pub fn compose(
    notice: &Notice,
    about: &Subject<'_>,
    mailbox: &Mailbox,
    config: &Config,
    templates: &Templates,
    now: DateTime<Utc>,
) -> Result<Composed, ComposeError> {
    let ticket = ticket_of(notice, about);
    let message_id = new_message_id(ticket.map(|t| t.id), mailbox, now);
    compose_as(notice, about, mailbox, config, templates, now, message_id)
}

/// The ticket a notice is about, if any (the same for its Message-ID and body).
fn ticket_of<'a>(notice: &Notice, about: &Subject<'a>) -> Option<&'a TicketRow> {
    match notice.about {
        About::Nothing => None,
        About::NewTicket | About::Ticket(_) => about.ticket,
    }
}

/// A fresh Message-ID (without angle brackets) for a mail about `ticket`,
/// unique within this process and across processes.
pub fn new_message_id(ticket: Option<i64>, mailbox: &Mailbox, now: DateTime<Utc>) -> String {
    let sequence = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    format!(
        "pd.{}.{}.{}.{}@{}",
        ticket.unwrap_or(0),
        now.timestamp(),
        std::process::id(),
        sequence,
        mailbox.domain()
    )
}

/// [`compose`] with a Message-ID chosen beforehand (by [`new_message_id`]),
/// so the outbox row can be written before the mail is composed.
pub fn compose_as(
    notice: &Notice,
    about: &Subject<'_>,
    mailbox: &Mailbox,
    config: &Config,
    templates: &Templates,
    now: DateTime<Utc>,
    message_id: String,
) -> Result<Composed, ComposeError> {
    let lang = notice
        .to
        .first()
        .map_or(config.desk.language.code(), |r| language_for(config, r));
    let tags = &config.tags;
    let ticket = ticket_of(notice, about);
    let mut context = json!({
        "desk": { "name": config.desk.name, "tag": config.desk.tag },
        "marker": marker(lang),
        "lang": lang,
        "mailbox": { "name": mailbox.name, "address": mailbox.address, "notes_address": mailbox.notes_address },
        "ticket": ticket.map(crate::json::ticket),
        "tag": ticket.map(|t| tags.format(t.id)),
        "message": about.inbound.map(|m| json!({
            "from": m.from, "from_name": m.from_name, "subject": m.subject, "body": m.body,
            "date": crate::json::time(m.date.map(|d| d.timestamp())),
            "attachments": m.attachments.iter().map(|a| json!({"filename": a.filename, "size": a.data.len()})).collect::<Vec<_>>(),
        })),
    });
    if let Value::Object(map) = &mut context {
        for (k, v) in &notice.extra {
            map.insert(k.clone(), v.clone());
        }
    }
    let rendered = templates.render(lang, notice.template, &context)?;
    let subject = match ticket {
        Some(t) => format!("{} {}", rendered.subject, tags.format(t.id))
            .trim()
            .to_string(),
        None => rendered.subject,
    };

    let from_address = mailbox
        .address
        .parse()
        .map_err(|_| ComposeError::Address(mailbox.address.clone()))?;
    let from = Address::new(config.smtp.from_name.clone(), from_address);
    let mut builder = lettre::Message::builder()
        .from(from.clone())
        .reply_to(from)
        .subject(subject.clone())
        .message_id(Some(format!("<{message_id}>")))
        .date(SystemTime::from(now))
        .header(ContentType::TEXT_PLAIN);
    for to in &notice.to {
        let address = to.parse().map_err(|_| ComposeError::Address(to.clone()))?;
        builder = builder.to(Address::new(None, address));
    }
    for cc in &notice.cc {
        let address = cc.parse().map_err(|_| ComposeError::Address(cc.clone()))?;
        builder = builder.cc(Address::new(None, address));
    }

    // Threading: answer the inbound mail that caused this one, else the ticket's first message.
    let answered = if notice.answers_inbound {
        about.inbound.and_then(|m| m.message_id.as_deref())
    } else {
        None
    };
    let mut references: Vec<String> = Vec::new();
    if let Some(m) = about.inbound.filter(|_| answered.is_some()) {
        references.extend(m.references.iter().rev().take(9).rev().cloned());
    } else if let Some(root) = about.thread_root {
        references.push(root.to_string());
    }
    // A relay answers the customer's latest message (`thread_to`).
    let fallback = if about.inbound.is_none() {
        about.thread_root
    } else {
        None
    };
    if let Some(id) = answered.or(notice.thread_to.as_deref()).or(fallback) {
        builder = builder.in_reply_to(format!("<{id}>"));
        if !references.iter().any(|r| r == id) {
            references.push(id.to_string());
        }
    }
    if !references.is_empty() {
        let joined = references
            .iter()
            .map(|r| format!("<{r}>"))
            .collect::<Vec<_>>()
            .join(" ");
        builder = builder.references(joined);
    }

    let header = |name: &str, value: String| -> Result<HeaderValue, ComposeError> {
        let name = HeaderName::new_from_ascii(name.to_string())
            .map_err(|e| ComposeError::Build(e.to_string()))?;
        Ok(HeaderValue::new(name, value))
    };
    builder = builder.raw_header(header("X-Loop", mailbox.address.clone())?);
    builder = builder.raw_header(header("X-Auto-Response-Suppress", "All".into())?);
    if let Some(value) = notice.auto.header_value() {
        builder = builder.raw_header(header("Auto-Submitted", value.into())?);
    }
    if let Some(t) = ticket {
        builder = builder.raw_header(header("X-Postdesk-Ticket", t.id.to_string())?);
        builder = builder.raw_header(header("Thread-Topic", t.subject.clone())?);
        builder = builder.raw_header(header("Thread-Index", thread_index(t, mailbox))?);
    }
    let attachments = match about.inbound {
        Some(m) if notice.with_attachments => m.attachments.as_slice(),
        _ => &[],
    };
    let message = if attachments.is_empty() {
        builder.body(rendered.body)
    } else {
        let mut parts = MultiPart::mixed().singlepart(SinglePart::plain(rendered.body));
        for a in attachments {
            let content_type = ContentType::parse(&a.content_type).unwrap_or(
                ContentType::parse("application/octet-stream")
                    .map_err(|e| ComposeError::Build(e.to_string()))?,
            );
            parts = parts.singlepart(
                Attachment::new(crate::intake::safe_filename(&a.filename))
                    .body(a.data.clone(), content_type),
            );
        }
        builder.multipart(parts)
    }
    .map_err(|e| ComposeError::Build(e.to_string()))?;
    // Envelope recipients: everyone in To and Cc.
    let mut recipients = notice.to.clone();
    recipients.extend(notice.cc.iter().cloned());
    Ok(Composed {
        to: recipients,
        subject,
        message_id,
        raw: message.formatted(),
    })
}

/// Outlook's conversation index: 6 bytes of the ticket's creation FILETIME
/// and a 16-byte GUID fixed per ticket, so every mail of a ticket shares it.
fn thread_index(ticket: &TicketRow, mailbox: &Mailbox) -> String {
    let filetime = (ticket.created_at.max(0) as u64 + 11_644_473_600) * 10_000_000;
    let mut bytes = filetime.to_be_bytes()[..6].to_vec();
    let guid = Sha256::digest(format!(
        "postdesk-ticket:{}@{}",
        ticket.id,
        mailbox.domain()
    ));
    bytes.extend_from_slice(&guid[..16]);
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests;
