//! Typed queries on the `user` and `session` tables.
//!
//! Passwords arrive here already hashed (argon2, PHC string) and sessions as
//! the SHA-256 of the cookie value: this module never sees a secret.

use std::time::Duration;

use surrealdb::types::SurrealValue;

use super::{Database, DbError};

/// A user as the rest of the server sees it.
#[derive(Debug, Clone, PartialEq, Eq, SurrealValue)]
pub struct UserRow {
    /// The record key.
    pub id: String,
    /// Unique login name.
    pub username: String,
    /// `admin`, `broadcaster` or `viewer`.
    pub role: String,
}

/// A user with the stored password hash, for logging in.
#[derive(Clone, PartialEq, Eq, SurrealValue)]
pub struct UserCredentials {
    /// The record key.
    pub id: String,
    /// Unique login name.
    pub username: String,
    /// `admin`, `broadcaster` or `viewer`.
    pub role: String,
    /// The argon2 PHC string.
    pub password_hash: String,
}

impl std::fmt::Debug for UserCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserCredentials")
            .field("id", &self.id)
            .field("username", &self.username)
            .field("role", &self.role)
            .field("password_hash", &"<redacted>")
            .finish()
    }
}

/// What [`Database::upsert_user`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Upserted {
    /// A new user.
    Created(UserRow),
    /// An existing user got a new password and role; this many of their
    /// sessions were ended.
    Updated(UserRow, usize),
}

#[derive(Debug, Clone, PartialEq, Eq, SurrealValue)]
struct SessionUser {
    id: Option<String>,
    username: Option<String>,
    role: Option<String>,
}

const USER_FIELDS: &str = "<string> record::id(id) AS id, username, role";

/// Whether a query error is the unique index on usernames refusing a duplicate.
fn is_duplicate_username(e: &surrealdb::Error) -> bool {
    let text = e.to_string();
    text.contains("user_username") && text.contains("already contains")
}

/// A fresh random record key: 80 bits, hex (lower-case letters and digits).
pub(crate) fn new_record_key() -> Result<String, getrandom::Error> {
    let mut raw = [0u8; 10];
    getrandom::fill(&mut raw)?;
    Ok(hex::encode(raw))
}

impl Database {
    /// Creates a user. [`DbError::Duplicate`] if the username is taken.
    pub async fn create_user(
        &self,
        username: &str,
        password_hash: &str,
        role: &str,
    ) -> Result<UserRow, DbError> {
        let id = new_record_key().map_err(|e| DbError::Random(e.to_string()))?;
        let result = self
            .client()
            .query(format!(
                "CREATE type::record('user', $id) SET username = $username, \
                 password_hash = $hash, role = $role RETURN {USER_FIELDS}"
            ))
            .bind(("id", id))
            .bind(("username", username.to_string()))
            .bind(("hash", password_hash.to_string()))
            .bind(("role", role.to_string()))
            .await?
            .check();
        let mut response = match result {
            Ok(r) => r,
            Err(e) if is_duplicate_username(&e) => {
                return Err(DbError::Duplicate(format!("username {username}")))
            }
            Err(e) => return Err(e.into()),
        };
        let row: Option<UserRow> = response.take(0)?;
        row.ok_or_else(|| DbError::Missing("the created user".into()))
    }

    /// Creates the user, or gives an existing one this password hash and role
    /// and ends all their sessions (for `onair admin create-user`).
    pub async fn upsert_user(
        &self,
        username: &str,
        password_hash: &str,
        role: &str,
    ) -> Result<Upserted, DbError> {
        if let Some(existing) = self.user_by_username(username).await? {
            let row: Option<UserRow> = self
                .client()
                .query(format!(
                    "UPDATE type::record('user', $id) SET password_hash = $hash, role = $role \
                     RETURN {USER_FIELDS}"
                ))
                .bind(("id", existing.id.clone()))
                .bind(("hash", password_hash.to_string()))
                .bind(("role", role.to_string()))
                .await?
                .check()?
                .take(0)?;
            let row = row.ok_or_else(|| DbError::Missing(format!("user {username}")))?;
            let ended = self.delete_user_sessions(&existing.id).await?;
            return Ok(Upserted::Updated(row, ended));
        }
        self.create_user(username, password_hash, role)
            .await
            .map(Upserted::Created)
    }

