//! Working-time arithmetic over a [`Calendar`] (SPEC §3, §7): the working
//! intervals of a day in the calendar's time zone (several ranges, holidays,
//! DST-correct), adding a working duration to an instant, the working time
//! between two instants, and business days (`Nbd`: the same working offset N
//! working days later). The built-in `24x7` calendar is wall-clock time.
//!
//! Pure maths on instants; the clock is always an argument.

use chrono::{
    DateTime, Datelike, Duration, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, TimeZone, Utc,
};

use crate::config::Calendar;
use crate::units::Span;

/// How far ahead a computation may look before giving up (a calendar with no
/// working time at all never reaches a deadline).
const HORIZON_DAYS: i64 = 3 * 366;

/// An instant of a local wall-clock time, resolved through DST: ambiguous
/// times take the earlier instant, times inside a spring-forward gap move to
/// the end of the gap.
fn to_utc(cal: &Calendar, date: NaiveDate, time: NaiveTime) -> DateTime<Utc> {
    let local = NaiveDateTime::new(date, time);
    match cal.timezone.from_local_datetime(&local) {
        LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => t.with_timezone(&Utc),
        LocalResult::None => {
            // Inside a gap: the first valid minute after it.
            let mut probe = local;
            for _ in 0..240 {
                probe += Duration::minutes(1);
                if let Some(t) = cal.timezone.from_local_datetime(&probe).earliest() {
                    return t.with_timezone(&Utc);
                }
            }
            Utc.from_utc_datetime(&local)
        }
    }
}

fn local_date(cal: &Calendar, t: DateTime<Utc>) -> NaiveDate {
    t.with_timezone(&cal.timezone).date_naive()
}

/// The working intervals of one local date, as UTC instants, in order.
pub fn working_intervals(cal: &Calendar, date: NaiveDate) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
    if cal.always {
        let start = Utc.from_utc_datetime(&date.and_time(NaiveTime::MIN));
        return vec![(start, start + Duration::days(1))];
    }
    if cal.holidays.contains(&date) {
        return Vec::new();
    }
    let ranges = &cal.week[date.weekday().num_days_from_monday() as usize];
    // `24:00` is stored as 23:59:59 (not writable as HH:MM): the next midnight.
    let end_of_day = NaiveTime::from_hms_opt(23, 59, 59).unwrap_or(NaiveTime::MIN);
    let end = |b: NaiveTime| {
        if b == end_of_day {
            to_utc(cal, date + Duration::days(1), NaiveTime::MIN)
        } else {
            to_utc(cal, date, b)
        }
    };
    ranges
        .iter()
        .map(|&(a, b)| (to_utc(cal, date, a), end(b)))
        .filter(|(a, b)| b > a)
        .collect()
}

/// True when `t` is working time.
pub fn is_working(cal: &Calendar, t: DateTime<Utc>) -> bool {
    if cal.always {
        return true;
    }
    working_intervals(cal, local_date(cal, t))
        .iter()
        .any(|&(a, b)| a <= t && t < b)
}

/// Working seconds in `[from, to)`; negative when `to` is before `from`.
pub fn working_seconds_between(cal: &Calendar, from: DateTime<Utc>, to: DateTime<Utc>) -> i64 {
    if to < from {
        return -working_seconds_between(cal, to, from);
    }
    if cal.always {
        return (to - from).num_seconds();
    }
    let mut total = 0;
    let mut date = local_date(cal, from) - Duration::days(1);
    let last = local_date(cal, to) + Duration::days(1);
    while date <= last {
        for (a, b) in working_intervals(cal, date) {
            let (a, b) = (a.max(from), b.min(to));
            if b > a {
                total += (b - a).num_seconds();
            }
        }
        date += Duration::days(1);
    }
    total
}

/// The instant `seconds` of working time after `start` (`start` itself when
/// zero, moved to the next working instant if outside working time).
/// `None` when the calendar has no working time within the horizon.
pub fn add_working_seconds(
    cal: &Calendar,
    start: DateTime<Utc>,
    seconds: i64,
) -> Option<DateTime<Utc>> {
    if cal.always {
        return Some(start + Duration::seconds(seconds));
    }
    let mut left = seconds.max(0);
    let first = local_date(cal, start) - Duration::days(1);
    for day in 0..HORIZON_DAYS {
        let date = first + Duration::days(day);
        for (a, b) in working_intervals(cal, date) {
            let a = a.max(start);
            if b <= a {
                continue;
            }
            let available = (b - a).num_seconds();
            // The deadline falls at the end of a range rather than at the
            // start of the next one when the budget is used up exactly.
            if left <= available && (left > 0 || seconds == 0) {
                return Some(a + Duration::seconds(left));
            }
            left -= available;
            if left == 0 {
                return Some(b);
            }
        }
    }
    None
}

