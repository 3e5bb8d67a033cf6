//! Live captions end to end with a real speech-to-text model: espeak-ng
//! speaks a known sentence, FFmpeg muxes it with test video, `onair publish`
//! sends it, and the local OpenAI-compatible server (Whisper base) hears it.
//! The words must reach a viewer's events socket, the live WebVTT rendition,
//! the stored transcript and the recording's captions. A failing endpoint
//! must not stall the video.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use app::protocol::events::{ClientRole, ServerEvent};
use futures::StreamExt;
use tokio_tungstenite::tungstenite::Message;

use crate::events::{hello, open, send};
use onair_server::transcribe::AsrConfig;

use crate::support::{AiServer, TestApp};

/// An OpenAI-compatible transcription endpoint, as `--asr-url` and
/// `--asr-key` make it (model `whisper-1`).
fn endpoint(url: &str, key: Option<&str>) -> onair_server::transcribe::Endpoint {
    onair_server::transcribe::Endpoint {
        url: url.trim_end_matches('/').to_string(),
        model: "whisper-1".into(),
        key: key.map(str::to_string),
        provider: onair_server::transcribe::Provider::Openai,
        azure_deployment: "whisper".into(),
        azure_api_version: "2024-06-01".into(),
    }
}

const SENTENCE: &str =
    "The quick brown fox jumps over the lazy dog. Please summarize the weather report for tomorrow.";
/// Words Whisper base reliably hears in espeak-ng's voice (shared/MODELS.md).
const KEY_WORDS: &[&str] = &["fox", "lazy", "dog", "weather", "tomorrow"];

