//! Charts as SVG rendered by Leptos: a line chart over time and a bar list.
//! Each has axes or labels with units, a hover value on every point or bar
//! (an SVG `<title>`), and a "CSV" link that downloads its data.

use leptos::prelude::*;

use crate::analytics::csv;

/// Chart size in SVG units (it scales to the container's width; labels are
/// HTML laid over it, so their size does not scale with it).
const W: f64 = 640.0;
const H: f64 = 220.0;
const LEFT: f64 = 8.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 18.0;
const BOTTOM: f64 = 30.0;

/// `HH:MM` (UTC) of a Unix ms time.
pub fn utc_hh_mm(ms: i64) -> String {
    let m = ms.div_euclid(60_000).rem_euclid(1440);
    format!("{:02}:{:02}", m / 60, m % 60)
}

/// `HH:MM:SS` (UTC) of a Unix ms time.
pub fn utc_hh_mm_ss(ms: i64) -> String {
    let s = ms.div_euclid(1000).rem_euclid(86_400);
    format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
}

/// A round number at or above `v` for the top of an axis (1, 2 or 5 × 10ⁿ).
pub fn nice_max(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let mag = 10f64.powf(v.log10().floor());
    for step in [1.0, 2.0, 5.0, 10.0] {
        if step * mag >= v {
            return step * mag;
        }
    }
    10.0 * mag
}

/// The ticks of a value axis from 0 to at least `max`: a round step (1, 2 or
/// 5 × 10ⁿ; a whole number when the values are counts, so a chart of one
/// viewer never shows 0.2 viewers), at most about four intervals. The last tick is
/// the top of the axis.
pub fn value_ticks(max: f64, whole: bool) -> Vec<f64> {
    let max = if max.is_finite() && max > 0.0 {
        max
    } else {
        1.0
    };
    let mut step = nice_max(max / 4.0);
    if whole {
        step = step.max(1.0).round();
    }
    let n = (max / step).ceil().clamp(1.0, 10.0) as u32;
    (0..=n).map(|i| step * f64::from(i)).collect()
}

/// A value axis label: whole numbers without decimals, else as many
/// decimals as the step needs.
fn value_label(v: f64, step: f64) -> String {
    if step >= 1.0 || step <= 0.0 {
        format!("{v:.0}")
    } else {
        let decimals = (-step.log10().floor()).clamp(1.0, 6.0) as usize;
        format!("{v:.decimals$}")
    }
}

/// The month and day (UTC) of a Unix ms time (the civil calendar, after
/// Howard Hinnant's `civil_from_days`).
fn month_day(ms: i64) -> (i64, i64) {
    let z = ms.div_euclid(86_400_000) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (m, d)
}

/// Round steps for a time axis, ms.
const TIME_STEPS: [i64; 18] = [
    1_000, 2_000, 5_000, 10_000, 15_000, 30_000, 60_000, 120_000, 300_000, 600_000, 900_000,
    1_800_000, 3_600_000, 7_200_000, 10_800_000, 21_600_000, 43_200_000, 86_400_000,
];

/// The ticks of a time axis over `t0..=t1` (Unix ms): at round times (every
/// 5 s, 1 min, 15 min, 1 h, ...), at most five, each labelled once, with
/// seconds when the step is under a minute (or `seconds` asks for them).
/// A single instant gets one tick.
pub fn time_ticks(t0: i64, t1: i64, seconds: bool) -> Vec<(i64, String)> {
    let span = t1.saturating_sub(t0);
    // Over a day, the date comes first (`MM-DD HH:MM`, or `MM-DD` alone
    // for whole days).
    let fmt = |t: i64, secs: bool| {
        if span >= 86_400_000 {
            let (m, d) = month_day(t);
            if t.rem_euclid(86_400_000) == 0 {
                format!("{m:02}-{d:02}")
            } else {
                format!("{m:02}-{d:02} {}", utc_hh_mm(t))
            }
        } else if secs {
            utc_hh_mm_ss(t)
        } else {
            utc_hh_mm(t)
        }
    };
    if t1 <= t0 {
        return vec![(t0, fmt(t0, seconds))];
    }
    let step = TIME_STEPS
        .iter()
        .copied()
        .find(|s| span / s <= 4)
        .unwrap_or_else(|| (span / 4).max(1));
    let secs = seconds || step < 60_000;
    let first = t0.div_euclid(step) * step + if t0.rem_euclid(step) == 0 { 0 } else { step };
    let mut ticks = Vec::new();
    let mut t = first;
    while t <= t1 && ticks.len() < 6 {
        ticks.push((t, fmt(t, secs)));
        t += step;
    }
    if ticks.is_empty() {
        ticks.push((t0, fmt(t0, secs)));
    }
    ticks
}

