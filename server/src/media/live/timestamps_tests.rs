//! Timestamps through the live pipeline, read back by FFmpeg, for ordinary
//! encoder output: x264 with B-frames (presets with B-pyramids) and without,
//! 360p to 1080p, 24 to 60 fps. Each source is an MP4 made by the FFmpeg CLI
//! and remuxed to live Matroska by the code `onair publish` runs (Matroska
//! carries presentation times only, so the server works out decode times).
//!
//! Checked on what ffprobe reads from the output:
//! - every frame is presented exactly when the Matroska input says (90 kHz =
//!   90 ticks per ms, plus one constant offset), and within half a
//!   millisecond of the MP4 source;
//! - decode times strictly increase and never pass presentation times;
//! - each segment is one GOP, and the `EXTINF`s add up to the input's
//!   duration (a B-frame source once came out two to three times longer);
//! - with the ladder: the same media sequence number starts at the same
//!   presentation time in every rendition (audio within half an AAC frame),
//!   one `EXT-X-TARGETDURATION` for every rendition for the whole stream,
//!   `EXT-X-PROGRAM-DATE-TIME` on every segment, meaning the same media time
//!   in every rendition, and the master playlist appears only when every
//!   rendition has a whole segment, listing them all.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;

use super::tests::run_with;
use super::{LiveConfig, RunOptions, AUDIO_RENDITION};
use crate::media::demux::ChunkReader;
use crate::media::remux::Remuxer;
use crate::media::testsrc;
use crate::origin::{LiveStream, PlaylistQuery};

const CAPTURE_START: i64 = 1_795_300_000_000;

/// One encoder output to try.
struct Case {
    size: &'static str,
    fps: u32,
    /// Keyframe interval in frames.
    gop: u32,
    /// x264 arguments (preset, B-frames).
    x264: &'static [&'static str],
}

impl Case {
    fn name(&self) -> String {
        format!("{}@{} {}", self.size, self.fps, self.x264.join(" "))
    }
}

/// One packet as ffprobe reports it: `(pts, dts, keyframe)` in the stream's
/// time base (Matroska has no decode times: ffprobe guesses them, or not).
type Packet = (i64, Option<i64>, bool);

/// The video packets of `input` (decode order) and the stream's time base.
fn video_packets(input: &Path) -> (Vec<Packet>, (i64, i64)) {
    let path = input.to_str().expect("utf8 path");
    let json = testsrc::ffprobe_json(&[
        "-select_streams",
        "v:0",
        "-show_entries",
        "packet=pts,dts,flags:stream=time_base",
        path,
    ])
    .expect("ffprobe packets");
    let tb = json["streams"][0]["time_base"]
        .as_str()
        .and_then(|t| t.split_once('/'))
        .map(|(n, d)| (n.parse().expect("num"), d.parse().expect("den")))
        .expect("time base");
    let packets = json["packets"]
        .as_array()
        .expect("packets")
        .iter()
        .map(|p| {
            let int = |k: &str| p[k].as_i64().unwrap_or_else(|| panic!("{k} in {p}"));
            let key = p["flags"].as_str().is_some_and(|f| f.starts_with('K'));
            (int("pts"), p["dts"].as_i64(), key)
        })
        .collect();
    (packets, tb)
}

/// The first decoded audio frame's presentation time of `input`, in ms.
fn first_audio_ms(input: &Path) -> i64 {
    let json = testsrc::ffprobe_json(&[
        "-select_streams",
        "a:0",
        "-show_entries",
        "frame=pts_time",
        input.to_str().expect("utf8 path"),
    ])
    .expect("ffprobe audio");
    let t: f64 = json["frames"][0]["pts_time"]
        .as_str()
        .and_then(|t| t.parse().ok())
        .expect("an audio frame");
    (t * 1000.0).round() as i64
}

/// `ticks` of a `num/den` time base, in ticks of 1/`to` s (exact here).
fn rescale(ticks: i64, (num, den): (i64, i64), to: i64) -> i64 {
    let v = i128::from(ticks) * i128::from(num) * i128::from(to);
    let d = i128::from(den);
    i64::try_from((2 * v + d.signum() * d) / (2 * d)).expect("fits")
}

