//! `make bench` (analytics):
//!
//! 1. Heartbeat ingest: the real `onair` binary on 127.0.0.1 and
//!    `ONAIR_BENCH_VIEWERS` (default 5,000) simulated watch pages on the
//!    events socket (`hello` with a viewer id, then `beacon`s with quality).
//!    First at the watch page's pace (one beacon per viewer every 10 s, for
//!    30 s), then as fast as the viewers can send (10 s). The rate is what
//!    the server counted (`onair_analytics_beats_total` on `/metrics`), so
//!    it is what it processed, not what was sent.
//! 2. Dashboard query: one day of per-minute rollups (1,440 rows with
//!    places, histograms and renditions) for one stream in the embedded
//!    database; the time of the analytics answer the dashboard and the API
//!    use (read the rows, add them up), and of the history row.

use std::sync::Arc;
use std::time::{Duration, Instant};

use app::protocol::beacon::Quality;
use app::protocol::events::{ClientMessage, ClientRole};
use futures::{SinkExt, StreamExt};
use onair_server::analytics::tracker::{MinuteDetail, MinuteRow};
use onair_server::analytics::{Analytics, AnalyticsConfig};
use onair_server::db::Database;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

#[path = "report.rs"]
mod report;
#[path = "server.rs"]
#[allow(dead_code)]
mod server;

use server::Server;

fn start_server(viewers: usize) -> Server {
    server::start(&[
        "--events-max-connections".into(),
        (viewers + 100).to_string(),
        // Nobody times out while the generator is busy connecting the rest.
        "--analytics-heartbeat-timeout".into(),
        "600".into(),
    ])
}

async fn setup(http: &reqwest::Client, addr: &str) -> String {
    server::broadcaster_stream(http, addr, "Analytics load")
        .await
        .0
}

