//! Packager tests on real media made by the FFmpeg CLI at test time, read back
//! by independent readers (ffprobe, and FFmpeg's HLS demuxer as a plain-HLS
//! client).

use std::path::Path;

use bytes::Bytes;
use proptest::prelude::*;

use super::fmp4::{Codec, Sample, Track};
use super::h264::{self, nal};
use super::playlist::{render_media, MediaRequest};
use super::segmenter::{Output, PushError, Segmenter, SegmenterConfig};
use super::time::{Timescale, VIDEO_TIMESCALE};

fn ffmpeg(args: &[&str]) -> Vec<u8> {
    crate::media::testsrc::ffmpeg(args).expect("test media")
}

/// 640x360 30 fps H.264 (Annex B with access unit delimiters), keyframe every 2 s.
fn h264_stream(seconds: u32) -> Vec<u8> {
    let dur = seconds.to_string();
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=640x360:rate=30",
        "-t",
        &dur,
        "-pix_fmt",
        "yuv420p",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-bf",
        "0",
        "-g",
        "60",
        "-keyint_min",
        "60",
        "-sc_threshold",
        "0",
        "-x264-params",
        "aud=1",
        "-f",
        "h264",
        "-",
    ])
}

/// Splits an Annex B stream with AUDs into access units of NAL units.
fn access_units(stream: &[u8]) -> Vec<Vec<&[u8]>> {
    let mut aus: Vec<Vec<&[u8]>> = Vec::new();
    for unit in h264::split_annex_b(stream) {
        if h264::nal_type(unit) == Some(nal::AUD) || aus.is_empty() {
            aus.push(Vec::new());
        }
        if h264::nal_type(unit) != Some(nal::AUD) {
            if let Some(au) = aus.last_mut() {
                au.push(unit);
            }
        }
    }
    aus.retain(|au| !au.is_empty());
    aus
}

fn video_track_and_samples(seconds: u32) -> (Track, Vec<Sample>) {
    let stream = h264_stream(seconds);
    let aus = access_units(&stream);
    let sps = aus[0]
        .iter()
        .find(|n| h264::nal_type(n) == Some(nal::SPS))
        .expect("sps");
    let pps = aus[0]
        .iter()
        .find(|n| h264::nal_type(n) == Some(nal::PPS))
        .expect("pps");
    let info = h264::parse_sps(sps).expect("parse sps");
    let track = Track {
        id: 1,
        timescale: VIDEO_TIMESCALE,
        codec: Codec::Avc {
            sps: vec![Bytes::copy_from_slice(sps)],
            pps: vec![Bytes::copy_from_slice(pps)],
            info,
        },
    };
    let samples = aus
        .iter()
        .enumerate()
        .map(|(i, au)| Sample {
            dts: 3000 * i as u64,
            cts_offset: 0,
            duration: 3000,
            keyframe: au.iter().any(|n| h264::nal_type(n) == Some(nal::IDR)),
            data: Bytes::from(h264::to_length_prefixed(au.iter().copied())),
        })
        .collect();
    (track, samples)
}

/// Stereo 48 kHz AAC-LC: returns the AudioSpecificConfig and raw frames.
fn aac_frames(seconds: u32) -> (Bytes, Vec<Bytes>) {
    let dur = seconds.to_string();
    let adts = ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000",
        "-t",
        &dur,
        "-ac",
        "2",
        "-c:a",
        "aac",
        "-b:a",
        "128k",
        "-f",
        "adts",
        "-",
    ]);
    let mut frames = Vec::new();
    let mut asc = None;
    let mut at = 0;
    while at + 7 <= adts.len() {
        let h = &adts[at..at + 7];
        assert_eq!((h[0], h[1] & 0xf0), (0xff, 0xf0), "ADTS sync");
        let protection_absent = h[1] & 1 == 1;
        let profile = (h[2] >> 6) & 3;
        let sf_index = (h[2] >> 2) & 0xf;
        let channels = ((h[2] & 1) << 2) | (h[3] >> 6);
        let len =
            ((usize::from(h[3] & 3)) << 11) | (usize::from(h[4]) << 3) | (usize::from(h[5]) >> 5);
        let header = if protection_absent { 7 } else { 9 };
        asc.get_or_insert_with(|| {
            let v: u16 = (u16::from(profile + 1) << 11)
                | (u16::from(sf_index) << 7)
                | (u16::from(channels) << 3);
            Bytes::copy_from_slice(&v.to_be_bytes())
        });
        frames.push(Bytes::copy_from_slice(&adts[at + header..at + len]));
        at += len;
    }
    (asc.expect("at least one frame"), frames)
}

