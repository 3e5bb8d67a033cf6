//! The live pipeline from chunked browser-like input to a playable window.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;

use super::{LiveConfig, PipelineError, PipelineReport, RunOptions, AUDIO_RENDITION};
use crate::ingest::outputs::LiveOutputs;
use crate::media::demux::ChunkReader;
use crate::media::demux_tests::mkv_h264_opus;
use crate::origin::{LiveStream, PlaylistQuery};
use crate::recording::Archive;

/// Runs the pipeline into `live` (and `archive`), as a live session does.
pub(super) fn run(
    reader: ChunkReader,
    live: Arc<LiveStream>,
    cfg: LiveConfig,
    capture_start_ms: Option<i64>,
    archive: Option<Archive>,
) -> Result<PipelineReport, PipelineError> {
    let opts = RunOptions {
        capture_start_ms,
        ..RunOptions::default()
    };
    super::run(
        reader,
        cfg,
        opts,
        &mut LiveOutputs::new(live, archive, None),
    )
}

/// [`run`] with every option.
pub(super) fn run_with(
    reader: ChunkReader,
    live: Arc<LiveStream>,
    cfg: LiveConfig,
    opts: RunOptions,
) -> Result<PipelineReport, PipelineError> {
    super::run(reader, cfg, opts, &mut LiveOutputs::new(live, None, None))
}

/// Feeds `data` to the pipeline in 16 KiB chunks from another thread.
pub(super) fn feed(data: Vec<u8>) -> ChunkReader {
    feed_periods(vec![(data, 0)])
}

/// Writes the master, media playlists, init segments and segments to `dir`.
pub(super) async fn dump(live: &LiveStream, dir: &std::path::Path, renditions: &[&str]) {
    std::fs::write(dir.join("master.m3u8"), live.master().expect("master")).expect("write");
    for name in renditions {
        let rdir = dir.join(name);
        std::fs::create_dir_all(&rdir).expect("mkdir");
        let text = live
            .media_playlist(name, PlaylistQuery::default())
            .await
            .expect("playlist");
        for uri in text
            .lines()
            .filter_map(|l| l.strip_prefix("#EXT-X-MAP:URI=\""))
            .filter_map(|l| l.strip_suffix('"'))
        {
            let init = live.init(name, uri).expect("every named init segment");
            std::fs::write(rdir.join(uri), init).expect("write");
        }
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let msn: u64 = line.trim_end_matches(".m4s").parse().expect("segment name");
            std::fs::write(
                rdir.join(line),
                live.segment(name, msn).expect("segment in window"),
            )
            .expect("write");
        }
        std::fs::write(rdir.join("index.m3u8"), text).expect("write");
    }
}

