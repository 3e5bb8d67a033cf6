//! Test media made by the FFmpeg CLI, shared by the unit tests, the
//! integration tests and the benchmarks. Not used by the server itself, which
//! never runs the CLI.

use std::process::Command;

/// Runs `ffmpeg -hide_banner -loglevel error ARGS` and returns its stdout.
pub fn ffmpeg(args: &[&str]) -> Result<Vec<u8>, String> {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-y"])
        .args(args)
        .output()
        .map_err(|e| format!("cannot run ffmpeg: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "ffmpeg failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(out.stdout)
}

/// A `testsrc2` picture of `size` at 30 fps plus a 440 Hz tone (48 kHz),
/// `seconds` long, encoded with `codec_args`, written to `output` (a path, or
/// `-` with `-f FORMAT` in `codec_args` for stdout). Returns stdout.
pub fn av(size: &str, seconds: u32, codec_args: &[&str], output: &str) -> Result<Vec<u8>, String> {
    let video = format!("testsrc2=size={size}:rate=30");
    let t = seconds.to_string();
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
        &t,
    ];
    args.extend_from_slice(codec_args);
    args.push(output);
    ffmpeg(&args)
}

/// What Chromium records with `video/webm;codecs=h264,opus`: H.264 with
/// in-band parameter sets and Opus in live Matroska, 640x360.
pub fn mkv_h264_opus(seconds: u32) -> Result<Vec<u8>, String> {
    let args = [
        H264_BASELINE,
        &[
            "-g", "60", "-c:a", "libopus", "-live", "1", "-f", "matroska",
        ],
    ]
    .concat();
    av("640x360", seconds, &args, "-")
}

/// Chromium's default `video/webm;codecs=vp8,opus`, 640x360.
pub fn webm_vp8_opus(seconds: u32) -> Result<Vec<u8>, String> {
    let args = [
        VP8_REALTIME,
        &[
            "-b:v", "800k", "-g", "30", "-c:a", "libopus", "-live", "1", "-f", "webm",
        ],
    ]
    .concat();
    av("640x360", seconds, &args, "-")
}

/// Encoder arguments for H.264 Constrained Baseline, as Chromium records it.
pub const H264_BASELINE: &[&str] = &[
    "-pix_fmt",
    "yuv420p",
    "-c:v",
    "libx264",
    "-profile:v",
    "baseline",
    "-preset",
    "ultrafast",
];

/// Encoder arguments for VP8 as a browser's real-time encoder produces it.
pub const VP8_REALTIME: &[&str] = &["-c:v", "libvpx", "-deadline", "realtime", "-cpu-used", "8"];

/// Runs `ffprobe -v error -of json ARGS` and parses its output.
pub fn ffprobe_json(args: &[&str]) -> Result<serde_json::Value, String> {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-of", "json"])
        .args(args)
        .output()
        .map_err(|e| format!("cannot run ffprobe: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "ffprobe failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("ffprobe printed invalid JSON: {e}"))
}

/// What ffprobe says about a file or URL: its streams' codecs and its duration.
#[derive(Debug, Clone, PartialEq)]
pub struct Summary {
    /// `codec_name` of every stream, in order.
    pub codecs: Vec<String>,
    /// The container's duration in seconds.
    pub duration_s: f64,
}

impl Summary {
    /// Whether every codec in `wanted` is among the streams.
    pub fn has(&self, wanted: &[&str]) -> bool {
        wanted.iter().all(|w| self.codecs.iter().any(|c| c == w))
    }
}

/// Probes `input` (a path or URL) for its codecs and duration.
pub fn probe(input: &str) -> Result<Summary, String> {
    let json = ffprobe_json(&["-show_entries", "stream=codec_name:format=duration", input])?;
    let codecs = json["streams"]
        .as_array()
        .map(|s| {
            s.iter()
                .filter_map(|s| s["codec_name"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let duration_s = json["format"]["duration"]
        .as_str()
        .and_then(|d| d.parse().ok())
        .ok_or_else(|| format!("ffprobe reported no duration for {input}"))?;
    Ok(Summary { codecs, duration_s })
}

/// Decodes every stream of `input` (a path or URL) with the FFmpeg CLI; an
/// error if it fails or prints anything at all at the error level.
pub fn decode(input: &str) -> Result<(), String> {
    let out = Command::new("ffmpeg")
        .args([
            "-hide_banner",
            "-v",
            "error",
            "-i",
            input,
            "-map",
            "0",
            "-f",
            "null",
            "-",
        ])
        .output()
        .map_err(|e| format!("cannot run ffmpeg: {e}"))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() || !stderr.is_empty() {
        return Err(format!("decoding {input} failed: {stderr}"));
    }
    Ok(())
}

/// The MD5 of every audio packet of `input` (a path or URL) as FFmpeg reads
/// it with `-c copy` (`framemd5`), in order: two inputs carry the same AAC
/// bytes exactly when these lists are equal. ADTS headers (MPEG-TS) are
/// taken off first, so only the raw frames are compared.
pub fn audio_packet_md5s(input: &str) -> Result<Vec<String>, String> {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-v", "error", "-i", input])
        .args(["-map", "0:a:0", "-c", "copy", "-bsf:a", "aac_adtstoasc"])
        .args(["-f", "framemd5", "-"])
        .output()
        .map_err(|e| format!("cannot run ffmpeg: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "ffmpeg failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split(',').nth(5).map(|h| h.trim().to_string()))
        .collect())
}

/// The first audio stream of `input`: codec name, sample rate, channels.
pub fn audio_stream(input: &str) -> Result<(String, u32, u32), String> {
    let json = ffprobe_json(&[
        "-select_streams",
        "a:0",
        "-show_entries",
        "stream=codec_name,sample_rate,channels",
        input,
    ])?;
    let s = &json["streams"][0];
    let codec = s["codec_name"].as_str().unwrap_or_default().to_string();
    let rate = s["sample_rate"]
        .as_str()
        .and_then(|r| r.parse().ok())
        .ok_or_else(|| format!("no audio sample rate in {input}"))?;
    let channels = s["channels"]
        .as_u64()
        .and_then(|c| u32::try_from(c).ok())
        .ok_or_else(|| format!("no audio channels in {input}"))?;
    Ok((codec, rate, channels))
}