/// A metric's value from `/metrics`.
async fn metric(http: &reqwest::Client, addr: &str, name: &str) -> f64 {
    let text = http
        .get(format!("http://{addr}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;
type Tx = futures::stream::SplitSink<Ws, Message>;

/// A watch page's socket after `welcome`: a task keeps reading it (which
/// also answers the server's pings: a silent peer is dropped after three),
/// and the sending half is returned.
async fn connect(addr: &str, id: &str, n: usize) -> Tx {
    let req = format!("ws://{addr}/api/v1/streams/{id}/events")
        .into_client_request()
        .expect("request");
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("websocket connects");
    server::hello(&mut ws, ClientRole::Viewer, n).await;
    let (tx, rx) = ws.split();
    tokio::spawn(rx.for_each(|_| async {}));
    tx
}

fn beacon(n: usize, k: u32) -> String {
    let q = Quality {
        ttff_ms: Some(800 + (n % 700) as u32),
        stalls: k / 20,
        stall_ms: u64::from(k / 20) * 400,
        rendition: Some(["360p", "480p", "720p"][n % 3].into()),
        bitrate: Some(1_500_000),
        switches: 0,
        latency_ms: Some(2000 + (n % 3000) as u32),
        errors: 0,
    };
    serde_json::to_string(&ClientMessage::Beacon {
        leave: false,
        quality: Some(q),
    })
    .expect("json")
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    let viewers: usize = std::env::var("ONAIR_BENCH_VIEWERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let ingest = rt.block_on(ingest(viewers));
    let tracker = tracker_rate(viewers);
    let query = rt.block_on(dashboard_query());
    let today = time::OffsetDateTime::now_utc().date();
    let body = format!(
        "## Analytics\n\n\
Produced by `make bench` (`server/benches/analytics.rs`) on the project's 2-core machine, dev profile (like the tests). \
Ingest: the real `onair` binary with an in-memory database; the simulated viewers run in the bench process on the same two cores, \
so they compete with the server for the CPU. Every viewer is an events-socket connection that said `hello` with its own viewer id \
(a session) and then sends `beacon`s with a full quality record. Rates are what the server counted (`onair_analytics_beats_total`). \
Dashboard query: 1,440 minute rows (one day) of one stream in the embedded database (surrealkv), each with 30 countries, \
100 cities, both histograms and 3 renditions; the analytics answer reads them all and adds them up.\n\n\
Last run: {today}\n\n\
| measure | value |\n|---|---|\n{ingest}{tracker}{query}"
    );
    println!("{body}");
    report::write_section("analytics", &body);
}

async fn ingest(viewers: usize) -> String {
    let server = start_server(viewers);
    let http = reqwest::Client::new();
    let id = setup(&http, &server.addr).await;
    let addr = Arc::new(server.addr.clone());
    let id = Arc::new(id);

    let t0 = Instant::now();
    let sockets: Vec<Tx> = futures::stream::iter(0..viewers)
        .map(|n| {
            let (addr, id) = (addr.clone(), id.clone());
            async move { connect(&addr, &id, n).await }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let connect_s = t0.elapsed().as_secs_f64();
    // The gauge is set once a second.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let open = metric(&http, &addr, "onair_analytics_sessions_open").await;

    // Each viewer: a reader (answers the server's pings) and a sender that
    // beats every 10 s (offset by its number); after a quiet gap, as fast as
    // it can for 10 s.
    let paced = Duration::from_secs(30);
    let gap = Duration::from_secs(3);
    let flat_out = Duration::from_secs(10);
    let start = tokio::time::Instant::now() + Duration::from_secs(1);
    let flat_start = start + paced + gap;
    let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(viewers);
    for (n, mut tx) in sockets.into_iter().enumerate() {
        let sent = sent.clone();
        tasks.push(tokio::spawn(async move {
            let offset = Duration::from_millis((n as u64 * 10_000) / viewers.max(1) as u64);
            let mut next = start + offset;
            let mut k = 0u32;
            while next < start + paced {
                tokio::time::sleep_until(next).await;
                k += 1;
                if tx.send(Message::Text(beacon(n, k).into())).await.is_err() {
                    return;
                }
                next += Duration::from_secs(10);
            }
            tokio::time::sleep_until(flat_start).await;
            let mut mine = 0;
            while tokio::time::Instant::now() < flat_start + flat_out {
                k += 1;
                if tx.send(Message::Text(beacon(n, k).into())).await.is_err() {
                    break;
                }
                mine += 1;
            }
            sent.fetch_add(mine, std::sync::atomic::Ordering::Relaxed);
            // Keep the socket open until the count is read.
            tokio::time::sleep(Duration::from_secs(20)).await;
        }));
    }
    tokio::time::sleep_until(start).await;
    let b0 = metric(&http, &addr, "onair_analytics_beats_total").await;
    tokio::time::sleep_until(start + paced).await;
    let b1 = metric(&http, &addr, "onair_analytics_beats_total").await;
    tokio::time::sleep_until(flat_start).await;
    let b2 = metric(&http, &addr, "onair_analytics_beats_total").await;
    // Flat out: wait until the senders stopped and the server has drained
    // what they queued (the count stops moving), and time that.
    tokio::time::sleep_until(flat_start + flat_out).await;
    let mut last = metric(&http, &addr, "onair_analytics_beats_total").await;
    let mut done_at = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let now = metric(&http, &addr, "onair_analytics_beats_total").await;
        if now == last {
            break;
        }
        last = now;
        done_at = Instant::now();
    }
    let flat_window = done_at.duration_since(flat_start.into_std()).as_secs_f64();
    let sent = sent.load(std::sync::atomic::Ordering::Relaxed) as f64;
    for t in tasks {
        t.abort();
    }
    let paced_rate = (b1 - b0) / paced.as_secs_f64();
    let flat_rate = (last - b2) / flat_window;
    format!(
        "| simulated viewers (events-socket sessions open on the server) | {viewers} ({open:.0} open) |\n\
| connecting them all (handshake + hello + welcome, 64 at a time), s | {connect_s:.1} |\n\
| beacons processed at the watch page's pace (one per viewer per 10 s, offered {offered:.0}/s), per s | {paced_rate:.0} |\n\
| beacons processed with every viewer sending flat out for 10 s (until the server drained them: {flat_window:.1} s), per s | {flat_rate:.0} ({processed:.0} of {sent:.0} sent) |\n",
        processed = last - b2,
        offered = viewers as f64 / 10.0,
    )
}

/// The analytics core alone: beats per second into `Analytics::beat` with
/// `viewers` open sessions (no sockets, no database writes in the loop).
fn tracker_rate(viewers: usize) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let analytics = rt.block_on(async {
        let db = Database::connect(&onair_server::db::DbSettings {
            engine: onair_server::db::DbConfig::Memory,
            namespace: "bench".into(),
            database: "bench".into(),
        })
        .await
        .expect("db");
        Analytics::new(db, AnalyticsConfig::default())
    });
    let src = analytics.source(std::net::IpAddr::from([127, 0, 0, 1]), &Default::default());
    let ids: Vec<String> = (0..viewers)
        .map(|n| format!("bench-viewer-{n:08}"))
        .collect();
    for id in &ids {
        analytics.beat("benchstream", id, None, src, None, false);
    }
    let qualities: Vec<Quality> = (0..viewers)
        .map(|n| serde_json::from_str::<ClientMessage>(&beacon(n, 1)).ok())
        .map(|m| match m {
            Some(ClientMessage::Beacon {
                quality: Some(q), ..
            }) => q,
            _ => Quality::default(),
        })
        .collect();
    let t = Instant::now();
    let mut n = 0u64;
    while t.elapsed() < Duration::from_secs(3) {
        for (id, q) in ids.iter().zip(&qualities) {
            analytics.beat("benchstream", id, None, src, Some(q), false);
            n += 1;
        }
    }
    let rate = n as f64 / t.elapsed().as_secs_f64();
    format!(
        "| the analytics core alone: `Analytics::beat` with {viewers} open sessions, one thread, per s | {rate:.0} |\n"
    )
}

fn minute_row(stream: &str, i: i64, t0: i64) -> MinuteRow {
    let mut detail = MinuteDetail::default();
    for c in 0..30 {
        detail
            .countries
            .insert(format!("C{c:02}"), (c % 5 + 1) as u64);
    }
    for c in 0..100 {
        detail.cities.insert(
            format!("C{:02}\tRegion {c}\tCity {c}", c % 30),
            (c % 3 + 1) as u64,
        );
    }
    for ms in [300, 800, 1200, 2500, 4000, 9000] {
        detail.ttff.add(ms);
        detail.latency.add(ms + 1000);
    }
    for r in ["360p", "480p", "720p"] {
        detail.renditions.insert(r.into(), 40);
    }
    detail.watch = vec![3, 2, 1, 0, 0, 0, 0];
    detail.bitrate_kbps_sum = 150_000;
    detail.bitrate_samples = 100;
    MinuteRow {
        id: format!("{stream}m{i}"),
        stream: stream.to_string(),
        minute_ms: t0 + i * 60_000,
        peak: 500,
        viewer_sum: 480 * 60,
        samples: 60,
        new_viewers: 40,
        watch_ms: 480 * 60_000,
        stalls: 3,
        stall_ms: 1200,
        detail,
    }
}

async fn dashboard_query() -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Database::open_embedded(&dir.path().join("db"))
        .await
        .expect("open");
    db.migrate().await.expect("migrate");
    let owner = db
        .create_user("benchcaster", "not-a-phc-string", "broadcaster")
        .await
        .expect("user");
    let stream = db
        .create_stream(&owner.id, "A day of rollups")
        .await
        .expect("stream");
    let t0 = 1_800_000_000_000i64;
    let rows: Vec<MinuteRow> = (0..1440).map(|i| minute_row(&stream.id, i, t0)).collect();
    let w = Instant::now();
    db.insert_minutes(&rows).await.expect("insert");
    let write_ms = w.elapsed().as_secs_f64() * 1000.0;
    let mut read = Vec::new();
    for _ in 0..10 {
        let t = Instant::now();
        let r = db.stream_minutes(&stream.id).await.expect("read");
        read.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(r.len(), 1440);
    }
    read.sort_by(f64::total_cmp);
    let row = db.get_stream(&stream.id).await.expect("get").expect("row");
    let analytics = Analytics::new(db.clone(), AnalyticsConfig::default());
    let mut answer = Vec::new();
    let mut history = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let a = analytics.stream(&row).await.expect("analytics");
        answer.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(a.minutes.len(), 1440);
        let t = Instant::now();
        let h = analytics
            .history(std::slice::from_ref(&row))
            .await
            .expect("history");
        history.push(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(h[0].peak_viewers, 500);
    }
    answer.sort_by(f64::total_cmp);
    history.sort_by(f64::total_cmp);
    format!(
        "| writing 1,440 minute rows (one day), ms | {write_ms:.0} |\n\
| reading those rows back (query + JSON of each row's detail), ms (p50 over 10) | {:.1} |\n\
| stream analytics over one day of minutes (read + add up), ms (p50 / p99 over 20) | {:.1} / {:.1} |\n\
| history row over the same day (dashboard table), ms (p50 / p99 over 20) | {:.1} / {:.1} |\n",
        percentile(&read, 0.5),
        percentile(&answer, 0.5),
        percentile(&answer, 0.99),
        percentile(&history, 0.5),
        percentile(&history, 0.99),
    )
}
