//! postdesk: an email-driven help-desk daemon. This binary is the shell around
//! `postdesk-core`: CLI, clock, store, sources, transports and the daemon.
//! See ARCHITECTURE.md for the map.

mod cli;
mod clock;
mod compose;
mod daemon;
mod delivery;
mod desk;
mod http;
mod intake;
mod json;
mod metrics;
mod source;
mod store;
mod tabular;
mod telemetry;
mod templates;
mod timers;
mod transport;

use std::path::PathBuf;

/// Intake and composing allocate and free many small strings per message
/// (parsing, templates, lettre); mimalloc's thread-local free lists cut the
/// time glibc malloc spent there (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "postdesk",
    version,
    about = "Email-driven help desk: mail in, tickets out"
)]
pub struct Args {
    /// Config file [default: $POSTDESK_CONFIG, else ./postdesk.toml]
    #[arg(long, global = true, env = "POSTDESK_CONFIG")]
    config: Option<PathBuf>,
    /// Behave as if the current time were this instant (RFC 3339).
    #[arg(long, global = true, value_parser = parse_now)]
    now: Option<DateTime<Utc>>,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value = "text")]
    log_format: telemetry::LogFormat,
    #[command(subcommand)]
    command: Command,
}

fn parse_now(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s)
        .map(|d| d.with_timezone(&Utc))
        .map_err(|e| format!("`{s}` is not an RFC 3339 instant: {e}"))
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon: read mailboxes, process mail, deliver the outbox, fire timers.
    Run {
        /// One full pass, then exit.
        #[arg(long)]
        once: bool,
    },
    /// Process raw messages from files, or one from stdin (MTA pipe mode).
    Ingest {
        /// Mailbox the messages arrived at [default: the first configured].
        #[arg(long)]
        mailbox: Option<String>,
        files: Vec<PathBuf>,
    },
    /// Validate the config and print a short summary.
    CheckConfig,
    /// List, show and update tickets.
    Ticket {
        #[command(subcommand)]
        command: cli::ticket::TicketCommand,
    },
    /// The inbound log: every message read, its disposition, ticket and reason.
    Inbound {
        #[arg(long, value_parser = parse_now)]
        since: Option<DateTime<Utc>>,
        #[arg(long)]
        json: bool,
    },
    /// Open tickets with their SLA state and deadlines, most urgent first.
    Sla {
        #[arg(long)]
        json: bool,
    },
    /// Outgoing mail and its delivery state.
    Outbox {
        #[arg(long, value_parser = ["pending", "sent", "failed"])]
        status: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Database maintenance: online backup.
    Db {
        #[command(subcommand)]
        command: cli::db::DbCommand,
    },
    /// Figures of a period (default: this month so far, in the desk's time
    /// zone): opened, resolved, closed, cancelled, backlog at its end,
    /// first-response and resolution working times (median, p90) and SLA
    /// compliance, per group and in total.
    ///
    /// Events count in the period they happened in. Times are working time
    /// in the calendar of the ticket's SLA policy, without the time the
    /// resolution clock was stopped (waiting, resolved). Each deadline counts
    /// once, in the period it was met or missed (a deadline that passed
    /// without an answer counts as missed there, even if the ticket is
    /// still open); compliance % = met / (met + missed).
    Report(cli::report::ReportArgs),
    /// One row per ticket with its summary fields, as CSV or xlsx.
    Export(cli::export::ExportArgs),
}

/// An error and the exit code it maps to.
pub struct Failure {
    pub code: u8,
    pub error: anyhow::Error,
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure {
            code: 1,
            error: e.into(),
        }
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    telemetry::init(args.log_format);
    let clock = match (args.now, &args.command) {
        (Some(now), Command::Run { .. }) => clock::Clock::starting_at(now),
        (Some(now), _) => clock::Clock::frozen_at(now),
        (None, _) => clock::Clock::system(),
    };
    let config = args
        .config
        .clone()
        .unwrap_or_else(|| PathBuf::from("postdesk.toml"));
    let result = match args.command {
        Command::Run { once } => cli::run::run(&config, clock, once),
        Command::Ingest { mailbox, files } => {
            cli::ingest::ingest(&config, clock, mailbox.as_deref(), &files)
        }
        Command::CheckConfig => cli::check_config::check_config(&config),
        Command::Ticket { command } => cli::ticket::ticket(&config, clock, command),
        Command::Inbound { since, json } => cli::logs::inbound(&config, since, json),
        Command::Outbox { status, json } => cli::logs::outbox(&config, status.as_deref(), json),
        Command::Sla { json } => cli::sla::sla(&config, clock, json),
        Command::Db { command } => cli::db::db(&config, command),
        Command::Report(args) => cli::report::report(&config, clock, args),
        Command::Export(args) => cli::export::export(&config, clock, args),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        Err(Failure { code, error }) => {
            eprintln!("postdesk: {error:#}");
            ExitCode::from(code)
        }
    }
}
