//! `/dashboard` (broadcasters; admins see every stream) and
//! `/dashboard/{id}` (one stream).
//!
//! - Now: each live stream's concurrent viewers (a point every 5 s, the page
//!   refreshes every 5 s), viewers by country and city, median latency,
//!   stall ratio and the rendition mix.
//! - History: past streams with date, duration, peak and unique viewers and
//!   watch time, sortable by any column.
//! - A stream: viewers over time, geography, the watch-time distribution,
//!   quality over time, the recording, and the transcript and summary
//!   ("Generate summary", with progress; see [`crate::components::summary`]).
//!
//! Every chart exports its data as CSV. Geography comes from DB-IP's free
//! database, which asks for a link back on pages that show it.

use crate::components::head::PageTitle;
use leptos::prelude::*;
use leptos_router::hooks::use_params_map;

use crate::analytics::{
    get_dashboard, get_stream_analytics, Count, HistoryRow, Now, StreamAnalytics,
};
use crate::components::charts::{Bar, BarChart, CsvLink, LineChart};
use crate::components::stream_meta::format_time;
use crate::format::{human_bitrate, human_count, human_duration, human_ms};

/// How often the dashboard reads the numbers again, ms.
const REFRESH_MS: u64 = 5000;

/// A signal bumped every [`REFRESH_MS`] while the page is open (browser only).
fn refresh_ticker() -> RwSignal<u32> {
    let tick = RwSignal::new(0u32);
    Effect::new(move |_| {
        if let Ok(handle) = set_interval_with_handle(
            move || tick.update(|n| *n += 1),
            std::time::Duration::from_millis(REFRESH_MS),
        ) {
            on_cleanup(move || handle.clear());
        }
    });
    tick
}

/// "1.2k viewers", "1 viewer".
fn viewers(n: u64) -> String {
    counted(n, "viewer", "viewers")
}

/// A count with its noun: "1 session", "0 sessions", "1.2k sessions".
fn counted(n: u64, one: &str, many: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{} {many}", human_count(n))
    }
}

fn percent(ratio: f64) -> String {
    format!("{:.1} %", ratio * 100.0)
}

fn place_label(c: &Count) -> String {
    let country = if c.key == "??" {
        "Unknown"
    } else {
        c.key.as_str()
    };
    match (&c.city, &c.region) {
        (Some(city), Some(region)) if region != city => format!("{city}, {region} ({country})"),
        (Some(city), _) => format!("{city} ({country})"),
        (None, _) => format!("Unknown city ({country})"),
    }
}

fn country_bars(list: &[Count]) -> Vec<Bar> {
    list.iter()
        .take(15)
        .map(|c| Bar {
            label: if c.key == "??" {
                "Unknown".into()
            } else {
                c.key.clone()
            },
            value: c.n as f64,
            text: viewers(c.n),
        })
        .collect()
}

fn city_bars(list: &[Count]) -> Vec<Bar> {
    list.iter()
        .take(15)
        .map(|c| Bar {
            label: place_label(c),
            value: c.n as f64,
            text: viewers(c.n),
        })
        .collect()
}

fn share_bars(list: &[Count], what: &str) -> Vec<Bar> {
    let total: u64 = list.iter().map(|c| c.n).sum::<u64>().max(1);
    list.iter()
        .map(|c| Bar {
            label: c.key.clone(),
            value: c.n as f64,
            text: format!("{} % of {what}", c.n * 100 / total),
        })
        .collect()
}

/// The DB-IP attribution its licence asks for.
#[component]
fn GeoAttribution() -> impl IntoView {
    view! {
        <p class="muted geo-credit">
            "Geography: "
            <a href="https://db-ip.com" rel="noopener">"IP Geolocation by DB-IP"</a>
            " (CC BY 4.0), or the GeoIP database this server is configured with."
        </p>
    }
}

