//! `postdesk report` (SPEC §9): what happened in a period, per group and in
//! total, as a text table, CSV, JSON or an xlsx workbook. The store loads the
//! tickets, `postdesk_core::report` computes every figure, `tabular` writes.

use std::path::{Path, PathBuf};

use chrono::{DateTime, Datelike, NaiveDate, SecondsFormat, Utc};
use clap::{Args, ValueEnum};
use postdesk_core::config::Config;
use postdesk_core::report::{self, GroupBy, Period, Row, TicketFacts};
use postdesk_core::ticket::Status;
use serde_json::{Value, json};

use super::{load_desk, open_store};
use crate::Failure;
use crate::clock::Clock;
use crate::store::{ReportTicket, to_time};
use crate::tabular::{Cell, Table};

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum By {
    Customer,
    Type,
    Priority,
    Queue,
    Agent,
}

impl From<By> for GroupBy {
    fn from(b: By) -> GroupBy {
        match b {
            By::Customer => GroupBy::Customer,
            By::Type => GroupBy::Type,
            By::Priority => GroupBy::Priority,
            By::Queue => GroupBy::Queue,
            By::Agent => GroupBy::Agent,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Table,
    Csv,
    Json,
    Xlsx,
}

#[derive(Args, Debug)]
pub struct ReportArgs {
    /// First day of the period (YYYY-MM-DD, desk time zone)
    /// [default: the first day of --to's month, else of the current month].
    #[arg(long)]
    pub from: Option<NaiveDate>,
    /// Last day of the period, included [default: today].
    #[arg(long)]
    pub to: Option<NaiveDate>,
    /// One row per customer, type, priority, queue or agent (assignee),
    /// then the total. Without it: one row, `all`.
    #[arg(long, value_enum)]
    pub by: Option<By>,
    /// table: aligned text; csv, json: times in seconds, compliance in %;
    /// xlsx: a workbook (needs --output).
    #[arg(long, value_enum, default_value = "table")]
    pub format: ReportFormat,
    /// Write to this file instead of stdout (required for xlsx).
    #[arg(long)]
    pub output: Option<PathBuf>,
}

/// The label of the single row of an ungrouped report.
const ALL: &str = "all";

/// Column names of CSV, xlsx and JSON rows (JSON adds none of the period).
const COLUMNS: &[&str] = &[
    "group",
    "from",
    "to",
    "opened",
    "resolved",
    "closed",
    "cancelled",
    "backlog",
    "first_responses",
    "first_response_median_seconds",
    "first_response_p90_seconds",
    "resolution_median_seconds",
    "resolution_p90_seconds",
    "first_response_met",
    "first_response_missed",
    "first_response_compliance_pct",
    "resolution_met",
    "resolution_missed",
    "resolution_compliance_pct",
];

pub fn report(config: &Path, clock: Clock, args: ReportArgs) -> Result<u8, Failure> {
    if args.format == ReportFormat::Xlsx && args.output.is_none() {
        return Err(usage("--format xlsx needs --output FILE"));
    }
    let desk = load_desk(config)?;
    let store = open_store(&desk)?;
    let now = clock.now();
    let period = period(&desk.config, args.from, args.to, now)?;
    let tickets = facts(store.report_tickets(Some(period.end.timestamp()))?)?;
    let by = args.by.map(GroupBy::from);
    let built = report::build(&desk.config, &tickets, by, &period, now);
    let mut lines = built.rows.clone();
    let mut total = built.total.clone();
    if by.is_none() {
        total.group = ALL.into();
    }
    lines.push(total);

    match args.format {
        ReportFormat::Table => {
            let mut text = format!(
                "Report {} – {} ({}), {}\n\n",
                period.from,
                period.to,
                desk.config.desk.timezone.0,
                by.map_or("not grouped".to_string(), |b| format!("by {}", b.code()))
            );
            text.push_str(&text_table(&lines).text());
            emit(args.output.as_deref(), text.as_bytes())
        }
        ReportFormat::Csv => emit(args.output.as_deref(), &table(&period, &lines).csv()?),
        ReportFormat::Json => {
            // Grouped: the groups; not grouped: the one `all` row.
            let rows: Vec<Value> = match by {
                Some(_) => built.rows.iter().map(row_json).collect(),
                None => lines.iter().map(row_json).collect(),
            };
            let doc = json!({
                "from": period.from.to_string(),
                "to": period.to.to_string(),
                "timezone": desk.config.desk.timezone.0.name(),
                "by": by.map(GroupBy::code),
                "generated_at": now.to_rfc3339_opts(SecondsFormat::Secs, true),
                "rows": rows,
                "total": row_json(&built.total),
            });
            let text = format!("{}\n", serde_json::to_string_pretty(&doc)?);
            emit(args.output.as_deref(), text.as_bytes())
        }
        ReportFormat::Xlsx => {
            let path = args.output.as_deref().ok_or_else(|| usage("no --output"))?;
            table(&period, &lines)
                .write_xlsx("Report", path)
                .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
            Ok(0)
        }
    }
}

/// A command-line mistake clap cannot see: exit 2.
pub fn usage(message: &str) -> Failure {
    Failure {
        code: 2,
        error: anyhow::anyhow!("{message}"),
    }
}

/// Writes to `output`, or stdout.
pub fn emit(output: Option<&Path>, bytes: &[u8]) -> Result<u8, Failure> {
    use std::io::Write;
    match output {
        Some(path) => std::fs::write(path, bytes)
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?,
        None => std::io::stdout().write_all(bytes)?,
    }
    Ok(0)
}

/// The period of `--from`/`--to`, with the documented defaults.
pub fn period(
    config: &Config,
    from: Option<NaiveDate>,
    to: Option<NaiveDate>,
    now: DateTime<Utc>,
) -> Result<Period, Failure> {
    let tz = config.desk.timezone.0;
    let result = match (from, to) {
        (None, None) => Period::month_to_date(tz, now),
        (from, to) => {
            let today = now.with_timezone(&tz).date_naive();
            let to = to.unwrap_or(today);
            let from = from.unwrap_or_else(|| to.with_day(1).unwrap_or(to));
            Period::days(tz, from, to)
        }
    };
    result.map_err(|e| usage(&e.to_string()))
}

/// The core's view of stored tickets; a status the core does not know is a
/// corrupt database, not something to guess about.
pub fn facts(tickets: Vec<ReportTicket>) -> Result<Vec<TicketFacts>, Failure> {
    tickets.into_iter().map(|t| fact(&t)).collect()
}

pub fn fact(t: &ReportTicket) -> Result<TicketFacts, Failure> {
    let row = &t.ticket;
    let history = t
        .history
        .iter()
        .map(|(at, code)| {
            Status::parse(code)
                .map(|s| (to_time(*at), s))
                .ok_or_else(|| {
                    anyhow::anyhow!("ticket {} has an event to unknown status {code:?}", row.id)
                })
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(TicketFacts {
        id: row.id,
        priority: row.priority.clone(),
        ticket_type: row.ticket_type.clone(),
        queue: row.queue.clone(),
        customer: row.customer.clone(),
        assignee: row.assignee.clone(),
        created_at: to_time(row.created_at),
        first_response_at: row.first_response_at.map(to_time),
        first_response_due: row.first_response_due.map(to_time),
        sla_policy: row.sla_policy.clone(),
        history,
    })
}

/// Percent with one decimal.
fn pct(share: Option<f64>) -> Option<f64> {
    share.map(|f| (f * 1000.0).round() / 10.0)
}

fn figures(r: &Row) -> Vec<Cell> {
    vec![
        Cell::Int(r.opened as i64),
        Cell::Int(r.resolved as i64),
        Cell::Int(r.closed as i64),
        Cell::Int(r.cancelled as i64),
        Cell::Int(r.backlog as i64),
        Cell::Int(r.first_responses as i64),
        Cell::opt_seconds(r.first_response_median),
        Cell::opt_seconds(r.first_response_p90),
        Cell::opt_seconds(r.resolution_median),
        Cell::opt_seconds(r.resolution_p90),
        Cell::Int(r.first_response_met as i64),
        Cell::Int(r.first_response_missed as i64),
        Cell::opt_percent(pct(r.first_response_compliance())),
        Cell::Int(r.resolution_met as i64),
        Cell::Int(r.resolution_missed as i64),
        Cell::opt_percent(pct(r.resolution_compliance())),
    ]
}

/// The CSV/xlsx table: every column, the period on each row.
fn table(period: &Period, lines: &[Row]) -> Table {
    let mut t = Table::new(COLUMNS);
    for r in lines {
        let mut cells = vec![
            Cell::text(&r.group),
            Cell::Date(period.from),
            Cell::Date(period.to),
        ];
        cells.extend(figures(r));
        t.rows.push(cells);
    }
    t
}

/// The text table: short headers, no period columns.
fn text_table(lines: &[Row]) -> Table {
    let mut t = Table::new(&[
        "group",
        "opened",
        "resolved",
        "closed",
        "cancelled",
        "backlog",
        "responses",
        "fr_median",
        "fr_p90",
        "res_median",
        "res_p90",
        "fr_met",
        "fr_missed",
        "fr_sla",
        "res_met",
        "res_missed",
        "res_sla",
    ]);
    for r in lines {
        let mut cells = vec![Cell::text(&r.group)];
        cells.extend(figures(r));
        t.rows.push(cells);
    }
    t
}

fn row_json(r: &Row) -> Value {
    json!({
        "group": r.group,
        "opened": r.opened,
        "resolved": r.resolved,
        "closed": r.closed,
        "cancelled": r.cancelled,
        "backlog": r.backlog,
        "first_responses": r.first_responses,
        "first_response_median_seconds": r.first_response_median,
        "first_response_p90_seconds": r.first_response_p90,
        "resolution_median_seconds": r.resolution_median,
        "resolution_p90_seconds": r.resolution_p90,
        "first_response_met": r.first_response_met,
        "first_response_missed": r.first_response_missed,
        "first_response_compliance_pct": pct(r.first_response_compliance()),
        "resolution_met": r.resolution_met,
        "resolution_missed": r.resolution_missed,
        "resolution_compliance_pct": pct(r.resolution_compliance()),
    })
}
