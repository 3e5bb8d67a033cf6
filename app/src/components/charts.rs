//! Charts as SVG rendered by Leptos: a line chart over time and a bar list.
//! Each has axes or labels with units, a hover value on every point or bar
//! (an SVG `<title>`), and a "CSV" link that downloads its data.

use leptos::prelude::*;

use crate::analytics::csv;

/// Chart size in SVG units (it scales to the container's width).
const W: f64 = 640.0;
const H: f64 = 220.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 28.0;

/// `HH:MM` (UTC) of a Unix ms time.
pub fn clock(ms: i64) -> String {
    let m = ms.div_euclid(60_000).rem_euclid(1440);
    format!("{:02}:{:02}", m / 60, m % 60)
}

/// `HH:MM:SS` (UTC) of a Unix ms time.
pub fn clock_secs(ms: i64) -> String {
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
    let fmt_t = move |t: i64| if seconds { clock_secs(t) } else { clock(t) };
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
        let ymax = nice_max(points.iter().map(|p| p.1).fold(0.0, f64::max));
        let x = move |t: i64| LEFT + (t - t0) as f64 / span * (W - LEFT - RIGHT);
        let y = move |v: f64| TOP + (1.0 - v / ymax) * (H - TOP - BOTTOM);
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
        let yticks: Vec<_> = (0..=4)
            .map(|i| {
                let v = ymax * f64::from(i) / 4.0;
                let label = if ymax < 4.0 {
                    format!("{v:.1}")
                } else {
                    format!("{v:.0}")
                };
                view! {
                    <g class="tick">
                        <line x1=LEFT x2=W - RIGHT y1=y(v) y2=y(v) class="grid" />
                        <text x=LEFT - 6.0 y=y(v) + 4.0 text-anchor="end">{label}</text>
                    </g>
                }
            })
            .collect();
        let xticks: Vec<_> = (0..=4)
            .map(|i| {
                let t = t0 + ((t1 - t0) as f64 * f64::from(i) / 4.0) as i64;
                view! {
                    <text x=x(t) y=H - 8.0 text-anchor="middle" class="tick">{fmt_t(t)}</text>
                }
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
            <svg class="chart" viewBox=format!("0 0 {W} {H}") role="img" aria-label=title.clone()>
                {yticks}
                <line x1=LEFT x2=LEFT y1=TOP y2=H - BOTTOM class="axis" />
                <line x1=LEFT x2=W - RIGHT y1=H - BOTTOM y2=H - BOTTOM class="axis" />
                <text x="4" y=TOP + 2.0 class="unit">{unit}</text>
                {xticks}
                <path d=path class="line" />
                {dots}
            </svg>
            <p class="chart-foot muted">"Time in UTC · hover a point for its value"</p>
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
        let row_h = 24.0;
        let h = row_h * bars.len() as f64 + 4.0;
        let label_w = 170.0;
        let items: Vec<_> = bars
            .iter()
            .enumerate()
            .map(|(i, b)| {
                let y = 2.0 + row_h * i as f64;
                let w = (b.value / max * (W - label_w - 110.0)).max(1.0);
                let tip = format!("{}: {}", b.label, b.text);
                view! {
                    <g class="bar" data-testid="bar" data-key=b.label.clone() data-value=trim(b.value)>
                        <title>{tip}</title>
                        <text x=label_w - 8.0 y=y + 16.0 text-anchor="end">{b.label.clone()}</text>
                        <rect x=label_w y=y + 4.0 width=w height=row_h - 8.0 rx="3" />
                        <text x=label_w + w + 6.0 y=y + 16.0 class="value">{b.text.clone()}</text>
                    </g>
                }
            })
            .collect();
        view! {
            <svg class="chart bars" viewBox=format!("0 0 {W} {h}") role="img" aria-label=title.clone()>
                {items}
            </svg>
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
        assert_eq!(clock(1_800_000_000_000), "08:00");
        assert_eq!(clock_secs(1_800_000_000_000 + 61_000), "08:01:01");
        assert_eq!(url_encode("a b,1\n"), "a%20b%2C1%0A");
    }
}
