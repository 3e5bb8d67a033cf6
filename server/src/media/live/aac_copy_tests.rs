//! AAC input is copied, not re-encoded: the audio rendition carries the
//! source's frames byte for byte at the source's rate and channels, checked
//! with FFmpeg's own demuxers (`framemd5` with `-c copy` on both sides).

use std::time::Duration;

use super::tests::{dump, extinf_ms, feed, feed_periods, run, video_and_audio_playlists};
use super::{LiveConfig, RunOptions, AUDIO_RENDITION};
use crate::ingest::outputs::LiveOutputs;
use crate::media::testsrc::{audio_packet_md5s, audio_stream, av, ffmpeg, H264_BASELINE};
use crate::origin::LiveStream;
use crate::transcribe::{AudioTap, TapEvent};

/// 4 s of 320x180 H.264 (a keyframe a second) plus FFmpeg's AAC at `rate`
/// with `channels`, in `format` (`flv`, `mpegts`, or fragmented `mp4`).
fn aac_source(rate: u32, channels: u32, format: &str) -> Vec<u8> {
    let (rate, channels) = (rate.to_string(), channels.to_string());
    let mut args = [H264_BASELINE, &["-g", "30"]].concat();
    args.extend(["-c:a", "aac", "-b:a", "96k", "-ar", &rate, "-ac", &channels]);
    if format == "mp4" {
        args.extend(["-movflags", "frag_keyframe+empty_moov"]);
    }
    args.extend(["-f", format]);
    av("320x180", 4, &args, "-").expect("test media")
}

/// Segment URIs a media playlist lists.
fn segments(text: &str) -> Vec<&str> {
    text.lines().filter(|l| !l.starts_with('#')).collect()
}

async fn copied(rate: u32, channels: u32, format: &str) {
    ffmpeg_next::init().expect("init");
    let input = aac_source(rate, channels, format);
    let dir = tempfile::tempdir().expect("tempdir");
    let source = dir.path().join(format!("source.{format}"));
    std::fs::write(&source, &input).expect("write");
    let live = LiveStream::new(Duration::from_secs(5));
    let cfg = LiveConfig {
        passthrough_only: true,
        ..LiveConfig::default()
    };
    let report = tokio::task::spawn_blocking({
        let live = live.clone();
        move || run(feed(input), live, cfg, None, None)
    })
    .await
    .expect("join")
    .expect("pipeline");
    let (video, audio) = video_and_audio_playlists(&live, "180p").await;
    dump(&live, dir.path(), &["180p", AUDIO_RENDITION]).await;
    let playlist = dir.path().join(AUDIO_RENDITION).join("index.m3u8");
    let playlist = playlist.to_str().expect("utf8 path");
    let source = source.to_str().expect("utf8 path");

    let case = format!("{format} {rate} Hz x{channels}");
    assert_eq!(
        audio_stream(playlist).expect("ffprobe"),
        ("aac".to_string(), rate, channels),
        "{case}"
    );
    let theirs = audio_packet_md5s(source).expect("source packets");
    let ours = audio_packet_md5s(playlist).expect("rendition packets");
    assert!(theirs.len() > 150, "{case}: {} packets", theirs.len());
    assert_eq!(ours, theirs, "{case}: the AAC frames are the source's");
    assert_eq!(report.audio_frames, theirs.len() as u64, "{case}");
    // 1024 samples a frame at the source's rate, to the millisecond (each
    // EXTINF rounds to 1 ms).
    let total: u64 = extinf_ms(&audio).iter().sum();
    let expected = theirs.len() as u64 * 1024 * 1000 / u64::from(rate);
    let segs = extinf_ms(&audio).len() as u64;
    assert!(
        total.abs_diff(expected) <= segs,
        "{case}: {total} ms vs {expected} ms"
    );
    assert!(audio.contains("#EXT-X-MAP:URI=\"init"), "{case}: {audio}");
    // Segment N is the same media time in video and audio.
    assert_eq!(segments(&video), segments(&audio), "{case}");
    let master = live.master().expect("master");
    assert!(master.contains("mp4a.40.2"), "{master}");
}

#[tokio::test]
async fn flv_aac_44k_mono_is_copied() {
    copied(44_100, 1, "flv").await;
}

