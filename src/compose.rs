//! Composition of outgoing mail (SPEC §8): a [`Notice`] from the core plus the
//! ticket as stored becomes a complete RFC 5322 message (built with lettre)
//! with every header the spec names: From with `from_name`, the tag in the
//! subject, `X-Postdesk-Ticket`, a Message-ID under the mailbox's domain,
//! In-Reply-To/References, `X-Loop`, `Auto-Submitted`,
//! `X-Auto-Response-Suppress` and Outlook's `Thread-Topic`/`Thread-Index`.
//!
//! Pure apart from the template engine: no store, no network.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use base64::Engine;
use chrono::{DateTime, Utc};
use lettre::Address;
use lettre::address::Envelope;
use lettre::message::header::{self, ContentType, Header, HeaderName, HeaderValue};
use lettre::message::{Attachment, Mailbox as Sender, Mailboxes, MultiPart, SinglePart};
use minijinja::value::Serde;
use minijinja::{Value, context};
use postdesk_core::body::marker;
use postdesk_core::config::{Config, Mailbox};
use postdesk_core::mail::InboundMail;
use postdesk_core::outgoing::{About, Notice};
use sha2::{Digest, Sha256};

use crate::json::{TicketView, rfc3339};
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
    /// The ticket of the mail that causes the notice (whether a notice is
    /// about it is the notice's `about`).
    pub ticket: Option<&'a TicketRow>,
    pub inbound: Option<&'a InboundMail>,
    /// The Message-ID of the ticket's first message, to thread mail that
    /// answers no particular inbound message.
    pub thread_root: Option<&'a str>,
    /// The template objects made of the above, for every mail composed
    /// about the same ticket and inbound mail.
    pub shared: &'a Shared,
}

/// What every mail one inbound mail (or one ticket event) causes has in
/// common — the template's `desk`, `mailbox`, `ticket`, `tag` and `message`
/// objects and the headers that do not change — built by the first of them
/// and shared by the rest (an ack and an agent notification, typically).
/// Cloning a template value only counts a reference. One per ticket and
/// mail: handed with others, it is not used (but rebuilt for each mail).
#[derive(Default)]
pub struct Shared(OnceLock<Objects>);

struct Objects {
    /// What they were built from (addresses), so that a [`Shared`] handed
    /// with another ticket or mail is not used for it.
    made_of: [usize; 4],
    desk: Value,
    mailbox: Value,
    ticket: Value,
    tag: Value,
    message: Value,
    /// The mailbox's address and the From and Reply-To headers made of it
    /// (`None`: it is not an address).
    sender: Option<(Address, HeaderValue, HeaderValue)>,
    x_loop: HeaderValue,
    /// X-Postdesk-Ticket, Thread-Topic and Thread-Index, for mail about the ticket.
    ticket_headers: Vec<HeaderValue>,
}

impl Objects {
    fn new(about: &Subject<'_>, mailbox: &Mailbox, config: &Config) -> Objects {
        // Keys in alphabetical order, as the JSON objects they once were.
        let message = about.inbound.map(|m| {
            let attachments: Vec<Value> = m
                .attachments
                .iter()
                .map(|a| {
                    context! { filename => a.filename.as_str(), size => a.data.len() as u64 }
                })
                .collect();
            context! {
                attachments => attachments,
                body => m.body.as_str(),
                date => m.date.map(|d| rfc3339(d.timestamp())),
                from => m.from.as_str(),
                from_name => m.from_name.as_deref(),
                subject => m.subject.as_str(),
            }
        });
        Objects {
            made_of: made_of(about, mailbox, config),
            desk: context! { name => config.desk.name.as_str(), tag => config.desk.tag.as_str() },
            mailbox: context! {
                address => mailbox.address.as_str(),
                name => mailbox.name.as_str(),
                notes_address => mailbox.notes_address.as_deref(),
            },
            ticket: about
                .ticket
                .map_or(Value::from(()), |t| Value::from(Serde(TicketView::from(t)))),
            tag: about
                .ticket
                .map_or(Value::from(()), |t| Value::from(config.tags.format(t.id))),
            message: Value::from(message),
            sender: mailbox.address.parse().ok().map(|address: Address| {
                let from =
                    Mailboxes::from(Sender::new(config.smtp.from_name.clone(), address.clone()));
                (
                    address,
                    header::From::from(from.clone()).display(),
                    header::ReplyTo::from(from).display(),
                )
            }),
            x_loop: HeaderValue::new(X_LOOP, mailbox.address.clone()),
            ticket_headers: about.ticket.map_or_else(Vec::new, |t| {
                vec![
                    HeaderValue::new(X_POSTDESK_TICKET, t.id.to_string()),
                    HeaderValue::new(THREAD_TOPIC, t.subject.clone()),
                    HeaderValue::new(THREAD_INDEX, thread_index(t, mailbox)),
                ]
            }),
        }
    }
}

