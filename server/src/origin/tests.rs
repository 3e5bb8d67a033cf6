//! Blocking-reload behaviour and the window's availability rules, driven by
//! a real segmenter.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures::FutureExt;

use super::*;
use crate::packager::fmp4::{Codec, Sample, Track};
use crate::packager::segmenter::{Segmenter, SegmenterConfig};
use crate::packager::time::Timescale;

/// An audio-like track at 1 kHz: one 100 ms sample each push; parts of 300 ms
/// (3 samples), segments of 1 s (10 samples).
struct Feed {
    seg: Segmenter,
    dts: u64,
    live: Arc<LiveStream>,
    name: &'static str,
    /// Each sample goes in knowing the next one starts where it ends (what
    /// `Segmenter::push` assumes for audio); without, a segment closes when
    /// the sample after it arrives.
    lookahead: bool,
}

impl Feed {
    fn new(live: &Arc<LiveStream>, name: &'static str) -> Feed {
        Feed::with(live, name, 1000, 30)
    }

    /// Segments of `segment_ms`, `window` of them in the playlist.
    fn with(live: &Arc<LiveStream>, name: &'static str, segment_ms: u64, window: usize) -> Feed {
        let track = Track {
            id: 1,
            timescale: Timescale::new(1000).expect("scale"),
            codec: Codec::Aac {
                sample_rate: 48_000,
                channels: 1,
                asc: Bytes::from_static(&[0x11, 0x88]),
            },
        };
        let cfg = SegmenterConfig {
            segment_target: segment_ms,
            part_target: 300,
            window_segments: window,
        };
        let seg = Segmenter::new(track, cfg, None);
        live.set_init(name, "init.mp4", seg.init_segment().clone());
        Feed {
            seg,
            dts: 0,
            live: live.clone(),
            name,
            lookahead: true,
        }
    }

    fn push(&mut self, n: usize) {
        for _ in 0..n {
            self.push_one(100);
        }
    }

    /// One sample of `ms` milliseconds; returns what it published.
    fn push_one(&mut self, ms: u32) -> Vec<Output> {
        {
            let sample = Sample {
                dts: self.dts,
                cts_offset: 0,
                duration: ms,
                keyframe: true,
                data: Bytes::from(self.dts.to_be_bytes().to_vec()),
            };
            self.dts += u64::from(ms);
            let outputs = if self.lookahead {
                self.seg.push(sample)
            } else {
                self.seg.push_before(sample, None)
            }
            .expect("push");
            if !outputs.is_empty() {
                self.live.publish(self.name, &outputs, self.seg.snapshot());
            }
            outputs
        }
    }

    fn finish(&mut self) {
        let outputs = self.seg.finish();
        self.live.publish(self.name, &outputs, self.seg.snapshot());
    }
}

/// A clock the test moves.
#[derive(Clone)]
struct TestClock(Arc<Mutex<Instant>>);

impl TestClock {
    fn new() -> Self {
        TestClock(Arc::new(Mutex::new(Instant::now())))
    }

    fn clock(&self) -> Clock {
        let at = self.0.clone();
        Clock::new(move || *at.lock().expect("clock"))
    }

    fn now(&self) -> Instant {
        *self.0.lock().expect("clock")
    }

    fn advance(&self, by: Duration) {
        *self.0.lock().expect("clock") += by;
    }
}

/// The URIs a media playlist lists: `(msn, Some(part))` for parts and
/// `(msn, None)` for segments.
fn listed(text: &str) -> Vec<(u64, Option<usize>)> {
    let mut out = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("#EXT-X-PART:") {
            let uri = rest
                .split("URI=\"")
                .nth(1)
                .and_then(|u| u.split('"').next())
                .expect("part URI");
            let (m, p) = uri
                .trim_end_matches(".m4s")
                .split_once('.')
                .expect("msn.part");
            out.push((m.parse().expect("msn"), Some(p.parse().expect("part"))));
        } else if !line.starts_with('#') && !line.is_empty() {
            out.push((line.trim_end_matches(".m4s").parse().expect("msn"), None));
        }
    }
    out
}

/// The playlist as it is now, as a low-latency player gets it: a blocking
/// request for the last part published (answered at once; a plain reload
/// waits for the first whole segment).
async fn playlist_now(live: &LiveStream, feed: &Feed) -> String {
    let (msn, part) = feed.seg.snapshot().last_part().expect("a part is out");
    live.media_playlist(feed.name, q(msn, Some(part)))
        .now_or_never()
        .expect("a listed part is answered at once")
        .expect("playlist")
}

