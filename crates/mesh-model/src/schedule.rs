//! When a product runs: the `schedule` custom property of its descriptor.
//!
//! ```yaml
//! customProperties:
//!   - property: schedule
//!     value:
//!       cron: "0 6 * * 1-5"      # five fields, or @hourly, @daily, @weekly, @monthly, @yearly
//!       timezone: Europe/Berlin  # an IANA zone; default UTC
//!       on: upstream             # also run when an input port's snapshot moves
//!       retries: 3               # attempts after a failure, with exponential backoff; default 2
//! ```
//!
//! Cron follows Vixie cron: minute, hour, day of month, month (`1-12` or `JAN-DEC`), day of week
//! (`0-7`, 0 and 7 are Sunday, or `SUN-SAT`); each a list of `*`, `N`, `N-M`, with an optional
//! `/STEP`. When both day fields are restricted, a day matches either. Slots are wall-clock times
//! in the schedule's zone: a time the zone skips (spring forward) has no slot, a time it repeats
//! (fall back) fires once, at its first occurrence.

use chrono::{DateTime, Datelike, Duration, NaiveDate, NaiveDateTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

use crate::diag::{Code, Diagnostic};
use crate::source::{Node, Span, Value};

/// The most retries a schedule may ask for.
pub const MAX_RETRIES: u64 = 10;

/// A product's schedule, read from its `schedule` custom property.
#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub cron: Option<Cron>,
    pub timezone: Tz,
    /// Run when an input port's snapshot moves.
    pub upstream: bool,
    /// Attempts after a failure.
    pub retries: u32,
}

/// What is wrong with a schedule: where (the span of the value at fault and the pointer below
/// the property's `value`) and why.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub span: Span,
    /// Below the property's value: `/cron`, `/timezone`...; empty for the value itself.
    pub pointer: String,
    pub message: String,
    pub hint: Option<String>,
}

impl Problem {
    /// The lint error it is, `base` being the pointer of the property's value.
    pub fn diagnostic(self, base: &str) -> Diagnostic {
        Diagnostic::error(
            Code::Format,
            self.span,
            format!("{base}{}", self.pointer),
            self.message,
        )
        .with_hint_opt(self.hint)
    }
}

/// The `schedule` custom property of a descriptor: its index among the custom properties and
/// its value.
pub fn property(root: &Node) -> Option<(usize, &Node)> {
    let props = root.get("customProperties")?.as_seq()?;
    props.iter().enumerate().find_map(|(i, p)| {
        (p.get("property")?.as_str()? == crate::odps::PlatformProperty::Schedule.as_str())
            .then(|| p.get("value").map(|v| (i, v)))
            .flatten()
    })
}

/// The `schedule` custom property's value in a descriptor as JSON (as the catalog stores it).
pub fn property_json(descriptor: &serde_json::Value) -> Option<&serde_json::Value> {
    descriptor["customProperties"]
        .as_array()?
        .iter()
        .find(|cp| cp["property"] == crate::odps::PlatformProperty::Schedule.as_str())
        .map(|cp| &cp["value"])
}

impl Schedule {
    /// A schedule from its value as JSON (a published one: no positions to report).
    pub fn from_json(value: &serde_json::Value) -> Result<Schedule, Vec<Problem>> {
        Schedule::read(&Node::from_json(value))
    }

