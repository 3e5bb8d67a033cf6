//! Transcripts: what live transcription heard, as lines on the stream's media
//! timeline; their WebVTT, SRT and plain-text forms (WebVTT is shared by the
//! server's caption track and the downloads); the transcript API's answer and
//! the server function the transcript page uses.
//!
//! Times are integer milliseconds on the stream's media timeline: 0 is its
//! first sample, which is also the recording's position (`?t=`).

#[cfg(feature = "ssr")]
use crate::serverfn::{BoxFuture, Parts};
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::AppError;
use crate::format::clock;
use crate::protocol::StreamState;

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

/// Parses `hh:mm:ss.mmm` or `mm:ss.mmm` into milliseconds.
fn parse_timestamp(s: &str) -> Option<i64> {
    let (hms, ms) = s.trim().split_once('.')?;
    if ms.len() != 3 {
        return None;
    }
    let mut total = 0i64;
    let parts: Vec<&str> = hms.split(':').collect();
    if !(2..=3).contains(&parts.len()) {
        return None;
    }
    for p in parts {
        total = total * 60 + p.parse::<i64>().ok().filter(|v| *v >= 0)?;
    }
    Some(total * 1000 + ms.parse::<i64>().ok()?)
}

fn unescape(text: &str) -> String {
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// The cues of a WebVTT file (the header, notes and cue settings are
/// skipped; cue text lines are joined with spaces and unescaped). Malformed
/// cues are left out.
pub fn parse_vtt(text: &str) -> Vec<TranscriptLine> {
    let text = text.replace("\r\n", "\n");
    text.split("\n\n")
        .filter_map(|block| {
            let mut lines = block.lines().skip_while(|l| !l.contains("-->"));
            let timing = lines.next()?;
            let (a, rest) = timing.split_once("-->")?;
            let b = rest.split_whitespace().next()?;
            let body: Vec<&str> = lines.filter(|l| !l.trim().is_empty()).collect();
            Some(TranscriptLine {
                start_ms: parse_timestamp(a)?,
                end_ms: parse_timestamp(b)?,
                text: unescape(&body.join(" ")),
            })
        })
        .collect()
}

/// The line (if any) on screen at `ms`: the latest that started by then and
/// has not ended.
pub fn active_line(lines: &[TranscriptLine], ms: i64) -> Option<&TranscriptLine> {
    lines
        .iter()
        .filter(|l| l.start_ms <= ms && ms < l.end_ms)
        .max_by_key(|l| l.start_ms)
}

/// A caption as at most two lines of about `width` characters: words wrap,
/// and when there is more, the last two lines are kept (the newest words).
/// A word longer than a line is cut.
pub fn caption_lines(text: &str, width: usize) -> Vec<String> {
    let width = width.max(8);
    let mut lines: Vec<String> = Vec::new();
    let mut current = String::new();
    for word in text.split_whitespace() {
        let word: String = word.chars().take(width).collect();
        let len = current.chars().count();
        if len > 0 && len + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(&word);
    }
    if !current.is_empty() {
        lines.push(current);
    }
    let skip = lines.len().saturating_sub(2);
    lines.split_off(skip)
}

/// `hh:mm:ss,mmm`, the SRT timestamp form (negative times clamp to 0).
pub fn srt_timestamp(ms: i64) -> String {
    vtt_timestamp(ms).replacen('.', ",", 1)
}

/// A line's text on one line: inner line breaks and blank lines would end a
/// cue (SRT has no escapes; players read a few tags, which are kept as text).
fn one_line(text: &str) -> String {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// A whole transcript as SubRip (`.srt`): numbered cues from 1, comma
/// decimal separators, a blank line after each cue.
pub fn render_srt(lines: &[TranscriptLine]) -> String {
    let mut out = String::new();
    for (n, l) in lines.iter().enumerate() {
        out.push_str(&format!(
            "{}\n{} --> {}\n{}\n\n",
            n + 1,
            srt_timestamp(l.start_ms),
            srt_timestamp(l.end_ms.max(l.start_ms + 1)),
            one_line(&l.text)
        ));
    }
    out
}

/// A whole transcript as plain text: one `[m:ss] text` line per line.
pub fn render_txt(lines: &[TranscriptLine]) -> String {
    let mut out = String::new();
    for l in lines {
        out.push_str(&format!("[{}] {}\n", clock(l.start_ms), one_line(&l.text)));
    }
    out
}

/// A playback token safe to put in a URL query as it is (the server's are
/// `<digits>.<base64url>`); anything else is dropped.
pub fn url_token(token: Option<&str>) -> Option<&str> {
    token.filter(|t| {
        !t.is_empty()
            && t.len() <= 256
            && t.bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    })
}

/// The watch page at a moment of the recording: `/watch/{id}?t=<seconds>`
/// (whole seconds, rounded down), with the playback token of a private stream.
pub fn moment_url(stream: &str, ms: i64, token: Option<&str>) -> String {
    let mut url = format!("/watch/{stream}?t={}", ms.max(0) / 1000);
    if let Some(t) = url_token(token) {
        url.push_str("&token=");
        url.push_str(t);
    }
    url
}

/// The download formats of a transcript.
pub const FORMATS: [&str; 3] = ["vtt", "srt", "txt"];

/// Where a transcript downloads in a format (`vtt`, `srt` or `txt`).
pub fn download_url(stream: &str, format: &str, token: Option<&str>) -> String {
    match url_token(token) {
        Some(t) => format!("/api/v1/streams/{stream}/transcript.{format}?token={t}"),
        None => format!("/api/v1/streams/{stream}/transcript.{format}"),
    }
}

/// A stream's transcript as `GET /api/v1/streams/{id}/transcript` returns it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transcript {
    /// The stream.
    pub stream_id: String,
    /// Its title.
    pub title: String,
    /// Its state (a live stream's transcript grows).
    pub state: StreamState,
    /// The lines in media order.
    pub lines: Vec<TranscriptLine>,
}

/// What this area's server functions need from the server (server build
/// only). The server implements it and provides an `Arc<dyn TranscriptsBackend>` in the
/// Leptos context; the rules are the JSON API's (docs/api.md), and refusals
/// are [`AppError::Refused`] with the API's
/// status and code.
#[cfg(feature = "ssr")]
pub trait TranscriptsBackend: Send + Sync + 'static {
    /// A stream's transcript, if the caller may watch the stream (with a
    /// private stream's playback token, anyone may).
    fn transcript(
        &self,
        req: Parts,
        id: String,
        token: Option<String>,
    ) -> BoxFuture<'_, Result<Transcript, AppError>>;
}

