//! Logs (`tracing`) and metrics (Prometheus text at `/metrics`).

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Buckets for request latency, in seconds: 1 ms to 30 s (blocking playlist
/// requests wait up to a few seconds by design).
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Buckets for the ladder's speed (media seconds encoded per second of
/// work, one sample per segment): below 1.0 a stream falls behind.
const SPEED_BUCKETS: &[f64] = &[0.5, 0.75, 0.9, 1.0, 1.1, 1.25, 1.5, 2.0, 3.0, 5.0];

/// The log filter when neither `ONAIR_LOG` nor `RUST_LOG` is set: our own
/// `info`, and only warnings from the embedded database's internals.
pub const DEFAULT_LOG_FILTER: &str = "info,surrealdb=warn,surrealdb_core=warn,surrealkv=warn";

/// Starts logging to stderr. The filter comes from `ONAIR_LOG` (or `RUST_LOG`),
/// default [`DEFAULT_LOG_FILTER`]. Safe to call more than once; later calls do nothing.
pub fn init_logging(format: LogFormat) {
    let filter = std::env::var("ONAIR_LOG")
        .ok()
        .or_else(|| std::env::var("RUST_LOG").ok())
        .and_then(|f| EnvFilter::try_new(f).ok())
        .unwrap_or_else(|| EnvFilter::new(DEFAULT_LOG_FILTER));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}

/// What stands in a logged URI for a playback token.
pub const REDACTED: &str = "REDACTED";

/// A request URI as logs may show it: playback tokens, in `/t/{token}/`
/// path segments and in `token=` query values, replaced by [`REDACTED`].
/// Every URI that is logged goes through here (the request spans of
/// [`request_span`], the cross-site refusals).
pub fn redact_uri(uri: &axum::http::Uri) -> String {
    let mut segments: Vec<&str> = uri.path().split('/').collect();
    for i in 1..segments.len() {
        if segments[i - 1] == "t" || segments[i - 1].eq_ignore_ascii_case("%74") {
            segments[i] = REDACTED;
        }
    }
    let mut out = segments.join("/");
    if let Some(query) = uri.query() {
        out.push('?');
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| {
                // The name as the query extractor reads it (`%74oken` is `token`).
                let name = url::form_urlencoded::parse(pair.as_bytes())
                    .next()
                    .map(|(name, _)| name.into_owned())
                    .unwrap_or_default();
                if name.eq_ignore_ascii_case("token") {
                    let raw = pair.split_once('=').map_or(pair, |(n, _)| n);
                    format!("{raw}={REDACTED}")
                } else {
                    pair.to_string()
                }
            })
            .collect();
        out.push_str(&pairs.join("&"));
    }
    out
}

/// The tracing span of one HTTP request (debug level, as tower-http's
/// default, but with [`redact_uri`]).
pub fn request_span<B>(req: &axum::http::Request<B>) -> tracing::Span {
    tracing::debug_span!(
        "request",
        method = %req.method(),
        uri = %redact_uri(req.uri()),
        version = ?req.version(),
    )
}

/// The process-wide Prometheus recorder, installed on first use.
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("http_request_duration_seconds".into()),
                    LATENCY_BUCKETS,
                )
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("onair_ladder_realtime_factor".into()),
                        SPEED_BUCKETS,
                    )
                })
                .map(PrometheusBuilder::build_recorder)
                // The bucket lists are non-empty constants, so this branch is not taken.
                .unwrap_or_else(|_| PrometheusBuilder::new().build_recorder());
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
            }
            metrics::gauge!("onair_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
            handle
        })
        .clone()
}

/// The route template a request matched, carried from the inner route layer
/// to the outer metrics layer in the response extensions.
#[derive(Debug, Clone)]
struct RouteLabel(String);

/// Inner layer (per route): remembers the matched route template.
pub async fn remember_route(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_string());
    let mut res = next.run(req).await;
    if let Some(route) = route {
        res.extensions_mut().insert(RouteLabel(route));
    }
    res
}

/// Outer layer: counts every request and times it, labelled by method, route
/// template (or `fallback` for static files and 404s) and status.
pub async fn track_http(req: Request, next: Next) -> Response {
    let start = Instant::now();
    // Standard methods only: any other token a client sends is "other", so
    // clients cannot add label values.
    let method = match req.method().as_str() {
        m @ ("GET" | "HEAD" | "POST" | "PUT" | "PATCH" | "DELETE" | "OPTIONS") => m,
        _ => "other",
    }
    .to_string();
    let res = next.run(req).await;
    let route = res
        .extensions()
        .get::<RouteLabel>()
        .map(|r| r.0.clone())
        .unwrap_or_else(|| "fallback".to_string());
    let status = res.status().as_u16().to_string();
    let labels = [("method", method), ("route", route), ("status", status)];
    metrics::counter!("http_requests_total", &labels).increment(1);
    metrics::histogram!("http_request_duration_seconds", &labels)
        .record(start.elapsed().as_secs_f64());
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redacted(uri: &str) -> String {
        redact_uri(&uri.parse().expect("uri"))
    }

    #[test]
    fn playback_tokens_never_reach_the_logs() {
        assert_eq!(
            redacted("/live/abc/t/1234.sig-_x/720p/index.m3u8?_HLS_msn=3"),
            "/live/abc/t/REDACTED/720p/index.m3u8?_HLS_msn=3"
        );
        assert_eq!(
            redacted("/vod/abc/t/99.zz/master.m3u8"),
            "/vod/abc/t/REDACTED/master.m3u8"
        );
        assert_eq!(
            redacted("/api/v1/streams/abc/transcript.srt?a=1&token=9.s&TOKEN=8&%74oken=7&tokens=x"),
            "/api/v1/streams/abc/transcript.srt?a=1&token=REDACTED&TOKEN=REDACTED&%74oken=REDACTED&tokens=x"
        );
        assert_eq!(
            redacted("/watch/abc?token=1.x"),
            "/watch/abc?token=REDACTED"
        );
        assert_eq!(redacted("/live/abc/%74/1.x/a"), "/live/abc/%74/REDACTED/a");
        // Nothing else changes.
        assert_eq!(redacted("/live/abc/master.m3u8"), "/live/abc/master.m3u8");
        assert_eq!(redacted("/?q=t&x"), "/?q=t&x");
        assert_eq!(redacted("/t"), "/t");
    }
}