    /// Reads the property's value; every problem is reported, none is fatal to the others.
    pub fn read(value: &Node) -> Result<Schedule, Vec<Problem>> {
        let mut problems = Vec::new();
        let problem = |node: &Node, pointer: &str, message: String, hint: Option<&str>| Problem {
            span: node.span,
            pointer: pointer.to_owned(),
            message,
            hint: hint.map(str::to_owned),
        };
        let Some(entries) = value.as_map() else {
            return Err(vec![problem(
                value,
                "",
                format!("`schedule` must be a mapping, not {}", value.kind_name()),
                Some("write `cron: \"0 6 * * *\"` and/or `on: upstream` under `value:`"),
            )]);
        };
        let mut schedule = Schedule {
            cron: None,
            timezone: Tz::UTC,
            upstream: false,
            retries: 2,
        };
        for entry in entries {
            let node = &entry.value;
            match entry.key.text.as_str() {
                "cron" => match node.as_str() {
                    Some(text) => match Cron::parse(text) {
                        Ok(cron) => schedule.cron = Some(cron),
                        Err(e) => problems.push(problem(
                            node,
                            "/cron",
                            format!("cron `{text}`: {e}"),
                            Some(
                                "five fields: minute hour day-of-month month day-of-week, e.g. \
                                 `30 6 * * 1-5`",
                            ),
                        )),
                    },
                    None => problems.push(problem(
                        node,
                        "/cron",
                        format!("`cron` must be a string, not {}", node.kind_name()),
                        Some("quote it: `cron: \"0 6 * * *\"`"),
                    )),
                },
                "timezone" => match node.as_str() {
                    Some(name) => match name.parse::<Tz>() {
                        Ok(tz) => schedule.timezone = tz,
                        Err(_) => {
                            let hint = closest_zone(name);
                            problems.push(Problem {
                                span: node.span,
                                pointer: "/timezone".into(),
                                message: format!("`{name}` is not an IANA time zone"),
                                hint: Some(match hint {
                                    Some(zone) => format!("did you mean `{zone}`?"),
                                    None => "write a zone like `Europe/Berlin` or `UTC`".into(),
                                }),
                            });
                        }
                    },
                    None => problems.push(problem(
                        node,
                        "/timezone",
                        format!("`timezone` must be a string, not {}", node.kind_name()),
                        None,
                    )),
                },
                "on" => match node.as_str() {
                    Some("upstream") => schedule.upstream = true,
                    _ => problems.push(problem(
                        node,
                        "/on",
                        "`on` must be `upstream` (run when an input port's snapshot moves)".into(),
                        None,
                    )),
                },
                "retries" => match node.value {
                    Value::Int(n) if (0..=MAX_RETRIES as i64).contains(&n) => {
                        schedule.retries = n as u32;
                    }
                    _ => problems.push(problem(
                        node,
                        "/retries",
                        format!("`retries` must be a whole number from 0 to {MAX_RETRIES}"),
                        None,
                    )),
                },
                other => problems.push(Problem {
                    span: entry.key.span,
                    pointer: format!("/{other}"),
                    message: format!("`{other}` is not a schedule key"),
                    hint: crate::diag::suggest(other, &["cron", "timezone", "on", "retries"])
                        .or_else(|| Some("the keys are cron, timezone, on, retries".into())),
                }),
            }
        }
        if problems.is_empty() && schedule.cron.is_none() && !schedule.upstream {
            problems.push(problem(
                value,
                "",
                "a schedule needs `cron` or `on: upstream` (or both)".into(),
                None,
            ));
        }
        if problems.is_empty() {
            Ok(schedule)
        } else {
            Err(problems)
        }
    }

    /// The first slot strictly after `after`, if the cron has one in the next eight years.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.cron.as_ref()?.next_after(after, self.timezone)
    }
}

/// The zone whose name is closest to `name` (case-insensitive), for a hint.
fn closest_zone(name: &str) -> Option<&'static str> {
    let lower = name.to_ascii_lowercase();
    if let Some(tz) = chrono_tz::TZ_VARIANTS
        .iter()
        .find(|tz| tz.name().to_ascii_lowercase() == lower)
    {
        return Some(tz.name());
    }
    crate::diag::closest(name, chrono_tz::TZ_VARIANTS.iter().map(|tz| tz.name()))
}

/// A parsed cron expression: the set of values each field allows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cron {
    text: String,
    minutes: u64,
    hours: u32,
    /// Bits 1..=31.
    days: u32,
    /// Bits 1..=12.
    months: u16,
    /// Bits 0..=6, Sunday = 0.
    weekdays: u8,
    /// Whether the day-of-month / day-of-week field was `*` (Vixie cron's day rule).
    any_day: bool,
    any_weekday: bool,
}

/// Why a cron expression was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronError(pub String);

impl std::fmt::Display for CronError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// One field's name, bounds and value names.
struct Field {
    name: &'static str,
    min: u32,
    max: u32,
    names: &'static [&'static str],
}

const FIELDS: [Field; 5] = [
    Field {
        name: "minute",
        min: 0,
        max: 59,
        names: &[],
    },
    Field {
        name: "hour",
        min: 0,
        max: 23,
        names: &[],
    },
    Field {
        name: "day of month",
        min: 1,
        max: 31,
        names: &[],
    },
    Field {
        name: "month",
        min: 1,
        max: 12,
        names: &MONTHS,
    },
    Field {
        name: "day of week",
        min: 0,
        max: 7,
        names: &WEEKDAYS,
    },
];

