//! Who is signed in, register, log in, log out.
//!
//! The session cookie `onair_session` holds 256 random bits (hex). The
//! database keeps only its SHA-256, with an expiry. The cookie is `HttpOnly`,
//! `SameSite=Lax`, `Path=/`, and `Secure` per `--secure-cookies`.

use app::accounts::{validate_password, validate_username, Credentials, Role, User};

use super::{user_from_row, RequestInfo, SessionUser};
use crate::auth::{new_session_token, session_hash, Accounts, AuthError, SESSION_COOKIE};
use crate::db::users::UserRow;
use crate::db::{Database, DbError};

/// A `Set-Cookie` header value for the session cookie.
#[derive(Clone, PartialEq, Eq)]
pub struct SetCookie(pub String);

impl std::fmt::Debug for SetCookie {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SetCookie(<redacted>)")
    }
}

fn cookie(value: &str, max_age: u64, secure: bool) -> SetCookie {
    let secure = if secure { "; Secure" } else { "" };
    SetCookie(format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}"
    ))
}

/// The signed-in user, if the request has a valid session.
pub async fn current_user(
    db: &Database,
    info: &RequestInfo,
) -> Result<Option<SessionUser>, DbError> {
    let Some(token) = &info.session else {
        return Ok(None);
    };
    let hash = session_hash(token);
    Ok(db.session_user(&hash).await?.map(|row| SessionUser {
        user: user_from_row(row),
        session_hash: hash,
    }))
}

/// Starts a session for `user_id`. A session the client already had is
/// ended, so one browser holds one session.
async fn start_session(
    db: &Database,
    accounts: &Accounts,
    info: &RequestInfo,
    user_id: &str,
) -> Result<SetCookie, AuthError> {
    let token = new_session_token()?;
    let ttl = accounts.session_ttl;
    db.create_session(&session_hash(&token), user_id, ttl)
        .await?;
    if let Some(old) = &info.session {
        if let Err(e) = db.delete_session(&session_hash(old)).await {
            tracing::warn!(error = %e, "could not end the previous session");
        }
    }
    if let Err(e) = db.purge_expired_sessions(user_id).await {
        tracing::warn!(error = %e, "could not purge expired sessions");
    }
    Ok(cookie(&token, ttl.as_secs(), info.secure_cookie(accounts)))
}

/// A new broadcaster account, signed in. At most `--register-max-per-ip`
/// accounts are created per client IP in `--register-window`.
pub async fn register(
    db: &Database,
    accounts: &Accounts,
    info: &RequestInfo,
    creds: Credentials,
) -> Result<(User, SetCookie), AuthError> {
    if !accounts.open_registration {
        return Err(AuthError::RegistrationClosed);
    }
    validate_username(&creds.username)?;
    validate_password(&creds.password)?;
    // Counted before the hash runs; taken back (dropped) unless the account
    // is created, so only new accounts count.
    let ip = info.ip;
    let reservation = accounts.registrations.begin(ip).map_err(|wait| {
        tracing::warn!(%ip, "registration refused: too many new accounts from this address");
        AuthError::TooManyRegistrations(wait)
    })?;
    if db.user_by_username(&creds.username).await?.is_some() {
        return Err(AuthError::UsernameTaken(creds.username));
    }
    let hash = accounts.passwords.hash(creds.password).await?;
    let row = match db
        .create_user(&creds.username, &hash, Role::Broadcaster.as_str())
        .await
    {
        Ok(row) => row,
        Err(DbError::Duplicate(_)) => return Err(AuthError::UsernameTaken(creds.username)),
        Err(e) => return Err(e.into()),
    };
    reservation.keep();
    tracing::info!(user = %row.id, username = %row.username, %ip, "registered");
    let cookie = start_session(db, accounts, info, &row.id).await?;
    Ok((user_from_row(row), cookie))
}

/// Logs in, subject to the throttle.
pub async fn login(
    db: &Database,
    accounts: &Accounts,
    info: &RequestInfo,
    creds: Credentials,
) -> Result<(User, SetCookie), AuthError> {
    // Usernames are lower-case; bound what the throttle keeps per key.
    let username: String = creds
        .username
        .trim()
        .to_lowercase()
        .chars()
        .take(64)
        .collect();
    let ip = info.ip;
    let attempt = accounts.throttle.begin(&username, ip).map_err(|wait| {
        tracing::warn!(username = %username, %ip, "login refused: too many failures");
        AuthError::TooManyAttempts(wait)
    })?;
    let row = db.user_by_username(&username).await?;
    let ok = accounts
        .passwords
        .verify(
            creds.password,
            row.as_ref().map(|r| r.password_hash.clone()),
        )
        .await?;
    let Some(row) = row.filter(|_| ok) else {
        tracing::info!(username = %username, %ip, "login failed");
        return Err(AuthError::InvalidCredentials);
    };
    accounts.throttle.succeeded(attempt);
    let cookie = start_session(db, accounts, info, &row.id).await?;
    tracing::info!(user = %row.id, username = %row.username, "logged in");
    let user = user_from_row(UserRow {
        id: row.id,
        username: row.username,
        role: row.role,
    });
    Ok((user, cookie))
}

/// Ends the request's session (if any); returns the cookie that clears it.
pub async fn logout(
    db: &Database,
    accounts: &Accounts,
    info: &RequestInfo,
) -> Result<SetCookie, AuthError> {
    if let Some(token) = &info.session {
        db.delete_session(&session_hash(token)).await?;
    }
    Ok(cookie("", 0, info.secure_cookie(accounts)))
}
