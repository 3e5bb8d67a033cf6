//! `/api/v1/auth/...`: register, log in, log out, who am I; the session
//! cookie; and the extractors other handlers use to find the signed-in user.
//!
//! The cookie `onair_session` holds 256 random bits (hex). The database keeps
//! only its SHA-256, with an expiry. The cookie is `HttpOnly`, `SameSite=Lax`,
//! `Path=/`, and `Secure` per `--secure-cookies`.

use std::net::{IpAddr, SocketAddr};

use app::accounts::{validate_password, validate_username, Credentials, Role, User};
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use super::error::ApiError;
use super::json::{auth_error_response, ApiJson};
use crate::auth::{new_session_token, session_hash, Accounts, AuthError, SESSION_COOKIE};
use crate::config::SecureCookies;
use crate::db::users::UserRow;
use crate::db::DbError;
use crate::state::AppState;

/// The routes under `/api/v1`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/auth/register", post(register))
        .route("/auth/login", post(login))
        .route("/auth/logout", post(logout))
        .route("/auth/me", get(me))
}

/// The signed-in user of a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionUser {
    /// The user.
    pub user: User,
    /// The stored hash of the session id.
    pub session_hash: String,
}

impl SessionUser {
    /// Whether this user is an admin.
    pub fn is_admin(&self) -> bool {
        self.user.role == Role::Admin
    }
}

/// The user of a database row; an unknown role gets the least rights.
pub fn user_from_row(row: UserRow) -> User {
    let role = Role::parse(&row.role).unwrap_or_else(|| {
        tracing::warn!(user = %row.id, role = %row.role, "unknown role in the database; treating as viewer");
        Role::Viewer
    });
    User {
        id: row.id,
        username: row.username,
        role,
    }
}

/// Extractor: the signed-in user, or 401 `unauthenticated`.
#[derive(Debug, Clone)]
pub struct CurrentUser(pub SessionUser);

/// Extractor: the signed-in user, if any.
#[derive(Debug, Clone)]
pub struct MaybeUser(pub Option<SessionUser>);

impl FromRequestParts<AppState> for MaybeUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(found) = parts.extensions.get::<MaybeUser>() {
            return Ok(found.clone());
        }
        let found = match session_cookie(&parts.headers) {
            None => None,
            Some(token) => {
                let hash = session_hash(token);
                state.db.session_user(&hash).await?.map(|row| SessionUser {
                    user: user_from_row(row),
                    session_hash: hash,
                })
            }
        };
        let found = MaybeUser(found);
        parts.extensions.insert(found.clone());
        Ok(found)
    }
}

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match MaybeUser::from_request_parts(parts, state).await?.0 {
            Some(user) => Ok(CurrentUser(user)),
            None => Err(AuthError::Unauthenticated.into()),
        }
    }
}

/// The session cookie's value, from any `Cookie` header.
pub fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, value)| *name == SESSION_COOKIE && !value.is_empty())
        .map(|(_, value)| value)
}

/// Extractor: the client's IP, for login throttling: the peer address, or
/// the last `X-Forwarded-For` entry with `--trust-forwarded-for`.
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        if state.accounts.trust_forwarded_for {
            // The last entry is the one our proxy appended: the address it saw.
            let forwarded = parts
                .headers
                .get_all("x-forwarded-for")
                .iter()
                .next_back()
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.rsplit(',').next())
                .and_then(|s| s.trim().parse::<IpAddr>().ok());
            if let Some(ip) = forwarded {
                return Ok(ClientIp(ip));
            }
        }
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|ConnectInfo(addr)| addr.ip())
            .unwrap_or(IpAddr::from([0, 0, 0, 0]));
        Ok(ClientIp(peer))
    }
}

/// Whether the request came over HTTPS as far as this server can tell: a
/// proxy said so in `X-Forwarded-Proto`.
pub fn forwarded_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
}

/// Whether the session cookie gets `Secure` for this request.
pub fn secure_cookie(accounts: &Accounts, headers: &HeaderMap) -> bool {
    match accounts.secure_cookies {
        SecureCookies::Always => true,
        SecureCookies::Never => false,
        SecureCookies::Auto => {
            forwarded_https(headers)
                || accounts
                    .public_url
                    .as_ref()
                    .is_some_and(|u| u.scheme() == "https")
        }
    }
}

fn cookie_header(value: &str, max_age: u64, secure: bool) -> Result<HeaderValue, AuthError> {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{SESSION_COOKIE}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}"
    ))
    .map_err(|e| AuthError::Internal(format!("session cookie header: {e}")))
}

