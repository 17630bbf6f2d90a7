//! `postdesk sla [--json]`: open tickets with their policy, deadlines, the
//! working time left to the nearest unmet deadline and their state, most
//! urgent first (SPEC §2).

use std::path::Path;

use serde_json::{Value, json};

use super::{load_desk, open_store, print_json, print_table};
use crate::Failure;
use crate::clock::Clock;
use crate::intake::{sla_clock, sla_state};
use crate::json::time;
use crate::store::TicketFilter;

pub fn sla(config: &Path, clock: Clock, as_json: bool) -> Result<u8, Failure> {
    let desk = load_desk(config)?;
    let store = open_store(&desk)?;
    let now = clock.now();
    let filter = TicketFilter {
        statuses: ["new", "open", "waiting"].map(String::from).to_vec(),
        ..Default::default()
    };
    let mut rows: Vec<(Option<i64>, Value)> = store
        .list_tickets(&filter)?
        .iter()
        .map(|t| {
            let sla_clock = sla_clock(&desk.config, t);
            let remaining = postdesk_core::sla::remaining_seconds(&desk.config, &sla_clock, now);
            let value = json!({
                "id": t.id, "subject": t.subject, "status": t.status, "priority": t.priority, "type": t.ticket_type,
                "assignee": t.assignee, "policy": sla_clock.policy.map(|p| p.name.clone()),
                "sla_state": sla_state(&desk.config, t, now).code(),
                "first_response_due": time(t.first_response_due), "resolution_due": time(t.resolution_due),
                "remaining_seconds": remaining, "escalation_level": t.escalation_level,
            });
            (remaining, value)
        })
        .collect();
    // Most urgent first: least time left (breached first); no policy last.
    rows.sort_by_key(|(remaining, v)| {
        (
            remaining.is_none(),
            remaining.unwrap_or(i64::MAX),
            v["id"].as_i64(),
        )
    });
    if as_json {
        print_json(&rows.into_iter().map(|(_, v)| v).collect())?;
    } else {
        let text = |v: &Value| v.as_str().map(str::to_string).unwrap_or_else(|| "-".into());
        let table: Vec<Vec<String>> = rows
            .iter()
            .map(|(remaining, v)| {
                let left = remaining.map_or("-".into(), |s| {
                    format!(
                        "{}{}h{:02}m",
                        if s < 0 { "-" } else { "" },
                        s.abs() / 3600,
                        s.abs() % 3600 / 60
                    )
                });
                vec![
                    v["id"].to_string(),
                    text(&v["sla_state"]),
                    left,
                    text(&v["policy"]),
                    text(&v["priority"]),
                    text(&v["status"]),
                    text(&v["assignee"]),
                    text(&v["subject"]),
                ]
            })
            .collect();
        print_table(
            &[
                "ID", "SLA", "LEFT", "POLICY", "PRIORITY", "STATUS", "ASSIGNEE", "SUBJECT",
            ],
            &table,
        );
    }
    Ok(0)
}
