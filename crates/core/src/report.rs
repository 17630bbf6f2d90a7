//! Reports (SPEC §9): what happened in a period of calendar days, per group
//! of tickets and in total: opened, resolved, closed, cancelled, the backlog
//! at the period's end, first-response and resolution working times (median
//! and p90) and SLA compliance for both clocks.
//!
//! Pure: the shell reads each ticket's facts (its fields and every status it
//! entered, from the event log) and the clock; everything is computed here.
//!
//! Definitions (also in ARCHITECTURE.md, "Decisions where the spec is silent"):
//! - A period is `[from 00:00, to + 1 day 00:00)` in the desk's time zone.
//! - *Resolved*: the ticket entered `resolved`, or `closed` straight from
//!   `new`/`open`/`waiting`, in the period (each ticket counted once).
//!   *Closed*, *cancelled*: it entered that status in the period. *Opened*:
//!   created in the period. *Backlog*: created before the period's end and
//!   `new`, `open` or `waiting` at the end (or now, for a period not over).
//! - *First-response time*: working time from creation to the first relayed
//!   agent reply, for replies in the period. *Resolution time*: the
//!   resolution clock at the ticket's last resolution in the period: working
//!   time from creation, without the time it was stopped (waiting on the
//!   customer when the policy pauses, and resolved until reopened), as the
//!   SLA clock counts it. Working time is in the calendar of the ticket's SLA
//!   policy; a ticket without a policy counts wall-clock time.
//! - *Compliance* counts each deadline once, in the period its outcome was
//!   decided: *met* when the response or resolution came on or before the
//!   deadline, in the period; *missed* when the deadline passed in the period
//!   (and before now) without it, whether the ticket is still open
//!   (breached and still open) or was answered later. A late answer in a
//!   later period does not count again. A ticket cancelled before its
//!   deadline has no outcome. Compliance % = met / (met + missed).
//! - Median and p90 interpolate linearly between the two nearest values (as
//!   Excel's PERCENTILE.INC), rounded to whole seconds.

use std::collections::BTreeMap;

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

use crate::calendar::{self, add_working_seconds, working_seconds_between};
use crate::config::{Calendar, Config, SlaPolicy};
use crate::sla::calendar_of;
use crate::ticket::{Priority, Status};

/// What a report is grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    Customer,
    Type,
    Priority,
    Queue,
    Agent,
}

impl GroupBy {
    pub fn code(self) -> &'static str {
        match self {
            GroupBy::Customer => "customer",
            GroupBy::Type => "type",
            GroupBy::Priority => "priority",
            GroupBy::Queue => "queue",
            GroupBy::Agent => "agent",
        }
    }
}

/// Group labels for tickets without the grouped field.
pub const NO_CUSTOMER: &str = "(no customer)";
pub const NO_TYPE: &str = "(no type)";
pub const UNASSIGNED: &str = "(unassigned)";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    #[error("the period ends on {to}, before it starts on {from}")]
    Backwards { from: NaiveDate, to: NaiveDate },
    #[error("{0} is out of the supported date range")]
    OutOfRange(NaiveDate),
}

/// A report period: calendar days in the desk's time zone, as the instants
/// `[start, end)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

impl Period {
    /// The days `from..=to` in `tz`.
    pub fn days(tz: Tz, from: NaiveDate, to: NaiveDate) -> Result<Period, ReportError> {
        if to < from {
            return Err(ReportError::Backwards { from, to });
        }
        let next = to.succ_opt().ok_or(ReportError::OutOfRange(to))?;
        Ok(Period {
            from,
            to,
            start: midnight(tz, from).ok_or(ReportError::OutOfRange(from))?,
            end: midnight(tz, next).ok_or(ReportError::OutOfRange(to))?,
        })
    }

