//! The object store: where segments, playlists and recordings are kept once they
//! leave the live window. One trait, [`ObjectStore`], with a local-disk
//! ([`disk::DiskStore`]) and an S3 ([`s3::S3Store`]) implementation; [`open`]
//! picks one from the configuration.

pub mod disk;
pub mod key;
pub mod s3;
pub mod uploader;

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;

pub use key::{InvalidKey, ObjectKey};
pub use s3::{S3Config, S3_MIN_PART_SIZE};

/// Something went wrong talking to the store.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// No object under that key.
    #[error("object {0} not found")]
    NotFound(String),
    /// The key is not a valid object key.
    #[error(transparent)]
    InvalidKey(#[from] InvalidKey),
    /// The byte range asked for lies outside the object.
    #[error("range not satisfiable for an object of {size} bytes")]
    InvalidRange {
        /// The object's size.
        size: u64,
    },
    /// Local disk I/O failed.
    #[error("disk store: {op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file involved.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// S3 answered with an error or could not be reached.
    #[error("S3 {op} {key}: {message}")]
    S3 {
        /// The S3 operation.
        op: &'static str,
        /// The key or bucket involved.
        key: String,
        /// What the SDK reported, with its context.
        message: String,
    },
}

/// A byte range of an object, as in an HTTP `Range` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ByteRange {
    /// From this offset to the end (`bytes=N-`).
    From(u64),
    /// From the first to the last offset, both included (`bytes=A-B`).
    Inclusive(u64, u64),
    /// The last N bytes (`bytes=-N`).
    Suffix(u64),
}

impl ByteRange {
    /// Resolves the range against an object of `size` bytes into
    /// `(first, last)` offsets, both included; `None` if not satisfiable.
    pub fn resolve(self, size: u64) -> Option<(u64, u64)> {
        if size == 0 {
            return None;
        }
        match self {
            ByteRange::From(start) if start < size => Some((start, size - 1)),
            ByteRange::Inclusive(start, end) if start <= end && start < size => {
                Some((start, end.min(size - 1)))
            }
            ByteRange::Suffix(n) if n > 0 => Some((size.saturating_sub(n), size - 1)),
            _ => None,
        }
    }

    /// Parses an HTTP `Range` header with a single range (`bytes=A-B`,
    /// `bytes=A-`, `bytes=-N`). Multiple ranges and other units give `None`,
    /// and a server then answers with the whole object.
    pub fn parse_header(value: &str) -> Option<ByteRange> {
        let spec = value.trim().strip_prefix("bytes=")?.trim();
        if spec.contains(',') {
            return None;
        }
        let (a, b) = spec.split_once('-')?;
        let num = |t: &str| -> Option<u64> {
            let t = t.trim();
            (!t.is_empty() && t.bytes().all(|c| c.is_ascii_digit()))
                .then(|| t.parse().ok())
                .flatten()
        };
        match (a.trim().is_empty(), b.trim().is_empty()) {
            (true, false) => Some(ByteRange::Suffix(num(b)?)),
            (false, true) => Some(ByteRange::From(num(a)?)),
            (false, false) => Some(ByteRange::Inclusive(num(a)?, num(b)?)),
            (true, true) => None,
        }
    }

    /// The value of an HTTP or S3 `Range` header for this range.
    pub fn header_value(self) -> String {
        match self {
            ByteRange::From(s) => format!("bytes={s}-"),
            ByteRange::Inclusive(s, e) => format!("bytes={s}-{e}"),
            ByteRange::Suffix(n) => format!("bytes=-{n}"),
        }
    }
}

/// Part of an object, with where it sits in the whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangedBytes {
    /// The bytes of the range.
    pub bytes: Bytes,
    /// Offset of the first byte.
    pub first: u64,
    /// Offset of the last byte (included).
    pub last: u64,
    /// Size of the whole object.
    pub total: u64,
}