#[tokio::test]
async fn h264_and_opus_become_passthrough_video_and_aac_audio() {
    ffmpeg_next::init().expect("init");
    let live = LiveStream::new(Duration::from_secs(5));
    let input = mkv_h264_opus(6);
    let report = tokio::task::spawn_blocking({
        let live = live.clone();
        move || {
            run(
                feed(input),
                live,
                LiveConfig::default(),
                Some(1_795_300_000_000),
                None,
            )
        }
    })
    .await
    .expect("join")
    .expect("pipeline");
    assert_eq!(report.video_frames, 180);
    assert!(
        report.audio_frames >= 280,
        "6 s of 1024-sample frames: {}",
        report.audio_frames
    );

    let master = live.master().expect("master playlist");
    assert!(
        master.contains("CODECS=\"avc1.42c01e,mp4a.40.2\""),
        "{master}"
    );
    assert!(master.contains("RESOLUTION=640x360"), "{master}");
    assert!(master.contains("#EXT-X-MEDIA:TYPE=AUDIO"), "{master}");

    let video = live
        .media_playlist("360p", PlaylistQuery::default())
        .await
        .expect("video playlist");
    assert!(
        video.contains("#EXT-X-PROGRAM-DATE-TIME:2026-11-21T22:26:40.000Z"),
        "{video}"
    );
    assert!(video.contains("#EXT-X-ENDLIST\n"), "{video}");
    assert!(
        !video.contains("PRELOAD-HINT"),
        "an ended stream hints nothing: {video}"
    );
    assert!(
        video.contains("#EXT-X-RENDITION-REPORT:URI=\"../audio/index.m3u8\""),
        "{video}"
    );

    // BANDWIDTH is the peak segment bitrate, AVERAGE-BANDWIDTH the average,
    // video plus audio, measured from what was published.
    let audio = live
        .media_playlist(AUDIO_RENDITION, PlaylistQuery::default())
        .await
        .expect("audio playlist");
    let (vp, va) = measured(&live, "360p", &video);
    let (ap, aa) = measured(&live, AUDIO_RENDITION, &audio);
    let attr = |name: &str| -> u64 {
        let at = master
            .find(&format!(",{name}="))
            .or_else(|| master.find(&format!(":{name}=")));
        let rest = &master[at.expect("attribute") + name.len() + 2..];
        rest.split([',', '\n'])
            .next()
            .expect("value")
            .parse()
            .expect("number")
    };
    let close = |a: u64, b: u64| a.abs_diff(b) * 100 <= b;
    assert!(close(attr("BANDWIDTH"), vp + ap), "{master} vs {vp}+{ap}");
    assert!(
        close(attr("AVERAGE-BANDWIDTH"), va + aa),
        "{master} vs {va}+{aa}"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    dump(&live, dir.path(), &["360p", AUDIO_RENDITION]).await;
    let master_path = dir.path().join("master.m3u8");
    let master_path = master_path.to_str().expect("utf8 path");
    crate::media::testsrc::decode(master_path).expect("every stream decodes");
    let summary = crate::media::testsrc::probe(master_path).expect("ffprobe");
    assert!(summary.has(&["h264", "aac"]), "{summary:?}");
    assert!((summary.duration_s - 6.0).abs() < 0.2, "{summary:?}");
}

/// Peak and average bits per second of the segments a playlist lists, from
/// their published sizes and EXTINF durations.
fn measured(live: &LiveStream, rendition: &str, playlist: &str) -> (u64, u64) {
    let mut duration_ms = 0u64;
    let (mut peak, mut bytes, mut total_ms) = (0u64, 0u64, 0u64);
    for line in playlist.lines() {
        if let Some(d) = line.strip_prefix("#EXTINF:") {
            let d = d.trim_end_matches(',');
            let (s, ms) = d.split_once('.').expect("three decimals");
            duration_ms = s.parse::<u64>().expect("s") * 1000 + ms.parse::<u64>().expect("ms");
        } else if let Some(msn) = line.strip_suffix(".m4s").and_then(|m| m.parse().ok()) {
            let size = live.segment(rendition, msn).expect("segment").len() as u64;
            peak = peak.max(size * 8 * 1000 / duration_ms);
            bytes += size;
            total_ms += duration_ms;
        }
    }
    (peak, bytes * 8 * 1000 / total_ms.max(1))
}

fn source(size: &str, video: &[&str], seconds: u32, format: &str) -> Vec<u8> {
    let mut args = video.to_vec();
    args.extend(["-c:a", "libopus", "-f", format]);
    crate::media::testsrc::av(size, seconds, &args, "-").expect("test media")
}

/// Runs the pipeline and checks the ladder: the expected rungs, identical
/// segment durations on every rung (aligned keyframes), and FFmpeg decodes all.
async fn check_ladder(input: Vec<u8>, rungs: &[(&str, &str)]) {
    ffmpeg_next::init().expect("init");
    let metrics = crate::telemetry::metrics_handle();
    let live = LiveStream::new(Duration::from_secs(5));
    tokio::task::spawn_blocking({
        let live = live.clone();
        move || run(feed(input), live, LiveConfig::default(), None, None)
    })
    .await
    .expect("join")
    .expect("pipeline");
    let master = live.master().expect("master");
    for (name, resolution) in rungs {
        assert!(
            master.contains(&format!("RESOLUTION={resolution}")),
            "{name}: {master}"
        );
        assert!(
            master.contains(&format!("{name}/index.m3u8")),
            "{name}: {master}"
        );
    }
    let mut durations = Vec::new();
    for (name, _) in rungs {
        let text = live
            .media_playlist(name, PlaylistQuery::default())
            .await
            .expect("playlist");
        let extinf: Vec<String> = text
            .lines()
            .filter(|l| l.starts_with("#EXTINF"))
            .map(str::to_string)
            .collect();
        assert!(extinf.len() >= 2, "{name}: {text}");
        durations.push(extinf);
    }
    assert!(
        durations.windows(2).all(|w| w[0] == w[1]),
        "segments differ across rungs: {durations:?}"
    );
    // The encoder's speed against real time is exported once per segment of media.
    // It is a histogram without a stream label: /metrics is public.
    let text = metrics.render();
    let value = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
    };
    assert!(value("onair_ladder_realtime_factor_count") >= 1.0);
    assert!(value("onair_ladder_realtime_factor_sum") > 0.0);
    assert!(
        !text
            .lines()
            .any(|l| l.starts_with("onair_ladder") && l.contains("stream=")),
        "{text}"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let mut names: Vec<&str> = rungs.iter().map(|r| r.0).collect();
    names.push(AUDIO_RENDITION);
    dump(&live, dir.path(), &names).await;
    crate::media::testsrc::decode(dir.path().join("master.m3u8").to_str().expect("utf8 path"))
        .expect("every variant decodes");
}

#[tokio::test]
async fn vp8_720p_is_transcoded_into_an_aligned_ladder() {
    let input = source(
        "1280x720",
        &[
            "-c:v",
            "libvpx",
            "-deadline",
            "realtime",
            "-cpu-used",
            "8",
            "-b:v",
            "1500k",
            "-g",
            "90",
        ],
        5,
        "webm",
    );
    check_ladder(
        input,
        &[
            ("720p", "1280x720"),
            ("480p", "854x480"),
            ("360p", "640x360"),
        ],
    )
    .await;
}

#[tokio::test]
async fn h264_720p_passes_through_and_lower_rungs_follow_its_keyframes() {
    let input = source(
        "1280x720",
        &[crate::media::testsrc::H264_BASELINE, &["-g", "60"]].concat(),
        5,
        "matroska",
    );
    check_ladder(
        input,
        &[
            ("720p", "1280x720"),
            ("480p", "854x480"),
            ("360p", "640x360"),
        ],
    )
    .await;
}

/// The current media playlists of the `video` rendition and of the audio.
pub(super) async fn video_and_audio_playlists(live: &LiveStream, video: &str) -> (String, String) {
    let v = live
        .media_playlist(video, PlaylistQuery::default())
        .await
        .expect("video playlist");
    let a = live
        .media_playlist(AUDIO_RENDITION, PlaylistQuery::default())
        .await
        .expect("audio playlist");
    (v, a)
}

/// `EXTINF` durations (ms) of a media playlist, in order.
pub(super) fn extinf_ms(text: &str) -> Vec<u64> {
    text.lines()
        .filter_map(|l| l.strip_prefix("#EXTINF:"))
        .map(|d| {
            let (s, ms) = d
                .trim_end_matches(',')
                .split_once('.')
                .expect("three decimals");
            s.parse::<u64>().expect("s") * 1000 + ms.parse::<u64>().expect("ms")
        })
        .collect()
}

/// Passed-through video with a keyframe every 2.5 s and a 1 s segment target:
/// video can only cut at keyframes, and the audio cuts where the video did,
/// so segment N is the same media time in both (before, audio cut on the 1 s
/// grid and ran ahead in numbering).
#[tokio::test]
async fn audio_segments_follow_passed_through_video_with_sparse_keyframes() {
    ffmpeg_next::init().expect("init");
    let input = source(
        "320x180",
        &[crate::media::testsrc::H264_BASELINE, &["-g", "75"]].concat(),
        9,
        "matroska",
    );
    let live = LiveStream::new(Duration::from_secs(5));
    let cfg = LiveConfig {
        segment_ms: 1000,
        passthrough_only: true,
        ..LiveConfig::default()
    };
    tokio::task::spawn_blocking({
        let live = live.clone();
        move || run(feed(input), live, cfg, None, None)
    })
    .await
    .expect("join")
    .expect("pipeline");
    let (video, audio) = video_and_audio_playlists(&live, "180p").await;
    let (v, a) = (extinf_ms(&video), extinf_ms(&audio));
    // Keyframes at 0, 2.5, 5 and 7.5 s: four segments of 2.5 s (the last 1.5 s).
    assert_eq!(v.len(), 4, "{video}");
    assert_eq!(a.len(), v.len(), "video {v:?} audio {a:?}");
    // Segment N starts at the same time in both, within one AAC frame (21 ms)
    // plus how far the demuxer delivers audio ahead of video.
    let mut starts = (0u64, 0u64);
    for (i, (vd, ad)) in v.iter().zip(&a).enumerate() {
        assert!(
            starts.0.abs_diff(starts.1) <= 60,
            "segment {i}: video starts at {} ms, audio at {} ms",
            starts.0,
            starts.1
        );
        starts = (starts.0 + vd, starts.1 + ad);
    }
    assert!(v[..3].iter().all(|d| d.abs_diff(2500) <= 1), "{v:?}");
    assert!(video.contains("#EXT-X-TARGETDURATION:3\n"), "{video}");
    assert!(audio.contains("#EXT-X-TARGETDURATION:3\n"), "{audio}");
}

#[tokio::test]
async fn audio_only_input_becomes_an_audio_only_stream() {
    ffmpeg_next::init().expect("init");
    let audio = crate::media::testsrc::ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000",
        "-t",
        "4",
        "-c:a",
        "libopus",
        "-f",
        "webm",
        "-",
    ])
    .expect("test media");
    let live = LiveStream::new(Duration::from_secs(5));
    let report = tokio::task::spawn_blocking({
        let live = live.clone();
        move || run(feed(audio), live, LiveConfig::default(), None, None)
    })
    .await
    .expect("join")
    .expect("pipeline");
    assert_eq!(report.video_frames, 0);
    assert!(report.audio_frames >= 180, "{}", report.audio_frames);
    let master = live.master().expect("master");
    assert!(
        master.contains("CODECS=\"mp4a.40.2\"") && master.contains("\naudio/index.m3u8\n"),
        "{master}"
    );
    assert!(!master.contains("RESOLUTION"), "{master}");
    let dir = tempfile::tempdir().expect("tempdir");
    dump(&live, dir.path(), &[AUDIO_RENDITION]).await;
    let summary =
        crate::media::testsrc::probe(dir.path().join("master.m3u8").to_str().expect("utf8 path"))
            .expect("ffprobe");
    assert_eq!(summary.codecs, vec!["aac"]);
    assert!((summary.duration_s - 4.0).abs() < 0.2, "{summary:?}");
}

