//! The HTTP edge: routes, middleware, static files and error mapping.
//!
//! - `/healthz`, `/readyz`, `/metrics`: see [`health`].
//! - `/api/v1/...`: the JSON API ([`auth`], [`streams`], [`users`], [`analytics`],
//!   [`transcripts`]: transcripts, search, summaries); unknown
//!   paths get a JSON 404 ([`error::ApiError`]).
//! - `/api/fn/...`: Leptos server functions.
//! - `/live/...`: the origin ([`live`]) behind the playback gate ([`playback`]);
//!   a stream another node owns is forwarded there ([`forwarded`]).
//! - everything under `/api/`: body size limit ([`json::limit_api_body`]) and
//!   the cross-site request check ([`csrf`]); the WebSocket routes' session
//!   and per-client cap ([`sockets`]).
//! - everything else: Leptos pages, then static files from the site root
//!   ([`site::static_file`]: precompressed, content-hashed names `immutable`),
//!   then the app's own 404 page.
//! - pages and JSON are compressed for clients that accept it
//!   ([`site::compress`]); `/live`, `/vod` and WebSocket upgrades never are.

pub mod analytics;
pub mod auth;
pub mod chapters;
pub mod chat;
pub mod csrf;
pub mod error;
pub mod forwarded;
pub mod headers;
pub mod health;
pub mod json;
pub mod live;
pub mod playback;
pub mod site;
pub mod sockets;
pub mod streams;
pub mod transcripts;
pub mod users;
pub mod vod;
pub mod whep;
pub mod whip;
pub mod writes;

use axum::extract::{OriginalUri, Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use leptos_axum::{generate_route_list, LeptosRoutes};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::set_header::SetResponseHeaderLayer;
use tower_http::trace::TraceLayer;

use crate::state::AppState;
use crate::telemetry;
use error::ApiError;

/// Builds the whole application router.
pub fn router(state: AppState) -> Router {
    let leptos_options = state.leptos_options.clone();
    let routes = generate_route_list(app::App);
    let services = state.services.clone();
    let assets = state.site.assets.clone();
    let context = move || {
        services.provide();
        leptos::prelude::provide_context(assets.clone());
        headers::page_headers();
    };

    let files = leptos_axum::file_and_error_handler_with_context::<AppState, _>(
        context.clone(),
        app::shell,
    );
    let site = state.site.clone();
    let fallback = move |method: Method, uri: Uri, state: State<AppState>, req: Request| {
        let files = files.clone();
        let site = site.clone();
        async move {
            let path = uri.path();
            if path == "/api" || path.starts_with("/api/") {
                return ApiError::not_found(format!("no API route {method} {path}"))
                    .into_response();
            }
            if let Some(res) = site::static_file(&site, &method, &uri, req.headers().clone()).await
            {
                return res;
            }
            // Not a file: Leptos renders the app's 404 page.
            files(uri, state, req).await
        }
    };

    let api = Router::new()
        .route("/streams/{id}/ingest", get(sockets::ingest))
        .route("/streams/{id}/events", get(sockets::events))
        .merge(auth::routes())
        .merge(analytics::routes())
        .merge(streams::routes())
        .merge(transcripts::routes())
        .merge(chapters::routes())
        .merge(chat::routes())
        .merge(users::routes())
        .merge(whip::routes())
        .merge(whep::routes())
        .fallback(api_not_found)
        .method_not_allowed_fallback(api_method_not_allowed)
        // API answers are per user (and may hold tokens): never cached.
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            HeaderValue::from_static("no-store"),
        ));

    let [nosniff, referrer] = headers::common();
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .nest("/api/v1", api)
        .merge(playback::routes(&state))
        .leptos_routes_with_context(&state, routes, context, {
            let options = leptos_options.clone();
            move || app::shell(options.clone())
        })
        .route_layer(middleware::from_fn(telemetry::remember_route))
        .fallback(fallback)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            json::limit_api_body,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            writes::limit_api_writes,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), csrf::guard))
        .layer(SetResponseHeaderLayer::if_not_present(nosniff.0, nosniff.1))
        .layer(SetResponseHeaderLayer::if_not_present(
            referrer.0, referrer.1,
        ))
        .layer(CatchPanicLayer::custom(error::panic_response))
        .layer(middleware::from_fn(site::revalidate_pages))
        .layer(middleware::from_fn(site::compress))
        .layer(TraceLayer::new_for_http().make_span_with(telemetry::request_span))
        .layer(middleware::from_fn(telemetry::track_http))
        .with_state(state)
}

async fn api_method_not_allowed(method: Method, OriginalUri(uri): OriginalUri) -> Response {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{} does not accept {method}", uri.path()),
    )
    .into_response()
}

async fn api_not_found(method: Method, OriginalUri(uri): OriginalUri) -> Response {
    // OriginalUri: inside `nest`, `Uri` has the prefix stripped.
    ApiError::not_found(format!("no API route {method} {}", uri.path())).into_response()
}
