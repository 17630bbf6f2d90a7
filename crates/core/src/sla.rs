//! SLA policies and clocks (SPEC §7): which `[[sla]]` applies to a ticket
//! (the first whose `match` fits), its first-response and resolution
//! deadlines counted in the policy's calendar from the first `received_at`,
//! the resolution clock paused while `waiting`, and the ticket's SLA state at
//! a given instant.
//!
//! Pure: the clock and the ticket's facts are arguments.

use chrono::{DateTime, Utc};

use crate::calendar::{self, add_working_seconds, working_seconds_between};
use crate::config::{Calendar, Config, SlaPolicy};
use crate::ticket::{Priority, Status, TicketType};
use crate::units::Span;

/// The facts a policy is chosen on.
#[derive(Debug, Clone, Copy)]
pub struct PolicyKey<'a> {
    pub priority: Priority,
    pub ticket_type: Option<TicketType>,
    pub plan: Option<&'a str>,
    pub queue: &'a str,
}

/// The first policy whose every given `match` key fits.
pub fn choose<'c>(config: &'c Config, key: PolicyKey<'_>) -> Option<&'c SlaPolicy> {
    config.sla.iter().find(|p| {
        let m = &p.matches;
        m.priority.is_none_or(|x| x == key.priority)
            && m.ticket_type.is_none_or(|x| Some(x) == key.ticket_type)
            && m.plan.as_deref().is_none_or(|x| Some(x) == key.plan)
            && m.queue.as_deref().is_none_or(|x| x == key.queue)
    })
}

/// The policy's calendar (validated to exist; `24x7` otherwise).
pub fn calendar_of<'c>(config: &'c Config, policy: &SlaPolicy) -> std::borrow::Cow<'c, Calendar> {
    match config.calendar(&policy.calendar) {
        Some(c) => std::borrow::Cow::Borrowed(c),
        None => std::borrow::Cow::Owned(Calendar::always_open()),
    }
}

/// A ticket's deadlines under a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deadlines {
    pub policy: String,
    pub first_response_due: Option<DateTime<Utc>>,
    pub resolution_due: Option<DateTime<Utc>>,
}

/// Deadlines from `received_at`; the resolution deadline moves later by the
/// working time its clock was stopped (`paused_seconds`: waiting on the
/// customer when the policy pauses, and resolved until reopened).
pub fn deadlines(
    config: &Config,
    policy: &SlaPolicy,
    received_at: DateTime<Utc>,
    paused_seconds: i64,
) -> Deadlines {
    let cal = calendar_of(config, policy);
    let first_response_due = policy
        .first_response
        .and_then(|d| calendar::add(&cal, received_at, d.0));
    let resolution_due = policy
        .resolution
        .and_then(|d| calendar::add(&cal, received_at, d.0))
        .and_then(|due| {
            if paused_seconds > 0 {
                add_working_seconds(&cal, due, paused_seconds)
            } else {
                Some(due)
            }
        });
    Deadlines {
        policy: policy.name.clone(),
        first_response_due,
        resolution_due,
    }
}

/// What the SLA clock says about a ticket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlaState {
    Ok,
    Warning,
    Breached,
    Paused,
    Met,
    None,
}

impl SlaState {
    pub fn code(self) -> &'static str {
        match self {
            SlaState::Ok => "ok",
            SlaState::Warning => "warning",
            SlaState::Breached => "breached",
            SlaState::Paused => "paused",
            SlaState::Met => "met",
            SlaState::None => "none",
        }
    }
}

/// A ticket's SLA facts as stored.
#[derive(Debug, Clone, Copy)]
pub struct Clock<'a> {
    pub policy: Option<&'a SlaPolicy>,
    pub status: Status,
    pub received_at: DateTime<Utc>,
    pub first_response_due: Option<DateTime<Utc>>,
    pub first_response_at: Option<DateTime<Utc>>,
    pub resolution_due: Option<DateTime<Utc>>,
}

/// One clock still running: its deadline and the instant its warning fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Running {
    pub first_response: bool,
    pub due: DateTime<Utc>,
    pub warn_at: DateTime<Utc>,
}

/// The clocks not yet met, nearest deadline first.
pub fn running(config: &Config, c: &Clock<'_>) -> Vec<Running> {
    let Some(policy) = c.policy else {
        return Vec::new();
    };
    let cal = calendar_of(config, policy);
    let mut out = Vec::new();
    let warn = |due: DateTime<Utc>| {
        let budget = working_seconds_between(&cal, c.received_at, due);
        let offset = (budget as f64 * policy.warn_at).round() as i64;
        add_working_seconds(&cal, c.received_at, offset).unwrap_or(due)
    };
    if let (Some(due), None) = (c.first_response_due, c.first_response_at) {
        out.push(Running {
            first_response: true,
            due,
            warn_at: warn(due),
        });
    }
    if let Some(due) = c.resolution_due
        && !matches!(
            c.status,
            Status::Resolved | Status::Closed | Status::Cancelled
        )
    {
        out.push(Running {
            first_response: false,
            due,
            warn_at: warn(due),
        });
    }
    out.sort_by_key(|r| r.due);
    out
}

