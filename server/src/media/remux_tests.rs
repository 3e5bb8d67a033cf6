//! What `onair publish` sends: codecs the server takes are copied bit for bit,
//! others are encoded to H.264 and Opus.

use std::path::{Path, PathBuf};

use ffmpeg_next::media::Type;

use super::remux::{Action, Remuxer, StreamPlan};
use super::testsrc;

/// Remuxes `input` and writes the whole Matroska stream to `dir/out.mkv`.
fn remux_to_file(input: &Path, dir: &Path) -> (Vec<StreamPlan>, PathBuf) {
    ffmpeg_next::init().expect("init");
    let mut remuxer = Remuxer::open(input, 500).expect("open");
    let plan = remuxer.plan().to_vec();
    let mut bytes = Vec::new();
    let mut chunks = 0;
    while let Some(chunk) = remuxer.next_chunk().expect("chunk") {
        bytes.extend_from_slice(&chunk.bytes);
        chunks += 1;
    }
    assert!(chunks > 2, "cut into chunks: {chunks}");
    let out = dir.join("out.mkv");
    std::fs::write(&out, bytes).expect("write");
    (plan, out)
}

/// Every packet's bytes, per medium, in order.
fn packets(path: &Path) -> Vec<(Type, Vec<Vec<u8>>)> {
    let mut input = ffmpeg_next::format::input(path).expect("open");
    let media: Vec<Type> = input.streams().map(|s| s.parameters().medium()).collect();
    let mut out: Vec<(Type, Vec<Vec<u8>>)> = media.iter().map(|m| (*m, Vec::new())).collect();
    for (stream, packet) in input.packets() {
        out[stream.index()]
            .1
            .push(packet.data().map(<[u8]>::to_vec).unwrap_or_default());
    }
    out
}

/// First and last media time (ms) of each stream, from its packets (a live
/// Matroska stream has no duration in its header): `(start, end)` per stream.
fn spans_ms(path: &Path) -> Vec<(i64, i64)> {
    let mut input = ffmpeg_next::format::input(path).expect("open");
    let mut spans = vec![(i64::MAX, i64::MIN); input.streams().count()];
    for (stream, packet) in input.packets() {
        let tb = stream.time_base();
        let ms = |ts: i64| ts * i64::from(tb.numerator()) * 1000 / i64::from(tb.denominator());
        let pts = packet.pts().or(packet.dts()).expect("timestamp");
        let span = &mut spans[stream.index()];
        span.0 = span.0.min(ms(pts));
        span.1 = span.1.max(ms(pts + packet.duration()));
    }
    spans
}

/// Presentation times (ms) of the video keyframes in a Matroska file.
fn keyframes_ms(path: &Path) -> Vec<i64> {
    let mut input = ffmpeg_next::format::input(path).expect("open");
    let video = input
        .streams()
        .best(Type::Video)
        .expect("video stream")
        .index();
    let mut keys = Vec::new();
    for (stream, packet) in input.packets() {
        let tb = stream.time_base();
        assert_eq!((tb.numerator(), tb.denominator()), (1, 1000), "Matroska");
        if stream.index() == video && packet.is_key() {
            keys.push(packet.pts().expect("pts"));
        }
    }
    keys
}

