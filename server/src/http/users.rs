//! `/api/v1/users/{name}`: a broadcaster's public profile. The work is in
//! [`crate::service::listings`].

use app::streams::Profile;
use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};

use super::error::ApiError;
use super::json::ApiQuery;
use crate::service::listings::{self, ProfileParams};
use crate::state::AppState;

/// The routes under `/api/v1`.
pub fn routes() -> Router<AppState> {
    Router::new().route("/users/{name}", get(profile))
}

/// `GET /api/v1/users/{name}`: the user and their public streams, live first.
async fn profile(
    State(state): State<AppState>,
    Path(name): Path<String>,
    ApiQuery(params): ApiQuery<ProfileParams>,
) -> Result<Json<Profile>, ApiError> {
    Ok(Json(listings::profile(&state.db, &name, params).await?))
}
