//! Unit tests of `tracker.rs`.

use super::*;

fn visitor(country: &str, city: &str) -> Visitor {
    Visitor {
        user: None,
        place: Place {
            country: country.into(),
            region: None,
            city: Some(city.into()),
        },
        ua: "Chrome",
    }
}

const T0: i64 = 1_800_000_000_000; // a minute boundary

#[test]
fn sessions_count_watch_time_and_end_on_leave_or_timeout() {
    let mut t = Tracker::new(30_000);
    let gb = || visitor("GB", "London");
    assert_eq!(t.beat("s", "a", gb, None, false, T0), None);
    assert_eq!(
        t.beat(
            "s",
            "b",
            || visitor("US", "Mountain View"),
            None,
            false,
            T0 + 1000
        ),
        None
    );
    assert_eq!(t.now("s").viewers, 2);
    t.beat("s", "a", gb, None, false, T0 + 10_000);
    let ended = t
        .beat("s", "a", gb, None, true, T0 + 15_000)
        .expect("leave ends it");
    assert_eq!(ended.watch_ms, 15_000);
    assert_eq!((ended.joined_ms, ended.left_ms), (T0, T0 + 15_000));
    assert_eq!(ended.place.country, "GB");
    // A leave for a session that is gone does nothing.
    assert_eq!(t.beat("s", "a", gb, None, true, T0 + 16_000), None);
    // b beats once more, then vanishes: it ends at that beat, after the timeout.
    t.beat("s", "b", gb, None, false, T0 + 11_000);
    assert!(
        t.tick(T0 + 11_000 + 30_000).is_empty(),
        "not before the timeout"
    );
    let gone = t.tick(T0 + 11_000 + 30_001);
    assert_eq!(gone.len(), 1);
    assert_eq!(gone[0].left_ms, T0 + 11_000);
    assert_eq!(gone[0].watch_ms, 10_000);
    assert_eq!(
        gone[0].place.country, "US",
        "the place of the first beat stays"
    );
    assert_eq!(t.now("s").viewers, 0);
}

#[test]
fn minutes_roll_up_concurrency_new_viewers_places_and_quality() {
    let mut t = Tracker::new(30_000);
    for (i, v) in ["a", "b", "c"].iter().enumerate() {
        t.beat(
            "s",
            v,
            || visitor("GB", "London"),
            None,
            false,
            T0 + i as i64,
        );
    }
    t.tick(T0 + 1000);
    t.beat("s", "c", || visitor("GB", "London"), None, true, T0 + 2000);
    t.tick(T0 + 3000);
    let q = Quality {
        ttff_ms: Some(900),
        stalls: 2,
        stall_ms: 1500,
        rendition: Some("720p".into()),
        bitrate: Some(2_000_000),
        switches: 1,
        latency_ms: Some(2600),
        errors: 0,
    };
    t.beat(
        "s",
        "a",
        || visitor("GB", "London"),
        Some(&q),
        false,
        T0 + 10_000,
    );
    // The same cumulative numbers again add no stalls, and ttff counts once.
    t.beat(
        "s",
        "a",
        || visitor("GB", "London"),
        Some(&q),
        false,
        T0 + 20_000,
    );
    // c comes back: not a new viewer.
    t.beat(
        "s",
        "c",
        || visitor("GB", "London"),
        None,
        false,
        T0 + 30_000,
    );
    assert!(t.unflushed().is_empty(), "the minute is still open");
    t.tick(T0 + MINUTE_MS + 5);
    let rows = t.unflushed();
    assert_eq!(rows.len(), 1);
    let m = &rows[0];
    assert_eq!(m.minute_ms, T0);
    assert_eq!(m.peak, 3);
    assert_eq!(
        (m.samples, m.viewer_sum),
        (2, 5),
        "3 then 2 viewers sampled"
    );
    assert_eq!(m.new_viewers, 3);
    assert_eq!(m.detail.countries.get("GB"), Some(&3));
    assert_eq!(m.stalls, 2);
    assert_eq!(m.stall_ms, 1500);
    assert_eq!(m.detail.ttff.total(), 1);
    assert_eq!(m.detail.latency.total(), 2);
    assert_eq!(m.detail.renditions.get("720p"), Some(&2));
    // c's first session ended; then the tick timed out a, b and c (silent for 30 s).
    assert_eq!(m.detail.watch.iter().sum::<u64>(), 4);
    // a: 20 s, b: 0, c: 2 s.
    assert_eq!(m.watch_ms, 22_000 - 2);
    let mut out = app::analytics::StreamAnalytics::default();
    super::super::report::fold(&rows, &mut out);
    assert_eq!(out.unique_viewers, 3);
    assert_eq!(out.peak_viewers, 3);
    assert_eq!(out.minutes[0].avg, 2.5);
    let ttff = out.quality.ttff_ms.p50.expect("ttff");
    assert!((750..1000).contains(&ttff), "{ttff}");
    let ids: HashSet<String> = rows.iter().map(|r| r.id.clone()).collect();
    t.flushed(&ids);
    assert!(t.unflushed().is_empty());
    assert_eq!(t.pending_minutes("s").len(), 1, "only the open minute");
}

