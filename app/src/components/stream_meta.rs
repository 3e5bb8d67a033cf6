//! Small pieces every stream list shows: the state badge and the started or
//! ended time.
//!
//! Times are shown in UTC from the API's RFC 3339 strings, the same on the
//! server and in the browser, so hydration never sees a different text.

use leptos::prelude::*;

use crate::streams::StreamState;

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
}
