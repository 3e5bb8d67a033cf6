//! Playback tokens for private streams: `<exp>.<sig>`, where `exp` is the
//! expiry in Unix seconds and `sig` is the unpadded base64url HMAC-SHA256 of
//! the stream id and `exp` under the server's playback secret.
//!
//! A token is bound to one stream and one expiry; changing either breaks the
//! signature. Tokens are not bound to a viewer: one token serves every request
//! of a viewer session (so a CDN can cache keyed on the URL), and expiries are
//! rounded up to [`EXPIRY_GRANULARITY`] so viewers who start within the same
//! few minutes share URLs and cache entries.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

/// Expiries are rounded up to a multiple of this many seconds.
pub const EXPIRY_GRANULARITY: u64 = 300;
/// The file under the data dir that holds a generated secret.
pub const SECRET_FILE: &str = "playback-secret";
/// The shortest secret accepted, in bytes.
pub const MIN_SECRET_BYTES: usize = 32;

/// Domain separation: these MACs mean nothing in any other context.
const CONTEXT: &[u8] = b"onair-playback-v1";

/// Why a token is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TokenError {
    /// Not `<digits>.<base64url>`.
    #[error("the playback token is malformed")]
    Malformed,
    /// The signature does not match this stream and expiry.
    #[error("the playback token is not valid for this stream")]
    BadSignature,
    /// It was valid, and has expired.
    #[error("the playback token has expired")]
    Expired,
}

/// Signs and checks playback tokens. The key never appears in `Debug`.
#[derive(Clone)]
pub struct PlaybackSigner {
    key: Vec<u8>,
}

impl std::fmt::Debug for PlaybackSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PlaybackSigner")
            .field("key", &"<redacted>")
            .finish()
    }
}

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl PlaybackSigner {
    /// A signer with this secret key.
    pub fn new(key: &[u8]) -> Self {
        PlaybackSigner { key: key.to_vec() }
    }

    fn mac(&self, stream_id: &str, expires: u64) -> HmacSha256 {
        // HMAC takes keys of any length; new_from_slice cannot fail for it.
        let mut mac = match HmacSha256::new_from_slice(&self.key) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC accepts keys of any length"),
        };
        mac.update(CONTEXT);
        mac.update(&[0]);
        mac.update(stream_id.as_bytes());
        mac.update(&[0]);
        mac.update(expires.to_string().as_bytes());
        mac
    }

    /// The secret half of a stream's encoder key (`<id>_<this>`): 32 hex
    /// characters of an HMAC over the stream id and the hash of its current
    /// ingest token, so the owner can be shown it at any time while the
    /// server keeps no token, and a new ingest token changes it.
    pub fn stream_key(&self, stream_id: &str, token_hash: &str) -> String {
        let mut mac = match HmacSha256::new_from_slice(&self.key) {
            Ok(m) => m,
            Err(_) => unreachable!("HMAC accepts keys of any length"),
        };
        mac.update(b"onair encoder key");
        mac.update(&[0]);
        mac.update(stream_id.as_bytes());
        mac.update(&[0]);
        mac.update(token_hash.as_bytes());
        let full = hex::encode(mac.finalize().into_bytes());
        full.get(..32).unwrap_or(&full).to_string()
    }

    /// The token for `stream_id` valid until `expires` (Unix seconds).
    pub fn sign(&self, stream_id: &str, expires: u64) -> String {
        let sig = self.mac(stream_id, expires).finalize().into_bytes();
        format!("{expires}.{}", URL_SAFE_NO_PAD.encode(sig))
    }

    /// A token valid for at least `ttl` from `now`, with its expiry rounded up
    /// to [`EXPIRY_GRANULARITY`].
    pub fn issue(&self, stream_id: &str, ttl: Duration, now: u64) -> (String, u64) {
        let target = now.saturating_add(ttl.as_secs().max(1));
        let expires = target.div_ceil(EXPIRY_GRANULARITY) * EXPIRY_GRANULARITY;
        (self.sign(stream_id, expires), expires)
    }

    /// Checks a token for `stream_id` at time `now`; returns its expiry.
    /// The signature is checked (in constant time) before the expiry, so a
    /// token with an edited expiry is `BadSignature`, not `Expired`.
    pub fn verify(&self, stream_id: &str, token: &str, now: u64) -> Result<u64, TokenError> {
        let (exp, sig) = token.split_once('.').ok_or(TokenError::Malformed)?;
        if exp.is_empty() || exp.len() > 20 || !exp.bytes().all(|b| b.is_ascii_digit()) {
            return Err(TokenError::Malformed);
        }
        let expires: u64 = exp.parse().map_err(|_| TokenError::Malformed)?;
        let sig = URL_SAFE_NO_PAD
            .decode(sig)
            .map_err(|_| TokenError::Malformed)?;
        self.mac(stream_id, expires)
            .verify_slice(&sig)
            .map_err(|_| TokenError::BadSignature)?;
        if expires <= now {
            return Err(TokenError::Expired);
        }
        Ok(expires)
    }
}

/// The playback secret could not be read or created.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// Reading or writing the secret file failed.
    #[error("playback secret file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file does not hold a usable secret.
    #[error("playback secret file {0} does not hold at least 32 hex-encoded bytes; delete it to generate a new one (existing playback tokens stop working)")]
    Corrupt(String),
    /// The OS random number generator failed.
    #[error("could not generate the playback secret: {0}")]
    Random(String),
}

