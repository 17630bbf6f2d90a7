//! `postdesk export` (SPEC §9): one row per ticket with every field of its
//! summary, its working times and SLA outcomes, as CSV or an xlsx workbook.

use std::path::{Path, PathBuf};

use chrono::NaiveDate;
use clap::{Args, ValueEnum};
use postdesk_core::report::{self, Outcome};
use postdesk_core::ticket::Status;

use super::report::{emit, fact, usage};
use super::{load_desk, open_store};
use crate::Failure;
use crate::clock::Clock;
use crate::store::to_time;
use crate::tabular::{Cell, Table};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    Csv,
    Xlsx,
}

fn parse_status(s: &str) -> Result<Status, String> {
    Status::parse(s).ok_or_else(|| format!("`{s}` is not a status ({})", Status::accepted()))
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// csv: instants in RFC 3339 UTC; xlsx: Excel date-times in the desk's
    /// time zone. Working times in seconds in both.
    #[arg(long, value_enum)]
    pub format: ExportFormat,
    /// Only tickets created on or after this day (YYYY-MM-DD, desk time zone).
    #[arg(long)]
    pub from: Option<NaiveDate>,
    /// Only tickets created on or before this day.
    #[arg(long)]
    pub to: Option<NaiveDate>,
    /// Only tickets now in this status (repeatable).
    #[arg(long = "status", value_parser = parse_status)]
    pub statuses: Vec<Status>,
    /// The file to write.
    #[arg(long)]
    pub output: PathBuf,
}

/// The columns, in order: `ticket show --json`'s fields (without messages
/// and events), then the SLA policy, working times, outcomes and follow-ups.
const COLUMNS: &[&str] = &[
    "id",
    "subject",
    "status",
    "priority",
    "type",
    "categories",
    "queue",
    "mailbox",
    "requester",
    "participants",
    "customer",
    "assignee",
    "duplicate_of",
    "created_at",
    "updated_at",
    "last_update_at",
    "first_response_due",
    "first_response_at",
    "resolution_due",
    "resolved_at",
    "closed_at",
    "sla_policy",
    "sla_state",
    "escalation_level",
    "first_response_breached",
    "resolution_breached",
    "first_response_seconds",
    "resolution_seconds",
    "follow_ups",
];

pub fn export(config: &Path, clock: Clock, args: ExportArgs) -> Result<u8, Failure> {
    let desk = load_desk(config)?;
    let store = open_store(&desk)?;
    let now = clock.now();
    let tz = desk.config.desk.timezone.0;
    let start = match args.from {
        Some(d) => Some(report::Period::days(tz, d, d).map_err(|e| usage(&e.to_string()))?),
        None => None,
    };
    let end = match args.to {
        Some(d) => Some(report::Period::days(tz, d, d).map_err(|e| usage(&e.to_string()))?),
        None => None,
    };
    if let (Some(a), Some(b)) = (args.from, args.to)
        && b < a
    {
        return Err(usage(&format!(
            "the period ends on {b}, before it starts on {a}"
        )));
    }
    let wanted: Vec<&str> = args.statuses.iter().map(|s| s.code()).collect();
    let local = |secs: i64| {
        let utc = to_time(secs);
        Cell::Time {
            utc,
            local: utc.with_timezone(&tz).naive_local(),
        }
    };
    let at = |secs: Option<i64>| secs.map_or(Cell::Empty, local);

    let mut table = Table::new(COLUMNS);
    for t in store.report_tickets(end.map(|p| p.end.timestamp()))? {
        let row = &t.ticket;
        if start.is_some_and(|p| row.created_at < p.start.timestamp())
            || (!wanted.is_empty() && !wanted.contains(&row.status.as_str()))
        {
            continue;
        }
        let facts = fact(&t)?;
        let life = report::lifetime(&desk.config, &facts, now);
        let state = crate::intake::sla_state(&desk.config, row, now);
        table.rows.push(vec![
            Cell::Int(row.id),
            Cell::text(&row.subject),
            Cell::text(&row.status),
            Cell::text(&row.priority),
            Cell::opt_text(row.ticket_type.as_deref()),
            Cell::text(row.categories.join("; ")),
            Cell::text(&row.queue),
            Cell::text(&row.mailbox),
            Cell::text(&row.requester),
            Cell::text(row.participants.join("; ")),
            Cell::opt_text(row.customer.as_deref()),
            Cell::opt_text(row.assignee.as_deref()),
            Cell::opt_int(row.duplicate_of),
            local(row.created_at),
            local(row.updated_at),
            at(row.last_update_at),
            at(row.first_response_due),
            at(row.first_response_at),
            at(row.resolution_due),
            at(row.resolved_at),
            at(row.closed_at),
            Cell::opt_text(row.sla_policy.as_deref()),
            Cell::text(state.code()),
            Cell::Int(row.escalation_level),
            Cell::Bool(life.first_response == Some(Outcome::Missed)),
            Cell::Bool(life.resolution == Some(Outcome::Missed)),
            Cell::opt_seconds(life.first_response_seconds),
            Cell::opt_seconds(life.resolution_seconds),
            Cell::Int((t.customer_messages - 1).max(0)),
        ]);
    }
    match args.format {
        ExportFormat::Csv => emit(Some(&args.output), &table.csv()?),
        ExportFormat::Xlsx => {
            table
                .write_xlsx("Tickets", &args.output)
                .map_err(|e| anyhow::anyhow!("writing {}: {e}", args.output.display()))?;
            Ok(0)
        }
    }
}