fn made_of(about: &Subject<'_>, mailbox: &Mailbox, config: &Config) -> [usize; 4] {
    [
        about.ticket.map_or(0, |t| std::ptr::from_ref(t) as usize),
        about.inbound.map_or(0, |m| std::ptr::from_ref(m) as usize),
        std::ptr::from_ref(mailbox) as usize,
        std::ptr::from_ref(config) as usize,
    ]
}

impl Shared {
    /// The objects for `about`: the shared ones when they were made of the
    /// same ticket, mail, mailbox and config, else new ones.
    fn objects<'s>(
        &'s self,
        about: &Subject<'_>,
        mailbox: &Mailbox,
        config: &Config,
        own: &'s mut Option<Objects>,
    ) -> &'s Objects {
        let shared = self.0.get_or_init(|| Objects::new(about, mailbox, config));
        if shared.made_of == made_of(about, mailbox, config) {
            shared
        } else {
            own.insert(Objects::new(about, mailbox, config))
        }
    }
}

static SEQUENCE: AtomicU64 = AtomicU64::new(0);

const X_LOOP: HeaderName = HeaderName::new_from_ascii_str("X-Loop");
const X_AUTO_RESPONSE_SUPPRESS: HeaderName =
    HeaderName::new_from_ascii_str("X-Auto-Response-Suppress");