/// Makes the case's MP4 (3 s with AAC) and remuxes it to live Matroska as
/// `onair publish` does: the bytes the server receives.
fn make_source(dir: &Path, case: &Case) -> (std::path::PathBuf, Vec<u8>) {
    let mp4 = dir.join("source.mp4");
    let video = format!("testsrc2=size={}:rate={}", case.size, case.fps);
    let gop = case.gop.to_string();
    let mut args = vec![
        "-f",
        "lavfi",
        "-i",
        &video,
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000",
        "-t",
        "3",
        "-pix_fmt",
        "yuv420p",
        "-c:v",
        "libx264",
        "-g",
        &gop,
        "-keyint_min",
        &gop,
        "-sc_threshold",
        "0",
    ];
    args.extend_from_slice(case.x264);
    args.extend(["-c:a", "aac", "-shortest", mp4.to_str().expect("utf8 path")]);
    testsrc::ffmpeg(&args).expect("source");
    let mut remuxer = Remuxer::open(&mp4, 100).expect("remux");
    let mut mkv = Vec::new();
    while let Some(chunk) = remuxer.next_chunk().expect("chunk") {
        mkv.extend_from_slice(&chunk.bytes);
    }
    (mp4, mkv)
}

/// Feeds `data` in the chunks the Remuxer made of it, pausing `pause` after
/// each 32 KiB so that an observer sees the window grow.
fn feed_paced(data: Vec<u8>, pause: Duration) -> ChunkReader {
    let (tx, reader) = ChunkReader::channel(4);
    std::thread::spawn(move || {
        for piece in data.chunks(32 * 1024) {
            if tx
                .blocking_send(Bytes::copy_from_slice(piece).into())
                .is_err()
            {
                return;
            }
            std::thread::sleep(pause);
        }
    });
    reader
}

/// A rendition's init segment and every segment, as one file.
fn rendition_file(live: &LiveStream, name: &str, first_msn: u64, dir: &Path) -> std::path::PathBuf {
    let mut bytes = live.init(name, "init.mp4").expect("init").to_vec();
    let mut msn = first_msn;
    while let Some(seg) = live.segment(name, msn) {
        bytes.extend_from_slice(&seg);
        msn += 1;
    }
    let path = dir.join(format!("{name}.mp4"));
    std::fs::write(&path, bytes).expect("write");
    path
}

/// One segment with its init segment, as a file.
fn segment_file(live: &LiveStream, name: &str, msn: u64, dir: &Path) -> std::path::PathBuf {
    let mut bytes = live.init(name, "init.mp4").expect("init").to_vec();
    bytes.extend_from_slice(&live.segment(name, msn).expect("segment"));
    let path = dir.join(format!("{name}-{msn}.mp4"));
    std::fs::write(&path, bytes).expect("write");
    path
}

/// `(EXTINF ms, PROGRAM-DATE-TIME ms)` of each segment of a media playlist.
fn segments(text: &str) -> Vec<(u64, Option<i64>)> {
    let mut out = Vec::new();
    let mut date = None;
    for line in text.lines() {
        if let Some(d) = line.strip_prefix("#EXT-X-PROGRAM-DATE-TIME:") {
            let t = time::OffsetDateTime::parse(d, &time::format_description::well_known::Rfc3339)
                .expect("date");
            date = Some((t.unix_timestamp_nanos() / 1_000_000) as i64);
        } else if let Some(d) = line.strip_prefix("#EXTINF:") {
            let (s, ms) = d
                .trim_end_matches(',')
                .split_once('.')
                .expect("three decimals");
            let ms = s.parse::<u64>().expect("s") * 1000 + ms.parse::<u64>().expect("ms");
            out.push((ms, date.take()));
        }
    }
    out
}

fn target_duration(text: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix("#EXT-X-TARGETDURATION:"))
        .and_then(|t| t.parse().ok())
        .expect("EXT-X-TARGETDURATION")
}

