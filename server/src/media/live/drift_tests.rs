//! Ten minutes of variable-frame-rate video with audio through the live
//! pipeline: the two tracks must not drift apart.
//!
//! The input is made by the FFmpeg CLI: 160x90 H.264 whose frame intervals
//! vary between 19 and 63 ms (frames dropped with `select`, timestamps jittered
//! with `setpts`, millisecond time base), and Opus audio: a 1 kHz tone with a
//! 50 ms gap every 2 s, whose ends are markers we can find in decoded audio.
//! The pipeline passes the video through and re-encodes the audio to AAC.
//! Then, over the whole ten minutes:
//!
//! - every output video frame has exactly the timestamp and the bytes it had
//!   in the input;
//! - every marker is at the same audio position (± 1 ms) relative to where it
//!   is in the input, so audio media time keeps pace with the input's clock
//!   (the constant offset is the AAC encoder's priming, one frame);
//! - segment N of the video and of the audio start within one AAC frame plus
//!   one video frame interval of each other, and that offset does not grow;
//! - each track's duration matches the input's within one frame.
//!
//! All times are integers (90 kHz ticks, 48 kHz samples, milliseconds).

use std::time::Duration;

use bytes::Bytes;

use super::tests::{feed, run};
use super::{LiveConfig, AUDIO_RENDITION};
use crate::media::testsrc;
use crate::origin::LiveStream;

const MINUTES: u32 = 10;
/// A 50 ms gap in the tone every `GAP_EVERY_MS`, the first at `GAP_FIRST_MS`.
const GAP_EVERY_MS: u64 = 2000;
const GAP_FIRST_MS: u64 = 500;
const RATE: u64 = 48_000;
const AAC_FRAME: u64 = 1024;

/// One track of the output, parsed from its `moof` boxes.
#[derive(Debug, Default)]
struct Track {
    /// `(tfdt, duration)` of each segment, in the track's timescale.
    segments: Vec<(u64, u64)>,
    /// Decode time of every sample, in the track's timescale.
    sample_dts: Vec<u64>,
    /// Every sample's bytes.
    sample_data: Vec<Bytes>,
    /// Duration of the last sample.
    last_duration: u64,
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn be64(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// The child boxes of `data`: `(type, body, offset of the box in data)`.
fn children(data: &[u8]) -> Vec<([u8; 4], &[u8], usize)> {
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(size) = be32(data, at) {
        let size = size as usize;
        let Some(kind) = data.get(at + 4..at + 8) else {
            break;
        };
        assert!(
            size >= 8 && at + size <= data.len(),
            "bad box size {size} at {at}"
        );
        out.push((
            kind.try_into().expect("four bytes"),
            &data[at + 8..at + size],
            at,
        ));
        at += size;
    }
    assert_eq!(at, data.len(), "box sizes must add up");
    out
}

fn child<'a>(boxes: &[([u8; 4], &'a [u8], usize)], kind: &[u8; 4]) -> &'a [u8] {
    boxes
        .iter()
        .find(|(k, _, _)| k == kind)
        .map(|(_, b, _)| *b)
        .unwrap_or_else(|| panic!("no {} box", String::from_utf8_lossy(kind)))
}

