//! FFmpeg as a real RTMP client, publishing to a minimal blocking TCP server
//! on 127.0.0.1 that drives `onair_rtmp::Session`. The media it delivers is
//! checked against ffprobe's reading of the same input encoded to a file.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use onair_rtmp::{
    status, Amf0Value, AudioCodec, AudioPacketKind, Config, Error, Event, Session, VideoCodec,
    VideoPacketKind,
};

/// What the server saw on one connection.
struct ServerLog {
    events: Vec<Event>,
    written: Vec<u8>,
    error: Option<Error>,
}

/// Accepts one connection and serves it until the client closes. Publishes
/// with `key` are accepted, others refused with `NetStream.Publish.BadName`.
fn serve_one(listener: TcpListener, key: &'static str) -> thread::JoinHandle<ServerLog> {
    thread::spawn(move || {
        // Bounded waits so a broken client cannot hang the test run.
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut sock: TcpStream = loop {
            match listener.accept() {
                Ok((s, _)) => break s,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(Instant::now() < deadline, "no client connected");
                    thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("accept: {e}"),
            }
        };
        sock.set_nonblocking(false).expect("blocking socket");
        sock.set_read_timeout(Some(Duration::from_secs(30)))
            .expect("read timeout");
        let mut session = Session::new(Config::default(), Instant::now());
        let mut log = ServerLog {
            events: Vec::new(),
            written: Vec::new(),
            error: None,
        };
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            let n = match sock.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                // A refused client may reset the connection.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
                Err(e) => panic!("read: {e}"),
            };
            let result = session
                .handle_input(&buf[..n])
                .and_then(|()| session.handle_timeout(Instant::now()));
            while let Some(ev) = session.poll_event() {
                if let Event::Publish { stream_key, .. } = &ev {
                    if stream_key == key {
                        session.accept_publish().expect("pending publish");
                    } else {
                        session
                            .reject_publish(status::PUBLISH_BAD_NAME, "wrong stream key")
                            .expect("pending publish");
                    }
                }
                log.events.push(ev);
            }
            let out = session.take_output();
            log.written.extend_from_slice(&out);
            if sock.write_all(&out).is_err() {
                break;
            }
            if let Err(e) = result {
                log.error = Some(e);
                break;
            }
        }
        log
    })
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .expect("ffmpeg/ffprobe run (Debian's ffmpeg package, installed by `make deps`)");
    out
}

const INPUT: [&str; 12] = [
    "-f",
    "lavfi",
    "-i",
    "testsrc2=size=320x240:rate=30",
    "-f",
    "lavfi",
    "-i",
    "sine",
    "-t",
    "3",
    "-c:v",
    "libx264",
];
const ENCODE: [&str; 10] = [
    "-preset", "veryfast", "-g", "30", "-bf", "2", "-c:a", "aac", "-f", "flv",
];

/// ffprobe's (dts, pts) of every packet of one stream of a file, in ms.
fn probe_packets(file: &Path, stream: &str) -> Vec<(i64, i64)> {
    let out = run(Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-select_streams",
            stream,
            "-show_entries",
            "packet=dts,pts",
            "-of",
            "csv=p=0",
        ])
        .arg(file));
    assert!(
        out.status.success(),
        "ffprobe: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            // csv order follows the -show_entries order in the output: pts,dts.
            let mut it = l
                .split(',')
                .map(|v| v.trim().parse::<i64>().expect("integer ms"));
            let pts = it.next().expect("pts");
            let dts = it.next().expect("dts");
            (dts, pts)
        })
        .collect()
}