fn config(track: &Track) -> SegmenterConfig {
    let per_ms = u64::from(track.timescale.get()) / 1000;
    SegmenterConfig {
        segment_target: 2000 * per_ms,
        part_target: 334 * per_ms,
        window_segments: 20,
    }
}

/// Runs samples through a segmenter and writes init + segments + playlist.
fn package(track: Track, samples: Vec<Sample>, dir: &Path) -> (Vec<Output>, String) {
    let cfg = config(&track);
    let mut seg = Segmenter::new(track, cfg, Some(1_795_300_000_000));
    std::fs::write(dir.join("init.mp4"), seg.init_segment()).expect("write init");
    let mut outputs = Vec::new();
    for s in samples {
        outputs.extend(seg.push(s).expect("valid sample"));
    }
    outputs.extend(seg.finish());
    for o in &outputs {
        if let Output::Segment { msn, bytes, .. } = o {
            std::fs::write(dir.join(format!("{msn}.m4s")), bytes).expect("write segment");
        }
    }
    let playlist = render_media(&seg.snapshot(), MediaRequest::default());
    std::fs::write(dir.join("index.m3u8"), &playlist).expect("write playlist");
    (outputs, playlist)
}

fn ffprobe_json(args: &[&str]) -> serde_json::Value {
    crate::media::testsrc::ffprobe_json(args).expect("ffprobe")
}

fn decodes(input: &Path) {
    crate::media::testsrc::decode(input.to_str().expect("utf8 path"))
        .expect("decodes without errors");
}

#[test]
fn h264_is_packaged_into_parts_and_segments_ffprobe_agrees() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (track, samples) = video_track_and_samples(5);
    assert_eq!(samples.len(), 150);
    let (outputs, playlist) = package(track, samples, dir.path());

    // Segments at 0, 2, 4 s; parts of 10 frames (333 ms), never over the target.
    let segments: Vec<(u64, u64)> = outputs
        .iter()
        .filter_map(|o| match o {
            Output::Segment { msn, duration, .. } => Some((*msn, *duration)),
            _ => None,
        })
        .collect();
    assert_eq!(segments, vec![(0, 180_000), (1, 180_000), (2, 90_000)]);
    for o in &outputs {
        if let Output::Part {
            index,
            duration,
            independent,
            ..
        } = o
        {
            assert!(*duration <= 334 * 90, "part of {duration} ticks");
            assert_eq!(
                *independent,
                *index == 0,
                "only the first part of a segment starts with an IDR"
            );
        }
    }

    // Concatenate init + segments: a fragmented MP4 any reader can open.
    let mut file = std::fs::read(dir.path().join("init.mp4")).expect("init");
    for msn in 0..3 {
        file.extend(std::fs::read(dir.path().join(format!("{msn}.m4s"))).expect("segment"));
    }
    let mp4 = dir.path().join("all.mp4");
    std::fs::write(&mp4, &file).expect("write");
    let probe = ffprobe_json(&[
        "-show_streams",
        "-show_packets",
        mp4.to_str().expect("utf8"),
    ]);
    let stream = &probe["streams"][0];
    assert_eq!(stream["codec_name"], "h264");
    assert_eq!(
        (stream["width"].as_u64(), stream["height"].as_u64()),
        (Some(640), Some(360))
    );
    assert_eq!(stream["time_base"], "1/90000");
    let packets = probe["packets"].as_array().expect("packets");
    assert_eq!(packets.len(), 150);
    for (i, p) in packets.iter().enumerate() {
        assert_eq!(p["pts"].as_u64(), Some(3000 * i as u64), "packet {i}");
        assert_eq!(p["duration"].as_u64(), Some(3000));
        let key = p["flags"].as_str().unwrap_or("").starts_with('K');
        assert_eq!(key, i % 60 == 0, "keyframe flag of packet {i}");
    }
    decodes(&mp4);

    // The playlist as a plain HLS client reads it: FFmpeg's HLS demuxer decodes all of it.
    assert!(playlist.ends_with("#EXT-X-ENDLIST\n"), "{playlist}");
    decodes(&dir.path().join("index.m3u8"));
    let probe = ffprobe_json(&[
        "-show_format",
        dir.path().join("index.m3u8").to_str().expect("utf8"),
    ]);
    let seconds: f64 = probe["format"]["duration"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .expect("duration");
    assert!((seconds - 5.0).abs() < 0.05, "duration {seconds}");
}