/// Adds one segment's samples to `track` from the `tfdt` and `trun` of every
/// fragment. This packager's `tfhd` carries no defaults (so `trun` lists every
/// sample's duration and size) and says default-base-is-moof (so the data
/// offset counts from the `moof`).
fn add_segment(track: &mut Track, segment: &Bytes) {
    let mut first = None;
    let mut total = 0u64;
    for (kind, moof, moof_at) in children(segment) {
        if &kind != b"moof" {
            continue;
        }
        for (kind, traf, _) in children(moof) {
            if &kind != b"traf" {
                continue;
            }
            let boxes = children(traf);
            let tfhd_flags = be32(child(&boxes, b"tfhd"), 0).expect("tfhd") & 0x00ff_ffff;
            assert_eq!(tfhd_flags, 0x02_0000, "default-base-is-moof, no defaults");
            let tfdt = child(&boxes, b"tfdt");
            let tfdt = if tfdt[0] == 1 {
                be64(tfdt, 4).expect("tfdt v1")
            } else {
                u64::from(be32(tfdt, 4).expect("tfdt v0"))
            };
            let trun = child(&boxes, b"trun");
            let flags = be32(trun, 0).expect("trun flags") & 0x00ff_ffff;
            assert!(
                flags & 0x301 == 0x301,
                "trun lists data offset, durations and sizes"
            );
            let count = be32(trun, 4).expect("sample count") as usize;
            let data_offset = be32(trun, 8).expect("data offset") as usize;
            let mut data_at = moof_at + data_offset;
            let mut at = if flags & 0x004 != 0 { 16 } else { 12 };
            let per_sample = 4 * [0x100, 0x200, 0x400, 0x800]
                .iter()
                .filter(|f| flags & **f != 0)
                .count();
            if let Some(&last) = track.sample_dts.last() {
                assert_eq!(tfdt, last + track.last_duration, "fragments are contiguous");
            }
            first.get_or_insert(tfdt);
            let mut dts = tfdt;
            for _ in 0..count {
                let duration = u64::from(be32(trun, at).expect("sample duration"));
                let size = be32(trun, at + 4).expect("sample size") as usize;
                assert!(data_at + size <= segment.len(), "sample beyond the segment");
                track
                    .sample_data
                    .push(segment.slice(data_at..data_at + size));
                track.sample_dts.push(dts);
                track.last_duration = duration;
                data_at += size;
                dts += duration;
                total += duration;
                at += per_sample;
            }
        }
    }
    track
        .segments
        .push((first.expect("a fragment in every segment"), total));
}

/// The markers in mono 16-bit PCM: the first loud sample (above a quarter of
/// full scale) after at least 20 ms of quiet. The tone itself is never quiet
/// that long (its zero crossings last a few samples).
fn gap_ends(pcm: &[u8]) -> Vec<u64> {
    let quiet_needed = RATE / 50;
    let mut quiet = 0;
    let mut ends = Vec::new();
    for (i, s) in pcm.chunks_exact(2).enumerate() {
        let loud = i16::from_le_bytes([s[0], s[1]]).unsigned_abs() > 8192;
        if loud {
            if quiet >= quiet_needed && i as u64 > quiet {
                ends.push(i as u64);
            }
            quiet = 0;
        } else {
            quiet += 1;
        }
    }
    ends
}

/// Decodes the first audio stream of `input` to mono 16-bit PCM at 48 kHz.
fn decode_pcm(input: &str) -> Vec<u8> {
    testsrc::ffmpeg(&[
        "-i", input, "-map", "0:a:0", "-ac", "1", "-ar", "48000", "-f", "s16le", "-",
    ])
    .expect("decode audio")
}

/// Parses a Matroska `DURATION` tag (`"00:10:00.008000000"`) into
/// milliseconds without floats.
fn clock_to_ms(s: &str) -> i64 {
    let (hms, frac) = s.split_once('.').unwrap_or((s, ""));
    let ms: String = frac.chars().chain("000".chars()).take(3).collect();
    let whole = hms.split(':').fold(0i64, |acc, part| {
        acc * 60 + part.parse::<i64>().expect("clock field")
    });
    whole * 1000 + ms.parse::<i64>().expect("milliseconds")
}

/// A video packet of the input as libavformat demuxes it.
struct InputFrame {
    /// Presentation time, milliseconds (the Matroska time base).
    pts_ms: u64,
    /// The sample: 4-byte length-prefixed NAL units (avcC from the muxer).
    data: Bytes,
    /// The sample is length-prefixed (avcC) but starts like an Annex B start
    /// code: its first NAL unit is 256-511 bytes long (`00 00 01 xx`), or 1.
    looks_like_annex_b: bool,
}