/// Fetches what `uri` names without waiting: `Some` if it is there now.
fn fetch_now(live: &LiveStream, rendition: &str, uri: (u64, Option<usize>)) -> Option<Media> {
    match uri {
        (msn, None) => live.segment(rendition, msn),
        (msn, Some(part)) => live
            .part(rendition, msn, part)
            .now_or_never()
            .and_then(Result::ok),
    }
}

fn q(msn: u64, part: Option<usize>) -> PlaylistQuery {
    PlaylistQuery {
        msn: Some(msn),
        part,
        skip: false,
    }
}

#[tokio::test]
async fn a_blocked_playlist_request_is_answered_when_the_part_is_published() {
    let live = LiveStream::new(Duration::from_secs(10));
    let mut feed = Feed::new(&live, "audio");
    feed.push(3); // part 0.0 published
    let waiting = tokio::spawn({
        let live = live.clone();
        async move { live.media_playlist("audio", q(0, Some(2))).await }
    });
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    assert!(!waiting.is_finished(), "must wait for part 0.2");
    assert_eq!(live.waiters(), 1);
    feed.push(3); // part 0.1
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    assert!(!waiting.is_finished(), "part 0.1 is not enough");
    feed.push(3); // part 0.2
    let text = waiting.await.expect("join").expect("playlist");
    assert!(text.contains("URI=\"0.2.m4s\""), "{text}");
    assert!(
        text.contains("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"0.3.m4s\""),
        "{text}"
    );
    assert_eq!(live.waiters(), 0);
}

#[tokio::test]
async fn requests_too_far_ahead_are_refused_and_bad_queries_too() {
    let live = LiveStream::new(Duration::from_secs(10));
    let mut feed = Feed::new(&live, "audio");
    feed.push(25); // segments 0, 1 complete; 2 open
    let err = live
        .media_playlist("audio", q(5, Some(0)))
        .await
        .expect_err("too far");
    assert!(matches!(err, OriginError::BadRequest(_)), "{err:?}");
    let err = live
        .media_playlist(
            "audio",
            PlaylistQuery {
                msn: None,
                part: Some(1),
                skip: false,
            },
        )
        .await
        .expect_err("part without msn");
    assert!(matches!(err, OriginError::BadRequest(_)));
    assert!(matches!(
        live.media_playlist("video", q(0, None)).await,
        Err(OriginError::NotFound(_))
    ));
    // Already available: answered at once.
    let text = live
        .media_playlist("audio", q(1, None))
        .await
        .expect("segment 1 is complete");
    assert!(text.contains("\n1.m4s\n"));
}

#[tokio::test]
async fn a_bounded_wait_ends_in_a_timeout() {
    let live = LiveStream::new(Duration::from_millis(300));
    let mut feed = Feed::new(&live, "audio");
    feed.push(3);
    let started = tokio::time::Instant::now();
    let err = live
        .media_playlist("audio", q(0, Some(1)))
        .await
        .expect_err("nothing more is published");
    assert!(matches!(err, OriginError::Timeout(_)), "{err:?}");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(300), "{waited:?}");
    assert_eq!(live.waiters(), 0, "the timed-out waiter is gone");
}

#[tokio::test]
async fn the_preload_hinted_part_waits_but_other_future_parts_do_not() {
    let live = LiveStream::new(Duration::from_secs(10));
    let mut feed = Feed::new(&live, "audio");
    feed.push(3);
    assert!(matches!(
        live.part("audio", 0, 3).await,
        Err(OriginError::NotFound(_))
    ));
    let hinted = tokio::spawn({
        let live = live.clone();
        async move { live.part("audio", 0, 1).await }
    });
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    assert!(!hinted.is_finished());
    feed.push(3);
    let bytes = hinted.await.expect("join").expect("part");
    assert_eq!(&bytes[4..8], b"moof");
}

#[tokio::test]
async fn one_publish_wakes_a_thousand_waiters_and_reports_other_renditions() {
    let live = LiveStream::new(Duration::from_secs(10));
    let mut audio = Feed::new(&live, "audio");
    let mut other = Feed::new(&live, "alt");
    audio.push(3);
    other.push(6);
    let handles: Vec<_> = (0..1000)
        .map(|_| {
            let live = live.clone();
            tokio::spawn(async move { live.media_playlist("audio", q(0, Some(1))).await })
        })
        .collect();
    while live.waiters() < 1000 {
        tokio::task::yield_now().await;
    }
    audio.push(3);
    for h in handles {
        let text = h.await.expect("join").expect("playlist");
        assert!(text.contains("URI=\"0.1.m4s\""));
        assert!(
            text.contains(
                "#EXT-X-RENDITION-REPORT:URI=\"../alt/index.m3u8\",LAST-MSN=0,LAST-PART=1"
            ),
            "{text}"
        );
    }
}