#[test]
fn aac_is_packaged_and_ffprobe_reads_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (asc, frames) = aac_frames(4);
    let scale = Timescale::new(48_000).expect("rate");
    let track = Track {
        id: 1,
        timescale: scale,
        codec: Codec::Aac {
            sample_rate: 48_000,
            channels: 2,
            asc,
        },
    };
    assert_eq!(track.codec.codec_string(), "mp4a.40.2");
    let n = frames.len();
    let samples = frames
        .into_iter()
        .enumerate()
        .map(|(i, data)| Sample {
            dts: 1024 * i as u64,
            cts_offset: 0,
            duration: 1024,
            keyframe: true,
            data,
        })
        .collect();
    let (outputs, _) = package(track, samples, dir.path());
    // Audio parts hold 15 frames (320 ms); every part is independent.
    for o in &outputs {
        if let Output::Part {
            duration,
            independent,
            ..
        } = o
        {
            assert!(*independent);
            assert!(*duration <= 15 * 1024, "{duration}");
        }
    }
    let probe = ffprobe_json(&[
        "-show_streams",
        "-count_packets",
        dir.path().join("index.m3u8").to_str().expect("utf8"),
    ]);
    let stream = &probe["streams"][0];
    assert_eq!(stream["codec_name"], "aac");
    assert_eq!(stream["sample_rate"], "48000");
    assert_eq!(stream["channels"].as_u64(), Some(2));
    assert_eq!(
        stream["nb_read_packets"]
            .as_str()
            .and_then(|v| v.parse::<usize>().ok()),
        Some(n)
    );
    decodes(&dir.path().join("index.m3u8"));
}

#[test]
fn bad_samples_are_refused_without_changing_state() {
    let (track, samples) = video_track_and_samples(1);
    let mut seg = Segmenter::new(
        track,
        SegmenterConfig {
            segment_target: 180_000,
            part_target: 30_060,
            window_segments: 5,
        },
        None,
    );
    assert_eq!(seg.push(samples[1].clone()), Err(PushError::NoKeyframe));
    seg.push(samples[0].clone()).expect("keyframe first");
    assert!(matches!(
        seg.push(samples[0].clone()),
        Err(PushError::NonMonotonic { .. })
    ));
    let mut zero = samples[1].clone();
    zero.duration = 0;
    assert_eq!(seg.push(zero), Err(PushError::ZeroDuration));
    seg.push(samples[1].clone())
        .expect("state unchanged by refusals");
}

