//! What Rotor reports about itself: Prometheus metrics. Code records through
//! the `metrics` facade (a no-op until [`Metrics::install`] sets the
//! recorder, as in tests that build the router in-process); the names and
//! labels live here so that one file lists everything an on-call engineer
//! can graph:
//!
//! | metric | labels |
//! |---|---|
//! | `rotor_http_requests_total` | `route` (template, never the raw path), `method`, `status` |
//! | `rotor_http_request_duration_seconds` (histogram) | `route`, `method` |
//! | `rotor_token_exchanges_total` | `grant`, `outcome` |
//! | `rotor_upstream_refreshes_total` | `kind`, `outcome` (`refreshed`, `invalid`, `transient`, `error`) |
//! | `rotor_upstream_identities` (gauge) | `status` |
//! | `rotor_webhook_deliveries_total` | `outcome` (`delivered`, `retry`, `failed`) |
//! | `rotor_webhook_backlog` (gauge) | pending deliveries |
//! | `rotor_store_write_batch_size` (histogram) | group-commit batch sizes: SQLite writer batches, PostgreSQL rotation batches |
//! | `rotor_store_write_batch_errors_total` | group-commit batches that did not commit |
//! | `rotor_store_errors_total` | `kind` (`unavailable`, `other`) of store failures answered 5xx |
//! | `rotor_janitor_deleted_total` | `kind` (`grants`, `jtis`, `tokens`, `families`, `webhooks`, `events`) |
//! | `process_*` | RSS, CPU seconds, open descriptors, threads (metrics-process) |

use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use rotor_core::CoreError;
use rotor_store::Purged;

use crate::http::AppState;
use crate::service::{Issued, ServiceError};