    /// The default period: the current month up to and including today.
    pub fn month_to_date(tz: Tz, now: DateTime<Utc>) -> Result<Period, ReportError> {
        let today = now.with_timezone(&tz).date_naive();
        let first = today.with_day(1).unwrap_or(today);
        Period::days(tz, first, today)
    }

    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.start <= t && t < self.end
    }
}

/// The first instant of a local date (a midnight inside a DST gap moves to
/// the end of the gap).
fn midnight(tz: Tz, date: NaiveDate) -> Option<DateTime<Utc>> {
    let mut local = date.and_time(NaiveTime::MIN);
    for _ in 0..=24 * 4 {
        if let Some(t) = tz.from_local_datetime(&local).earliest() {
            return Some(t.with_timezone(&Utc));
        }
        local += Duration::minutes(15);
    }
    None
}

/// What a report needs to know about one ticket.
#[derive(Debug, Clone)]
pub struct TicketFacts {
    pub id: i64,
    pub priority: String,
    pub ticket_type: Option<String>,
    pub queue: String,
    pub customer: Option<String>,
    pub assignee: Option<String>,
    pub created_at: DateTime<Utc>,
    pub first_response_at: Option<DateTime<Utc>>,
    pub first_response_due: Option<DateTime<Utc>>,
    /// The name of the SLA policy that applies (as stored).
    pub sla_policy: Option<String>,
    /// Every status the ticket entered, in order, its creation (`new`) first.
    pub history: Vec<(DateTime<Utc>, Status)>,
}

impl TicketFacts {
    /// The group this ticket falls in.
    pub fn group(&self, by: GroupBy) -> String {
        match by {
            GroupBy::Customer => self.customer.clone().unwrap_or_else(|| NO_CUSTOMER.into()),
            GroupBy::Type => self.ticket_type.clone().unwrap_or_else(|| NO_TYPE.into()),
            GroupBy::Priority => self.priority.clone(),
            GroupBy::Queue => self.queue.clone(),
            GroupBy::Agent => self.assignee.clone().unwrap_or_else(|| UNASSIGNED.into()),
        }
    }

    fn policy<'c>(&self, config: &'c Config) -> Option<&'c SlaPolicy> {
        let name = self.sla_policy.as_deref()?;
        config.sla.iter().find(|p| p.name == name)
    }

    /// The status history, never empty (creation as `new` at least).
    fn steps(&self) -> Vec<(DateTime<Utc>, Status)> {
        let mut steps = self.history.clone();
        if steps.is_empty() {
            steps.push((self.created_at, Status::New));
        }
        steps
    }

    /// The status at instant `t` (entries at `t` itself not yet applied).
    fn status_before(&self, t: DateTime<Utc>) -> Option<Status> {
        self.steps()
            .iter()
            .take_while(|(at, _)| *at < t)
            .last()
            .map(|&(_, s)| s)
    }
}

/// The calendar and pause rule the ticket's clocks run on.
struct Clocks<'c> {
    calendar: std::borrow::Cow<'c, Calendar>,
    policy: Option<&'c SlaPolicy>,
}