/// What the store knows about an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectMeta {
    /// The object's key.
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
}

/// Where segments, playlists and recordings are kept.
///
/// Keys are validated [`ObjectKey`]s such as `streams/<id>/720p/12.m4s`.
/// Writes replace whole objects atomically: a reader sees the old or the new
/// object, never a mix.
#[async_trait]
pub trait ObjectStore: Send + Sync + fmt::Debug {
    /// A short description for logs, such as `disk:/var/onair/store`.
    fn describe(&self) -> String;

    /// Stores `body` under `key`, replacing any object there.
    async fn put(&self, key: &ObjectKey, body: Bytes) -> Result<(), StoreError>;

    /// Stores the file at `path` under `key`, streaming it (in several parts
    /// where the backend needs that for large objects). Returns its size.
    async fn put_file(&self, key: &ObjectKey, path: &Path) -> Result<u64, StoreError>;

    /// Reads a whole object.
    async fn get(&self, key: &ObjectKey) -> Result<Bytes, StoreError>;

    /// Reads part of an object.
    async fn get_range(&self, key: &ObjectKey, range: ByteRange)
        -> Result<RangedBytes, StoreError>;

    /// Size of an object, or [`StoreError::NotFound`].
    async fn head(&self, key: &ObjectKey) -> Result<ObjectMeta, StoreError>;

    /// Every object whose key starts with `prefix`, sorted by key.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError>;

    /// Deletes an object. Deleting a missing object is not an error.
    async fn delete(&self, key: &ObjectKey) -> Result<(), StoreError>;

    /// Checks that the store is reachable and writable enough to serve, for `/readyz`.
    async fn check(&self) -> Result<(), StoreError>;
}

/// Where objects are stored, resolved from `--store`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreConfig {
    /// A directory on local disk.
    Disk(std::path::PathBuf),
    /// An S3 bucket.
    S3(S3Config),
}

/// Opens the store the configuration names.
pub async fn open(config: &StoreConfig) -> Result<Arc<dyn ObjectStore>, StoreError> {
    Ok(match config {
        StoreConfig::Disk(root) => Arc::new(disk::DiskStore::open(root).await?),
        StoreConfig::S3(s3) => Arc::new(s3::S3Store::new(s3)),
    })
}

#[cfg(test)]
mod tests {
    use super::ByteRange;

    #[test]
    fn ranges_resolve_like_http() {
        assert_eq!(ByteRange::From(3).resolve(10), Some((3, 9)));
        assert_eq!(ByteRange::Inclusive(2, 4).resolve(10), Some((2, 4)));
        assert_eq!(ByteRange::Inclusive(8, 100).resolve(10), Some((8, 9)));
        assert_eq!(ByteRange::Suffix(4).resolve(10), Some((6, 9)));
        assert_eq!(ByteRange::Suffix(40).resolve(10), Some((0, 9)));
        assert_eq!(ByteRange::From(10).resolve(10), None);
        assert_eq!(ByteRange::Inclusive(5, 4).resolve(10), None);
        assert_eq!(ByteRange::Suffix(0).resolve(10), None);
        assert_eq!(ByteRange::From(0).resolve(0), None);
    }

    #[test]
    fn range_headers_parse_one_range_only() {
        let p = ByteRange::parse_header;
        assert_eq!(p("bytes=0-99"), Some(ByteRange::Inclusive(0, 99)));
        assert_eq!(p("bytes=100-"), Some(ByteRange::From(100)));
        assert_eq!(p("bytes=-5"), Some(ByteRange::Suffix(5)));
        assert_eq!(p(" bytes= 1 - 2 "), Some(ByteRange::Inclusive(1, 2)));
        for bad in [
            "bytes=0-1,4-5",
            "items=0-1",
            "bytes=-",
            "bytes=a-b",
            "bytes=+1-2",
            "0-1",
        ] {
            assert_eq!(p(bad), None, "{bad}");
        }
    }
}