const AUTO_SUBMITTED: HeaderName = HeaderName::new_from_ascii_str("Auto-Submitted");
const X_POSTDESK_TICKET: HeaderName = HeaderName::new_from_ascii_str("X-Postdesk-Ticket");
const THREAD_TOPIC: HeaderName = HeaderName::new_from_ascii_str("Thread-Topic");
const THREAD_INDEX: HeaderName = HeaderName::new_from_ascii_str("Thread-Index");

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
    // getpid is a system call each time; postdesk never forks.
    static PID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    let sequence = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    format!(
        "pd.{}.{}.{}.{}@{}",
        ticket.unwrap_or(0),
        now.timestamp(),
        PID.get_or_init(std::process::id),
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
    let ticket = ticket_of(notice, about);
    let mut own = None;
    let objects = about.shared.objects(about, mailbox, config, &mut own);
    let none = || Value::from(());
    // The map minijinja itself makes of a serialized map (keys sorted), with
    // `notice.extra` on top.
    let mut context: BTreeMap<Value, Value> = BTreeMap::new();
    for (key, value) in [
        ("desk", objects.desk.clone()),
        ("marker", Value::from(marker(lang))),
        ("lang", Value::from(lang)),
        ("mailbox", objects.mailbox.clone()),
        (
            "ticket",
            ticket.map_or_else(none, |_| objects.ticket.clone()),
        ),
        ("tag", ticket.map_or_else(none, |_| objects.tag.clone())),
        ("message", objects.message.clone()),
    ] {
        context.insert(Value::from(key), value);
    }
    for (key, value) in &notice.extra {
        context.insert(Value::from(key.as_str()), Value::from(Serde(value)));
    }
    let rendered = templates.render(lang, notice.template, Value::from(context))?;
    let subject = match ticket {
        Some(t) => format!("{} {}", rendered.subject, config.tags.format(t.id))
            .trim()
            .to_string(),
        None => rendered.subject,
    };

    let (from_address, from, reply_to) = objects
        .sender
        .clone()
        .ok_or_else(|| ComposeError::Address(mailbox.address.clone()))?;
    let parse = |address: &String| {
        address
            .parse::<Address>()
            .map_err(|_| ComposeError::Address(address.clone()))
    };
    let to = notice.to.iter().map(parse).collect::<Result<Vec<_>, _>>()?;
    let cc = notice.cc.iter().map(parse).collect::<Result<Vec<_>, _>>()?;
    let mailboxes = |addresses: &[Address]| -> Mailboxes {
        addresses
            .iter()
            .map(|a| Sender::new(None, a.clone()))
            .collect()
    };
    let attachments = match about.inbound {
        Some(m) if notice.with_attachments => m.attachments.as_slice(),
        _ => &[],
    };
    // From and Reply-To as `.from()` and `.reply_to()` set them.
    let mut builder = lettre::Message::builder()
        .raw_header(from)
        .raw_header(reply_to)
        .subject(subject.clone())
        .message_id(Some(format!("<{message_id}>")))
        .date(SystemTime::from(now));
    // A mail with attachments is multipart/mixed; lettre sets that itself.
    if attachments.is_empty() {
        builder = builder.header(ContentType::TEXT_PLAIN);
    }
    if !to.is_empty() {
        builder = builder.mailbox(header::To::from(mailboxes(&to)));
    }
    if !cc.is_empty() {
        builder = builder.mailbox(header::Cc::from(mailboxes(&cc)));
    }
    // Given, so that lettre need not read it back from the headers.
    let envelope = Envelope::new(Some(from_address), [to, cc].concat())
        .map_err(|e| ComposeError::Build(e.to_string()))?;
    builder = builder.envelope(envelope);

    // Threading: answer the inbound mail that caused this one, else the ticket's first message.
    let answered = if notice.answers_inbound {
        about.inbound.and_then(|m| m.message_id.as_deref())
    } else {
        None
    };
    let mut references: Vec<&str> = Vec::new();
    if let Some(m) = about.inbound.filter(|_| answered.is_some()) {
        let skip = m.references.len().saturating_sub(9);
        references.extend(m.references[skip..].iter().map(String::as_str));
    } else if let Some(root) = about.thread_root {
        references.push(root);
    }
    // A relay answers the customer's latest message (`thread_to`).
    let fallback = if about.inbound.is_none() {
        about.thread_root
    } else {
        None
    };
    if let Some(id) = answered.or(notice.thread_to.as_deref()).or(fallback) {
        builder = builder.in_reply_to(format!("<{id}>"));
        if !references.contains(&id) {
            references.push(id);
        }
    }
    if !references.is_empty() {
        let mut joined = String::new();
        for r in &references {
            if !joined.is_empty() {
                joined.push(' ');
            }
            joined.push('<');
            joined.push_str(r);
            joined.push('>');
        }
        builder = builder.references(joined);
    }

    builder = builder.raw_header(objects.x_loop.clone());
    builder = builder.raw_header(HeaderValue::new(X_AUTO_RESPONSE_SUPPRESS, "All".into()));
    if let Some(value) = notice.auto.header_value() {
        builder = builder.raw_header(HeaderValue::new(AUTO_SUBMITTED, value.into()));
    }
    if ticket.is_some() {
        for value in &objects.ticket_headers {
            builder = builder.raw_header(value.clone());
        }
    }
    let message = if attachments.is_empty() {
        builder.body(rendered.body)
    } else {
        let mut parts = MultiPart::mixed().singlepart(SinglePart::plain(rendered.body));
        for a in attachments {
            let content_type = match ContentType::parse(&a.content_type) {
                Ok(content_type) => content_type,
                Err(_) => ContentType::parse("application/octet-stream")
                    .map_err(|e| ComposeError::Build(e.to_string()))?,
            };
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
    let guid = Sha256::new()
        .chain_update("postdesk-ticket:")
        .chain_update(ticket.id.to_string())
        .chain_update("@")
        .chain_update(mailbox.domain())
        .finalize();
    let mut bytes = [0u8; 22];
    bytes[..6].copy_from_slice(&filetime.to_be_bytes()[..6]);
    bytes[6..].copy_from_slice(&guid[..16]);
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests;