impl<'c> Clocks<'c> {
    fn of(config: &'c Config, t: &TicketFacts) -> Clocks<'c> {
        let policy = t.policy(config);
        let calendar = match policy {
            Some(p) => calendar_of(config, p),
            None => std::borrow::Cow::Owned(Calendar::always_open()),
        };
        Clocks { calendar, policy }
    }

    /// The resolution clock runs in this status (SPEC §7).
    fn runs(&self, status: Status) -> bool {
        match status {
            Status::New | Status::Open => true,
            Status::Waiting => !self.policy.is_some_and(|p| p.pause_when_waiting),
            Status::Resolved | Status::Closed | Status::Cancelled => false,
        }
    }

    fn working(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> i64 {
        working_seconds_between(&self.calendar, from, to).max(0)
    }
}

/// One stretch of time the resolution clock ran: `[from, to)`, `to = None`
/// while it still runs.
struct Run {
    from: DateTime<Utc>,
    to: Option<DateTime<Utc>>,
}

fn runs(clocks: &Clocks<'_>, steps: &[(DateTime<Utc>, Status)]) -> Vec<Run> {
    let mut out = Vec::new();
    for (i, &(at, status)) in steps.iter().enumerate() {
        if clocks.runs(status) {
            let to = steps.get(i + 1).map(|&(next, _)| next);
            out.push(Run { from: at, to });
        }
    }
    out
}

/// The resolution clock's reading at instant `t`.
fn clock_at(clocks: &Clocks<'_>, runs: &[Run], t: DateTime<Utc>) -> i64 {
    runs.iter()
        .filter(|r| r.from < t)
        .map(|r| clocks.working(r.from, r.to.map_or(t, |to| to.min(t))))
        .sum()
}

/// Resolutions: entering `resolved`, or `closed` from an active status.
fn resolutions(steps: &[(DateTime<Utc>, Status)]) -> Vec<DateTime<Utc>> {
    steps
        .windows(2)
        .filter(|w| w[0].1.is_active() && matches!(w[1].1, Status::Resolved | Status::Closed))
        .map(|w| w[1].0)
        .collect()
}

/// Whether a deadline was met or missed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Met,
    Missed,
}

/// One ticket's part in a period's report.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Measures {
    pub opened: bool,
    pub resolved: bool,
    pub closed: bool,
    pub cancelled: bool,
    pub backlog: bool,
    /// Working seconds to the first response, when it came in the period.
    pub first_response_seconds: Option<i64>,
    /// The resolution clock at the last resolution in the period.
    pub resolution_seconds: Option<i64>,
    pub first_response: Option<Outcome>,
    pub resolution: Option<Outcome>,
}

impl Measures {
    fn counts(&self) -> bool {
        *self != Measures::default()
    }
}

/// A ticket's working times over its whole life (for `export`): to the first
/// response, and the resolution clock at its last resolution.
pub fn ticket_times(config: &Config, t: &TicketFacts) -> (Option<i64>, Option<i64>) {
    let clocks = Clocks::of(config, t);
    let steps = t.steps();
    let first = t
        .first_response_at
        .map(|at| clocks.working(t.created_at, at));
    let resolution = resolutions(&steps)
        .last()
        .map(|&at| clock_at(&clocks, &runs(&clocks, &steps), at));
    (first, resolution)
}

/// A ticket's whole life as known at `now` (for `export`): its working
/// times and whether each deadline was met or missed, in any period.
pub fn lifetime(config: &Config, t: &TicketFacts, now: DateTime<Utc>) -> Measures {
    let always = Period {
        from: NaiveDate::MIN,
        to: NaiveDate::MAX,
        start: DateTime::<Utc>::MIN_UTC,
        end: DateTime::<Utc>::MAX_UTC,
    };
    measure(config, t, &always, now)
}