    /// The user with this username, without the password hash (for public
    /// pages such as profiles).
    pub async fn user_named(&self, username: &str) -> Result<Option<UserRow>, DbError> {
        let row: Option<UserRow> = self
            .client()
            .query(format!(
                "SELECT {USER_FIELDS} FROM user WHERE username = $username LIMIT 1"
            ))
            .bind(("username", username.to_string()))
            .await?
            .check()?
            .take(0)?;
        Ok(row)
    }

    /// The user with this username, with the password hash.
    pub async fn user_by_username(
        &self,
        username: &str,
    ) -> Result<Option<UserCredentials>, DbError> {
        let row: Option<UserCredentials> = self
            .client()
            .query(format!(
                "SELECT {USER_FIELDS}, password_hash FROM user WHERE username = $username LIMIT 1"
            ))
            .bind(("username", username.to_string()))
            .await?
            .check()?
            .take(0)?;
        Ok(row)
    }

    /// Starts a session: `token_hash` is the SHA-256 (hex) of the cookie value.
    pub async fn create_session(
        &self,
        token_hash: &str,
        user_id: &str,
        ttl: Duration,
    ) -> Result<(), DbError> {
        self.client()
            .query(
                "CREATE type::record('session', $hash) SET user = type::record('user', $user), \
                 expires_at = time::now() + <duration> $ttl",
            )
            .bind(("hash", token_hash.to_string()))
            .bind(("user", user_id.to_string()))
            .bind(("ttl", format!("{}s", ttl.as_secs().max(1))))
            .await?
            .check()?;
        Ok(())
    }

    /// The user of an unexpired session, if there is one.
    pub async fn session_user(&self, token_hash: &str) -> Result<Option<UserRow>, DbError> {
        let row: Option<SessionUser> = self
            .client()
            .query(
                "SELECT <string> record::id(user) AS id, user.username AS username, \
                 user.role AS role FROM type::record('session', $hash) \
                 WHERE expires_at > time::now()",
            )
            .bind(("hash", token_hash.to_string()))
            .await?
            .check()?
            .take(0)?;
        // A session whose user is gone has no username: no session.
        Ok(row.and_then(|r| {
            Some(UserRow {
                id: r.id?,
                username: r.username?,
                role: r.role?,
            })
        }))
    }

    /// Ends one session (a no-op if it does not exist).
    pub async fn delete_session(&self, token_hash: &str) -> Result<(), DbError> {
        self.client()
            .query("DELETE type::record('session', $hash)")
            .bind(("hash", token_hash.to_string()))
            .await?
            .check()?;
        Ok(())
    }

    /// Ends every session of a user; returns how many there were.
    pub async fn delete_user_sessions(&self, user_id: &str) -> Result<usize, DbError> {
        let gone: Vec<surrealdb::types::Value> = self
            .client()
            .query("DELETE session WHERE user = type::record('user', $user) RETURN BEFORE")
            .bind(("user", user_id.to_string()))
            .await?
            .check()?
            .take(0)?;
        Ok(gone.len())
    }

    /// Deletes expired sessions of one user (done at each login, so the table
    /// does not grow with sessions that were never logged out).
    pub async fn purge_expired_sessions(&self, user_id: &str) -> Result<(), DbError> {
        self.client()
            .query(
                "DELETE session WHERE user = type::record('user', $user) \
                 AND expires_at <= time::now()",
            )
            .bind(("user", user_id.to_string()))
            .await?
            .check()?;
        Ok(())
    }
}
