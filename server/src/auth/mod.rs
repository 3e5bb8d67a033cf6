//! Accounts: password hashing, sessions, login throttling and playback tokens.
//!
//! - [`passwords`]: argon2id on the blocking pool, bounded concurrency.
//! - [`throttle`]: failed-login counters per username and per client IP, and
//!   new-account counters per client IP.
//! - [`playback`]: HMAC-signed playback tokens for private streams, and the
//!   secret they are signed with.
//!
//! The HTTP side (cookies, extractors, handlers) lives in `http::auth`,
//! `http::streams`, `http::csrf` and `http::playback`.

pub mod passwords;
pub mod playback;
pub mod throttle;
pub mod visibility;

use std::time::Duration;

use app::accounts::FieldError;

use crate::db::DbError;
use passwords::Passwords;
use playback::PlaybackSigner;
use throttle::{LoginThrottle, RegistrationLimits, RegistrationThrottle, ThrottleLimits};
use visibility::VisibilityCache;

/// When the session cookie gets the `Secure` attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecureCookies {
    /// When the request came over HTTPS: `X-Forwarded-Proto: https` from a
    /// proxy, or the public URL is `https://`.
    Auto,
    /// Always (the server is only reached over HTTPS).
    Always,
    /// Never (plain HTTP, for example on a LAN).
    Never,
}

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "onair_session";

/// Why an accounts operation failed. Mapped to HTTP statuses at the edge.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// No valid session.
    #[error("sign in first")]
    Unauthenticated,
    /// Unknown username or wrong password (never says which).
    #[error("wrong username or password")]
    InvalidCredentials,
    /// Too many failed logins; try again after this long.
    #[error("too many failed logins; try again in {} s", ceil_secs(*.0))]
    TooManyAttempts(Duration),
    /// Too many new accounts from this client IP; try again after this long.
    #[error("too many new accounts from this address; try again in {} s", ceil_secs(*.0))]
    TooManyRegistrations(Duration),
    /// `--open-registration=false`.
    #[error("registration is closed on this server; ask an admin for an account")]
    RegistrationClosed,
    /// The user may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// The username is taken.
    #[error("the username {0} is already taken")]
    UsernameTaken(String),
    /// A field breaks a rule.
    #[error(transparent)]
    Invalid(#[from] FieldError),
    /// Hashing failed (a bug or an exhausted blocking pool).
    #[error("password hashing failed: {0}")]
    Hashing(String),
    /// The OS random number generator failed.
    #[error("could not generate a random value: {0}")]
    Random(String),
    /// The database failed.
    #[error(transparent)]
    Db(Box<DbError>),
    /// Anything else that is a bug, not the client's fault.
    #[error("{0}")]
    Internal(String),
}

impl From<DbError> for AuthError {
    fn from(e: DbError) -> Self {
        AuthError::Db(Box::new(e))
    }
}

/// Settings and shared state for accounts, sessions and playback.
#[derive(Debug)]
pub struct Accounts {
    /// The password hasher.
    pub passwords: Passwords,
    /// Failed-login counters.
    pub throttle: LoginThrottle,
    /// New-account counters per client IP.
    pub registrations: RegistrationThrottle,
    /// How long a session lasts.
    pub session_ttl: Duration,
    /// Whether anyone may register.
    pub open_registration: bool,
    /// When session cookies get `Secure`.
    pub secure_cookies: SecureCookies,
    /// The public URL, if configured.
    pub public_url: Option<url::Url>,
    /// Whether the client IP comes from `X-Forwarded-For`.
    pub trust_forwarded_for: bool,
    /// Signs playback tokens.
    pub playback: PlaybackSigner,
    /// How long playback tokens last.
    pub playback_ttl: Duration,
    /// Recent stream visibility lookups, for the playback check.
    pub visibility: VisibilityCache,
}

/// [`Accounts`] settings taken from the command line.
#[derive(Debug, Clone)]
pub struct AccountsConfig {
    /// How long a session lasts.
    pub session_ttl: Duration,
    /// Whether anyone may register.
    pub open_registration: bool,
    /// When session cookies get `Secure`.
    pub secure_cookies: SecureCookies,
    /// The public URL, if configured.
    pub public_url: Option<url::Url>,
    /// Whether the client IP comes from `X-Forwarded-For`.
    pub trust_forwarded_for: bool,
    /// Login throttling.
    pub throttle: ThrottleLimits,
    /// Registration throttling.
    pub registration: RegistrationLimits,
    /// How long playback tokens last.
    pub playback_ttl: Duration,
    /// How long a visibility lookup is trusted.
    pub visibility_ttl: Duration,
}

impl Accounts {
    /// Accounts with these settings and this playback key.
    pub fn new(config: AccountsConfig, playback_key: &[u8]) -> Self {
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(2);
        Accounts {
            passwords: Passwords::new(cpus),
            throttle: LoginThrottle::new(config.throttle),
            registrations: RegistrationThrottle::new(config.registration),
            session_ttl: config.session_ttl,
            open_registration: config.open_registration,
            secure_cookies: config.secure_cookies,
            public_url: config.public_url,
            trust_forwarded_for: config.trust_forwarded_for,
            playback: PlaybackSigner::new(playback_key),
            playback_ttl: config.playback_ttl,
            visibility: VisibilityCache::new(config.visibility_ttl),
        }
    }
}

/// A fresh session id: 256 random bits, hex. Only its SHA-256 is stored.
pub fn new_session_token() -> Result<String, AuthError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| AuthError::Random(e.to_string()))?;
    Ok(hex::encode(bytes))
}

/// The one rule for who may run a stream (publish to it, change it, see
/// its studio and its summaries): its owner, or an admin. `role` is the
/// stored role (`admin`, `broadcaster`, `viewer`).
pub fn owner_or_admin(user_id: &str, role: &str, owner_id: &str) -> bool {
    role == app::accounts::Role::Admin.as_str() || user_id == owner_id
}

/// The stored form of a session id (SHA-256, hex), the same hash as ingest tokens.
pub fn session_hash(token: &str) -> String {
    crate::db::streams::hash_token(token)
}

/// Whole seconds, rounded up, at least 1 (for `Retry-After`).
pub fn ceil_secs(d: Duration) -> u64 {
    (d.as_secs() + u64::from(d.subsec_nanos() > 0)).max(1)
}

#[cfg(test)]
mod tests {
    use super::owner_or_admin;

    #[test]
    fn a_stream_is_run_by_its_owner_or_an_admin_only() {
        assert!(owner_or_admin("alice", "broadcaster", "alice"));
        assert!(owner_or_admin("root", "admin", "alice"));
        assert!(!owner_or_admin("bob", "broadcaster", "alice"));
        assert!(!owner_or_admin("bob", "viewer", "alice"));
        // Roles are stored lower-case; anything else is not the admin role.
        assert!(!owner_or_admin("bob", "Admin", "alice"));
        assert!(!owner_or_admin("", "", "alice"));
    }
}
