//! The SLA history of a product as an SVG timeline, drawn by the server: one row per objective,
//! a bar for each time it was violated, over the monitoring window.

use std::fmt::Write as _;

use chrono::{DateTime, Utc};
use mesh_catalog::sla::Violation;

use crate::graph::xml;

const LEFT: f64 = 190.0;
const WIDTH: f64 = 600.0;
const ROW: f64 = 26.0;

fn time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

/// The violations between `from` and `to`, one row per port and objective; `None` when there
/// is nothing to draw.
pub(crate) fn timeline(
    violations: &[Violation],
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Option<String> {
    let span = (to - from).num_seconds().max(1) as f64;
    let x =
        |t: DateTime<Utc>| LEFT + ((t - from).num_seconds() as f64 / span).clamp(0.0, 1.0) * WIDTH;
    let mut rows: Vec<(String, Vec<&Violation>)> = Vec::new();
    for v in violations {
        let name = format!("{} {}", v.port, v.property);
        match rows.iter_mut().find(|(n, _)| *n == name) {
            Some((_, list)) => list.push(v),
            None => rows.push((name, vec![v])),
        }
    }
    if rows.is_empty() {
        return None;
    }
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    let height = 30.0 + rows.len() as f64 * ROW;
    let mut out = String::new();
    let _ = write!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"sla-history\" viewBox=\"0 0 {} {height}\" \
         role=\"img\" aria-labelledby=\"sla-history-title\"><title id=\"sla-history-title\">SLA \
         violations from {} to {}</title>",
        LEFT + WIDTH + 10.0,
        from.format("%Y-%m-%d"),
        to.format("%Y-%m-%d")
    );
    for (i, (name, list)) in rows.iter().enumerate() {
        let y = 8.0 + i as f64 * ROW;
        let _ = write!(
            out,
            "<text x=\"{}\" y=\"{}\" font-size=\"12\" text-anchor=\"end\" fill=\"#1d2330\">{}</text>\
             <rect x=\"{LEFT}\" y=\"{}\" width=\"{WIDTH}\" height=\"14\" fill=\"#e7f4ea\"/>",
            LEFT - 8.0,
            y + 11.0,
            xml(name),
            y
        );
        for v in list {
            let Some(start) = time(&v.started_at) else {
                continue;
            };
            let end = v.ended_at.as_deref().and_then(time).unwrap_or(to);
            if end < from || start > to {
                continue;
            }
            let (x1, x2) = (x(start), x(end));
            let _ = write!(
                out,
                "<rect class=\"violation\" x=\"{x1}\" y=\"{y}\" width=\"{}\" height=\"14\" fill=\"#b42318\">\
                 <title>{} {}: {} from {} until {}</title></rect>",
                (x2 - x1).max(2.0),
                xml(&v.property),
                xml(&v.objective),
                xml(&v.observed),
                xml(&v.started_at),
                xml(v.ended_at.as_deref().unwrap_or("now"))
            );
        }
    }
    let axis = 8.0 + rows.len() as f64 * ROW + 8.0;
    let _ = write!(
        out,
        "<text x=\"{LEFT}\" y=\"{axis}\" font-size=\"11\" fill=\"#5b6475\">{}</text>\
         <text x=\"{}\" y=\"{axis}\" font-size=\"11\" text-anchor=\"end\" fill=\"#5b6475\">{}</text></svg>",
        from.format("%Y-%m-%d"),
        LEFT + WIDTH,
        to.format("%Y-%m-%d %H:%M")
    );
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn violation(property: &str, start: &str, end: Option<&str>) -> Violation {
        Violation {
            id: "v".into(),
            product: "d.p".into(),
            port: "p".into(),
            major: 1,
            property: property.into(),
            objective: "<= 1 d".into(),
            observed: "2 d".into(),
            started_at: start.into(),
            detected_at: start.into(),
            ended_at: end.map(str::to_owned),
        }
    }

    #[test]
    fn one_row_per_objective_and_a_bar_per_breach() {
        let from = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
        let to = Utc.with_ymd_and_hms(2026, 11, 11, 0, 0, 0).unwrap();
        let svg = timeline(
            &[
                violation(
                    "latency",
                    "2026-11-02T00:00:00Z",
                    Some("2026-11-03T00:00:00Z"),
                ),
                violation("latency", "2026-11-08T00:00:00Z", None),
                violation(
                    "availability",
                    "2026-10-01T00:00:00Z",
                    Some("2026-10-02T00:00:00Z"),
                ),
            ],
            from,
            to,
        )
        .unwrap();
        assert_eq!(svg.matches("class=\"violation\"").count(), 2);
        // The first breach is a tenth of the window, a tenth in: 60 px at x = 250.
        assert!(svg.contains("x=\"250\" y=\"34\" width=\"60\""), "{svg}");
        assert!(svg.contains(">p availability</text>") && svg.contains(">p latency</text>"));
        assert!(timeline(&[], from, to).is_none());
    }
}
