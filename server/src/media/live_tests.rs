//! The live pipeline from chunked browser-like input to a playable window.

use std::process::Command;
use std::time::Duration;

use bytes::Bytes;

use super::demux::ChunkReader;
use super::demux_tests::{mkv_h264_opus, webm_vp8_opus};
use super::live::{run, LiveConfig, PipelineError, AUDIO_RENDITION};
use crate::origin::{LiveStream, PlaylistQuery};

fn feed(data: Vec<u8>) -> ChunkReader {
    let (tx, reader) = ChunkReader::channel(8);
    std::thread::spawn(move || {
        for piece in data.chunks(16 * 1024) {
            if tx.blocking_send(Bytes::copy_from_slice(piece)).is_err() {
                return;
            }
        }
    });
    reader
}

/// Writes the master, media playlists, init segments and segments to `dir`.
async fn dump(live: &LiveStream, dir: &std::path::Path, renditions: &[&str]) {
    std::fs::write(dir.join("master.m3u8"), live.master().expect("master")).expect("write");
    for name in renditions {
        let rdir = dir.join(name);
        std::fs::create_dir_all(&rdir).expect("mkdir");
        let text = live
            .media_playlist(name, PlaylistQuery::default())
            .await
            .expect("playlist");
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let msn: u64 = line.trim_end_matches(".m4s").parse().expect("segment name");
            std::fs::write(
                rdir.join(line),
                live.segment(name, msn).expect("segment in window"),
            )
            .expect("write");
        }
        std::fs::write(rdir.join("init.mp4"), live.init(name).expect("init")).expect("write");
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

    let dir = tempfile::tempdir().expect("tempdir");
    dump(&live, dir.path(), &["360p", AUDIO_RENDITION]).await;
    let master_path = dir.path().join("master.m3u8");
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-v", "error", "-i"])
        .arg(&master_path)
        .args(["-map", "0", "-f", "null", "-"])
        .output()
        .expect("ffmpeg");
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let probe = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name,width,height:format=duration",
            "-of",
            "json",
        ])
        .arg(&master_path)
        .output()
        .expect("ffprobe");
    let json: serde_json::Value = serde_json::from_slice(&probe.stdout).expect("json");
    let codecs: Vec<&str> = json["streams"]
        .as_array()
        .expect("streams")
        .iter()
        .filter_map(|s| s["codec_name"].as_str())
        .collect();
    assert!(
        codecs.contains(&"h264") && codecs.contains(&"aac"),
        "{codecs:?}"
    );
    let seconds: f64 = json["format"]["duration"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .expect("duration");
    assert!((seconds - 6.0).abs() < 0.2, "duration {seconds}");
}

#[tokio::test]
async fn vp8_is_refused_with_a_clear_reason_until_the_ladder_exists() {
    ffmpeg_next::init().expect("init");
    let live = LiveStream::new(Duration::from_secs(1));
    let input = webm_vp8_opus(1);
    let err = tokio::task::spawn_blocking(move || {
        run(feed(input), live, LiveConfig::default(), None, None)
    })
    .await
    .expect("join")
    .expect_err("VP8 is not passed through");
    assert!(matches!(err, PipelineError::Unsupported(_)), "{err:?}");
    assert!(err.to_string().contains("VP8"), "{err}");
}