/// Every video packet of `path`, in decode order.
fn input_video_frames(path: &std::path::Path) -> Vec<InputFrame> {
    let mut input = ffmpeg_next::format::input(path).expect("open input");
    let stream = input
        .streams()
        .best(ffmpeg_next::media::Type::Video)
        .expect("a video stream");
    let (index, tb) = (stream.index(), stream.time_base());
    assert_eq!(
        (tb.numerator(), tb.denominator()),
        (1, 1000),
        "Matroska's millisecond time base"
    );
    let mut frames = Vec::new();
    for (s, packet) in input.packets() {
        if s.index() != index {
            continue;
        }
        let data = packet.data().expect("packet data");
        frames.push(InputFrame {
            pts_ms: u64::try_from(packet.pts().expect("pts")).expect("non-negative pts"),
            data: Bytes::copy_from_slice(data),
            looks_like_annex_b: crate::packager::h264::is_annex_b(data),
        });
    }
    frames
}

/// The input: ten minutes of 160x90 VFR H.264 and the marked Opus tone, in Matroska.
fn make_input(path: &std::path::Path) {
    let seconds = (MINUTES * 60).to_string();
    // 50 fps, minus every frame n with n%3==1 or n%5==2 (never three in a row),
    // then 0-3 ms of jitter: intervals of 19, 23, 39, 59 and 63 ms. The encoder
    // keeps the millisecond time base (by default it would round to 1/50 s).
    let video = "select='not(eq(mod(n\\,3)\\,1))*not(eq(mod(n\\,5)\\,2))',\
                 settb=1/1000,setpts='PTS+mod(N*7\\,4)'";
    let tone = format!(
        "aevalsrc='0.5*sin(2*PI*1000*t)*gte(mod(t*1000+{}\\,{GAP_EVERY_MS})\\,50)':s=48000:d={seconds}",
        GAP_EVERY_MS - GAP_FIRST_MS,
    );
    let args = [
        &[
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=160x90:rate=50",
            "-f",
            "lavfi",
            "-i",
            &tone,
            "-t",
            &seconds,
            "-vf",
            video,
            "-fps_mode",
            "vfr",
            "-enc_time_base:v",
            "1/1000",
        ],
        testsrc::H264_BASELINE,
        &[
            "-force_key_frames",
            "expr:gte(t,n_forced*2)",
            "-c:a",
            "libopus",
            "-b:a",
            "64k",
            "-compression_level",
            "0",
            "-f",
            "matroska",
            path.to_str().expect("utf8 path"),
        ],
    ]
    .concat();
    testsrc::ffmpeg(&args).expect("test media");
}

