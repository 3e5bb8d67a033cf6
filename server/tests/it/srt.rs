//! SRT ingest with the FFmpeg CLI (Debian's, built with libsrt) as the
//! caller: `-f mpegts "srt://HOST:PORT?streamid=#!::r=<key>,m=publish"`.

use std::process::Stdio;
use std::time::{Duration, Instant};

use onair_server::ingest::srt::{serve, SrtConfig, SrtListener};
use onair_server::media::testsrc::probe;

use onair_server::ingest::rtmp::{serve as rtmp_serve, RtmpConfig};

use crate::lossy::{bind_tcp_in, bind_udp_in, LossyLink, SERVER_IP};
use crate::publish::make_file;
use crate::rtmp::{
    assert_one_new_period_that_plays, assert_plays_as_sent, assert_refused_and_first_undisturbed,
    metrics, refusal_count, refusal_counted, state, video_frames, wait_for_state, OBS_LIKE, QUICK,
};
use crate::support::TestApp;

/// Starts the SRT listener of `app` on `socket` (a free UDP port unless the
/// caller bound one), with the encoder keys `onair serve` gives it.
fn srt_listener_on(app: &TestApp, socket: std::net::UdpSocket, latency_ms: u64) -> SrtListener {
    let cfg = SrtConfig {
        keys: Some(app.state.accounts.playback.clone()),
        latency: Duration::from_millis(latency_ms),
        ..SrtConfig::default()
    };
    serve(socket, app.state.ingest.clone(), cfg).expect("srt listener")
}

fn srt_listener(app: &TestApp) -> SrtListener {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    srt_listener_on(app, socket, 120)
}

/// `srt://ADDR?streamid=…` with the resource `r` (and `extra` query
/// parameters); `linger` lets the caller deliver its last packets before it
/// closes, as an encoder stopping its stream does.
fn srt_url(addr: impl std::fmt::Display, resource: &str, extra: &str) -> String {
    // FFmpeg takes the stream id as written (it does not URL-decode it).
    format!("srt://{addr}?streamid=#!::r={resource},m=publish&pkt_size=1316&linger=3{extra}")
}

/// `ffmpeg -re -i FILE -c copy -f mpegts URL`, optionally inside a network
/// namespace.
fn ffmpeg_srt(
    netns: Option<&str>,
    file: &std::path::Path,
    url: &str,
    extra: &[&str],
) -> tokio::process::Command {
    ffmpeg_copy(netns, file, extra, "mpegts", url)
}

