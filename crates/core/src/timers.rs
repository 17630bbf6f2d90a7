//! Timers (SPEC §6, §7): what is due at `now` — an SLA warning at `warn_at`
//! of a budget, a breach at its deadline, escalation levels on silence since
//! the support side's last update, the weekly validation reminder digest per
//! requester, and auto-close of resolved tickets. Every action carries an
//! idempotency key: the shell records it in the same transaction as the
//! action's effects, so each fires exactly once — also across restarts, and
//! late rather than never after downtime.
//!
//! Pure: tickets and `now` in, actions out.

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};

use crate::calendar::{add_working_seconds, working_seconds_between};
use crate::config::{Calendar, Config};
use crate::sla::{self, Clock};
use crate::ticket::Status;
use crate::units::Span;

/// A ticket as the timers see it.
#[derive(Debug, Clone)]
pub struct TimerTicket<'a> {
    pub id: i64,
    pub status: Status,
    pub requester: String,
    pub clock: Clock<'a>,
    pub last_update_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub escalation_level: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TimerAction {
    SlaWarning {
        ticket: i64,
        first_response: bool,
        due: DateTime<Utc>,
    },
    SlaBreach {
        ticket: i64,
        first_response: bool,
        due: DateTime<Utc>,
    },
    /// Level is 1-based, in `[[escalation]]` file order; `since` is the
    /// start of the silence (a later update starts a new one).
    Escalate {
        ticket: i64,
        level: usize,
        notify: Vec<String>,
        since: DateTime<Utc>,
    },
    Reminder {
        requester: String,
        tickets: Vec<i64>,
        slot: DateTime<Utc>,
    },
    AutoClose {
        ticket: i64,
    },
}

impl TimerAction {
    /// The key recorded when the action fires; the same key never fires twice.
    pub fn key(&self) -> String {
        match self {
            TimerAction::SlaWarning {
                ticket,
                first_response,
                due,
            } => format!(
                "sla_warning:{ticket}:{}:{}",
                clock_name(*first_response),
                due.timestamp()
            ),
            TimerAction::SlaBreach {
                ticket,
                first_response,
                due,
            } => format!(
                "sla_breach:{ticket}:{}:{}",
                clock_name(*first_response),
                due.timestamp()
            ),
            TimerAction::Escalate {
                ticket,
                level,
                since,
                ..
            } => format!("escalation:{ticket}:{level}:{}", since.timestamp()),
            TimerAction::Reminder {
                requester, slot, ..
            } => format!("reminder:{requester}:{}", slot.timestamp()),
            TimerAction::AutoClose { ticket } => format!("auto_close:{ticket}"),
        }
    }
}

fn clock_name(first_response: bool) -> &'static str {
    if first_response {
        "first_response"
    } else {
        "resolution"
    }
}

/// The calendar an escalation level counts silence in.
fn escalation_calendar<'c>(config: &'c Config, name: &str) -> std::borrow::Cow<'c, Calendar> {
    match config.calendar(name) {
        Some(c) => std::borrow::Cow::Borrowed(c),
        None => std::borrow::Cow::Owned(Calendar::always_open()),
    }
}

fn span_seconds(span: Span, cal: &Calendar, from: DateTime<Utc>) -> i64 {
    match span {
        Span::Seconds(s) => s,
        Span::BusinessDays(n) => crate::calendar::add_business_days(cal, from, n)
            .map_or(i64::MAX, |to| working_seconds_between(cal, from, to)),
    }
}

/// The most recent weekly reminder slot at or before `now`, in the desk's time zone.
pub fn last_reminder_slot(config: &Config, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    let tz = config.desk.timezone.0;
    let slot = config.validation.reminder_schedule;
    let today: NaiveDate = now.with_timezone(&tz).date_naive();
    for back in 0..8 {
        let date = today - Duration::days(back);
        if date.weekday() == slot.weekday {
            let at = tz
                .from_local_datetime(&date.and_time(slot.time))
                .earliest()?
                .with_timezone(&Utc);
            if at <= now {
                return Some(at);
            }
        }
    }
    None
}