#[test]
fn absurd_beacons_are_clamped_and_add_up_without_overflow() {
    use app::protocol::beacon::bounds;
    let absurd = Quality {
        ttff_ms: Some(u32::MAX),
        stalls: u32::MAX,
        stall_ms: u64::MAX,
        rendition: Some("r".repeat(1000)),
        bitrate: Some(u32::MAX),
        switches: u32::MAX,
        latency_ms: Some(u32::MAX),
        errors: u32::MAX,
    };
    let mut t = Tracker::new(30_000);
    let gb = || visitor("GB", "London");
    // Three minutes, each with a fresh viewer sending the absurd beacon,
    // and one viewer that alternates between zero and the absurd values
    // (each of its beacons then adds the whole bound again).
    for minute in 0..3 {
        let at = T0 + minute * MINUTE_MS;
        let v = format!("v{minute}");
        t.beat("s", &v, gb, Some(&absurd), false, at);
        for k in 0..10 {
            let q = if k % 2 == 0 {
                absurd.clone()
            } else {
                Quality::default()
            };
            t.beat("s", "flip", gb, Some(&q), false, at + k);
        }
        t.tick(at + 100);
    }
    // Sessions now: v0, v1, v2, flip, each reporting the clamped stall time.
    let now = t.now("s");
    assert!(now.stall_ratio <= 1.0, "{}", now.stall_ratio);
    t.tick(T0 + 3 * MINUTE_MS + 5);
    let rows = t.unflushed();
    assert_eq!(rows.len(), 3);
    for m in &rows {
        // One fresh viewer plus five absurd beacons of "flip" per minute.
        assert_eq!(m.stall_ms, 6 * bounds::STALL_MS);
        assert_eq!(m.stalls, 6 * u64::from(bounds::STALLS));
        assert_eq!(m.detail.renditions.keys().next().map(String::len), Some(32));
    }
    let mut out = app::analytics::StreamAnalytics::default();
    super::super::report::fold(&rows, &mut out);
    assert_eq!(out.quality.stall_ms, 18 * bounds::STALL_MS);
    assert_eq!(out.quality.errors, 18 * u64::from(bounds::ERRORS));
    assert_eq!(out.quality.avg_bitrate, Some(u64::from(bounds::BITRATE)));
    assert_eq!(out.quality.ttff_ms.p99.map(|v| v <= 120_000), Some(true));
}

#[test]
fn stored_rows_of_any_size_fold_without_overflow() {
    let huge = MinuteRow {
        id: "x".into(),
        stream: "s".into(),
        minute_ms: T0,
        peak: u32::MAX,
        viewer_sum: u64::MAX,
        samples: u64::MAX,
        new_viewers: u32::MAX,
        watch_ms: u64::MAX,
        stalls: u64::MAX,
        stall_ms: u64::MAX,
        detail: MinuteDetail {
            countries: [("GB".to_string(), u64::MAX)].into(),
            cities: [("GB\t\tLondon".to_string(), u64::MAX)].into(),
            ttff: Hist(vec![u64::MAX; 22]),
            latency: Hist(vec![u64::MAX; 30]),
            renditions: [("720p".to_string(), u64::MAX)].into(),
            watch: vec![u64::MAX; 9],
            bitrate_kbps_sum: u64::MAX,
            bitrate_samples: 1,
            switches: u64::MAX,
            errors: u64::MAX,
        },
    };
    // Three such rows in one minute and one in the next.
    let mut rows = vec![huge.clone(), huge.clone(), huge.clone()];
    rows.push(MinuteRow {
        minute_ms: T0 + MINUTE_MS,
        ..huge
    });
    let mut out = app::analytics::StreamAnalytics::default();
    super::super::report::fold(&rows, &mut out);
    assert_eq!(out.minutes.len(), 2);
    assert_eq!(out.minutes[0].stalls, u32::MAX);
    assert_eq!(out.minutes[0].new_viewers, u32::MAX);
    assert_eq!(out.quality.stall_ms, u64::MAX);
    assert_eq!(out.quality.stall_ratio, 1.0);
    assert_eq!(out.watch_seconds, u64::MAX / 1000);
    assert_eq!(out.unique_viewers, 4 * u64::from(u32::MAX));
    assert_eq!(out.countries[0].n, u64::MAX);
}

#[test]
fn close_all_ends_everything_for_shutdown() {
    let mut t = Tracker::new(30_000);
    t.beat("s", "a", || visitor("GB", "London"), None, false, T0);
    t.tick(T0 + 500);
    let ended = t.close_all(T0 + 1000);
    assert_eq!(ended.len(), 1);
    assert_eq!(t.unflushed().len(), 1);
    assert_eq!(t.open_sessions(), 0);
}
