//! RFC 3339 timestamps (UTC) to and from unix nanoseconds, for API parameters and output,
//! without a date library (the calendar arithmetic is the engine's `civil` module).

use tollgate_engine::civil::{civil_from_days, days_from_civil};

/// `YYYY-MM-DDTHH:MM:SS[.fffffffff]Z` from unix nanoseconds.
pub fn format_nanos(nanos: i64) -> String {
    let secs = nanos.div_euclid(1_000_000_000);
    let frac = nanos.rem_euclid(1_000_000_000);
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let base = format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    );
    if frac == 0 {
        format!("{base}Z")
    } else {
        format!("{base}.{:09}Z", frac)
    }
}

/// Unix nanoseconds from an RFC 3339 UTC timestamp (`Z` or `+00:00`), or from an integer
/// (unix seconds when it has at most 12 digits, else nanoseconds).
pub fn parse_time(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(n) = s.parse::<i64>() {
        return Some(if s.trim_start_matches('-').len() <= 12 {
            n.checked_mul(1_000_000_000)?
        } else {
            n
        });
    }
    let s = s.strip_suffix('Z').or_else(|| s.strip_suffix("+00:00"))?;
    let (date, time) = s.split_once(['T', ' '])?;
    let mut d = date.split('-');
    let (y, m, dd): (i64, i64, i64) = (
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
        d.next()?.parse().ok()?,
    );
    if d.next().is_some() || !(1..=12).contains(&m) || !(1..=31).contains(&dd) {
        return None;
    }
    let (hms, frac) = match time.split_once('.') {
        Some((a, f)) => (a, Some(f)),
        None => (time, None),
    };
    let mut t = hms.split(':');
    let (h, mi, sec): (i64, i64, i64) = (
        t.next()?.parse().ok()?,
        t.next()?.parse().ok()?,
        t.next()?.parse().ok()?,
    );
    if t.next().is_some() || h > 23 || mi > 59 || sec > 60 {
        return None;
    }
    let nanos_frac = match frac {
        Some(f) if !f.is_empty() && f.len() <= 9 && f.bytes().all(|b| b.is_ascii_digit()) => {
            f.parse::<i64>().ok()? * 10i64.pow(9 - u32::try_from(f.len()).ok()?)
        }
        Some(_) => return None,
        None => 0,
    };
    let secs = days_from_civil(y, m, dd) * 86_400 + h * 3600 + mi * 60 + sec;
    secs.checked_mul(1_000_000_000)?.checked_add(nanos_frac)
}

/// Now, in unix milliseconds.
pub fn now_ms() -> u64 {
    u64::try_from(now_ns() / 1_000_000).unwrap_or(0)
}

/// Now, in unix nanoseconds (0 before 1970, saturating far ahead).
pub fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        assert_eq!(format_nanos(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            format_nanos(951_782_400_000_000_000),
            "2000-02-29T00:00:00Z"
        );
        assert_eq!(
            format_nanos(1_795_311_582_361_572_000),
            "2026-11-22T01:39:42.361572000Z"
        );
        for s in [
            "2026-11-22T01:39:42.361572000Z",
            "1999-12-31T23:59:59Z",
            "2024-02-29T12:00:00Z",
        ] {
            assert_eq!(format_nanos(parse_time(s).unwrap()), s);
        }
        assert_eq!(
            parse_time("2026-11-22T00:00:00+00:00"),
            parse_time("2026-11-22T00:00:00Z")
        );
        assert_eq!(parse_time("1795311582"), Some(1_795_311_582_000_000_000));
        assert_eq!(
            parse_time("1795311582361572000"),
            Some(1_795_311_582_361_572_000)
        );
        for bad in [
            "",
            "yesterday",
            "2026-13-01T00:00:00Z",
            "2026-11-22T00:00:00",
            "2026-11-22T25:00:00Z",
        ] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }
}
