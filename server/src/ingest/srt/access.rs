//! The caller's access-control stream id (`#!::r=…,m=publish`) and the
//! check that a message is whole MPEG-TS packets: sans IO.

use std::ffi::c_int;

use super::{ffi, TS_PACKET};

/// A caller's access-control stream id: `#!::r=…,m=publish[,…]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRequest {
    /// `r`: the stream key `<id>_<secret>`, or the stream id alone (then the
    /// key is the passphrase).
    pub resource: String,
}

/// Why a stream id is refused, with its SRT rejection code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StreamIdError {
    /// Not `#!::key=value,…`, or no `r`.
    #[error("the stream id must be #!::r=<stream key>,m=publish")]
    Syntax,
    /// `m` is missing or not `publish`.
    #[error("only m=publish is served")]
    Mode,
    /// `t` is not `stream`.
    #[error("only t=stream is served")]
    Type,
}

impl StreamIdError {
    /// The SRT access-control rejection code.
    pub fn code(self) -> c_int {
        match self {
            StreamIdError::Syntax => ffi::REJX_BAD_REQUEST,
            StreamIdError::Mode => ffi::REJX_BAD_MODE,
            StreamIdError::Type => ffi::REJX_NOTSUP_MEDIA,
        }
    }
}

/// Parses an SRT access-control stream id (`#!::` then comma-separated
/// `key=value` pairs; unknown keys are ignored, as the form allows).
pub fn parse_stream_id(raw: &str) -> Result<AccessRequest, StreamIdError> {
    let body = raw.strip_prefix("#!::").ok_or(StreamIdError::Syntax)?;
    let mut resource = None;
    let mut mode = None;
    for pair in body.split(',') {
        let (key, value) = pair.split_once('=').ok_or(StreamIdError::Syntax)?;
        match key {
            "r" => resource = Some(value),
            "m" => mode = Some(value),
            "t" if value != "stream" => return Err(StreamIdError::Type),
            _ => {}
        }
    }
    if mode != Some("publish") {
        return Err(StreamIdError::Mode);
    }
    let resource = resource
        .filter(|r| !r.is_empty() && r.bytes().all(|b| b.is_ascii_graphic()))
        .ok_or(StreamIdError::Syntax)?;
    Ok(AccessRequest {
        resource: resource.to_string(),
    })
}

/// Whether `payload` is whole MPEG-TS packets (each starting with 0x47).
pub fn is_mpeg_ts(payload: &[u8]) -> bool {
    !payload.is_empty()
        && payload.len().is_multiple_of(TS_PACKET)
        && payload.chunks(TS_PACKET).all(|p| p.first() == Some(&0x47))
}