#[tokio::test]
async fn flv_aac_48k_stereo_is_copied() {
    copied(48_000, 2, "flv").await;
}

#[tokio::test]
async fn mpegts_adts_aac_is_copied_without_its_headers() {
    copied(44_100, 2, "mpegts").await;
}

#[tokio::test]
async fn fragmented_mp4_aac_48k_mono_is_copied() {
    copied(48_000, 1, "mp4").await;
}

/// A later period whose audio is not the rendition's AAC (here the studio's
/// Opus after an encoder's 44.1 kHz mono AAC) is encoded to the rendition's
/// format: one init segment, one rate, and FFmpeg decodes it all.
#[tokio::test]
async fn a_later_period_in_another_format_is_encoded_to_the_renditions() {
    ffmpeg_next::init().expect("init");
    let tone = |codec: &[&str]| {
        let mut args = vec![
            "-f",
            "lavfi",
            "-i",
            "sine=frequency=440:sample_rate=48000",
            "-t",
            "3",
        ];
        args.extend_from_slice(codec);
        ffmpeg(&args).expect("test media")
    };
    let first = tone(&["-c:a", "aac", "-ar", "44100", "-ac", "1", "-f", "adts", "-"]);
    let second = tone(&["-c:a", "libopus", "-f", "webm", "-"]);
    let live = LiveStream::new(Duration::from_secs(5));
    let reader = feed_periods(vec![(first, 0), (second, 1_795_300_010_000)]);
    let report = tokio::task::spawn_blocking({
        let live = live.clone();
        move || run(reader, live, LiveConfig::default(), None, None)
    })
    .await
    .expect("join")
    .expect("pipeline");
    assert_eq!(report.periods, 2);
    let dir = tempfile::tempdir().expect("tempdir");
    dump(&live, dir.path(), &[AUDIO_RENDITION]).await;
    let playlist = dir.path().join(AUDIO_RENDITION).join("index.m3u8");
    let text = std::fs::read_to_string(&playlist).expect("playlist");
    assert_eq!(text.matches("#EXT-X-MAP").count(), 1, "{text}");
    assert!(text.contains("#EXT-X-DISCONTINUITY"), "{text}");
    let playlist = playlist.to_str().expect("utf8 path");
    assert_eq!(
        audio_stream(playlist).expect("ffprobe"),
        ("aac".to_string(), 44_100, 1)
    );
    crate::media::testsrc::decode(playlist).expect("both periods decode");
    let total: u64 = extinf_ms(&text).iter().sum();
    assert!(total.abs_diff(6000) <= 100, "{total} ms");
}

/// Copied audio is still decoded for the captions tap (mono, 48 kHz
/// positions), and the segments the tap hears of are at 48 kHz too.
#[tokio::test]
async fn copied_audio_still_feeds_the_captions_tap_at_48k() {
    ffmpeg_next::init().expect("init");
    let input = ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=44100",
        "-t",
        "4",
        "-c:a",
        "aac",
        "-f",
        "adts",
        "-",
    ])
    .expect("test media");
    let live = LiveStream::new(Duration::from_secs(5));
    let (tap, mut rx) = AudioTap::channel();
    let opts = RunOptions::default();
    tokio::task::spawn_blocking({
        let mut outputs = LiveOutputs::new(live.clone(), None, Some(tap));
        move || super::run(feed(input), LiveConfig::default(), opts, &mut outputs)
    })
    .await
    .expect("join")
    .expect("pipeline");
    let (mut samples, mut end, mut next) = (0u64, 0u64, 0u64);
    while let Ok(event) = rx.try_recv() {
        match event {
            TapEvent::Audio { at, samples: s } => {
                assert!(at.abs_diff(next) <= 1, "contiguous: {at} after {next}");
                next = at + s.len() as u64;
                samples += s.len() as u64;
            }
            TapEvent::Segment {
                start, duration, ..
            } => {
                assert_eq!(start, end, "segments follow each other at 48 kHz");
                end = start + duration;
            }
        }
    }
    // About 4 s (plus the encoder's priming frame) at 48 kHz.
    assert!(
        samples.abs_diff(4 * 48_000) <= 2 * 1024 * 48 / 44,
        "{samples}"
    );
    assert!(end.abs_diff(4 * 48_000) <= 2 * 1024 * 48 / 44, "{end}");
}
