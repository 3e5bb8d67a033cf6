//! `/api/v1/auth/...`: register, log in, log out, who am I; and the extractors
//! other handlers use to find the request's details and signed-in user. The
//! work is done in [`crate::service::accounts`].

use app::accounts::{Credentials, User};
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use super::error::ApiError;
use super::json::{auth_error_response, ApiJson};
use crate::auth::AuthError;
use crate::service::accounts::{self, SetCookie};
use crate::service::{RequestInfo, SessionUser};
use crate::state::AppState;

/// The routes under `/api/v1`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/auth/register", post(register))
        .route("/auth/login", post(login))
        .route("/auth/logout", post(logout))
        .route("/auth/me", get(me))
}

/// Extractor: the request's [`RequestInfo`] (cookie, client IP, proto, host).
#[derive(Debug, Clone)]
pub struct Info(pub RequestInfo);

impl FromRequestParts<AppState> for Info {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        Ok(Info(RequestInfo::from_parts(parts, &state.accounts)))
    }
}

/// Extractor: the signed-in user, if any (looked up once per request).
#[derive(Debug, Clone)]
pub struct MaybeUser(pub Option<SessionUser>);

impl FromRequestParts<AppState> for MaybeUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        if let Some(found) = parts.extensions.get::<MaybeUser>() {
            return Ok(found.clone());
        }
        let info = RequestInfo::from_parts(parts, &state.accounts);
        let found = MaybeUser(accounts::current_user(&state.db, &info).await?);
        parts.extensions.insert(found.clone());
        Ok(found)
    }
}

/// Extractor: the signed-in user, or 401 `unauthenticated`.
#[derive(Debug, Clone)]
pub struct CurrentUser(pub SessionUser);

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        match MaybeUser::from_request_parts(parts, state).await?.0 {
            Some(user) => Ok(CurrentUser(user)),
            None => Err(AuthError::Unauthenticated.into()),
        }
    }
}

fn with_cookie(mut res: Response, cookie: SetCookie) -> Response {
    match HeaderValue::from_str(&cookie.0) {
        Ok(v) => {
            res.headers_mut().insert(header::SET_COOKIE, v);
            res
        }
        Err(e) => ApiError::internal(format!("session cookie header: {e}")).into_response(),
    }
}

/// `POST /api/v1/auth/register`: a new broadcaster account, signed in.
async fn register(
    State(state): State<AppState>,
    Info(info): Info,
    ApiJson(creds): ApiJson<Credentials>,
) -> Response {
    match accounts::register(&state.db, &state.accounts, &info, creds).await {
        Ok((user, cookie)) => {
            with_cookie((StatusCode::CREATED, Json(user)).into_response(), cookie)
        }
        Err(e) => auth_error_response(e),
    }
}

/// `POST /api/v1/auth/login`.
async fn login(
    State(state): State<AppState>,
    Info(info): Info,
    ApiJson(creds): ApiJson<Credentials>,
) -> Response {
    match accounts::login(&state.db, &state.accounts, &info, creds).await {
        Ok((user, cookie)) => with_cookie(Json(user).into_response(), cookie),
        Err(e) => auth_error_response(e),
    }
}

/// `POST /api/v1/auth/logout`: ends the session (if any) and clears the cookie.
async fn logout(State(state): State<AppState>, Info(info): Info) -> Response {
    match accounts::logout(&state.db, &state.accounts, &info).await {
        Ok(cookie) => with_cookie(StatusCode::NO_CONTENT.into_response(), cookie),
        Err(e) => auth_error_response(e),
    }
}

/// `GET /api/v1/auth/me`.
async fn me(CurrentUser(user): CurrentUser) -> Json<User> {
    Json(user.user)
}