/// Runs one case through the pipeline (passthrough only) and checks it.
fn check_passthrough(case: &Case) {
    let name = case.name();
    let dir = tempfile::tempdir().expect("tempdir");
    let (mp4, mkv) = make_source(dir.path(), case);
    let mkv_path = dir.path().join("sent.mkv");
    std::fs::write(&mkv_path, &mkv).expect("write");
    let (sent, sent_tb) = video_packets(&mkv_path);
    assert_eq!(
        sent_tb,
        (1, 1000),
        "{name}: Matroska's millisecond time base"
    );
    let (source, source_tb) = video_packets(&mp4);

    let live = LiveStream::new(Duration::from_secs(5));
    let cfg = LiveConfig {
        window_segments: 1000,
        passthrough_only: true,
        ..LiveConfig::default()
    };
    let opts = RunOptions {
        capture_start_ms: Some(CAPTURE_START),
        ..RunOptions::default()
    };
    run_with(feed_paced(mkv, Duration::ZERO), live.clone(), cfg, opts)
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let height = case.size.split_once('x').expect("size").1;
    let rendition = format!("{height}p");
    let out = rendition_file(&live, &rendition, 0, dir.path());
    let (got, got_tb) = video_packets(&out);
    assert_eq!(got_tb, (1, 90_000), "{name}");
    assert_eq!(got.len(), sent.len(), "{name}: every frame comes out");

    // Presented exactly when the input says, plus one constant offset.
    let offset = got[0].0 - sent[0].0 * 90;
    for (i, (g, s)) in got.iter().zip(&sent).enumerate() {
        assert_eq!(
            g.0 - s.0 * 90,
            offset,
            "{name}: frame {i} presented at {} ticks, sent at {} ms",
            g.0,
            s.0
        );
        assert_eq!(g.2, s.2, "{name}: frame {i} keyframe flag");
    }
    assert!(offset >= 0, "{name}: {offset}");
    // ... and within half a millisecond (Matroska's rounding) of the MP4.
    for (i, (g, s)) in got.iter().zip(&source).enumerate() {
        let from_start = |pts: i64, first: i64, tb| rescale(pts - first, tb, 90_000);
        let d = from_start(g.0, got[0].0, got_tb) - from_start(s.0, source[0].0, source_tb);
        assert!(d.abs() <= 45, "{name}: frame {i} is {d} ticks off the MP4");
    }
    // Decode times strictly increase and never pass presentation times.
    let dts: Vec<i64> = got
        .iter()
        .map(|g| g.1.expect("MP4 has decode times"))
        .collect();
    for (i, w) in dts.windows(2).enumerate() {
        assert!(
            w[1] > w[0],
            "{name}: dts of frame {} goes back: {w:?}",
            i + 1
        );
    }
    for (i, (g, d)) in got.iter().zip(&dts).enumerate() {
        assert!(
            *d <= g.0,
            "{name}: frame {i} decodes after it is shown: {g:?}"
        );
    }
    testsrc::decode(out.to_str().expect("utf8 path")).unwrap_or_else(|e| panic!("{name}: {e}"));

    // Audio sits where the input's does, relative to the video.
    let audio = rendition_file(&live, AUDIO_RENDITION, 0, dir.path());
    let av_in = first_audio_ms(&mkv_path) - sent[0].0;
    let av_out = first_audio_ms(&audio) - got[0].0 / 90;
    assert!(
        (av_in - av_out).abs() <= 1,
        "{name}: audio starts {av_out} ms from the video, {av_in} ms in the input"
    );

    // One GOP per segment; the EXTINFs add up to the input's duration.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let text = runtime
        .block_on(live.media_playlist(&rendition, PlaylistQuery::default()))
        .expect("playlist");
    let extinf: Vec<u64> = segments(&text).into_iter().map(|s| s.0).collect();
    let gop_ms = u64::from(case.gop) * 1000 / u64::from(case.fps);
    for (i, d) in extinf[..extinf.len() - 1].iter().enumerate() {
        assert!(
            d.abs_diff(gop_ms) <= 1,
            "{name}: segment {i} lasts {d} ms, not one GOP ({gop_ms} ms): {extinf:?}"
        );
    }
    let frame_ms = 1000 / u64::from(case.fps);
    let last = sent.iter().map(|p| p.0).max().expect("frames");
    let sent_ms = (last - sent[0].0) as u64 + frame_ms;
    let total: u64 = extinf.iter().sum();
    assert!(
        total.abs_diff(sent_ms) <= frame_ms + 1,
        "{name}: segments add up to {total} ms, the input lasts {sent_ms} ms: {extinf:?}"
    );
    let target = ((gop_ms + 500) / 1000).max(1);
    assert_eq!(target_duration(&text), target, "{name}\n{text}");
}

