//! String formats the standards name (`date`, `date-time`). JSON Schema treats `format` as an
//! annotation, so the official verdict ignores it; we report a malformed value as a warning, because
//! a timestamp nobody can parse is still a bug.

use crate::de::Cx;
use crate::diag::Code;
use crate::source::Node;

/// `YYYY-MM-DD` with a real month and day.
pub fn is_date(text: &str) -> bool {
    let b = text.as_bytes();
    // ASCII only, so that the byte offsets below are character boundaries.
    if !text.is_ascii() || b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return false;
    }
    let (Some(year), Some(month), Some(day)) =
        (num(&text[0..4]), num(&text[5..7]), num(&text[8..10]))
    else {
        return false;
    };
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&day)
}

/// RFC 3339 `date-time`: `2024-01-31T12:00:00Z`, fractional seconds and `±HH:MM` offsets allowed.
pub fn is_date_time(text: &str) -> bool {
    // ASCII only, so that the byte offsets below are character boundaries.
    if !text.is_ascii() {
        return false;
    }
    let Some((date, rest)) = text.split_at_checked(10) else {
        return false;
    };
    if !is_date(date) {
        return false;
    }
    let Some(rest) = rest.strip_prefix(['T', 't']) else {
        return false;
    };
    let b = rest.as_bytes();
    if b.len() < 8 || b[2] != b':' || b[5] != b':' {
        return false;
    }
    let (Some(h), Some(m), Some(s)) = (num(&rest[0..2]), num(&rest[3..5]), num(&rest[6..8])) else {
        return false;
    };
    if h > 23 || m > 59 || s > 60 {
        return false;
    }
    let mut zone = &rest[8..];
    if let Some(frac) = zone.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return false;
        }
        zone = &frac[digits..];
    }
    match zone {
        "Z" | "z" => true,
        _ => {
            let zb = zone.as_bytes();
            zb.len() == 6
                && matches!(zb[0], b'+' | b'-')
                && zb[3] == b':'
                && num(&zone[1..3]).is_some_and(|h| h <= 23)
                && num(&zone[4..6]).is_some_and(|m| m <= 59)
        }
    }
}

fn num(text: &str) -> Option<u32> {
    if text.bytes().all(|b| b.is_ascii_digit()) {
        text.parse().ok()
    } else {
        None
    }
}

/// Warns when the string under `key` of `node` is not a `YYYY-MM-DD` date.
pub(crate) fn check_date(node: &Node, key: &str, cx: &mut Cx) {
    check(
        node,
        key,
        cx,
        is_date,
        "a date",
        "write dates as YYYY-MM-DD",
    );
}

/// Warns when the string under `key` of `node` is not an RFC 3339 date-time.
pub(crate) fn check_date_time(node: &Node, key: &str, cx: &mut Cx) {
    check(
        node,
        key,
        cx,
        is_date_time,
        "an RFC 3339 date-time",
        "write it like 2024-01-31T12:00:00Z",
    );
}

/// `dateIn` and `dateOut` of a team member (ODCS and ODPS alike).
pub(crate) fn check_membership_dates(node: &Node, cx: &mut Cx) {
    check_date(node, "dateIn", cx);
    check_date(node, "dateOut", cx);
}

fn check(node: &Node, key: &str, cx: &mut Cx, valid: fn(&str) -> bool, what: &str, hint: &str) {
    let Some(value) = node.get(key) else { return };
    let Some(text) = value.as_str().filter(|t| !valid(t)) else {
        return;
    };
    cx.at(key, |cx| {
        cx.warning(Code::Format, value.span, format!("`{text}` is not {what}"))
            .hint = Some(hint.to_owned());
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert!(is_date("2024-02-29"));
        assert!(!is_date("2023-02-29"));
        assert!(!is_date("2024-13-01"));
        assert!(!is_date("24-01-01"));
        assert!(!is_date("2024-01-é"));
    }

    #[test]
    fn date_times() {
        assert!(is_date_time("2022-11-15T02:59:43+00:00"));
        assert!(is_date_time("2023-01-15T10:30:00Z"));
        assert!(is_date_time("2023-01-15T10:30:00.123456Z"));
        assert!(!is_date_time("2023-01-15 10:30:00Z"));
        assert!(!is_date_time("2023-01-15T10:30:00"));
        assert!(!is_date_time("2023-01-15T10:30Z"));
        assert!(!is_date_time("2023-01-15T1é:30:00Z"));
    }
}
