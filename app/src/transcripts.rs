//! Transcripts: what live transcription heard, as lines on the stream's media
//! timeline, and their WebVTT form (shared by the server's caption track and
//! the transcript downloads).
//!
//! Times are integer milliseconds on the stream's media timeline: 0 is its
//! first sample, which is also the recording's position (`?t=`).

use serde::{Deserialize, Serialize};

/// One transcribed line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TranscriptLine {
    /// Start, ms on the media timeline.
    pub start_ms: i64,
    /// End, ms on the media timeline.
    pub end_ms: i64,
    /// The text.
    pub text: String,
}

/// `hh:mm:ss.mmm`, the WebVTT timestamp form (negative times clamp to 0).
pub fn vtt_timestamp(ms: i64) -> String {
    let ms = ms.max(0);
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    )
}

/// Cue text safe in WebVTT: `&`, `<` and `>` escaped, no blank lines, and
/// never the `-->` that would end the cue.
pub fn vtt_text(text: &str) -> String {
    let one_line = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    one_line
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// One cue: its timing line and text, with a blank line after.
pub fn vtt_cue(out: &mut String, line: &TranscriptLine) {
    out.push_str(&vtt_timestamp(line.start_ms));
    out.push_str(" --> ");
    out.push_str(&vtt_timestamp(line.end_ms.max(line.start_ms + 1)));
    out.push('\n');
    out.push_str(&vtt_text(&line.text));
    out.push_str("\n\n");
}

/// A whole transcript as one WebVTT file.
pub fn render_vtt(lines: &[TranscriptLine]) -> String {
    let mut out = String::from("WEBVTT\n\n");
    for l in lines {
        vtt_cue(&mut out, l);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vtt_is_well_formed_and_escaped() {
        assert_eq!(vtt_timestamp(3_723_004), "01:02:03.004");
        assert_eq!(vtt_timestamp(-5), "00:00:00.000");
        let vtt = render_vtt(&[
            TranscriptLine {
                start_ms: 1500,
                end_ms: 4000,
                text: "a <b> & c\n\nd --> e".into(),
            },
            TranscriptLine {
                start_ms: 4000,
                end_ms: 4000,
                text: "end".into(),
            },
        ]);
        assert_eq!(
            vtt,
            "WEBVTT\n\n00:00:01.500 --> 00:00:04.000\na &lt;b&gt; &amp; c d --&gt; e\n\n\
             00:00:04.000 --> 00:00:04.001\nend\n\n"
        );
    }
}
