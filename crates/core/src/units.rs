//! Config value types with their own syntax: durations (`90s`, `15m`, `8h`,
//! `3d`, `3bd`), sizes (`25MB`), rates (`5/h`) and weekly slots (`mon 09:00`).
//! Each parses from the string an admin writes and refuses anything else with a
//! message that says what is accepted.
//!
//! Pure parsing; no clock, no I/O.

use std::fmt;

use chrono::{NaiveTime, Weekday};

/// A configured duration: wall-clock seconds, or business days of a calendar.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Span {
    /// Seconds of (working or wall-clock) time.
    Seconds(i64),
    /// `Nbd`: the same working offset N working days later.
    BusinessDays(u32),
}

impl Span {
    /// Parses `90s`, `15m`, `8h`, `3d`, `3bd`.
    pub fn parse(input: &str) -> Result<Span, String> {
        let s = input.trim();
        let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
        let (digits, unit) = s.split_at(split);
        let n: i64 = digits.parse().map_err(|_| {
            format!(
                "`{input}` is not a duration: write a number and a unit, e.g. 90s, 15m, 8h, 3d, 3bd"
            )
        })?;
        let secs = match unit.trim() {
            "s" => n,
            "m" => n * 60,
            "h" => n * 3600,
            "d" => n * 86_400,
            "w" => n * 7 * 86_400,
            "bd" => {
                let days =
                    u32::try_from(n).map_err(|_| format!("`{input}`: too many business days"))?;
                return Ok(Span::BusinessDays(days));
            }
            other => {
                return Err(format!(
                    "`{input}`: unknown unit `{other}` (use s, m, h, d, w or bd)"
                ));
            }
        };
        Ok(Span::Seconds(secs))
    }

    /// Wall-clock seconds; business days are refused where only wall time makes sense.
    pub fn wall_seconds(self) -> Option<i64> {
        match self {
            Span::Seconds(s) => Some(s),
            Span::BusinessDays(_) => None,
        }
    }
}

impl fmt::Display for Span {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Span::BusinessDays(d) => write!(f, "{d}bd"),
            Span::Seconds(s) if *s % 86_400 == 0 && *s != 0 => write!(f, "{}d", s / 86_400),
            Span::Seconds(s) if *s % 3600 == 0 && *s != 0 => write!(f, "{}h", s / 3600),
            Span::Seconds(s) if *s % 60 == 0 && *s != 0 => write!(f, "{}m", s / 60),
            Span::Seconds(s) => write!(f, "{s}s"),
        }
    }
}

/// A size in bytes, written `25MB`, `512KB`, `1GB` or a plain number of bytes.
pub fn parse_size(input: &str) -> Result<u64, String> {
    let s = input.trim().to_ascii_uppercase();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (digits, unit) = s.split_at(split);
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("`{input}` is not a size: write e.g. 25MB, 512KB or 1GB"))?;
    let factor = match unit.trim() {
        "" | "B" => 1,
        "KB" | "K" => 1024,
        "MB" | "M" => 1024 * 1024,
        "GB" | "G" => 1024 * 1024 * 1024,
        other => {
            return Err(format!(
                "`{input}`: unknown size unit `{other}` (use B, KB, MB, GB)"
            ));
        }
    };
    n.checked_mul(factor)
        .ok_or_else(|| format!("`{input}` is too large"))
}

/// At most `count` mails per `per_seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub per_seconds: i64,
}

impl Rate {
    /// Parses `5/h`, `20/d`, `2/m`.
    pub fn parse(input: &str) -> Result<Rate, String> {
        let (n, unit) = input
            .trim()
            .split_once('/')
            .ok_or_else(|| format!("`{input}` is not a rate: write e.g. 5/h, 20/d"))?;
        let count: u32 = n
            .trim()
            .parse()
            .map_err(|_| format!("`{input}`: `{n}` is not a count"))?;
        let per_seconds = match unit.trim() {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            other => {
                return Err(format!(
                    "`{input}`: unknown period `{other}` (use s, m, h or d)"
                ));
            }
        };
        Ok(Rate { count, per_seconds })
    }
}