/// The process's metrics recorder and the handle that renders it.
#[derive(Clone)]
pub struct Metrics {
    handle: PrometheusHandle,
    process: std::sync::Arc<metrics_process::Collector>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

/// Histogram buckets of request latency, in seconds: 250 µs to 10 s.
const LATENCY_BUCKETS: &[f64] = &[
    0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Buckets of the group-commit batch size (at most 256 on SQLite, 64 on
/// PostgreSQL).
const BATCH_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0];

impl Metrics {
    /// Installs the process-wide recorder. Called once, by `rotor serve`.
    pub fn install() -> anyhow::Result<Self> {
        let handle = PrometheusBuilder::new()
            .set_buckets_for_metric(
                Matcher::Full("rotor_http_request_duration_seconds".into()),
                LATENCY_BUCKETS,
            )?
            .set_buckets_for_metric(
                Matcher::Full("rotor_store_write_batch_size".into()),
                BATCH_BUCKETS,
            )?
            .install_recorder()?;
        let process = metrics_process::Collector::default();
        process.describe();
        describe();
        Ok(Self {
            handle,
            process: std::sync::Arc::new(process),
        })
    }

    /// Moves recorded histogram samples into their buckets (see
    /// `Background::metrics_upkeep`, which calls it every few seconds).
    pub fn run_upkeep(&self) {
        self.handle.run_upkeep();
    }

    /// The Prometheus text exposition of every metric, the process ones
    /// and the gauges read from the store just now.
    pub async fn render(&self, state: &AppState) -> String {
        self.process.collect();
        read_gauges(state).await;
        self.handle.render()
    }
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!("rotor_http_requests_total", "HTTP requests answered");
    describe_histogram!(
        "rotor_http_request_duration_seconds",
        Unit::Seconds,
        "Time from request to answer"
    );
    describe_counter!(
        "rotor_token_exchanges_total",
        "Token exchanges by grant and outcome"
    );
    describe_counter!(
        "rotor_upstream_refreshes_total",
        "Refreshes at upstream providers by kind and outcome"
    );
    describe_gauge!("rotor_upstream_identities", "Upstream identities by status");
    describe_counter!(
        "rotor_webhook_deliveries_total",
        "Webhook attempts by outcome"
    );
    describe_gauge!("rotor_webhook_backlog", "Webhook deliveries pending");
    describe_histogram!(
        "rotor_store_write_batch_size",
        "Writes committed together (SQLite writer batches, PostgreSQL rotation batches)"
    );
    describe_counter!(
        "rotor_store_write_batch_errors_total",
        "Group-commit batches that did not commit"
    );
    describe_counter!("rotor_store_errors_total", "Store failures answered 5xx");
    describe_counter!("rotor_janitor_deleted_total", "Rows the janitor deleted");
}

/// Middleware: counts and times every request by its route template.
pub async fn track_http(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = req.method().as_str().to_owned();
    let started = Instant::now();
    let res = next.run(req).await;
    let elapsed = started.elapsed().as_secs_f64();
    let span = tracing::Span::current();
    span.record("route", route.as_str());
    span.record("status", res.status().as_u16());
    span.record("latency_us", (elapsed * 1e6) as u64);
    let status = res.status().as_u16().to_string();
    metrics::counter!("rotor_http_requests_total", "route" => route.clone(), "method" => method.clone(), "status" => status)
        .increment(1);
    metrics::histogram!("rotor_http_request_duration_seconds", "route" => route, "method" => method)
        .record(elapsed);
    res
}

/// The `outcome` label of an exchange's result.
pub fn exchange_outcome(result: Result<&Issued, &ServiceError>) -> &'static str {
    match result {
        Ok(i) if i.replayed => "replayed",
        Ok(_) => "issued",
        Err(ServiceError::Refused(e)) => match e {
            CoreError::InvalidClient => "invalid_client",
            CoreError::RefreshTokenReused => "reuse_detected",
            CoreError::InvalidAssertion(_) | CoreError::AssertionReplayed => "invalid_assertion",
            CoreError::InstallationNotFound | CoreError::InstallationNotForApp => {
                "invalid_installation"
            }
            _ => "invalid_grant",
        },
        Err(ServiceError::Throttled(_)) => "throttled",
        Err(ServiceError::NotFound(_)) => "invalid_installation",
        Err(ServiceError::Invalid(_) | ServiceError::Conflict(_)) => "invalid_request",
        Err(ServiceError::Store(_) | ServiceError::Sealed { .. }) => "error",
    }
}

/// Counts one token exchange; a refused one is also logged with its
/// reason, the client id, the installation and the client IP (the request
/// span adds the request id). Never a secret. Refused credentials are
/// already logged where they are checked (`Service::authenticate_from`),
/// and a throttled client once per window, so those are only counted here:
/// a flood of bad secrets must not become a flood of log lines.
pub fn record_exchange(
    grant: &'static str,
    result: Result<&Issued, &ServiceError>,
    client_id: Option<&str>,
    installation: Option<&str>,
    ip: Option<&str>,
) {
    let outcome = exchange_outcome(result);
    metrics::counter!("rotor_token_exchanges_total", "grant" => grant, "outcome" => outcome)
        .increment(1);
    if outcome == "invalid_client" || outcome == "throttled" {
        return;
    }
    if let Err(e) = result {
        let installation = installation.map(str::to_owned).unwrap_or_default();
        let client_id = client_id.unwrap_or("");
        let ip = ip.unwrap_or("");
        match e {
            ServiceError::Store(_) | ServiceError::Sealed { .. } => tracing::error!(
                grant, outcome, reason = %e, client_id, installation, ip,
                "token exchange failed"
            ),
            _ => tracing::warn!(
                grant, outcome, reason = %e, client_id, installation, ip,
                "token exchange refused"
            ),
        }
    }
}

/// Counts one refresh at an upstream provider.
pub fn record_upstream_refresh(kind: &str, outcome: &'static str) {
    metrics::counter!("rotor_upstream_refreshes_total", "kind" => kind.to_owned(), "outcome" => outcome)
        .increment(1);
}

/// Counts one webhook attempt.
pub fn record_webhook(outcome: &'static str) {
    metrics::counter!("rotor_webhook_deliveries_total", "outcome" => outcome).increment(1);
}

/// Counts a store failure that reached a client as 5xx.
pub fn record_store_error(kind: &'static str) {
    metrics::counter!("rotor_store_errors_total", "kind" => kind).increment(1);
}

/// Counts the rows one janitor pass deleted.
pub fn record_janitor(p: &Purged) {
    for (kind, n) in [
        ("grants", p.grants),
        ("jtis", p.jtis),
        ("tokens", p.tokens),
        ("families", p.families),
        ("webhooks", p.webhooks),
        ("events", p.events),
    ] {
        metrics::counter!("rotor_janitor_deleted_total", "kind" => kind).increment(n);
    }
}

/// Sets the gauges that count rows (identities by status, the webhook
/// backlog) from the store; a status that disappeared reads 0.
async fn read_gauges(state: &AppState) {
    let counts = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        state.service.status_counts(),
    )
    .await;
    let Ok(Ok(counts)) = counts else {
        tracing::warn!("metrics: could not read the identity and webhook counts");
        return;
    };
    // Every status is set, so one that no identity has any more reads 0.
    let mut identities = rotor_core::IdentityStatus::ALL.map(|s| (s.as_str(), 0u64));
    let mut backlog = 0u64;
    for (what, status, n) in counts {
        match what.as_str() {
            "identities" => {
                if let Some(slot) = identities.iter_mut().find(|(s, _)| *s == status) {
                    slot.1 = n;
                }
            }
            _ => backlog += n,
        }
    }
    for (status, n) in identities {
        metrics::gauge!("rotor_upstream_identities", "status" => status).set(n as f64);
    }
    metrics::gauge!("rotor_webhook_backlog").set(backlog as f64);
}

/// The management router: `/metrics`, `/healthz`, `/readyz`. It is served
/// on its own listener (`--management-listen`, loopback by default), so the
/// metrics are not exposed where the API is.
pub fn management_router(state: AppState, metrics: Metrics) -> axum::Router {
    use axum::routing::get;
    let r: axum::Router<AppState> = axum::Router::new().route(
        "/metrics",
        get(move |State(st): State<AppState>| {
            let metrics = metrics.clone();
            async move {
                (
                    [(
                        axum::http::header::CONTENT_TYPE,
                        "text/plain; version=0.0.4; charset=utf-8",
                    )],
                    metrics.render(&st).await,
                )
                    .into_response()
            }
        }),
    );
    crate::http::health_routes(r).with_state(state)
}
