//! `postdesk ticket list|show|update`: the admin's view of tickets and the
//! admin's way to do what agents do by mail, with the same effects (events,
//! customer notifications) through the core's workflow plan.

use std::path::Path;

use clap::Subcommand;
use postdesk_core::outgoing::admit;
use postdesk_core::ticket::{Priority, Status, TicketType};
use postdesk_core::view::DeskView;
use postdesk_core::workflow::{self, Change};

use super::{load_desk, open_store, print_json, print_table};
use crate::Failure;
use crate::clock::Clock;
use crate::intake::{apply_plan, queue_notices};
use crate::json;
use crate::store::{EventRow, MessageRow, TicketFilter, to_time};

fn parse_status(s: &str) -> Result<Status, String> {
    Status::parse(s).ok_or_else(|| format!("`{s}` is not a status ({})", Status::accepted()))
}
fn parse_priority(s: &str) -> Result<Priority, String> {
    Priority::parse(s).ok_or_else(|| format!("`{s}` is not a priority ({})", Priority::accepted()))
}
fn parse_type(s: &str) -> Result<TicketType, String> {
    TicketType::parse(s).ok_or_else(|| format!("`{s}` is not a type ({})", TicketType::accepted()))
}

#[derive(Subcommand)]
pub enum TicketCommand {
    /// List tickets.
    List {
        /// Only these statuses (repeatable).
        #[arg(long = "status", value_parser = parse_status)]
        statuses: Vec<Status>,
        #[arg(long)]
        queue: Option<String>,
        #[arg(long)]
        customer: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Show one ticket with its messages and events.
    Show {
        id: i64,
        #[arg(long)]
        json: bool,
    },
    /// Change a ticket as an agent would by mail.
    Update {
        id: i64,
        #[arg(long, value_parser = parse_status)]
        status: Option<Status>,
        #[arg(long, value_parser = parse_priority)]
        priority: Option<Priority>,
        #[arg(long = "type", value_parser = parse_type)]
        ticket_type: Option<TicketType>,
        /// Agent e-mail or name.
        #[arg(long)]
        assign: Option<String>,
        /// Internal note (also the solution text when resolving).
        #[arg(long)]
        note: Option<String>,
        #[arg(long)]
        duplicate_of: Option<i64>,
    },
}

pub fn ticket(config: &Path, clock: Clock, command: TicketCommand) -> Result<u8, Failure> {
    let desk = load_desk(config)?;
    let mut store = open_store(&desk)?;
    match command {
        TicketCommand::List {
            statuses,
            queue,
            customer,
            json,
        } => {
            let filter = TicketFilter {
                statuses: statuses.iter().map(|s| s.code().to_string()).collect(),
                queue,
                customer,
            };
            let mut tickets = store.list_tickets(&filter)?;
            // The SLA state is always the state now, not when last written.
            let now = clock.now();
            for t in &mut tickets {
                t.sla_state = crate::intake::sla_state(&desk.config, t, now).code().into();
            }
            if json {
                print_json(&tickets.iter().map(json::ticket).collect())?;
            } else {
                let rows: Vec<Vec<String>> = tickets
                    .iter()
                    .map(|t| {
                        vec![
                            t.id.to_string(),
                            t.status.clone(),
                            t.priority.clone(),
                            t.queue.clone(),
                            t.requester.clone(),
                            t.assignee.clone().unwrap_or_else(|| "-".into()),
                            to_time(t.created_at).format("%Y-%m-%d %H:%M").to_string(),
                            t.subject.clone(),
                        ]
                    })
                    .collect();
                print_table(
                    &[
                        "ID",
                        "STATUS",
                        "PRIORITY",
                        "QUEUE",
                        "REQUESTER",
                        "ASSIGNEE",
                        "CREATED",
                        "SUBJECT",
                    ],
                    &rows,
                );
            }
            Ok(0)
        }
        TicketCommand::Show { id, json } => {
            let Some(mut t) = store.ticket(id)? else {
                return Err(Failure {
                    code: 1,
                    error: anyhow::anyhow!("ticket {id} does not exist"),
                });
            };
            t.sla_state = crate::intake::sla_state(&desk.config, &t, clock.now())
                .code()
                .into();
            let messages = store.messages(id)?;
            let events = store.events(id)?;
            if json {
                print_json(&json::ticket_detail(&t, &messages, &events))?;
            } else {
                print_ticket(&t, &messages, &events);
            }
            Ok(0)
        }
        TicketCommand::Update {
            id,
            status,
            priority,
            ticket_type,
            assign,
            note,
            duplicate_of,
        } => {
            let mut changes = Vec::new();
            changes.extend(priority.map(Change::Priority));
            changes.extend(ticket_type.map(Change::Type));
            changes.extend(assign.map(Change::Assign));
            changes.extend(note.map(Change::Note));
            changes.extend(duplicate_of.map(Change::DuplicateOf));
            changes.extend(status.map(Change::Status));
            update(&mut store, &desk, clock, id, &changes)
        }
    }
}

fn update(
    store: &mut crate::store::Store,
    desk: &crate::desk::Desk,
    clock: Clock,
    id: i64,
    changes: &[Change],
) -> Result<u8, Failure> {
    let now = clock.now();
    let at = now.timestamp();
    let by = "admin (postdesk ticket update)";
    let tx = store.begin()?;
    let view = tx.view();
    let Some(snapshot) = view.ticket(id) else {
        return Err(Failure {
            code: 1,
            error: anyhow::anyhow!("ticket {id} does not exist"),
        });
    };
    let original = changes.iter().find_map(|c| match c {
        Change::DuplicateOf(o) => view.ticket(*o),
        _ => None,
    });
    let plan =
        workflow::plan(&snapshot, changes, by, original.as_ref(), &desk.config).map_err(|e| {
            Failure {
                code: 1,
                error: e.into(),
            }
        })?;
    let mut notices = Vec::new();
    for n in plan.notices.clone() {
        let (admitted, _) = admit(n, &desk.config, &view, now);
        notices.extend(admitted);
    }
    if let Some(failure) = view.into_failure() {
        return Err(failure.into());
    }
    let Some(mut row) = tx.ticket(id)? else {
        return Err(Failure {
            code: 1,
            error: anyhow::anyhow!("ticket {id} does not exist"),
        });
    };
    let before = row.status.clone();
    apply_plan(&tx, &mut row, &plan, by, at)?;
    crate::intake::settle_sla(&desk.config, &mut row, Some(&before), at);
    row.updated_at = at;
    tx.update_ticket(&row)?;
    let mailbox = desk
        .config
        .mailbox(&row.mailbox)
        .or(desk.config.mailboxes.first())
        .ok_or_else(|| anyhow::anyhow!("no mailbox configured"))?;
    let skipped = queue_notices(&tx, desk, mailbox, Some(id), None, &notices, now)?;
    tx.commit()?;
    for s in skipped {
        eprintln!("postdesk: {s}");
    }
    println!("ticket {id} updated");
    Ok(0)
}

fn print_ticket(t: &crate::store::TicketRow, messages: &[MessageRow], events: &[EventRow]) {
    let when = |s: Option<i64>| {
        s.map(|s| to_time(s).format("%Y-%m-%d %H:%M:%S UTC").to_string())
            .unwrap_or_else(|| "-".into())
    };
    println!("Ticket {}: {}", t.id, t.subject);
    let fields = [
        ("status", t.status.clone()),
        ("priority", t.priority.clone()),
        ("type", t.ticket_type.clone().unwrap_or_else(|| "-".into())),
        ("queue", t.queue.clone()),
        ("requester", t.requester.clone()),
        ("customer", t.customer.clone().unwrap_or_else(|| "-".into())),
        ("assignee", t.assignee.clone().unwrap_or_else(|| "-".into())),
        ("participants", t.participants.join(", ")),
        (
            "categories",
            if t.categories.is_empty() {
                "-".into()
            } else {
                t.categories.join(", ")
            },
        ),
        ("created", when(Some(t.created_at))),
        ("updated", when(Some(t.updated_at))),
        (
            "duplicate of",
            t.duplicate_of
                .map(|d| d.to_string())
                .unwrap_or_else(|| "-".into()),
        ),
    ];
    for (k, v) in fields {
        println!("  {k:<13} {v}");
    }
    println!();
    for m in messages {
        println!(
            "--- message {} [{}] from {} at {}",
            m.id,
            m.kind,
            m.from,
            when(Some(m.received_at))
        );
        println!("{}", m.body.trim_end());
        for a in &m.attachments {
            println!(
                "  [attachment] {} ({}, {} bytes, sha256 {})",
                a.filename,
                a.content_type,
                a.size,
                &a.sha256[..12.min(a.sha256.len())]
            );
        }
    }
    println!();
    println!("Events:");
    for e in events {
        let change = match (&e.from, &e.to) {
            (Some(f), Some(t)) => format!("{f} -> {t}"),
            (None, Some(t)) => t.clone(),
            _ => String::new(),
        };
        println!(
            "  {}  {:<12} {:<24} {}{}",
            when(Some(e.at)),
            e.kind,
            change,
            e.by.clone().unwrap_or_default(),
            e.detail
                .as_ref()
                .map(|d| format!(" ({d})"))
                .unwrap_or_default()
        );
    }
}