#[test]
fn discontinuity_starts_a_new_period_and_is_counted_when_it_leaves_the_window() {
    let (track, samples) = video_track_and_samples(6); // keyframes at frames 0, 60, 120
    let cfg = SegmenterConfig {
        segment_target: 180_000,
        part_target: 30_060,
        window_segments: 2,
    };
    let mut seg = Segmenter::new(track, cfg, None);
    for s in samples.iter().take(30) {
        seg.push(s.clone()).expect("push");
    }
    seg.discontinuity();
    // The recorder restarted: timestamps start again from zero.
    for s in samples.iter().take(70) {
        seg.push(s.clone()).expect("push after restart");
    }
    let text = render_media(&seg.snapshot(), MediaRequest::default());
    assert!(text.contains("#EXT-X-DISCONTINUITY\n"), "{text}");
    assert!(!text.contains("DISCONTINUITY-SEQUENCE"), "{text}");
    for s in samples.iter().skip(70) {
        seg.push(s.clone()).expect("push");
    }
    seg.finish();
    // Window of 2: the segment that carried the tag has left it.
    let text = render_media(&seg.snapshot(), MediaRequest::default());
    assert!(!text.contains("#EXT-X-DISCONTINUITY\n"), "{text}");
    assert!(text.contains("#EXT-X-DISCONTINUITY-SEQUENCE:1\n"), "{text}");
    assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:2\n"), "{text}");
}

#[test]
fn new_parameter_sets_get_a_new_init_segment_named_in_the_playlist() {
    let cfg = SegmenterConfig {
        segment_target: 90_000,
        part_target: 30_000,
        window_segments: 10,
    };
    let mut seg = Segmenter::new(synthetic_track(true), cfg, Some(1_795_300_000_000));
    seg.start_at(40);
    let push = |seg: &mut Segmenter, from: u64, n: u64| {
        for i in 0..n {
            let s = Sample {
                dts: from + i * 3000,
                cts_offset: 0,
                duration: 3000,
                keyframe: i % 30 == 0,
                data: Bytes::from_static(b"frame"),
            };
            seg.push(s).expect("push");
        }
    };
    push(&mut seg, 0, 60); // two 1 s segments, 40 and 41 (41 still open)
    let old_init = seg.init_segment().clone();
    // Same parameters: no new init segment.
    assert_eq!(seg.set_track(synthetic_track(true)).1, None);
    let closed = seg.new_period(Some(1_795_300_100_000));
    assert!(
        matches!(closed.last(), Some(Output::Segment { msn: 41, .. })),
        "the open segment closes at the period boundary"
    );
    let mut bigger = synthetic_track(true);
    if let Codec::Avc { info, sps, .. } = &mut bigger.codec {
        info.width = 128;
        sps[0] = Bytes::from_static(&[0x67, 0x42, 0xc0, 0x1f]);
    }
    let (outputs, uri) = seg.set_track(bigger);
    assert!(outputs.is_empty(), "nothing was open");
    // A session that continues an earlier one (it started at 40) names its
    // init segments after its first segment, so no session overwrites
    // another's in the store.
    assert_eq!(uri.as_deref(), Some("init-40-1.mp4"));
    assert_ne!(seg.init_segment(), &old_init);
    assert_eq!(seg.init_uri(), "init-40-1.mp4");
    // Media time continues after the restart.
    push(&mut seg, 180_000, 31);
    let text = render_media(&seg.snapshot(), MediaRequest::default());
    let expect = "#EXT-X-MAP:URI=\"init-40-0.mp4\"\n";
    assert!(text.contains(expect), "{text}");
    let disc = text.find("#EXT-X-DISCONTINUITY\n").expect("discontinuity");
    let map = text
        .find("#EXT-X-MAP:URI=\"init-40-1.mp4\"\n")
        .expect("second map");
    let first_new = text.find("\n42.m4s\n").expect("segment 42");
    assert!(disc < map && map < first_new, "{text}");
    assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:40\n"), "{text}");
    // The new period is dated from its own capture clock.
    assert!(
        text[disc..].contains("#EXT-X-PROGRAM-DATE-TIME:2026-11-21T22:28:20.000Z"),
        "{text}"
    );
    // Once the old segments leave the window, the new init is the top MAP.
    let mut small = Segmenter::new(
        synthetic_track(true),
        SegmenterConfig {
            window_segments: 1,
            ..cfg
        },
        None,
    );
    push(&mut small, 0, 31);
    small.new_period(None);
    let mut other = synthetic_track(true);
    if let Codec::Avc { pps, .. } = &mut other.codec {
        pps[0] = Bytes::from_static(&[0x68, 0xcf]);
    }
    small.set_track(other);
    push(&mut small, 93_000, 61);
    let text = render_media(&small.snapshot(), MediaRequest::default());
    assert!(text.contains("#EXT-X-MAP:URI=\"init-1.mp4\"\n"), "{text}");
    assert_eq!(text.matches("EXT-X-MAP").count(), 1, "{text}");
}