#[tokio::test]
async fn fragmented_mp4_as_chromium_records_it_is_accepted() {
    // Chromium's `video/mp4;codecs=avc1.42E01E,opus`: ftyp+moov first, then one
    // moof+mdat per GOP, on a stream that cannot seek.
    let input = crate::media::testsrc::av(
        "640x360",
        4,
        &[
            crate::media::testsrc::H264_BASELINE,
            &["-g", "30", "-c:a", "libopus"],
            &[
                "-movflags",
                "frag_keyframe+empty_moov+default_base_moof",
                "-f",
                "mp4",
            ],
        ]
        .concat(),
        "-",
    )
    .expect("test media");
    ffmpeg_next::init().expect("init");
    let live = LiveStream::new(Duration::from_secs(5));
    let report = tokio::task::spawn_blocking({
        let live = live.clone();
        move || run(feed(input), live, LiveConfig::default(), None, None)
    })
    .await
    .expect("join")
    .expect("pipeline");
    assert!(report.format.contains("mp4"), "{}", report.format);
    assert_eq!(report.video_frames, 120);
    assert!(report.audio_frames >= 180, "{}", report.audio_frames);
    let master = live.master().expect("master");
    assert!(
        master.contains("CODECS=\"avc1.42c01e,mp4a.40.2\""),
        "{master}"
    );
}