#[tokio::test]
async fn ten_minutes_of_variable_frame_rate_video_do_not_drift_from_the_audio() {
    ffmpeg_next::init().expect("init");
    let dir = tempfile::tempdir().expect("tempdir");
    let input_path = dir.path().join("vfr.mkv");
    let input = input_path.to_str().expect("utf8 path");
    make_input(&input_path);

    // The input as FFmpeg demuxes it.
    let in_video = input_video_frames(&input_path);
    let mut distinct: Vec<u64> = in_video
        .windows(2)
        .map(|w| w[1].pts_ms - w[0].pts_ms)
        .collect();
    distinct.sort_unstable();
    distinct.dedup();
    let max_interval_ms = *distinct.last().expect("intervals");
    assert!(
        distinct.len() >= 4 && distinct[0] >= 15 && max_interval_ms <= 65,
        "the input must have a genuinely variable frame rate of 15-65 ms: {distinct:?}"
    );
    let in_pcm = decode_pcm(input);
    let in_samples = in_pcm.len() as u64 / 2;
    let in_marks = gap_ends(&in_pcm);
    drop(in_pcm);
    let expected_marks = (u64::from(MINUTES) * 60_000 - GAP_FIRST_MS - 50) / GAP_EVERY_MS + 1;
    assert_eq!(
        in_marks.len() as u64,
        expected_marks,
        "markers in the input"
    );

    // The pipeline, keeping every segment in the window.
    let cfg = LiveConfig {
        window_segments: 1000,
        passthrough_only: true,
        ..LiveConfig::default()
    };
    let live = LiveStream::new(Duration::from_secs(5));
    let data = std::fs::read(&input_path).expect("read input");
    let report = tokio::task::spawn_blocking({
        let live = live.clone();
        move || run(feed(data), live, cfg, None, None)
    })
    .await
    .expect("join")
    .expect("pipeline");

    let collect = |name: &str| {
        let mut track = Track::default();
        let mut bytes = live.init(name, "init.mp4").expect("init segment").to_vec();
        let mut msn = 0;
        while let Some(segment) = live.segment(name, msn) {
            add_segment(&mut track, &segment);
            bytes.extend_from_slice(&segment);
            msn += 1;
        }
        assert!(
            live.segment(name, msn + 1).is_none(),
            "{name}: segment {msn} is missing"
        );
        (track, bytes)
    };
    let (video, _) = collect("90p");
    let (audio, audio_mp4) = collect(AUDIO_RENDITION);
    assert!(
        video.segments.len() >= 290,
        "about 300 video segments: {}",
        video.segments.len()
    );
    assert_eq!(report.video_frames, video.sample_dts.len() as u64);

    // 1. Every video frame keeps its input time exactly (90 kHz = 90 per ms)
    // and its bytes. Output frames are matched to input frames in order; a
    // frame at a time the input does not have fails the test.
    let mut lost = Vec::new();
    let mut damaged = Vec::new();
    let mut next_in = in_video.iter();
    for (i, (&dts, data)) in video.sample_dts.iter().zip(&video.sample_data).enumerate() {
        loop {
            let f = next_in.next().unwrap_or_else(|| {
                panic!("output video frame {i} at {dts} ticks matches no input frame")
            });
            if f.pts_ms * 90 == dts {
                if f.data != data {
                    damaged.push(f);
                }
                break;
            }
            lost.push(f);
        }
    }
    lost.extend(next_in);
    // Every frame arrives intact, including length-prefixed frames whose first
    // NAL unit is 256-511 bytes long (they start with `00 00 01`; see
    // `avcc_frames_that_look_like_annex_b_stay_intact`).
    let changed: Vec<u64> = lost.iter().chain(&damaged).map(|f| f.pts_ms).collect();
    assert!(
        changed.is_empty(),
        "video frames lost or changed at (ms): {changed:?}"
    );

    // 2. Audio media time keeps pace with the input: each marker sits at the
    // same offset from where it is in the input.
    let audio_path = dir.path().join("audio.mp4");
    std::fs::write(&audio_path, &audio_mp4).expect("write audio");
    let out_pcm = decode_pcm(audio_path.to_str().expect("utf8 path"));
    let out_marks = gap_ends(&out_pcm);
    assert_eq!(
        out_marks.len(),
        in_marks.len(),
        "every marker is in the output"
    );
    let offsets: Vec<i64> = out_marks
        .iter()
        .zip(&in_marks)
        .map(|(o, i)| *o as i64 - *i as i64)
        .collect();
    let (lo, hi) = (
        *offsets.iter().min().expect("offsets"),
        *offsets.iter().max().expect("offsets"),
    );
    let one_ms = (RATE / 1000) as i64;
    assert!(
        hi - lo <= one_ms,
        "audio drifts against the input: marker offsets from {lo} to {hi} samples \
         (first {}, last {})",
        offsets[0],
        offsets[offsets.len() - 1]
    );
    assert!(
        offsets[0].unsigned_abs() <= AAC_FRAME + RATE / 1000,
        "audio is offset by {} samples, more than one AAC frame",
        offsets[0]
    );

    // 3. Segment N of each track starts at the same media time, within one AAC
    // frame plus one video frame interval, and that offset does not grow.
    let ms_90k = |t: u64| (t / 90) as i64;
    let ms_48k = |t: u64| (t * 1000 / RATE) as i64;
    assert!(
        video.segments.len().abs_diff(audio.segments.len()) <= 1,
        "segment counts: video {} audio {}",
        video.segments.len(),
        audio.segments.len()
    );
    let n = video.segments.len().min(audio.segments.len());
    let starts: Vec<i64> = (0..n)
        .map(|i| ms_90k(video.segments[i].0) - ms_48k(audio.segments[i].0))
        .collect();
    let bound = (AAC_FRAME * 1000 / RATE) as i64 + 1 + max_interval_ms as i64;
    for (i, d) in starts.iter().enumerate() {
        assert!(
            (d - starts[0]).abs() <= bound,
            "segment {i}: video starts {d} ms after audio, segment 0 {} ms (bound {bound} ms)",
            starts[0]
        );
    }

    // 4. Durations match the input's within one frame: video against the
    // stream's DURATION as ffprobe reports it, audio against the samples
    // FFmpeg decodes from the input.
    let streams = testsrc::ffprobe_json(&["-show_entries", "stream_tags=DURATION", input])
        .expect("ffprobe streams");
    let in_video_end_ms = clock_to_ms(
        streams["streams"][0]["tags"]["DURATION"]
            .as_str()
            .expect("the Matroska muxer writes each stream's DURATION"),
    );
    let video_end_ms = ms_90k(video.sample_dts.last().expect("frames") + video.last_duration);
    assert!(
        (video_end_ms - in_video_end_ms).abs() <= max_interval_ms as i64,
        "video ends at {video_end_ms} ms, the input's at {in_video_end_ms} ms"
    );
    let audio_samples = audio.sample_dts.last().expect("frames") + audio.last_duration;
    assert_eq!(audio.sample_dts[0], 0);
    assert!(
        audio_samples.abs_diff(in_samples) <= AAC_FRAME,
        "audio has {audio_samples} samples, the input {in_samples}"
    );
    eprintln!(
        "{} of {} video frames ({} lost and {} damaged by the Annex B misdetection), {n} segments; \
         audio marker offset {lo}..{hi} samples; segment start offsets {}..{} ms; \
         video ends at {video_end_ms} ms (input {in_video_end_ms}); \
         audio {audio_samples} samples (input {in_samples})",
        video.sample_dts.len(),
        in_video.len(),
        lost.len(),
        damaged.len(),
        starts.iter().min().expect("starts"),
        starts.iter().max().expect("starts"),
    );
}

