use super::*;

#[test]
fn each_track_starts_where_its_first_frame_arrived_and_then_follows_rtp() {
    let t0 = Instant::now();
    let mut tl = Timeline::default();
    // Video's RTP clock starts at a random value; the first frame is tick 0.
    assert_eq!(tl.ticks(Track::Video, 4_000_000_000, t0), 0);
    assert_eq!(tl.ticks(Track::Video, 4_000_003_000, t0), 3_000);
    // Audio's first frame arrives 20 ms later: 960 ticks of 48 kHz.
    let a = t0 + Duration::from_millis(20);
    assert_eq!(tl.ticks(Track::Audio, 17, a), 960);
    assert_eq!(tl.ticks(Track::Audio, 17 + 960, a), 1_920);
    // Past the 32-bit wrap (str0m extends RTP time to 64 bits).
    assert_eq!(
        tl.ticks(Track::Video, 4_000_000_000 + (1 << 32), t0),
        1 << 32
    );
    // Earlier than the first frame (reordering) is clamped, not negative.
    assert_eq!(tl.ticks(Track::Video, 3_999_000_000, t0), 0);
}

#[test]
fn answers_keep_h264_or_vp8_only_when_a_video_section_does() {
    assert!(answer_has_video(
        "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 102\r\na=rtpmap:102 H264/90000\r\n"
    ));
    assert!(!answer_has_video(
        "v=0\r\nm=video 0 UDP/TLS/RTP/SAVPF 0\r\n"
    ));
    assert!(answer_has_video(
        "v=0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 VP8/90000\r\n"
    ));
}

#[test]
fn the_config_is_kept_within_its_bounds() {
    let c = WebrtcConfig {
        max_sessions: 0,
        connect_timeout: Duration::ZERO,
        ..WebrtcConfig::default()
    }
    .sanitized();
    assert_eq!(c.max_sessions, 1);
    assert_eq!(c.connect_timeout, Duration::from_millis(100));
}

#[test]
fn whip_refusals_name_their_metric_reason() {
    assert_eq!(
        WhipError::MalformedSdp(String::new()).reason().label(),
        "protocol"
    );
    assert_eq!(
        WhipError::Codec(OfferError::NoVideoCodec {
            offered: "vp8".into()
        })
        .reason()
        .label(),
        "unsupported_codec"
    );
    assert_eq!(
        WhipError::TooManySessions(1).reason().label(),
        "too_many_connections"
    );
    assert_eq!(WhipError::Unauthenticated.reason().label(), "wrong_key");
}