/// Percent-encodes text for a `data:` URL.
fn url_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len() * 3);
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A link that downloads `content` as `name`.
#[component]
pub fn CsvLink(name: String, content: String) -> impl IntoView {
    let href = format!("data:text/csv;charset=utf-8,{}", url_encode(&content));
    view! {
        <a class="csv-link" href=href download=name data-testid="csv">"CSV"</a>
    }
}

/// A point of a [`LineChart`]: time (Unix ms) and value.
pub type Point = (i64, f64);

/// A line over time with a y axis in `unit`.
#[component]
pub fn LineChart(
    /// The heading.
    title: String,
    /// What a y value is, e.g. "viewers", "ms".
    unit: &'static str,
    /// Points, oldest first.
    points: Vec<Point>,
    /// File name of the CSV export.
    csv_name: String,
    /// Test id.
    #[prop(optional)]
    testid: &'static str,
    /// What to say when there are no points.
    empty: &'static str,
    /// Show seconds on the time axis (live charts).
    #[prop(optional)]
    seconds: bool,
) -> impl IntoView {
    let fmt_t = move |t: i64| {
        if seconds {
            utc_hh_mm_ss(t)
        } else {
            utc_hh_mm(t)
        }
    };
    let rows: Vec<Vec<String>> = points
        .iter()
        .map(|(t, v)| vec![t.to_string(), fmt_t(*t), format!("{v:.2}")])
        .collect();
    let csv_text = csv(&["unix_ms", "time_utc", unit], &rows);
    let body = if points.is_empty() {
        view! { <p class="muted empty" data-testid="empty">{empty}</p> }.into_any()
    } else {
        let (t0, t1) = (
            points.first().map_or(0, |p| p.0),
            points.last().map_or(0, |p| p.0),
        );
        let span = (t1 - t0).max(1) as f64;
        let whole = matches!(unit, "viewers" | "sessions" | "stalls");
        let ticks = value_ticks(points.iter().map(|p| p.1).fold(0.0, f64::max), whole);
        let ymax = ticks.last().copied().unwrap_or(1.0);
        let step = ticks.get(1).copied().unwrap_or(1.0);
        // One point: in the middle.
        let x = move |t: i64| {
            if t1 == t0 {
                LEFT + (W - LEFT - RIGHT) / 2.0
            } else {
                LEFT + (t - t0) as f64 / span * (W - LEFT - RIGHT)
            }
        };
        let y = move |v: f64| TOP + (1.0 - v / ymax) * (H - TOP - BOTTOM);
        let pct = |v: f64, of: f64| format!("{:.2}%", v / of * 100.0);
        let path: String = points
            .iter()
            .enumerate()
            .map(|(i, (t, v))| {
                format!(
                    "{}{:.1},{:.1}",
                    if i == 0 { "M" } else { " L" },
                    x(*t),
                    y(*v)
                )
            })
            .collect();
        let grid: Vec<_> = ticks
            .iter()
            .map(|&v| view! { <line x1=LEFT x2=W - RIGHT y1=y(v) y2=y(v) class="grid" /> })
            .collect();
        // Value labels sit just above their grid line, at the left.
        let ylabels: Vec<_> = ticks
            .iter()
            .map(|&v| {
                let style = format!("left: {}; top: {}", pct(LEFT, W), pct(y(v), H));
                view! { <span class="chart-label y" style=style>{value_label(v, step)}</span> }
            })
            .collect();
        let xlabels: Vec<_> = time_ticks(t0, t1, seconds)
            .into_iter()
            .map(|(t, label)| {
                let left = x(t);
                // Labels at the edges stay inside the chart.
                let align = if left < W * 0.1 {
                    "start"
                } else if left > W * 0.9 {
                    "end"
                } else {
                    "middle"
                };
                let style = format!("left: {}; top: {}", pct(left, W), pct(H - BOTTOM + 6.0, H));
                view! { <span class="chart-label x" data-align=align style=style>{label}</span> }
            })
            .collect();
        let dots: Vec<_> = points
            .iter()
            .map(|(t, v)| {
                let tip = format!("{}: {} {unit}", fmt_t(*t), trim(*v));
                view! {
                    <circle cx=x(*t) cy=y(*v) r="3" class="dot" data-value=trim(*v)>
                        <title>{tip}</title>
                    </circle>
                }
            })
            .collect();
        view! {
            <div class="chart-box">
                <svg class="chart" viewBox=format!("0 0 {W} {H}") role="img" aria-label=title.clone()>
                    {grid}
                    <line x1=LEFT x2=W - RIGHT y1=H - BOTTOM y2=H - BOTTOM class="axis" />
                    <path d=path class="line" />
                    {dots}
                </svg>
                {ylabels}
                {xlabels}
            </div>
            <p class="chart-foot muted">{format!("{unit} · time in UTC · hover a point for its value")}</p>
        }
        .into_any()
    };
    view! {
        <figure class="chart-card" data-testid=testid>
            <figcaption>
                <span>{title.clone()}</span>
                <CsvLink name=csv_name content=csv_text />
            </figcaption>
            {body}
        </figure>
    }
}

