//! What a WHIP offer must hold before an `Rtc` is built for it: the rule is
//! read from the SDP text itself (RFC 8866), so each refusal names what was
//! missing. str0m then parses the offer again and negotiates.
//!
//! The rule: one video section (port not 0) that offers `H264/90000` or
//! `VP8/90000`; an audio section, if any, offers `opus/48000`. VP9 and AV1
//! are refused (H.264 passes through to the top rung; VP8 is decoded for
//! the ladder like the studio's); an offer with no video is refused too (a
//! stream is a picture).

/// Why an offer cannot be taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OfferError {
    /// Not SDP: no `v=0` first, no media section, or a media line that does not parse.
    #[error("the body is not an SDP offer: {0}")]
    Malformed(&'static str),
    /// No video section offers H.264 or VP8.
    #[error("the offer has no H.264 or VP8 video (it offers {offered}): publish H.264 (or VP8) video, with Opus audio if any")]
    NoVideoCodec {
        /// The video codecs the offer named, or `no video`.
        offered: String,
    },
    /// An audio section that offers no Opus.
    #[error("the offer's audio is not Opus (it offers {offered}): publish Opus audio")]
    NoOpus {
        /// The audio codecs the offer named.
        offered: String,
    },
}

/// What an acceptable offer carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OfferSummary {
    /// An audio section offers Opus.
    pub audio: bool,
}

/// One `m=` section: its kind, whether it is enabled, and the codec names
/// (`a=rtpmap`) of its payload types, lower-cased.
#[derive(Debug, Default)]
struct Section {
    kind: String,
    enabled: bool,
    codecs: Vec<String>,
}

fn sections(sdp: &str) -> Result<Vec<Section>, OfferError> {
    let mut lines = sdp.lines().map(str::trim_end);
    if lines.next() != Some("v=0") {
        return Err(OfferError::Malformed("it does not start with v=0"));
    }
    let mut out: Vec<Section> = Vec::new();
    for line in lines {
        if let Some(m) = line.strip_prefix("m=") {
            let mut parts = m.split(' ');
            let (Some(kind), Some(port), Some(_proto)) = (parts.next(), parts.next(), parts.next())
            else {
                return Err(OfferError::Malformed(
                    "a media line has fewer than 4 fields",
                ));
            };
            let port: u16 = port
                .split('/')
                .next()
                .unwrap_or_default()
                .parse()
                .map_err(|_| OfferError::Malformed("a media line's port is not a number"))?;
            out.push(Section {
                kind: kind.to_ascii_lowercase(),
                enabled: port != 0,
                codecs: Vec::new(),
            });
        } else if let Some(map) = line.strip_prefix("a=rtpmap:") {
            let Some(section) = out.last_mut() else {
                continue;
            };
            // `<pt> <name>/<clock rate>[/<channels>]`
            if let Some((_pt, codec)) = map.split_once(' ') {
                section.codecs.push(codec.trim().to_ascii_lowercase());
            }
        }
    }
    if out.is_empty() {
        return Err(OfferError::Malformed("it has no media section (m=)"));
    }
    Ok(out)
}

fn named(sections: &[&Section]) -> String {
    let mut names: Vec<&str> = sections
        .iter()
        .flat_map(|s| s.codecs.iter())
        .filter_map(|c| c.split('/').next())
        .filter(|n| {
            !matches!(
                *n,
                "rtx" | "red" | "ulpfec" | "flexfec-03" | "telephone-event" | "cn"
            )
        })
        .collect();
    names.sort_unstable();
    names.dedup();
    if names.is_empty() {
        "no codec".into()
    } else {
        names.join(", ")
    }
}

/// Checks an offer against the rule above.
pub fn check_offer(sdp: &str) -> Result<OfferSummary, OfferError> {
    let all = sections(sdp)?;
    let video: Vec<&Section> = all
        .iter()
        .filter(|s| s.kind == "video" && s.enabled)
        .collect();
    let audio: Vec<&Section> = all
        .iter()
        .filter(|s| s.kind == "audio" && s.enabled)
        .collect();
    let usable = |s: &&Section| {
        s.codecs
            .iter()
            .any(|c| c.starts_with("h264/90000") || c.starts_with("vp8/90000"))
    };
    if !video.iter().any(usable) {
        return Err(OfferError::NoVideoCodec {
            offered: if video.is_empty() {
                "no video".into()
            } else {
                named(&video)
            },
        });
    }
    let opus = |s: &&Section| s.codecs.iter().any(|c| c.starts_with("opus/48000"));
    if !audio.is_empty() && !audio.iter().any(opus) {
        return Err(OfferError::NoOpus {
            offered: named(&audio),
        });
    }
    Ok(OfferSummary {
        audio: !audio.is_empty(),
    })
}