/// Ordinary encoder output: B-frames on and off, every size and rate, B-pyramids.
#[test]
fn encoder_output_keeps_its_timestamps_through_passthrough() {
    ffmpeg_next::init().expect("init");
    let cases = [
        // The repro: veryfast (3 B-frames, pyramid), 2 s GOPs.
        Case {
            size: "640x360",
            fps: 30,
            gop: 60,
            x264: &["-preset", "veryfast"],
        },
        Case {
            size: "854x480",
            fps: 25,
            gop: 25,
            x264: &["-preset", "veryfast"],
        },
        Case {
            size: "640x360",
            fps: 50,
            gop: 50,
            x264: &["-preset", "veryfast"],
        },
        Case {
            size: "1280x720",
            fps: 30,
            gop: 30,
            x264: &["-preset", "veryfast"],
        },
        Case {
            size: "1920x1080",
            fps: 24,
            gop: 24,
            x264: &["-preset", "veryfast"],
        },
        Case {
            size: "640x360",
            fps: 60,
            gop: 60,
            x264: &["-preset", "slow", "-bf", "3", "-b-pyramid", "normal"],
        },
        Case {
            size: "1280x720",
            fps: 60,
            gop: 60,
            x264: &["-preset", "medium", "-bf", "3", "-b-pyramid", "strict"],
        },
        Case {
            size: "320x180",
            fps: 25,
            gop: 25,
            x264: &["-preset", "medium", "-bf", "2", "-b-pyramid", "none"],
        },
        Case {
            size: "854x480",
            fps: 30,
            gop: 30,
            x264: &["-preset", "veryfast", "-bf", "0"],
        },
        Case {
            size: "1920x1080",
            fps: 30,
            gop: 30,
            x264: &["-preset", "ultrafast"],
        },
    ];
    // Two at a time (the encoder is the slow part).
    let next = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..2 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let Some(case) = cases.get(i) else { break };
                check_passthrough(case);
            });
        }
    });
}

/// What an observer saw while the pipeline ran.
#[derive(Default)]
struct Seen {
    /// Every `EXT-X-TARGETDURATION` each rendition's playlist showed.
    targets: BTreeMap<String, BTreeSet<u64>>,
    /// The first master playlist, and whether each rendition it lists had a
    /// whole segment by then.
    first_master: Option<(String, Vec<(String, bool)>)>,
}

/// Renditions a master playlist names (video variants and the audio group).
fn master_renditions(master: &str) -> Vec<String> {
    master
        .lines()
        .filter_map(|l| {
            if l.starts_with('#') {
                l.split("URI=\"")
                    .nth(1)?
                    .split('/')
                    .next()
                    .map(str::to_string)
            } else {
                l.split('/').next().map(str::to_string)
            }
        })
        .filter(|n| !n.is_empty())
        .collect()
}

/// Watches `live` until `done`: playlists of renditions that have a segment,
/// and the first master playlist.
async fn observe(
    live: std::sync::Arc<LiveStream>,
    done: tokio::sync::watch::Receiver<bool>,
) -> Seen {
    let mut seen = Seen::default();
    let mut rx = live.subscribe();
    loop {
        if seen.first_master.is_none() {
            if let Some(master) = live.master() {
                let listed = master_renditions(&master)
                    .into_iter()
                    .map(|r| {
                        let whole = live.segment(&r, 0).is_some();
                        (r, whole)
                    })
                    .collect();
                seen.first_master = Some((master, listed));
            }
        }
        for r in ["1280x720", "854x480", "640x360"]
            .iter()
            .map(|s| format!("{}p", s.split_once('x').expect("size").1))
            .chain([AUDIO_RENDITION.to_string()])
        {
            if live.segment(&r, 0).is_some() {
                let text = live
                    .media_playlist(&r, PlaylistQuery::default())
                    .await
                    .expect("playlist");
                seen.targets
                    .entry(r)
                    .or_default()
                    .insert(target_duration(&text));
            }
        }
        if *done.borrow() {
            return seen;
        }
        tokio::select! {
            _ = rx.changed() => {}
            _ = tokio::time::sleep(Duration::from_millis(5)) => {}
        }
    }
}

/// The first presentation time in a segment (90 kHz, or 48 kHz for audio).
fn segment_start(live: &LiveStream, name: &str, msn: u64, dir: &Path) -> i64 {
    let path = segment_file(live, name, msn, dir);
    let json = testsrc::ffprobe_json(&[
        "-show_entries",
        "packet=pts",
        path.to_str().expect("utf8 path"),
    ])
    .expect("ffprobe segment");
    json["packets"]
        .as_array()
        .expect("packets")
        .iter()
        .filter_map(|p| p["pts"].as_i64())
        .min()
        .expect("a packet")
}

