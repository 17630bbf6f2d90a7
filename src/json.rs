//! The JSON documents of SPEC §2, exactly as specified: field names, RFC 3339
//! UTC timestamps, `null` for absent values.

use serde::{Serialize, Serializer};
use serde_json::{Value, json};

use crate::store::{EventRow, InboundRow, MessageRow, OutboxRow, TicketRow, to_time};

pub fn time(secs: Option<i64>) -> Value {
    secs.map_or(Value::Null, |s| Value::String(rfc3339(s)))
}

/// An instant as SPEC §2 writes it: RFC 3339 in UTC to the second.
pub fn rfc3339(secs: i64) -> String {
    to_time(secs).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// [`time`] for serde: the string, or `null`.
#[derive(Clone, Copy)]
pub struct Time(pub Option<i64>);

impl Serialize for Time {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self.0 {
            Some(secs) => serializer.serialize_str(&rfc3339(secs)),
            None => serializer.serialize_none(),
        }
    }
}

/// The ticket object of `ticket list --json`, which templates also see as
/// `ticket`: its one field list. The fields are in alphabetical order on
/// purpose: a JSON object (serde_json without `preserve_order`) lists its
/// keys sorted, and a template that prints the whole object or iterates over
/// it (minijinja keeps a struct's field order) must see them the same way.
#[derive(Serialize)]
pub struct TicketView<'a> {
    assignee: Option<&'a str>,
    categories: &'a [String],
    closed_at: Time,
    created_at: Time,
    customer: Option<&'a str>,
    duplicate_of: Option<i64>,
    escalation_level: i64,
    first_response_at: Time,
    first_response_due: Time,
    id: i64,
    last_update_at: Time,
    mailbox: &'a str,
    participants: &'a [String],
    priority: &'a str,
    queue: &'a str,
    requester: &'a str,
    resolution_due: Time,
    resolved_at: Time,
    sla_state: &'a str,
    status: &'a str,
    subject: &'a str,
    #[serde(rename = "type")]
    ticket_type: Option<&'a str>,
    updated_at: Time,
}

impl<'a> From<&'a TicketRow> for TicketView<'a> {
    fn from(t: &'a TicketRow) -> TicketView<'a> {
        TicketView {
            assignee: t.assignee.as_deref(),
            categories: &t.categories,
            closed_at: Time(t.closed_at),
            created_at: Time(Some(t.created_at)),
            customer: t.customer.as_deref(),
            duplicate_of: t.duplicate_of,
            escalation_level: t.escalation_level,
            first_response_at: Time(t.first_response_at),
            first_response_due: Time(t.first_response_due),
            id: t.id,
            last_update_at: Time(t.last_update_at),
            mailbox: &t.mailbox,
            participants: &t.participants,
            priority: &t.priority,
            queue: &t.queue,
            requester: &t.requester,
            resolution_due: Time(t.resolution_due),
            resolved_at: Time(t.resolved_at),
            sla_state: &t.sla_state,
            status: &t.status,
            subject: &t.subject,
            ticket_type: t.ticket_type.as_deref(),
            updated_at: Time(Some(t.updated_at)),
        }
    }
}

/// The ticket object of `ticket list --json` (no messages, no events).
pub fn ticket(t: &TicketRow) -> Value {
    // Serializing into a JSON value cannot fail: no map has non-string keys.
    serde_json::to_value(TicketView::from(t)).unwrap_or_default()
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

#[cfg(test)]
mod tests {
    use super::*;

    /// The ticket object as `json!` wrote it before [`TicketView`]: the same
    /// keys, values and `null`s.
    #[test]
    fn ticket_object_is_unchanged() {
        let t = TicketRow {
            id: 42,
            subject: "Factura".into(),
            status: "open".into(),
            priority: "high".into(),
            ticket_type: Some("problem".into()),
            categories: vec!["a".into(), "b".into()],
            queue: "general".into(),
            mailbox: "soporte".into(),
            requester: "ana@cliente.com".into(),
            customer: None,
            assignee: Some("luis@example.com".into()),
            participants: vec!["ana@cliente.com".into()],
            duplicate_of: Some(7),
            created_at: 1_773_134_000,
            updated_at: 1_773_135_000,
            first_response_due: Some(1_773_137_600),
            resolved_at: Some(-5),
            sla_state: "ok".into(),
            escalation_level: 2,
            ..Default::default()
        };
        let before = json!({
            "id": t.id, "subject": t.subject, "status": t.status, "priority": t.priority, "type": t.ticket_type,
            "categories": t.categories, "queue": t.queue, "mailbox": t.mailbox, "requester": t.requester,
            "customer": t.customer, "assignee": t.assignee, "participants": t.participants,
            "duplicate_of": t.duplicate_of,
            "created_at": time(Some(t.created_at)), "updated_at": time(Some(t.updated_at)),
            "last_update_at": time(t.last_update_at),
            "first_response_due": time(t.first_response_due), "first_response_at": time(t.first_response_at),
            "resolution_due": time(t.resolution_due), "resolved_at": time(t.resolved_at), "closed_at": time(t.closed_at),
            "sla_state": t.sla_state, "escalation_level": t.escalation_level,
        });
        assert_eq!(ticket(&t), before);
        assert_eq!(ticket(&t).to_string(), before.to_string());
    }
}
