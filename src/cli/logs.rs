//! `postdesk inbound` and `postdesk outbox`: what was read and what was sent.

use std::path::Path;

use chrono::{DateTime, Utc};

use super::{load_desk, open_store, print_json, print_table};
use crate::Failure;
use crate::json;
use crate::store::to_time;

fn short(secs: i64) -> String {
    to_time(secs).format("%Y-%m-%d %H:%M:%S").to_string()
}

pub fn inbound(config: &Path, since: Option<DateTime<Utc>>, as_json: bool) -> Result<u8, Failure> {
    let desk = load_desk(config)?;
    let store = open_store(&desk)?;
    let rows = store.inbound_log(since.map(|s| s.timestamp()))?;
    if as_json {
        print_json(&rows.iter().map(json::inbound).collect())?;
    } else {
        let table: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                vec![
                    r.id.to_string(),
                    short(r.received_at),
                    r.mailbox.clone(),
                    r.disposition.clone(),
                    r.ticket
                        .map(|t| t.to_string())
                        .unwrap_or_else(|| "-".into()),
                    r.from.clone().unwrap_or_default(),
                    r.reason.clone(),
                ]
            })
            .collect();
        print_table(
            &[
                "ID",
                "RECEIVED",
                "MAILBOX",
                "DISPOSITION",
                "TICKET",
                "FROM",
                "REASON",
            ],
            &table,
        );
    }
    Ok(0)
}

pub fn outbox(config: &Path, status: Option<&str>, as_json: bool) -> Result<u8, Failure> {
    let desk = load_desk(config)?;
    let store = open_store(&desk)?;
    let rows = store.outbox(status)?;
    if as_json {
        print_json(&rows.iter().map(json::outbox).collect())?;
    } else {
        let table: Vec<Vec<String>> = rows
            .iter()
            .map(|r| {
                vec![
                    r.id.to_string(),
                    short(r.created_at),
                    r.status.clone(),
                    r.attempts.to_string(),
                    r.template.clone(),
                    r.to.join(", "),
                    r.ticket
                        .map(|t| t.to_string())
                        .unwrap_or_else(|| "-".into()),
                    r.last_error.clone().unwrap_or_default(),
                ]
            })
            .collect();
        print_table(
            &[
                "ID",
                "CREATED",
                "STATUS",
                "TRIES",
                "TEMPLATE",
                "TO",
                "TICKET",
                "LAST ERROR",
            ],
            &table,
        );
    }
    Ok(0)
}