/// Starts a session for `user` and returns the `Set-Cookie` value. A session
/// the client already had is ended, so one browser holds one session.
async fn start_session(
    state: &AppState,
    headers: &HeaderMap,
    user_id: &str,
) -> Result<HeaderValue, AuthError> {
    let token = new_session_token()?;
    let ttl = state.accounts.session_ttl;
    state
        .db
        .create_session(&session_hash(&token), user_id, ttl)
        .await?;
    if let Some(old) = session_cookie(headers) {
        if let Err(e) = state.db.delete_session(&session_hash(old)).await {
            tracing::warn!(error = %e, "could not end the previous session");
        }
    }
    if let Err(e) = state.db.purge_expired_sessions(user_id).await {
        tracing::warn!(error = %e, "could not purge expired sessions");
    }
    cookie_header(
        &token,
        ttl.as_secs(),
        secure_cookie(&state.accounts, headers),
    )
}

fn with_cookie(status: StatusCode, cookie: HeaderValue, user: User) -> Response {
    let mut res = (status, Json(user)).into_response();
    res.headers_mut().insert(header::SET_COOKIE, cookie);
    res
}

/// `POST /api/v1/auth/register`: a new broadcaster account, signed in.
async fn register(
    State(state): State<AppState>,
    headers: HeaderMap,
    ApiJson(creds): ApiJson<Credentials>,
) -> Response {
    match register_inner(&state, &headers, creds).await {
        Ok(res) => res,
        Err(e) => auth_error_response(e),
    }
}

async fn register_inner(
    state: &AppState,
    headers: &HeaderMap,
    creds: Credentials,
) -> Result<Response, AuthError> {
    if !state.accounts.open_registration {
        return Err(AuthError::RegistrationClosed);
    }
    validate_username(&creds.username)?;
    validate_password(&creds.password)?;
    if state.db.user_by_username(&creds.username).await?.is_some() {
        return Err(AuthError::UsernameTaken(creds.username));
    }
    let hash = state.accounts.passwords.hash(creds.password).await?;
    let row = match state
        .db
        .create_user(&creds.username, &hash, Role::Broadcaster.as_str())
        .await
    {
        Ok(row) => row,
        Err(DbError::Duplicate(_)) => return Err(AuthError::UsernameTaken(creds.username)),
        Err(e) => return Err(e.into()),
    };
    tracing::info!(user = %row.id, username = %row.username, "registered");
    let cookie = start_session(state, headers, &row.id).await?;
    Ok(with_cookie(StatusCode::CREATED, cookie, user_from_row(row)))
}

/// `POST /api/v1/auth/login`.
async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    headers: HeaderMap,
    ApiJson(creds): ApiJson<Credentials>,
) -> Response {
    match login_inner(&state, ip, &headers, creds).await {
        Ok(res) => res,
        Err(e) => auth_error_response(e),
    }
}

async fn login_inner(
    state: &AppState,
    ip: IpAddr,
    headers: &HeaderMap,
    creds: Credentials,
) -> Result<Response, AuthError> {
    // Usernames are lower-case; bound what the throttle keeps per key.
    let username: String = creds
        .username
        .trim()
        .to_lowercase()
        .chars()
        .take(64)
        .collect();
    let attempt = state
        .accounts
        .throttle
        .begin(&username, ip)
        .map_err(|wait| {
            tracing::warn!(username = %username, %ip, "login refused: too many failures");
            AuthError::TooManyAttempts(wait)
        })?;
    let row = state.db.user_by_username(&username).await?;
    let ok = state
        .accounts
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
    state.accounts.throttle.succeeded(attempt);
    let cookie = start_session(state, headers, &row.id).await?;
    tracing::info!(user = %row.id, username = %row.username, "logged in");
    let user = user_from_row(UserRow {
        id: row.id,
        username: row.username,
        role: row.role,
    });
    Ok(with_cookie(StatusCode::OK, cookie, user))
}

/// `POST /api/v1/auth/logout`: ends the session (if any) and clears the cookie.
async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    if let Some(token) = session_cookie(&headers) {
        state.db.delete_session(&session_hash(token)).await?;
    }
    let cookie = cookie_header("", 0, secure_cookie(&state.accounts, &headers))?;
    let mut res = StatusCode::NO_CONTENT.into_response();
    res.headers_mut().insert(header::SET_COOKIE, cookie);
    Ok(res)
}

/// `GET /api/v1/auth/me`.
async fn me(CurrentUser(user): CurrentUser) -> Json<User> {
    Json(user.user)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("a=1; b=2"));
        assert_eq!(session_cookie(&h), None);
        h.append(
            header::COOKIE,
            HeaderValue::from_static("theme=dark; onair_session=abc123 ; x=y"),
        );
        assert_eq!(session_cookie(&h), Some("abc123"));
        let mut empty = HeaderMap::new();
        empty.insert(header::COOKIE, HeaderValue::from_static("onair_session="));
        assert_eq!(session_cookie(&empty), None);
    }

    #[test]
    fn forwarded_proto_is_read_from_the_first_hop() {
        let mut h = HeaderMap::new();
        assert!(!forwarded_https(&h));
        h.insert("x-forwarded-proto", HeaderValue::from_static("HTTPS, http"));
        assert!(forwarded_https(&h));
        h.insert("x-forwarded-proto", HeaderValue::from_static("http"));
        assert!(!forwarded_https(&h));
    }
}