/// Feeds each container in turn, with a period marker (new capture clock)
/// before every one but the first, as the ingest socket does on a recorder restart.
pub(super) fn feed_periods(parts: Vec<(Vec<u8>, i64)>) -> ChunkReader {
    let (tx, reader) = ChunkReader::channel(8);
    std::thread::spawn(move || {
        for (i, (data, capture)) in parts.into_iter().enumerate() {
            if i > 0 {
                let marker = crate::media::demux::Feed::Period {
                    capture_start_ms: Some(capture),
                };
                if tx.blocking_send(marker).is_err() {
                    return;
                }
            }
            for piece in data.chunks(16 * 1024) {
                if tx
                    .blocking_send(Bytes::copy_from_slice(piece).into())
                    .is_err()
                {
                    return;
                }
            }
        }
    });
    reader
}

#[tokio::test]
async fn a_recorder_restart_is_a_discontinuity_in_every_rendition() {
    ffmpeg_next::init().expect("init");
    let live = LiveStream::new(Duration::from_secs(5));
    let start = 1_795_300_000_000;
    // H.264 (passed through), then the broadcaster switches to a VP8 source
    // of another size: the same renditions go on, the top one now encoded.
    let first = mkv_h264_opus(3);
    let second = source("320x240", crate::media::testsrc::VP8_REALTIME, 3, "webm");
    // How long before its first picture the second recorder's audio starts
    // (its muxer delays the video by the Opus pre-skip): audio that came
    // before the picture is dated that much before the restart's clock.
    let audio_ahead_ms = {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("second.webm");
        std::fs::write(&path, &second).expect("write");
        let first_ms = |select: &str, entries: &str, list: &str| {
            let json = crate::media::testsrc::ffprobe_json(&[
                "-select_streams",
                select,
                "-show_entries",
                entries,
                path.to_str().expect("utf8 path"),
            ])
            .expect("ffprobe");
            let t: f64 = json[list][0]["pts_time"]
                .as_str()
                .and_then(|t| t.parse().ok())
                .expect("a time");
            (t * 1000.0).round() as i64
        };
        first_ms("v:0", "packet=pts_time", "packets") - first_ms("a:0", "frame=pts_time", "frames")
    };
    let report = tokio::task::spawn_blocking({
        let live = live.clone();
        move || {
            let opts = RunOptions {
                capture_start_ms: Some(start),
                stream: String::new(),
                first_msn: 7,
                health: None,
            };
            let reader = feed_periods(vec![(first, start), (second, start + 60_000)]);
            run_with(reader, live, LiveConfig::default(), opts)
        }
    })
    .await
    .expect("join")
    .expect("pipeline");
    assert_eq!(report.periods, 2);

    let master = live.master().expect("master");
    assert!(master.contains("RESOLUTION=640x360"), "{master}");
    let (video, audio) = video_and_audio_playlists(&live, "360p").await;
    for (text, ahead_ms) in [(&video, 0), (&audio, audio_ahead_ms)] {
        assert_eq!(text.matches("#EXT-X-DISCONTINUITY\n").count(), 1, "{text}");
        assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:7\n"), "{text}");
        // The second period is dated from the restarted recorder's clock,
        // at its first picture, in every rendition alike.
        let disc = text.find("#EXT-X-DISCONTINUITY\n").expect("tag");
        let date = crate::packager::playlist::format_pdt(start + 60_000 - ahead_ms);
        assert!(
            text[disc..].contains(&format!("#EXT-X-PROGRAM-DATE-TIME:{date}\n")),
            "{date} {text}"
        );
    }
    let last: u64 = video
        .lines()
        .filter_map(|l| l.strip_suffix(".m4s")?.parse().ok())
        .max()
        .expect("segments");
    assert_eq!(
        report.next_msn,
        last + 1,
        "a later session continues here: {video}\n{audio}"
    );
    assert!(
        last >= 7 + 3,
        "at least two segments per 3 s period: {video}"
    );
    // The encoder's parameter sets differ from the source's: a second init segment.
    // The run continues a stream at segment 7: its init segments are named after it.
    assert!(video.contains("#EXT-X-MAP:URI=\"init-7-1.mp4\""), "{video}");
    assert!(
        !audio.contains("init-7-1.mp4"),
        "same AAC settings, same init: {audio}"
    );

    // Each period, as its init segment plus its segments, is a valid fragmented
    // MP4 that FFmpeg decodes. (FFmpeg's HLS demuxer keeps the first init
    // segment's parameter sets across EXT-X-MAP, so the playlist as a whole is
    // checked with the audio rendition and in the browser test.)
    let dir = tempfile::tempdir().expect("tempdir");
    let mut ends = Vec::new();
    let mut map = String::new();
    let mut periods: Vec<(String, Vec<u64>)> = Vec::new();
    let mut starts_period = true;
    for line in video.lines() {
        if let Some(uri) = line
            .strip_prefix("#EXT-X-MAP:URI=\"")
            .and_then(|l| l.strip_suffix('"'))
        {
            map = uri.to_string();
        }
        starts_period |= line == "#EXT-X-DISCONTINUITY";
        if let Some(msn) = line.strip_suffix(".m4s").and_then(|m| m.parse().ok()) {
            if std::mem::take(&mut starts_period) {
                periods.push((map.clone(), Vec::new()));
            }
            if let Some(current) = periods.last_mut() {
                current.1.push(msn);
            }
        }
    }
    assert_eq!(periods.len(), 2, "{video}");
    assert_eq!(periods[0].0, "init-7-0.mp4");
    assert_eq!(periods[1].0, "init-7-1.mp4");
    for (i, (init, msns)) in periods.iter().enumerate() {
        let mut file = live.init("360p", init).expect("init").to_vec();
        for msn in msns {
            file.extend_from_slice(&live.segment("360p", *msn).expect("segment"));
        }
        let path = dir.path().join(format!("period{i}.mp4"));
        std::fs::write(&path, file).expect("write");
        let path = path.to_str().expect("utf8 path");
        crate::media::testsrc::decode(path).expect("the period decodes");
        let summary = crate::media::testsrc::probe(path).expect("ffprobe");
        assert!(summary.has(&["h264"]), "{summary:?}");
        ends.push(summary.duration_s);
    }
    // Media time continues across the restart: the first period ends at 3 s,
    // the second (whose timestamps start where the first ended) at 6 s.
    assert!((ends[0] - 3.0).abs() < 0.3, "{ends:?}");
    assert!((ends[1] - 6.0).abs() < 0.3, "{ends:?}");
    dump(&live, dir.path(), &[AUDIO_RENDITION]).await;
    let audio_path = dir.path().join(AUDIO_RENDITION).join("index.m3u8");
    let audio_path = audio_path.to_str().expect("utf8 path");
    crate::media::testsrc::decode(audio_path).expect("the audio decodes across the restart");
    let summary = crate::media::testsrc::probe(audio_path).expect("ffprobe");
    assert!((summary.duration_s - 6.0).abs() < 0.3, "{summary:?}");
}