/// A number with its label.
#[component]
fn Stat(label: &'static str, value: String, testid: &'static str) -> impl IntoView {
    view! {
        <div class="stat">
            <span class="stat-value" data-testid=testid>{value}</span>
            <span class="stat-label">{label}</span>
        </div>
    }
}

/// The broadcaster's dashboard.
#[component]
pub fn DashboardPage() -> impl IntoView {
    let tick = refresh_ticker();
    let data = Resource::new(move || tick.get(), |_| get_dashboard());
    view! {
        <PageTitle text="Dashboard · Onair" />
        <section class="dashboard" data-testid="dashboard">
            <h1>"Dashboard"</h1>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match data.await {
                        Err(e) => view! { <p class="error" data-testid="dashboard-error">{e.to_string()}</p> }.into_any(),
                        Ok(d) => view! {
                            <h2>"Now"</h2>
                            {if d.live.is_empty() {
                                view! {
                                    <p class="muted empty" data-testid="now-empty">
                                        "None of your streams is live. When one is, its viewers appear here as they come and go: a chart of concurrent viewers, where they watch from, latency, stalls and the renditions they play."
                                    </p>
                                }.into_any()
                            } else {
                                d.live.into_iter().map(|a| view! { <LiveCard a=a /> }).collect_view().into_any()
                            }}
                            <h2>"History"</h2>
                            <History rows=d.history />
                            <GeoAttribution />
                        }.into_any(),
                    }
                })}
            </Transition>
        </section>
    }
}