/// A stream's transcript, if the caller may watch the stream (a private
/// stream's playback token counts, as on the watch page).
#[server(prefix = "/api/fn")]
pub async fn get_transcript(id: String, token: Option<String>) -> Result<Transcript, AppError> {
    use crate::serverfn::{provided, request, status};
    status(
        provided::<dyn TranscriptsBackend>()?
            .transcript(request()?, id, token)
            .await,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines() -> Vec<TranscriptLine> {
        vec![
            TranscriptLine {
                start_ms: 1500,
                end_ms: 4000,
                text: "Hello <i>there</i>\n\nand --> welcome".into(),
            },
            TranscriptLine {
                start_ms: 3_723_004,
                end_ms: 3_723_004,
                text: "  the end  ".into(),
            },
        ]
    }

    #[test]
    fn srt_numbers_cues_with_comma_times_and_no_blank_lines_inside() {
        assert_eq!(srt_timestamp(3_723_004), "01:02:03,004");
        assert_eq!(
            render_srt(&lines()),
            "1\n00:00:01,500 --> 00:00:04,000\nHello <i>there</i> and --> welcome\n\n\
             2\n01:02:03,004 --> 01:02:03,005\nthe end\n\n"
        );
        assert_eq!(render_srt(&[]), "");
    }

    #[test]
    fn txt_has_one_timestamped_line_per_line() {
        assert_eq!(
            render_txt(&lines()),
            "[0:01] Hello <i>there</i> and --> welcome\n[1:02:03] the end\n"
        );
    }

    #[test]
    fn moments_and_downloads_carry_only_well_formed_tokens() {
        assert_eq!(moment_url("abc", 90_999, None), "/watch/abc?t=90");
        assert_eq!(moment_url("abc", -1, Some("")), "/watch/abc?t=0");
        assert_eq!(
            moment_url("abc", 5000, Some("123.sig-_x")),
            "/watch/abc?t=5&token=123.sig-_x"
        );
        assert_eq!(moment_url("abc", 5000, Some("a&b=c")), "/watch/abc?t=5");
        assert_eq!(
            download_url("abc", "srt", Some("9.s")),
            "/api/v1/streams/abc/transcript.srt?token=9.s"
        );
        assert_eq!(
            download_url("abc", "vtt", None),
            "/api/v1/streams/abc/transcript.vtt"
        );
    }

    #[test]
    fn vtt_round_trips_and_tolerates_headers_and_settings() {
        let lines = vec![
            TranscriptLine {
                start_ms: 1500,
                end_ms: 4000,
                text: "a <b> & c".into(),
            },
            TranscriptLine {
                start_ms: 3_600_000,
                end_ms: 3_601_000,
                text: "an hour in".into(),
            },
        ];
        assert_eq!(parse_vtt(&render_vtt(&lines)), lines);
        let other = "WEBVTT\r\nX-TIMESTAMP-MAP=MPEGTS:0,LOCAL:00:00:00.000\r\n\r\nNOTE hi\r\n\r\n\
                     1\r\n00:01.000 --> 00:02.500 align:start\r\nline one\r\nline two\r\n\r\n\
                     00:xx.000 --> 00:03.000\r\nbroken\r\n";
        assert_eq!(
            parse_vtt(other),
            vec![TranscriptLine {
                start_ms: 1000,
                end_ms: 2500,
                text: "line one line two".into()
            }]
        );
    }

    #[test]
    fn the_active_line_and_two_line_captions() {
        let lines = parse_vtt(
            "WEBVTT\n\n00:00:01.000 --> 00:00:03.000\na\n\n00:00:02.500 --> 00:00:05.000\nb\n\n",
        );
        assert_eq!(active_line(&lines, 500), None);
        assert_eq!(
            active_line(&lines, 1000).map(|l| l.text.as_str()),
            Some("a")
        );
        assert_eq!(
            active_line(&lines, 2700).map(|l| l.text.as_str()),
            Some("b")
        );
        assert_eq!(active_line(&lines, 5000), None);
        assert_eq!(
            caption_lines("the quick brown fox jumps over the lazy dog", 10),
            vec!["the lazy".to_string(), "dog".to_string()]
        );
        assert_eq!(caption_lines("short", 40), vec!["short".to_string()]);
        assert_eq!(caption_lines("", 40), Vec::<String>::new());
        assert_eq!(
            caption_lines("abcdefghijklmnop", 8),
            vec!["abcdefgh".to_string()]
        );
    }

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
