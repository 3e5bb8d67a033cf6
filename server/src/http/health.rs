//! `/healthz` (the process is up), `/readyz` (its dependencies answer) and
//! `/metrics` (Prometheus text format).

use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use super::error::ApiError;
use crate::db::streams::subtle_eq::ct_eq;
use crate::state::AppState;

/// How long each readiness check may take before it counts as failed.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// The `/readyz` body.
#[derive(Debug, Serialize)]
pub struct Readiness {
    /// `ready`, `degraded` (ready, but cut off from the other nodes: 200
    /// still) or `not_ready` (503).
    pub status: &'static str,
    /// One entry per dependency.
    pub checks: Vec<Check>,
}

/// The result of checking one dependency.
#[derive(Debug, Serialize)]
pub struct Check {
    /// `database`, `store` or (cluster mode) `bus`.
    pub name: &'static str,
    /// Whether it answered.
    pub ok: bool,
    /// What was checked (path or URL, without credentials).
    pub target: String,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Always 200 while the process serves requests.
pub async fn healthz() -> impl IntoResponse {
    Json(serde_json::json!({ "status": "ok" }))
}

async fn timed<F, E>(fut: F) -> Option<String>
where
    F: std::future::Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    match tokio::time::timeout(CHECK_TIMEOUT, fut).await {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some(format!("no answer within {} s", CHECK_TIMEOUT.as_secs())),
    }
}

/// 200 when the database and the store answer, 503 with the reasons
/// otherwise. In cluster mode a `bus` check says whether NATS is reachable;
/// without it the status is `degraded` (still 200: the node serves its own
/// viewers).
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let (db, store) = tokio::join!(timed(state.db.check()), timed(state.store.check()));
    let checks = vec![
        Check {
            name: "database",
            ok: db.is_none(),
            target: state.db.describe().to_string(),
            reason: db,
        },
        Check {
            name: "store",
            ok: store.is_none(),
            target: state.store.describe(),
            reason: store,
        },
    ];
    let ready = checks.iter().all(|c| c.ok);
    // Cluster mode: without NATS the node still serves its own viewers, so
    // it stays ready, but says it is degraded.
    let mut checks = checks;
    let bus = state.rooms.bus().health();
    let degraded = bus.as_ref().is_some_and(|b| b.problem.is_some());
    if let Some(b) = bus {
        checks.push(Check {
            name: "bus",
            ok: b.problem.is_none(),
            target: b.target,
            reason: b.problem,
        });
    }
    for c in checks.iter().filter(|c| !c.ok) {
        tracing::warn!(
            dependency = c.name,
            reason = c.reason.as_deref().unwrap_or(""),
            "not ready"
        );
    }
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = Readiness {
        status: match (ready, degraded) {
            (false, _) => "not_ready",
            (true, true) => "degraded",
            (true, false) => "ready",
        },
        checks,
    };
    (status, Json(body))
}

/// The Prometheus text exposition; with `--metrics-token`, only for a
/// request that carries it as a bearer token (else 401).
pub async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    if let Some(expected) = state.metrics_token.as_deref() {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim);
        let ok = given.is_some_and(|g| ct_eq(g.as_bytes(), expected.as_bytes()));
        if !ok {
            let mut res = ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "/metrics needs the metrics token: Authorization: Bearer <token>",
            )
            .into_response();
            res.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"metrics\""),
            );
            return res;
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}
