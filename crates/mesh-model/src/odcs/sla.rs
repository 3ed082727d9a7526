//! Service levels (`slaProperties`): the durations and time of day their values are written in.

/// A time span of an SLA property.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Span {
    pub seconds: f64,
}

/// An SLA duration: `value` + `unit` (`d`, `day`, `days`, `h`, `m`, `s`, `ms`, `y`, `w`), or a
/// value with its unit inside (`"4h"`, `"500ms"`).
pub fn span(value: &serde_json::Value, unit: Option<&str>) -> Result<Span, String> {
    let (number, unit) = match (value, unit) {
        (serde_json::Value::Number(n), u) => {
            (n.as_f64().unwrap_or(f64::NAN), u.unwrap_or("d").to_owned())
        }
        (serde_json::Value::String(s), u) => {
            let s = s.trim();
            let split = s
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(s.len());
            let (n, rest) = s.split_at(split);
            let n: f64 = n.parse().map_err(|_| format!("`{s}` is not a duration"))?;
            let unit = if rest.trim().is_empty() {
                u.unwrap_or("d").to_owned()
            } else {
                rest.trim().to_owned()
            };
            (n, unit)
        }
        (other, _) => return Err(format!("`{other}` is not a duration")),
    };
    let factor = match unit.to_ascii_lowercase().as_str() {
        "ms" | "millisecond" | "milliseconds" => 0.001,
        "s" | "sec" | "second" | "seconds" => 1.0,
        "m" | "min" | "minute" | "minutes" => 60.0,
        "h" | "hr" | "hour" | "hours" => 3600.0,
        "d" | "day" | "days" => 86_400.0,
        "w" | "week" | "weeks" => 7.0 * 86_400.0,
        "y" | "yr" | "year" | "years" => 365.0 * 86_400.0,
        other => {
            return Err(format!(
                "unknown duration unit `{other}` (use ms, s, m, h, d, w or y)"
            ));
        }
    };
    if !number.is_finite() || number < 0.0 {
        return Err(format!("`{value}` is not a duration"));
    }
    Ok(Span {
        seconds: number * factor,
    })
}

/// A `timeOfAvailability` value: `HH:MM` or `HH:MM:SS`, in UTC (a trailing `Z` or `UTC` is
/// accepted), as seconds after midnight.
pub fn time_of_day(value: &serde_json::Value) -> Result<u32, String> {
    let text = value
        .as_str()
        .ok_or_else(|| format!("`{value}` is not a time of day (write it as \"09:00\")"))?;
    let t = text.trim();
    let t = t
        .strip_suffix("UTC")
        .or_else(|| t.strip_suffix('Z'))
        .unwrap_or(t)
        .trim();
    let parts: Vec<&str> = t.split(':').collect();
    let field = |i: usize, max: u32| -> Result<u32, String> {
        match parts.get(i) {
            None => Ok(0),
            Some(p) => p
                .parse::<u32>()
                .ok()
                .filter(|n| *n <= max && p.len() == 2)
                .ok_or_else(|| format!("`{text}` is not a time of day (HH:MM, UTC)")),
        }
    };
    if !(2..=3).contains(&parts.len()) {
        return Err(format!("`{text}` is not a time of day (HH:MM, UTC)"));
    }
    Ok(field(0, 23)? * 3600 + field(1, 59)? * 60 + field(2, 59)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(
            span(&serde_json::json!(4), Some("d")).map(|s| s.seconds),
            Ok(4.0 * 86_400.0)
        );
        assert_eq!(
            span(&serde_json::json!("500ms"), None).map(|s| s.seconds),
            Ok(0.5)
        );
        assert!(span(&serde_json::json!(1), Some("fortnight")).is_err());
    }

    #[test]
    fn times_of_day() {
        assert_eq!(
            time_of_day(&serde_json::json!("09:30")),
            Ok(9 * 3600 + 1800)
        );
        assert_eq!(time_of_day(&serde_json::json!("23:59:59Z")), Ok(86_399));
        assert!(time_of_day(&serde_json::json!("24:00")).is_err());
        assert!(time_of_day(&serde_json::json!("9")).is_err());
        assert!(time_of_day(&serde_json::json!(9)).is_err());
    }
}
