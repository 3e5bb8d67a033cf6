//! Small pieces every stream list shows: the state badge and the started or
//! ended time.
//!
//! Times are shown in UTC from the API's RFC 3339 strings, the same on the
//! server and in the browser, so hydration never sees a different text.

use leptos::prelude::*;

use crate::protocol::StreamState;

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `2026-11-21T08:05:00Z` as `21 Nov 2026, 08:05 UTC`; anything else as it is.
pub fn format_time(rfc3339: &str) -> String {
    let parsed = (|| {
        let (date, time) = rfc3339.strip_suffix('Z')?.split_once('T')?;
        let mut d = date.splitn(3, '-');
        let (year, month, day) = (d.next()?, d.next()?, d.next()?);
        let month = MONTHS.get(month.parse::<usize>().ok()?.checked_sub(1)?)?;
        let day = day.parse::<u8>().ok()?;
        let hm = time.get(..5)?;
        let ok = year.len() == 4
            && year.bytes().all(|b| b.is_ascii_digit())
            && hm.as_bytes().get(2) == Some(&b':');
        ok.then(|| format!("{day} {month} {year}, {hm} UTC"))
    })();
    parsed.unwrap_or_else(|| rfc3339.to_string())
}

/// Seconds since the Unix epoch of `2026-11-21T08:05:00Z` (fractions of a
/// second ignored); `None` for anything else.
pub fn unix_seconds(rfc3339: &str) -> Option<i64> {
    let (date, time) = rfc3339.strip_suffix('Z')?.split_once('T')?;
    let num = |s: &str| -> Option<i64> {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())).then(|| s.parse().ok())?
    };
    let mut d = date.splitn(3, '-');
    let (y, m, day) = (num(d.next()?)?, num(d.next()?)?, num(d.next()?)?);
    let mut t = time.splitn(3, ':');
    let (hh, mm) = (num(t.next()?)?, num(t.next()?)?);
    let ss = num(t.next()?.split('.').next()?)?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Days from the civil date (Howard Hinnant's days_from_civil).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + hh * 3600 + mm * 60 + ss)
}

/// How long a broadcast lasted, `1h 02m 05s` / `12m 05s` / `45s`, from its
/// start and end times; `None` if either is missing or odd.
pub fn broadcast_length(started_at: Option<&str>, ended_at: Option<&str>) -> Option<String> {
    let secs = unix_seconds(ended_at?)?.checked_sub(unix_seconds(started_at?)?)?;
    if secs < 0 {
        return None;
    }
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    Some(if h > 0 {
        format!("{h}h {m:02}m {s:02}s")
    } else if m > 0 {
        format!("{m}m {s:02}s")
    } else {
        format!("{s}s")
    })
}

/// What the badge says for a state.
pub fn state_label(state: StreamState) -> &'static str {
    match state {
        StreamState::Idle => "Not live yet",
        StreamState::Live => "LIVE",
        StreamState::Ended => "Ended",
        StreamState::Interrupted => "Interrupted",
    }
}

/// The state as a badge: red "LIVE", or a quiet label for the others.
#[component]
pub fn StateBadge(state: StreamState) -> impl IntoView {
    let class = if state == StreamState::Live {
        "live-badge"
    } else {
        "state-badge"
    };
    view! {
        <span class=class data-testid="state-badge" data-state=state.as_str()>{state_label(state)}</span>
    }
}

/// "Live since …", "Ended …" or nothing, with a machine-readable `<time>`.
#[component]
pub fn StreamTime(
    state: StreamState,
    started_at: Option<String>,
    ended_at: Option<String>,
) -> impl IntoView {
    let (label, at) = match state {
        StreamState::Live => ("Live since ", started_at),
        StreamState::Ended | StreamState::Interrupted => ("Ended ", ended_at.or(started_at)),
        StreamState::Idle => ("", None),
    };
    at.map(|at| {
        view! {
            <span class="muted stream-time">
                {label}
                <time datetime=at.clone()>{format_time(&at)}</time>
            </span>
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_shown_in_utc_and_odd_input_is_kept() {
        assert_eq!(
            format_time("2026-11-21T08:05:00Z"),
            "21 Nov 2026, 08:05 UTC"
        );
        assert_eq!(format_time("2026-01-02T23:59:59Z"), "2 Jan 2026, 23:59 UTC");
        for odd in [
            "",
            "yesterday",
            "2026-13-01T00:00:00Z",
            "2026-11-21T08:05:00+01:00",
        ] {
            assert_eq!(format_time(odd), odd);
        }
        assert_eq!(state_label(StreamState::Live), "LIVE");
    }

    #[test]
    fn broadcast_lengths_come_from_the_two_times() {
        assert_eq!(unix_seconds("1970-01-01T00:00:00Z"), Some(0));
        assert_eq!(unix_seconds("2027-01-15T08:00:00Z"), Some(1_800_000_000));
        assert_eq!(unix_seconds("2000-02-29T12:00:00.123Z"), Some(951_825_600));
        for odd in [
            "",
            "2026-13-01T00:00:00Z",
            "2026-11-21T08:05:00+01:00",
            "2026-11-21T24:00:00Z",
            "x-y-zTa:b:cZ",
        ] {
            assert_eq!(unix_seconds(odd), None, "{odd}");
        }
        let len = |a, b| broadcast_length(Some(a), Some(b));
        assert_eq!(
            len("2026-11-21T08:05:00Z", "2026-11-21T08:05:45Z").as_deref(),
            Some("45s")
        );
        assert_eq!(
            len("2026-11-21T08:05:00Z", "2026-11-21T08:17:05Z").as_deref(),
            Some("12m 05s")
        );
        assert_eq!(
            len("2026-11-21T23:00:00Z", "2026-11-22T00:02:05Z").as_deref(),
            Some("1h 02m 05s")
        );
        assert_eq!(len("2026-11-21T08:05:00Z", "2026-11-21T08:04:00Z"), None);
        assert_eq!(broadcast_length(None, Some("2026-11-21T08:05:00Z")), None);
    }
}