/// Everything due at `now` for `tickets` (active and resolved ones).
/// A support-side update resets escalation: the shell sets the ticket's
/// `escalation_level` back to 0, and the keys carry the silence's start.
pub fn due(config: &Config, tickets: &[TimerTicket<'_>], now: DateTime<Utc>) -> Vec<TimerAction> {
    let mut actions = Vec::new();
    let mut reminders: std::collections::BTreeMap<String, Vec<i64>> =
        std::collections::BTreeMap::new();
    let slot = last_reminder_slot(config, now);
    for t in tickets {
        // SLA warnings and breaches of the clocks still running.
        if !(t.status == Status::Waiting && t.clock.policy.is_some_and(|p| p.pause_when_waiting)) {
            for r in sla::running(config, &t.clock) {
                if now >= r.due {
                    actions.push(TimerAction::SlaBreach {
                        ticket: t.id,
                        first_response: r.first_response,
                        due: r.due,
                    });
                } else if now >= r.warn_at {
                    actions.push(TimerAction::SlaWarning {
                        ticket: t.id,
                        first_response: r.first_response,
                        due: r.due,
                    });
                }
            }
        }
        // Escalation on the support side's silence (new and open tickets).
        if matches!(t.status, Status::New | Status::Open) {
            for (i, level) in config.escalation.iter().enumerate() {
                let n = i as i64 + 1;
                if n <= t.escalation_level {
                    continue;
                }
                let cal = escalation_calendar(config, &level.calendar);
                let needed = span_seconds(level.after_no_update.0, &cal, t.last_update_at);
                if working_seconds_between(&cal, t.last_update_at, now) >= needed {
                    actions.push(TimerAction::Escalate {
                        ticket: t.id,
                        level: i + 1,
                        notify: level.notify.clone(),
                        since: t.last_update_at,
                    });
                }
            }
        }
        if t.status == Status::Resolved {
            if let (Some(slot), Some(resolved)) = (slot, t.resolved_at)
                && resolved <= slot
            {
                reminders.entry(t.requester.clone()).or_default().push(t.id);
            }
            if let (Some(after), Some(resolved)) =
                (config.validation.auto_close_after, t.resolved_at)
            {
                let limit = crate::calendar::add(&Calendar::always_open(), resolved, after.0);
                if limit.is_some_and(|l| now >= l) {
                    actions.push(TimerAction::AutoClose { ticket: t.id });
                }
            }
        }
    }
    if let Some(slot) = slot {
        for (requester, tickets) in reminders {
            actions.push(TimerAction::Reminder {
                requester,
                tickets,
                slot,
            });
        }
    }
    actions
}

/// The earliest instant at which one of this ticket's timers (warning,
/// breach, escalation level, auto-close) comes due; with `after`, only
/// instants later than it. The shell stores it per ticket so a timer pass
/// reads only the tickets whose instant has come, by index.
pub fn next_instant(
    config: &Config,
    t: &TimerTicket<'_>,
    after: Option<DateTime<Utc>>,
) -> Option<DateTime<Utc>> {
    let mut candidates = Vec::new();
    if !(t.status == Status::Waiting && t.clock.policy.is_some_and(|p| p.pause_when_waiting)) {
        for r in sla::running(config, &t.clock) {
            candidates.push(r.warn_at);
            candidates.push(r.due);
        }
    }
    if matches!(t.status, Status::New | Status::Open) {
        for (i, level) in config.escalation.iter().enumerate() {
            if (i as i64) < t.escalation_level {
                continue;
            }
            let cal = escalation_calendar(config, &level.calendar);
            let needed = span_seconds(level.after_no_update.0, &cal, t.last_update_at);
            candidates.extend(add_working_seconds(&cal, t.last_update_at, needed));
        }
    }
    if t.status == Status::Resolved
        && let (Some(after_close), Some(resolved)) =
            (config.validation.auto_close_after, t.resolved_at)
    {
        candidates.extend(crate::calendar::add(
            &Calendar::always_open(),
            resolved,
            after_close.0,
        ));
    }
    candidates
        .into_iter()
        .filter(|c| after.is_none_or(|a| *c > a))
        .min()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn reminder_slot_is_the_last_monday_nine_in_the_desk_zone() {
        let text = "[desk]\ntimezone = \"Europe/Madrid\"\n[[mailboxes]]\nname = \"s\"\naddress = \"s@example.com\"\nsource = \"maildir\"\npath = \"m\"\n[smtp]\ntransport = \"file\"\ndir = \"o\"\n";
        let c = Config::parse(text, "t.toml").unwrap();
        // Monday 23 Nov 2026 09:00 CET = 08:00Z.
        assert_eq!(
            last_reminder_slot(&c, utc("2026-11-23T08:00:00Z")),
            Some(utc("2026-11-23T08:00:00Z"))
        );
        assert_eq!(
            last_reminder_slot(&c, utc("2026-11-23T07:59:59Z")),
            Some(utc("2026-11-16T08:00:00Z"))
        );
        assert_eq!(
            last_reminder_slot(&c, utc("2026-11-28T12:00:00Z")),
            Some(utc("2026-11-23T08:00:00Z"))
        );
    }
}
