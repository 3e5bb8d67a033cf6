//! The media pipeline (FFmpeg through `ffmpeg-next`): library start-up,
//! demuxing live input from memory ([`demux`]), AAC framing ([`aac`]) and
//! audio copy or transcode ([`audio`]), the ladder ([`ladder`]), stream
//! health ([`health`]), and one live stream's pipeline ([`live`]), whose
//! outputs leave through [`live::Publish`]. Below it only the packager: it
//! knows nothing of the origin, the store, recordings or captions.

pub mod aac;
pub mod audio;
pub mod demux;
pub mod framemux;
pub mod health;
pub mod ladder;
pub mod live;
pub mod memout;
pub mod remux;
#[doc(hidden)]
pub mod testsrc;
pub mod transcode;

#[cfg(test)]
mod demux_tests;
#[cfg(test)]
mod remux_tests;

/// What the linked FFmpeg libraries provide.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FfmpegInfo {
    /// libavcodec version, `major.minor.micro`.
    pub avcodec: String,
    /// libavformat version.
    pub avformat: String,
    /// Whether the libx264 encoder is available (needed for the ladder).
    pub libx264: bool,
    /// Whether an AAC encoder is available.
    pub aac: bool,
}

/// FFmpeg could not be initialised.
#[derive(Debug, thiserror::Error)]
#[error("FFmpeg failed to initialise: {0}")]
pub struct MediaInitError(#[from] ffmpeg_next::Error);

fn version_string(v: u32) -> String {
    format!("{}.{}.{}", v >> 16, (v >> 8) & 0xff, v & 0xff)
}

/// Initialises FFmpeg (idempotent) and reports its versions and encoders.
pub fn init() -> Result<FfmpegInfo, MediaInitError> {
    ffmpeg_next::init()?;
    // Keep FFmpeg's own logging to errors; ours goes through tracing.
    ffmpeg_next::util::log::set_level(ffmpeg_next::util::log::Level::Error);
    Ok(FfmpegInfo {
        avcodec: version_string(ffmpeg_next::codec::version()),
        avformat: version_string(ffmpeg_next::format::version()),
        libx264: ffmpeg_next::encoder::find_by_name("libx264").is_some(),
        aac: ffmpeg_next::encoder::find(ffmpeg_next::codec::Id::AAC).is_some(),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_linked_ffmpeg_has_the_encoders_the_ladder_needs() {
        let info = super::init().expect("ffmpeg init");
        assert!(info.avcodec.starts_with(char::is_numeric), "{info:?}");
        assert!(info.libx264, "libx264 missing: {info:?}");
        assert!(info.aac, "AAC encoder missing: {info:?}");
    }

    #[test]
    fn versions_are_formatted_like_ffmpeg() {
        assert_eq!(
            super::version_string((59 << 16) | (37 << 8) | 100),
            "59.37.100"
        );
    }
}
