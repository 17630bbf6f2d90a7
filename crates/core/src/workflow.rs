//! Changes the desk makes to a ticket (status, priority, type, assignee,
//! notes, duplicates) and what each one causes: the events to record and the
//! customer notifications of SPEC §6 (`status_changed`, `resolved`,
//! `reopened`, `cancelled`, `assigned`, `duplicate_notice`). Used by the CLI's
//! `ticket update` and by agents' mail commands alike, so both have the same
//! effects.
//!
//! Plans only; the shell writes the plan in one transaction.

use crate::config::Config;
use crate::intake::Transition;
use crate::outgoing::{About, AutoSubmitted, Notice};
use crate::text::normalize_address;
use crate::ticket::{Priority, Status, TicketType};
use crate::view::TicketSnapshot;

/// One change asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Status(Status),
    Priority(Priority),
    Type(TicketType),
    /// An agent's e-mail or name.
    Assign(String),
    Note(String),
    DuplicateOf(i64),
    Category(String),
}

/// A field change with its event (`priority`, `type`, `assign`, `duplicate`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldEvent {
    pub kind: &'static str,
    pub from: Option<String>,
    pub to: Option<String>,
}

/// Everything a set of changes does.
#[derive(Debug, Clone, Default, PartialEq)]
#[must_use]
pub struct Plan {
    pub transition: Option<Transition>,
    pub fields: Vec<FieldEvent>,
    pub priority: Option<Priority>,
    pub ticket_type: Option<TicketType>,
    pub assignee: Option<String>,
    pub duplicate_of: Option<i64>,
    pub categories_added: Vec<String>,
    pub note: Option<String>,
    pub notices: Vec<Notice>,
}

/// Why a change cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChangeError {
    #[error("no agent with e-mail or name `{0}`")]
    UnknownAgent(String),
    #[error("ticket {0} does not exist")]
    UnknownTicket(i64),
    #[error("a ticket cannot be a duplicate of itself")]
    SelfDuplicate,
}

/// Plans `changes` on `ticket`, made by `by`. `original` is the ticket named by
/// a `DuplicateOf` change, looked up by the caller.
pub fn plan(
    ticket: &TicketSnapshot,
    changes: &[Change],
    by: &str,
    original: Option<&TicketSnapshot>,
    config: &Config,
) -> Result<Plan, ChangeError> {
    let mut plan = Plan::default();
    let requester = vec![ticket.requester.clone()];
    let about = About::Ticket(ticket.id);
    let mut status = ticket.status;
    for change in changes {
        match change {
            Change::Status(to) if *to != status => {
                let event = if matches!(status, Status::Resolved | Status::Closed) && to.is_active()
                {
                    "reopened"
                } else {
                    "status"
                };
                plan.transition = Some(Transition {
                    from: plan.transition.as_ref().map_or(status, |t| t.from),
                    to: *to,
                    event,
                    by: by.to_string(),
                    detail: (event == "reopened")
                        .then(|| {
                            ticket
                                .resolved_by
                                .as_ref()
                                .map(|r| format!("resolved by {r}"))
                        })
                        .flatten(),
                });
                status = *to;
            }
            Change::Status(_) => {}
            Change::Priority(p) if *p != ticket.priority => {
                plan.fields.push(FieldEvent {
                    kind: "priority",
                    from: Some(ticket.priority.code().into()),
                    to: Some(p.code().into()),
                });
                plan.priority = Some(*p);
            }
            Change::Type(t) if Some(*t) != ticket.ticket_type => {
                plan.fields.push(FieldEvent {
                    kind: "type",
                    from: ticket.ticket_type.map(|t| t.code().into()),
                    to: Some(t.code().into()),
                });
                plan.ticket_type = Some(*t);
            }
            Change::Priority(_) | Change::Type(_) => {}
            Change::Assign(who) => {
                let agent = config
                    .agents
                    .iter()
                    .find(|a| {
                        a.email == normalize_address(who) || a.name.eq_ignore_ascii_case(who.trim())
                    })
                    .ok_or_else(|| ChangeError::UnknownAgent(who.clone()))?;
                if ticket.assignee.as_deref() != Some(agent.email.as_str()) {
                    plan.fields.push(FieldEvent {
                        kind: "assign",
                        from: ticket.assignee.clone(),
                        to: Some(agent.email.clone()),
                    });
                    plan.assignee = Some(agent.email.clone());
                    plan.notices.push(
                        Notice::new(
                            "assigned",
                            requester.clone(),
                            about,
                            AutoSubmitted::AutoGenerated,
                        )
                        .with(
                            "agent",
                            serde_json::json!({"name": agent.name, "email": agent.email}),
                        ),
                    );
                }
            }
            Change::Note(text) => plan.note = Some(text.clone()),
            Change::Category(name) => {
                let name = name.trim().to_string();
                if !ticket.categories.contains(&name) && !plan.categories_added.contains(&name) {
                    plan.fields.push(FieldEvent {
                        kind: "category",
                        from: None,
                        to: Some(name.clone()),
                    });
                    plan.categories_added.push(name);
                }
            }
            Change::DuplicateOf(id) => {
                if *id == ticket.id {
                    return Err(ChangeError::SelfDuplicate);
                }
                let original = original
                    .filter(|o| o.id == *id)
                    .ok_or(ChangeError::UnknownTicket(*id))?;
                plan.duplicate_of = Some(original.id);
                plan.fields.push(FieldEvent {
                    kind: "duplicate",
                    from: None,
                    to: Some(original.id.to_string()),
                });
                if status != Status::Cancelled {
                    plan.transition = Some(Transition {
                        from: ticket.status,
                        to: Status::Cancelled,
                        event: "status",
                        by: by.to_string(),
                        detail: Some(format!("duplicate of {}", original.id)),
                    });
                    status = Status::Cancelled;
                }
                plan.notices.push(
                    Notice::new(
                        "duplicate_notice",
                        requester.clone(),
                        about,
                        AutoSubmitted::AutoGenerated,
                    )
                    .with(
                        "original",
                        serde_json::json!({"id": original.id, "subject": original.subject}),
                    ),
                );
            }
        }
    }
    if let Some(t) = &plan.transition {
        let notice = match t.to {
            _ if plan.duplicate_of.is_some() => None,
            Status::Resolved => Some(
                Notice::new(
                    "resolved",
                    requester.clone(),
                    about,
                    AutoSubmitted::AutoGenerated,
                )
                .with("solution", plan.note.clone().unwrap_or_default())
                .with("keywords", config.validation.keywords.clone()),
            ),
            Status::Cancelled => Some(
                Notice::new(
                    "cancelled",
                    requester.clone(),
                    about,
                    AutoSubmitted::AutoGenerated,
                )
                .with("reason", plan.note.clone()),
            ),
            _ if t.event == "reopened" => Some(
                Notice::new(
                    "reopened",
                    requester.clone(),
                    about,
                    AutoSubmitted::AutoGenerated,
                )
                .with("by", by.to_string())
                .with("resolved_by", ticket.resolved_by.clone()),
            ),
            _ => Some(
                Notice::new(
                    "status_changed",
                    requester.clone(),
                    about,
                    AutoSubmitted::AutoGenerated,
                )
                .with("old_status", t.from.code())
                .with("new_status", t.to.code())
                .with("by", by.to_string())
                .with("keywords", config.validation.keywords.clone()),
            ),
        };
        plan.notices.extend(notice);
    }
    Ok(plan)
}