/// Reads the secret kept under `data_dir`, or generates 32 random bytes and
/// writes them there (hex, mode 0600) on first start.
pub fn load_or_create_secret(data_dir: &Path) -> Result<Vec<u8>, SecretError> {
    let path = data_dir.join(SECRET_FILE);
    let io = |source| SecretError::Io {
        path: path.display().to_string(),
        source,
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => return parse_secret_file(&path, &text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(io(e)),
    }
    crate::private_fs::create_dir(data_dir).map_err(io)?;
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(|e| SecretError::Random(e.to_string()))?;
    match create_private(&path) {
        Ok(mut file) => {
            file.write_all(format!("{}\n", hex::encode(key)).as_bytes())
                .and_then(|()| file.sync_all())
                .map_err(io)?;
            tracing::info!(path = %path.display(), "generated a playback secret for private streams");
            Ok(key.to_vec())
        }
        // Another process created it first: use theirs.
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let text = std::fs::read_to_string(&path).map_err(io)?;
            parse_secret_file(&path, &text)
        }
        Err(e) => Err(io(e)),
    }
}

fn parse_secret_file(path: &Path, text: &str) -> Result<Vec<u8>, SecretError> {
    warn_if_readable_by_others(path);
    match hex::decode(text.trim()) {
        Ok(key) if key.len() >= MIN_SECRET_BYTES => Ok(key),
        _ => Err(SecretError::Corrupt(path.display().to_string())),
    }
}

#[cfg(unix)]
fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
}

#[cfg(unix)]
fn warn_if_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path) {
        if meta.permissions().mode() & 0o077 != 0 {
            tracing::warn!(path = %path.display(), "the playback secret file is readable by other users; chmod 600 it");
        }
    }
}

#[cfg(not(unix))]
fn warn_if_readable_by_others(_path: &Path) {}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_800_000_000;

    fn signer() -> PlaybackSigner {
        PlaybackSigner::new(b"0123456789abcdef0123456789abcdef")
    }

    #[test]
    fn a_token_verifies_for_its_stream_until_it_expires() {
        let s = signer();
        let (token, exp) = s.issue("abc123", Duration::from_secs(6 * 3600), NOW);
        assert!((NOW + 6 * 3600..NOW + 6 * 3600 + EXPIRY_GRANULARITY).contains(&exp));
        assert_eq!(exp % EXPIRY_GRANULARITY, 0);
        assert!(
            token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.'),
            "URL-safe: {token}"
        );
        assert_eq!(s.verify("abc123", &token, NOW), Ok(exp));
        assert_eq!(s.verify("abc123", &token, exp - 1), Ok(exp));
        assert_eq!(s.verify("abc123", &token, exp), Err(TokenError::Expired));
        // The same inputs give the same token: one URL per viewer session.
        assert_eq!(
            s.issue("abc123", Duration::from_secs(6 * 3600), NOW).0,
            token
        );
    }

    #[test]
    fn another_stream_or_key_is_refused() {
        let s = signer();
        let token = s.sign("abc123", NOW + 60);
        assert_eq!(
            s.verify("abc124", &token, NOW),
            Err(TokenError::BadSignature)
        );
        let other = PlaybackSigner::new(b"another key, also 32 bytes long!");
        assert_eq!(
            other.verify("abc123", &token, NOW),
            Err(TokenError::BadSignature)
        );
    }

    #[test]
    fn tampering_is_refused() {
        let s = signer();
        let token = s.sign("abc123", NOW + 60);
        let (exp, sig) = token.split_once('.').expect("dot");
        // A later expiry with the old signature.
        let later = format!("{}.{sig}", NOW + 3600);
        assert_eq!(
            s.verify("abc123", &later, NOW),
            Err(TokenError::BadSignature)
        );
        // One signature character changed.
        let mut bytes = sig.as_bytes().to_vec();
        bytes[5] = if bytes[5] == b'A' { b'B' } else { b'A' };
        let flipped = format!("{exp}.{}", String::from_utf8(bytes).expect("ascii"));
        assert_eq!(
            s.verify("abc123", &flipped, NOW),
            Err(TokenError::BadSignature)
        );
        // A truncated signature.
        let short = format!("{exp}.{}", &sig[..20]);
        assert_ne!(s.verify("abc123", &short, NOW), Ok(NOW + 60));
        // A genuine token past its expiry is "expired".
        let old = s.sign("abc123", NOW - 10);
        assert_eq!(s.verify("abc123", &old, NOW), Err(TokenError::Expired));
        for bad in ["", "123", ".abc", "12x.abc", "-5.abc", "123.!!!", "1.2.3"] {
            assert!(s.verify("abc123", bad, NOW).is_err(), "{bad:?}");
        }
        assert!(
            !format!("{s:?}").contains("0123"),
            "the key stays out of Debug"
        );
    }

    #[test]
    fn the_secret_is_generated_once_with_private_permissions() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let first = load_or_create_secret(&data).expect("create");
        assert_eq!(first.len(), 32);
        assert_eq!(load_or_create_secret(&data).expect("read"), first, "stable");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(data.join(SECRET_FILE))
                .expect("meta")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(data.join(SECRET_FILE), "not hex").expect("write");
        assert!(matches!(
            load_or_create_secret(&data),
            Err(SecretError::Corrupt(_))
        ));
    }
}