#[test]
fn measured_bitrate_is_the_peak_and_the_average_of_the_window() {
    let cfg = SegmenterConfig {
        segment_target: 90_000,
        part_target: 90_000,
        window_segments: 10,
    };
    let mut seg = Segmenter::new(synthetic_track(false), cfg, None);
    assert_eq!(seg.measured_bitrate(), None);
    // Two 1 s segments: 1000 bytes of payload, then 3000 (audio: each one
    // completes with its last sample).
    for (i, size) in [1000usize, 3000].into_iter().enumerate() {
        let s = Sample {
            dts: i as u64 * 90_000,
            cts_offset: 0,
            duration: 90_000,
            keyframe: true,
            data: Bytes::from(vec![0u8; size]),
        };
        seg.push(s).expect("push");
    }
    let (peak, avg) = seg.measured_bitrate().expect("two segments");
    // Each segment also has its moof and mdat headers (about 100 bytes).
    assert!((24_000..25_600).contains(&peak), "peak {peak}");
    assert!((16_000..17_600).contains(&avg), "average {avg}");
}

fn synthetic_track(video: bool) -> Track {
    let codec = if video {
        Codec::Avc {
            sps: vec![Bytes::from_static(&[0x67, 0x42, 0xc0, 0x1e])],
            pps: vec![Bytes::from_static(&[0x68, 0xce])],
            info: h264::SpsInfo {
                profile: 0x42,
                constraints: 0xc0,
                level: 0x1e,
                width: 64,
                height: 64,
            },
        }
    } else {
        Codec::Aac {
            sample_rate: 48_000,
            channels: 1,
            asc: Bytes::from_static(&[0x11, 0x88]),
        }
    };
    Track {
        id: 1,
        timescale: VIDEO_TIMESCALE,
        codec,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Variable frame durations (VFR) and irregular keyframes: no media time is
    /// lost or invented, parts never exceed the target, every segment starts
    /// with an independent part, and media sequence numbers are consecutive.
    #[test]
    fn segmenter_accounts_for_every_tick(
        video in proptest::bool::ANY,
        frames in proptest::collection::vec((1u32..4500, proptest::bool::weighted(0.05)), 1..400),
        part_ms in 100u64..1000,
        seg_s in 1u64..6,
    ) {
        let cfg = SegmenterConfig { segment_target: seg_s * 90_000, part_target: part_ms * 90, window_segments: 1000 };
        let mut seg = Segmenter::new(synthetic_track(video), cfg, None);
        let mut dts = 0u64;
        let mut outputs = Vec::new();
        for (i, (duration, key)) in frames.iter().enumerate() {
            let s = Sample { dts, cts_offset: 0, duration: *duration, keyframe: i == 0 || *key, data: Bytes::from_static(b"x") };
            outputs.extend(seg.push(s).expect("valid"));
            dts += u64::from(*duration);
        }
        outputs.extend(seg.finish());
        let (mut part_sum, mut seg_sum, mut expect_msn) = (0u64, 0u64, 0u64);
        for o in &outputs {
            match o {
                Output::Part { duration, index, independent, msn, .. } => {
                    part_sum += duration;
                    prop_assert!(*duration <= cfg.part_target, "part of {} > {}", duration, cfg.part_target);
                    prop_assert_eq!(*msn, expect_msn);
                    if *index == 0 {
                        prop_assert!(*independent, "segment {} does not start with a keyframe", msn);
                    }
                }
                Output::Segment { msn, duration, .. } => {
                    prop_assert_eq!(*msn, expect_msn);
                    expect_msn += 1;
                    seg_sum += duration;
                }
            }
        }
        prop_assert_eq!(part_sum, dts);
        prop_assert_eq!(seg_sum, dts);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Audio following passed-through video whose keyframes are irregular and
    /// often sparser than the segment target (so some video segments are a
    /// single frame), with audio arriving up to 100 ms ahead of or behind the
    /// video and held back as the pipeline holds it (`media::live`'s
    /// `release_audio`: a frame is packaged once it ends before the video's
    /// watermark, or at the end): both tracks have the same segments, in
    /// order, and audio segment N starts at the sample nearest the video's cut.
    #[test]
    fn a_follower_cuts_where_the_video_cut(
        frames in proptest::collection::vec((2000u32..4500, proptest::bool::weighted(0.04)), 1..400),
        lead_ms in -100i64..100,
        seg_s in 1u64..3,
    ) {
        const AUDIO_FRAME: u64 = 1920; // 1024 samples at 48 kHz, in 90 kHz ticks
        let cfg = SegmenterConfig { segment_target: seg_s * 90_000, part_target: 200 * 90, window_segments: 1000 };
        let mut video = Segmenter::new(synthetic_track(true), cfg, None);
        let mut audio = Segmenter::new(synthetic_track(false), cfg, None);
        audio.follow_cuts();
        // (arrival, is video, sample), merged by arrival.
        let mut events = Vec::new();
        let mut dts = 0u64;
        // Keyframes at most 6 s apart: a longer gap is a stalled leader, where
        // the follower cuts on its own by design (the next test).
        let mut last_key = 0u64;
        for (i, (duration, key)) in frames.iter().enumerate() {
            let keyframe = i == 0 || *key || dts - last_key >= 6 * 90_000;
            if keyframe {
                last_key = dts;
            }
            let s = Sample { dts, cts_offset: 0, duration: *duration, keyframe, data: Bytes::from_static(b"v") };
            events.push((dts as i64, true, s));
            dts += u64::from(*duration);
        }
        let end = dts;
        let lead = lead_ms * 90;
        let mut at = 0u64;
        // Audio goes on after the video's last cut has arrived.
        while at as i64 <= end as i64 + lead.max(0) {
            let s = Sample { dts: at, cts_offset: 0, duration: AUDIO_FRAME as u32, keyframe: true, data: Bytes::from_static(b"a") };
            events.push((at as i64 - lead, false, s));
            at += AUDIO_FRAME;
        }
        events.sort_by_key(|(arrival, video, _)| (*arrival, !*video));
        let (mut vstarts, mut astarts) = (Vec::new(), Vec::new());
        let collect = |outs: Vec<Output>, starts: &mut Vec<(u64, u64)>| -> Vec<u64> {
            let mut cuts = Vec::new();
            for o in outs {
                if let Output::Segment { msn, start, duration, .. } = o {
                    starts.push((msn, start));
                    cuts.push(start + duration);
                }
            }
            cuts
        };
        // Audio that arrived but is not known to be before the next cut.
        let mut held: std::collections::VecDeque<Sample> = std::collections::VecDeque::new();
        let mut watermark = 0u64;
        for (_, is_video, s) in events {
            if is_video {
                watermark = watermark.max(s.dts); // cts_offset is 0 here
                for cut in collect(video.push(s).expect("video"), &mut vstarts) {
                    audio.cut_at(cut);
                }
            } else {
                held.push_back(s);
            }
            while held.front().is_some_and(|a| a.dts + u64::from(a.duration) <= watermark) {
                if let Some(a) = held.pop_front() {
                    collect(audio.push(a).expect("audio"), &mut astarts);
                }
            }
        }
        collect(video.finish(), &mut vstarts);
        for a in held {
            collect(audio.push(a).expect("audio"), &mut astarts);
        }
        collect(audio.finish(), &mut astarts);
        prop_assert_eq!(audio.own_cuts(), 0);
        prop_assert_eq!(vstarts.len(), astarts.len(), "video {:?} audio {:?}", vstarts, astarts);
        for ((vm, vs), (am, a_s)) in vstarts.iter().zip(&astarts) {
            prop_assert_eq!(vm, am);
            // The audio sample whose middle is first past the cut.
            prop_assert!(*a_s * 2 + AUDIO_FRAME > vs * 2 && *a_s * 2 <= vs * 2 + AUDIO_FRAME,
                "segment {}: video starts at {}, audio at {} (lead {} ticks)", vm, vs, a_s, lead);
        }
    }
}

/// A follower whose leader stops cutting (the video stalled) still closes
/// its segments, at the cap, and says how often it had to.
#[test]
fn a_follower_without_cuts_closes_at_the_cap() {
    let cfg = SegmenterConfig {
        segment_target: 90_000,
        part_target: 18_000,
        window_segments: 100,
    };
    let mut audio = Segmenter::new(synthetic_track(false), cfg, None);
    audio.follow_cuts();
    let mut segments = Vec::new();
    let mut dts = 0;
    // 20 s of audio, no cut: segments are capped at max(4 × 1 s, 8 s).
    while dts < 20 * 90_000 {
        let s = Sample {
            dts,
            cts_offset: 0,
            duration: 1920,
            keyframe: true,
            data: Bytes::from_static(b"a"),
        };
        for o in audio.push(s).expect("audio") {
            if let Output::Segment { duration, .. } = o {
                segments.push(duration);
            }
        }
        dts += 1920;
    }
    assert_eq!(audio.own_cuts(), 2);
    assert_eq!(segments.len(), 2);
    assert!(
        segments
            .iter()
            .all(|d| (8 * 90_000..8 * 90_000 + 1920).contains(d)),
        "{segments:?}"
    );
    // A cut arrives: the next sample past it starts a segment.
    audio.cut_at(dts + 5000);
    let mut closed = Vec::new();
    for _ in 0..4 {
        let s = Sample {
            dts,
            cts_offset: 0,
            duration: 1920,
            keyframe: true,
            data: Bytes::from_static(b"a"),
        };
        closed.extend(audio.push(s).expect("audio"));
        dts += 1920;
    }
    assert!(
        matches!(
            closed.iter().find(|o| matches!(o, Output::Segment { .. })),
            Some(Output::Segment { msn: 2, .. })
        ),
        "{closed:?}"
    );
    assert_eq!(audio.own_cuts(), 2);
}

/// `EXT-X-TARGETDURATION` must not change (rfc8216bis 6.2.1): a long first
/// segment (a source whose keyframes are 2 s apart, with a 1 s target) keeps
/// the target at 2 s after it has left the window, and the target a
/// rendition is asked to keep (another rendition's longest segment) holds too.
#[test]
fn the_target_duration_never_goes_down() {
    let cfg = SegmenterConfig {
        segment_target: 90_000,
        part_target: 30_000,
        window_segments: 2,
    };
    let mut seg = Segmenter::new(synthetic_track(true), cfg, None);
    let mut dts = 0u64;
    let mut push = |seg: &mut Segmenter, frames: u64, gop: u64| {
        for i in 0..frames {
            let s = Sample {
                dts,
                cts_offset: 0,
                duration: 3000,
                keyframe: i % gop == 0,
                data: Bytes::from_static(b"v"),
            };
            seg.push(s).expect("valid");
            dts += 3000;
        }
    };
    // One 2 s GOP, then 1 s GOPs: the 2 s segment leaves the 2-segment window.
    push(&mut seg, 60, 60);
    push(&mut seg, 30 * 5, 30);
    let snapshot = seg.snapshot();
    assert!(
        snapshot.segments.iter().all(|s| s.duration.ticks == 90_000),
        "{snapshot:?}"
    );
    assert_eq!(seg.target_duration_s(), 2);
    assert_eq!(snapshot.target_duration_s(), 2, "the target went down");
    seg.raise_target(3);
    assert_eq!(seg.snapshot().target_duration_s(), 3);
    seg.raise_target(1);
    assert_eq!(seg.snapshot().target_duration_s(), 3);
}
