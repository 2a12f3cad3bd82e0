//! `/healthz` (the process answers) and `/readyz` (the database answers).

use axum::routing::get;
use axum::{extract::State, Json, Router};
use serde_json::{json, Value};

use super::{error::ApiError, AppState};

pub(super) fn routes(r: Router<AppState>) -> Router<AppState> {
    r.route(
        "/healthz",
        get(|| async { Json(json!({ "status": "ok" })) }),
    )
    .route("/readyz", get(ready))
}

async fn ready(State(st): State<AppState>) -> Result<Json<Value>, ApiError> {
    st.service.store.ping().await?;
    Ok(Json(json!({ "status": "ready" })))
}