#[tokio::test]
async fn every_listed_uri_can_be_fetched_after_every_publish() {
    // A part that completes a segment is published with the playlist that
    // lists the whole segment: both must be fetchable the moment a reader
    // can see that playlist (rfc8216bis 6.2.1).
    let live = LiveStream::new(Duration::from_secs(10));
    let mut feed = Feed::new(&live, "audio");
    for i in 0..60 {
        // 100 ms samples, and now and then one that ends a part early.
        let outputs = feed.push_one(if i % 7 == 3 { 50 } else { 100 });
        if outputs.is_empty() {
            continue;
        }
        let text = playlist_now(&live, &feed).await;
        for uri in listed(&text) {
            assert!(
                fetch_now(&live, "audio", uri).is_some(),
                "{uri:?} is listed but cannot be fetched:\n{text}"
            );
        }
    }
}

#[tokio::test]
async fn a_part_index_past_the_end_of_a_segment_means_the_next_segments_first_part() {
    let live = LiveStream::new(Duration::from_secs(10));
    let mut feed = Feed::new(&live, "audio");
    // Segments that close only when the next sample arrives (as a follower's
    // may, when the video's cut comes late): the eleventh sample completes
    // segment 0 (parts 0.0 to 0.3) and opens segment 1, which has no part yet.
    feed.lookahead = false;
    feed.push(11);
    let text = live
        .media_playlist("audio", PlaylistQuery::default())
        .await
        .expect("playlist");
    assert!(
        text.contains("URI=\"0.3.m4s\"") && text.contains("\n0.m4s\n"),
        "{text}"
    );
    // _HLS_part=4 of segment 0 is part 0 of segment 1 (rfc8216bis 6.2.5.2):
    // it waits for that part; _HLS_part=3 is listed already.
    let waiting = tokio::spawn({
        let live = live.clone();
        async move { live.media_playlist("audio", q(0, Some(4))).await }
    });
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    assert!(!waiting.is_finished(), "part 1.0 is not published yet");
    let listed_now = live
        .media_playlist("audio", q(0, Some(3)))
        .now_or_never()
        .expect("part 0.3 is listed: at once")
        .expect("playlist");
    assert!(listed_now.contains("URI=\"0.3.m4s\""), "{listed_now}");
    feed.push(2);
    let text = waiting.await.expect("join").expect("playlist");
    assert!(text.contains("URI=\"1.0.m4s\""), "{text}");
}

#[tokio::test]
async fn at_a_segment_boundary_the_hint_names_the_next_segments_first_part() {
    let live = LiveStream::new(Duration::from_secs(10));
    let mut feed = Feed::new(&live, "audio");
    // Segment 0: parts 0.0, 0.1, 0.2 (300 ms each) and 0.3 (100 ms); it is
    // complete with its last sample.
    feed.push(10);
    let text = live
        .media_playlist("audio", PlaylistQuery::default())
        .await
        .expect("playlist");
    assert!(text.contains("\n0.m4s\n"), "{text}");
    assert!(
        text.contains("#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"1.0.m4s\""),
        "the hint names the part that comes next:\n{text}"
    );
    // A player's blocking reload for the hinted part, and its GET of it.
    let waiting = tokio::spawn({
        let live = live.clone();
        async move { live.media_playlist("audio", q(1, Some(0))).await }
    });
    let hinted = tokio::spawn({
        let live = live.clone();
        async move { live.part("audio", 1, 0).await }
    });
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    assert!(!waiting.is_finished() && !hinted.is_finished());
    feed.push(3);
    let text = waiting.await.expect("join").expect("playlist");
    assert!(text.contains("URI=\"1.0.m4s\""), "{text}");
    let bytes = hinted.await.expect("join").expect("part 1.0");
    assert_eq!(
        Some(bytes),
        live.part("audio", 1, 0).now_or_never().and_then(Result::ok)
    );
}