/// A ticket's part in the report of `period`, as known at `now`.
pub fn measure(config: &Config, t: &TicketFacts, period: &Period, now: DateTime<Utc>) -> Measures {
    let clocks = Clocks::of(config, t);
    let steps = t.steps();
    let entered = |status: Status| {
        steps
            .windows(2)
            .any(|w| w[0].1 != status && w[1].1 == status && period.contains(w[1].0))
    };
    let resolved_in: Vec<DateTime<Utc>> = resolutions(&steps)
        .into_iter()
        .filter(|&at| period.contains(at))
        .collect();
    let runs = runs(&clocks, &steps);
    // The backlog is the state at the period's end, or now for a period not over.
    let backlog = t.created_at < period.end
        && t.created_at <= now
        && steps
            .iter()
            .rfind(|(at, _)| *at < period.end && *at <= now)
            .is_some_and(|(_, s)| s.is_active());
    let mut m = Measures {
        opened: period.contains(t.created_at),
        resolved: !resolved_in.is_empty(),
        closed: entered(Status::Closed),
        cancelled: entered(Status::Cancelled),
        backlog,
        ..Measures::default()
    };

    if let Some(at) = t.first_response_at.filter(|&at| period.contains(at)) {
        m.first_response_seconds = Some(clocks.working(t.created_at, at));
    }
    if let Some(&last) = resolved_in.last() {
        m.resolution_seconds = Some(clock_at(&clocks, &runs, last));
    }

    // First response: met by a reply on time in the period; missed when the
    // deadline passed in the period without one (unless cancelled by then).
    if let Some(due) = t.first_response_due {
        let on_time = t.first_response_at.is_some_and(|at| at <= due);
        if on_time && t.first_response_at.is_some_and(|at| period.contains(at)) {
            m.first_response = Some(Outcome::Met);
        } else if !on_time
            && period.contains(due)
            && due <= now
            && t.status_before(due) != Some(Status::Cancelled)
        {
            m.first_response = Some(Outcome::Missed);
        }
    }

    // Resolution: the clock's budget is the policy's resolution span from
    // creation; it is missed at the instant the running clock passes it.
    let budget = clocks
        .policy
        .and_then(|p| p.resolution)
        .and_then(|span| calendar::add(&clocks.calendar, t.created_at, span.0))
        .map(|due| clocks.working(t.created_at, due));
    if let Some(budget) = budget {
        let breach = breach_instant(&clocks, &runs, budget).filter(|&at| at <= now);
        if breach.is_some_and(|at| period.contains(at)) {
            m.resolution = Some(Outcome::Missed);
        } else if resolved_in
            .iter()
            .any(|&at| clock_at(&clocks, &runs, at) <= budget)
        {
            m.resolution = Some(Outcome::Met);
        }
    }
    m
}

/// The instant the resolution clock first exceeds `budget`, if it does.
fn breach_instant(clocks: &Clocks<'_>, runs: &[Run], budget: i64) -> Option<DateTime<Utc>> {
    let mut used = 0;
    for run in runs {
        let left = budget - used;
        match run.to {
            Some(to) => {
                let length = clocks.working(run.from, to);
                if length > left {
                    return add_working_seconds(&clocks.calendar, run.from, left);
                }
                used += length;
            }
            None => return add_working_seconds(&clocks.calendar, run.from, left),
        }
    }
    None
}

/// One line of a report: a group's figures (or the total's).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Row {
    pub group: String,
    pub opened: u64,
    pub resolved: u64,
    pub closed: u64,
    pub cancelled: u64,
    pub backlog: u64,
    /// First responses in the period (the tickets the times are taken from).
    pub first_responses: u64,
    pub first_response_median: Option<i64>,
    pub first_response_p90: Option<i64>,
    pub resolution_median: Option<i64>,
    pub resolution_p90: Option<i64>,
    pub first_response_met: u64,
    pub first_response_missed: u64,
    pub resolution_met: u64,
    pub resolution_missed: u64,
}

impl Row {
    /// Share of first-response deadlines met, as a fraction (0..=1).
    pub fn first_response_compliance(&self) -> Option<f64> {
        compliance(self.first_response_met, self.first_response_missed)
    }

    /// Share of resolution deadlines met, as a fraction (0..=1).
    pub fn resolution_compliance(&self) -> Option<f64> {
        compliance(self.resolution_met, self.resolution_missed)
    }
}

fn compliance(met: u64, missed: u64) -> Option<f64> {
    let total = met + missed;
    (total > 0).then(|| met as f64 / total as f64)
}

/// A report: one row per group (none when not grouped) and the total.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub rows: Vec<Row>,
    pub total: Row,
}

#[derive(Default)]
struct Tally {
    row: Row,
    first_response: Vec<i64>,
    resolution: Vec<i64>,
}

