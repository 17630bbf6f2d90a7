//! The whole configuration schema of SPEC §3, parsed from TOML text and
//! validated in two stages: serde refuses unknown keys and malformed values
//! (with the span of the offending key), then `validate` checks what spans
//! several keys. Every error names file, line and key.
//!
//! Never reads files or the environment: the shell hands in the text and
//! resolves `password_env`/`password_file` itself.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;

use chrono::{NaiveDate, NaiveTime};
use chrono_tz::Tz;
use serde::Deserialize;
use serde::de::{self, Deserializer};
use toml::Spanned;

use crate::text::normalize_address;
use crate::ticket::{Priority, Status, TicketType};
use crate::units::{Rate, Span, WeeklySlot, parse_day_ranges, parse_size};

/// One problem in the config, located.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    pub file: String,
    pub line: usize,
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {}: {}",
            self.file, self.line, self.key, self.message
        )
    }
}

/// Every problem found, so the admin fixes them all in one go.
#[derive(Debug, Clone, thiserror::Error)]
pub struct ConfigError {
    pub problems: Vec<ConfigProblem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

macro_rules! from_str_de {
    ($ty:ty, $parse:expr) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                let parse: fn(&str) -> Result<$ty, String> = $parse;
                parse(&s).map_err(de::Error::custom)
            }
        }
    };
}

/// A wall-clock or business duration as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Duration(pub Span);
from_str_de!(Duration, |s| Span::parse(s).map(Duration));

/// A byte size as configured (`25MB`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);
impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Either {
            N(u64),
            S(String),
        }
        match Either::deserialize(d)? {
            Either::N(n) => Ok(ByteSize(n)),
            Either::S(s) => parse_size(&s).map(ByteSize).map_err(de::Error::custom),
        }
    }
}

from_str_de!(Rate, Rate::parse);
from_str_de!(WeeklySlot, WeeklySlot::parse);

/// A time zone name from the IANA database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeZone(pub Tz);
from_str_de!(TimeZone, |s| s.parse::<Tz>().map(TimeZone).map_err(
    |_| format!("`{s}` is not a time zone (use an IANA name such as Europe/Madrid)")
));

/// A compiled regular expression from a `[[rules]]` entry.
#[derive(Debug, Clone)]
pub struct Pattern(pub regex::Regex);
from_str_de!(Pattern, |s| regex::RegexBuilder::new(s)
    .case_insensitive(true)
    .size_limit(1 << 20)
    .build()
    .map(Pattern)
    .map_err(|e| format!("invalid regex: {e}")));

/// Working ranges of one weekday.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DayHours(pub Vec<(NaiveTime, NaiveTime)>);
from_str_de!(DayHours, |s| parse_day_ranges(s).map(DayHours));

macro_rules! vocab_de {
    ($ty:ty) => {
        impl<'de> Deserialize<'de> for $ty {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                <$ty>::parse(&s).ok_or_else(|| {
                    de::Error::custom(format!("`{s}` is not one of: {}", <$ty>::accepted()))
                })
            }
        }
    };
}
vocab_de!(Priority);
vocab_de!(TicketType);
vocab_de!(Status);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Language {
    Es,
    En,
}

