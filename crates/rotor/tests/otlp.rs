//! Traces leave Rotor over OTLP when the standard `OTEL_EXPORTER_OTLP_*`
//! variables say so. An OTLP/HTTP receiver in this test takes the export
//! (JSON encoding, as a collector accepts it) and checks that one refresh
//! is one trace: the request span (with its request id and route), the use
//! case span under it and the store call under that.
#![allow(clippy::unwrap_used)]

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::routing::post;
use serde_json::{json, Value};
use support::{start, Serve};

const ADMIN: &str = "otlp-test-admin-token-0123456789abcdefgh";

/// Every span the receiver got: (trace id, span id, parent id, name, attributes).
type Spans = Arc<Mutex<Vec<(String, String, String, String, Value)>>>;

async fn receiver() -> (String, Spans) {
    let spans: Spans = Arc::default();
    let sink = spans.clone();
    let app = axum::Router::new().route(
        "/v1/traces",
        post(move |body: axum::body::Bytes| {
            let sink = sink.clone();
            async move {
                let doc: Value = serde_json::from_slice(&body).expect("OTLP/JSON body");
                for rs in doc["resourceSpans"].as_array().unwrap() {
                    for ss in rs["scopeSpans"].as_array().unwrap() {
                        for s in ss["spans"].as_array().unwrap() {
                            let text = |k: &str| s[k].as_str().unwrap_or("").to_owned();
                            sink.lock().unwrap().push((
                                text("traceId"),
                                text("spanId"),
                                text("parentSpanId"),
                                text("name"),
                                s["attributes"].clone(),
                            ));
                        }
                    }
                }
                axum::Json(json!({}))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), spans)
}

fn attr(attrs: &Value, key: &str) -> Option<String> {
    attrs.as_array()?.iter().find(|a| a["key"] == key).map(|a| {
        let v = &a["value"];
        v["stringValue"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| v.to_string())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refresh_is_one_trace_from_request_to_store() {
    let (endpoint, spans) = receiver().await;
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/rotor.db", dir.path().display());
    let mut serve = Serve::new(&db, dir.path(), ADMIN);
    let env = [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ("OTEL_SERVICE_NAME", "rotor-under-test"),
    ];
    serve.env = &env;
    let node = start(serve);
    let http = reqwest::Client::new();
    let app = node.create_app("Traced").await;
    let (url, t) = node.install_and_exchange(&app, "acme").await;
    let res = http
        .post(&url)
        .header("x-request-id", "otlp-refresh-1")
        .json(
            &json!({"grant_type": "refresh_token", "client_id": app["clientId"],
            "client_secret": app["clientSecret"], "refresh_token": t["refreshToken"]}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);

    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        {
            let spans = spans.lock().unwrap();
            let request = spans.iter().find(|(_, _, _, name, a)| {
                name == "request" && attr(a, "request_id").as_deref() == Some("otlp-refresh-1")
            });
            if let Some((trace, request_id, _, _, a)) = request {
                assert_eq!(
                    attr(a, "route").as_deref(),
                    Some("/api/0/sentry-app-installations/{uuid}/authorizations/")
                );
                let in_trace = |name: &str| {
                    spans
                        .iter()
                        .find(|(t, _, _, n, _)| t == trace && n == name)
                        .cloned()
                };
                if let (Some(uc), Some(store)) = (
                    in_trace("exchange.refresh"),
                    in_trace("store.rotate_refresh"),
                ) {
                    assert_eq!(&uc.2, request_id, "the use case is a child of the request");
                    assert_eq!(store.2, uc.1, "the store call is a child of the use case");
                    return;
                }
            }
        }
        assert!(
            Instant::now() < deadline,
            "no complete refresh trace arrived: {:?}",
            spans
                .lock()
                .unwrap()
                .iter()
                .map(|s| s.3.clone())
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