/// A weekly instant in the desk time zone, e.g. `mon 09:00`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WeeklySlot {
    pub weekday: Weekday,
    pub time: NaiveTime,
}

impl WeeklySlot {
    pub fn parse(input: &str) -> Result<WeeklySlot, String> {
        let mut parts = input.split_whitespace();
        let (Some(day), Some(time), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!(
                "`{input}` is not a weekly slot: write e.g. \"mon 09:00\""
            ));
        };
        let weekday =
            parse_weekday(day).ok_or_else(|| format!("`{day}` is not a day (mon..sun)"))?;
        let time = NaiveTime::parse_from_str(time, "%H:%M")
            .map_err(|_| format!("`{time}` is not a time HH:MM"))?;
        Ok(WeeklySlot { weekday, time })
    }
}

/// `mon`..`sun`, also full English names and Spanish `lun`..`dom`.
pub fn parse_weekday(input: &str) -> Option<Weekday> {
    let folded = crate::text::fold(input);
    Some(match folded.get(..3)? {
        "mon" | "lun" => Weekday::Mon,
        "tue" | "mar" => Weekday::Tue,
        "wed" | "mie" => Weekday::Wed,
        "thu" | "jue" => Weekday::Thu,
        "fri" | "vie" => Weekday::Fri,
        "sat" | "sab" => Weekday::Sat,
        "sun" | "dom" => Weekday::Sun,
        _ => return None,
    })
}

/// Working ranges of one day, `"09:00-13:00,14:00-18:00"`; empty string = closed.
pub fn parse_day_ranges(input: &str) -> Result<Vec<(NaiveTime, NaiveTime)>, String> {
    let mut ranges = Vec::new();
    for part in input.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let (a, b) = part
            .split_once('-')
            .ok_or_else(|| format!("`{part}` is not a range: write e.g. 09:00-18:00"))?;
        let start = NaiveTime::parse_from_str(a.trim(), "%H:%M")
            .map_err(|_| format!("`{a}` is not a time HH:MM"))?;
        let end = match b.trim() {
            "24:00" => NaiveTime::from_hms_opt(23, 59, 59).ok_or("bad time")?,
            t => NaiveTime::parse_from_str(t, "%H:%M")
                .map_err(|_| format!("`{t}` is not a time HH:MM"))?,
        };
        if end <= start {
            return Err(format!("`{part}`: the range ends before it starts"));
        }
        if ranges.last().is_some_and(|&(_, prev_end)| start < prev_end) {
            return Err(format!("`{part}`: ranges must be in order and not overlap"));
        }
        ranges.push((start, end));
    }
    Ok(ranges)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(Span::parse("90s"), Ok(Span::Seconds(90)));
        assert_eq!(Span::parse("15m"), Ok(Span::Seconds(900)));
        assert_eq!(Span::parse("8h"), Ok(Span::Seconds(28_800)));
        assert_eq!(Span::parse("3d"), Ok(Span::Seconds(259_200)));
        assert_eq!(Span::parse("3bd"), Ok(Span::BusinessDays(3)));
        assert!(Span::parse("3 parsecs").is_err());
        assert!(Span::parse("h").is_err());
        assert_eq!(Span::Seconds(86_400).to_string(), "1d");
    }

    #[test]
    fn sizes_and_rates() {
        assert_eq!(parse_size("25MB"), Ok(25 * 1024 * 1024));
        assert_eq!(parse_size("1000"), Ok(1000));
        assert!(parse_size("lots").is_err());
        assert_eq!(
            Rate::parse("5/h"),
            Ok(Rate {
                count: 5,
                per_seconds: 3600
            })
        );
        assert!(Rate::parse("5").is_err());
    }

    #[test]
    fn slots_and_ranges() {
        let slot = WeeklySlot::parse("mon 09:00").unwrap();
        assert_eq!(slot.weekday, Weekday::Mon);
        assert_eq!(
            parse_day_ranges("09:00-13:00,14:00-18:00").unwrap().len(),
            2
        );
        assert!(parse_day_ranges("14:00-13:00").is_err());
        assert!(parse_day_ranges("").unwrap().is_empty());
    }
}
