//! Unit tests of `playlist.rs`.

use super::*;
use crate::packager::time::VIDEO_TIMESCALE;

fn t(ms: u64) -> MediaTime {
    MediaTime::new(ms * 90, VIDEO_TIMESCALE)
}

fn seg(msn: u64, parts: &[(u64, bool)]) -> SegmentEntry {
    SegmentEntry {
        msn,
        duration: t(parts.iter().map(|p| p.0).sum()),
        parts: parts
            .iter()
            .map(|&(ms, independent)| PartEntry {
                duration: t(ms),
                independent,
            })
            .collect(),
        program_date_time_ms: Some(1_795_300_000_000 + msn as i64 * 2000),
        discontinuity: false,
        map: None,
    }
}

fn six_parts() -> Vec<(u64, bool)> {
    vec![
        (333, true),
        (333, false),
        (334, false),
        (333, false),
        (333, false),
        (334, false),
    ]
}

fn snapshot(n: u64) -> MediaSnapshot {
    MediaSnapshot {
        segment_target: t(2000),
        part_target: t(334),
        init_uri: "init.mp4".into(),
        discontinuity_sequence: 0,
        segments: (0..n).map(|m| seg(m, &six_parts())).collect(),
        open: Some(OpenSegmentEntry {
            msn: n,
            parts: vec![PartEntry {
                duration: t(333),
                independent: true,
            }],
            discontinuity: false,
            map: None,
        }),
        ended: false,
        reports: vec![RenditionReport {
            uri: "../360p/index.m3u8".into(),
            last_msn: n,
            last_part: 0,
        }],
    }
}

#[test]
fn golden_live_playlist() {
    let got = render_media(&snapshot(4), MediaRequest::default());
    let want = "\
#EXTM3U
#EXT-X-VERSION:9
#EXT-X-TARGETDURATION:2
#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=12.000,PART-HOLD-BACK=1.002
#EXT-X-PART-INF:PART-TARGET=0.33400
#EXT-X-MEDIA-SEQUENCE:0
#EXT-X-MAP:URI=\"init.mp4\"
#EXT-X-PROGRAM-DATE-TIME:2026-11-21T22:26:40.000Z
#EXTINF:2.000,
0.m4s
#EXT-X-PROGRAM-DATE-TIME:2026-11-21T22:26:42.000Z
#EXT-X-PART:DURATION=0.333,URI=\"1.0.m4s\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.333,URI=\"1.1.m4s\"
#EXT-X-PART:DURATION=0.334,URI=\"1.2.m4s\"
#EXT-X-PART:DURATION=0.333,URI=\"1.3.m4s\"
#EXT-X-PART:DURATION=0.333,URI=\"1.4.m4s\"
#EXT-X-PART:DURATION=0.334,URI=\"1.5.m4s\"
#EXTINF:2.000,
1.m4s
#EXT-X-PROGRAM-DATE-TIME:2026-11-21T22:26:44.000Z
#EXT-X-PART:DURATION=0.333,URI=\"2.0.m4s\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.333,URI=\"2.1.m4s\"
#EXT-X-PART:DURATION=0.334,URI=\"2.2.m4s\"
#EXT-X-PART:DURATION=0.333,URI=\"2.3.m4s\"
#EXT-X-PART:DURATION=0.333,URI=\"2.4.m4s\"
#EXT-X-PART:DURATION=0.334,URI=\"2.5.m4s\"
#EXTINF:2.000,
2.m4s
#EXT-X-PROGRAM-DATE-TIME:2026-11-21T22:26:46.000Z
#EXT-X-PART:DURATION=0.333,URI=\"3.0.m4s\",INDEPENDENT=YES
#EXT-X-PART:DURATION=0.333,URI=\"3.1.m4s\"
#EXT-X-PART:DURATION=0.334,URI=\"3.2.m4s\"
#EXT-X-PART:DURATION=0.333,URI=\"3.3.m4s\"
#EXT-X-PART:DURATION=0.333,URI=\"3.4.m4s\"
#EXT-X-PART:DURATION=0.334,URI=\"3.5.m4s\"
#EXTINF:2.000,
3.m4s
#EXT-X-PART:DURATION=0.333,URI=\"4.0.m4s\",INDEPENDENT=YES
#EXT-X-PRELOAD-HINT:TYPE=PART,URI=\"4.1.m4s\"
#EXT-X-RENDITION-REPORT:URI=\"../360p/index.m3u8\",LAST-MSN=4,LAST-PART=0
";
    assert_eq!(got, want);
}

