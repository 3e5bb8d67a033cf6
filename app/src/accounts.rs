//! Accounts as the API and the pages see them: users, roles, the credentials a
//! client sends, and the rules usernames and passwords must follow (shared, so
//! the browser can check a form before it is sent and the server enforces the
//! same rules); and the server functions that sign in and out.

#[cfg(feature = "ssr")]
use crate::serverfn::{BoxFuture, Parts, Reply};
use leptos::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::AppError;

/// What a user may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, including other people's streams.
    Admin,
    /// Creates and runs their own streams. New registrations get this role.
    Broadcaster,
    /// Watches; cannot create streams.
    Viewer,
}

impl Role {
    /// The name stored in the database and sent in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Broadcaster => "broadcaster",
            Role::Viewer => "viewer",
        }
    }

    /// Parses the stored name.
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "admin" => Some(Role::Admin),
            "broadcaster" => Some(Role::Broadcaster),
            "viewer" => Some(Role::Viewer),
            _ => None,
        }
    }

    /// Whether this role may create streams.
    pub fn can_broadcast(self) -> bool {
        matches!(self, Role::Admin | Role::Broadcaster)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A user as the API returns it (`GET /api/v1/auth/me`, register, login).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    /// The user's id.
    pub id: String,
    /// Unique login name.
    pub username: String,
    /// What the user may do.
    pub role: Role,
}

/// The body of `POST /api/v1/auth/register` and `POST /api/v1/auth/login`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Credentials {
    /// Login name.
    pub username: String,
    /// Password, in clear over the (TLS) connection; never stored or logged.
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// Usernames: 3 to 32 characters.
pub const USERNAME_LEN: std::ops::RangeInclusive<usize> = 3..=32;
/// Passwords: at least this many characters.
pub const PASSWORD_MIN_CHARS: usize = 8;
/// Passwords: at most this many bytes (hashing cost stays bounded).
pub const PASSWORD_MAX_BYTES: usize = 1024;

/// A value that breaks a rule; `field` names the JSON field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("{field}: {message}")]
pub struct FieldError {
    /// The JSON field.
    pub field: &'static str,
    /// What is wrong, for people.
    pub message: String,
}

impl FieldError {
    /// A field error.
    pub fn new(field: &'static str, message: impl Into<String>) -> Self {
        FieldError {
            field,
            message: message.into(),
        }
    }
}

/// Checks a new username: 3 to 32 of `a-z`, `0-9`, `_` and `-`.
pub fn validate_username(username: &str) -> Result<(), FieldError> {
    let ok_chars = username
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
    if !USERNAME_LEN.contains(&username.len()) || !ok_chars {
        return Err(FieldError::new(
            "username",
            "must be 3 to 32 characters: lower-case letters a-z, digits, _ and -",
        ));
    }
    Ok(())
}

/// Checks a new password: at least 8 characters, at most 1024 bytes.
pub fn validate_password(password: &str) -> Result<(), FieldError> {
    if password.chars().count() < PASSWORD_MIN_CHARS {
        return Err(FieldError::new(
            "password",
            format!("must be at least {PASSWORD_MIN_CHARS} characters"),
        ));
    }
    if password.len() > PASSWORD_MAX_BYTES {
        return Err(FieldError::new(
            "password",
            format!("must be at most {PASSWORD_MAX_BYTES} bytes"),
        ));
    }
    Ok(())
}

/// What this area's server functions need from the server (server build
/// only). The server implements it and provides an `Arc<dyn AccountsBackend>` in the
/// Leptos context; the rules are the JSON API's (docs/api.md), and refusals
/// are [`AppError::Refused`] with the API's
/// status and code.
#[cfg(feature = "ssr")]
pub trait AccountsBackend: Send + Sync + 'static {
    /// The signed-in user, if any.
    fn current_user(&self, req: Parts) -> BoxFuture<'_, Result<Option<User>, AppError>>;
    /// Registers a broadcaster and signs them in.
    fn register(
        &self,
        req: Parts,
        creds: Credentials,
    ) -> BoxFuture<'_, Result<Reply<User>, AppError>>;
    /// Signs in (throttled like the API).
    fn login(&self, req: Parts, creds: Credentials)
        -> BoxFuture<'_, Result<Reply<User>, AppError>>;
    /// Signs out.
    fn logout(&self, req: Parts) -> BoxFuture<'_, Result<Reply<()>, AppError>>;
}

/// The signed-in user, if any.
#[server(prefix = "/api/fn")]
pub async fn current_user() -> Result<Option<User>, AppError> {
    use crate::serverfn::{provided, request, status};
    status(
        provided::<dyn AccountsBackend>()?
            .current_user(request()?)
            .await,
    )
}

/// Registers a broadcaster account and signs it in (sets the session cookie).
#[server(prefix = "/api/fn")]
pub async fn register(creds: Credentials) -> Result<User, AppError> {
    use crate::serverfn::{provided, request, respond};
    respond(
        provided::<dyn AccountsBackend>()?
            .register(request()?, creds)
            .await,
    )
}

/// Signs in (sets the session cookie). Throttled like the JSON API.
#[server(prefix = "/api/fn")]
pub async fn login(creds: Credentials) -> Result<User, AppError> {
    use crate::serverfn::{provided, request, respond};
    respond(
        provided::<dyn AccountsBackend>()?
            .login(request()?, creds)
            .await,
    )
}

/// Signs out (clears the session cookie).
#[server(prefix = "/api/fn")]
pub async fn logout() -> Result<(), AppError> {
    use crate::serverfn::{provided, request, respond};
    respond(provided::<dyn AccountsBackend>()?.logout(request()?).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_follow_the_rules() {
        for ok in ["abc", "a_b-c", "user123", &"x".repeat(32)] {
            assert_eq!(validate_username(ok), Ok(()), "{ok}");
        }
        for bad in [
            "ab",
            "Alice",
            "al ice",
            "ali.ce",
            "",
            &"x".repeat(33),
            "émile",
        ] {
            let err = validate_username(bad).expect_err(bad);
            assert_eq!(err.field, "username");
        }
    }

    #[test]
    fn passwords_follow_the_rules() {
        assert!(validate_password("12345678").is_ok());
        assert!(validate_password("ééééééé").is_err(), "7 characters");
        assert!(
            validate_password("éééééééé").is_ok(),
            "8 characters, 16 bytes"
        );
        assert!(validate_password(&"x".repeat(1025)).is_err());
    }

    #[test]
    fn roles_and_users_have_a_stable_json_shape() {
        let user = User {
            id: "u1".into(),
            username: "alice".into(),
            role: Role::Broadcaster,
        };
        assert_eq!(
            serde_json::to_string(&user).expect("json"),
            r#"{"id":"u1","username":"alice","role":"broadcaster"}"#
        );
        for r in [Role::Admin, Role::Broadcaster, Role::Viewer] {
            assert_eq!(Role::parse(r.as_str()), Some(r));
        }
        assert!(
            serde_json::from_str::<Credentials>(r#"{"username":"a","password":"b","x":1}"#)
                .is_err()
        );
        let c = Credentials {
            username: "a".into(),
            password: "secret-pw".into(),
        };
        assert!(!format!("{c:?}").contains("secret-pw"));
    }
}