/// 640x360 H.264 + AAC with the sentence spoken after 1 s of silence, then
/// silence until `seconds`.
fn speech_video(dir: &Path, seconds: u32) -> PathBuf {
    let wav = dir.join("speech.wav");
    let out = Command::new("espeak-ng")
        .args(["-v", "en-us", "-s", "150", "-w"])
        .arg(&wav)
        .arg(SENTENCE)
        .output()
        .expect("espeak-ng runs (make deps-test installs it)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mp4 = dir.join("speech.mp4");
    let t = seconds.to_string();
    let inputs = [
        "-f",
        "lavfi",
        "-i",
        "testsrc2=size=640x360:rate=30",
        "-i",
        wav.to_str().expect("utf8"),
        "-filter:a",
        "adelay=1000:all=1,apad,aresample=48000",
        "-t",
        &t,
    ];
    let args = [
        &inputs[..],
        crate::publish::H264_AAC,
        &[mp4.to_str().expect("utf8")],
    ]
    .concat();
    onair_server::media::testsrc::ffmpeg(&args).expect("mux the speech with video");
    mp4
}

fn publish(app: &TestApp, id: &str, token: &str, file: &Path) -> tokio::process::Child {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_onair"))
        .args([
            "publish",
            "--server",
            &format!("http://{}", app.addr),
            "--stream",
            id,
            "--token",
            token,
            "--realtime",
        ])
        .arg(file)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("onair publish runs")
}

fn heard(text: &str) -> usize {
    let lower = text.to_lowercase();
    KEY_WORDS.iter().filter(|w| lower.contains(*w)).count()
}

/// Cues of a WebVTT file: (start ms, end ms, text).
fn cues(vtt: &str) -> Vec<(i64, i64, String)> {
    assert!(vtt.starts_with("WEBVTT"), "{vtt}");
    let ts = |s: &str| -> i64 {
        let (hms, ms) = s.trim().split_once('.').expect("hh:mm:ss.mmm");
        let p: Vec<i64> = hms.split(':').map(|x| x.parse().expect("number")).collect();
        ((p[0] * 60 + p[1]) * 60 + p[2]) * 1000 + ms.parse::<i64>().expect("ms")
    };
    vtt.split("\n\n")
        .filter_map(|block| {
            let mut lines = block.lines();
            let timing = lines.find(|l| l.contains("-->"))?;
            let (a, b) = timing.split_once("-->")?;
            Some((ts(a), ts(b), lines.collect::<Vec<_>>().join(" ")))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn spoken_words_become_captions_a_webvtt_track_a_transcript_and_vod_captions() {
    let ai = AiServer::start();
    let app = TestApp::start(|c| {
        c.asr = Some(AsrConfig {
            language: Some("en".into()),
            ..AsrConfig::new(endpoint(&ai.url, Some(&ai.key)))
        })
    })
    .await;
    let (id, token) = app.new_stream().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = speech_video(dir.path(), 12);

    // A viewer is in the room before the stream starts.
    let mut ws = open(&app, &id, None, None).await;
    send(&mut ws, &hello(ClientRole::Viewer, Some("viewer-1"), None)).await;
    let captions = tokio::spawn(async move {
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        while let Ok(Some(Ok(msg))) = tokio::time::timeout_at(deadline, ws.next()).await {
            if let Message::Text(t) = msg {
                let env: app::protocol::events::Envelope = serde_json::from_str(&t).expect("event");
                if let ServerEvent::Caption(c) = env.event {
                    seen.push(c.clone());
                    if heard(
                        &seen
                            .iter()
                            .map(|c| c.text.as_str())
                            .collect::<Vec<_>>()
                            .join(" "),
                    ) >= 3
                    {
                        break;
                    }
                }
            }
        }
        seen
    });

    let http = reqwest::Client::new();
    let mut child = publish(&app, &id, &token, &file);
    // While live: the master lists the captions, and the subtitle playlist exists.
    let master_url = app.url(&format!("/live/{id}/master.m3u8"));
    let started = Instant::now();
    let master = loop {
        if let Ok(r) = http.get(&master_url).send().await {
            if r.status() == 200 {
                break r.text().await.expect("body");
            }
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no live master playlist"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        master.contains("#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID=\"subs\"")
            && master.contains("URI=\"subs/index.m3u8\"")
            && master.contains("SUBTITLES=\"subs\""),
        "{master}"
    );
    // Subtitle segments follow the audio ones and carry the words.
    let subs_url = app.url(&format!("/live/{id}/subs/index.m3u8"));
    let mut live_cues = Vec::new();
    let mut fetched = std::collections::HashSet::new();
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(60) && heard(&live_cues.join(" ")) < 3 {
        let playlist = match http.get(&subs_url).send().await {
            Ok(r) if r.status() == 200 => r.text().await.expect("body"),
            _ => break, // the stream ended and left the origin
        };
        assert!(playlist.starts_with("#EXTM3U\n"), "{playlist}");
        for uri in playlist.lines().filter(|l| l.ends_with(".vtt")) {
            if !fetched.insert(uri.to_string()) {
                continue;
            }
            let res = http
                .get(app.url(&format!("/live/{id}/subs/{uri}")))
                .send()
                .await
                .expect("segment");
            assert_eq!(res.status(), 200);
            assert!(res.headers()["content-type"]
                .to_str()
                .unwrap_or("")
                .starts_with("text/vtt"));
            let vtt = res.text().await.expect("vtt");
            assert!(
                vtt.starts_with("WEBVTT\nX-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00.000\n"),
                "{vtt}"
            );
            live_cues.extend(cues(&vtt).into_iter().map(|c| c.2));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(
        heard(&live_cues.join(" ")) >= 3,
        "the live WebVTT rendition carries the words: {live_cues:?}"
    );

    let status = child.wait().await.expect("publish finishes");
    assert!(status.success());

    // A caption event reached the viewer with the words, dated on the program clock.
    let seen = captions.await.expect("caption task");
    let said = seen
        .iter()
        .map(|c| c.text.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    assert!(heard(&said) >= 3, "captions on the socket: {seen:?}");
    let now = onair_server::realtime::now_ms();
    assert!(
        seen.iter()
            .all(|c| c.start_ms < c.end_ms && (now - c.start_ms).abs() < 120_000),
        "caption times are Unix ms of when it was said: {seen:?}"
    );

    // The transcript is stored in media order with the words.
    let started = Instant::now();
    let rows = loop {
        let rows = app
            .state
            .db
            .stream_transcript(&id)
            .await
            .expect("transcript");
        let text = rows
            .iter()
            .map(|r| r.text.as_str())
            .collect::<Vec<_>>()
            .join(" ");
        // Windows are stored as their transcriptions come back: wait for
        // the one that covers the end of the speech too.
        let through_end = rows.iter().any(|r| heard(&r.text) > 0 && r.end_ms >= 6_000);
        if (heard(&text) >= 3 && through_end) || started.elapsed() > Duration::from_secs(30) {
            break rows;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let text = rows
        .iter()
        .map(|r| r.text.as_str())
        .collect::<Vec<_>>()
        .join(" ");
    assert!(heard(&text) >= 3, "stored transcript: {text:?}");
    assert!(rows.windows(2).all(|w| w[0].start_ms <= w[1].start_ms));
    // Spoken from 1 s to about 7.5 s of media time: the lines say so.
    let first = rows
        .iter()
        .find(|r| heard(&r.text) > 0)
        .expect("a line with a word");
    assert!(first.start_ms <= 1_000 && first.end_ms > 1_000, "{rows:?}");
    let last = rows
        .iter()
        .rev()
        .find(|r| heard(&r.text) > 0)
        .expect("a line with a word");
    assert!(last.end_ms >= 6_000 && last.start_ms < 8_000, "{rows:?}");

    // The recording keeps them: its master lists the captions, which parse.
    let started = Instant::now();
    let vod_master = loop {
        if let Ok(r) = http
            .get(app.url(&format!("/vod/{id}/master.m3u8")))
            .send()
            .await
        {
            if r.status() == 200 {
                break r.text().await.expect("body");
            }
        }
        assert!(started.elapsed() < Duration::from_secs(60), "no VOD");
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(
        vod_master.contains("TYPE=SUBTITLES") && vod_master.contains("SUBTITLES=\"subs\""),
        "{vod_master}"
    );
    let index = http
        .get(app.url(&format!("/vod/{id}/subs/index.m3u8")))
        .send()
        .await
        .expect("subs playlist")
        .text()
        .await
        .expect("body");
    assert!(
        index.contains("#EXT-X-PLAYLIST-TYPE:VOD")
            && index.contains("captions.vtt")
            && index.contains("#EXT-X-ENDLIST"),
        "{index}"
    );
    let vtt = http
        .get(app.url(&format!("/vod/{id}/subs/captions.vtt")))
        .send()
        .await
        .expect("captions")
        .text()
        .await
        .expect("body");
    let vod_cues = cues(&vtt);
    assert!(
        heard(
            &vod_cues
                .iter()
                .map(|c| c.2.as_str())
                .collect::<Vec<_>>()
                .join(" ")
        ) >= 3,
        "{vtt}"
    );
    assert!(
        vod_cues.iter().all(|c| c.0 < c.1 && c.1 <= 13_000),
        "{vod_cues:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_failing_transcription_endpoint_never_stalls_the_video() {
    // An endpoint that answers every request with a 500.
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = calls.clone();
    let router = axum::Router::new().route(
        "/v1/audio/transcriptions",
        axum::routing::post(move || {
            let counter = counter.clone();
            async move {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                (
                    axum::http::StatusCode::INTERNAL_SERVER_ERROR,
                    axum::Json(serde_json::json!({"error": {"message": "overloaded", "type": "server_error", "param": null, "code": null}})),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router).await });

    let app = TestApp::start(|c| {
        c.asr = Some(AsrConfig {
            retries: 1,
            ..AsrConfig::new(endpoint(&format!("http://{addr}/v1"), None))
        })
    })
    .await;
    let (id, token) = app.new_stream().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = speech_video(dir.path(), 10);
    let mut child = publish(&app, &id, &token, &file);
    let status = child.wait().await.expect("publish finishes");
    assert!(status.success());
    let recording = {
        let http = reqwest::Client::new();
        let started = Instant::now();
        loop {
            let r = http
                .get(app.url(&format!("/vod/{id}/master.m3u8")))
                .send()
                .await
                .expect("vod");
            if r.status() == 200 {
                break r.text().await.expect("body");
            }
            assert!(started.elapsed() < Duration::from_secs(60), "no VOD");
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    };
    // The whole stream was packaged and recorded despite the failures.
    let row = app
        .state
        .db
        .get_recording(&id)
        .await
        .expect("db")
        .expect("a recording");
    assert!(row.duration_ms >= 8_000, "{row:?}");
    // Windows with speech were tried (and retried), then skipped.
    let n = calls.load(std::sync::atomic::Ordering::SeqCst);
    assert!(n >= 2, "{n} requests");
    assert!(
        !recording.contains("TYPE=SUBTITLES"),
        "no transcript, no captions: {recording}"
    );
    let metrics = reqwest::get(app.url("/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("body");
    let failed = metrics
        .lines()
        .find(|l| l.starts_with("onair_asr_windows_total{result=\"failed\"}"))
        .unwrap_or_else(|| panic!("a failed-window counter: {metrics}"));
    assert!(
        failed
            .split_whitespace()
            .last()
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
            >= 1.0,
        "{failed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_speaks_openai_and_azure_and_a_bad_key_is_not_retried() {
    use onair_server::transcribe::{retryable, Endpoint, OpenAiClient, Provider};
    let ai = AiServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let wav = dir.path().join("speech.wav");
    let out = Command::new("espeak-ng")
        .args(["-v", "en-us", "-s", "150", "-w"])
        .arg(&wav)
        .arg(SENTENCE)
        .output()
        .expect("espeak-ng runs");
    assert!(out.status.success());
    let bytes = std::fs::read(&wav).expect("wav");
    let openai = Endpoint {
        url: ai.url.clone(),
        model: "whisper-1".into(),
        key: Some(ai.key.clone()),
        provider: Provider::Openai,
        azure_deployment: String::new(),
        azure_api_version: String::new(),
    };
    let text = OpenAiClient::new(&openai)
        .transcribe(bytes.clone(), "whisper-1", Some("en"))
        .await
        .expect("OpenAI-style transcription");
    assert!(heard(&text) >= 3, "{text}");
    // Azure: the resource URL, a deployment and an api-version.
    let azure = Endpoint {
        url: ai.url.trim_end_matches("/v1").to_string(),
        provider: Provider::Azure,
        azure_deployment: "whisper".into(),
        azure_api_version: "2024-06-01".into(),
        ..openai.clone()
    };
    let text = OpenAiClient::new(&azure)
        .transcribe(bytes.clone(), "whisper-1", None)
        .await
        .expect("Azure-style transcription");
    assert!(heard(&text) >= 3, "{text}");
    // A wrong key is refused, and refusals are not worth retrying.
    let wrong = Endpoint {
        key: Some("not-the-key".into()),
        ..openai
    };
    let err = OpenAiClient::new(&wrong)
        .transcribe(bytes, "whisper-1", None)
        .await
        .expect_err("401");
    assert!(err.to_string().contains("401"), "{err}");
    assert!(!retryable(&err));
}