impl Tally {
    fn add(&mut self, m: &Measures) {
        let r = &mut self.row;
        r.opened += u64::from(m.opened);
        r.resolved += u64::from(m.resolved);
        r.closed += u64::from(m.closed);
        r.cancelled += u64::from(m.cancelled);
        r.backlog += u64::from(m.backlog);
        self.first_response.extend(m.first_response_seconds);
        self.resolution.extend(m.resolution_seconds);
        match m.first_response {
            Some(Outcome::Met) => r.first_response_met += 1,
            Some(Outcome::Missed) => r.first_response_missed += 1,
            None => {}
        }
        match m.resolution {
            Some(Outcome::Met) => r.resolution_met += 1,
            Some(Outcome::Missed) => r.resolution_missed += 1,
            None => {}
        }
    }

    fn finish(mut self, group: String) -> Row {
        self.row.group = group;
        self.row.first_responses = self.first_response.len() as u64;
        self.row.first_response_median = percentile(&mut self.first_response, 0.5);
        self.row.first_response_p90 = percentile(&mut self.first_response, 0.9);
        self.row.resolution_median = percentile(&mut self.resolution, 0.5);
        self.row.resolution_p90 = percentile(&mut self.resolution, 0.9);
        self.row
    }
}

/// The `q` quantile (0..=1), interpolating linearly between the nearest
/// values (Excel's PERCENTILE.INC), rounded to whole seconds.
pub fn percentile(values: &mut [i64], q: f64) -> Option<i64> {
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    let pos = q.clamp(0.0, 1.0) * (values.len() - 1) as f64;
    let low = pos.floor() as usize;
    let high = pos.ceil() as usize;
    let (a, b) = (values[low] as f64, values[high] as f64);
    Some((a + (b - a) * (pos - low as f64)).round() as i64)
}

/// The label of the total row in tables and spreadsheets.
pub const TOTAL: &str = "(total)";

/// Builds the report of `period` as known at `now`, grouped by `by`.
pub fn build(
    config: &Config,
    tickets: &[TicketFacts],
    by: Option<GroupBy>,
    period: &Period,
    now: DateTime<Utc>,
) -> Report {
    let mut total = Tally::default();
    let mut groups: BTreeMap<String, Tally> = BTreeMap::new();
    for t in tickets {
        let m = measure(config, t, period, now);
        if !m.counts() {
            continue;
        }
        total.add(&m);
        if let Some(by) = by {
            groups.entry(t.group(by)).or_default().add(&m);
        }
    }
    let mut rows: Vec<Row> = groups
        .into_iter()
        .map(|(group, tally)| tally.finish(group))
        .collect();
    rows.sort_by_key(|r| group_order(by, &r.group));
    Report {
        rows,
        total: total.finish(TOTAL.into()),
    }
}