fn trim(v: f64) -> String {
    if (v - v.round()).abs() < 0.005 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

/// One bar: label, value, and the value as a person reads it.
#[derive(Debug, Clone, PartialEq)]
pub struct Bar {
    /// What it counts (a country code, a city, a rendition).
    pub label: String,
    /// The number.
    pub value: f64,
    /// The number with its unit, e.g. "12 viewers".
    pub text: String,
}

/// Horizontal bars, largest first as given.
#[component]
pub fn BarChart(
    /// The heading.
    title: String,
    /// The CSV header of the value column.
    unit: &'static str,
    /// The bars.
    bars: Vec<Bar>,
    /// File name of the CSV export.
    csv_name: String,
    /// Test id.
    #[prop(optional)]
    testid: &'static str,
    /// What to say when there are no bars.
    empty: &'static str,
) -> impl IntoView {
    let rows: Vec<Vec<String>> = bars
        .iter()
        .map(|b| vec![b.label.clone(), trim(b.value)])
        .collect();
    let csv_text = csv(&["label", unit], &rows);
    let body = if bars.is_empty() {
        view! { <p class="muted empty" data-testid="empty">{empty}</p> }.into_any()
    } else {
        let max = bars.iter().map(|b| b.value).fold(0.0, f64::max).max(1e-9);
        let items: Vec<_> = bars
            .iter()
            .map(|b| {
                let tip = format!("{}: {}", b.label, b.text);
                let width = format!("width: {:.2}%", (b.value / max * 100.0).clamp(0.5, 100.0));
                view! {
                    <li class="bar-row" data-testid="bar" data-key=b.label.clone() data-value=trim(b.value) title=tip>
                        <span class="bar-label">{b.label.clone()}</span>
                        <span class="bar-track"><span class="bar-fill" style=width></span></span>
                        <span class="bar-value">{b.text.clone()}</span>
                    </li>
                }
            })
            .collect();
        view! {
            <ul class="bar-list" role="list" aria-label=title.clone()>
                {items}
            </ul>
        }
        .into_any()
    };
    view! {
        <figure class="chart-card" data-testid=testid>
            <figcaption>
                <span>{title.clone()}</span>
                <CsvLink name=csv_name content=csv_text />
            </figcaption>
            {body}
        </figure>
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_and_times_read_well() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(3.0), 5.0);
        assert_eq!(nice_max(17.0), 20.0);
        assert_eq!(nice_max(100.0), 100.0);
        assert_eq!(nice_max(101.0), 200.0);
        assert_eq!(utc_hh_mm(1_800_000_000_000), "08:00");
        assert_eq!(utc_hh_mm_ss(1_800_000_000_000 + 61_000), "08:01:01");
        assert_eq!(url_encode("a b,1\n"), "a%20b%2C1%0A");
    }

    /// Counts get whole ticks; one viewer is an axis of 0 and 1.
    #[test]
    fn value_ticks_are_round_and_whole_for_counts() {
        assert_eq!(value_ticks(1.0, true), vec![0.0, 1.0]);
        assert_eq!(value_ticks(0.0, true), vec![0.0, 1.0]);
        assert_eq!(value_ticks(3.0, true), vec![0.0, 1.0, 2.0, 3.0]);
        assert_eq!(value_ticks(7.0, true), vec![0.0, 2.0, 4.0, 6.0, 8.0]);
        assert_eq!(value_ticks(230.0, true), vec![0.0, 100.0, 200.0, 300.0]);
        assert_eq!(
            value_ticks(0.8, false),
            vec![0.0, 0.2, 0.4, 0.6000000000000001, 0.8]
        );
        assert_eq!(value_label(0.6000000000000001, 0.2), "0.6");
        assert_eq!(value_label(250.0, 50.0), "250");
        for max in [1.0, 9.0, 11.0, 99.0, 1234.0, 0.03, f64::NAN, -3.0] {
            let t = value_ticks(max, false);
            assert!(t.len() >= 2 && t.len() <= 11, "{max}: {t:?}");
            assert!(t.last().copied().unwrap_or(0.0) >= if max.is_finite() { max } else { 0.0 });
        }
    }

    /// Time ticks are distinct, round and within the span: no "05:50"
    /// five times over a minute.
    #[test]
    fn time_ticks_are_distinct_and_round() {
        let t0 = 1_800_000_000_000 + 3_000; // 08:00:03
        let labels = |t1, secs| {
            time_ticks(t0, t1, secs)
                .into_iter()
                .map(|(_, l)| l)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            labels(t0 + 50_000, false),
            ["08:00:15", "08:00:30", "08:00:45"]
        );
        assert_eq!(
            labels(t0 + 4 * 60_000, false),
            ["08:01", "08:02", "08:03", "08:04"]
        );
        assert_eq!(
            labels(t0 + 3 * 3_600_000, false),
            ["09:00", "10:00", "11:00"]
        );
        assert_eq!(labels(t0, false), ["08:00"]);
        assert_eq!(month_day(1_800_000_000_000), (1, 15)); // 2027-01-15
        assert_eq!(month_day(951_782_400_000), (2, 29)); // 2000-02-29
        assert_eq!(
            labels(t0 + 3 * 86_400_000, false),
            ["01-16", "01-17", "01-18"]
        );
        for span in [1, 999, 61_000, 3_599_999, 86_400_000 * 3] {
            let ticks = time_ticks(t0, t0 + span, false);
            assert!(!ticks.is_empty() && ticks.len() <= 6, "{span}: {ticks:?}");
            let mut names: Vec<_> = ticks.iter().map(|(_, l)| l.clone()).collect();
            names.dedup();
            assert_eq!(names.len(), ticks.len(), "{span}: {ticks:?}");
            assert!(ticks.iter().all(|(t, _)| *t >= t0 && *t <= t0 + span) || ticks.len() == 1);
        }
    }
}
