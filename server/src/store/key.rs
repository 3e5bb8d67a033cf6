//! Object keys: validated so that no key can escape the store's root on disk or
//! surprise an S3 gateway.

use std::fmt;

/// The longest key accepted, in bytes (S3's own limit is 1024).
pub const MAX_KEY_LEN: usize = 900;

/// A key that is not allowed, with the reason.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid object key {key:?}: {reason}")]
pub struct InvalidKey {
    /// The key as given.
    pub key: String,
    /// Why it was refused.
    pub reason: &'static str,
}

/// A validated object key: `/`-separated segments of `[A-Za-z0-9._-]`, none
/// empty, none starting with a dot, at most [`MAX_KEY_LEN`] bytes.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjectKey(String);

impl ObjectKey {
    /// Validates `key`.
    pub fn new(key: impl Into<String>) -> Result<Self, InvalidKey> {
        let key = key.into();
        let fail = |reason| {
            Err(InvalidKey {
                key: key.clone(),
                reason,
            })
        };
        if key.is_empty() {
            return fail("empty");
        }
        if key.len() > MAX_KEY_LEN {
            return fail("too long");
        }
        for segment in key.split('/') {
            if segment.is_empty() {
                return fail("empty path segment");
            }
            if segment.starts_with('.') {
                return fail("a path segment starts with '.'");
            }
            if !segment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
            {
                return fail("only letters, digits, '.', '_', '-' and '/' are allowed");
            }
        }
        Ok(ObjectKey(key))
    }

    /// The key as a string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::ObjectKey;

    #[test]
    fn normal_keys_pass() {
        for k in [
            "streams/abc/720p/12.m4s",
            "streams/x/init.mp4",
            "a",
            "x/recording.mp4",
        ] {
            assert_eq!(ObjectKey::new(k).expect(k).as_str(), k);
        }
    }

    #[test]
    fn escaping_or_odd_keys_fail() {
        for k in [
            "",
            "/abs",
            "a//b",
            "a/../b",
            "..",
            "a/.hidden",
            "a/b/",
            "sp ace",
            "ü",
            "a\\b",
            &"x".repeat(901),
        ] {
            assert!(ObjectKey::new(k).is_err(), "{k:?} should be refused");
        }
    }
}