#[tokio::test]
async fn parts_and_segments_stay_available_as_long_as_the_spec_requires() {
    let clock = TestClock::new();
    let live = LiveStream::with_clock(Duration::from_secs(10), clock.clock());
    // 1.5 s segments: EXT-X-TARGETDURATION is 2, so parts are listed for the
    // last 6 s (four segments) and must stay 6 s after that; eight segments
    // in the window.
    let mut feed = Feed::with(&live, "audio", 1500, 8);
    // When each URI was last listed, and when each segment first was.
    let mut last_listed: HashMap<(u64, Option<usize>), Instant> = HashMap::new();
    let mut first_listed: HashMap<u64, Instant> = HashMap::new();
    let mut longest_ms = 0u64;
    // 30 s of media, published as fast as it is made.
    for _ in 0..300 {
        // Each sample is published when it has been recorded.
        clock.advance(Duration::from_millis(100));
        if feed.push_one(100).is_empty() {
            continue;
        }
        let text = playlist_now(&live, &feed).await;
        assert!(text.contains("#EXT-X-TARGETDURATION:2\n"), "{text}");
        let now = clock.now();
        let uris = listed(&text);
        for &uri in &uris {
            last_listed.insert(uri, now);
            if let (msn, None) = uri {
                first_listed.entry(msn).or_insert(now);
            }
        }
        let playlist_ms = {
            let r = live.renditions.read().expect("lock");
            r["audio"]
                .snapshot
                .as_ref()
                .expect("snapshot")
                .duration_ms()
        };
        longest_ms = longest_ms.max(playlist_ms);
        for (&uri, &at) in &last_listed {
            if uris.contains(&uri) {
                continue;
            }
            let must = match uri {
                // Three target durations after its EXT-X-PART left.
                (_, Some(_)) => at + Duration::from_secs(6),
                // The time it first appeared + its duration + the longest
                // playlist that listed it.
                (msn, None) => first_listed[&msn] + Duration::from_millis(1500 + longest_ms),
            };
            if now < must {
                assert!(
                    fetch_now(&live, "audio", uri).is_some(),
                    "{uri:?} left the playlist {:?} ago and must stay until {:?} after that",
                    now - at,
                    must - at
                );
            }
        }
    }
    // ... and not for ever: what left long ago is gone (segment 9 ended at
    // 15 s; its parts left at 21 s, it left the window at 28.5 s).
    let r = live.renditions.read().expect("lock");
    let w = &r["audio"];
    assert!(w.parts.keys().all(|&(m, _)| m > 8), "{:?}", w.parts.keys());
    assert!(w.segments.keys().all(|&m| m > 8), "{:?}", w.segments.keys());
}

#[tokio::test]
async fn after_the_end_the_delivery_directives_are_ignored() {
    let live = LiveStream::new(Duration::from_secs(10));
    let mut feed = Feed::new(&live, "audio");
    // 12 s: longer than the skip boundary (6 target durations).
    feed.push(120);
    let live_delta = live
        .media_playlist(
            "audio",
            PlaylistQuery {
                skip: true,
                ..PlaylistQuery::default()
            },
        )
        .await
        .expect("delta");
    assert!(live_delta.contains("#EXT-X-SKIP:"), "{live_delta}");
    feed.finish();
    let full = live
        .media_playlist("audio", PlaylistQuery::default())
        .await
        .expect("playlist");
    assert!(full.contains("#EXT-X-ENDLIST"), "{full}");
    for query in [
        q(1_000_000, None),
        q(1_000_000, Some(7)),
        q(13, Some(9)),
        PlaylistQuery {
            msn: Some(400),
            part: Some(2),
            skip: true,
        },
        PlaylistQuery {
            msn: None,
            part: Some(1),
            skip: true,
        },
    ] {
        let text = live
            .media_playlist("audio", query)
            .now_or_never()
            .unwrap_or_else(|| panic!("{query:?} is answered at once"))
            .unwrap_or_else(|e| panic!("{query:?}: {e}"));
        assert_eq!(text, full, "{query:?}");
    }
}

#[tokio::test]
async fn a_plain_reload_waits_for_the_first_whole_segment() {
    // A plain HLS client (FFmpeg's demuxer) opening the stream at go-live
    // needs a whole segment: parts alone fail it with "Empty segment".
    let live = LiveStream::new(Duration::from_secs(10));
    let mut feed = Feed::new(&live, "audio");
    feed.push(6); // parts 0.0 and 0.1, no whole segment yet
    let plain = tokio::spawn({
        let live = live.clone();
        async move { live.media_playlist("audio", PlaylistQuery::default()).await }
    });
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    assert!(!plain.is_finished(), "no playlist without a whole segment");
    // A blocking LL-HLS request for a listed part is still answered at once.
    let text = live
        .media_playlist("audio", q(0, Some(1)))
        .await
        .expect("part 0.1 is out");
    assert!(text.contains("URI=\"0.1.m4s\""), "{text}");
    feed.push(5); // segment 0 completes when segment 1 starts
    let text = plain.await.expect("join").expect("playlist");
    assert!(
        text.contains("#EXTINF:") && text.contains("\n0.m4s\n"),
        "{text}"
    );
}
