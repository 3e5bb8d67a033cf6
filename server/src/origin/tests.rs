//! Blocking-reload behaviour, driven by a real segmenter.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::*;
use crate::packager::fmp4::{Codec, Sample, Track};
use crate::packager::segmenter::{Output, Segmenter, SegmenterConfig};
use crate::packager::time::Timescale;

/// An audio-like track at 1 kHz: one 100 ms sample each push; parts of 300 ms
/// (3 samples), segments of 1 s (10 samples).
struct Feed {
    seg: Segmenter,
    dts: u64,
    live: Arc<LiveStream>,
    name: &'static str,
}

impl Feed {
    fn new(live: &Arc<LiveStream>, name: &'static str) -> Feed {
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
            segment_target: 1000,
            part_target: 300,
            window_segments: 30,
        };
        let seg = Segmenter::new(track, cfg, None);
        live.set_init(name, "init.mp4", seg.init_segment().clone());
        Feed {
            seg,
            dts: 0,
            live: live.clone(),
            name,
        }
    }

    fn push(&mut self, n: usize) {
        for _ in 0..n {
            let sample = Sample {
                dts: self.dts,
                cts_offset: 0,
                duration: 100,
                keyframe: true,
                data: Bytes::from_static(b"frame"),
            };
            self.dts += 100;
            for o in self.seg.push(sample).expect("push") {
                let snap = self.seg.snapshot();
                match o {
                    Output::Part {
                        msn, index, bytes, ..
                    } => self.live.publish_part(self.name, msn, index, bytes, snap),
                    Output::Segment { msn, bytes, .. } => {
                        self.live.publish_segment(self.name, msn, bytes, snap)
                    }
                }
            }
        }
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
