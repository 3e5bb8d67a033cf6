//! Stream ids: one rule for the server, its URLs and the pages.
//!
//! An id is 1 to 64 lower-case ASCII letters and digits: safe in URLs, store
//! keys and SurrealQL without quoting. A URL path segment that names a stream
//! is percent-decoded exactly once and must then be a valid id; whoever
//! checks access and whoever serves must use that one decoded value
//! ([`StreamId::from_path_segment`]), never the raw segment.

use serde::{Deserialize, Serialize};

/// The longest stream id.
pub const MAX_STREAM_ID_LEN: usize = 64;

/// Whether `id` is a valid stream id (already decoded).
pub fn valid_stream_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_STREAM_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}

/// A valid stream id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct StreamId(String);

/// Not a valid stream id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a stream id: 1 to 64 lower-case letters and digits")]
pub struct InvalidStreamId;

impl StreamId {
    /// `id` as a stream id, if it is one (no decoding).
    pub fn parse(id: &str) -> Result<Self, InvalidStreamId> {
        if valid_stream_id(id) {
            Ok(StreamId(id.to_string()))
        } else {
            Err(InvalidStreamId)
        }
    }

    /// A URL path segment, percent-decoded once, as a stream id. A segment
    /// that decodes to anything else (a double-encoded id, upper case, a
    /// slash, a broken escape) is refused.
    pub fn from_path_segment(raw: &str) -> Result<Self, InvalidStreamId> {
        let decoded = percent_decode(raw).ok_or(InvalidStreamId)?;
        StreamId::parse(&decoded)
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for StreamId {
    type Error = InvalidStreamId;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        if valid_stream_id(&s) {
            Ok(StreamId(s))
        } else {
            Err(InvalidStreamId)
        }
    }
}

impl From<StreamId> for String {
    fn from(id: StreamId) -> String {
        id.0
    }
}

/// One pass of percent-decoding; `None` for a broken escape or bytes that
/// are not UTF-8.
fn percent_decode(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_rule() {
        assert!(valid_stream_id("abc123"));
        assert!(valid_stream_id(&"a".repeat(64)));
        for bad in [
            "",
            "Abc",
            "a-b",
            "a_b",
            "a b",
            "a/b",
            "é",
            "a%38",
            &"a".repeat(65),
        ] {
            assert!(!valid_stream_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn path_segments_are_decoded_once() {
        let id = |s: &str| StreamId::from_path_segment(s).map(|i| i.to_string());
        assert_eq!(id("8d73ab").as_deref(), Ok("8d73ab"));
        // %38 is '8': the same stream, so the same access rule applies.
        assert_eq!(id("%38d73ab").as_deref(), Ok("8d73ab"));
        assert_eq!(id("%38%64%37%33ab").as_deref(), Ok("8d73ab"));
        assert_eq!(id("%6A%6b").as_deref(), Ok("jk"), "either hex case");
        // Decoded once only: a double-encoded id stays encoded, and is refused.
        assert_eq!(id("%2538d73ab"), Err(InvalidStreamId));
        for bad in ["%4A", "%2F", "%", "%3", "%zz", "%C3%A9", "%00", "a%2Fb", ""] {
            assert_eq!(id(bad), Err(InvalidStreamId), "{bad:?}");
        }
    }

    #[test]
    fn serde_refuses_invalid_ids() {
        let ok: StreamId = serde_json::from_str("\"abc\"").expect("valid");
        assert_eq!(ok.as_str(), "abc");
        assert!(serde_json::from_str::<StreamId>("\"ABC\"").is_err());
        assert_eq!(serde_json::to_string(&ok).expect("json"), "\"abc\"");
    }
}
