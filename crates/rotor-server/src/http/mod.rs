//! The HTTP edge: the axum router, shared state, extractors, and the mapping
//! of use-case results to wire formats. Handlers parse and check input, call
//! one use case in [`crate::service`], and render its answer; they hold no
//! business rules.

mod admin;
pub mod client_ip;
pub mod error;
pub mod extract;
mod health;
pub use health::routes as health_routes;
mod oauth;
pub mod openapi;
pub mod paging;
mod sentry;
mod upstream;
pub mod wire;

use std::sync::Arc;

use axum::http::{Request, Response};
use axum::routing::MethodRouter;
use axum::Router;
use rotor_core::Secret;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::TraceLayer;

use crate::service::Service;
use error::ApiError;

/// State shared by every handler.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The use cases.
    pub service: Service,
    /// The operator's token; `None` closes the admin API.
    pub admin_token: Option<Arc<Secret>>,
    /// The public base URL (RFC 8414 issuer); `None` derives it from `Host`.
    pub issuer: Option<String>,
    /// Deadlines of one request: reading its body, and the whole request.
    pub deadlines: Deadlines,
    /// Proxies whose forwarding headers name the client.
    pub trusted_proxies: Arc<client_ip::TrustedProxies>,
}

/// What the client-IP extractor takes from the state: one `Arc`, not a
/// clone of the whole state on every request.
impl axum::extract::FromRef<AppState> for Arc<client_ip::TrustedProxies> {
    fn from_ref(state: &AppState) -> Self {
        state.trusted_proxies.clone()
    }
}

/// How long one request may take.
#[derive(Clone, Copy, Debug)]
pub struct Deadlines {
    /// Reading the request body (a client trickling an upload). Default 10 s.
    pub body_read: std::time::Duration,
    /// The whole request, handler included; past it the client gets `503`
    /// (a write already handed to the store still commits, and a refresh
    /// retried with the same token gets the same pair). Default 30 s.
    pub request: std::time::Duration,
}

impl Default for Deadlines {
    fn default() -> Self {
        Self {
            body_read: std::time::Duration::from_secs(10),
            request: std::time::Duration::from_secs(30),
        }
    }
}

/// Headers of every answer that carries a token, a grant code or a
/// secret: no cache (shared or private) may keep it (RFC 6749 §5.1).
pub(crate) const NO_STORE: [(axum::http::HeaderName, &str); 2] = [
    (axum::http::header::CACHE_CONTROL, "no-store"),
    (axum::http::header::PRAGMA, "no-cache"),
];

/// Adds `path` (which ends in `/`, as Sentry's routes do) and the same path
/// without the trailing slash.
fn with_and_without_slash(
    router: Router<AppState>,
    path: &str,
    route: MethodRouter<AppState>,
) -> Router<AppState> {
    router
        .route(path, route.clone())
        .route(path.trim_end_matches('/'), route)
}

/// The complete router with its middleware.
pub fn router(state: AppState) -> Router {
    let deadlines = state.deadlines;
    let mut r = Router::new();
    r = health::routes(r);
    r = admin::routes(r);
    r = sentry::routes(r);
    r = oauth::routes(r);
    r = upstream::routes(r);
    r = openapi::routes(r);
    r.fallback(|| async { ApiError::NotFound("Not found".into()) })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
            deadlines.body_read,
        ))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            deadlines.request,
        ))
        .layer(axum::middleware::map_response(error::json_errors))
        .layer(axum::middleware::from_fn(crate::telemetry::track_http))
        .layer(CatchPanicLayer::custom(|_panic| {
            tracing::error!("a handler panicked");
            axum::response::IntoResponse::into_response(ApiError::Internal)
        }))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(|req: &Request<_>| {
                    // Only method, path and request id: queries and other
                    // headers may carry secrets.
                    let id = req
                        .headers()
                        .get("x-request-id")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("");
                    tracing::info_span!(
                        "request",
                        method = %req.method(),
                        path = %req.uri().path(),
                        request_id = %id,
                        // Recorded once known (crate::telemetry::track_http).
                        route = tracing::field::Empty,
                        status = tracing::field::Empty,
                        latency_us = tracing::field::Empty,
                    )
                })
                .on_request(())
                .on_response(
                    |res: &Response<_>, latency: std::time::Duration, _span: &tracing::Span| {
                        let (status, latency_us) =
                            (res.status().as_u16(), latency.as_micros() as u64);
                        if res.extensions().get::<health::Quiet>().is_some() {
                            tracing::debug!(status, latency_us, "answered");
                        } else {
                            tracing::info!(status, latency_us, "answered");
                        }
                    },
                )
                .on_failure(()),
        )
        // Every answer carries X-Request-Id: the caller's, or a new UUID;
        // the span above (so every log line of the request) carries it too.
        .layer(tower_http::request_id::PropagateRequestIdLayer::x_request_id())
        .layer(tower_http::request_id::SetRequestIdLayer::x_request_id(
            tower_http::request_id::MakeRequestUuid,
        ))
        .with_state(state)
}
