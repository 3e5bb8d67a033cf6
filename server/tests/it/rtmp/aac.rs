//! AAC from an encoder is copied, not re-encoded: the HLS audio rendition
//! carries the source's frames byte for byte, at the source's sample rate
//! and channels, numbered like the video's segments.

use onair_server::media::testsrc::{audio_packet_md5s, audio_stream};

use super::{publish_to_the_end, rtmp_listener, text_of, QUICK};
use crate::publish::make_file;
use crate::support::TestApp;

/// The source's H.264 + AAC at `rate` Hz with `channels`, 4 s, 640x360.
pub(crate) fn aac_file(dir: &std::path::Path, rate: u32, channels: u32) -> std::path::PathBuf {
    let (r, c) = (rate.to_string(), channels.to_string());
    let args = [QUICK, &["-ar", &r, "-ac", &c]].concat();
    make_file(dir, &format!("aac{rate}x{channels}.mp4"), 4, &args)
}

/// Segment URIs of a media playlist.
fn segments(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(str::to_string)
        .collect()
}

/// Checks stream `id`'s HLS output against `source`: AAC at `rate` with
/// `channels`, the very same frames, as long, and segment N of the audio is
/// segment N of the video.
pub(crate) async fn check_copied(
    app: &TestApp,
    id: &str,
    source: &std::path::Path,
    rate: u32,
    channels: u32,
) {
    let audio_url = app.url(&format!("/live/{id}/audio/index.m3u8"));
    assert_eq!(
        audio_stream(&audio_url).expect("ffprobe"),
        ("aac".to_string(), rate, channels),
        "the source's rate and channels"
    );
    let theirs = audio_packet_md5s(source.to_str().expect("utf8")).expect("source");
    let ours = audio_packet_md5s(&audio_url).expect("rendition");
    assert!(theirs.len() > 150, "{} source frames", theirs.len());
    assert_eq!(ours.len(), theirs.len(), "every frame, no more");
    assert!(
        ours == theirs,
        "the AAC frames are the source's, byte for byte"
    );

    let audio = text_of(app, &format!("/live/{id}/audio/index.m3u8")).await;
    let video = text_of(app, &format!("/live/{id}/360p/index.m3u8")).await;
    assert_eq!(segments(&video), segments(&audio), "{video}\n{audio}");
    // As long as the source's frames, to the EXTINF rounding (1 ms a segment).
    let total_ms: u64 = audio
        .lines()
        .filter_map(|l| l.strip_prefix("#EXTINF:"))
        .map(|v| {
            let (s, ms) = v.trim_end_matches(',').split_once('.').expect("decimals");
            s.parse::<u64>().expect("s") * 1000 + ms.parse::<u64>().expect("ms")
        })
        .sum();
    let expected = theirs.len() as u64 * 1024 * 1000 / u64::from(rate);
    let n = segments(&audio).len() as u64;
    assert!(
        total_ms.abs_diff(expected) <= n,
        "{total_ms} ms of {expected} ms"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rtmp_aac_is_copied_at_the_sources_rate_and_channels() {
    let app = TestApp::start(|c| c.live.passthrough_only = true).await;
    let base = rtmp_listener(&app).await;
    let dir = tempfile::tempdir().expect("tempdir");
    for (rate, channels) in [(44_100, 1), (48_000, 2), (44_100, 2), (48_000, 1)] {
        let file = aac_file(dir.path(), rate, channels);
        let (id, token) = app.new_stream().await;
        publish_to_the_end(&app, &id, &file, &format!("{base}/{id}_{token}")).await;
        check_copied(&app, &id, &file, rate, channels).await;
    }
}