/// One live stream, now.
#[component]
fn LiveCard(a: StreamAnalytics) -> impl IntoView {
    let Now {
        viewers: current,
        recent,
        countries,
        cities,
        latency_p50,
        stall_ratio,
        renditions,
    } = a.now.clone();
    let id = a.stream_id.clone();
    let points: Vec<(i64, f64)> = recent
        .iter()
        .map(|s| (s.at_ms, f64::from(s.viewers)))
        .collect();
    view! {
        <article class="live-card" data-testid="live-stream" data-stream=id.clone()>
            <header class="section-head">
                <h3><span class="live-badge">"LIVE"</span>{a.title.clone()}</h3>
                <a href=format!("/dashboard/{id}") data-testid="details">"Details"</a>
            </header>
            <div class="stats">
                <Stat label="watching now" value=viewers(u64::from(current)) testid="now-viewers" />
                <Stat label="peak" value=viewers(u64::from(a.peak_viewers)) testid="now-peak" />
                <Stat label="median latency" value=latency_p50.map(human_ms).unwrap_or_else(|| "–".into()) testid="now-latency" />
                <Stat label="stalled" value=percent(stall_ratio) testid="now-stalls" />
            </div>
            <LineChart title="Concurrent viewers".into() unit="viewers" points=points
                csv_name=format!("{id}-concurrent-viewers.csv") testid="now-chart" seconds=true
                empty="The chart starts with the first viewer." />
            <div class="chart-grid">
                <BarChart title="Viewers by country".into() unit="viewers" bars=country_bars(&countries)
                    csv_name=format!("{id}-countries-now.csv") testid="now-countries"
                    empty="Nobody is watching right now." />
                <BarChart title="Viewers by city".into() unit="viewers" bars=city_bars(&cities)
                    csv_name=format!("{id}-cities-now.csv") testid="now-cities"
                    empty="Nobody is watching right now." />
                <BarChart title="Rendition mix".into() unit="viewers" bars=share_bars(&renditions, "viewers")
                    csv_name=format!("{id}-renditions-now.csv") testid="now-renditions"
                    empty="Players report their rendition once they play." />
            </div>
        </article>
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SortBy {
    Date,
    Duration,
    Peak,
    Unique,
    Watch,
}

fn sort_rows(rows: &mut [HistoryRow], by: SortBy, desc: bool) {
    rows.sort_by(|a, b| {
        let o = match by {
            SortBy::Date => a.started_at.cmp(&b.started_at),
            SortBy::Duration => a.duration_secs.cmp(&b.duration_secs),
            SortBy::Peak => a.peak_viewers.cmp(&b.peak_viewers),
            SortBy::Unique => a.unique_viewers.cmp(&b.unique_viewers),
            SortBy::Watch => a.watch_seconds.cmp(&b.watch_seconds),
        };
        if desc {
            o.reverse()
        } else {
            o
        }
    });
}

/// Watch time in hours for the table: `3.2 h`, `0.01 h`, or minutes when short.
fn watch_hours(secs: u64) -> String {
    if secs < 3600 {
        human_duration(secs)
    } else {
        format!("{}.{} h", secs / 3600, secs % 3600 / 360)
    }
}

/// The past streams, sortable.
#[component]
fn History(rows: Vec<HistoryRow>) -> impl IntoView {
    if rows.is_empty() {
        return view! {
            <p class="muted empty" data-testid="history-empty">
                "No stream has been live yet. After your first broadcast, each stream gets a row here: when it ran, for how long, its peak and unique viewers and the hours watched."
            </p>
        }
        .into_any();
    }
    let sort = RwSignal::new((SortBy::Date, true));
    let csv_rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            vec![
                r.stream_id.clone(),
                r.title.clone(),
                r.started_at.clone().unwrap_or_default(),
                r.duration_secs.map(|d| d.to_string()).unwrap_or_default(),
                r.peak_viewers.to_string(),
                r.unique_viewers.to_string(),
                r.watch_seconds.to_string(),
            ]
        })
        .collect();
    let csv_text = crate::analytics::csv(
        &[
            "stream",
            "title",
            "started_at",
            "duration_s",
            "peak_viewers",
            "unique_viewers",
            "watch_s",
        ],
        &csv_rows,
    );
    let rows = StoredValue::new(rows);
    let header = move |label: &'static str, by: SortBy| {
        let mark = move || match sort.get() {
            (b, true) if b == by => " ▼",
            (b, false) if b == by => " ▲",
            _ => "",
        };
        view! {
            <th scope="col" aria-sort=move || match sort.get() { (b, d) if b == by => if d { "descending" } else { "ascending" }, _ => "none" }>
                <button type="button" class="link-button" data-testid=format!("sort-{label}")
                    on:click=move |_| sort.update(|(b, d)| if *b == by { *d = !*d } else { *b = by; *d = true })>
                    {label}{mark}
                </button>
            </th>
        }
    };
    view! {
        <div class="history">
            <p class="table-tools"><CsvLink name="streams.csv".into() content=csv_text /></p>
            <table class="data-table" data-testid="history">
                <thead>
                    <tr>
                        <th scope="col">"Stream"</th>
                        {header("date", SortBy::Date)}
                        {header("duration", SortBy::Duration)}
                        {header("peak", SortBy::Peak)}
                        {header("unique", SortBy::Unique)}
                        {header("watch time", SortBy::Watch)}
                    </tr>
                </thead>
                <tbody>
                    {move || {
                        let (by, desc) = sort.get();
                        let mut list = rows.get_value();
                        sort_rows(&mut list, by, desc);
                        list.into_iter().map(|r| view! {
                            <tr data-testid="history-row" data-stream=r.stream_id.clone()>
                                <td><a href=format!("/dashboard/{}", r.stream_id)>{r.title.clone()}</a>
                                    {(r.state == "live").then(|| view! { " " <span class="live-badge">"LIVE"</span> })}</td>
                                <td>{r.started_at.as_deref().map(format_time).unwrap_or_default()}</td>
                                <td>{r.duration_secs.map(human_duration).unwrap_or_else(|| "–".into())}</td>
                                <td data-testid="peak">{human_count(u64::from(r.peak_viewers))}</td>
                                <td data-testid="unique">{human_count(r.unique_viewers)}</td>
                                <td>{watch_hours(r.watch_seconds)}</td>
                            </tr>
                        }).collect_view()
                    }}
                </tbody>
            </table>
        </div>
    }
    .into_any()
}