/// Regression: frames of length-prefixed H.264 (MP4, or Matroska with an
/// avcC CodecPrivate: what `onair publish` sends for most files) whose first
/// NAL unit is 256-511 bytes long begin with `00 00 01`. They were once taken
/// for Annex B and split at that "start code" (corrupt slices, or dropped
/// frames). The pipeline now takes the framing from the stream's avcC record.
#[tokio::test]
async fn avcc_frames_that_look_like_annex_b_stay_intact() {
    ffmpeg_next::init().expect("init");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("small-frames.mkv");
    // About 400 bytes per frame: many first NAL units in 256..=511.
    let args = [
        testsrc::H264_BASELINE,
        &["-b:v", "100k", "-g", "30", "-an", "-f", "matroska"],
    ]
    .concat();
    testsrc::av("160x90", 3, &args, path.to_str().expect("utf8 path")).expect("test media");
    let frames = input_video_frames(&path);
    let ambiguous = frames.iter().filter(|f| f.looks_like_annex_b).count();
    assert!(
        ambiguous > 0,
        "the input must contain such frames to test anything"
    );
    let live = LiveStream::new(Duration::from_secs(5));
    let data = std::fs::read(&path).expect("read");
    let cfg = LiveConfig {
        passthrough_only: true,
        ..LiveConfig::default()
    };
    tokio::task::spawn_blocking({
        let live = live.clone();
        move || run(feed(data), live, cfg, None, None)
    })
    .await
    .expect("join")
    .expect("pipeline");
    let mut video = Track::default();
    let mut msn = 0;
    while let Some(segment) = live.segment("90p", msn) {
        add_segment(&mut video, &segment);
        msn += 1;
    }
    let out: Vec<(u64, &Bytes)> = video
        .sample_dts
        .iter()
        .copied()
        .zip(&video.sample_data)
        .collect();
    let input: Vec<(u64, &Bytes)> = frames.iter().map(|f| (f.pts_ms * 90, &f.data)).collect();
    let intact = input.iter().filter(|f| out.contains(f)).count();
    assert_eq!(
        intact,
        frames.len(),
        "{} frames in, {} out, {intact} intact; {ambiguous} start with 00 00 01",
        frames.len(),
        out.len()
    );
}