impl Language {
    pub fn code(self) -> &'static str {
        match self {
            Language::Es => "es",
            Language::En => "en",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    Tls,
    Starttls,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    Imap,
    Maildir,
}

/// What to do with a message on the IMAP server once it is committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AfterProcessing {
    Seen,
    Move(String),
    Delete,
}
from_str_de!(AfterProcessing, |s| match s {
    "seen" => Ok(AfterProcessing::Seen),
    "delete" => Ok(AfterProcessing::Delete),
    _ => match s.strip_prefix("move:") {
        Some(folder) if !folder.trim().is_empty() =>
            Ok(AfterProcessing::Move(folder.trim().to_string())),
        _ => Err(format!("`{s}`: use seen, delete or move:FOLDER")),
    },
});

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnknownSenders {
    Accept,
    Reject,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ForeignReplies {
    NewTicket,
    Note,
    Reject,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DuplicateScope {
    Sender,
    Customer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TransportKind {
    Smtp,
    File,
}

/// Where a password comes from; the shell resolves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Secret {
    None,
    Inline(String),
    Env(String),
    File(String),
}

impl Secret {
    fn from_keys(
        inline: Option<String>,
        env: Option<String>,
        file: Option<String>,
    ) -> Result<Secret, String> {
        match (inline, env, file) {
            (None, None, None) => Ok(Secret::None),
            (Some(p), None, None) => Ok(Secret::Inline(p)),
            (None, Some(e), None) => Ok(Secret::Env(e)),
            (None, None, Some(f)) => Ok(Secret::File(f)),
            _ => Err("give only one of password, password_env, password_file".into()),
        }
    }
}

fn default_desk_name() -> String {
    "Soporte".into()
}
fn default_database() -> String {
    "var/postdesk.db".into()
}
fn default_attachments() -> String {
    "var/attachments".into()
}
fn default_language() -> Language {
    Language::Es
}
fn default_tag() -> String {
    "Ticket".into()
}
fn default_first() -> i64 {
    1
}
fn default_tz() -> TimeZone {
    TimeZone(Tz::UTC)
}
fn default_templates() -> String {
    "templates".into()
}
fn default_queue() -> String {
    "general".into()
}
fn default_folder() -> String {
    "INBOX".into()
}
fn default_after() -> AfterProcessing {
    AfterProcessing::Seen
}
fn yes() -> bool {
    true
}
fn default_level() -> u32 {
    1
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Desk {
    #[serde(default = "default_desk_name")]
    pub name: String,
    #[serde(default = "default_database")]
    pub database: String,
    #[serde(default = "default_attachments")]
    pub attachments_dir: String,
    #[serde(default = "default_language")]
    pub language: Language,
    #[serde(default = "default_tag")]
    pub tag: String,
    #[serde(default = "default_first")]
    pub first_ticket_number: i64,
    #[serde(default = "default_tz")]
    pub timezone: TimeZone,
    #[serde(default = "default_templates")]
    pub templates_dir: String,
}

impl Default for Desk {
    fn default() -> Self {
        Desk {
            name: default_desk_name(),
            database: default_database(),
            attachments_dir: default_attachments(),
            language: default_language(),
            tag: default_tag(),
            first_ticket_number: 1,
            timezone: default_tz(),
            templates_dir: default_templates(),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMailbox {
    name: String,
    address: String,
    #[serde(default = "default_queue")]
    queue: String,
    source: SourceKind,
    path: Option<String>,
    host: Option<String>,
    port: Option<u16>,
    security: Option<Security>,
    username: Option<String>,
    password: Option<String>,
    password_env: Option<String>,
    password_file: Option<String>,
    #[serde(default = "default_folder")]
    folder: String,
    #[serde(default = "default_after")]
    after_processing: AfterProcessing,
    #[serde(default = "yes")]
    idle: bool,
    poll_interval: Option<Duration>,
    notes_address: Option<String>,
}

/// How a mailbox is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailboxSource {
    Maildir {
        path: String,
    },
    Imap {
        host: String,
        port: u16,
        security: Security,
        username: String,
        password: Secret,
        folder: String,
        after_processing: AfterProcessing,
        idle: bool,
    },
}

/// One monitored support address.
#[derive(Debug, Clone)]
pub struct Mailbox {
    pub name: String,
    pub address: String,
    pub queue: String,
    pub source: MailboxSource,
    pub poll_interval_secs: i64,
    pub notes_address: Option<String>,
    pub line: usize,
}

impl Mailbox {
    /// The domain Message-IDs of mail sent from this mailbox are generated under.
    pub fn domain(&self) -> &str {
        crate::text::domain_of(&self.address).unwrap_or("localhost")
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSmtp {
    transport: TransportKind,
    dir: Option<String>,
    host: Option<String>,
    port: Option<u16>,
    security: Option<Security>,
    username: Option<String>,
    password: Option<String>,
    password_env: Option<String>,
    password_file: Option<String>,
    from_name: Option<String>,
}

/// Where outgoing mail goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmtpTransport {
    File {
        dir: String,
    },
    Smtp {
        host: String,
        port: u16,
        security: Security,
        username: Option<String>,
        password: Secret,
    },
}

#[derive(Debug, Clone)]
pub struct Smtp {
    pub transport: SmtpTransport,
    pub from_name: Option<String>,
    pub line: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Agent {
    pub name: String,
    pub email: String,
    #[serde(default = "default_level")]
    pub level: u32,
    /// Empty = every queue.
    #[serde(default)]
    pub queues: Vec<String>,
}

impl Agent {
    pub fn serves(&self, queue: &str) -> bool {
        self.queues.is_empty() || self.queues.iter().any(|q| q == queue)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Customer {
    pub name: String,
    #[serde(default)]
    pub domains: Vec<String>,
    #[serde(default)]
    pub addresses: Vec<String>,
    #[serde(default = "yes")]
    pub active: bool,
    pub plan: Option<String>,
    pub language: Option<Language>,
}

fn default_max_size() -> ByteSize {
    ByteSize(25 * 1024 * 1024)
}
fn default_ack_rate() -> Rate {
    Rate {
        count: 5,
        per_seconds: 3600,
    }
}
fn default_foreign() -> ForeignReplies {
    ForeignReplies::NewTicket
}
fn default_reopen() -> Duration {
    Duration(Span::Seconds(14 * 86_400))
}
fn default_unknown() -> UnknownSenders {
    UnknownSenders::Accept
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Intake {
    #[serde(default = "default_unknown")]
    pub unknown_senders: UnknownSenders,
    #[serde(default = "default_max_size")]
    pub max_message_size: ByteSize,
    #[serde(default = "default_ack_rate")]
    pub ack_rate_limit: Rate,
    #[serde(default = "default_foreign")]
    pub foreign_replies: ForeignReplies,
    #[serde(default = "default_reopen")]
    pub reopen_window: Duration,
    #[serde(default)]
    pub human_senders: Vec<String>,
}

impl Default for Intake {
    fn default() -> Self {
        Intake {
            unknown_senders: default_unknown(),
            max_message_size: default_max_size(),
            ack_rate_limit: default_ack_rate(),
            foreign_replies: default_foreign(),
            reopen_window: default_reopen(),
            human_senders: Vec::new(),
        }
    }
}

fn default_dup_window() -> Duration {
    Duration(Span::Seconds(7 * 86_400))
}
fn default_scope() -> DuplicateScope {
    DuplicateScope::Sender
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Duplicates {
    #[serde(default = "yes")]
    pub enabled: bool,
    #[serde(default = "default_dup_window")]
    pub window: Duration,
    #[serde(default = "default_scope")]
    pub scope: DuplicateScope,
}

impl Default for Duplicates {
    fn default() -> Self {
        Duplicates {
            enabled: true,
            window: default_dup_window(),
            scope: default_scope(),
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSet {
    pub priority: Option<Priority>,
    #[serde(rename = "type")]
    pub ticket_type: Option<TicketType>,
    #[serde(default)]
    pub categories: Vec<String>,
    pub queue: Option<String>,
    pub assignee: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub subject: Option<Pattern>,
    pub body: Option<Pattern>,
    pub from: Option<Pattern>,
    pub mailbox: Option<Pattern>,
    #[serde(default)]
    pub set: RuleSet,
    #[serde(skip)]
    pub line: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum HolidayValue {
    Text(String),
    Date(toml::value::Datetime),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCalendar {
    timezone: Option<TimeZone>,
    mon: Option<DayHours>,
    tue: Option<DayHours>,
    wed: Option<DayHours>,
    thu: Option<DayHours>,
    fri: Option<DayHours>,
    sat: Option<DayHours>,
    sun: Option<DayHours>,
    #[serde(default)]
    holidays: Vec<HolidayValue>,
}

/// Working hours of a desk or team: ranges per weekday (Monday first) and holidays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Calendar {
    pub name: String,
    pub timezone: Tz,
    pub week: [Vec<(NaiveTime, NaiveTime)>; 7],
    pub holidays: Vec<NaiveDate>,
    /// The built-in `24x7`: wall-clock time.
    pub always: bool,
}

impl Calendar {
    pub fn always_open() -> Calendar {
        Calendar {
            name: "24x7".into(),
            timezone: Tz::UTC,
            week: Default::default(),
            holidays: Vec::new(),
            always: true,
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlaMatch {
    pub priority: Option<Priority>,
    #[serde(rename = "type")]
    pub ticket_type: Option<TicketType>,
    pub plan: Option<String>,
    pub queue: Option<String>,
}

fn default_warn() -> f64 {
    0.8
}
fn default_calendar() -> String {
    "24x7".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlaPolicy {
    pub name: String,
    #[serde(default, rename = "match")]
    pub matches: SlaMatch,
    #[serde(default = "default_calendar")]
    pub calendar: String,
    pub first_response: Option<Duration>,
    pub resolution: Option<Duration>,
    #[serde(default = "default_warn")]
    pub warn_at: f64,
    #[serde(default = "yes")]
    pub pause_when_waiting: bool,
    #[serde(skip)]
    pub line: usize,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationLevel {
    pub after_no_update: Duration,
    pub notify: Vec<String>,
    #[serde(default = "default_calendar")]
    pub calendar: String,
    #[serde(skip)]
    pub line: usize,
}

fn default_keywords() -> Vec<String> {
    [
        "conforme", "ok", "validado", "aceptado", "accept", "approved",
    ]
    .map(String::from)
    .to_vec()
}
fn default_slot() -> WeeklySlot {
    WeeklySlot {
        weekday: chrono::Weekday::Mon,
        time: NaiveTime::from_hms_opt(9, 0, 0).unwrap_or_default(),
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Validation {
    #[serde(default = "default_keywords")]
    pub keywords: Vec<String>,
    #[serde(default = "default_slot")]
    pub reminder_schedule: WeeklySlot,
    pub auto_close_after: Option<Duration>,
}

impl Default for Validation {
    fn default() -> Self {
        Validation {
            keywords: default_keywords(),
            reminder_schedule: default_slot(),
            auto_close_after: None,
        }
    }
}

/// `[http]`: the health and metrics endpoint (off when the section is absent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Http {
    /// Where to listen; loopback by default: the endpoint has no
    /// authentication, so exposing it further is the admin's explicit choice.
    pub listen: std::net::SocketAddr,
    /// `/healthz` fails when a queued mail is still unsent after this long.
    pub outbox_max_age_secs: i64,
}

pub const DEFAULT_HTTP_LISTEN: &str = "127.0.0.1:9810";
const DEFAULT_OUTBOX_MAX_AGE_SECS: i64 = 15 * 60;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    listen: Option<Spanned<String>>,
    outbox_max_age: Option<Spanned<Duration>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    desk: Desk,
    #[serde(default)]
    mailboxes: Vec<Spanned<RawMailbox>>,
    smtp: Option<Spanned<RawSmtp>>,
    #[serde(default)]
    agents: Vec<Spanned<Agent>>,
    #[serde(default)]
    customers: Vec<Spanned<Customer>>,
    #[serde(default)]
    intake: Intake,
    #[serde(default)]
    duplicates: Duplicates,
    #[serde(default)]
    rules: Vec<Spanned<Rule>>,
    #[serde(default)]
    calendars: BTreeMap<String, Spanned<RawCalendar>>,
    #[serde(default)]
    sla: Vec<Spanned<SlaPolicy>>,
    #[serde(default)]
    escalation: Vec<Spanned<EscalationLevel>>,
    #[serde(default)]
    validation: Validation,
    http: Option<Spanned<RawHttp>>,
}

/// The validated configuration every other module reads.
#[derive(Debug, Clone)]
pub struct Config {
    pub file: String,
    pub desk: Desk,
    pub mailboxes: Vec<Mailbox>,
    pub smtp: Smtp,
    pub agents: Vec<Agent>,
    pub customers: Vec<Customer>,
    pub intake: Intake,
    pub duplicates: Duplicates,
    pub rules: Vec<Rule>,
    pub calendars: BTreeMap<String, Calendar>,
    pub sla: Vec<SlaPolicy>,
    pub escalation: Vec<EscalationLevel>,
    pub validation: Validation,
    pub http: Option<Http>,
    /// The ticket tag matcher, compiled once.
    pub tags: crate::subject::TagMatcher,
}

impl Config {
    /// Parses and validates the config text read from `file`.
    pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
        let locate = Locator::new(text, file);
        let raw: RawConfig = match toml::from_str(text) {
            Ok(raw) => raw,
            Err(e) => {
                return Err(ConfigError {
                    problems: vec![locate.serde_error(&e)],
                });
            }
        };
        let mut problems = Vec::new();
        let config = validate(raw, &locate, &mut problems);
        if problems.is_empty() {
            Ok(config)
        } else {
            Err(ConfigError { problems })
        }
    }

    pub fn mailbox(&self, name: &str) -> Option<&Mailbox> {
        self.mailboxes.iter().find(|m| m.name == name)
    }

    pub fn agent(&self, address: &str) -> Option<&Agent> {
        let address = normalize_address(address);
        self.agents
            .iter()
            .find(|a| normalize_address(&a.email) == address)
    }

    /// True when `address` is one of our own mailbox or notes addresses.
    pub fn is_own_address(&self, address: &str) -> bool {
        let address = normalize_address(address);
        self.mailboxes.iter().any(|m| {
            normalize_address(&m.address) == address
                || m.notes_address.as_deref().map(normalize_address).as_deref()
                    == Some(address.as_str())
        })
    }

    /// The customer an address belongs to: by exact address first, then by domain.
    pub fn customer_for(&self, address: &str) -> Option<&Customer> {
        let address = normalize_address(address);
        if let Some(c) = self
            .customers
            .iter()
            .find(|c| c.addresses.iter().any(|a| normalize_address(a) == address))
        {
            return Some(c);
        }
        let domain = crate::text::domain_of(&address)?;
        // An exact domain first, then the most specific `*.domain` entry, so
        // a subsidiary listed on its own wins over its parent.
        if let Some(c) = self.customers.iter().find(|c| {
            c.domains
                .iter()
                .any(|d| d.trim().eq_ignore_ascii_case(domain))
        }) {
            return Some(c);
        }
        self.customers
            .iter()
            .filter_map(|c| {
                c.domains
                    .iter()
                    .filter_map(|d| subdomain_parent(d))
                    .filter(|parent| domain == *parent || domain.ends_with(&format!(".{parent}")))
                    .map(|parent| parent.len())
                    .max()
                    .map(|len| (len, c))
            })
            .max_by_key(|(len, _)| *len)
            .map(|(_, c)| c)
    }

    pub fn calendar(&self, name: &str) -> Option<&Calendar> {
        self.calendars.get(name)
    }
}

/// Turns byte offsets into `file:line` and finds the table a key sits in.
struct Locator<'a> {
    text: &'a str,
    file: &'a str,
}

impl<'a> Locator<'a> {
    fn new(text: &'a str, file: &'a str) -> Self {
        Locator { text, file }
    }

    fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    /// The `[table]` header in force at `offset`, for naming a key in full.
    fn table_at(&self, offset: usize) -> Option<String> {
        let end = offset.min(self.text.len());
        self.text.get(..end)?.lines().rev().find_map(|line| {
            let line = line.trim();
            let inner = line
                .strip_prefix("[[")
                .and_then(|l| l.split("]]").next())
                .or_else(|| line.strip_prefix('[').and_then(|l| l.split(']').next()))?;
            Some(inner.trim().to_string())
        })
    }

    fn problem(
        &self,
        span: Range<usize>,
        key: impl Into<String>,
        message: impl Into<String>,
    ) -> ConfigProblem {
        ConfigProblem {
            file: self.file.to_string(),
            line: self.line_of(span.start),
            key: key.into(),
            message: message.into(),
        }
    }

    fn serde_error(&self, e: &toml::de::Error) -> ConfigProblem {
        let span = e.span().unwrap_or(0..0);
        let message = e.message().trim().to_string();
        let word = self.text.get(span.clone()).unwrap_or("").trim();
        // The span covers the offending key for unknown fields, the value otherwise.
        let key = if let Some(rest) = message.strip_prefix("unknown field `") {
            rest.split('`').next().unwrap_or(word).to_string()
        } else {
            self.key_at(span.start).unwrap_or_else(|| word.to_string())
        };
        let key = match self.table_at(span.start) {
            Some(table) if !key.is_empty() && !key.starts_with(&table) => format!("{table}.{key}"),
            Some(table) if key.is_empty() => table,
            _ => key,
        };
        self.problem(span, key, message)
    }

    /// The key written on the line that holds `offset` (`key = value`).
    fn key_at(&self, offset: usize) -> Option<String> {
        let start = self
            .text
            .get(..offset.min(self.text.len()))?
            .rfind('\n')
            .map_or(0, |i| i + 1);
        let line = self.text.get(start..)?.lines().next()?;
        let (key, _) = line.split_once('=')?;
        let key = key.trim().trim_matches('"');
        (!key.is_empty() && !key.starts_with('[')).then(|| key.to_string())
    }
}

fn validate(raw: RawConfig, at: &Locator<'_>, problems: &mut Vec<ConfigProblem>) -> Config {
    let mut calendars = BTreeMap::new();
    calendars.insert("24x7".to_string(), Calendar::always_open());
    for (name, spanned) in raw.calendars {
        let span = spanned.span();
        let c = spanned.into_inner();
        let mut holidays = Vec::new();
        for h in c.holidays {
            let parsed = match &h {
                HolidayValue::Text(s) => NaiveDate::parse_from_str(s.trim(), "%Y-%m-%d").ok(),
                HolidayValue::Date(d) => d.date.and_then(|d| {
                    NaiveDate::from_ymd_opt(i32::from(d.year), u32::from(d.month), u32::from(d.day))
                }),
            };
            match parsed {
                Some(d) => holidays.push(d),
                None => problems.push(at.problem(
                    span.clone(),
                    format!("calendars.{name}.holidays"),
                    format!("{h:?} is not a date YYYY-MM-DD"),
                )),
            }
        }
        if name == "24x7" {
            problems.push(at.problem(
                span.clone(),
                "calendars.24x7",
                "the calendar 24x7 is built in and cannot be redefined",
            ));
            continue;
        }
        let day = |d: Option<DayHours>| d.map(|d| d.0).unwrap_or_default();
        let week = [
            day(c.mon),
            day(c.tue),
            day(c.wed),
            day(c.thu),
            day(c.fri),
            day(c.sat),
            day(c.sun),
        ];
        if week.iter().all(Vec::is_empty) {
            problems.push(at.problem(
                span.clone(),
                format!("calendars.{name}"),
                "no working hours on any day (set mon..sun, e.g. mon = \"09:00-18:00\")",
            ));
        }
        calendars.insert(
            name.clone(),
            Calendar {
                name,
                timezone: c.timezone.map_or(raw.desk.timezone.0, |t| t.0),
                week,
                holidays,
                always: false,
            },
        );
    }

    if raw.desk.tag.trim().is_empty()
        || !raw
            .desk
            .tag
            .chars()
            .all(|c| c.is_alphanumeric() || c == '-' || c == '_')
    {
        problems.push(ConfigProblem {
            file: at.file.into(),
            line: at.line_of(at.text.find("tag").unwrap_or(0)),
            key: "desk.tag".into(),
            message: "the tag must be one word of letters, digits, - or _".into(),
        });
    }
    if raw.desk.first_ticket_number < 1 {
        problems.push(ConfigProblem {
            file: at.file.into(),
            line: at.line_of(at.text.find("first_ticket_number").unwrap_or(0)),
            key: "desk.first_ticket_number".into(),
            message: "must be 1 or more".into(),
        });
    }

    let mut mailboxes = Vec::new();
    for spanned in raw.mailboxes {
        let span = spanned.span();
        let m = spanned.into_inner();
        let key = |k: &str| format!("mailboxes.{k} (mailbox `{}`)", m.name);
        if mailboxes.iter().any(|x: &Mailbox| x.name == m.name) {
            problems.push(at.problem(span.clone(), key("name"), "two mailboxes have this name"));
        }
        if !m.address.contains('@') {
            problems.push(at.problem(
                span.clone(),
                key("address"),
                format!("`{}` is not an e-mail address", m.address),
            ));
        }
        let default_poll = match m.source {
            SourceKind::Imap => 60,
            SourceKind::Maildir => 5,
        };
        let poll = match m.poll_interval.map(|d| d.0.wall_seconds()) {
            None => default_poll,
            Some(Some(s)) if s > 0 => s,
            Some(_) => {
                problems.push(at.problem(
                    span.clone(),
                    key("poll_interval"),
                    "must be a positive wall-clock duration such as 5s or 1m",
                ));
                default_poll
            }
        };
        let source = match m.source {
            SourceKind::Maildir => match m.path.clone() {
                Some(path) => MailboxSource::Maildir { path },
                None => {
                    problems.push(at.problem(
                        span.clone(),
                        key("path"),
                        "a maildir mailbox needs `path`",
                    ));
                    MailboxSource::Maildir {
                        path: String::new(),
                    }
                }
            },
            SourceKind::Imap => {
                let host = m.host.clone().unwrap_or_else(|| {
                    problems.push(at.problem(
                        span.clone(),
                        key("host"),
                        "an imap mailbox needs `host`",
                    ));
                    String::new()
                });
                let security = m.security.unwrap_or(Security::Tls);
                if security == Security::None && !is_loopback(&host) {
                    problems.push(at.problem(span.clone(), key("security"), format!("security = \"none\" sends the password in clear text; it is only allowed for a loopback host, not `{host}`")));
                }
                let username = m.username.clone().unwrap_or_else(|| {
                    problems.push(at.problem(
                        span.clone(),
                        key("username"),
                        "an imap mailbox needs `username`",
                    ));
                    String::new()
                });
                let password = Secret::from_keys(
                    m.password.clone(),
                    m.password_env.clone(),
                    m.password_file.clone(),
                )
                .unwrap_or_else(|e| {
                    problems.push(at.problem(span.clone(), key("password"), e));
                    Secret::None
                });
                if password == Secret::None {
                    problems.push(at.problem(
                        span.clone(),
                        key("password"),
                        "an imap mailbox needs password, password_env or password_file",
                    ));
                }
                let port = m.port.unwrap_or(match security {
                    Security::Tls => 993,
                    Security::Starttls | Security::None => 143,
                });
                // Mail moved into the folder it is read from would come back
                // under a new UID, for ever.
                if let AfterProcessing::Move(target) = &m.after_processing {
                    let same = if m.folder.eq_ignore_ascii_case("INBOX") {
                        target.eq_ignore_ascii_case("INBOX")
                    } else {
                        *target == m.folder
                    };
                    if same {
                        problems.push(at.problem(span.clone(), key("after_processing"), format!("`move:{target}` moves mail into the folder it is read from (`{}`); name another folder", m.folder)));
                    }
                }
                MailboxSource::Imap {
                    host,
                    port,
                    security,
                    username,
                    password,
                    folder: m.folder.clone(),
                    after_processing: m.after_processing.clone(),
                    idle: m.idle,
                }
            }
        };
        if m.source == SourceKind::Maildir && (m.host.is_some() || m.username.is_some()) {
            problems.push(at.problem(
                span.clone(),
                key("source"),
                "host/username are for imap mailboxes; this one is maildir",
            ));
        }
        mailboxes.push(Mailbox {
            name: m.name,
            address: normalize_address(&m.address),
            queue: m.queue,
            source,
            poll_interval_secs: poll,
            notes_address: m.notes_address.map(|a| normalize_address(&a)),
            line: at.line_of(span.start),
        });
    }
    if mailboxes.is_empty() {
        problems.push(ConfigProblem {
            file: at.file.into(),
            line: 1,
            key: "mailboxes".into(),
            message: "no [[mailboxes]]: add at least one".into(),
        });
    }

    let smtp = match raw.smtp {
        None => {
            problems.push(ConfigProblem {
                file: at.file.into(),
                line: 1,
                key: "smtp".into(),
                message: "no [smtp] section: set transport = \"file\" or \"smtp\"".into(),
            });
            Smtp {
                transport: SmtpTransport::File {
                    dir: "var/outbox".into(),
                },
                from_name: None,
                line: 1,
            }
        }
        Some(spanned) => {
            let span = spanned.span();
            let s = spanned.into_inner();
            let transport = match s.transport {
                TransportKind::File => SmtpTransport::File {
                    dir: s.dir.clone().unwrap_or_else(|| {
                        problems.push(at.problem(
                            span.clone(),
                            "smtp.dir",
                            "the file transport needs `dir`",
                        ));
                        String::new()
                    }),
                },
                TransportKind::Smtp => {
                    let host = s.host.clone().unwrap_or_else(|| {
                        problems.push(at.problem(
                            span.clone(),
                            "smtp.host",
                            "the smtp transport needs `host`",
                        ));
                        String::new()
                    });
                    let security = s.security.unwrap_or(Security::Starttls);
                    if security == Security::None && !is_loopback(&host) && s.username.is_some() {
                        problems.push(at.problem(span.clone(), "smtp.security", format!("security = \"none\" with a password is only allowed for a loopback host, not `{host}`")));
                    }
                    let password = Secret::from_keys(
                        s.password.clone(),
                        s.password_env.clone(),
                        s.password_file.clone(),
                    )
                    .unwrap_or_else(|e| {
                        problems.push(at.problem(span.clone(), "smtp.password", e));
                        Secret::None
                    });
                    let port = s.port.unwrap_or(match security {
                        Security::Tls => 465,
                        Security::Starttls => 587,
                        Security::None => 25,
                    });
                    SmtpTransport::Smtp {
                        host,
                        port,
                        security,
                        username: s.username.clone(),
                        password,
                    }
                }
            };
            Smtp {
                transport,
                from_name: s.from_name,
                line: at.line_of(span.start),
            }
        }
    };

    let mut agents = Vec::new();
    for spanned in raw.agents {
        let span = spanned.span();
        let mut a = spanned.into_inner();
        if !a.email.contains('@') {
            problems.push(at.problem(
                span.clone(),
                "agents.email",
                format!("`{}` is not an e-mail address", a.email),
            ));
        }
        a.email = normalize_address(&a.email);
        agents.push(a);
    }
    let mut customers = Vec::new();
    for spanned in raw.customers {
        let span = spanned.span();
        let c = spanned.into_inner();
        if c.domains.is_empty() && c.addresses.is_empty() {
            problems.push(at.problem(
                span.clone(),
                format!("customers.domains (customer `{}`)", c.name),
                "give domains or addresses so mail can be matched to this customer",
            ));
        }
        customers.push(c);
    }
    for (i, pattern) in raw.intake.human_senders.iter().enumerate() {
        if !pattern.contains('@') {
            problems.push(ConfigProblem {
                file: at.file.into(),
                line: at.line_of(at.text.find("human_senders").unwrap_or(0)),
                key: format!("intake.human_senders[{i}]"),
                message: format!("`{pattern}` is neither an address nor *@domain"),
            });
        }
    }

    let mut rules = Vec::new();
    for spanned in raw.rules {
        let span = spanned.span();
        let mut r = spanned.into_inner();
        r.line = at.line_of(span.start);
        if r.subject.is_none() && r.body.is_none() && r.from.is_none() && r.mailbox.is_none() {
            problems.push(at.problem(
                span.clone(),
                "rules",
                "a rule needs at least one of subject, body, from, mailbox",
            ));
        }
        if let Some(assignee) = &r.set.assignee
            && !agents.iter().any(|a: &Agent| {
                a.email == normalize_address(assignee) || a.name.eq_ignore_ascii_case(assignee)
            })
        {
            problems.push(at.problem(
                span.clone(),
                "rules.set.assignee",
                format!("`{assignee}` is not an agent in [[agents]]"),
            ));
        }
        rules.push(r);
    }

    let mut sla = Vec::new();
    for spanned in raw.sla {
        let span = spanned.span();
        let mut p = spanned.into_inner();
        p.line = at.line_of(span.start);
        if !calendars.contains_key(&p.calendar) {
            problems.push(at.problem(
                span.clone(),
                format!("sla.calendar (policy `{}`)", p.name),
                format!("no calendar named `{}`", p.calendar),
            ));
        }
        if !(0.0..=1.0).contains(&p.warn_at) {
            problems.push(at.problem(
                span.clone(),
                format!("sla.warn_at (policy `{}`)", p.name),
                "must be between 0 and 1",
            ));
        }
        if p.first_response.is_none() && p.resolution.is_none() {
            problems.push(at.problem(
                span.clone(),
                format!("sla (policy `{}`)", p.name),
                "give first_response, resolution or both",
            ));
        }
        sla.push(p);
    }
    let mut escalation = Vec::new();
    for spanned in raw.escalation {
        let span = spanned.span();
        let mut e = spanned.into_inner();
        e.line = at.line_of(span.start);
        if !calendars.contains_key(&e.calendar) {
            problems.push(at.problem(
                span.clone(),
                "escalation.calendar",
                format!("no calendar named `{}`", e.calendar),
            ));
        }
        if e.notify.is_empty() || e.notify.iter().any(|a| !a.contains('@')) {
            problems.push(at.problem(
                span.clone(),
                "escalation.notify",
                "give one or more e-mail addresses",
            ));
        }
        escalation.push(e);
    }
    if raw.validation.keywords.iter().all(|k| k.trim().is_empty()) {
        problems.push(ConfigProblem {
            file: at.file.into(),
            line: at.line_of(at.text.find("keywords").unwrap_or(0)),
            key: "validation.keywords".into(),
            message: "give at least one keyword".into(),
        });
    }

    let http = raw.http.map(|spanned| {
        let h = spanned.into_inner();
        let loopback = std::net::SocketAddr::from(([127, 0, 0, 1], 9810));
        let listen = match &h.listen {
            None => loopback,
            Some(l) => match l.get_ref().trim().parse::<std::net::SocketAddr>() {
                Ok(addr) => addr,
                Err(_) => {
                    problems.push(at.problem(
                        l.span(),
                        "http.listen",
                        format!(
                            "`{}` is not an address and port such as {DEFAULT_HTTP_LISTEN}",
                            l.get_ref()
                        ),
                    ));
                    loopback
                }
            },
        };
        let outbox_max_age_secs = match &h.outbox_max_age {
            None => DEFAULT_OUTBOX_MAX_AGE_SECS,
            Some(d) => match d.get_ref().0.wall_seconds() {
                Some(s) if s > 0 => s,
                _ => {
                    problems.push(at.problem(
                        d.span(),
                        "http.outbox_max_age",
                        "must be a positive wall-clock duration such as 15m",
                    ));
                    DEFAULT_OUTBOX_MAX_AGE_SECS
                }
            },
        };
        Http {
            listen,
            outbox_max_age_secs,
        }
    });

    let tags = crate::subject::TagMatcher::new(&raw.desk.tag);
    Config {
        file: at.file.to_string(),
        desk: raw.desk,
        mailboxes,
        smtp,
        agents,
        customers,
        intake: raw.intake,
        duplicates: raw.duplicates,
        rules,
        calendars,
        sla,
        escalation,
        tags,
        validation: raw.validation,
        http,
    }
}

/// `*.cliente.com` or `.cliente.com`: the domain and all its subdomains.
/// A plain `cliente.com` matches only itself: a subdomain may be a different
/// company (a reseller, a hosting customer), so the admin says so explicitly.
fn subdomain_parent(entry: &str) -> Option<String> {
    let e = entry.trim().to_ascii_lowercase();
    e.strip_prefix("*.")
        .or_else(|| e.strip_prefix('.'))
        .filter(|p| p.contains('.'))
        .map(str::to_string)
}

fn is_loopback(host: &str) -> bool {
    host == "localhost" || host == "::1" || host == "[::1]" || host.starts_with("127.")
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[desk]
name = "Soporte"

[[mailboxes]]
name = "soporte"
address = "soporte@example.com"
source = "maildir"
path = "var/mail"

[smtp]
transport = "file"
dir = "var/outbox"
"#;

    #[test]
    fn minimal_config_has_spec_defaults() {
        let c = Config::parse(MINIMAL, "t.toml").unwrap();
        assert_eq!(c.desk.tag, "Ticket");
        assert_eq!(c.desk.language, Language::Es);
        assert_eq!(c.mailboxes[0].poll_interval_secs, 5);
        assert_eq!(c.mailboxes[0].queue, "general");
        assert_eq!(c.intake.max_message_size.0, 25 * 1024 * 1024);
        assert_eq!(
            c.intake.ack_rate_limit,
            Rate {
                count: 5,
                per_seconds: 3600
            }
        );
        assert_eq!(c.validation.keywords[0], "conforme");
        assert!(c.calendars.contains_key("24x7"));
    }

    #[test]
    fn http_section_defaults_to_loopback_and_names_bad_keys() {
        let c = Config::parse(MINIMAL, "t.toml").unwrap();
        assert_eq!(c.http, None);
        let c = Config::parse(&format!("{MINIMAL}\n[http]\n"), "t.toml").unwrap();
        let http = c.http.unwrap();
        assert_eq!(http.listen.to_string(), DEFAULT_HTTP_LISTEN);
        assert_eq!(http.outbox_max_age_secs, 900);
        let text = format!("{MINIMAL}\n[http]\nlisten = \"[::1]:9900\"\noutbox_max_age = \"1h\"\n");
        let http = Config::parse(&text, "t.toml").unwrap().http.unwrap();
        assert_eq!(http.listen.to_string(), "[::1]:9900");
        assert_eq!(http.outbox_max_age_secs, 3600);
        let text = format!("{MINIMAL}\n[http]\nlisten = \"localhost\"\noutbox_max_age = \"2bd\"\n");
        let err = Config::parse(&text, "t.toml").unwrap_err();
        let keys: Vec<_> = err
            .problems
            .iter()
            .map(|p| (p.key.as_str(), p.line))
            .collect();
        let lines = MINIMAL.lines().count() + 2;
        assert_eq!(
            keys,
            [
                ("http.listen", lines + 1),
                ("http.outbox_max_age", lines + 2)
            ]
        );
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let text = MINIMAL.replace(
            "name = \"Soporte\"",
            "name = \"Soporte\"\ncolour = \"blue\"",
        );
        let err = Config::parse(&text, "t.toml").unwrap_err();
        let p = &err.problems[0];
        assert_eq!(
            (p.file.as_str(), p.line, p.key.as_str()),
            ("t.toml", 4, "desk.colour")
        );
    }

    #[test]
    fn bad_duration_is_located() {
        let text = format!("{MINIMAL}\n[intake]\nreopen_window = \"two weeks\"\n");
        let err = Config::parse(&text, "t.toml").unwrap_err();
        assert_eq!(err.problems[0].key, "intake.reopen_window");
        assert_eq!(err.problems[0].line, 16);
    }

    #[test]
    fn imap_security_none_only_on_loopback() {
        let text = format!(
            "{MINIMAL}\n[[mailboxes]]\nname = \"x\"\naddress = \"x@example.com\"\nsource = \"imap\"\nhost = \"mail.example.com\"\nsecurity = \"none\"\nusername = \"x\"\npassword_env = \"X\"\n"
        );
        let err = Config::parse(&text, "t.toml").unwrap_err();
        assert!(
            err.problems.iter().any(|p| p.key.contains("security")),
            "{err}"
        );
    }

    #[test]
    fn imap_move_into_the_folder_read_from_is_refused() {
        for (folder, after) in [("INBOX", "move:inbox"), ("Soporte", "move:Soporte")] {
            let text = format!(
                "{MINIMAL}\n[[mailboxes]]\nname = \"x\"\naddress = \"x@example.com\"\nsource = \"imap\"\nhost = \"mail.example.com\"\nusername = \"x\"\npassword_env = \"X\"\nfolder = \"{folder}\"\nafter_processing = \"{after}\"\n"
            );
            let err = Config::parse(&text, "t.toml").unwrap_err();
            assert!(
                err.problems
                    .iter()
                    .any(|p| p.key.contains("after_processing")),
                "{err}"
            );
        }
    }

    #[test]
    fn rules_compile_and_bad_regex_is_located() {
        let text = format!(
            "{MINIMAL}\n[[rules]]\nsubject = \"(unclosed\"\nset = {{ priority = \"urgente\" }}\n"
        );
        let err = Config::parse(&text, "t.toml").unwrap_err();
        assert!(err.problems[0].message.contains("regex"), "{err}");
        assert_eq!(err.problems[0].line, 16);
    }

    #[test]
    fn calendars_sla_and_escalation_parse() {
        let text = format!(
            "{MINIMAL}\n[calendars.oficina]\ntimezone = \"Europe/Madrid\"\nmon = \"09:00-13:00,14:00-18:00\"\nholidays = [\"2026-12-25\", 2026-01-01]\n\n[[sla]]\nname = \"urgente\"\nmatch = {{ priority = \"urgent\" }}\nfirst_response = \"1h\"\nresolution = \"8h\"\n\n[[sla]]\nname = \"request\"\ncalendar = \"oficina\"\nresolution = \"3bd\"\n\n[[escalation]]\nafter_no_update = \"24h\"\nnotify = [\"lead@example.com\"]\n"
        );
        let c = Config::parse(&text, "t.toml").unwrap();
        assert_eq!(c.calendars["oficina"].holidays.len(), 2);
        assert_eq!(c.sla[1].resolution, Some(Duration(Span::BusinessDays(3))));
        assert_eq!(c.escalation.len(), 1);
    }

    #[test]
    fn customers_by_address_then_domain_subdomains_only_when_asked() {
        let text = format!(
            "{MINIMAL}\n[[customers]]\nname = \"A\"\ndomains = [\"a.com\"]\n\n[[customers]]\nname = \"B\"\ndomains = [\"*.b.com\"]\naddresses = [\"boss@a.com\"]\n\n[[customers]]\nname = \"B-Sales\"\ndomains = [\".sales.b.com\"]\n"
        );
        let c = Config::parse(&text, "t.toml").unwrap();
        let name = |a: &str| c.customer_for(a).map(|c| c.name.clone());
        assert_eq!(name("x@a.com").as_deref(), Some("A"));
        assert_eq!(
            name("x@eu.a.com"),
            None,
            "a plain domain does not cover subdomains"
        );
        assert_eq!(
            name("boss@a.com").as_deref(),
            Some("B"),
            "an address beats a domain"
        );
        assert_eq!(name("x@b.com").as_deref(), Some("B"));
        assert_eq!(name("x@mad.b.com").as_deref(), Some("B"));
        assert_eq!(
            name("x@eu.sales.b.com").as_deref(),
            Some("B-Sales"),
            "the most specific entry wins"
        );
        assert_eq!(name("x@notb.com"), None);
    }

    #[test]
    fn several_problems_are_reported_together() {
        let text = format!(
            "{MINIMAL}\n[[sla]]\nname = \"x\"\ncalendar = \"nope\"\nwarn_at = 3.0\nresolution = \"1h\"\n"
        );
        let err = Config::parse(&text, "t.toml").unwrap_err();
        assert_eq!(err.problems.len(), 2, "{err}");
    }
}
