//! The JSON documents of SPEC §2, exactly as specified: field names, RFC 3339
//! UTC timestamps, `null` for absent values.

use serde_json::{Value, json};

use crate::store::{EventRow, InboundRow, MessageRow, OutboxRow, TicketRow, to_time};

pub fn time(secs: Option<i64>) -> Value {
    secs.map_or(Value::Null, |s| {
        Value::String(to_time(s).to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
    })
}

/// The ticket object of `ticket list --json` (no messages, no events).
pub fn ticket(t: &TicketRow) -> Value {
    json!({
        "id": t.id, "subject": t.subject, "status": t.status, "priority": t.priority, "type": t.ticket_type,
        "categories": t.categories, "queue": t.queue, "mailbox": t.mailbox, "requester": t.requester,
        "customer": t.customer, "assignee": t.assignee, "participants": t.participants,
        "duplicate_of": t.duplicate_of,
        "created_at": time(Some(t.created_at)), "updated_at": time(Some(t.updated_at)),
        "last_update_at": time(t.last_update_at),
        "first_response_due": time(t.first_response_due), "first_response_at": time(t.first_response_at),
        "resolution_due": time(t.resolution_due), "resolved_at": time(t.resolved_at), "closed_at": time(t.closed_at),
        "sla_state": t.sla_state, "escalation_level": t.escalation_level,
    })
}

/// The ticket object of `ticket show --json`.
pub fn ticket_detail(t: &TicketRow, messages: &[MessageRow], events: &[EventRow]) -> Value {
    let mut v = ticket(t);
    if let Value::Object(map) = &mut v {
        map.insert("messages".into(), messages.iter().map(message).collect());
        map.insert("events".into(), events.iter().map(event).collect());
    }
    v
}

pub fn message(m: &MessageRow) -> Value {
    json!({
        "id": m.id, "kind": m.kind, "from": m.from, "to": m.to, "cc": m.cc, "subject": m.subject,
        "message_id": m.message_id.as_ref().map(|id| format!("<{id}>")), "date": time(m.date),
        "received_at": time(Some(m.received_at)), "body": m.body,
        "attachments": m.attachments.iter().map(|a| json!({
            "filename": a.filename, "content_type": a.content_type, "size": a.size, "sha256": a.sha256,
        })).collect::<Vec<_>>(),
    })
}

pub fn event(e: &EventRow) -> Value {
    json!({ "at": time(Some(e.at)), "kind": e.kind, "from": e.from, "to": e.to, "by": e.by, "detail": e.detail })
}

pub fn inbound(i: &InboundRow) -> Value {
    json!({
        "id": i.id, "mailbox": i.mailbox, "received_at": time(Some(i.received_at)),
        "message_id": i.message_id.as_ref().map(|id| format!("<{id}>")), "from": i.from, "subject": i.subject,
        "disposition": i.disposition, "ticket": i.ticket, "reason": i.reason,
    })
}

pub fn outbox(o: &OutboxRow) -> Value {
    json!({
        "id": o.id, "ticket": o.ticket, "template": o.template, "to": o.to, "subject": o.subject,
        "status": o.status, "attempts": o.attempts, "last_error": o.last_error,
        "created_at": time(Some(o.created_at)), "sent_at": time(o.sent_at),
    })
}