#[test]
fn ffmpeg_publishes_h264_with_b_frames_and_aac() {
    let dir = std::env::temp_dir().join(format!("onair-rtmp-ffmpeg-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let reference = dir.join("reference.flv");

    // The same input and encoder settings, written to a file for ffprobe.
    let out = run(Command::new("ffmpeg")
        .args(["-v", "error", "-y"])
        .args(INPUT)
        .args(ENCODE)
        .arg(&reference));
    assert!(
        out.status.success(),
        "reference encode: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ref_video = probe_packets(&reference, "v");
    let ref_audio = probe_packets(&reference, "a");
    assert_eq!(ref_video.len(), 90, "3 s at 30 fps");

    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = serve_one(listener, "KEY");
    let out = run(Command::new("ffmpeg")
        .args(["-v", "warning", "-re"])
        .args(INPUT)
        .args(ENCODE)
        .arg(format!("rtmp://127.0.0.1:{port}/live/KEY")));
    let log = server.join().expect("server thread");
    assert!(
        out.status.success(),
        "ffmpeg publish failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(log.error, None, "the session never failed");

    let mut connect = None;
    let mut publish = None;
    let mut metadata = None;
    let mut avc_headers = Vec::new();
    let mut aac_headers = Vec::new();
    let mut frames = Vec::new();
    let mut keyframes = Vec::new();
    let mut audio = Vec::new();
    let mut end_of_sequence = 0;
    let mut unpublish = 0;
    for ev in &log.events {
        match ev {
            Event::Connect { app, tc_url, .. } => connect = Some((app.clone(), tc_url.clone())),
            Event::Publish { stream_key, .. } => publish = Some(stream_key.clone()),
            Event::Metadata(props) => metadata = Some(props.clone()),
            Event::Video(v) => {
                assert_eq!(v.codec, VideoCodec::Avc);
                assert!(!v.enhanced);
                match v.kind {
                    VideoPacketKind::SequenceHeader => avc_headers.push(v.data.clone()),
                    VideoPacketKind::CodedFrame => {
                        frames.push((v.dts_ms, v.pts_ms));
                        if v.frame_type.is_keyframe() {
                            keyframes.push(v.pts_ms);
                        }
                    }
                    VideoPacketKind::EndOfSequence => end_of_sequence += 1,
                    other => panic!("unexpected video packet {other:?}"),
                }
            }
            Event::Audio(a) => {
                assert_eq!(a.codec, AudioCodec::Aac);
                match a.kind {
                    AudioPacketKind::SequenceHeader => aac_headers.push(a.data.clone()),
                    AudioPacketKind::CodedFrame => audio.push(a.dts_ms),
                    other => panic!("unexpected audio packet {other:?}"),
                }
            }
            Event::Unpublish => unpublish += 1,
            Event::Pong { .. } => {}
        }
    }

    let (app, tc_url) = connect.expect("connect event");
    assert_eq!(app, "live");
    assert_eq!(
        tc_url.as_deref(),
        Some(format!("rtmp://127.0.0.1:{port}/live").as_str())
    );
    assert_eq!(publish.as_deref(), Some("KEY"));
    let metadata = metadata.expect("onMetaData");
    let field = |k: &str| {
        metadata
            .iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(field("width"), Some(Amf0Value::Number(320.0)));
    assert_eq!(field("height"), Some(Amf0Value::Number(240.0)));

    assert_eq!(avc_headers.len(), 1, "one AVC sequence header");
    assert_eq!(
        avc_headers[0].first(),
        Some(&1),
        "avcC configurationVersion 1"
    );
    assert_eq!(aac_headers.len(), 1, "one AAC AudioSpecificConfig");
    assert!(aac_headers[0].len() >= 2);
    assert_eq!(aac_headers[0][0] >> 3, 2, "AAC LC object type");

    // Every frame's DTS and PTS, as ffprobe reads them from the same encode.
    assert_eq!(frames, ref_video, "video (dts, pts) match ffprobe's");
    assert!(
        frames.iter().any(|(d, p)| p != d),
        "B-frames: composition offsets are not all zero"
    );
    let mut pts: Vec<i64> = frames.iter().map(|(_, p)| *p).collect();
    pts.sort_unstable();
    assert!(
        pts.windows(2).all(|w| w[0] < w[1]),
        "PTS strictly increasing in presentation order"
    );
    assert!(pts[pts.len() - 1] - pts[0] >= 2900, "video covers 3 s");
    assert_eq!(
        keyframes,
        vec![pts[0], pts[0] + 1000, pts[0] + 2000],
        "-g 30: a keyframe each second"
    );

    let ref_audio_dts: Vec<i64> = ref_audio.iter().map(|(d, _)| *d).collect();
    assert_eq!(audio, ref_audio_dts, "audio timestamps match ffprobe's");
    assert!(
        audio.len() >= 125,
        "~3 s of 1024-sample AAC frames at 44.1 kHz"
    );
    assert!(
        audio[audio.len() - 1] - audio[0] >= 2900,
        "audio covers 3 s"
    );

    assert_eq!(
        end_of_sequence, 1,
        "FFmpeg's flv muxer ends with an AVC end of sequence"
    );
    assert_eq!(unpublish, 1, "a clean unpublish");
    assert!(matches!(log.events.last(), Some(Event::Unpublish)));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn ffmpeg_with_a_wrong_key_is_refused_with_bad_name() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = serve_one(listener, "KEY");
    let out = run(Command::new("ffmpeg")
        .args(["-v", "warning"])
        .args(INPUT)
        .args(ENCODE)
        .arg(format!("rtmp://127.0.0.1:{port}/live/WRONG")));
    let log = server.join().expect("server thread");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "ffmpeg must fail: {stderr}");
    assert!(
        stderr.contains("wrong stream key"),
        "FFmpeg shows our reason: {stderr}"
    );
    let written = String::from_utf8_lossy(&log.written);
    assert!(
        written.contains("NetStream.Publish.BadName"),
        "the server wrote BadName"
    );
    assert!(log
        .events
        .iter()
        .any(|e| matches!(e, Event::Publish { stream_key, .. } if stream_key == "WRONG")));
    assert!(!log
        .events
        .iter()
        .any(|e| matches!(e, Event::Video(_) | Event::Audio(_))));
    assert_eq!(log.error, None);
}