#[tokio::test]
async fn video_only_input_becomes_a_video_only_ladder() {
    ffmpeg_next::init().expect("init");
    let args = [crate::media::testsrc::VP8_REALTIME, &["-an", "-f", "webm"]].concat();
    let input = crate::media::testsrc::av("854x480", 4, &args, "-").expect("test media");
    let live = LiveStream::new(Duration::from_secs(5));
    let report = tokio::task::spawn_blocking({
        let live = live.clone();
        move || run(feed(input), live, LiveConfig::default(), None, None)
    })
    .await
    .expect("join")
    .expect("pipeline");
    assert_eq!(report.audio_frames, 0);
    assert!(report.video_frames >= 110, "{report:?}");
    let master = live.master().expect("master");
    assert!(!master.contains("EXT-X-MEDIA:TYPE=AUDIO"), "{master}");
    assert!(!master.contains("mp4a"), "{master}");
    assert!(
        master.contains("480p/index.m3u8") && master.contains("360p/index.m3u8"),
        "{master}"
    );
    let dir = tempfile::tempdir().expect("tempdir");
    dump(&live, dir.path(), &["480p", "360p"]).await;
    let path = dir.path().join("master.m3u8");
    let path = path.to_str().expect("utf8 path");
    crate::media::testsrc::decode(path).expect("decodes");
    let summary = crate::media::testsrc::probe(path).expect("ffprobe");
    assert!(
        summary.has(&["h264"]) && !summary.has(&["aac"]),
        "{summary:?}"
    );
}