impl Cron {
    pub fn parse(text: &str) -> Result<Cron, CronError> {
        let trimmed = text.trim();
        let expanded = match trimmed.to_ascii_lowercase().as_str() {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            other if other.starts_with('@') => {
                return Err(CronError(format!(
                    "`{trimmed}` is not one of @yearly, @annually, @monthly, @weekly, @daily, \
                     @midnight, @hourly"
                )));
            }
            _ => trimmed,
        };
        let parts: Vec<&str> = expanded.split_whitespace().collect();
        if parts.len() != 5 {
            return Err(CronError(format!(
                "{} fields; cron has five (minute hour day-of-month month day-of-week)",
                parts.len()
            )));
        }
        let mut sets = [0u64; 5];
        for (i, (part, field)) in parts.iter().zip(&FIELDS).enumerate() {
            sets[i] = field_set(part, field)?;
        }
        // Day of week 7 is Sunday.
        let weekdays = ((sets[4] & 0x7f) | (sets[4] >> 7 & 1)) as u8;
        let cron = Cron {
            text: trimmed.to_owned(),
            minutes: sets[0],
            hours: sets[1] as u32,
            days: sets[2] as u32,
            months: sets[3] as u16,
            weekdays,
            any_day: parts[2].starts_with('*'),
            any_weekday: parts[4].starts_with('*'),
        };
        // A day of month no allowed month has (`30 2`, `31 4,6`) never fires.
        if cron.any_weekday && !cron.any_day {
            let longest = (1..=12u32)
                .filter(|m| cron.months >> m & 1 == 1)
                .map(|m| [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][m as usize - 1])
                .max()
                .unwrap_or(0);
            if (1..=longest).all(|d| cron.days >> d & 1 == 0) {
                return Err(CronError(
                    "never fires: no allowed month has the allowed days".into(),
                ));
            }
        }
        Ok(cron)
    }

    /// The expression as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    fn day_matches(&self, date: NaiveDate) -> bool {
        if self.months >> date.month() & 1 == 0 {
            return false;
        }
        let dom = self.days >> date.day() & 1 == 1;
        let dow = self.weekdays >> date.weekday().num_days_from_sunday() & 1 == 1;
        match (self.any_day, self.any_weekday) {
            (false, false) => dom || dow,
            _ => dom && dow,
        }
    }

    /// The first slot strictly after `after`, in `tz`'s wall-clock time, within eight years.
    pub fn next_after(&self, after: DateTime<Utc>, tz: Tz) -> Option<DateTime<Utc>> {
        let local = after.with_timezone(&tz).naive_local();
        // Start at the next whole minute; slots at or before `after` do not count.
        let start = local.with_second(0)?.with_nanosecond(0)? + Duration::minutes(1);
        let mut date = start.date();
        let last = date + Duration::days(366 * 8 + 2);
        while date <= last {
            if self.day_matches(date) {
                for hour in 0..24u32 {
                    if self.hours >> hour & 1 == 0 {
                        continue;
                    }
                    for minute in 0..60u32 {
                        if self.minutes >> minute & 1 == 0 {
                            continue;
                        }
                        let at: NaiveDateTime = date.and_hms_opt(hour, minute, 0)?;
                        // Wall-clock times that fall in a DST fold can lie before `start`
                        // on the wall clock yet after `after`: compare instants below.
                        if at + Duration::hours(3) < start {
                            continue;
                        }
                        let instant = match tz.from_local_datetime(&at) {
                            chrono::LocalResult::Single(t) => t,
                            // A repeated wall-clock time fires at its first occurrence only.
                            chrono::LocalResult::Ambiguous(first, _) => first,
                            // A time the zone skips has no slot.
                            chrono::LocalResult::None => continue,
                        };
                        let instant = instant.with_timezone(&Utc);
                        if instant > after {
                            return Some(instant);
                        }
                    }
                }
            }
            date = date.succ_opt()?;
        }
        None
    }
}