#[test]
fn mpeg4_video_and_mp3_audio_are_encoded_to_h264_and_opus() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.avi");
    // An old-style AVI: MPEG-4 Part 2 with MP3 at 44.1 kHz.
    testsrc::ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=320x240:rate=25",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=44100",
        "-t",
        "5",
        "-c:v",
        "mpeg4",
        "-q:v",
        "5",
        "-c:a",
        "libmp3lame",
        input.to_str().expect("utf8 path"),
    ])
    .expect("test media");
    let (plan, out) = remux_to_file(&input, dir.path());
    let actions: Vec<(&str, &str, &str, Action)> = plan
        .iter()
        .map(|p| {
            (
                p.medium,
                p.codec.as_str(),
                p.output_codec.as_str(),
                p.action,
            )
        })
        .collect();
    assert_eq!(
        actions,
        vec![
            ("video", "mpeg4", "h264", Action::Encode),
            ("audio", "mp3", "opus", Action::Encode),
        ],
        "{plan:?}"
    );
    // Each stream lasts as long as in the input, give or take a frame (40 ms
    // video, 26 ms MP3, 20 ms Opus), and starts within 10 ms of it (the muxer
    // shifts everything by Opus's 6.5 ms priming).
    let (before, after) = (spans_ms(&input), spans_ms(&out));
    for ((b0, b1), (a0, a1)) in before.iter().zip(&after) {
        assert!(
            ((a1 - a0) - (b1 - b0)).abs() <= 40 && (a0 - b0).abs() <= 10,
            "input {before:?}, output {after:?}"
        );
    }
    let out = out.to_str().expect("utf8 path");
    testsrc::decode(out).expect("the encoded streams decode");
    // Every encoded frame starts with an access unit delimiter (length 2),
    // so no sample can look like an Annex B start code to the server.
    let (_, video) = &packets(Path::new(out))[0];
    assert!(
        video.iter().all(|p| p.starts_with(&[0, 0, 0, 2, 9])),
        "an AUD first in every frame: {:?}",
        video
            .iter()
            .map(|p| p[..6.min(p.len())].to_vec())
            .take(5)
            .collect::<Vec<_>>()
    );
    // A keyframe every 2 s of media from the first frame (25 fps: exact).
    let keys = keyframes_ms(Path::new(out));
    let from_first: Vec<i64> = keys.iter().map(|k| k - keys[0]).collect();
    assert_eq!(from_first, vec![0, 2000, 4000]);
    let json = testsrc::ffprobe_json(&[
        "-select_streams",
        "v:0",
        "-show_entries",
        "stream=codec_name,pix_fmt,width,height",
        out,
    ])
    .expect("ffprobe");
    let v = &json["streams"][0];
    assert_eq!(
        (
            v["codec_name"].as_str(),
            v["pix_fmt"].as_str(),
            v["width"].as_u64(),
            v["height"].as_u64()
        ),
        (Some("h264"), Some("yuv420p"), Some(320), Some(240))
    );
    let json = testsrc::ffprobe_json(&[
        "-select_streams",
        "a:0",
        "-show_entries",
        "stream=codec_name",
        out,
    ])
    .expect("ffprobe");
    assert_eq!(json["streams"][0]["codec_name"].as_str(), Some("opus"));
}

#[test]
fn h264_and_aac_are_copied_bit_for_bit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.mp4");
    let args = [
        testsrc::H264_BASELINE,
        &["-g", "30", "-c:a", "aac", "-b:a", "96k"],
    ]
    .concat();
    testsrc::av("320x180", 3, &args, input.to_str().expect("utf8 path")).expect("test media");
    let (plan, out) = remux_to_file(&input, dir.path());
    assert!(
        plan.iter().all(|p| p.action == Action::Copy) && plan.len() == 2,
        "{plan:?}"
    );
    let (before, after) = (packets(&input), packets(&out));
    assert_eq!(
        before
            .iter()
            .map(|(m, p)| (*m, p.len()))
            .collect::<Vec<_>>(),
        after.iter().map(|(m, p)| (*m, p.len())).collect::<Vec<_>>(),
        "same streams and packet counts"
    );
    assert!(before == after, "every packet is copied unchanged");
}

#[test]
fn a_wav_file_is_encoded_to_opus() {
    let dir = tempfile::tempdir().expect("tempdir");
    let input = dir.path().join("in.wav");
    testsrc::ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=22050",
        "-t",
        "3",
        "-ac",
        "1",
        input.to_str().expect("utf8 path"),
    ])
    .expect("test media");
    let (plan, out) = remux_to_file(&input, dir.path());
    assert_eq!(plan.len(), 1, "{plan:?}");
    let out = out.to_str().expect("utf8 path");
    assert_eq!(
        (plan[0].codec.as_str(), plan[0].action),
        ("pcm_s16le", Action::Encode)
    );
    let json = testsrc::ffprobe_json(&[
        "-show_entries",
        "stream=codec_name,channels,sample_rate",
        out,
    ])
    .expect("ffprobe");
    let a = &json["streams"][0];
    assert_eq!(
        (
            a["codec_name"].as_str(),
            a["channels"].as_u64(),
            a["sample_rate"].as_str()
        ),
        (Some("opus"), Some(1), Some("48000"))
    );
    let spans = spans_ms(std::path::Path::new(out));
    assert!(
        spans[0].0.abs() <= 20 && (spans[0].1 - 3000).abs() <= 20,
        "3 s within one 20 ms frame: {spans:?}"
    );
    testsrc::decode(out).expect("decodes");
}