#[test]
fn delta_update_skips_old_segments_only() {
    let p = snapshot(20); // 40 s window
    let full = render_media(&p, MediaRequest::default());
    let delta = render_media(&p, MediaRequest { skip: true });
    // 40.333 s in total, skip boundary at 28.333 s: segments ending by then (0..=13) go.
    assert!(
        delta.contains("#EXT-X-SKIP:SKIPPED-SEGMENTS=14\n"),
        "{delta}"
    );
    assert!(!delta.contains("\n13.m4s\n") && delta.contains("\n14.m4s\n"));
    assert!(
        delta.contains("#EXT-X-MEDIA-SEQUENCE:0\n"),
        "the sequence number is unchanged"
    );
    assert!(
        delta.contains("#EXT-X-PROGRAM-DATE-TIME:"),
        "the first listed segment carries a date"
    );
    assert!(full.contains("\n0.m4s\n") && !full.contains("EXT-X-SKIP"));
    let listed = |text: &str| {
        text.lines()
            .filter(|l| !l.starts_with('#') && l.ends_with(".m4s"))
            .count()
    };
    assert_eq!((listed(&full), listed(&delta)), (20, 6));
}

#[test]
fn parts_only_near_the_live_edge_and_endlist_when_ended() {
    let mut p = snapshot(10);
    let text = render_media(&p, MediaRequest::default());
    assert!(
        !text.contains("URI=\"6.0.m4s\""),
        "parts older than 3 target durations are dropped"
    );
    assert!(text.contains("URI=\"7.0.m4s\""));
    p.open = None;
    p.ended = true;
    let text = render_media(&p, MediaRequest::default());
    assert!(text.ends_with("#EXT-X-ENDLIST\n#EXT-X-RENDITION-REPORT:URI=\"../360p/index.m3u8\",LAST-MSN=10,LAST-PART=0\n"));
    assert!(!text.contains("PRELOAD-HINT"));
}

#[test]
fn discontinuities_and_long_segments() {
    let mut p = snapshot(3);
    p.segments[2].discontinuity = true;
    p.segments[1] = seg(1, &[(2500, true)]);
    p.discontinuity_sequence = 4;
    let text = render_media(&p, MediaRequest::default());
    assert!(
        text.contains("#EXT-X-TARGETDURATION:3\n"),
        "raised to cover a 2.5 s segment"
    );
    assert!(text.contains("#EXT-X-DISCONTINUITY-SEQUENCE:4\n"));
    let disc = text
        .find("#EXT-X-DISCONTINUITY\n")
        .expect("discontinuity tag");
    let pdt2 = text
        .rfind("#EXT-X-PROGRAM-DATE-TIME:")
        .expect("date after discontinuity");
    assert!(
        pdt2 > disc
            && text[pdt2..].starts_with("#EXT-X-PROGRAM-DATE-TIME:2026-11-21T22:26:44.000Z")
    );
}

#[test]
fn part_durations_add_up_to_the_segment_duration() {
    // Six parts of 333.33 ms (30 fps, 10 frames each): a 2 s segment.
    let third = MediaTime::new(30_000, VIDEO_TIMESCALE);
    let part = |independent| PartEntry {
        duration: third,
        independent,
    };
    let mut p = snapshot(1);
    p.segments[0].parts = vec![
        part(true),
        part(false),
        part(false),
        part(false),
        part(false),
        part(false),
    ];
    p.segments[0].duration = MediaTime::new(180_000, VIDEO_TIMESCALE);
    let text = render_media(&p, MediaRequest::default());
    let durations: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("\"0."))
        .filter_map(|l| l.strip_prefix("#EXT-X-PART:DURATION="))
        .map(|l| &l[..5])
        .collect();
    assert_eq!(
        durations,
        ["0.333", "0.334", "0.333", "0.333", "0.334", "0.333"],
        "{text}"
    );
    assert!(text.contains("#EXTINF:2.000,\n0.m4s\n"), "{text}");
}

#[test]
fn golden_master_playlist() {
    let v = |uri: &str, bw, w, h| Variant {
        uri: uri.into(),
        bandwidth: bw,
        average_bandwidth: bw * 4 / 5,
        codecs: "avc1.64001f,mp4a.40.2".into(),
        resolution: Some((w, h)),
        frame_rate: Some((30_000, 1001)),
    };
    let got = render_master(
        &[
            v("720p/index.m3u8", 3_000_000, 1280, 720),
            v("360p/index.m3u8", 800_000, 640, 360),
        ],
        Some(&AudioRendition {
            uri: "audio/index.m3u8".into(),
            name: "Audio".into(),
        }),
    );
    let want = "\
#EXTM3U
#EXT-X-VERSION:9
#EXT-X-INDEPENDENT-SEGMENTS
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"audio\",NAME=\"Audio\",DEFAULT=YES,AUTOSELECT=YES,URI=\"audio/index.m3u8\"
#EXT-X-STREAM-INF:BANDWIDTH=3000000,AVERAGE-BANDWIDTH=2400000,CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=1280x720,FRAME-RATE=29.970,AUDIO=\"audio\"
720p/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=800000,AVERAGE-BANDWIDTH=640000,CODECS=\"avc1.64001f,mp4a.40.2\",RESOLUTION=640x360,FRAME-RATE=29.970,AUDIO=\"audio\"
360p/index.m3u8
";
    assert_eq!(got, want);
}

#[test]
fn program_date_time_is_iso8601_utc_with_millis() {
    assert_eq!(format_pdt(0), "1970-01-01T00:00:00.000Z");
    assert_eq!(format_pdt(1_795_300_000_123), "2026-11-21T22:26:40.123Z");
}