/// A 720p30 B-frame source with 1 s GOPs through the whole ladder.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ladder_cuts_dates_and_announces_every_rendition_alike() {
    ffmpeg_next::init().expect("init");
    let dir = tempfile::tempdir().expect("tempdir");
    let case = Case {
        size: "1280x720",
        fps: 30,
        gop: 30,
        x264: &["-preset", "veryfast"],
    };
    let (_, mkv) = make_source(dir.path(), &case);
    let live = LiveStream::new(Duration::from_secs(5));
    let (done_tx, done) = tokio::sync::watch::channel(false);
    let watcher = tokio::spawn(observe(live.clone(), done));
    let cfg = LiveConfig {
        window_segments: 1000,
        ..LiveConfig::default()
    };
    let opts = RunOptions {
        capture_start_ms: Some(CAPTURE_START),
        ..RunOptions::default()
    };
    // About real time: 3 s of media in about 2 s.
    let reader = feed_paced(mkv, Duration::from_millis(40));
    let pipeline = tokio::task::spawn_blocking({
        let live = live.clone();
        move || run_with(reader, live, cfg, opts)
    });
    pipeline.await.expect("join").expect("pipeline");
    done_tx.send(true).expect("observer");
    let seen = watcher.await.expect("observer");

    let names = ["720p", "480p", "360p", AUDIO_RENDITION];
    // The master playlist appeared once every rendition had a whole segment,
    // and named them all.
    let (first, listed) = seen.first_master.expect("a master playlist");
    let mut listed_names: Vec<&str> = listed.iter().map(|(r, _)| r.as_str()).collect();
    listed_names.sort_unstable();
    let mut all = names.to_vec();
    all.sort_unstable();
    assert_eq!(
        listed_names, all,
        "the first master lists every rendition:\n{first}"
    );
    assert!(
        listed.iter().all(|(_, whole)| *whole),
        "a rendition had no whole segment when the master appeared: {listed:?}"
    );
    // One target duration, in every rendition, all along.
    let targets: BTreeSet<u64> = seen.targets.values().flatten().copied().collect();
    assert_eq!(
        targets.len(),
        1,
        "target durations seen: {:?}",
        seen.targets
    );
    assert_eq!(seen.targets.len(), names.len(), "{:?}", seen.targets);

    // The same MSN starts at the same time everywhere; dates say so too.
    let mut playlists = BTreeMap::new();
    for name in names {
        let text = live
            .media_playlist(name, PlaylistQuery::default())
            .await
            .expect("playlist");
        playlists.insert(name, segments(&text));
    }
    let count = playlists["720p"].len();
    assert!(count >= 3, "{playlists:?}");
    for name in names {
        assert_eq!(playlists[name].len(), count, "{name}: {playlists:?}");
    }
    let mut firsts: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    for msn in 0..count as u64 {
        let start = |name: &str| {
            let t = segment_start(&live, name, msn, dir.path());
            if name == AUDIO_RENDITION {
                t * 90_000 / 48_000
            } else {
                t
            }
        };
        let video = start("720p");
        for name in names {
            let s = start(name);
            if name == AUDIO_RENDITION && msn == 0 {
                // Audio that came before the first picture opens segment 0.
                assert!(s <= video, "audio starts at {s}, video at {video}");
            } else {
                let tolerance = if name == AUDIO_RENDITION {
                    1024 * 90_000 / 48_000 / 2 + 1
                } else {
                    0
                };
                assert!(
                    (s - video).abs() <= tolerance,
                    "segment {msn}: {name} starts at {s}, 720p at {video} (90 kHz)"
                );
            }
            let date = playlists[name][msn as usize]
                .1
                .unwrap_or_else(|| panic!("{name}: segment {msn} has no EXT-X-PROGRAM-DATE-TIME"));
            // Every date is the same function of media time in every
            // rendition: capture time plus presentation time, to the ms.
            let (start0, date0) = *firsts.entry(name).or_insert((s, date));
            let (v0, d0) = firsts["720p"];
            let want = d0 + (s - v0) / 90;
            assert!(
                (date - want).abs() <= 1,
                "{name}: segment {msn} dated {date}, its media time says {want}"
            );
            assert!(
                (date - date0 - (s - start0) / 90).abs() <= 1,
                "{name}: segment {msn}'s date drifts from its media time"
            );
        }
    }
}