/// Priorities from most to least urgent; other groups by name, case folded,
/// the "(no …)" groups last.
fn group_order(by: Option<GroupBy>, group: &str) -> (usize, String) {
    if by == Some(GroupBy::Priority)
        && let Some(p) = Priority::parse(group)
    {
        let rank = Priority::ALL.iter().position(|&x| x == p).unwrap_or(0);
        return (rank, String::new());
    }
    (
        usize::from(group.starts_with('(')) * 100,
        group.to_lowercase(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn config() -> Config {
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
timezone = "Europe/Madrid"
mon = "09:00-18:00"
tue = "09:00-18:00"
wed = "09:00-18:00"
thu = "09:00-18:00"
fri = "09:00-18:00"
[[sla]]
name = "problema"
match = { type = "problem" }
calendar = "oficina"
first_response = "4h"
resolution = "24h"
[[sla]]
name = "general"
first_response = "24h"
resolution = "72h"
"#;
        Config::parse(text, "t.toml").unwrap()
    }

    fn november() -> Period {
        Period::days(
            chrono_tz::Europe::Madrid,
            NaiveDate::from_ymd_opt(2026, 11, 1).unwrap(),
            NaiveDate::from_ymd_opt(2026, 11, 30).unwrap(),
        )
        .unwrap()
    }

    fn ticket(policy: &str, created: &str, history: &[(&str, Status)]) -> TicketFacts {
        let created = utc(created);
        let mut steps = vec![(created, Status::New)];
        steps.extend(history.iter().map(|&(at, s)| (utc(at), s)));
        TicketFacts {
            id: 1,
            priority: "medium".into(),
            ticket_type: None,
            queue: "general".into(),
            customer: None,
            assignee: None,
            created_at: created,
            first_response_at: None,
            first_response_due: None,
            sla_policy: Some(policy.into()),
            history: steps,
        }
    }

    const NOW: &str = "2026-12-02T12:00:00Z";

    #[test]
    fn periods_are_local_calendar_days() {
        let p = november();
        assert_eq!(p.start, utc("2026-10-31T23:00:00Z"));
        assert_eq!(p.end, utc("2026-11-30T23:00:00Z"));
        let tz = chrono_tz::Europe::Madrid;
        let mtd = Period::month_to_date(tz, utc("2026-11-30T23:30:00Z")).unwrap();
        assert_eq!(mtd.from, NaiveDate::from_ymd_opt(2026, 12, 1).unwrap());
        assert_eq!(mtd.to, NaiveDate::from_ymd_opt(2026, 12, 1).unwrap());
        assert!(matches!(
            Period::days(tz, p.to, p.from),
            Err(ReportError::Backwards { .. })
        ));
    }

    #[test]
    fn periods_follow_daylight_saving_time() {
        let day = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap();
        // March in Madrid: starts at UTC+1, ends at UTC+2.
        let march =
            Period::days(chrono_tz::Europe::Madrid, day(2026, 3, 1), day(2026, 3, 31)).unwrap();
        assert_eq!(march.start, utc("2026-02-28T23:00:00Z"));
        assert_eq!(march.end, utc("2026-03-31T22:00:00Z"));
        // Santiago de Chile skips its midnight when summer time starts: the
        // day begins at 01:00 (UTC-3).
        let skipped = Period::days(
            chrono_tz::America::Santiago,
            day(2026, 9, 6),
            day(2026, 9, 6),
        )
        .unwrap();
        assert_eq!(skipped.start, utc("2026-09-06T04:00:00Z"));
        assert_eq!(skipped.end, utc("2026-09-07T03:00:00Z"));
    }

    #[test]
    fn percentiles_interpolate_like_excel() {
        assert_eq!(percentile(&mut [], 0.5), None);
        assert_eq!(percentile(&mut [7], 0.9), Some(7));
        assert_eq!(percentile(&mut [4, 1, 3, 2], 0.5), Some(3)); // 2.5 rounds up
        assert_eq!(percentile(&mut [10, 20, 30, 40, 50], 0.5), Some(30));
        assert_eq!(percentile(&mut [10, 20, 30, 40, 50], 0.9), Some(46));
        assert_eq!(
            percentile(&mut [5400, 7200, 7200, 1_123_200], 0.9),
            Some(788_400)
        );
    }

    #[test]
    fn resolution_time_leaves_out_waiting_and_counts_working_hours() {
        let c = config();
        // Monday 10:00 local; waiting 13:00 – Tuesday 10:00 (6 working hours);
        // resolved Tuesday 16:00: 15 working hours − 6 = 9 h.
        let mut t = ticket(
            "problema",
            "2026-11-02T09:00:00Z",
            &[
                ("2026-11-02T12:00:00Z", Status::Waiting),
                ("2026-11-03T09:00:00Z", Status::Open),
                ("2026-11-03T15:00:00Z", Status::Resolved),
            ],
        );
        t.first_response_at = Some(utc("2026-11-02T10:30:00Z"));
        t.first_response_due = Some(utc("2026-11-02T13:00:00Z"));
        let m = measure(&c, &t, &november(), utc(NOW));
        assert_eq!(m.first_response_seconds, Some(5400));
        assert_eq!(m.resolution_seconds, Some(9 * 3600));
        assert_eq!(m.first_response, Some(Outcome::Met));
        assert_eq!(m.resolution, Some(Outcome::Met));
        assert!(m.opened && m.resolved && !m.closed && !m.backlog);
        assert_eq!(ticket_times(&c, &t), (Some(5400), Some(9 * 3600)));
        let life = lifetime(&c, &t, utc(NOW));
        assert_eq!(life.first_response_seconds, Some(5400));
        assert_eq!(life.resolution, Some(Outcome::Met));
    }

    #[test]
    fn reopening_resumes_the_clock_and_resolved_time_does_not_count() {
        let c = config();
        let t = ticket(
            "general",
            "2026-11-02T00:00:00Z",
            &[
                ("2026-11-03T00:00:00Z", Status::Resolved),
                ("2026-11-10T00:00:00Z", Status::Open),
                ("2026-11-11T00:00:00Z", Status::Resolved),
                ("2026-11-12T00:00:00Z", Status::Closed),
            ],
        );
        let m = measure(&c, &t, &november(), utc(NOW));
        // 24 h + 24 h: the week resolved is not counted.
        assert_eq!(m.resolution_seconds, Some(48 * 3600));
        assert_eq!(m.resolution, Some(Outcome::Met));
        assert!(m.resolved && m.closed);
    }

    #[test]
    fn a_deadline_on_the_second_is_met_and_a_breach_counts_where_it_happened() {
        let c = config();
        // Exactly 72 h: met.
        let on_time = ticket(
            "general",
            "2026-11-03T10:00:00Z",
            &[("2026-11-06T10:00:00Z", Status::Resolved)],
        );
        assert_eq!(
            measure(&c, &on_time, &november(), utc(NOW)).resolution,
            Some(Outcome::Met)
        );
        // Breached in October, resolved in November: missed in October only.
        let late = ticket(
            "general",
            "2026-10-20T10:00:00Z",
            &[("2026-11-10T10:00:00Z", Status::Resolved)],
        );
        let m = measure(&c, &late, &november(), utc(NOW));
        assert_eq!(m.resolution, None);
        assert_eq!(m.resolution_seconds, Some(21 * 86400));
        let october = Period::days(
            chrono_tz::Europe::Madrid,
            NaiveDate::from_ymd_opt(2026, 10, 1).unwrap(),
            NaiveDate::from_ymd_opt(2026, 10, 31).unwrap(),
        )
        .unwrap();
        let m = measure(&c, &late, &october, utc(NOW));
        assert_eq!(m.resolution, Some(Outcome::Missed));
        assert!(m.opened && m.backlog && !m.resolved);
        // Breached and still open: missed; not yet breached: nothing.
        let open = ticket("general", "2026-11-20T10:00:00Z", &[]);
        assert_eq!(
            measure(&c, &open, &november(), utc(NOW)).resolution,
            Some(Outcome::Missed)
        );
        let young = ticket("general", "2026-11-30T10:00:00Z", &[]);
        let m = measure(&c, &young, &november(), utc(NOW));
        assert_eq!(m.resolution, None);
        assert!(m.backlog);
    }

    #[test]
    fn first_response_outcomes() {
        let c = config();
        let due = "2026-11-05T10:00:00Z";
        let mut t = ticket("general", "2026-11-04T10:00:00Z", &[]);
        t.first_response_due = Some(utc(due));
        // Unanswered past the deadline: missed.
        assert_eq!(
            measure(&c, &t, &november(), utc(NOW)).first_response,
            Some(Outcome::Missed)
        );
        // Not yet due at `now`: nothing.
        assert_eq!(
            measure(&c, &t, &november(), utc("2026-11-05T09:00:00Z")).first_response,
            None
        );
        // Answered late: missed (once, at the deadline).
        t.first_response_at = Some(utc("2026-11-05T11:00:00Z"));
        assert_eq!(
            measure(&c, &t, &november(), utc(NOW)).first_response,
            Some(Outcome::Missed)
        );
        // Cancelled before the deadline: no outcome, and no resolution clock.
        let mut cancelled = ticket(
            "general",
            "2026-11-04T10:00:00Z",
            &[("2026-11-04T11:00:00Z", Status::Cancelled)],
        );
        cancelled.first_response_due = Some(utc(due));
        let m = measure(&c, &cancelled, &november(), utc(NOW));
        assert_eq!((m.first_response, m.resolution), (None, None));
        assert!(m.cancelled && m.opened && !m.backlog);
    }

    #[test]
    fn without_a_policy_times_are_wall_clock_and_there_are_no_outcomes() {
        let c = config();
        // Closed straight from open on Saturday: a resolution too.
        let mut t = ticket(
            "general",
            "2026-11-06T10:00:00Z",
            &[
                ("2026-11-06T12:00:00Z", Status::Open),
                ("2026-11-07T10:00:00Z", Status::Closed),
            ],
        );
        t.sla_policy = None;
        t.first_response_at = Some(utc("2026-11-06T12:00:00Z"));
        let m = measure(&c, &t, &november(), utc(NOW));
        assert_eq!(m.first_response_seconds, Some(7200));
        assert_eq!(m.resolution_seconds, Some(86400));
        assert_eq!((m.first_response, m.resolution), (None, None));
        assert!(m.resolved && m.closed && !m.backlog);
    }

    #[test]
    fn a_ticket_created_cancelled_counts_as_cancelled() {
        let c = config();
        let t = ticket(
            "general",
            "2026-11-04T10:00:00Z",
            &[("2026-11-04T10:00:00Z", Status::Cancelled)],
        );
        let m = measure(&c, &t, &november(), utc(NOW));
        assert!(m.opened && m.cancelled && !m.backlog && !m.resolved);
    }

    #[test]
    fn rows_per_group_and_total() {
        let c = config();
        let mut a = ticket(
            "general",
            "2026-11-02T10:00:00Z",
            &[("2026-11-03T10:00:00Z", Status::Resolved)],
        );
        a.customer = Some("Zeta".into());
        a.priority = "low".into();
        let mut b = ticket("general", "2026-11-02T10:00:00Z", &[]);
        b.customer = Some("alfa".into());
        b.priority = "urgent".into();
        let c_ = ticket("general", "2026-11-02T10:00:00Z", &[]);
        // Before the period and closed before it: in no row at all.
        let old = ticket(
            "general",
            "2026-09-02T10:00:00Z",
            &[("2026-09-03T10:00:00Z", Status::Closed)],
        );
        let all = [a, b, c_, old];
        let r = build(&c, &all, Some(GroupBy::Customer), &november(), utc(NOW));
        let names: Vec<&str> = r.rows.iter().map(|r| r.group.as_str()).collect();
        assert_eq!(names, ["alfa", "Zeta", NO_CUSTOMER]);
        assert_eq!(r.total.opened, 3);
        assert_eq!(r.total.resolved, 1);
        assert_eq!(r.total.backlog, 2);
        assert_eq!(r.total.resolution_met, 1);
        assert_eq!(r.total.resolution_missed, 2);
        assert_eq!(r.total.resolution_compliance(), Some(1.0 / 3.0));
        assert_eq!(r.total.first_response_compliance(), None);
        assert_eq!(r.rows[1].resolution_median, Some(86400));
        let r = build(&c, &all, Some(GroupBy::Priority), &november(), utc(NOW));
        let names: Vec<&str> = r.rows.iter().map(|r| r.group.as_str()).collect();
        assert_eq!(names, ["urgent", "medium", "low"]);
        let r = build(&c, &all, None, &november(), utc(NOW));
        assert!(r.rows.is_empty());
        assert_eq!(r.total.group, TOTAL);
    }
}