/// The bit set one field allows.
fn field_set(part: &str, field: &Field) -> Result<u64, CronError> {
    let mut set = 0u64;
    for item in part.split(',') {
        let bad = |why: String| CronError(format!("{} `{item}`: {why}", field.name));
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => {
                let step: u32 =
                    step.parse().ok().filter(|s| *s >= 1).ok_or_else(|| {
                        bad(format!("step `{step}` must be a whole number from 1"))
                    })?;
                (range, step)
            }
            None => (item, 1),
        };
        let value = |text: &str| -> Result<u32, CronError> {
            if let Some(i) = field
                .names
                .iter()
                .position(|n| n.eq_ignore_ascii_case(text))
            {
                return Ok(i as u32 + field.min);
            }
            let v: u32 = text.parse().map_err(|_| {
                bad(if field.names.is_empty() {
                    format!("`{text}` is not a number")
                } else {
                    format!(
                        "`{text}` is not a number or one of {}",
                        field.names.join(", ")
                    )
                })
            })?;
            if v < field.min || v > field.max {
                return Err(bad(format!("{v} is outside {}-{}", field.min, field.max)));
            }
            Ok(v)
        };
        let (low, high) = match range {
            "*" => (field.min, field.max),
            "" => return Err(bad("empty item".into())),
            _ => match range.split_once('-') {
                Some((a, b)) => {
                    let (a, b) = (value(a)?, value(b)?);
                    if a > b {
                        return Err(bad(format!("range {a}-{b} runs backwards")));
                    }
                    (a, b)
                }
                // `N/STEP` runs from N to the field's end.
                None if step > 1 || item.contains('/') => (value(range)?, field.max),
                None => {
                    let v = value(range)?;
                    (v, v)
                }
            },
        };
        let mut v = low;
        while v <= high {
            set |= 1 << v;
            match v.checked_add(step) {
                Some(next) => v = next,
                None => break,
            }
        }
    }
    Ok(set)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn slots(cron: &str, tz: Tz, from: &str, n: usize) -> Vec<String> {
        let cron = Cron::parse(cron).unwrap();
        let mut at = utc(from);
        let mut out = Vec::new();
        for _ in 0..n {
            at = cron.next_after(at, tz).unwrap();
            out.push(at.to_rfc3339());
        }
        out
    }

    #[test]
    fn slots_follow_the_fields() {
        assert_eq!(
            slots("*/15 * * * *", Tz::UTC, "2026-12-05T10:07:30Z", 3),
            [
                "2026-12-05T10:15:00+00:00",
                "2026-12-05T10:30:00+00:00",
                "2026-12-05T10:45:00+00:00"
            ]
        );
        // A slot at `after` itself does not count.
        assert_eq!(
            slots("0 6 * * *", Tz::UTC, "2026-12-05T06:00:00Z", 1),
            ["2026-12-06T06:00:00+00:00"]
        );
        // Weekdays only: Friday 5 Dec 2026, then Monday.
        assert_eq!(
            slots("30 6 * * MON-FRI", Tz::UTC, "2026-12-04T07:00:00Z", 2),
            ["2026-12-07T06:30:00+00:00", "2026-12-08T06:30:00+00:00"]
        );
        // Both day fields restricted: either matches (the 1st, or a Sunday).
        assert_eq!(
            slots("0 0 1 * 0", Tz::UTC, "2026-12-05T00:00:00Z", 3),
            [
                "2026-12-06T00:00:00+00:00",
                "2026-12-13T00:00:00+00:00",
                "2026-12-20T00:00:00+00:00"
            ]
        );
        assert_eq!(
            slots("0 0 29 2 *", Tz::UTC, "2026-12-05T00:00:00Z", 1),
            ["2028-02-29T00:00:00+00:00"]
        );
        assert_eq!(
            slots("@monthly", Tz::UTC, "2026-12-05T00:00:00Z", 1),
            ["2027-01-01T00:00:00+00:00"]
        );
        assert_eq!(
            slots("0 0 * * 7", Tz::UTC, "2026-12-05T00:00:00Z", 1),
            ["2026-12-06T00:00:00+00:00"]
        );
    }

    #[test]
    fn slots_are_wall_clock_times_across_daylight_saving() {
        let berlin: Tz = "Europe/Berlin".parse().unwrap();
        // 29 March 2026: 02:00 CET jumps to 03:00 CEST; 02:30 does not exist that day.
        assert_eq!(
            slots("30 2 * * *", berlin, "2026-03-28T00:00:00Z", 2),
            ["2026-03-28T01:30:00+00:00", "2026-03-30T00:30:00+00:00"]
        );
        // 25 October 2026: 02:30 happens twice; it fires once, at the first.
        assert_eq!(
            slots("30 2 * * *", berlin, "2026-10-24T12:00:00Z", 2),
            ["2026-10-25T00:30:00+00:00", "2026-10-26T01:30:00+00:00"]
        );
        // Every 30 minutes through the fold: each wall-clock slot once, none lost.
        assert_eq!(
            slots("*/30 * * * *", berlin, "2026-10-24T23:40:00Z", 4),
            [
                "2026-10-25T00:00:00+00:00",
                "2026-10-25T00:30:00+00:00",
                "2026-10-25T02:00:00+00:00",
                "2026-10-25T02:30:00+00:00"
            ]
        );
    }

    #[test]
    fn bad_expressions_say_which_field_and_why() {
        let err = |s: &str| Cron::parse(s).unwrap_err().0;
        assert!(err("* * *").contains("3 fields"), "{}", err("* * *"));
        assert!(err("60 * * * *").contains("minute `60`: 60 is outside 0-59"));
        assert!(err("* 5-2 * * *").contains("runs backwards"));
        assert!(err("*/0 * * * *").contains("step `0`"));
        assert!(err("* * * FOO *").contains("not a number or one of JAN"));
        assert!(err("0 0 30 2 *").contains("never fires"));
        assert!(err("0 0 31 4,6 *").contains("never fires"));
        assert!(err("@reboot").contains("not one of"));
        assert!(err("1,,2 * * * *").contains("empty item"));
        // Hostile: huge numbers and steps are errors, not overflows.
        assert!(err("99999999999 * * * *").contains("not a number"));
        let huge = Cron::parse("59/4294967295 * * * *").unwrap();
        assert_eq!(huge.minutes, 1 << 59);
        assert_eq!(
            Cron::parse("*/4294967295 * * * *").unwrap().minutes,
            1,
            "only the first value"
        );
    }
}