/// The forwardable video codecs (`h264`, `vp8`) of the enabled video
/// sections of `sdp` (an answer): what a publisher may send, what a viewer
/// can take. Empty if `sdp` does not parse.
pub fn video_codecs(sdp: &str) -> Vec<&'static str> {
    let mut out = Vec::new();
    for s in sections(sdp).unwrap_or_default() {
        if s.kind != "video" || !s.enabled {
            continue;
        }
        for (prefix, name) in [("h264/90000", "h264"), ("vp8/90000", "vp8")] {
            if s.codecs.iter().any(|c| c.starts_with(prefix)) && !out.contains(&name) {
                out.push(name);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn video_codecs_are_read_from_enabled_sections_only() {
        let both = offer(&["VP8/90000", "H264/90000", "rtx/90000"], None);
        assert_eq!(video_codecs(&both), vec!["h264", "vp8"]);
        let off = "v=0\r\nm=video 0 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 H264/90000\r\n";
        assert!(video_codecs(off).is_empty());
        assert!(video_codecs("hello").is_empty());
    }

    fn offer(video: &[&str], audio: Option<&[&str]>) -> String {
        let mut s = String::from("v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n");
        let mut pt = 96;
        s.push_str("m=video 9 UDP/TLS/RTP/SAVPF 96 97 98\r\n");
        for c in video {
            s.push_str(&format!("a=rtpmap:{pt} {c}\r\n"));
            pt += 1;
        }
        if let Some(audio) = audio {
            s.push_str("m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n");
            for c in audio {
                s.push_str(&format!("a=rtpmap:{pt} {c}\r\n"));
                pt += 1;
            }
        }
        s
    }

    #[test]
    fn h264_or_vp8_with_opus_or_without_audio_is_taken() {
        let both = offer(
            &["VP8/90000", "H264/90000", "rtx/90000"],
            Some(&["opus/48000/2"]),
        );
        assert_eq!(check_offer(&both), Ok(OfferSummary { audio: true }));
        let video = offer(&["H264/90000"], None);
        assert_eq!(check_offer(&video), Ok(OfferSummary { audio: false }));
        let vp8 = offer(&["VP8/90000", "rtx/90000"], Some(&["opus/48000/2"]));
        assert_eq!(check_offer(&vp8), Ok(OfferSummary { audio: true }));
    }

    #[test]
    fn other_video_codecs_and_other_audio_are_refused_by_name() {
        let vp = offer(
            &["VP9/90000", "AV1/90000", "rtx/90000"],
            Some(&["opus/48000/2"]),
        );
        assert_eq!(
            check_offer(&vp),
            Err(OfferError::NoVideoCodec {
                offered: "av1, vp9".into()
            })
        );
        let pcm = offer(
            &["H264/90000"],
            Some(&["PCMU/8000", "telephone-event/8000"]),
        );
        assert_eq!(
            check_offer(&pcm),
            Err(OfferError::NoOpus {
                offered: "pcmu".into()
            })
        );
        let audio_only = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n";
        assert_eq!(
            check_offer(audio_only),
            Err(OfferError::NoVideoCodec {
                offered: "no video".into()
            })
        );
    }

    #[test]
    fn a_disabled_video_section_does_not_count() {
        let s = "v=0\r\nm=video 0 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 H264/90000\r\n";
        assert!(matches!(
            check_offer(s),
            Err(OfferError::NoVideoCodec { .. })
        ));
    }

    #[test]
    fn hostile_text_is_malformed_not_a_panic() {
        for bad in [
            "",
            "hello",
            "v=0\r\n",
            "v=0\r\nm=video\r\n",
            "v=0\r\nm=video x UDP 96\r\n",
            "v=0\r\nm=video 99999999999 UDP 96\r\n",
            "\u{0}\u{feff}v=0",
        ] {
            assert!(
                matches!(check_offer(bad), Err(OfferError::Malformed(_))),
                "{bad:?}"
            );
        }
        // rtpmap before any m= line, and without a codec, are ignored.
        let odd = "v=0\r\na=rtpmap:96 H264/90000\r\nm=video 9 UDP 96\r\na=rtpmap:96\r\n";
        assert!(matches!(
            check_offer(odd),
            Err(OfferError::NoVideoCodec { .. })
        ));
    }
}