/// One stream's analytics.
#[component]
pub fn StreamAnalyticsPage() -> impl IntoView {
    let params = use_params_map();
    let tick = refresh_ticker();
    let data = Resource::new(
        move || (params.read().get("id").unwrap_or_default(), tick.get()),
        |(id, _)| get_stream_analytics(id),
    );
    view! {
        <PageTitle text="Stream analytics · Onair" />
        <section class="dashboard" data-testid="stream-analytics">
            <p><a href="/dashboard">"← Dashboard"</a></p>
            <Transition fallback=|| view! { <p class="muted">"Loading…"</p> }>
                {move || Suspend::new(async move {
                    match data.await {
                        Err(e) => view! { <p class="error" data-testid="dashboard-error">{e.to_string()}</p> }.into_any(),
                        Ok(a) => view! { <StreamDetail a=a /> }.into_any(),
                    }
                })}
            </Transition>
            // Outside the 5-second refresh, so its progress and button keep their state.
            {move || {
                let id = params.read().get("id").unwrap_or_default();
                view! {
                    <crate::components::summary::SummaryPanel id=id.clone() />
                    <crate::components::chapters::ChaptersPanel id=id />
                }
            }}
        </section>
    }
}

#[component]
fn StreamDetail(a: StreamAnalytics) -> impl IntoView {
    let id = a.stream_id.clone();
    let q = a.quality.clone();
    let viewers_over_time: Vec<(i64, f64)> = a.minutes.iter().map(|m| (m.at_ms, m.avg)).collect();
    let peaks: Vec<(i64, f64)> = a
        .minutes
        .iter()
        .map(|m| (m.at_ms, f64::from(m.peak)))
        .collect();
    let latency: Vec<(i64, f64)> = a
        .minutes
        .iter()
        .filter_map(|m| m.latency_p50.map(|l| (m.at_ms, f64::from(l))))
        .collect();
    let stalls: Vec<(i64, f64)> = a
        .minutes
        .iter()
        .filter(|m| m.watch_seconds > 0)
        .map(|m| {
            (
                m.at_ms,
                m.stall_ms as f64 / (m.watch_seconds as f64 * 1000.0) * 100.0,
            )
        })
        .collect();
    let watch_bars: Vec<Bar> = a
        .watch_time
        .iter()
        .map(|c| Bar {
            label: c.key.clone(),
            value: c.n as f64,
            text: counted(c.n, "session", "sessions"),
        })
        .collect();
    let any_watch = a.watch_time.iter().any(|c| c.n > 0);
    let when = a
        .started_at
        .as_deref()
        .map(|s| format!("Went live {}", format_time(s)))
        .unwrap_or_else(|| "Not live yet".into());
    view! {
        <h1 data-testid="analytics-title">{a.title.clone()}</h1>
        <p class="muted">{when}{(a.state == "live").then_some(" · live now")}</p>
        <div class="stats">
            <Stat label="watching now" value=viewers(u64::from(a.current_viewers)) testid="current-viewers" />
            <Stat label="peak concurrent" value=viewers(u64::from(a.peak_viewers)) testid="peak-viewers" />
            <Stat label="unique viewers" value=human_count(a.unique_viewers) testid="unique-viewers" />
            <Stat label="watched" value=human_duration(a.watch_seconds) testid="watch-time" />
            <Stat label="time to first frame (median)" value=q.ttff_ms.p50.map(human_ms).unwrap_or_else(|| "–".into()) testid="ttff-p50" />
            <Stat label="latency (median)" value=q.latency_ms.p50.map(human_ms).unwrap_or_else(|| "–".into()) testid="latency-p50" />
            <Stat label="stalled" value=percent(q.stall_ratio) testid="stall-ratio" />
            <Stat label="average bitrate" value=q.avg_bitrate.map(human_bitrate).unwrap_or_else(|| "–".into()) testid="bitrate" />
        </div>
        <p class="muted">
            {format!("Time to first frame p90 {}, latency p90 {}; {} stalls, {} rendition switches, {} fatal errors.",
                q.ttff_ms.p90.map(human_ms).unwrap_or_else(|| "–".into()),
                q.latency_ms.p90.map(human_ms).unwrap_or_else(|| "–".into()),
                q.stalls, q.switches, q.errors)}
        </p>
        <h2>"Viewers over time"</h2>
        <div class="chart-grid">
            <LineChart title="Average concurrent viewers per minute".into() unit="viewers" points=viewers_over_time
                csv_name=format!("{id}-viewers-per-minute.csv") testid="viewers-chart"
                empty="Each minute with viewers adds a point here." />
            <LineChart title="Peak concurrent viewers per minute".into() unit="viewers" points=peaks
                csv_name=format!("{id}-peak-per-minute.csv") testid="peak-chart"
                empty="Each minute with viewers adds a point here." />
        </div>
        <h2>"Geography"</h2>
        <div class="chart-grid">
            <BarChart title="Viewers by country".into() unit="viewers" bars=country_bars(&a.countries)
                csv_name=format!("{id}-countries.csv") testid="countries"
                empty="Where viewers watch from appears once someone watches." />
            <BarChart title="Viewers by city".into() unit="viewers" bars=city_bars(&a.cities)
                csv_name=format!("{id}-cities.csv") testid="cities"
                empty="Where viewers watch from appears once someone watches." />
        </div>
        <h2>"Watch time"</h2>
        <BarChart title="Sessions by length".into() unit="sessions"
            bars=if any_watch { watch_bars } else { Vec::new() }
            csv_name=format!("{id}-watch-time.csv") testid="watch-distribution"
            empty="How long people stayed appears as their sessions end." />
        <h2>"Quality over time"</h2>
        <div class="chart-grid">
            <LineChart title="Median latency per minute".into() unit="ms" points=latency
                csv_name=format!("{id}-latency-per-minute.csv") testid="latency-chart"
                empty="Players report their distance from the live edge every 10 s." />
            <LineChart title="Stalled time per minute".into() unit="% of watch time" points=stalls
                csv_name=format!("{id}-stalls-per-minute.csv") testid="stall-chart"
                empty="Stalls show here once viewers have watched." />
            <BarChart title="Rendition mix".into() unit="beacons" bars=share_bars(&q.renditions, "playback")
                csv_name=format!("{id}-renditions.csv") testid="renditions"
                empty="Players report their rendition once they play." />
        </div>
        <crate::components::recording::RecordingPanel id=id.clone() />
        <GeoAttribution />
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn history_sorts_by_any_column() {
        let row = |id: &str, peak: u32, date: &str| HistoryRow {
            stream_id: id.into(),
            peak_viewers: peak,
            started_at: Some(date.into()),
            ..Default::default()
        };
        let mut rows = vec![
            row("a", 5, "2026-11-20T10:00:00Z"),
            row("b", 50, "2026-11-19T10:00:00Z"),
            row("c", 1, "2026-11-21T10:00:00Z"),
        ];
        sort_rows(&mut rows, SortBy::Peak, true);
        assert_eq!(
            rows.iter()
                .map(|r| r.stream_id.as_str())
                .collect::<String>(),
            "bac"
        );
        sort_rows(&mut rows, SortBy::Date, false);
        assert_eq!(
            rows.iter()
                .map(|r| r.stream_id.as_str())
                .collect::<String>(),
            "bac"
        );
        sort_rows(&mut rows, SortBy::Date, true);
        assert_eq!(
            rows.iter()
                .map(|r| r.stream_id.as_str())
                .collect::<String>(),
            "cab"
        );
        assert_eq!(watch_hours(12_000), "3.3 h");
        assert_eq!(watch_hours(125), "2m 5s");
        assert_eq!(viewers(1), "1 viewer");
        assert_eq!(viewers(1234), "1.2k viewers");
        assert_eq!(counted(1, "session", "sessions"), "1 session");
        assert_eq!(counted(0, "session", "sessions"), "0 sessions");
    }
}