/// Audio that is not at 48 kHz and not AAC (FLAC at 44.1 kHz here; AAC is
/// copied at its own rate) is resampled: two minutes must come out as two
/// minutes, with every marker at a constant offset.
#[tokio::test]
async fn audio_at_44_1_khz_is_resampled_without_drift() {
    ffmpeg_next::init().expect("init");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("flac44.mkv");
    let seconds = 120u64;
    let tone = format!(
        "aevalsrc='0.5*sin(2*PI*1000*t)*gte(mod(t*1000+{}\\,{GAP_EVERY_MS})\\,50)':s=44100:d={seconds}",
        GAP_EVERY_MS - GAP_FIRST_MS,
    );
    testsrc::ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        &tone,
        "-c:a",
        "flac",
        "-f",
        "matroska",
        path.to_str().expect("utf8 path"),
    ])
    .expect("test media");
    let in_pcm = decode_pcm(path.to_str().expect("utf8 path"));
    let in_samples = in_pcm.len() as u64 / 2;
    let in_marks = gap_ends(&in_pcm);
    drop(in_pcm);
    assert_eq!(
        in_marks.len() as u64,
        (seconds * 1000 - GAP_FIRST_MS - 50) / GAP_EVERY_MS + 1
    );

    let live = LiveStream::new(Duration::from_secs(5));
    let data = std::fs::read(&path).expect("read");
    let cfg = LiveConfig {
        window_segments: 1000,
        ..LiveConfig::default()
    };
    tokio::task::spawn_blocking({
        let live = live.clone();
        move || run(feed(data), live, cfg, None, None)
    })
    .await
    .expect("join")
    .expect("pipeline");
    let mut audio = Track::default();
    let mut mp4 = live
        .init(AUDIO_RENDITION, "init.mp4")
        .expect("init")
        .to_vec();
    let mut msn = 0;
    while let Some(segment) = live.segment(AUDIO_RENDITION, msn) {
        add_segment(&mut audio, &segment);
        mp4.extend_from_slice(&segment);
        msn += 1;
    }
    let out_samples = audio.sample_dts.last().expect("frames") + audio.last_duration;
    let out_path = dir.path().join("audio.mp4");
    std::fs::write(&out_path, &mp4).expect("write");
    let out_pcm = decode_pcm(out_path.to_str().expect("utf8 path"));
    let out_marks = gap_ends(&out_pcm);
    let offsets: Vec<i64> = out_marks
        .iter()
        .zip(&in_marks)
        .map(|(o, i)| *o as i64 - *i as i64)
        .collect();
    eprintln!(
        "44.1 kHz: {} of {} markers; offsets first {:?} last {:?}; {out_samples} samples out, {in_samples} in",
        out_marks.len(),
        in_marks.len(),
        offsets.first(),
        offsets.last()
    );
    assert_eq!(
        out_marks.len(),
        in_marks.len(),
        "every marker is in the output"
    );
    let (lo, hi) = (
        *offsets.iter().min().expect("offsets"),
        *offsets.iter().max().expect("offsets"),
    );
    assert!(
        hi - lo <= (RATE / 1000) as i64,
        "audio drifts: marker offsets from {lo} to {hi} samples (first {}, last {})",
        offsets[0],
        offsets[offsets.len() - 1]
    );
    assert!(
        out_samples.abs_diff(in_samples) <= 2 * AAC_FRAME,
        "audio has {out_samples} samples at 48 kHz, the input {in_samples}"
    );
}
