//! `/healthz` (the process answers) and `/readyz` (the database accepts
//! reads and writes, within a deadline: a load balancer should stop sending
//! traffic to a node that can only answer 503).

use axum::routing::get;
use axum::{extract::State, Json, Router};

use super::{error::ApiError, wire::Health, AppState};

/// Marks an answer whose request is logged at `debug`, not `info`: a
/// load balancer probes every few seconds, and those lines would bury the
/// ones on-call reads.
#[derive(Debug, Clone, Copy)]
pub struct Quiet;

/// Adds `/healthz` and `/readyz` to `r`.
pub fn routes(r: Router<AppState>) -> Router<AppState> {
    let probes = Router::new()
        .route("/healthz", get(alive))
        .route("/readyz", get(ready))
        .route_layer(axum::middleware::map_response(
            |mut res: axum::response::Response| async move {
                res.extensions_mut().insert(Quiet);
                res
            },
        ));
    r.merge(probes)
}

/// How long the readiness probe waits for the database.
const READY_DEADLINE: std::time::Duration = std::time::Duration::from_secs(2);

/// Liveness: the process answers
#[utoipa::path(get, path = "/healthz", tag = "health", security(()),
    responses((status = 200, body = Health)))]
pub(super) async fn alive() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
}

/// Readiness: the database accepts reads and writes within 2 s
#[utoipa::path(get, path = "/readyz", tag = "health", security(()),
    responses((status = 200, body = Health), (status = 503, body = super::wire::ApiErrorBody)))]
pub(super) async fn ready(State(st): State<AppState>) -> Result<Json<Health>, ApiError> {
    match tokio::time::timeout(READY_DEADLINE, st.service.ready()).await {
        Ok(Ok(())) => Ok(Json(Health {
            status: "ready".into(),
        })),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "not ready: the database refuses reads or writes");
            Err(ApiError::Unavailable)
        }
        Err(_) => {
            tracing::warn!("not ready: the database did not accept a write within 2 s");
            Err(ApiError::Unavailable)
        }
    }
}