/// The state at `now`.
pub fn state(config: &Config, c: &Clock<'_>, now: DateTime<Utc>) -> SlaState {
    if c.policy.is_none() || c.status == Status::Cancelled {
        return SlaState::None;
    }
    let clocks = running(config, c);
    if clocks.iter().any(|r| now >= r.due) {
        return SlaState::Breached;
    }
    if c.status == Status::Waiting
        && c.policy.is_some_and(|p| p.pause_when_waiting)
        && clocks.iter().all(|r| !r.first_response)
    {
        return SlaState::Paused;
    }
    if clocks.is_empty() {
        return SlaState::Met;
    }
    if clocks.iter().any(|r| now >= r.warn_at) {
        return SlaState::Warning;
    }
    SlaState::Ok
}

/// Working seconds from `now` to the nearest unmet deadline (negative once
/// breached); `None` without a policy or with every clock met.
pub fn remaining_seconds(config: &Config, c: &Clock<'_>, now: DateTime<Utc>) -> Option<i64> {
    let policy = c.policy?;
    let nearest = running(config, c).into_iter().next()?;
    let cal = calendar_of(config, policy);
    Some(working_seconds_between(&cal, now, nearest.due))
}

/// Working seconds between two instants in the policy's calendar (the time a
/// ticket spent waiting, to add to `paused_seconds`).
pub fn working_time(
    config: &Config,
    policy: &SlaPolicy,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> i64 {
    working_seconds_between(&calendar_of(config, policy), from, to).max(0)
}

/// A span as wall-clock for display (`8h`, `3bd`).
pub fn describe(span: Span) -> String {
    span.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    /// The desks' promises (SPEC intro): problem 24 h, question 48 h, anomaly
    /// 72 h, request 3 business days, usability 2 business days, urgent 8 h
    /// around the clock; Monday–Friday 09:00–18:00 with holidays.
    fn seeds() -> Config {
        let text = r#"
[desk]
timezone = "Europe/Madrid"
[[mailboxes]]
name = "soporte"
address = "soporte@example.com"
source = "maildir"
path = "mail"
[smtp]
transport = "file"
dir = "outbox"
[calendars.oficina]
mon = "09:00-18:00"
tue = "09:00-18:00"
wed = "09:00-18:00"
thu = "09:00-18:00"
fri = "09:00-18:00"
holidays = ["2026-12-08", "2026-12-25"]
[[sla]]
name = "urgente"
match = { priority = "urgent" }
calendar = "24x7"
resolution = "8h"
[[sla]]
name = "problema"
match = { type = "problem" }
calendar = "oficina"
first_response = "4h"
resolution = "24h"
[[sla]]
name = "pregunta"
match = { type = "question" }
calendar = "oficina"
resolution = "48h"
[[sla]]
name = "anomalia"
match = { type = "anomaly" }
calendar = "oficina"
resolution = "72h"
[[sla]]
name = "solicitud"
match = { type = "request" }
calendar = "oficina"
resolution = "3bd"
[[sla]]
name = "usabilidad"
match = { type = "usability" }
calendar = "oficina"
resolution = "2bd"
"#;
        Config::parse(text, "seeds.toml").unwrap()
    }

    fn due(
        config: &Config,
        priority: Priority,
        t: Option<TicketType>,
        at: &str,
    ) -> Option<DateTime<Utc>> {
        let policy = choose(
            config,
            PolicyKey {
                priority,
                ticket_type: t,
                plan: None,
                queue: "general",
            },
        )?;
        deadlines(config, policy, utc(at), 0).resolution_due
    }

    #[test]
    fn the_seeds_table() {
        let c = seeds();
        // Problem, 24 working hours from Monday 10:00 CET (9 h a day: 8 + 9 + 7): Wednesday 16:00.
        assert_eq!(
            due(
                &c,
                Priority::Medium,
                Some(TicketType::Problem),
                "2026-11-23T09:00:00Z"
            ),
            Some(utc("2026-11-25T15:00:00Z"))
        );
        // Created Friday 20:00 (outside hours): counts from Monday 09:00 → Wednesday 15:00.
        assert_eq!(
            due(
                &c,
                Priority::Medium,
                Some(TicketType::Problem),
                "2026-11-27T19:00:00Z"
            ),
            Some(utc("2026-12-02T14:00:00Z"))
        );
        // Question, 48 h = 5 days and 3 h: Monday 10:00 → next Monday 13:00.
        assert_eq!(
            due(
                &c,
                Priority::Medium,
                Some(TicketType::Question),
                "2026-11-23T09:00:00Z"
            ),
            Some(utc("2026-11-30T12:00:00Z"))
        );
        // Anomaly, 72 h = 8 days: Monday 10:00 → Thursday 10:00 next week.
        assert_eq!(
            due(
                &c,
                Priority::Medium,
                Some(TicketType::Anomaly),
                "2026-11-23T09:00:00Z"
            ),
            Some(utc("2026-12-03T09:00:00Z"))
        );
        // Request, 3 business days from Friday 11:00, over the 8 December holiday: Thursday 10 Dec 11:00.
        assert_eq!(
            due(
                &c,
                Priority::Medium,
                Some(TicketType::Request),
                "2026-12-04T10:00:00Z"
            ),
            Some(utc("2026-12-10T10:00:00Z"))
        );
        // Usability, 2 business days from Monday 7 December (before the holiday): Wednesday 9 + 1 → Thursday 10.
        assert_eq!(
            due(
                &c,
                Priority::Medium,
                Some(TicketType::Usability),
                "2026-12-07T10:00:00Z"
            ),
            Some(utc("2026-12-10T10:00:00Z"))
        );
        // Urgent: 8 h around the clock, also on a Friday evening.
        assert_eq!(
            due(
                &c,
                Priority::Urgent,
                Some(TicketType::Problem),
                "2026-11-27T19:00:00Z"
            ),
            Some(utc("2026-11-28T03:00:00Z"))
        );
        // Bug has no policy here.
        assert_eq!(
            due(
                &c,
                Priority::Medium,
                Some(TicketType::Bug),
                "2026-11-23T09:00:00Z"
            ),
            None
        );
    }

    #[test]
    fn waiting_moves_the_resolution_deadline_not_the_first_response() {
        let c = seeds();
        let policy = choose(
            &c,
            PolicyKey {
                priority: Priority::Medium,
                ticket_type: Some(TicketType::Problem),
                plan: None,
                queue: "general",
            },
        )
        .unwrap();
        let created = utc("2026-11-23T09:00:00Z");
        let plain = deadlines(&c, policy, created, 0);
        // Waiting from Monday 12:00 to Wednesday 12:00 local: two working days = 18 h.
        let paused = working_time(
            &c,
            policy,
            utc("2026-11-23T11:00:00Z"),
            utc("2026-11-25T11:00:00Z"),
        );
        assert_eq!(paused, 18 * 3600);
        let moved = deadlines(&c, policy, created, paused);
        assert_eq!(moved.first_response_due, plain.first_response_due);
        let cal = calendar_of(&c, policy);
        assert_eq!(
            working_seconds_between(
                &cal,
                plain.resolution_due.unwrap(),
                moved.resolution_due.unwrap()
            ),
            18 * 3600
        );
    }

    #[test]
    fn states_over_time() {
        let c = seeds();
        let policy = choose(
            &c,
            PolicyKey {
                priority: Priority::Medium,
                ticket_type: Some(TicketType::Problem),
                plan: None,
                queue: "general",
            },
        )
        .unwrap();
        let created = utc("2026-11-23T09:00:00Z");
        let d = deadlines(&c, policy, created, 0);
        let mut clock = Clock {
            policy: Some(policy),
            status: Status::Open,
            received_at: created,
            first_response_due: d.first_response_due,
            first_response_at: None,
            resolution_due: d.resolution_due,
        };
        assert_eq!(state(&c, &clock, created), SlaState::Ok);
        // 80 % of the 4 h first-response budget: 13:12 local.
        assert_eq!(
            state(&c, &clock, utc("2026-11-23T12:12:00Z")),
            SlaState::Warning
        );
        assert_eq!(
            state(&c, &clock, utc("2026-11-23T13:00:00Z")),
            SlaState::Breached
        );
        assert_eq!(
            remaining_seconds(&c, &clock, utc("2026-11-23T12:00:00Z")),
            Some(3600)
        );
        clock.first_response_at = Some(utc("2026-11-23T10:00:00Z"));
        assert_eq!(state(&c, &clock, utc("2026-11-23T13:00:00Z")), SlaState::Ok);
        clock.status = Status::Waiting;
        assert_eq!(
            state(&c, &clock, utc("2026-11-23T13:00:00Z")),
            SlaState::Paused
        );
        clock.status = Status::Resolved;
        assert_eq!(
            state(&c, &clock, utc("2026-12-20T13:00:00Z")),
            SlaState::Met
        );
        assert_eq!(
            remaining_seconds(&c, &clock, utc("2026-12-20T13:00:00Z")),
            None
        );
    }
}
