//! Request bodies of the JSON API: the [`ApiJson`] extractor (whose refusals
//! are API errors, not axum's plain-text ones), the body size limit for every
//! `/api/` request, and the mapping of accounts and database errors to API
//! errors.

use axum::body::Body;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;

use super::error::ApiError;
use crate::auth::AuthError;
use crate::db::DbError;
use crate::state::AppState;

/// A JSON body; refusals are JSON errors:
/// 415 `unsupported_media_type`, 400 `bad_json`, 422 `invalid_body`,
/// 413 `payload_too_large`.
#[derive(Debug, Clone)]
pub struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match axum::Json::<T>::from_request(req, state).await {
            Ok(axum::Json(v)) => Ok(ApiJson(v)),
            Err(rejection) => Err(json_rejection(rejection)),
        }
    }
}

fn json_rejection(rejection: JsonRejection) -> ApiError {
    let text = rejection.body_text();
    match rejection {
        JsonRejection::MissingJsonContentType(_) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the body as JSON with Content-Type: application/json",
        ),
        JsonRejection::JsonSyntaxError(_) => {
            ApiError::new(StatusCode::BAD_REQUEST, "bad_json", text)
        }
        JsonRejection::JsonDataError(_) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_body", text)
        }
        other if other.status() == StatusCode::PAYLOAD_TOO_LARGE => too_large(),
        other => ApiError::new(other.status(), "bad_request", text),
    }
}

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        "the request body is larger than this server accepts",
    )
}

/// Query parameters; a malformed query is 400 `bad_request`.
#[derive(Debug, Clone)]
pub struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(v)) => Ok(ApiQuery(v)),
            Err(e) => Err(query_rejection(e)),
        }
    }
}

fn query_rejection(e: QueryRejection) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "bad_request", e.body_text())
}

/// Middleware: bodies of requests under `/api/` are limited to
/// `--api-max-body-bytes`. A larger `Content-Length` is refused at once; a
/// body without one is cut off at the limit (and the handler answers 413).
pub async fn limit_api_body(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    if !(path == "/api" || path.starts_with("/api/")) {
        return next.run(req).await;
    }
    let limit = state.api_max_body_bytes;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return too_large().into_response();
    }
    let (parts, body) = req.into_parts();
    // Covers every body reader: the Json extractor (which then answers 413)
    // and the server functions.
    let limited = Body::new(http_body_util::Limited::new(body, limit));
    next.run(Request::from_parts(parts, limited)).await
}

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Unauthenticated => {
                ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", e.to_string())
            }
            AuthError::InvalidCredentials => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid_credentials",
                e.to_string(),
            ),
            AuthError::TooManyAttempts(_) => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_attempts",
                e.to_string(),
            ),
            AuthError::TooManyRegistrations(_) => ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_registrations",
                e.to_string(),
            ),
            AuthError::RegistrationClosed => {
                ApiError::new(StatusCode::FORBIDDEN, "registration_closed", e.to_string())
            }
            AuthError::Forbidden(m) => ApiError::new(StatusCode::FORBIDDEN, "forbidden", m),
            AuthError::UsernameTaken(_) => {
                ApiError::new(StatusCode::CONFLICT, "username_taken", e.to_string())
            }
            AuthError::Invalid(f) => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
                f.to_string(),
            ),
            AuthError::Db(db) => (*db).into(),
            other => ApiError::internal(other),
        }
    }
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        if e.is_storage_full() {
            // Not a bug: the operator has to free space, and the client may
            // try again later.
            tracing::error!(error = %e, "the database refused a write: its storage is full");
            return ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "storage_full",
                "the server's storage is full; try again later",
            );
        }
        ApiError::internal(e)
    }
}

/// Adds `Retry-After` to a 429 for [`AuthError::TooManyAttempts`] and
/// [`AuthError::TooManyRegistrations`].
pub fn auth_error_response(e: AuthError) -> Response {
    let retry = match &e {
        AuthError::TooManyAttempts(wait) | AuthError::TooManyRegistrations(wait) => {
            Some(crate::auth::ceil_secs(*wait))
        }
        _ => None,
    };
    let mut res = ApiError::from(e).into_response();
    if let Some(secs) = retry {
        if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
            res.headers_mut().insert(header::RETRY_AFTER, v);
        }
    }
    res
}