/// `n` business days after `start`: the same working offset into the day, on
/// the n-th working day after `start`'s (a start outside working hours
/// counts from the next working day's beginning; a later day with shorter
/// hours ends at its last working instant).
pub fn add_business_days(cal: &Calendar, start: DateTime<Utc>, n: u32) -> Option<DateTime<Utc>> {
    if cal.always {
        return Some(start + Duration::days(i64::from(n)));
    }
    let mut date = local_date(cal, start);
    let mut intervals = working_intervals(cal, date);
    let ends = intervals.last().map(|&(_, b)| b);
    // Not a working day, or after the day's last range: start from the next
    // working day at offset 0.
    let mut offset = if ends.is_some_and(|end| start < end) {
        intervals
            .iter()
            .map(|&(a, b)| (b.min(start.max(a)) - a).num_seconds().max(0))
            .sum()
    } else {
        let mut moved = false;
        for _ in 0..HORIZON_DAYS {
            date += Duration::days(1);
            intervals = working_intervals(cal, date);
            if !intervals.is_empty() {
                moved = true;
                break;
            }
        }
        if !moved {
            return None;
        }
        0
    };
    let mut remaining = n;
    while remaining > 0 {
        let mut found = false;
        for _ in 0..HORIZON_DAYS {
            date += Duration::days(1);
            intervals = working_intervals(cal, date);
            if !intervals.is_empty() {
                found = true;
                break;
            }
        }
        if !found {
            return None;
        }
        remaining -= 1;
    }
    for &(a, b) in &intervals {
        let length = (b - a).num_seconds();
        if offset <= length {
            return Some(a + Duration::seconds(offset));
        }
        offset -= length;
    }
    intervals.last().map(|&(_, b)| b)
}

