//! Password hashing with argon2id (default parameters, PHC strings), off the
//! async runtime and with bounded concurrency.
//!
//! Each hash takes tens of milliseconds of CPU and about 19 MiB of memory, so
//! hashing runs on the blocking pool and at most [`Passwords::new`]'s `max`
//! hashes run at once: a flood of logins queues instead of exhausting memory.

use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use tokio::sync::{OnceCell, Semaphore};

use super::AuthError;

/// The password hasher, shared by every request.
#[derive(Debug, Clone)]
pub struct Passwords {
    permits: Arc<Semaphore>,
    /// A hash of a random password, verified against when the username does not
    /// exist, so that answer takes as long as a wrong password.
    dummy: Arc<OnceCell<String>>,
}

impl Passwords {
    /// A hasher that runs at most `max` hashes at once.
    pub fn new(max: usize) -> Self {
        Passwords {
            permits: Arc::new(Semaphore::new(max.max(1))),
            dummy: Arc::new(OnceCell::new()),
        }
    }

    /// Hashes a password into a PHC string (`$argon2id$v=19$m=19456,t=2,p=1$…`).
    pub async fn hash(&self, password: String) -> Result<String, AuthError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| AuthError::Hashing(e.to_string()))?;
        tokio::task::spawn_blocking(move || hash_blocking(&password))
            .await
            .map_err(|e| AuthError::Hashing(e.to_string()))?
    }

    /// Whether `password` matches `hash`. With `None` (no such user) it checks
    /// against a dummy hash and returns `false`, taking the same time. A stored
    /// value that is not a PHC string never matches.
    pub async fn verify(&self, password: String, hash: Option<String>) -> Result<bool, AuthError> {
        let (hash, real) = match hash {
            Some(h) => (h, true),
            None => (self.dummy_hash().await?, false),
        };
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|e| AuthError::Hashing(e.to_string()))?;
        let ok = tokio::task::spawn_blocking(move || verify_blocking(&password, &hash))
            .await
            .map_err(|e| AuthError::Hashing(e.to_string()))?;
        Ok(ok && real)
    }

    async fn dummy_hash(&self) -> Result<String, AuthError> {
        self.dummy
            .get_or_try_init(|| async {
                let mut raw = [0u8; 24];
                getrandom::fill(&mut raw).map_err(|e| AuthError::Random(e.to_string()))?;
                self.hash(hex::encode(raw)).await
            })
            .await
            .cloned()
    }
}

/// Hashes on the current thread (for the CLI and the blocking pool).
pub fn hash_blocking(password: &str) -> Result<String, AuthError> {
    let mut salt = [0u8; 16];
    getrandom::fill(&mut salt).map_err(|e| AuthError::Random(e.to_string()))?;
    let salt = SaltString::encode_b64(&salt).map_err(|e| AuthError::Hashing(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Hashing(e.to_string()))
}

/// Verifies on the current thread; anything but a match is `false`.
pub fn verify_blocking(password: &str, hash: &str) -> bool {
    match PasswordHash::new(hash) {
        Ok(parsed) => Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => {
            tracing::warn!("a stored password hash is not a PHC string; the login is refused");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_differ_per_salt() {
        let p = Passwords::new(2);
        let a = p.hash("correct horse".into()).await.expect("hash");
        let b = p.hash("correct horse".into()).await.expect("hash");
        assert!(a.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"), "{a}");
        assert_ne!(a, b, "a fresh salt each time");
        assert!(p
            .verify("correct horse".into(), Some(a.clone()))
            .await
            .expect("verify"));
        assert!(!p
            .verify("wrong horse".into(), Some(a))
            .await
            .expect("verify"));
        assert!(!p
            .verify("correct horse".into(), None)
            .await
            .expect("no user"));
        assert!(!p
            .verify("x".into(), Some("not-a-phc-string".into()))
            .await
            .expect("garbage hash"));
    }
}