/// `ffmpeg -re -i FILE -c copy EXTRA -f FORMAT URL`, optionally inside a
/// network namespace.
fn ffmpeg_copy(
    netns: Option<&str>,
    file: &std::path::Path,
    extra: &[&str],
    format: &str,
    url: &str,
) -> tokio::process::Command {
    let mut cmd = match netns {
        Some(ns) => {
            let mut c = tokio::process::Command::new("ip");
            c.args(["netns", "exec", ns, "ffmpeg"]);
            c
        }
        None => tokio::process::Command::new("ffmpeg"),
    };
    cmd.args(["-hide_banner", "-v", "error", "-re", "-i"])
        .arg(file)
        .args(["-c", "copy"])
        .args(extra)
        .args(["-f", format, url])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

async fn publish_to_the_end(app: &TestApp, id: &str, file: &std::path::Path, url: &str) {
    let out = ffmpeg_srt(None, file, url, &[])
        .output()
        .await
        .expect("ffmpeg runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for_state(app, id, "ended").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ffmpeg_publishes_over_srt_and_it_plays_for_as_long_as_the_input() {
    let app = TestApp::start(|c| c.live.passthrough_only = true).await;
    let srt = srt_listener(&app);
    let (id, token) = app.new_stream().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = make_file(dir.path(), "obs.mp4", 6, OBS_LIKE);
    let input_frames = video_frames(file.to_str().expect("utf8"));

    let url = srt_url(srt.local_addr(), &format!("{id}_{token}"), "");
    publish_to_the_end(&app, &id, &file, &url).await;

    assert_plays_as_sent(&app, &id, input_frames);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srt_refusals_are_clear_and_leave_other_streams_alone() {
    let app = TestApp::start(|c| c.live.passthrough_only = true).await;
    let srt = srt_listener(&app);
    let addr = srt.local_addr();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = make_file(dir.path(), "long.mp4", 20, QUICK);
    let (id, token) = app.new_stream().await;
    let key = format!("{id}_{token}");

    // A publisher that stays live during the refusals below.
    let mut first = ffmpeg_srt(None, &file, &srt_url(addr, &key, ""), &[])
        .spawn()
        .expect("ffmpeg");
    wait_for_state(&app, &id, "live").await;

    let refused = |url: String, extra: &'static [&'static str]| {
        let file = file.clone();
        async move {
            let out = ffmpeg_srt(None, &file, &url, extra)
                .output()
                .await
                .expect("ffmpeg");
            assert!(!out.status.success(), "{url} was accepted");
            String::from_utf8_lossy(&out.stderr).into_owned()
        }
    };
    // Wrong keys: a wrong token, an unknown stream: SRT's 1401.
    for bad in [
        format!("{id}_{}", "0".repeat(64)),
        format!("nosuchstream_{token}"),
    ] {
        refused(srt_url(addr, &bad, ""), &["-t", "2"]).await;
    }
    // A second publisher on a live stream: 1409.
    refused(srt_url(addr, &key, ""), &["-t", "2"]).await;
    // A stream id that is not in the access-control form: 1400.
    let plain = format!("srt://{addr}?streamid={key}&pkt_size=1316");
    refused(plain, &["-t", "2"]).await;
    // FLV instead of MPEG-TS, on another stream: let in, then cut off.
    let (other, other_token) = app.new_stream().await;
    let flv = ffmpeg_srt(
        None,
        &file,
        &srt_url(addr, &format!("{other}_{other_token}"), ""),
        &["-t", "4", "-f", "flv"],
    )
    .output()
    .await
    .expect("ffmpeg");
    drop(flv);

    assert_refused_and_first_undisturbed(
        &app,
        &id,
        "srt",
        &["wrong_key", "already_publishing", "protocol"],
        &mut first,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_srt_publisher_over_the_bitrate_limit_is_cut_off() {
    let app = TestApp::start(|c| {
        c.live.passthrough_only = true;
        c.ingest.max_bitrate = 100_000;
    })
    .await;
    let srt = srt_listener(&app);
    let dir = tempfile::tempdir().expect("tempdir");
    // About 1 Mbit/s: ten times the limit.
    let file = make_file(
        dir.path(),
        "fat.mp4",
        6,
        &[
            "-pix_fmt",
            "yuv420p",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-b:v",
            "1M",
            "-g",
            "30",
            "-c:a",
            "aac",
        ],
    );
    let (id, token) = app.new_stream().await;
    let _ = ffmpeg_srt(
        None,
        &file,
        &srt_url(srt.local_addr(), &format!("{id}_{token}"), ""),
        &[],
    )
    .output()
    .await
    .expect("ffmpeg");
    let text = metrics(&app).await;
    assert!(
        refusal_counted(&text, "srt", "bitrate"),
        "not counted:\n{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_srt_encoder_that_reconnects_continues_the_same_stream_as_a_new_period() {
    let app = TestApp::start(|c| c.live.passthrough_only = true).await;
    let srt = srt_listener(&app);
    let dir = tempfile::tempdir().expect("tempdir");
    let file = make_file(dir.path(), "in.mp4", 4, QUICK);
    let (id, token) = app.new_stream().await;
    let url = srt_url(srt.local_addr(), &format!("{id}_{token}"), "");

    // The encoder dies mid-stream (no SRT shutdown)...
    let mut first = ffmpeg_srt(None, &file, &url, &[]).spawn().expect("ffmpeg");
    wait_for_state(&app, &id, "live").await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    first.kill().await.expect("kill");
    // ...and comes back with the same key. Until libsrt notices the silent
    // connection (its peer idle time-out), the stream still has a publisher
    // and the caller is refused (1409); encoders retry, and so does this.
    let until = Instant::now() + Duration::from_secs(25);
    loop {
        let out = ffmpeg_srt(None, &file, &url, &[])
            .output()
            .await
            .expect("ffmpeg");
        if out.status.success() {
            break;
        }
        assert!(
            Instant::now() < until,
            "never taken back: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(state(&app, &id).await, "live", "not interrupted meanwhile");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    wait_for_state(&app, &id, "ended").await;

    assert_one_new_period_that_plays(&app, &id).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_encoder_panel_gives_an_srt_url_whose_passphrase_is_the_stream_key() {
    use crate::accounts::{create_stream, mint};
    let app = TestApp::start(|c| c.live.passthrough_only = true).await;
    let srt = srt_listener(&app);
    let (_, alice) = mint(&app, "alice", "broadcaster").await;
    let stream = create_stream(&app, &alice, "SRT show", "public").await;
    let id = stream["id"].as_str().expect("id").to_string();
    let info: serde_json::Value = app
        .http
        .get(app.url(&format!("/api/v1/streams/{id}/encoder")))
        .header("cookie", format!("onair_session={alice}"))
        .send()
        .await
        .expect("alice")
        .json()
        .await
        .expect("json");
    let port = srt.local_addr().port();
    let srt_url_shown = info["srt_url"].as_str().expect("an SRT URL").to_string();
    assert_eq!(
        srt_url_shown,
        format!("srt://127.0.0.1:{port}?streamid=#!::r={id},m=publish"),
        "{info}"
    );
    assert_eq!(info["srt_loopback_only"], true);
    let key = info["stream_key"].as_str().expect("key").to_string();

    let dir = tempfile::tempdir().expect("tempdir");
    let file = make_file(dir.path(), "in.mp4", 2, QUICK);
    let addr = srt.local_addr();
    // A wrong passphrase is refused by the SRT handshake itself, and
    // counted as a wrong key once the server sees the handshake fail.
    let before = refusal_count(&metrics(&app).await, "srt", "wrong_key");
    let wrong = format!("{id}_{}", "f".repeat(32));
    let out = ffmpeg_srt(
        None,
        &file,
        &srt_url(addr, &id, &format!("&passphrase={wrong}")),
        &[],
    )
    .output()
    .await
    .expect("ffmpeg");
    assert!(!out.status.success(), "a wrong passphrase was accepted");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let now = refusal_count(&metrics(&app).await, "srt", "wrong_key");
        if now > before {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the wrong passphrase was not counted ({before} before, {now} now)"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The key as the passphrase publishes, encrypted.
    publish_to_the_end(
        &app,
        &id,
        &file,
        &srt_url(addr, &id, &format!("&passphrase={key}")),
    )
    .await;
    let summary = probe(&app.url(&format!("/live/{id}/master.m3u8"))).expect("plays");
    assert!(summary.duration_s > 1.0, "{summary:?}");
}

/// The MD5 of every decoded video frame of `input`, in order.
fn frame_md5s(input: &str) -> Vec<String> {
    let out = std::process::Command::new("ffmpeg")
        .args(["-hide_banner", "-v", "error", "-i", input])
        .args(["-map", "0:v:0", "-f", "framemd5", "-"])
        .output()
        .expect("ffmpeg");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit(',').next().map(|h| h.trim().to_string()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srt_delivers_every_frame_over_a_link_that_loses_five_percent() {
    let link = match LossyLink::new("srt") {
        Ok(l) => l,
        Err(e) => {
            eprintln!(
                "SKIPPED srt_delivers_every_frame_over_a_link_that_loses_five_percent: \
                 this test makes network namespaces and a lossy link, which needs root \
                 (CAP_NET_ADMIN): {e}"
            );
            return;
        }
    };
    eprintln!("the link: {}", link.how);
    // SRT sends its shutdown once, and a link that loses 5% may lose it: the
    // server then notices the silence after libsrt's 5 s peer idle time-out,
    // and the stream is `interrupted` after the grace (1 s here) instead of
    // `ended`. Either way the input is closed and the playlists end; what
    // this test measures is the media.
    let app = TestApp::start(|c| {
        c.live.passthrough_only = true;
        c.ingest.resume_grace = Duration::from_secs(1);
    })
    .await;
    // SRT latency 8× the 80 ms round trip (the rule of thumb is at least 4×).
    let latency_ms = 640;
    let server_socket = bind_udp_in(&link.server_ns, "0.0.0.0:0");
    let srt_port = server_socket.local_addr().expect("addr").port();
    let _srt = srt_listener_on(&app, server_socket, latency_ms);
    // Plain TCP beside it: RTMP, on the same link.
    let rtmp = bind_tcp_in(&link.server_ns, "0.0.0.0:0");
    let rtmp_port = rtmp.local_addr().expect("addr").port();
    let cfg = RtmpConfig {
        keys: Some(app.state.accounts.playback.clone()),
        ..RtmpConfig::default()
    };
    let rtmp_task = tokio::spawn(rtmp_serve(rtmp, app.state.ingest.clone(), cfg));

    let dir = tempfile::tempdir().expect("tempdir");
    // 2 Mbit/s, about 190 SRT packets a second: some 100 lost each way.
    let file = make_file(
        dir.path(),
        "in.ts",
        10,
        &[
            "-pix_fmt",
            "yuv420p",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-b:v",
            "2M",
            "-g",
            "30",
            "-c:a",
            "aac",
            "-f",
            "mpegts",
        ],
    );
    let sent = frame_md5s(file.to_str().expect("utf8"));
    assert_eq!(sent.len(), 300, "the input has 10 s at 30 fps");

    let (id, token) = app.new_stream().await;
    let url = srt_url(
        format!("{SERVER_IP}:{srt_port}"),
        &format!("{id}_{token}"),
        &format!("&latency={}", latency_ms * 1000),
    );
    // Linger long enough for the last packets' retransmissions.
    let url = url.replace("linger=3", "linger=10");
    let began = Instant::now();
    let out = ffmpeg_srt(Some(&link.caller_ns), &file, &url, &[])
        .output()
        .await
        .expect("ffmpeg");
    let srt_took = began.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_until_over(&app, &id).await;
    let played = frame_md5s(&app.url(&format!("/live/{id}/master.m3u8")));
    assert_eq!(played.len(), sent.len(), "every frame arrived");
    let differing = sent.iter().zip(&played).filter(|(a, b)| a != b).count();
    assert_eq!(differing, 0, "every frame is the input's, bit for bit");

    // The same input over RTMP (TCP) on the same link. TCP loses nothing
    // either, but every loss stalls the byte stream for a retransmission,
    // and its window shrinks: on 5% loss and an 80 ms round trip it
    // carries well under the 2 Mbit/s the input needs in real time.
    let (id, token) = app.new_stream().await;
    let began = Instant::now();
    let mut tcp = ffmpeg_copy(
        Some(&link.caller_ns),
        &file,
        &[],
        "flv",
        &format!("rtmp://{SERVER_IP}:{rtmp_port}/live/{id}_{token}"),
    );
    let out = tokio::time::timeout(Duration::from_secs(120), tcp.output())
        .await
        .expect("RTMP over the lossy link finished within 2 minutes")
        .expect("ffmpeg");
    let tcp_took = began.elapsed();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_until_over(&app, &id).await;
    let played = frame_md5s(&app.url(&format!("/live/{id}/master.m3u8")));
    let tcp_same = sent.iter().zip(&played).filter(|(a, b)| a == b).count();
    eprintln!(
        "over the same link ({}): 10 s of 2 Mbit/s media took {:.1} s to send over SRT \
         (latency {latency_ms} ms), {} of 300 frames bit for bit; {:.1} s over RTMP/TCP, \
         {tcp_same} of 300 frames bit for bit",
        link.how,
        srt_took.as_secs_f64(),
        sent.len(),
        tcp_took.as_secs_f64(),
    );
    rtmp_task.abort();
    drop(link);
}

/// Waits until the stream is over: `ended`, or `interrupted` if the link
/// lost the encoder's goodbye (see above).
async fn wait_until_over(app: &TestApp, id: &str) {
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let now = state(app, id).await;
        if now == "ended" || now == "interrupted" {
            return;
        }
        assert!(Instant::now() < until, "stream {id} still {now}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_srt_publish_plays_over_whep() {
    use crate::whep::{assert_played, peer, report_of};
    let app = TestApp::start(|c| c.live.passthrough_only = true).await;
    let endpoint = crate::whip::whip_endpoint(&app, Default::default());
    let srt = srt_listener(&app);
    let (id, token) = app.new_stream().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = make_file(dir.path(), "obs.mp4", 15, OBS_LIKE);
    let url = srt_url(srt.local_addr(), &format!("{id}_{token}"), "");
    let mut encoder = ffmpeg_srt(None, &file, &url, &[]).spawn().expect("ffmpeg");
    wait_for_state(&app, &id, "live").await;

    // MPEG-TS over SRT: the H.264 passthrough rendition and the AAC
    // encoded to Opus reach an aiortc WHEP viewer.
    let whep = app.url(&format!("/api/v1/streams/{id}/whep"));
    let report = report_of(peer(&["--mode", "whep", "--url", &whep, "--seconds", "4"])).await;
    assert_played(&report, (640, 360));
    assert_eq!(endpoint.viewer_count(), 0, "its DELETE freed it");
    let _ = encoder.kill().await;
}
