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
    av(
        "640x360",
        seconds,
        &[
            "-pix_fmt",
            "yuv420p",
            "-c:v",
            "libx264",
            "-profile:v",
            "baseline",
            "-preset",
            "ultrafast",
            "-g",
            "60",
            "-c:a",
            "libopus",
            "-live",
            "1",
            "-f",
            "matroska",
        ],
        "-",
    )
}

/// Chromium's default `video/webm;codecs=vp8,opus`, 640x360.
pub fn webm_vp8_opus(seconds: u32) -> Result<Vec<u8>, String> {
    av(
        "640x360",
        seconds,
        &[
            "-c:v",
            "libvpx",
            "-deadline",
            "realtime",
            "-cpu-used",
            "8",
            "-b:v",
            "800k",
            "-g",
            "30",
            "-c:a",
            "libopus",
            "-live",
            "1",
            "-f",
            "webm",
        ],
        "-",
    )
}