/// A configured duration added to `start` in `cal`.
pub fn add(cal: &Calendar, start: DateTime<Utc>, span: Span) -> Option<DateTime<Utc>> {
    match span {
        Span::Seconds(s) => add_working_seconds(cal, start, s),
        Span::BusinessDays(n) => add_business_days(cal, start, n),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::Tz;

    fn calendar(tz: Tz, week: [&str; 7], holidays: &[&str]) -> Calendar {
        let day = |s: &str| crate::units::parse_day_ranges(s).unwrap();
        Calendar {
            name: "t".into(),
            timezone: tz,
            week: week.map(day),
            holidays: holidays
                .iter()
                .map(|h| NaiveDate::parse_from_str(h, "%Y-%m-%d").unwrap())
                .collect(),
            always: false,
        }
    }

    fn office() -> Calendar {
        calendar(
            chrono_tz::Europe::Madrid,
            [
                "09:00-14:00,15:00-18:00",
                "09:00-14:00,15:00-18:00",
                "09:00-14:00,15:00-18:00",
                "09:00-14:00,15:00-18:00",
                "09:00-15:00",
                "",
                "",
            ],
            &["2026-12-08", "2026-12-25"],
        )
    }

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    /// Reference: step minute by minute.
    fn brute_add(cal: &Calendar, start: DateTime<Utc>, minutes: i64) -> DateTime<Utc> {
        let mut t = start;
        let mut left = minutes;
        while !is_working(cal, t) {
            t += Duration::minutes(1);
        }
        while left > 0 {
            if is_working(cal, t) {
                left -= 1;
            }
            t += Duration::minutes(1);
        }
        t
    }

    fn brute_between(cal: &Calendar, from: DateTime<Utc>, to: DateTime<Utc>) -> i64 {
        let mut t = from;
        let mut n = 0;
        while t < to {
            if is_working(cal, t) {
                n += 60;
            }
            t += Duration::minutes(1);
        }
        n
    }

    struct Rng(u64);
    impl Rng {
        fn next(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    #[test]
    fn examples_in_office_hours() {
        let cal = office();
        // Monday 17:00 Madrid (CET, UTC+1) + 2 h → Tuesday 10:00.
        assert_eq!(
            add_working_seconds(&cal, utc("2026-11-23T16:00:00Z"), 7200),
            Some(utc("2026-11-24T09:00:00Z"))
        );
        // Friday 14:30 + 1 h → Monday 09:30 (Friday ends 15:00).
        assert_eq!(
            add_working_seconds(&cal, utc("2026-11-27T13:30:00Z"), 3600),
            Some(utc("2026-11-30T08:30:00Z"))
        );
        // Lunch break is not working time; the budget ends at 14:00, not 15:00.
        assert_eq!(
            add_working_seconds(&cal, utc("2026-11-23T12:00:00Z"), 3600),
            Some(utc("2026-11-23T13:00:00Z"))
        );
        // Over the 8 December holiday (Tuesday).
        assert_eq!(
            add_working_seconds(&cal, utc("2026-12-07T16:00:00Z"), 3600 * 2),
            Some(utc("2026-12-09T09:00:00Z"))
        );
        // Friday evening, outside hours: counts from Monday 09:00.
        assert_eq!(
            working_seconds_between(
                &cal,
                utc("2026-11-27T19:00:00Z"),
                utc("2026-11-30T09:00:00Z")
            ),
            3600
        );
    }

    #[test]
    fn business_days_keep_the_working_offset() {
        let cal = office();
        // Monday 10:00 + 3bd → Thursday 10:00.
        assert_eq!(
            add_business_days(&cal, utc("2026-11-23T09:00:00Z"), 3),
            Some(utc("2026-11-26T09:00:00Z"))
        );
        // Thursday 16:00 + 1bd → Friday's end (Friday is shorter: 6 h).
        assert_eq!(
            add_business_days(&cal, utc("2026-11-26T15:00:00Z"), 1),
            Some(utc("2026-11-27T14:00:00Z"))
        );
        // Saturday counts from Monday 09:00: + 2bd → Wednesday 09:00.
        assert_eq!(
            add_business_days(&cal, utc("2026-11-28T10:00:00Z"), 2),
            Some(utc("2026-12-02T08:00:00Z"))
        );
        // Over a holiday: Monday 7 Dec + 1bd → Wednesday 9 Dec.
        assert_eq!(
            add_business_days(&cal, utc("2026-12-07T09:00:00Z"), 1),
            Some(utc("2026-12-09T09:00:00Z"))
        );
    }

    #[test]
    fn dst_changes_are_respected() {
        // Madrid goes to summer time on Sunday 29 March 2026; a 24x7-like
        // local calendar across the change has a 23-hour Sunday.
        let all_days = ["00:00-24:00"; 7];
        let cal = calendar(chrono_tz::Europe::Madrid, all_days, &[]);
        let secs = working_seconds_between(
            &cal,
            utc("2026-03-28T23:00:00Z"),
            utc("2026-03-29T22:00:00Z"),
        );
        assert_eq!(secs, 23 * 3600);
        // Friday closes at 15:00 CET (14:00Z); one working hour later is Monday
        // 10:00 CEST, which is 08:00Z after the change to summer time.
        let cal = office();
        assert_eq!(
            add_working_seconds(&cal, utc("2026-03-27T14:00:00Z"), 3600),
            Some(utc("2026-03-30T08:00:00Z"))
        );
    }

    #[test]
    fn twenty_four_seven_is_wall_clock() {
        let cal = Calendar::always_open();
        assert_eq!(
            add(&cal, utc("2026-11-27T20:00:00Z"), Span::Seconds(8 * 3600)),
            Some(utc("2026-11-28T04:00:00Z"))
        );
        assert_eq!(
            working_seconds_between(
                &cal,
                utc("2026-11-27T20:00:00Z"),
                utc("2026-11-28T04:00:00Z")
            ),
            8 * 3600
        );
    }

    #[test]
    fn a_calendar_without_working_time_never_reaches_a_deadline() {
        let cal = calendar(chrono_tz::UTC, [""; 7], &[]);
        assert_eq!(
            add_working_seconds(&cal, utc("2026-11-23T09:00:00Z"), 60),
            None
        );
    }

    /// Property test against the minute-stepping reference: random instants,
    /// durations, time zones with DST, split days and holidays.
    #[test]
    fn matches_the_brute_force_reference() {
        let zones = [
            chrono_tz::Europe::Madrid,
            chrono_tz::America::New_York,
            chrono_tz::Australia::Sydney,
            chrono_tz::UTC,
            chrono_tz::Asia::Kolkata,
        ];
        let weeks = [
            [
                "09:00-14:00,15:00-18:00",
                "09:00-14:00,15:00-18:00",
                "09:00-14:00,15:00-18:00",
                "09:00-14:00,15:00-18:00",
                "09:00-15:00",
                "",
                "",
            ],
            [
                "00:00-02:30,22:00-24:00",
                "08:00-20:00",
                "",
                "01:00-03:30",
                "08:00-20:00",
                "10:00-12:00",
                "",
            ],
        ];
        let mut rng = Rng(0x1234_5678_9abc_def1);
        // Around the spring and autumn DST changes of both hemispheres.
        let bases = [
            "2026-03-06T00:00:00Z",
            "2026-03-26T00:00:00Z",
            "2026-04-03T00:00:00Z",
            "2026-10-22T00:00:00Z",
            "2026-10-30T00:00:00Z",
            "2026-12-20T00:00:00Z",
        ];
        for case in 0..150 {
            let tz = zones[rng.next(zones.len() as u64) as usize];
            let week = weeks[rng.next(2) as usize];
            let base = utc(bases[rng.next(bases.len() as u64) as usize]);
            let holiday = (base + Duration::days(rng.next(10) as i64))
                .date_naive()
                .to_string();
            let cal = calendar(tz, week, &[holiday.as_str()]);
            let start = base + Duration::minutes(rng.next(10 * 24 * 60) as i64);
            let minutes = rng.next(3 * 24 * 60) as i64 + 1;
            let expected = brute_add(&cal, start, minutes);
            assert_eq!(
                add_working_seconds(&cal, start, minutes * 60),
                Some(expected),
                "case {case}: {tz} start {start} + {minutes} min"
            );
            let end = start + Duration::minutes(rng.next(4 * 24 * 60) as i64);
            assert_eq!(
                working_seconds_between(&cal, start, end),
                brute_between(&cal, start, end),
                "case {case}: {tz} {start}..{end}"
            );
        }
    }
}
